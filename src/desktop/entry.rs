//! Desktop entry files (freedesktop Desktop Entry Specification 1.5), parsed
//! strictly and kept line by line, so that a rewritten entry differs from the
//! original only where integration changed it.
//!
//! An entry inside an AppImage is untrusted input: the parser is bounded
//! ([`MAX_BYTES`], [`MAX_LINES`]) and every violation of the format that
//! matters here is reported as an `Err(String)` reason, never a panic. What
//! counts as broken:
//!
//! - more than [`MAX_BYTES`] bytes or [`MAX_LINES`] lines;
//! - not UTF-8 (the specification requires it), or control characters other
//!   than tab in any line;
//! - a line that is neither a comment, a blank line, a `[Group]` header nor a
//!   `Key=Value` / `Key[locale]=Value` entry; a key outside `[A-Za-z0-9-]`;
//! - an entry before the first group, a first group other than
//!   `[Desktop Entry]`, two groups of the same name, or the same key (with
//!   the same locale) twice in one group;
//! - `Type` or `Name` missing, `Exec` missing (or not a valid command line)
//!   for `Type=Application`, `URL` missing for `Type=Link`.
//!
//! Accepted leniently: CRLF line ends and a leading UTF-8 byte order mark
//! (both are dropped on output), white space around `=` and before keys.

use std::collections::HashSet;

use super::exec;

/// Largest desktop entry accepted, in bytes; real ones are a few KiB, so a
/// larger file is garbage or an attack and is not worth reading.
pub const MAX_BYTES: usize = 64 * 1024;

/// Most lines accepted in one desktop entry (bounds the per-line work).
pub const MAX_LINES: usize = 4096;

/// The group every desktop entry must start with.
pub const MAIN_GROUP: &str = "Desktop Entry";

/// One line inside a group (or before the first group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A comment or blank line, kept (without leading blanks and line end)
    /// so that rewriting does not lose translators' notes or licence headers.
    Comment(String),
    /// A `Key[locale]=value` entry; `value` is kept as written, escapes not
    /// decoded, so that untouched values are written back byte for byte.
    Entry {
        /// The key, `[A-Za-z0-9-]+`.
        key: String,
        /// The locale postfix without brackets, e.g. `de` or `pt_BR`.
        locale: Option<String>,
        /// The raw value (escape sequences not decoded).
        value: String,
    },
}

/// A `[Group]` and its lines, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group name between the brackets.
    pub name: String,
    /// Its entries and comments in order.
    pub lines: Vec<Line>,
}

/// A parsed desktop entry file: comments before the first group, then the
/// groups in order (the first is always `[Desktop Entry]` after [`parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesktopEntry {
    /// Comment and blank lines before the first group.
    pub preamble: Vec<String>,
    /// The groups in file order.
    pub groups: Vec<Group>,
}

/// Parses a desktop entry file; `Err` says in one line why it is broken.
pub fn parse(bytes: &[u8]) -> Result<DesktopEntry, String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "desktop entry is {} bytes, more than the {MAX_BYTES} accepted",
            bytes.len()
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "desktop entry is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    let mut entry = DesktopEntry {
        preamble: Vec::new(),
        groups: Vec::new(),
    };
    let mut group_names: HashSet<String> = HashSet::new();
    let mut keys: HashSet<(String, Option<String>)> = HashSet::new();
    let body = text.strip_suffix('\n').unwrap_or(text);
    for (index, raw_line) in body.split('\n').enumerate() {
        let number = index + 1;
        if number > MAX_LINES {
            return Err(format!("desktop entry has more than {MAX_LINES} lines"));
        }
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if let Some(c) = line
            .chars()
            .find(|&c| (c.is_control() && c != '\t') || c == '\u{7f}')
        {
            return Err(format!(
                "line {number}: control character U+{:04X}",
                c as u32
            ));
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            match entry.groups.last_mut() {
                Some(group) => group.lines.push(Line::Comment(trimmed.to_string())),
                None => entry.preamble.push(trimmed.to_string()),
            }
            continue;
        }
        if trimmed.starts_with('[') {
            let name = parse_group_header(trimmed).map_err(|e| format!("line {number}: {e}"))?;
            if entry.groups.is_empty() && name != MAIN_GROUP {
                return Err(format!("the first group is [{name}], not [{MAIN_GROUP}]"));
            }
            if !group_names.insert(name.to_string()) {
                return Err(format!("line {number}: group [{name}] appears twice"));
            }
            keys.clear();
            entry.groups.push(Group {
                name: name.to_string(),
                lines: Vec::new(),
            });
            continue;
        }
        let (key, locale, value) =
            parse_key_value(trimmed).map_err(|e| format!("line {number}: {e}"))?;
        let Some(group) = entry.groups.last_mut() else {
            return Err(format!("line {number}: entry {key} before the first group"));
        };
        if !keys.insert((key.to_string(), locale.map(str::to_string))) {
            let shown = match locale {
                Some(l) => format!("{key}[{l}]"),
                None => key.to_string(),
            };
            return Err(format!(
                "line {number}: key {shown} appears twice in [{}]",
                group.name
            ));
        }
        group.lines.push(Line::Entry {
            key: key.to_string(),
            locale: locale.map(str::to_string),
            value: value.to_string(),
        });
    }
    check_required(&entry)?;
    Ok(entry)
}

/// `[name]` with optional trailing blanks; the name is printable ASCII
/// without brackets, as the specification demands.
fn parse_group_header(line: &str) -> Result<&str, String> {
    let inner = line.strip_prefix('[').unwrap_or(line);
    let Some(end) = inner.find(']') else {
        return Err("group header without closing ]".to_string());
    };
    let (name, rest) = (&inner[..end], &inner[end + 1..]);
    if !rest.trim_matches([' ', '\t']).is_empty() {
        return Err("text after a group header".to_string());
    }
    if name.is_empty() {
        return Err("empty group name".to_string());
    }
    if let Some(c) = name.chars().find(|c| !(' '..='~').contains(c) || *c == '[') {
        return Err(format!("group name contains {c:?}"));
    }
    Ok(name)
}

/// `Key[locale] = value` → (key, locale, raw value).
fn parse_key_value(line: &str) -> Result<(&str, Option<&str>, &str), String> {
    let Some(eq) = line.find('=') else {
        return Err("neither a comment, a group header nor a Key=Value entry".to_string());
    };
    let (left, value) = (line[..eq].trim_end_matches([' ', '\t']), &line[eq + 1..]);
    let value = value.trim_start_matches([' ', '\t']);
    let (key, locale) = match left.find('[') {
        Some(open) => {
            let Some(locale) = left[open + 1..].strip_suffix(']') else {
                return Err(format!("malformed locale in key {left:?}"));
            };
            let ok = !locale.is_empty()
                && locale
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b));
            if !ok {
                return Err(format!("malformed locale in key {left:?}"));
            }
            (&left[..open], Some(locale))
        }
        None => (left, None),
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!(
            "invalid key name {key:?} (only A-Za-z0-9- are allowed)"
        ));
    }
    Ok((key, locale, value))
}

fn check_required(entry: &DesktopEntry) -> Result<(), String> {
    let Some(main) = entry.groups.first() else {
        return Err(format!("no [{MAIN_GROUP}] group"));
    };
    let kind = main.string("Type")?.ok_or("required key Type is missing")?;
    let name = main.string("Name")?.ok_or("required key Name is missing")?;
    if name.trim().is_empty() {
        return Err("Name is empty".to_string());
    }
    match kind.as_str() {
        "Application" => {
            let exec = main
                .string("Exec")?
                .ok_or("Type=Application but required key Exec is missing")?;
            exec::split_program(&exec).map_err(|e| format!("Exec: {e}"))?;
        }
        "Link" => {
            main.string("URL")?
                .ok_or("Type=Link but required key URL is missing")?;
        }
        _ => {}
    }
    for group in &entry.groups[1..] {
        if group.name.starts_with("Desktop Action ") {
            if let Some(exec) = group.string("Exec")? {
                exec::split_program(&exec).map_err(|e| format!("[{}] Exec: {e}", group.name))?;
            }
        }
    }
    Ok(())
}

impl DesktopEntry {
    /// The `[Desktop Entry]` group (`None` only for a value not made by
    /// [`parse`]).
    pub fn main(&self) -> Option<&Group> {
        self.groups.first().filter(|g| g.name == MAIN_GROUP)
    }

    /// Mutable access to the `[Desktop Entry]` group.
    pub fn main_mut(&mut self) -> Option<&mut Group> {
        self.groups.first_mut().filter(|g| g.name == MAIN_GROUP)
    }

    /// The file's bytes: LF line ends, a final newline, no byte order mark.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.preamble {
            out.push_str(line);
            out.push('\n');
        }
        for group in &self.groups {
            out.push('[');
            out.push_str(&group.name);
            out.push_str("]\n");
            for line in &group.lines {
                match line {
                    Line::Comment(text) => out.push_str(text),
                    Line::Entry { key, locale, value } => {
                        out.push_str(key);
                        if let Some(locale) = locale {
                            out.push('[');
                            out.push_str(locale);
                            out.push(']');
                        }
                        out.push('=');
                        out.push_str(value);
                    }
                }
                out.push('\n');
            }
        }
        out.into_bytes()
    }
}

impl Group {
    /// The raw (still escaped) value of the unlocalized `key`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.raw_localized(key, None)
    }

    /// The raw value of `key[locale]` (`None` locale: the plain key).
    pub fn raw_localized(&self, key: &str, locale: Option<&str>) -> Option<&str> {
        self.lines.iter().find_map(|line| match line {
            Line::Entry {
                key: k,
                locale: l,
                value,
            } if k == key && l.as_deref() == locale => Some(value.as_str()),
            _ => None,
        })
    }

    /// The decoded value of the unlocalized `key`; `Err` for a bad escape.
    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        self.raw(key)
            .map(|raw| unescape(raw).map_err(|e| format!("{key}: {e}")))
            .transpose()
    }

    /// A boolean key: `Some(true)` for `true` (or the old `1`), `Some(false)`
    /// for `false` (or `0`), `None` when absent or anything else.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        match self.raw(key)?.trim_end() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    /// Sets the unlocalized `key` to `raw_value` (already escaped), in place
    /// if it exists, else appended after the group's last entry.
    pub fn set_raw(&mut self, key: &str, raw_value: String) {
        for line in &mut self.lines {
            if let Line::Entry {
                key: k,
                locale: None,
                value,
            } = line
            {
                if k == key {
                    *value = raw_value;
                    return;
                }
            }
        }
        let at = self
            .lines
            .iter()
            .rposition(|l| matches!(l, Line::Entry { .. }))
            .map_or(self.lines.len(), |i| i + 1);
        self.lines.insert(
            at,
            Line::Entry {
                key: key.to_string(),
                locale: None,
                value: raw_value,
            },
        );
    }

    /// Removes `key`: only its localized variants (`Key[xx]`) when
    /// `localized_only`, else every variant.
    pub fn remove(&mut self, key: &str, localized_only: bool) {
        self.lines.retain(|line| match line {
            Line::Entry { key: k, locale, .. } => {
                !(k == key && (!localized_only || locale.is_some()))
            }
            Line::Comment(_) => true,
        });
    }
}

/// Decodes the escapes of a string value: `\s \n \t \r \\`; `\;` is kept as
/// written (it only means something to list values). Any other escape, or
/// a trailing backslash, is an error.
pub fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(';') => out.push_str("\\;"),
            Some(other) => return Err(format!("invalid escape sequence \\{other}")),
            None => return Err("value ends with a lone backslash".to_string()),
        }
    }
    Ok(out)
}

/// Encodes a string value for the file: the inverse of [`unescape`] for
/// text without `\;` (backslash, newline, tab, carriage return, and a
/// leading space, which readers would otherwise trim).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' if i == 0 => out.push_str("\\s"),
            _ => out.push(c),
        }
    }
    out
}
