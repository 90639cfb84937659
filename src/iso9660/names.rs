//! File names in the three namespaces an ISO 9660 image can offer.
//!
//! Rock Ridge `NM` names are raw bytes and used as they are. Joliet names
//! are UCS-2 (UTF-16 big endian) and become UTF-8. Plain ISO 9660 names keep
//! their case (as xorriso shows them) but lose the `;1` version and the dot
//! of an empty extension.

/// Longest name accepted (FUSE's own limit); longer entries are left out.
pub(crate) const MAX_NAME: usize = 1024;

/// Decodes a Joliet identifier to UTF-8 (unpaired surrogates become U+FFFD).
pub(crate) fn joliet(raw: &[u8]) -> Vec<u8> {
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    let name: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    strip_version(name.into_bytes(), false)
}

/// A plain ISO 9660 identifier as a name.
pub(crate) fn iso(raw: &[u8], is_dir: bool) -> Vec<u8> {
    strip_version(raw.to_vec(), !is_dir)
}

/// Drops a `;version` suffix and, if asked, the dot of an empty extension
/// ("README." is "README").
fn strip_version(mut name: Vec<u8>, drop_dot: bool) -> Vec<u8> {
    if let Some(semi) = name.iter().rposition(|&b| b == b';') {
        if name[semi + 1..].iter().all(u8::is_ascii_digit) {
            name.truncate(semi);
        }
    }
    if drop_dot && name.len() > 1 && name.ends_with(b".") {
        name.pop();
    }
    name
}

/// Whether `name` can be a directory entry: not empty, not "." or "..", no
/// '/' or NUL, at most [`MAX_NAME`] bytes.
pub(crate) fn is_valid(name: &[u8]) -> bool {
    !(name.is_empty()
        || name == b"."
        || name == b".."
        || name.len() > MAX_NAME
        || name.iter().any(|&b| b == b'/' || b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_joliet_names() {
        assert_eq!(iso(b"GPL_3_0.TXT;1", false), b"GPL_3_0.TXT");
        assert_eq!(iso(b"README.;1", false), b"README");
        assert_eq!(iso(b"A;B", false), b"A;B");
        assert_eq!(iso(b"DIR.D", true), b"DIR.D");
        let j: Vec<u8> = "αβ.txt;1"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(joliet(&j), "αβ.txt".as_bytes());
        assert_eq!(joliet(&[0xD8, 0x00, 0, b'a']), "\u{FFFD}a".as_bytes());
    }

    #[test]
    fn invalid_names() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"a\0b",
            &[b'x'; MAX_NAME + 1],
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert!(is_valid(b"...") && is_valid(&[b'x'; MAX_NAME]) && is_valid(b"\xff"));
    }
}
