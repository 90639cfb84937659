//! Per-app settings without repacking: a file `<AppImage file name>.env`
//! beside the AppImage, in the `KEY=VALUE` form the uruntime AppImage
//! runtime reads (its dotenv syntax), whose variables the app's launcher
//! exports.
//!
//! Accepted lines (anything else is a problem reported for that line, which
//! is then skipped):
//!
//! ```text
//! # a comment, and blank lines
//! NAME=value             unquoted: up to a ` #` comment, outer blanks trimmed
//! NAME='value'           single quotes: everything between them, literally
//! NAME="value"           double quotes: \" \\ \$ \n \t are escapes
//! export NAME=value      the `export` is optional
//! unset NAME OTHER       removes variables the caller had set
//! ```
//!
//! Values are data, never code: `$HOME`, `$(...)` and backticks stay as
//! written (dotenv's `${VAR}` substitution is not done), and the launcher
//! embeds each value single-quoted. Names must be shell variable names
//! (`[A-Za-z_][A-Za-z0-9_]*`), the only ones `sh` can export; the
//! variables the launcher sets itself (`APPIMAGE`, `APPDIR`, `ARGV0`, `OWD`,
//! `DESKTOPINTEGRATION`) cannot be changed. The file is bounded
//! ([`MAX_BYTES`], [`MAX_SETTINGS`]).

/// Largest settings file read; a larger one is ignored as a whole.
pub const MAX_BYTES: usize = 64 * 1024;

/// Most settings taken from one file; later lines are reported and skipped.
pub const MAX_SETTINGS: usize = 1024;

/// Suffix appended to an AppImage's file name to name its settings file.
pub const SUFFIX: &str = ".env";

/// Variables the launcher sets itself, which a settings file cannot change.
pub const RESERVED: &[&str] = &["APPIMAGE", "APPDIR", "ARGV0", "OWD", "DESKTOPINTEGRATION"];

/// One effective line of a settings file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// Export `name` with this exact value.
    Set(String, Vec<u8>),
    /// Remove `name` from the environment.
    Unset(String),
}

/// A parsed settings file: what it sets, and what was wrong with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    /// Settings in file order.
    pub settings: Vec<Setting>,
    /// One message per skipped line (`line N: why`).
    pub problems: Vec<String>,
}

/// True for a name `sh` can export: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses the contents of a settings file (see the module docs).
pub fn parse(bytes: &[u8]) -> EnvFile {
    let mut out = EnvFile::default();
    if bytes.len() > MAX_BYTES {
        out.problems.push(format!(
            "larger than {} KiB; ignored as a whole",
            MAX_BYTES / 1024
        ));
        return out;
    }
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw).trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        if out.settings.len() >= MAX_SETTINGS {
            out.problems.push(format!(
                "line {}: more than {MAX_SETTINGS} settings; the rest is ignored",
                i + 1
            ));
            break;
        }
        if let Err(why) = parse_line(line, &mut out.settings) {
            out.problems.push(format!("line {}: {why}", i + 1));
        }
    }
    out
}

fn parse_line(line: &[u8], settings: &mut Vec<Setting>) -> Result<(), String> {
    if let Some(names) = line.strip_prefix(b"unset ") {
        let names: Vec<String> = names
            .split(|b| b.is_ascii_whitespace())
            .filter(|n| !n.is_empty())
            .map(checked_name)
            .collect::<Result<_, _>>()?;
        settings.extend(names.into_iter().map(Setting::Unset));
        return Ok(());
    }
    let line = line
        .strip_prefix(b"export ")
        .map_or(line, |l| l.trim_ascii_start());
    let eq = line
        .iter()
        .position(|&b| b == b'=')
        .ok_or("not NAME=VALUE")?;
    let name = checked_name(line[..eq].trim_ascii())?;
    let value = parse_value(line[eq + 1..].trim_ascii_start())?;
    if value.contains(&0) {
        return Err(format!("the value of {name} holds a NUL byte"));
    }
    settings.push(Setting::Set(name, value));
    Ok(())
}

fn checked_name(raw: &[u8]) -> Result<String, String> {
    let shown = String::from_utf8_lossy(raw).escape_debug().to_string();
    let name = std::str::from_utf8(raw)
        .ok()
        .filter(|n| valid_name(n))
        .ok_or_else(|| format!("\"{shown}\" is not a variable name"))?;
    if RESERVED.contains(&name) {
        return Err(format!(
            "{name} is set by the launcher and cannot be changed"
        ));
    }
    Ok(name.to_string())
}

/// The value after `=`: quoted or not, with what may follow it.
fn parse_value(raw: &[u8]) -> Result<Vec<u8>, String> {
    let (value, rest) = match raw.first() {
        Some(b'\'') => {
            let end = raw[1..]
                .iter()
                .position(|&b| b == b'\'')
                .ok_or("no closing ' (values span one line)")?;
            (raw[1..1 + end].to_vec(), &raw[end + 2..])
        }
        Some(b'"') => double_quoted(&raw[1..])?,
        _ => {
            let end = raw
                .windows(2)
                .position(|w| w[0].is_ascii_whitespace() && w[1] == b'#')
                .unwrap_or(raw.len());
            return Ok(raw[..end].trim_ascii_end().to_vec());
        }
    };
    let rest = rest.trim_ascii_start();
    if rest.is_empty() || rest.starts_with(b"#") {
        Ok(value)
    } else {
        Err("text after the closing quote".into())
    }
}

/// The inside of a double-quoted value and what follows its closing quote.
fn double_quoted(raw: &[u8]) -> Result<(Vec<u8>, &[u8]), String> {
    let mut value = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'"' => return Ok((value, &raw[i + 1..])),
            b'\\' => {
                match raw.get(i + 1) {
                    Some(b'n') => value.push(b'\n'),
                    Some(b't') => value.push(b'\t'),
                    Some(&c @ (b'"' | b'\\' | b'$')) => value.push(c),
                    Some(&c) => value.extend_from_slice(&[b'\\', c]),
                    None => break,
                }
                i += 2;
            }
            _ => {
                value.push(b);
                i += 1;
            }
        }
    }
    Err("no closing \" (values span one line)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &[u8]) -> Setting {
        Setting::Set(name.into(), value.to_vec())
    }

    #[test]
    fn dotenv_lines() {
        let file = parse(
            b"# comment\n\
              \n\
              PLAIN=hello world  # trailing comment\n\
              export QT_QPA_PLATFORM=xcb\r\n\
              SINGLE='$(touch pwned) `id` ${HOME} \\n \"'\n\
              DOUBLE=\"a \\\"b\\\" \\$HOME \\\\ \\n\\x\"\n\
              EMPTY=\n\
              HASH=a#b\n\
              SPACED = value \n\
              unset LD_PRELOAD  FOO\n",
        );
        assert_eq!(file.problems, Vec::<String>::new());
        assert_eq!(
            file.settings,
            vec![
                set("PLAIN", b"hello world"),
                set("QT_QPA_PLATFORM", b"xcb"),
                set("SINGLE", b"$(touch pwned) `id` ${HOME} \\n \""),
                set("DOUBLE", b"a \"b\" $HOME \\ \n\\x"),
                set("EMPTY", b""),
                set("HASH", b"a#b"),
                set("SPACED", b"value"),
                Setting::Unset("LD_PRELOAD".into()),
                Setting::Unset("FOO".into()),
            ]
        );
    }

    #[test]
    fn broken_lines_are_reported_and_skipped() {
        let file = parse(
            b"GOOD=1\n\
              no equals sign\n\
              1BAD=x\n\
              BAD-NAME=x\n\
              =x\n\
              OPEN='never closed\n\
              OPEN2=\"never closed\n\
              AFTER='a' b\n\
              APPDIR=/elsewhere\n\
              unset OK $(x)\n\
              \xff\xfe=1\n\
              ALSO_GOOD=2\n",
        );
        assert_eq!(
            file.settings,
            vec![set("GOOD", b"1"), set("ALSO_GOOD", b"2")]
        );
        let lines: Vec<&str> = file
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9",
                "line 10", "line 11"
            ]
        );
    }

    #[test]
    fn bounds() {
        let big = vec![b'#'; MAX_BYTES + 1];
        let file = parse(&big);
        assert!(file.settings.is_empty() && file.problems.len() == 1);
        let many: Vec<u8> = (0..MAX_SETTINGS + 5)
            .flat_map(|i| format!("V{i}=x\n").into_bytes())
            .collect();
        let file = parse(&many);
        assert_eq!(file.settings.len(), MAX_SETTINGS);
        assert_eq!(file.problems.len(), 1);
        assert!(valid_name("_a1") && !valid_name("") && !valid_name("a.b"));
    }
}
