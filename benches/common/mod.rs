//! Helpers shared by the benchmarks: a temporary folder removed on drop,
//! building SquashFS images with `mksquashfs`, wrapping them as type 2
//! AppImages with the tests' stand-in runtime, opening images, and a
//! small deterministic random generator (no extra dependencies).
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use appimagefs::backing::Backing;
use appimagefs::cache::BlockCache;
use appimagefs::squashfs::superblock::{Superblock, SUPERBLOCK_SIZE};
use appimagefs::tree::ImageTree;
use criterion::Criterion;

/// The tests' stand-in AppImage runtime (an ELF written byte by byte):
/// appimagefs only reads a runtime, so any valid one measures the same.
#[path = "../../tests/common/runtime_stub.rs"]
mod runtime_stub;

/// Criterion settings for every group: few samples and short measurement
/// so the whole `cargo bench` stays within a few minutes.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// A temporary folder, removed (with everything in it) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/appimagefs-bench-<tag>-<pid>`, emptying a stale one.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("appimagefs-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mksquashfs SRC OUT -comp COMP -b BLOCK` (all files owned by root, so
/// the image does not depend on who runs the benchmark).
pub fn mksquashfs(src: &Path, out: &Path, comp: &str, block: &str) {
    let status = Command::new("mksquashfs")
        .arg(src)
        .arg(out)
        .args([
            "-comp",
            comp,
            "-b",
            block,
            "-noappend",
            "-no-progress",
            "-quiet",
            "-all-root",
        ])
        .status()
        .expect("run mksquashfs (install squashfs-tools)");
    assert!(status.success(), "mksquashfs {} failed", src.display());
}

/// Writes a type 2 AppImage: the stand-in runtime followed by `sqfs`.
pub fn wrap_appimage(sqfs: &Path, out: &Path) {
    let mut data = runtime_stub::StubRuntime::type2().bytes();
    data.extend_from_slice(&std::fs::read(sqfs).expect("read squashfs"));
    std::fs::write(out, data).expect("write AppImage");
}

/// Opens a bare SquashFS file (superblock at offset 0) with a fresh
/// handle on the shared `cache`.
pub fn open_squashfs(path: &Path, cache: Arc<BlockCache>) -> Arc<dyn ImageTree> {
    let file = File::open(path).expect("open image");
    let len = file.metadata().expect("stat image").len();
    let mut sb = vec![0u8; SUPERBLOCK_SIZE];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut sb, 0).expect("read superblock");
    let sb = Superblock::parse(&sb, len).expect("parse superblock");
    let backing = Backing::new(Arc::new(file), 0, sb.bytes_used);
    Arc::new(appimagefs::squashfs::open(backing, sb, cache).expect("open squashfs"))
}

/// Finds `path` (slash-separated) from the root of `tree`.
pub fn resolve(tree: &dyn ImageTree, path: &str) -> u64 {
    let mut node = tree.root();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        node = tree
            .lookup(node, part.as_bytes())
            .expect("lookup")
            .unwrap_or_else(|| panic!("{path}: {part} is missing"));
    }
    node
}

/// xorshift64*: deterministic, dependency-free pseudo-random numbers.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// `len` bytes that xz, zstd and gzip all compress to 40-45% of their
/// size, roughly like program files: half of it repeats of recent data
/// (within 16 KiB, so gzip's window sees them too), a quarter random bytes,
/// a quarter text-like symbols from a 16-letter alphabet.
pub fn semi_compressible(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8; 16] = b"etaoinshrdlucmfw";
    const WINDOW: usize = 16 << 10;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 512);
    while out.len() < len {
        let n = 64 + rng.below(449) as usize;
        let kind = rng.below(4);
        if kind < 2 && out.len() > WINDOW {
            let back = n + rng.below((WINDOW - n) as u64) as usize;
            let from = out.len() - back;
            out.extend_from_within(from..from + n);
        } else if kind == 2 {
            for _ in 0..n.div_ceil(8) {
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
        } else {
            for _ in 0..n.div_ceil(16) {
                let mut bits = rng.next_u64();
                for _ in 0..16 {
                    out.push(ALPHABET[(bits & 15) as usize]);
                    bits >>= 4;
                }
            }
        }
    }
    out.truncate(len);
    out
}

/// Points standard error at /dev/null until dropped (the library logs
/// one line per scanned AppImage there).
pub struct SilenceStderr(i32);

impl SilenceStderr {
    /// Starts silencing.
    pub fn new() -> SilenceStderr {
        // SAFETY: dup/open/dup2 on descriptors this process owns.
        unsafe {
            let saved = libc::dup(2);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 2);
            libc::close(null);
            SilenceStderr(saved)
        }
    }
}

impl Drop for SilenceStderr {
    fn drop(&mut self) {
        // SAFETY: restores the descriptor saved by `new`.
        unsafe {
            libc::dup2(self.0, 2);
            libc::close(self.0);
        }
    }
}
