//! Folder names for AppImages: stable, unique, never a reserved name.

use std::collections::HashSet;

/// Names at the top of the tree that appimagefs itself owns.
pub const RESERVED: &[&[u8]] = &[b"bin", b"share"];

const SUFFIX: &[u8] = b".appimage";

/// The folder name an AppImage file name asks for: the file name without a
/// case-insensitive `.AppImage` suffix (unless that would leave nothing).
pub fn preferred_name(file_name: &[u8]) -> Vec<u8> {
    let n = file_name.len();
    if n > SUFFIX.len() && file_name[n - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX) {
        file_name[..n - SUFFIX.len()].to_vec()
    } else {
        file_name.to_vec()
    }
}

/// Picks a unique folder name for `file_name` given the names already
/// taken. Rule: the preferred name; if taken or reserved, the full file
/// name; if that is taken too, the preferred name followed by `~2`, `~3`,
/// and so on. Assigning in a fixed order (sorted file names at start-up,
/// arrival order afterwards) makes the result stable.
pub fn assign(file_name: &[u8], taken: &HashSet<Vec<u8>>) -> Vec<u8> {
    assign_with(file_name, |n| taken.contains(n))
}

/// [`assign`] with the names taken told by `is_taken`, so a caller holding
/// its names in another collection need not copy them (once per AppImage,
/// that was quadratic in the number of AppImages).
pub fn assign_with(file_name: &[u8], is_taken: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let free = |n: &[u8]| !is_taken(n) && !RESERVED.contains(&n);
    let preferred = preferred_name(file_name);
    if free(&preferred) {
        return preferred;
    }
    if free(file_name) {
        return file_name.to_vec();
    }
    (2u64..)
        .map(|i| {
            let mut n = preferred.clone();
            n.extend_from_slice(format!("~{i}").as_bytes());
            n
        })
        .find(|n| free(n))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign_all(files: &[&str]) -> Vec<String> {
        let mut taken = HashSet::new();
        files
            .iter()
            .map(|f| {
                let n = assign(f.as_bytes(), &taken);
                taken.insert(n.clone());
                String::from_utf8(n).unwrap()
            })
            .collect()
    }

    #[test]
    fn strips_suffix_case_insensitively() {
        assert_eq!(preferred_name(b"Echo-x86_64.AppImage"), b"Echo-x86_64");
        assert_eq!(preferred_name(b"tool.APPIMAGE"), b"tool");
        assert_eq!(preferred_name(b"appimagetool"), b"appimagetool");
        assert_eq!(preferred_name(b".AppImage"), b".AppImage");
    }

    #[test]
    fn collisions_get_distinct_names() {
        assert_eq!(
            assign_all(&["Foo", "Foo.AppImage", "Foo.appimage"]),
            ["Foo", "Foo.AppImage", "Foo.appimage"]
        );
        assert_eq!(
            assign_all(&["Foo.AppImage", "Foo.appimage"]),
            ["Foo", "Foo.appimage"]
        );
        assert_eq!(assign_all(&["a", "a", "a"]), ["a", "a~2", "a~3"]);
    }

    #[test]
    fn reserved_names_are_avoided() {
        assert_eq!(
            assign_all(&["bin.AppImage", "share", "bin"]),
            ["bin.AppImage", "share~2", "bin~2"]
        );
    }
}
