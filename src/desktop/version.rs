//! Which of several AppImages of the same app `bin/` and the menu point at.
//!
//! Two AppImages are the same app when their launcher base names
//! ([`super::names::base_name`], from the desktop file stem) are equal. Among
//! them the newest wins, by [`VersionKey`]'s order:
//!
//! 1. `X-AppImage-Version`, in natural order ([`compare_versions`]): the
//!    version is split into runs of digits and runs of letters (any other
//!    character, such as `.`, `-`, `_` or a space, only separates runs);
//!    runs are compared in turn: two digit runs as numbers (of any length,
//!    `10 > 9`, `007 = 7`), two letter runs as text, ASCII
//!    case-insensitively, and a digit run is newer than a letter run
//!    (`1.1 > 1.beta`); when all runs so far are equal, the version with
//!    more runs is newer (`1.2.1 > 1.2`). This is plain natural order, so
//!    `1.0rc1 > 1.0`: pre-release tags are not understood. An app with a
//!    version is newer than one without.
//! 2. On equal (or absent) versions, the file with the later modification
//!    time is newer.
//!
//! Complete ties are left to the caller (e.g. by folder name), so the
//! result does not depend on directory order.

use std::cmp::Ordering;

/// Compares two version strings in natural order (see the module docs).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (Runs(a.as_bytes()), Runs(b.as_bytes()));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = compare_runs(x, y);
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Digit runs are greater than text runs at the same position (`1.1 >
/// 1.beta`); digit runs compare by value, text runs case-insensitively.
fn compare_runs(x: &[u8], y: &[u8]) -> Ordering {
    match (x[0].is_ascii_digit(), y[0].is_ascii_digit()) {
        (true, true) => {
            let x = trim_zeros(x);
            let y = trim_zeros(y);
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            let lower = |s: &[u8]| s.iter().map(u8::to_ascii_lowercase).collect::<Vec<_>>();
            lower(x).cmp(&lower(y))
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[first..]
}

/// Letters: ASCII letters and every non-ASCII byte (part of a UTF-8
/// letter, most likely).
fn is_letter(b: u8) -> bool {
    b.is_ascii_alphabetic() || b >= 0x80
}

/// Iterates over the maximal runs of digits and of letters (never empty),
/// skipping separators.
struct Runs<'a>(&'a [u8]);

impl<'a> Iterator for Runs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self
            .0
            .iter()
            .position(|&b| b.is_ascii_digit() || is_letter(b))?;
        let rest = &self.0[start..];
        let digit = rest[0].is_ascii_digit();
        let len = rest
            .iter()
            .position(|&b| {
                if digit {
                    !b.is_ascii_digit()
                } else {
                    !is_letter(b)
                }
            })
            .unwrap_or(rest.len());
        let (run, rest) = rest.split_at(len);
        self.0 = rest;
        Some(run)
    }
}

/// What decides which of several AppImages of one app is the newest; its
/// `Ord` is the rule in the module docs (greater = newer).
#[derive(Clone, Debug)]
pub struct VersionKey {
    /// `X-AppImage-Version`, if the desktop entry has one.
    pub version: Option<String>,
    /// Modification time of the AppImage file, seconds since the epoch.
    pub mtime: i64,
}

impl Ord for VersionKey {
    fn cmp(&self, other: &VersionKey) -> Ordering {
        let versions = match (&self.version, &other.version) {
            (Some(a), Some(b)) => compare_versions(a, b),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        };
        versions.then(self.mtime.cmp(&other.mtime))
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &VersionKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for VersionKey {
    fn eq(&self, other: &VersionKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for VersionKey {}

/// The index of the newest of `keys` (the first of equals), `None` if empty.
pub fn newest(keys: &[VersionKey]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, key) in keys.iter().enumerate() {
        if best.is_none_or(|b| key > &keys[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn natural_order() {
        let cases = [
            ("1.10", "1.9", Greater),
            ("1.2", "1.2.1", Less),
            ("2", "10", Less),
            ("1.007", "1.7", Equal),
            ("1.0", "1.0", Equal),
            ("v2.0", "V2.0", Equal),
            ("1.0.0-beta", "1.0.0-alpha", Greater),
            ("1.1", "1.beta", Greater),
            ("test1234", "test999", Greater),
            ("", "0", Less),
            ("", "", Equal),
            (
                "99999999999999999999999999",
                "99999999999999999999999998",
                Greater,
            ),
            ("0.8.18.1", "0.8.18", Greater),
            ("1.0rc1", "1.0", Greater),
            ("1-0", "1.0", Equal),
            ("...", "", Equal),
            ("2.0 (\u{e9}t\u{e9})", "2.0 (ete)", Greater),
        ];
        for (a, b, expected) in cases {
            assert_eq!(compare_versions(a, b), expected, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), expected.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn newest_by_version_then_mtime() {
        let key = |v: Option<&str>, mtime| VersionKey {
            version: v.map(str::to_string),
            mtime,
        };
        let keys = [
            key(Some("1.9"), 300),
            key(Some("1.10"), 100),
            key(None, 999),
            key(Some("1.10"), 50),
        ];
        assert_eq!(newest(&keys), Some(1));
        let keys = [key(Some("1.0"), 100), key(Some("1.00"), 200)];
        assert_eq!(newest(&keys), Some(1), "equal versions: newer file wins");
        let keys = [key(None, 5), key(None, 7), key(None, 7)];
        assert_eq!(newest(&keys), Some(1), "first of equals");
        assert_eq!(newest(&[]), None);
    }
}
