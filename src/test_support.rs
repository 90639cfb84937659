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

/// The stand-in AppImage runtime that the integration tests use too.
#[path = "../tests/common/runtime_stub.rs"]
pub mod runtime_stub;

#[cfg(test)]
mod tests {
    use super::runtime_stub::{type1_system_area, StubRuntime};
    use crate::detect::elf;

    fn parse(bytes: &[u8]) -> elf::Elf {
        let len = bytes.len() as u64;
        let mut read_at = |off: u64, n: usize| -> crate::error::Result<Vec<u8>> {
            Ok(bytes[off as usize..off as usize + n].to_vec())
        };
        elf::parse(&bytes[..64], len, &mut read_at).unwrap()
    }

    #[test]
    fn the_stub_runtime_parses_as_an_elf_that_ends_at_its_last_byte() {
        for rt in [StubRuntime::type2(), StubRuntime::type2_elf32()] {
            let bytes = rt.bytes();
            let e = parse(&bytes);
            assert_eq!(e.bits, rt.bits);
            assert_eq!(e.machine, rt.machine);
            assert_eq!(e.end, bytes.len() as u64);
            assert_eq!(e.section(".upd_info").unwrap().size, 1024);
            assert_eq!(e.section(".sha256_sig").unwrap().size, 1024);
            assert_eq!(&bytes[8..11], b"AI\x02");
        }
        let area = type1_system_area();
        assert_eq!(area.len(), 32768);
        assert_eq!(&area[8..11], b"AI\x01");
        assert!(parse(&area).end < 32768);
    }
}
