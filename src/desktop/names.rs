//! Launcher names: the file names under `<mountpoint>/bin/`, typed by users
//! in a shell, so they are lower-case and need no quoting.
//!
//! A name comes from the desktop entry's file name (`org.gnome.Foo.desktop`
//! → `org.gnome.foo`), which AppImage tools keep stable across versions, or
//! else from the AppImage's folder name. Two AppImages with the same base
//! name are taken to be versions of the same app (see [`super::version`]).

use std::collections::HashSet;

/// Longest launcher name produced (well under the 255-byte name limit, and
/// leaving room for a `-N` suffix).
pub const MAX_NAME: usize = 64;

/// Used when nothing usable is left of the source name.
pub const FALLBACK_NAME: &str = "app";

/// The launcher base name for an app: the stem of `desktop_file` (its name
/// without `.desktop`) when given, else `folder_name`, made shell-friendly:
/// ASCII lower-case, every run of other characters than `[a-z0-9._+-]`
/// becomes one `-`, no leading `-` or `.`, no trailing `-`, at most
/// [`MAX_NAME`] bytes, never empty ([`FALLBACK_NAME`]).
pub fn base_name(desktop_file: Option<&[u8]>, folder_name: &[u8]) -> String {
    let stem = desktop_file
        .map(|f| f.strip_suffix(b".desktop").unwrap_or(f))
        .map(sanitize);
    match stem {
        Some(name) if !name.is_empty() => name,
        _ => {
            let name = sanitize(folder_name);
            if name.is_empty() {
                FALLBACK_NAME.to_string()
            } else {
                name
            }
        }
    }
}

/// Lower-cases and filters `raw` as described at [`base_name`]; may be empty.
pub fn sanitize(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_NAME));
    for &b in raw {
        let c = b.to_ascii_lowercase();
        let keep = c.is_ascii_lowercase() || c.is_ascii_digit() || b"._+-".contains(&c);
        if keep {
            if out.is_empty() && (c == b'-' || c == b'.') {
                continue;
            }
            out.push(char::from(c));
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= MAX_NAME {
            break;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Longest version part of a versioned launcher name.
pub const MAX_VERSION: usize = 32;

/// The launcher name that runs one particular version of an app:
/// `<launcher>-<version>`, the version made shell-friendly as
/// [`sanitize`] does (lower-case, other characters as `-`) and cut to
/// [`MAX_VERSION`] bytes; `None` when nothing usable is left of it.
pub fn versioned(launcher: &str, version: &str) -> Option<String> {
    let mut version = sanitize(version.as_bytes());
    version.truncate(MAX_VERSION);
    while version.ends_with('-') {
        version.pop();
    }
    (!version.is_empty()).then(|| format!("{launcher}-{version}"))
}

/// A name not in `taken`: `base` itself, else `base-2`, `base-3`, ...
/// (the first free one). `base` is used as given; pass a [`base_name`].
pub fn assign_unique(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    // At most `taken.len()` candidates can be taken, so this loop ends
    // within `taken.len() + 1` rounds.
    let mut n: usize = 2;
    loop {
        let candidate = format!("{base}-{n}");
        if !taken.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_NAME
            && !name.starts_with(['-', '.'])
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b))
    }

    #[test]
    fn names_come_from_the_desktop_file_stem_or_the_folder() {
        assert_eq!(
            base_name(Some(b"leafpad.desktop"), b"Leafpad-0.8.18.1-x86_64"),
            "leafpad"
        );
        assert_eq!(
            base_name(Some(b"org.gnome.Calculator.desktop"), b"x"),
            "org.gnome.calculator"
        );
        assert_eq!(
            base_name(None, b"Hello_World-x86_64.gzip"),
            "hello_world-x86_64.gzip"
        );
        assert_eq!(base_name(Some(b".desktop"), b"Echo"), "echo");
        assert_eq!(base_name(Some(b"---.desktop"), b"..."), "app");
        assert_eq!(base_name(None, b""), "app");
        assert_eq!(base_name(None, b"My App (beta) \xff\xfe"), "my-app-beta");
        assert_eq!(base_name(None, b"-rf"), "rf");
        assert_eq!(base_name(None, b"..hidden"), "hidden");
        assert_eq!(
            base_name(None, b"a$(touch x)`id`'q'\nb"),
            "a-touch-x-id-q-b"
        );
        assert_eq!(base_name(None, b"C++ Tool"), "c++-tool");
    }

    #[test]
    fn names_are_always_shell_friendly() {
        let inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"-".to_vec(),
            b".".to_vec(),
            b"\xff".to_vec(),
            vec![b'A'; 1000],
            b"-.-.-.-a".to_vec(),
            (0u8..=255).collect(),
        ];
        for input in &inputs {
            let name = base_name(None, input);
            assert!(valid(&name), "{input:?} -> {name:?}");
            let name = base_name(Some(input), b"x");
            assert!(valid(&name), "{input:?} -> {name:?}");
        }
    }

    #[test]
    fn versioned_names_are_shell_friendly() {
        assert_eq!(versioned("foo", "1.10").as_deref(), Some("foo-1.10"));
        assert_eq!(
            versioned("foo", "2.0 (Beta) $(x)").as_deref(),
            Some("foo-2.0-beta-x")
        );
        assert_eq!(versioned("foo", "--- ..."), None);
        assert_eq!(versioned("foo", ""), None);
        let long = versioned("foo", &"9".repeat(500)).unwrap();
        assert_eq!(long.len(), 4 + MAX_VERSION);
        for raw in ["\u{ff}", "-", "a/b", "1\n2", "é"] {
            if let Some(name) = versioned("app", raw) {
                assert!(valid(&name), "{raw:?} -> {name:?}");
            }
        }
    }

    #[test]
    fn unique_names_get_a_counter() {
        let mut taken = HashSet::new();
        for expected in ["echo", "echo-2", "echo-3"] {
            let name = assign_unique("echo", &taken);
            assert_eq!(name, expected);
            taken.insert(name);
        }
        taken.insert("echo-5".into());
        assert_eq!(assign_unique("echo", &taken), "echo-4");
        assert_eq!(assign_unique("other", &taken), "other");
    }
}
