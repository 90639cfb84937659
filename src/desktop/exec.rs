//! The `Exec` key's command-line syntax (Desktop Entry Specification, "The
//! Exec key"): splitting off the program and quoting a new one.
//!
//! Values here are already string-unescaped (see [`super::entry::unescape`]);
//! this is the second, command-line level of quoting. Arguments are
//! separated by blanks; an argument may be double-quoted, inside which
//! `\"`, `` \` ``, `\$` and `\\` stand for the character itself. Like GLib
//! (which real launchers use), single quotes and backslash escapes outside
//! quotes are accepted too. Field codes are `%` plus one of `fFuUick%` or
//! the deprecated `dDnNvm`; anything else makes the command line invalid.

/// Characters that force an argument to be quoted (the specification's
/// reserved characters), plus `%`, which is always doubled.
const RESERVED: &[char] = &[
    ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')',
    '`',
];

/// Splits a command line into its program (unquoted) and the rest of the
/// line verbatim, starting right after the program (so the rest begins with
/// a blank or is empty). The whole line is checked: unbalanced quotes,
/// invalid field codes or an empty program are errors.
pub fn split_program(exec: &str) -> Result<(String, &str), String> {
    let args = tokenize(exec)?;
    let Some((program, end)) = args.into_iter().next() else {
        return Err("empty command line".to_string());
    };
    if program.is_empty() {
        return Err("empty program name".to_string());
    }
    if program.replace("%%", "").contains('%') {
        return Err("a field code in the program name".to_string());
    }
    Ok((program, &exec[end..]))
}

/// Splits a command line into arguments (quotes removed, field codes kept
/// as written), each with the byte offset just past it in `exec`.
pub fn tokenize(exec: &str) -> Result<Vec<(String, usize)>, String> {
    let mut args = Vec::new();
    let mut chars = exec.char_indices().peekable();
    loop {
        while chars
            .next_if(|&(_, c)| matches!(c, ' ' | '\t' | '\n'))
            .is_some()
        {}
        if chars.peek().is_none() {
            return Ok(args);
        }
        let mut arg = String::new();
        let mut end = exec.len();
        while let Some(&(at, c)) = chars.peek() {
            match c {
                ' ' | '\t' | '\n' => {
                    end = at;
                    break;
                }
                '"' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            None => return Err("unterminated double quote".to_string()),
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, e @ ('"' | '`' | '$' | '\\'))) => arg.push(e),
                                Some((_, '\n')) => {}
                                Some((_, other)) => {
                                    arg.push('\\');
                                    arg.push(other);
                                }
                                None => return Err("unterminated double quote".to_string()),
                            },
                            Some((_, '%')) => percent_in_quotes(&mut chars, &mut arg)?,
                            Some((_, other)) => arg.push(other),
                        }
                    }
                }
                '\'' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            None => return Err("unterminated single quote".to_string()),
                            Some((_, '\'')) => break,
                            Some((_, '%')) => percent_in_quotes(&mut chars, &mut arg)?,
                            Some((_, other)) => arg.push(other),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    match chars.next() {
                        Some((_, '\n')) => {}
                        Some((_, other)) => arg.push(other),
                        None => return Err("command line ends with a backslash".to_string()),
                    }
                }
                '%' => {
                    chars.next();
                    match chars.next() {
                        Some((_, code)) if "fFuUick%dDnNvm".contains(code) => {
                            arg.push('%');
                            arg.push(code);
                        }
                        Some((_, code)) => return Err(format!("invalid field code %{code}")),
                        None => return Err("command line ends with %".to_string()),
                    }
                }
                other => {
                    chars.next();
                    arg.push(other);
                }
            }
        }
        args.push((arg, end));
    }
}

/// Inside quotes only `%%` (a literal percent sign) is allowed: field codes
/// must not be quoted, and readers expand `%` before they unquote.
fn percent_in_quotes(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    arg: &mut String,
) -> Result<(), String> {
    match chars.next() {
        Some((_, '%')) => {
            arg.push_str("%%");
            Ok(())
        }
        _ => Err("a field code inside quotes".to_string()),
    }
}

/// Writes `arg` as one command-line argument that a reader following the
/// specification turns back into exactly `arg`: bare when it holds no
/// reserved character, else double-quoted with `"`, `` ` ``, `$`, `\`
/// backslash-escaped; `%` is always doubled. The result still needs the
/// string-level [`super::entry::escape`] before it goes into a file.
pub fn quote_arg(arg: &str) -> String {
    let needs_quotes = arg.is_empty() || arg.contains(RESERVED) || arg.starts_with('=');
    let mut out = String::with_capacity(arg.len() + 2);
    if needs_quotes {
        out.push('"');
    }
    for c in arg.chars() {
        match c {
            '%' => out.push_str("%%"),
            '"' | '`' | '$' | '\\' if needs_quotes => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    if needs_quotes {
        out.push('"');
    }
    out
}

/// Checks that the arguments part of a command line (what follows the
/// program) is valid by the specification's strict rules, which desktops
/// differ on when they are broken: outside double quotes no reserved
/// character but blanks between arguments; inside them, a backslash only
/// before `"`, `` ` ``, `$` or `\`. (Field codes are checked by
/// [`tokenize`].)
pub fn check_strict(args: &str) -> Result<(), String> {
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '"' => loop {
                match chars.next() {
                    None => return Err("unterminated double quote".to_string()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"' | '`' | '$' | '\\') => {}
                        other => {
                            return Err(format!(
                                "backslash before {other:?} inside quotes (only \\\", \\`, \\$ and \\\\ are allowed)"
                            ))
                        }
                    },
                    Some(_) => {}
                }
            },
            c if RESERVED.contains(&c) => {
                return Err(format!("reserved character {c:?} outside double quotes"))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(exec: &str) -> Vec<String> {
        tokenize(exec)
            .unwrap()
            .into_iter()
            .map(|(a, _)| a)
            .collect()
    }

    #[test]
    fn splits_program_and_keeps_the_rest_verbatim() {
        assert_eq!(
            split_program("leafpad.wrapper %f").unwrap(),
            ("leafpad.wrapper".into(), " %f")
        );
        assert_eq!(split_program("echo").unwrap(), ("echo".into(), ""));
        assert_eq!(
            split_program("\"/opt/My App/run\" --x \"a b\" %U").unwrap(),
            ("/opt/My App/run".into(), " --x \"a b\" %U")
        );
        assert_eq!(
            split_program("  'sq prog' -v").unwrap(),
            ("sq prog".into(), " -v")
        );
        assert_eq!(
            split_program("a\"b c\"d e").unwrap(),
            ("ab cd".into(), " e")
        );
    }

    #[test]
    fn rejects_malformed_command_lines() {
        for bad in [
            "",
            "   ",
            "\"unterminated",
            "'open",
            "prog \"x",
            "prog %z",
            "prog %",
            "prog \\",
            "\"\" %f",
            "%f",
        ] {
            assert!(split_program(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            split_program("prog \"%f\"").is_err(),
            "field code in quotes accepted"
        );
    }

    #[test]
    fn tokenizes_escapes_inside_quotes() {
        assert_eq!(
            args(r#"p "a \"q\" \$x \`y\` \\z \n""#),
            vec!["p", r#"a "q" $x `y` \z \n"#]
        );
        assert_eq!(args("p %% %F 'x y'"), vec!["p", "%%", "%F", "x y"]);
    }

    #[test]
    fn quoting_round_trips_through_the_tokenizer() {
        let hostile = [
            "/opt/apps/bin/leafpad",
            "/opt/my apps/bin/x",
            "/opt/\"q\"/bin/x",
            "/opt/$(touch /tmp/pwned)/x",
            "/opt/`id`/x",
            "/opt/back\\slash/x",
            "/opt/100%/x",
            "/opt/semi;colon/x",
            "/opt/new\nline/x",
            "",
            "=x",
            "ünïcödé/x",
        ];
        for p in hostile {
            let q = quote_arg(p);
            // A literal `%` is written `%%`; the tokenizer keeps field codes
            // as written, so compare with that form.
            let expected = p.replace('%', "%%");
            assert_eq!(
                args(&format!("{q} %f")),
                vec![expected.as_str(), "%f"],
                "{p:?} quoted as {q:?}"
            );
        }
        assert_eq!(quote_arg("/opt/apps/bin/leafpad"), "/opt/apps/bin/leafpad");
        assert_eq!(quote_arg("/a b"), "\"/a b\"");
    }

    #[test]
    fn strict_check_follows_the_specification() {
        for ok in [
            "",
            " %f",
            " --a=b %U",
            " \"a b\" \"\\$x\" \"q\\\"q\"",
            " \"line1\nline2\"",
        ] {
            assert_eq!(check_strict(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            " $(touch x)",
            " a;b",
            " a|b",
            " 'q'",
            " \\x",
            " x\ny",
            " \"\\n\"",
            " \"open",
        ] {
            assert!(check_strict(bad).is_err(), "{bad:?}");
        }
    }
}
