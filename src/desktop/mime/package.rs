//! Reading one shared-mime-info package (`usr/share/mime/packages/*.xml`
//! of an AppImage): the types it defines, with their globs, magic,
//! parents, aliases and icons, as `update-mime-database` reads them.
//!
//! The XML is untrusted: it is read with bounds (file size, types, globs,
//! matches and their nesting, value sizes), and every name that ends up in
//! a database file is checked so it cannot break that file's line format.
//! A package that is not well-formed gives no types at all; one bad
//! element is skipped with a reason.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Largest package file read.
pub const MAX_BYTES: usize = 1 << 20;
/// Most types taken from one package.
pub const MAX_TYPES: usize = 1024;
/// Most globs, parents, aliases or root-XML rules of one type.
pub const MAX_PER_TYPE: usize = 64;
/// Most `<match>` elements of one type, counting nested ones.
pub const MAX_MATCHES: usize = 256;
/// Deepest nesting of `<match>` elements.
pub const MAX_MATCH_DEPTH: usize = 8;
/// Largest match value or mask, and largest match range.
pub const MAX_VALUE: usize = 1024;
/// Largest offset a match may start at.
pub const MAX_OFFSET: u32 = 1 << 20;
/// Longest type, glob or icon name.
pub const MAX_NAME: usize = 255;

/// A glob pattern of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    /// The pattern, e.g. `*.foo`.
    pub pattern: String,
    /// 0..=100; 50 by default.
    pub weight: u8,
    /// Matched case-sensitively.
    pub case_sensitive: bool,
}

/// One `<match>`: `value` (under `mask`) found at an offset in
/// `start ..= start + range - 1`; all `children` are alternatives that
/// must also match (any one of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// First offset.
    pub start: u32,
    /// How many offsets are tried (at least 1).
    pub range: u32,
    /// Bytes to find, in file order (words already in their byte order,
    /// except host-order words, see `word_size`).
    pub value: Vec<u8>,
    /// Mask ANDed with the file's bytes, as long as `value`.
    pub mask: Option<Vec<u8>>,
    /// 1, or 2/4 for words in host byte order (stored big-endian).
    pub word_size: u32,
    /// Nested matches.
    pub children: Vec<Match>,
}

/// A `<magic>` rule: any of `matches`, with a priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magic {
    /// 0..=100; 50 by default.
    pub priority: u8,
    /// Alternatives.
    pub matches: Vec<Match>,
}

/// One type as a package defines it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MimeType {
    /// `media/subtype`.
    pub name: String,
    /// File name patterns.
    pub globs: Vec<Glob>,
    /// Content rules.
    pub magic: Vec<Magic>,
    /// `sub-class-of` types.
    pub parents: Vec<String>,
    /// Other names of this type.
    pub aliases: Vec<String>,
    /// `<icon name>`.
    pub icon: Option<String>,
    /// `<generic-icon name>`.
    pub generic_icon: Option<String>,
    /// `<root-XML namespaceURI localName>` pairs.
    pub root_xml: Vec<(String, String)>,
}

/// A parsed package: its types, and what was skipped and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Package {
    /// The usable types.
    pub types: Vec<MimeType>,
    /// One line per skipped element.
    pub problems: Vec<String>,
}

/// True for a usable type name: `media/subtype`, both parts non-empty and
/// made of the characters RFC 6838 allows (so no `:`, space or newline,
/// which the database files use as separators).
pub fn valid_type(name: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    name.len() <= MAX_NAME && name.split_once('/').is_some_and(|(a, b)| ok(a) && ok(b))
}

/// True for a glob the database files can hold and that names something:
/// no `:`, control characters or `/`, and at least one letter or digit (so
/// no app can claim every file with `*`).
pub fn valid_glob(pattern: &str) -> bool {
    pattern.len() <= MAX_NAME
        && !pattern.contains(|c: char| c == ':' || c == '/' || c.is_control())
        && pattern.chars().any(char::is_alphanumeric)
}

/// True for an icon name (or XML name) that fits the database files.
pub fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && !s.contains(|c: char| c == ':' || c == ' ' || c == '/' || c.is_control())
}

/// Parses a package's bytes. `Err` when the document is too large or not
/// well-formed (then nothing of it is used).
pub fn parse(bytes: &[u8]) -> Result<Package, String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!("more than {MAX_BYTES} bytes"));
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut out = Package::default();
    // The open elements, outermost first, by local name.
    let mut open: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<MimeType> = None;
    // The <magic> being read, and the stack of open <match>es.
    let mut magic: Option<Magic> = None;
    let mut matches: Vec<Match> = Vec::new();
    let mut match_count = 0;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        let (element, empty) = match event {
            Event::Eof if open.is_empty() => break,
            Event::Eof => return Err("not well-formed XML: an element is never closed".into()),
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            Event::End(e) => {
                let name = e.local_name().as_ref().to_vec();
                open.pop();
                match &name[..] {
                    b"match" => {
                        if let Some(m) = matches.pop() {
                            attach(m, &mut matches, magic.as_mut());
                        }
                    }
                    b"magic" => {
                        if let (Some(ty), Some(m)) = (current.as_mut(), magic.take()) {
                            if !m.matches.is_empty() {
                                ty.magic.push(m);
                            }
                        }
                    }
                    b"mime-type" => {
                        if let Some(ty) = current.take() {
                            if out.types.len() < MAX_TYPES {
                                out.types.push(ty);
                            } else {
                                out.problems.push(format!(
                                    "more than {MAX_TYPES} types; {} left out",
                                    ty.name
                                ));
                            }
                        }
                    }
                    _ => {}
                }
                (None, false)
            }
            _ => (None, false),
        };
        let Some(e) = element else { continue };
        let name = e.local_name().as_ref().to_vec();
        if !empty {
            open.push(name.clone());
        }
        let attr = |key: &str| attribute(&e, key);
        match &name[..] {
            b"mime-type" => {
                let ty = attr("type").unwrap_or_default();
                current = valid_type(&ty).then(|| MimeType {
                    name: ty.clone(),
                    ..MimeType::default()
                });
                if current.is_none() {
                    out.problems
                        .push(format!("type {:?} is not a valid type name", clip(&ty)));
                }
                match_count = 0;
                if empty {
                    if let Some(ty) = current.take().filter(|_| out.types.len() < MAX_TYPES) {
                        out.types.push(ty);
                    }
                }
            }
            b"glob" => {
                let Some(ty) = current.as_mut() else { continue };
                let pattern = attr("pattern").unwrap_or_default();
                let weight =
                    attr("weight").map_or(Some(50), |w| w.parse().ok().filter(|w| *w <= 100));
                match weight {
                    Some(weight) if valid_glob(&pattern) && ty.globs.len() < MAX_PER_TYPE => {
                        ty.globs.push(Glob {
                            pattern,
                            weight,
                            case_sensitive: attr("case-sensitive").as_deref() == Some("true"),
                        })
                    }
                    _ => out.problems.push(format!(
                        "{}: glob {:?} left out",
                        ty.name,
                        clip(&pattern)
                    )),
                }
            }
            b"sub-class-of" | b"alias" => {
                let Some(ty) = current.as_mut() else { continue };
                let other = attr("type").unwrap_or_default();
                let list = if name == b"alias" {
                    &mut ty.aliases
                } else {
                    &mut ty.parents
                };
                if valid_type(&other) && other != ty.name && list.len() < MAX_PER_TYPE {
                    list.push(other);
                } else {
                    out.problems
                        .push(format!("{}: {:?} left out", ty.name, clip(&other)));
                }
            }
            b"icon" | b"generic-icon" => {
                let Some(ty) = current.as_mut() else { continue };
                let icon = attr("name").filter(|n| valid_word(n));
                if name == b"icon" {
                    ty.icon = icon;
                } else {
                    ty.generic_icon = icon;
                }
            }
            b"root-XML" => {
                let Some(ty) = current.as_mut() else { continue };
                if let (Some(ns), Some(local)) = (attr("namespaceURI"), attr("localName")) {
                    let fits = |s: &str| {
                        !s.is_empty()
                            && s.len() <= MAX_NAME
                            && !s.contains(|c: char| c.is_whitespace() || c.is_control())
                    };
                    if fits(&ns) && fits(&local) && ty.root_xml.len() < MAX_PER_TYPE {
                        ty.root_xml.push((ns, local));
                    }
                }
            }
            b"magic" if current.is_some() => {
                let priority =
                    attr("priority").map_or(Some(50), |p| p.parse().ok().filter(|p| *p <= 100));
                magic = priority.map(|priority| Magic {
                    priority,
                    matches: Vec::new(),
                });
                if magic.is_none() {
                    out.problems.push("a magic priority is not 0 to 100".into());
                }
            }
            b"match" if magic.is_some() => {
                match_count += 1;
                let parsed = if match_count > MAX_MATCHES || matches.len() >= MAX_MATCH_DEPTH {
                    Err("too many or too deeply nested matches".to_string())
                } else {
                    parse_match(
                        &attr("type").unwrap_or_default(),
                        &attr("offset").unwrap_or_default(),
                        &attr("value").unwrap_or_default(),
                        attr("mask").as_deref(),
                    )
                };
                match parsed {
                    Ok(m) if !empty => matches.push(m),
                    Ok(m) => attach(m, &mut matches, magic.as_mut()),
                    Err(why) => {
                        out.problems.push(format!("a magic match left out: {why}"));
                        if !empty {
                            // Its children are skipped with it: they hang
                            // below a placeholder `attach` drops.
                            matches.push(Match {
                                start: u32::MAX,
                                range: 0,
                                value: Vec::new(),
                                mask: None,
                                word_size: 1,
                                children: Vec::new(),
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.problems.dedup();
    Ok(out)
}

/// Hangs a finished match below the open one, or in the magic rule; a
/// placeholder for a rejected match (range 0) is dropped with its children.
fn attach(m: Match, open: &mut [Match], magic: Option<&mut Magic>) {
    if m.range == 0 {
        return;
    }
    match (open.last_mut(), magic) {
        (Some(parent), _) => parent.children.push(m),
        (None, Some(magic)) => magic.matches.push(m),
        (None, None) => {}
    }
}

/// The unescaped value of attribute `key` (by local name, so `xml:lang`
/// is `lang`).
fn attribute(e: &BytesStart, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == key.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// At most 64 characters of untrusted text, for messages.
fn clip(s: &str) -> String {
    s.chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

/// One `<match type offset value mask>`.
fn parse_match(kind: &str, offset: &str, value: &str, mask: Option<&str>) -> Result<Match, String> {
    let (start, end) = match offset.split_once(':') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(offset)?, number(offset)?),
    };
    let start = u32::try_from(start)
        .ok()
        .filter(|&s| s <= MAX_OFFSET)
        .ok_or("offset too large")?;
    let end = u32::try_from(end)
        .ok()
        .filter(|&e| e >= start && e - start < MAX_VALUE as u32 * 64)
        .ok_or("bad offset range")?;
    let (bytes, word_size) = match kind {
        "string" => (string_value(value)?, 1),
        "byte" => (
            vec![u8::try_from(number(value)?).map_err(|_| "byte value too large")?],
            1,
        ),
        "big16" | "little16" | "host16" => {
            let v = u16::try_from(number(value)?).map_err(|_| "value too large")?;
            match kind {
                "little16" => (v.to_le_bytes().to_vec(), 1),
                "big16" => (v.to_be_bytes().to_vec(), 1),
                _ => (v.to_be_bytes().to_vec(), 2),
            }
        }
        "big32" | "little32" | "host32" => {
            let v = u32::try_from(number(value)?).map_err(|_| "value too large")?;
            match kind {
                "little32" => (v.to_le_bytes().to_vec(), 1),
                "big32" => (v.to_be_bytes().to_vec(), 1),
                _ => (v.to_be_bytes().to_vec(), 4),
            }
        }
        other => return Err(format!("unknown match type {:?}", clip(other))),
    };
    if bytes.is_empty() || bytes.len() > MAX_VALUE {
        return Err("empty or too long value".into());
    }
    let mask = match mask {
        None => None,
        Some(m) if kind == "string" => {
            let hex = m
                .strip_prefix("0x")
                .ok_or("a string mask must be hex (0x...)")?;
            let mask: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("x"), 16))
                .collect::<Result<_, _>>()
                .map_err(|_| "bad hex in mask")?;
            if mask.len() != bytes.len() || !hex.len().is_multiple_of(2) {
                return Err("mask and value differ in length".into());
            }
            Some(mask)
        }
        Some(m) => {
            let v = number(m)?;
            let be = v.to_be_bytes();
            Some(be[be.len() - bytes.len()..].to_vec())
        }
    };
    Ok(Match {
        start,
        range: end - start + 1,
        value: bytes,
        mask,
        word_size,
        children: Vec::new(),
    })
}

/// A number as C's `strtoul(s, 0)` reads it: `0x` hex, leading `0` octal.
fn number(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8)
    } else {
        s.parse()
    };
    parsed.map_err(|_| format!("{:?} is not a number", clip(s)))
}

/// A string match value with C escapes (`\n`, `\t`, `\\`, `\xHH`, octal
/// `\NNN`, and `\c` for any other `c`).
fn string_value(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&c) = b.get(i + 1) else {
            return Err("a value ends with a backslash".into());
        };
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let digits = b[i..]
                    .iter()
                    .take(2)
                    .take_while(|d| d.is_ascii_hexdigit())
                    .count();
                let v = std::str::from_utf8(&b[i..i + digits])
                    .ok()
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .ok_or("bad \\x escape")?;
                out.push(v);
                i += digits;
            }
            b'0'..=b'7' => {
                let mut v: u32 = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(u8::try_from(v).map_err(|_| "octal escape above 255")?);
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_package() {
        let p = parse(
            br#"<?xml version="1.0"?>
<!DOCTYPE mime-info>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="application/x-t">
    <comment>T &amp; U</comment>
    <glob pattern="*.t" weight="80" case-sensitive="true"/>
    <alias type="application/x-t-old"/>
    <magic priority="60">
      <match type="string" offset="2:4" value="A\x42\103\n" mask="0xffffffff">
        <match type="big16" offset="8" value="0x1234"/>
      </match>
      <match type="host32" offset="0" value="1"/>
    </magic>
    <root-XML namespaceURI="urn:t" localName="t"/>
  </mime-type>
</mime-info>"#,
        )
        .unwrap();
        assert_eq!(p.problems, Vec::<String>::new());
        let t = &p.types[0];
        assert_eq!(
            t.globs,
            vec![Glob {
                pattern: "*.t".into(),
                weight: 80,
                case_sensitive: true
            }]
        );
        assert_eq!(t.aliases, ["application/x-t-old"]);
        let m = &t.magic[0];
        assert_eq!(m.priority, 60);
        assert_eq!((m.matches[0].start, m.matches[0].range), (2, 3));
        assert_eq!(m.matches[0].value, b"ABC\n");
        assert_eq!(m.matches[0].children[0].value, [0x12, 0x34]);
        assert_eq!(
            (m.matches[1].value.clone(), m.matches[1].word_size),
            (vec![0, 0, 0, 1], 4)
        );
        assert_eq!(t.root_xml, [("urn:t".to_string(), "t".to_string())]);
    }

    #[test]
    fn hostile_input_is_bounded_or_refused() {
        assert!(parse(b"<mime-info><mime-type type='a/b'>").is_err());
        assert!(parse(&vec![b' '; MAX_BYTES + 1]).is_err());
        let many: String = (0..MAX_TYPES + 3)
            .map(|i| format!("<mime-type type='a/t{i}'/>"))
            .collect();
        let p = parse(format!("<mime-info>{many}</mime-info>").as_bytes()).unwrap();
        assert_eq!(p.types.len(), MAX_TYPES);
        let deep =
            "<match type='string' offset='0' value='x'>".repeat(100) + &"</match>".repeat(100);
        let p = parse(
            format!(
                "<mime-info><mime-type type='a/b'><magic>{deep}</magic></mime-type></mime-info>"
            )
            .as_bytes(),
        )
        .unwrap();
        fn depth(m: &Match) -> usize {
            1 + m.children.iter().map(depth).max().unwrap_or(0)
        }
        assert_eq!(depth(&p.types[0].magic[0].matches[0]), MAX_MATCH_DEPTH);
        for bad in ["a", "a/", "/b", "a/b/c", "a b/c", "a/b\n", "a:b/c"] {
            assert!(!valid_type(bad), "{bad:?}");
        }
        for bad in ["*", "*.*", "?", "a:b", "a/b"] {
            assert!(!valid_glob(bad), "{bad:?}");
        }
    }
}
