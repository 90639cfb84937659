//! Helpers shared by the unit tests: temporary folders, and the test images
//! (SquashFS, ISO 9660, AppImages of both types, hostile and broken files)
//! built at test time with `mksquashfs`, `xorriso` and bytes written here,
//! so the tests need nothing beside the repository.
//!
//! Every image is built once per test process and kept in one folder
//! ([`images_dir`]); the builders return its path. Tests that change an
//! image copy it first.

pub mod apps;
pub mod iso;
pub mod sqfs;
pub mod tree;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The folder holding this test process's built images. Folders left by
/// earlier test processes that have ended are removed when it is made.
pub fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let prefix = "appimagefs-test-images-";
        for e in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !Path::new("/proc").join(pid).exists() {
                    drop(TempDir(e.path()));
                }
            }
        }
        let dir = tmp.join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The image `name` in [`images_dir`], made by `build` (given the path to
/// write) the first time any test asks for it.
pub fn cached(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    static ONCE: OnceLock<Mutex<HashMap<String, Arc<OnceLock<PathBuf>>>>> = OnceLock::new();
    let slot = ONCE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let path = images_dir().join(name);
        let partial = images_dir().join(format!(".{name}.partial"));
        build(&partial);
        fs::rename(&partial, &path).unwrap();
        path
    })
    .clone()
}

/// Runs `cmd` and panics with its error output unless it succeeds.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (see scripts/setup.sh for the tools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic bytes that compress like text: words from a small list
/// picked by a xorshift generator seeded with `seed`.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"lorem ",
        b"ipsum ",
        b"dolor ",
        b"sit ",
        b"amet\n",
        b"appimage ",
        b"squash ",
        b"fs ",
        b"0x7f ",
        b"ELF ",
        b"block ",
        b"cache ",
    ];
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(WORDS[(state % WORDS.len() as u64) as usize]);
    }
    out.truncate(len);
    out
}

/// Every test image with its file name, in name order: SquashFS images in
/// every compressor, AppImages of both types and runtimes, ISO 9660 images
/// and the hostile and broken files. What the hardening smoke run mutates.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut paths = vec![
        sqfs::big_dir(),
        sqfs::path_traversal(),
        sqfs::folder_symlink(None),
        apps::echo(),
        apps::echo_versioned(),
        apps::echo_no_integrate(),
        apps::echo_no_display(),
        apps::echo_elf32(),
        apps::broken_desktop(),
        apps::daemon(),
        apps::no_type(),
        apps::scribble(),
        apps::hello(),
        apps::tool(),
        apps::extract(),
        apps::extract_no_magic(),
        apps::assistant(),
        apps::elf_only(),
    ];
    for comp in ["gzip", "xz", "lz4", "lzo", "zstd"] {
        paths.push(sqfs::edge_tree(comp));
    }
    for comp in ["gzip", "xz", "lzma", "lzo", "lz4", "zstd"] {
        paths.push(sqfs::folder_symlink(Some(comp)));
    }
    for comp in ["gzip", "xz", "zstd"] {
        paths.push(apps::hello_world(comp));
    }
    paths.extend(iso::all());
    let mut out: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(p).unwrap())
        })
        .collect();
    out.sort();
    out
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
#[path = "../../tests/common/runtime_stub.rs"]
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
