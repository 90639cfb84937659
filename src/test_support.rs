//! Helpers shared by the unit tests: fixture paths and temporary folders.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The path of a file in `../shared/fixtures` (relative to the crate).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(name)
}

/// The image-tree kind of a file type seen on the host (for comparing a
/// reader's tree with an extraction).
pub fn kind_of(ft: fs::FileType) -> crate::tree::Kind {
    use crate::tree::Kind;
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_block_device() {
        Kind::BlockDev
    } else if ft.is_char_device() {
        Kind::CharDev
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    }
}

/// A fresh, empty folder under the system temp dir, removed on drop (read-only
/// folders inside it included, as extracted trees may hold them).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `appimagefs-TAG-PID-N`.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("appimagefs-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        fn writable(p: &Path) {
            if let Ok(md) = fs::symlink_metadata(p) {
                if md.is_dir() {
                    let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                    for e in fs::read_dir(p).into_iter().flatten().flatten() {
                        writable(&e.path());
                    }
                }
            }
        }
        writable(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}
