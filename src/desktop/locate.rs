//! Finding an app's desktop entry: the `*.desktop` file at the AppDir root
//! (the AppImage specification's place for it), often a symlink into
//! `usr/share/applications`.

use super::entry::MAX_BYTES;
use super::paths;
use crate::tree::{ImageTree, Kind};

/// Most `*.desktop` names considered at the root; an AppDir has one.
pub const MAX_CANDIDATES: usize = 64;

/// The chosen desktop file: its name at the AppDir root and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesktopFile {
    /// File name at the AppDir root, e.g. `leafpad.desktop`.
    pub name: Vec<u8>,
    /// Its content (at most [`MAX_BYTES`]).
    pub bytes: Vec<u8>,
    /// Why it was chosen over the others.
    pub choice: Choice,
    /// The other `*.desktop` names at the root, passed over, sorted.
    pub others: Vec<Vec<u8>>,
}

/// Why a desktop file was chosen, so `inspect` can say why the others
/// were not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// It is the only one.
    Only,
    /// Its stem equals the folder name.
    SameAsFolder,
    /// The folder name starts with its stem, the longest such stem.
    FolderStartsWith,
    /// None matches the folder name: the first by name.
    FirstByName,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Choice::Only => "the only one",
            Choice::SameAsFolder => "its name matches the folder name",
            Choice::FolderStartsWith => "the folder name starts with its name",
            Choice::FirstByName => "none matches the folder name: the first by name",
        })
    }
}

/// Finds and reads the app's desktop file. `Ok(None)`: there is none.
/// `Err`: the chosen one cannot be used (dangling link, too large, read
/// error), with the reason.
///
/// With several, the preferred one matches the AppImage's folder name:
/// first a stem equal to the folder name, then the longest stem the folder
/// name starts with (`leafpad` for `Leafpad-0.8.18-x86_64`), comparing only
/// letters and digits, case-insensitively; otherwise the first by name.
pub fn find_desktop_file(
    tree: &dyn ImageTree,
    folder_name: &[u8],
) -> Result<Option<DesktopFile>, String> {
    let listing = tree
        .read_dir(tree.root())
        .map_err(|e| format!("cannot list the AppDir root: {e}"))?;
    let mut candidates: Vec<&[u8]> = listing
        .iter()
        .filter(|e| matches!(e.kind, Kind::File | Kind::Symlink))
        .map(|e| e.name.as_slice())
        .filter(|n| n.len() > b".desktop".len() && n.ends_with(b".desktop"))
        .take(MAX_CANDIDATES)
        .collect();
    let folder = normalize(folder_name);
    candidates.sort_by(|a, b| {
        rank(a, &folder)
            .cmp(&rank(b, &folder))
            .then_with(|| a.cmp(b))
    });
    let Some(name) = candidates.first() else {
        return Ok(None);
    };
    let choice = match rank(name, &folder) {
        _ if candidates.len() == 1 => Choice::Only,
        (0, _) => Choice::SameAsFolder,
        (1, _) => Choice::FolderStartsWith,
        _ => Choice::FirstByName,
    };
    let mut others: Vec<Vec<u8>> = candidates[1..].iter().map(|n| n.to_vec()).collect();
    others.sort();
    let shown = String::from_utf8_lossy(name);
    let file = paths::resolve_file(tree, name)
        .map_err(|e| format!("{shown}: {e}"))?
        .ok_or_else(|| format!("{shown} is a dangling link or not a file inside the image"))?;
    let bytes =
        paths::read_capped(tree, file.node, MAX_BYTES).map_err(|e| format!("{shown}: {e}"))?;
    Ok(Some(DesktopFile {
        name: name.to_vec(),
        bytes,
        choice,
        others,
    }))
}

/// Lower-case letters and digits only.
fn normalize(name: &[u8]) -> Vec<u8> {
    name.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect()
}

/// Smaller is better: (0, _) exact match, (1, -len) folder starts with the
/// stem (longer stems first), (2, 0) no match.
fn rank(desktop_name: &[u8], folder: &[u8]) -> (u8, isize) {
    let stem = normalize(&desktop_name[..desktop_name.len().saturating_sub(b".desktop".len())]);
    if stem.is_empty() {
        (2, 0)
    } else if stem == folder {
        (0, 0)
    } else if folder.starts_with(&stem) {
        (1, -(stem.len() as isize))
    } else {
        (2, 0)
    }
}
