//! An app's icons, found inside its AppDir and renamed for the shared
//! `<mountpoint>/share/icons` tree, so desktop environments find them under
//! the per-app name the rewritten entry's `Icon=` uses.
//!
//! Where icons are looked for, for `Icon=<name>` (a trailing `.png`,
//! `.svg`, `.svgz` or `.xpm` is dropped from the name first):
//!
//! 1. `usr/share/icons/hicolor/<size>/apps/<name>.<ext>` for every size
//!    folder (`NxN`, `NxN@S`, `scalable`, `symbolic`), plus the
//!    `<name>-symbolic.<ext>` variant; each keeps its size folder.
//! 2. `usr/share/pixmaps/<name>.<ext>`, then `<name>.<ext>` at the root;
//!    these have no size folder, so the size is read from the file (below).
//!    Each is added only if its size folder has no icon from step 1.
//! 3. Only when nothing was found: `.DirIcon`, sized the same way.
//!
//! Extensions are tried in the order `png`, `svg`, `svgz`, `xpm` (the icon
//! theme specification's preference); per size folder the first found wins.
//! Symlinks are followed inside the image only; empty files are skipped.
//!
//! Sizing a file without a size folder, from its first bytes: a PNG's
//! `IHDR` width and height, an XPM's header line; the larger side is mapped
//! to the nearest size folder the system's `hicolor/index.theme` lists
//! ([`STANDARD_SIZES`], ties to the larger), because desktops only search
//! folders listed there. SVG (and gzip, taken as SVGZ) goes to `scalable`.
//! A PNG or XPM whose size cannot be read goes to `256x256`
//! ([`UNKNOWN_SIZE`]): the size AppImage tools ask a `.DirIcon` to have,
//! and a large folder makes desktops scale down rather than up. A file whose
//! bytes are none of these formats is skipped; the format read from the
//! bytes, not the file name, decides the extension of the output name.

use super::paths;
use crate::tree::{ImageTree, Kind, NodeId};

/// Size folders every system `hicolor/index.theme` lists.
pub const STANDARD_SIZES: &[u32] = &[16, 22, 24, 32, 36, 48, 64, 72, 96, 128, 192, 256, 512];

/// Size folder for a raster icon whose size cannot be read.
pub const UNKNOWN_SIZE: &str = "256x256";

/// Extensions looked for, in order of preference.
pub const EXTENSIONS: &[&str] = &["png", "svg", "svgz", "xpm"];

/// Most size folders under `hicolor` considered.
pub const MAX_SIZE_DIRS: usize = 128;

/// Bytes read from a file to tell its format and size.
const SNIFF_BYTES: usize = 4096;

/// One icon of the app, before it gets its final name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IconSource {
    /// Folder under `share/icons/`, e.g. `hicolor/48x48/apps`.
    pub dir: String,
    /// What follows the icon name in the output file name: `.png`, `.svg`,
    /// `.svgz`, `.xpm`, or `-symbolic.svg` etc. for symbolic variants.
    pub suffix: String,
    /// Symlink-free path of the file inside the AppDir (no leading `/`).
    pub path: Vec<u8>,
    /// The file's node in the image.
    pub node: NodeId,
}

impl IconSource {
    /// The path under `share/icons/` for the icon named `icon_name`.
    pub fn output_path(&self, icon_name: &str) -> String {
        format!("{}/{}{}", self.dir, icon_name, self.suffix)
    }
}

/// The icon files for an app whose entry says `Icon=<icon>` (`None` or an
/// unusable value: only `.DirIcon` is looked at), sorted by output folder
/// and suffix. Unreadable candidates are skipped, never an error.
pub fn find_icons(tree: &dyn ImageTree, icon: Option<&str>) -> Vec<IconSource> {
    let mut found: Vec<IconSource> = Vec::new();
    if let Some(name) = icon.and_then(icon_base_name) {
        hicolor(tree, name, &mut found);
        for dir in ["usr/share/pixmaps/", ""] {
            for ext in EXTENSIONS {
                let path = format!("{dir}{name}.{ext}");
                if let Some(icon) = unsized_icon(tree, path.as_bytes()) {
                    if !found
                        .iter()
                        .any(|f| f.dir == icon.dir && !f.suffix.contains("-symbolic"))
                    {
                        found.push(icon);
                    }
                }
            }
        }
    }
    if found.is_empty() {
        found.extend(unsized_icon(tree, b".DirIcon"));
    }
    found.sort_by(|a, b| (&a.dir, &a.suffix).cmp(&(&b.dir, &b.suffix)));
    found
}

/// The icon name to look for, or `None` when `Icon=` is a path or unusable
/// (an absolute path names a file of the host system, not of the image).
fn icon_base_name(icon: &str) -> Option<&str> {
    let icon = icon.trim();
    let name = EXTENSIONS
        .iter()
        .find_map(|ext| icon.strip_suffix(ext).and_then(|s| s.strip_suffix('.')))
        .unwrap_or(icon);
    let usable = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    usable.then_some(name)
}

fn hicolor(tree: &dyn ImageTree, name: &str, found: &mut Vec<IconSource>) {
    let Ok(Some(base)) = paths::resolve(tree, b"usr/share/icons/hicolor") else {
        return;
    };
    if base.attr.kind != Kind::Dir {
        return;
    }
    let Ok(listing) = tree.read_dir(base.node) else {
        return;
    };
    let sizes = listing
        .iter()
        .filter_map(|e| std::str::from_utf8(&e.name).ok())
        .filter(|s| is_size_dir(s))
        .take(MAX_SIZE_DIRS);
    for size in sizes {
        for variant in ["", "-symbolic"] {
            for ext in EXTENSIONS {
                let path = format!("usr/share/icons/hicolor/{size}/apps/{name}{variant}.{ext}");
                if let Some(file) = nonempty_file(tree, path.as_bytes()) {
                    found.push(IconSource {
                        dir: format!("hicolor/{size}/apps"),
                        suffix: format!("{variant}.{ext}"),
                        path: file.path,
                        node: file.node,
                    });
                    break;
                }
            }
        }
    }
}

/// `scalable`, `symbolic`, `NxN` or `NxN@S` with small decimal numbers.
fn is_size_dir(name: &str) -> bool {
    if name == "scalable" || name == "symbolic" {
        return true;
    }
    let number = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    let (dims, scale) = match name.split_once('@') {
        Some((dims, scale)) => (dims, Some(scale)),
        None => (name, None),
    };
    matches!(dims.split_once('x'), Some((w, h)) if number(w) && number(h))
        && scale.is_none_or(number)
}

fn nonempty_file(tree: &dyn ImageTree, path: &[u8]) -> Option<paths::Resolved> {
    paths::resolve_file(tree, path)
        .ok()
        .flatten()
        .filter(|r| r.attr.size > 0)
}

/// An icon file without a size folder: sized and typed from its bytes.
fn unsized_icon(tree: &dyn ImageTree, path: &[u8]) -> Option<IconSource> {
    let file = nonempty_file(tree, path)?;
    let head = paths::read_head(tree, file.node, SNIFF_BYTES).ok()?;
    let (ext, size) = sniff(&head)?;
    let dir = match size {
        Some(side) => {
            let standard = nearest_standard_size(side);
            format!("hicolor/{standard}x{standard}/apps")
        }
        None if ext == "svg" || ext == "svgz" => "hicolor/scalable/apps".to_string(),
        None => format!("hicolor/{UNKNOWN_SIZE}/apps"),
    };
    Some(IconSource {
        dir,
        suffix: format!(".{ext}"),
        path: file.path,
        node: file.node,
    })
}

/// The format of an icon file from its first bytes, and for raster formats
/// the larger side in pixels when readable.
pub fn sniff(head: &[u8]) -> Option<(&'static str, Option<u32>)> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        let side = match (head.get(12..16), head.get(16..20), head.get(20..24)) {
            (Some(b"IHDR"), Some(w), Some(h)) => {
                let w = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                let h = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                (w > 0 && h > 0 && w <= 65_536 && h <= 65_536).then(|| w.max(h))
            }
            _ => None,
        };
        return Some(("png", side));
    }
    if head.starts_with(b"\x1f\x8b") {
        return Some(("svgz", None));
    }
    if head.starts_with(b"/* XPM */") {
        return Some(("xpm", xpm_side(head)));
    }
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('<') && text.contains("<svg") {
        return Some(("svg", None));
    }
    None
}

/// The larger of width and height from an XPM's values string
/// (`"<width> <height> <colors> <chars per pixel>"`, the first string).
fn xpm_side(head: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(head).ok().or_else(|| {
        let valid = std::str::from_utf8(head).err()?.valid_up_to();
        std::str::from_utf8(&head[..valid]).ok()
    })?;
    let after_brace = &text[text.find('{')?..];
    let start = after_brace.find('"')? + 1;
    let values = &after_brace[start..];
    let values = &values[..values.find('"')?];
    let mut numbers = values.split_whitespace().map(|n| n.parse::<u32>().ok());
    let (w, h) = (numbers.next()??, numbers.next()??);
    (w > 0 && h > 0 && w <= 65_536 && h <= 65_536).then(|| w.max(h))
}

/// The entry of [`STANDARD_SIZES`] nearest to `side` (ties to the larger).
pub fn nearest_standard_size(side: u32) -> u32 {
    let mut best = STANDARD_SIZES[0];
    for &size in STANDARD_SIZES {
        if size.abs_diff(side) <= best.abs_diff(side) {
            best = size;
        }
    }
    best
}
