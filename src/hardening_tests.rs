//! Library-level hardening: a deterministic fuzz smoke run that is part of
//! `cargo test --release`, corrupted images served next to intact ones by
//! the union, and regression tests for what the coverage-guided fuzzers in
//! `fuzz/` found.
//!
//! The smoke run mutates every image of the unit tests' corpus
//! ([`crate::test_support::corpus`]: SquashFS, ISO 9660, AppImages of both
//! types, hostile and broken files, all built at test time) a few
//! thousand times in all (seeded PRNG: bit flips, interesting values,
//! zeroed and 0xff-filled ranges, truncations with and without the size
//! fields patched to match, chunks spliced from the same or another image)
//! and feeds each result to detection, the SquashFS and ISO 9660 readers
//! (walking every node within bounds, reading every file, then the desktop
//! integration) and the desktop entry parser. Each input runs on its own
//! thread with a time limit and its own allocation count: no panic, no
//! hang, no input that makes the library allocate more than
//! [`MAX_ALLOC_PER_INPUT`] at once, and the process's resident memory stays
//! bounded. A failing input is written to the temp folder and named in the
//! failure message; `APPIMAGEFS_HARDENING_SCALE=10` runs ten times as many.
//!
//! The walk also checks the [`ImageTree`] contract the union relies on:
//! valid and unique names, node ids that fit the union's inode encoding,
//! `lookup` finding every listed name, reads returning exactly the file's
//! bytes (a short read means end of file to the kernel).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::backing::Backing;
use crate::cache::BlockCache;
use crate::desktop::{self, entry, exec, rewrite};
use crate::detect::{self, Payload};
use crate::tree::{Attr, ImageTree, Kind, NodeId, NODE_ID_BITS};
use crate::union::{inode::IMAGE_ROOT, Union};
use crate::{image, iso9660, squashfs};

// ------------------------------------------------------------ allocation

/// Most bytes one input may hold allocated at once on its worker thread.
/// The test images are at most 1.3 MB; the readers' own caches are bounded at
/// 24 MiB per image (parsed inodes and listings) plus reads of at most
/// 128 KiB here. A count taken from the image and believed (a vector
/// reserved for a hostile number of entries) shows up as gigabytes.
const MAX_ALLOC_PER_INPUT: usize = 192 << 20;

/// Counts the bytes allocated by threads that asked for it (the workers of
/// this module), so a single input's peak can be checked; every other
/// thread only pays for one thread-local read per allocation.
struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = TRACK.try_with(|t| {
        if t.get() {
            let _ = LIVE.try_with(|l| {
                let now = l.get() + delta;
                l.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// bookkeeping touches only const-initialized thread-locals without
// destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident memory of this process in KiB.
fn vm_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Most the resident memory may grow over one smoke test (other tests run
/// in the same process at the same time, so this is loose).
const MAX_RSS_GROWTH_KIB: u64 = 1 << 20;

// ------------------------------------------------------------ harness

/// Longest any single input may take (generous: two cores shared with the
/// rest of the test suite); the slowest test image walks in well under 1 s.
const INPUT_TIME_LIMIT: Duration = Duration::from_secs(20);

thread_local! {
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Makes every panic also set this thread's [`PANICKED`] flag (then runs
/// the previous hook), so a panic the library catches itself (the ISO 9660
/// reader opens an image under `catch_unwind`) still fails the input.
fn flag_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICKED.try_with(|p| p.set(true));
            previous(info);
        }));
    });
}

/// Runs `job` on a fresh thread that counts its allocations; fails the test
/// (after saving `input` for reproduction) on a panic (even one caught
/// inside the library), a time-out or an allocation peak above
/// [`MAX_ALLOC_PER_INPUT`].
fn guarded<R: Send + 'static>(
    what: &str,
    input: Arc<Vec<u8>>,
    job: impl FnOnce(&[u8]) -> R + Send + 'static,
) -> R {
    flag_panics();
    let (tx, rx) = mpsc::channel();
    let data = input.clone();
    let worker = std::thread::Builder::new()
        .name("hardening".into())
        .spawn(move || {
            TRACK.with(|t| t.set(true));
            let result = job(&data);
            let peak = PEAK.with(Cell::get);
            TRACK.with(|t| t.set(false));
            let caught = PANICKED.with(Cell::get);
            let _ = tx.send((result, peak, caught));
        })
        .expect("spawn");
    let failure = match rx.recv_timeout(INPUT_TIME_LIMIT) {
        Ok((_, _, true)) => "panicked (the panic was caught inside the library)".to_string(),
        Ok((result, peak, false)) if peak <= MAX_ALLOC_PER_INPUT as isize => {
            let _ = worker.join();
            return result;
        }
        Ok((_, peak, _)) => format!("allocated {} MiB at once", peak >> 20),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            format!("still running after {INPUT_TIME_LIMIT:?} (hang?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => "panicked".to_string(),
    };
    let saved = std::env::temp_dir().join(format!(
        "appimagefs-hardening-{}",
        what.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
            "_"
        )
    ));
    let _ = fs::write(&saved, &*input);
    panic!("{what}: {failure}; input saved as {}", saved.display());
}

/// `data` as an open file without a name (memfd), so nothing is left behind.
fn memfd(data: &[u8]) -> File {
    // SAFETY: a valid NUL-terminated name; the descriptor is owned by the
    // File from here on.
    let fd = unsafe { libc::memfd_create(c"appimagefs-hardening".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data).expect("write memfd");
    file
}

/// One small cache for everything here: blocks of many images churn through
/// it, as in a mount of many apps.
fn shared_cache() -> Arc<BlockCache> {
    static CACHE: OnceLock<Arc<BlockCache>> = OnceLock::new();
    CACHE
        .get_or_init(|| Arc::new(BlockCache::new(8 << 20)))
        .clone()
}

/// Iteration multiplier from `APPIMAGEFS_HARDENING_SCALE` (default 1).
fn scale(n: usize) -> usize {
    let factor: f64 = std::env::var("APPIMAGEFS_HARDENING_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64) * factor).ceil().max(1.0) as usize
}

// ------------------------------------------------------------ PRNG, mutation

/// SplitMix64: tiny, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Stable seed for a (test, image, iteration): a failure names all three.
fn seed_of(tag: &str, name: &str, i: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes().chain([0]).chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Values that tend to break size and offset arithmetic.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX / 2,
    u64::MAX - 1,
    u64::MAX,
];

/// Applies one to three random mutations to `data`. Most land in `hot`
/// (where the metadata is); `donor` supplies foreign chunks.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, hot: &std::ops::Range<usize>, donor: &[u8]) {
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if data.is_empty() {
            return;
        }
        let pos = if !hot.is_empty() && hot.end <= data.len() && rng.chance(80) {
            hot.start + rng.below(hot.len())
        } else {
            rng.below(data.len())
        };
        match rng.below(9) {
            0 | 1 => {
                for _ in 0..1 + rng.below(8) {
                    let p = if rng.chance(50) {
                        pos
                    } else {
                        (pos + rng.below(64)).min(data.len() - 1)
                    };
                    data[p] ^= 1 << rng.below(8);
                }
            }
            2 => data[pos] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)],
            3 => {
                let v = if rng.chance(20) {
                    data.len() as u64 - rng.below(2) as u64
                } else {
                    INTERESTING[rng.below(INTERESTING.len())]
                };
                let width = [2, 4, 8][rng.below(3)];
                let bytes = v.to_le_bytes();
                let end = (pos + width).min(data.len());
                data[pos..end].copy_from_slice(&bytes[..end - pos]);
            }
            4 => {
                let end = (pos + 1 + rng.below(4096)).min(data.len());
                data[pos..end].fill(0);
            }
            5 => {
                let end = (pos + 1 + rng.below(512)).min(data.len());
                data[pos..end].fill(0xff);
            }
            6 => data.truncate(pos.max(1)),
            7 => {
                let from_self = donor.is_empty() || rng.chance(50);
                let len = 1 + rng.below(2048);
                let chunk = {
                    let src: &[u8] = if from_self { data } else { donor };
                    let at = rng.below(src.len());
                    src[at..(at + len).min(src.len())].to_vec()
                };
                let end = (pos + chunk.len()).min(data.len());
                data[pos..end].copy_from_slice(&chunk[..end - pos]);
            }
            _ => {
                // Duplicate a chunk in place (shifts everything after it).
                let len = 1 + rng.below(256);
                let chunk = data[pos..(pos + len).min(data.len())].to_vec();
                data.splice(pos..pos, chunk);
            }
        }
    }
}

/// Pieces of desktop entry syntax that text mutations insert.
const DESKTOP_TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    "=",
    "[",
    "]",
    "[de]",
    "[Desktop Action a]\n",
    "[X-Foo]\n",
    "Exec=",
    "Name=",
    "Type=Application\n",
    "Type=Link\n",
    "URL=u\n",
    "Icon=",
    "TryExec=",
    "Hidden=true\n",
    "NoDisplay=true\n",
    "X-AppImage-Integrate=false\n",
    "X-AppImage-Version=",
    "DBusActivatable=",
    "Actions=a;\n",
    "%f",
    "%F",
    "%U",
    "%%",
    "%z",
    "\\",
    "\\s",
    "\\n",
    "\\;",
    "\\$",
    "\"",
    "'",
    "`",
    "$(id)",
    " ",
    "\t",
    "#",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "é",
    "\u{1F600}",
];

/// Text-aware mutations for desktop entries: tokens inserted or replacing
/// a few bytes, lines duplicated, dropped or swapped; sometimes a binary
/// mutation on top.
fn mutate_text(rng: &mut Rng, data: &mut Vec<u8>, donor: &[u8]) {
    for _ in 0..1 + rng.below(3) {
        let pos = rng.below(data.len() + 1);
        match rng.below(6) {
            0 | 1 => {
                let t = DESKTOP_TOKENS[rng.below(DESKTOP_TOKENS.len())].as_bytes();
                data.splice(pos..pos, t.iter().copied());
            }
            2 => {
                let t = DESKTOP_TOKENS[rng.below(DESKTOP_TOKENS.len())].as_bytes();
                let end = (pos + 1 + rng.below(4)).min(data.len());
                data.splice(pos..end, t.iter().copied());
            }
            _ => {
                let mut lines: Vec<Vec<u8>> =
                    data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                let (a, b) = (rng.below(n), rng.below(n));
                match rng.below(3) {
                    0 => {
                        let l = lines[a].clone();
                        lines.insert(b, l);
                    }
                    1 if n > 1 => {
                        lines.remove(a);
                    }
                    _ => lines.swap(a, b),
                }
                *data = lines.join(&b'\n');
            }
        }
    }
    if rng.chance(15) {
        let hot = 0..data.len();
        mutate(rng, data, &hot, donor);
    }
}

// ------------------------------------------------------------ the walk

/// Limits of one walk.
const WALK_NODES: usize = 1500;
const WALK_DEPTH: usize = 40;
const WALK_FILE_BYTES: u64 = 512 << 10;
const WALK_TOTAL_BYTES: u64 = 4 << 20;

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

fn check_id(node: NodeId, what: &str) {
    assert!(
        node >> NODE_ID_BITS == 0 && node != IMAGE_ROOT,
        "{what}: node id {node:#x} does not fit the union's inode encoding"
    );
}

/// Reads file `node` of `size` bytes in FUSE-sized pieces, checking lengths.
fn read_checked(tree: &dyn ImageTree, node: NodeId, size: u64, budget: &mut u64) -> Option<u64> {
    let want = size.min(WALK_FILE_BYTES).min(*budget);
    let mut at = 0u64;
    let mut sum = 0u64;
    while at < want {
        let n = (128 << 10).min(want - at) as u32;
        let data = tree.read(node, at, n).ok()?;
        assert_eq!(
            data.len() as u64,
            u64::from(n).min(size - at),
            "read of {n} at {at} of a {size}-byte file"
        );
        sum = data
            .iter()
            .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
        at += data.len() as u64;
    }
    *budget -= at;
    for offset in [size, u64::MAX] {
        if let Ok(data) = tree.read(node, offset, 4096) {
            assert!(data.is_empty(), "read at {offset}, past the end, gave data");
        }
    }
    Some(sum)
}

/// Walks `tree` within bounds, calling every operation on every node and
/// checking the contract (see the module docs). Returns nodes visited.
fn walk(tree: &dyn ImageTree) -> usize {
    let _ = tree.info();
    let root = tree.root();
    check_id(root, "root");
    let mut budget = WALK_TOTAL_BYTES;
    let mut seen = HashSet::new();
    let mut stack = vec![(root, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if seen.len() >= WALK_NODES || !seen.insert(node) {
            continue;
        }
        let attr = tree.attr(node);
        let _ = tree.xattrs(node);
        if let Ok(target) = tree.read_link(node) {
            assert!(
                target.len() <= 4096,
                "symlink target of {} bytes",
                target.len()
            );
            if let Ok(a) = &attr {
                assert_eq!(a.kind, Kind::Symlink, "read_link on a {:?}", a.kind);
            }
        }
        if let Ok(a) = &attr {
            if a.kind == Kind::File {
                read_checked(tree, node, a.size, &mut budget);
            } else {
                assert!(tree.read(node, 0, 16).is_err(), "read on a {:?}", a.kind);
            }
        }
        let Ok(list) = tree.read_dir(node) else {
            continue;
        };
        let mut names = HashSet::new();
        for e in list.iter() {
            assert!(valid_name(&e.name), "listed name {:?}", e.name);
            assert!(names.insert(e.name.as_slice()), "{:?} listed twice", e.name);
            check_id(e.node, "directory entry");
        }
        for e in list.iter().take(400) {
            match tree.lookup(node, &e.name) {
                Ok(Some(found)) => assert_eq!(found, e.node, "lookup of {:?}", e.name),
                Ok(None) => panic!("lookup does not find the listed {:?}", e.name),
                Err(_) => {}
            }
            if depth < WALK_DEPTH {
                stack.push((e.node, depth + 1));
            }
        }
        for bad in [&b""[..], b".", b"..", b"a/b"] {
            if let Ok(found) = tree.lookup(node, bad) {
                assert!(found.is_none(), "lookup of {bad:?} found something");
            }
        }
    }
    for bogus in [0, 1, IMAGE_ROOT, u64::MAX, root ^ 1] {
        let _ = tree.attr(bogus);
        let _ = tree.read_dir(bogus);
        let _ = tree.lookup(bogus, b"x");
        let _ = tree.read(bogus, 0, 16);
        let _ = tree.read_link(bogus);
    }
    seen.len()
}

/// Walks the tree, then builds its desktop integration as the union would.
fn walk_and_integrate(tree: &dyn ImageTree) -> usize {
    let n = walk(tree);
    let out = desktop::integrate(
        tree,
        b"Fuzz-1.0-x86_64",
        Path::new("/src/Fuzz-1.0-x86_64.AppImage"),
        Path::new("/opt/apps"),
    );
    if let Ok(menu) = &out.menu {
        assert!(
            entry::parse(&menu.contents).is_ok(),
            "menu entry does not parse"
        );
    }
    n
}

// ------------------------------------------------------------ inputs

/// A test image's payload in the form a reader takes, and where its metadata is.
struct Sample {
    name: String,
    /// Bare SquashFS image or ISO 9660 image.
    bytes: Vec<u8>,
    /// The region most mutations go to.
    hot: std::ops::Range<usize>,
}

/// The SquashFS images among the test images: bare ones, and the payloads of
/// type 2 AppImages cut out at their offset.
fn squashfs_samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for (name, bytes) in crate::test_support::corpus() {
        let payload = match detect::detect(&memfd(&bytes)) {
            Ok(found) => match found.payload {
                Payload::SquashFs { offset, .. } => bytes[offset as usize..].to_vec(),
                Payload::Iso9660 { .. } | Payload::Dwarfs { .. } => continue,
            },
            Err(_) if squashfs::superblock::Superblock::has_magic(&bytes) => bytes,
            Err(_) => continue,
        };
        let Ok(sb) = squashfs::superblock::Superblock::parse(&payload, payload.len() as u64) else {
            continue;
        };
        let hot = sb.inode_table as usize..sb.bytes_used as usize;
        out.push(Sample {
            name,
            bytes: payload,
            hot,
        });
    }
    out
}

/// The ISO 9660 images among the test images (type 1 AppImages included).
fn iso_samples() -> Vec<Sample> {
    crate::test_support::corpus()
        .into_iter()
        .filter(|(_, b)| b.len() > 32774 && &b[32769..32774] == b"CD001")
        .map(|(name, bytes)| {
            // Descriptors, path tables and directories sit right after the
            // system area in every test image.
            let hot = 16 * 2048..bytes.len().min(16 * 2048 + 96 * 1024);
            Sample { name, bytes, hot }
        })
        .collect()
}

/// Opens a (possibly corrupted) bare SquashFS image and walks it.
fn run_squashfs(data: &[u8]) -> usize {
    use squashfs::superblock::{Superblock, SUPERBLOCK_SIZE};
    if data.len() < SUPERBLOCK_SIZE {
        return 0;
    }
    let Ok(sb) = Superblock::parse(&data[..SUPERBLOCK_SIZE], data.len() as u64) else {
        return 0;
    };
    let backing = Backing::new(Arc::new(memfd(data)), 0, sb.bytes_used);
    match squashfs::open(backing, sb, shared_cache()) {
        Ok(img) => walk_and_integrate(&img),
        Err(_) => 0,
    }
}

/// Opens a (possibly corrupted) ISO 9660 image and walks it.
fn run_iso(data: &[u8]) -> usize {
    let backing = Backing::new(Arc::new(memfd(data)), 0, data.len() as u64);
    match iso9660::open(backing, shared_cache()) {
        Ok(img) => walk_and_integrate(&img),
        Err(_) => 0,
    }
}

/// Detects a (possibly corrupted) AppImage and, if accepted, checks that the
/// payload lies inside the file and opens and walks it.
fn run_appimage(data: &[u8]) -> usize {
    let file = Arc::new(memfd(data));
    let Ok(found) = detect::detect(&file) else {
        return 0;
    };
    let len = data.len() as u64;
    assert!(found.elf.end <= len, "ELF end past the file");
    match &found.payload {
        Payload::SquashFs { offset, superblock } => assert!(
            offset
                .checked_add(superblock.bytes_used)
                .is_some_and(|e| e <= len),
            "payload past the end of the file"
        ),
        Payload::Iso9660 { len: l } => assert_eq!(*l, len),
        Payload::Dwarfs { offset, len: l, .. } => assert_eq!(offset + l, len),
    }
    match image::open_tree(&file, &found, shared_cache()) {
        Ok(tree) => walk_and_integrate(tree.as_ref()),
        Err(_) => 0,
    }
}

/// Test images that are refused on purpose: a fragment of descriptors without
/// a tree, and a Rock Ridge continuation loop.
const EXPECTED_UNREADABLE: &[&str] = &["volrecords.iso", "rockridge_ce_loop.iso"];

/// Runs `per_sample` mutations of each sample through `run`, each guarded.
/// `fix_sizes` patches the image's own size field after a truncation, so
/// truncated images get past the first check.
fn smoke(
    tag: &str,
    samples: &[Sample],
    per_sample: usize,
    intact_must_open: bool,
    text: bool,
    fix_sizes: fn(&mut [u8], &mut Rng),
    run: fn(&[u8]) -> usize,
) {
    let rss_before = vm_rss_kib();
    let started = Instant::now();
    let mut opened = 0usize;
    let mut total = 0usize;
    for (k, sample) in samples.iter().enumerate() {
        let donor = &samples[(k + 1) % samples.len()].bytes;
        // The intact sample first: it must open.
        let data = Arc::new(sample.bytes.clone());
        let nodes = guarded(&format!("{tag}-{}-intact", sample.name), data, run);
        assert!(
            nodes > 0 || !intact_must_open || EXPECTED_UNREADABLE.contains(&sample.name.as_str()),
            "{tag}: the intact {} does not open",
            sample.name
        );
        for i in 0..per_sample {
            let mut rng = Rng::new(seed_of(tag, &sample.name, i));
            let mut data = sample.bytes.clone();
            if text {
                mutate_text(&mut rng, &mut data, donor);
            } else {
                mutate(&mut rng, &mut data, &sample.hot, donor);
            }
            fix_sizes(&mut data, &mut rng);
            let nodes = guarded(&format!("{tag}-{}-{i}", sample.name), Arc::new(data), run);
            total += 1;
            if nodes > 0 {
                opened += 1;
            }
        }
    }
    let growth = vm_rss_kib().saturating_sub(rss_before);
    eprintln!(
        "{tag}: {total} mutated inputs from {} samples, {opened} opened and walked, {:.1}s, \
         RSS growth {} MiB",
        samples.len(),
        started.elapsed().as_secs_f64(),
        growth >> 10
    );
    assert!(
        growth <= MAX_RSS_GROWTH_KIB,
        "{tag}: resident memory grew by {growth} KiB"
    );
    assert!(
        opened * 20 >= total,
        "{tag}: only {opened} of {total} mutated inputs opened; the mutations are too coarse"
    );
}

/// After a truncation, sometimes makes the superblock claim only what is left.
fn fix_squashfs_size(data: &mut [u8], rng: &mut Rng) {
    if data.len() >= 96 && rng.chance(50) {
        let used = u64::from_le_bytes(data[40..48].try_into().unwrap());
        let len = data.len() as u64;
        if used > len {
            data[40..48].copy_from_slice(&len.to_le_bytes());
        }
    }
}

/// After a truncation, sometimes makes the volume size match what is left.
fn fix_iso_size(data: &mut [u8], rng: &mut Rng) {
    let at = 16 * 2048 + 80;
    if data.len() >= at + 8 && rng.chance(50) {
        let blocks = (data.len() / 2048) as u32;
        data[at..at + 4].copy_from_slice(&blocks.to_le_bytes());
        data[at + 4..at + 8].copy_from_slice(&blocks.to_be_bytes());
    }
}

fn no_fix(_: &mut [u8], _: &mut Rng) {}

// ------------------------------------------------------------ smoke tests

#[test]
fn fuzz_smoke_squashfs() {
    let samples = squashfs_samples();
    assert!(samples.len() >= 15, "{} SquashFS samples", samples.len());
    smoke(
        "squashfs",
        &samples,
        scale(500),
        true,
        false,
        fix_squashfs_size,
        run_squashfs,
    );
}

#[test]
fn fuzz_smoke_iso9660() {
    let samples = iso_samples();
    assert!(samples.len() >= 10, "{} ISO samples", samples.len());
    smoke(
        "iso9660",
        &samples,
        scale(300),
        true,
        false,
        fix_iso_size,
        run_iso,
    );
}

#[test]
fn fuzz_smoke_detection_and_appimages() {
    // Whole files; mutations aimed at the ELF header and section headers
    // (first 64 bytes and the table at e_shoff) and the payload's start.
    let samples: Vec<Sample> = crate::test_support::corpus()
        .into_iter()
        .map(|(name, bytes)| {
            let hot = match detect::detect(&memfd(&bytes)) {
                Ok(found) => match found.payload {
                    Payload::SquashFs { offset, .. } => {
                        let start = (found.elf.end as usize).saturating_sub(4096);
                        start..(offset as usize + 96).min(bytes.len())
                    }
                    Payload::Iso9660 { .. } => 0..bytes.len().min(40 * 2048),
                    Payload::Dwarfs { offset, .. } => offset as usize..bytes.len(),
                },
                Err(_) => 0..bytes.len().min(4096),
            };
            Sample { name, bytes, hot }
        })
        .collect();
    let heads: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            name: format!("head-{}", s.name),
            bytes: s.bytes.clone(),
            hot: 0..s.bytes.len().min(64),
        })
        .collect();
    smoke(
        "appimage",
        &samples,
        scale(100),
        false,
        false,
        no_fix,
        run_appimage,
    );
    smoke(
        "elfheader",
        &heads,
        scale(100),
        false,
        false,
        no_fix,
        run_appimage,
    );
}

/// The desktop entries inside the test images, read through the readers, plus
/// a few written here.
fn desktop_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (
            "minimal".to_string(),
            b"[Desktop Entry]\nType=Application\nName=A\nExec=a %F\n".to_vec(),
        ),
        (
            "actions".to_string(),
            b"\xef\xbb\xbf# c\r\n[Desktop Entry]\r\nType=Application\r\nName=B\r\nName[de]=B\\s\r\n\
Exec=\"/x y/b\" --a=\\\\$HOME %U\r\nTryExec=b\r\nExec[fr]=c\r\nIcon=b.png\r\n\
DBusActivatable=true\r\nActions=n;\r\n\r\n[Desktop Action n]\r\nName=N\r\nExec='b' %%\r\n"
                .to_vec(),
        ),
    ];
    for (name, bytes) in crate::test_support::corpus() {
        let file = Arc::new(memfd(&bytes));
        let Ok(found) = detect::detect(&file) else {
            continue;
        };
        let Ok(tree) = image::open_tree(&file, &found, shared_cache()) else {
            continue;
        };
        if let Ok(Some(d)) = desktop::locate::find_desktop_file(tree.as_ref(), b"x") {
            out.push((name, d.bytes));
        }
    }
    out
}

/// Parses, checks that writing back and parsing again changes nothing, and
/// rewrites for the menu, checking that the rewritten Exec runs exactly the
/// launcher.
fn run_desktop(data: &[u8]) -> usize {
    const LAUNCHER: &str = "/opt/my apps/bin/it's \"$(x)\" `y` %f";
    let Ok(parsed) = entry::parse(data) else {
        return 0;
    };
    let again = entry::parse(&parsed.to_bytes()).expect("written back, it does not parse");
    assert_eq!(again, parsed, "write and re-parse changed the entry");
    let _ = rewrite::menu_exclusion(&parsed);
    let Ok(menu) = rewrite::rewrite(&parsed, LAUNCHER, Some("appimagefs-x"), "/s/x") else {
        return 1;
    };
    let out = entry::parse(&menu.to_bytes()).expect("rewritten entry does not parse");
    for group in &out.groups {
        if group.name != entry::MAIN_GROUP && !group.name.starts_with("Desktop Action ") {
            continue;
        }
        if let Some(cmd) = group.string("Exec").expect("rewritten Exec unescapes") {
            let (program, _) = exec::split_program(&cmd).expect("rewritten Exec splits");
            assert_eq!(program.replace("%%", "%"), LAUNCHER, "rewritten Exec");
        }
    }
    1
}

#[test]
fn fuzz_smoke_desktop_entries() {
    let seeds = desktop_seeds();
    assert!(seeds.len() >= 10, "{} desktop seeds", seeds.len());
    let samples: Vec<Sample> = seeds
        .into_iter()
        .map(|(name, bytes)| Sample {
            hot: 0..bytes.len(),
            name,
            bytes,
        })
        .collect();
    smoke(
        "desktop",
        &samples,
        scale(1500),
        false,
        true,
        no_fix,
        run_desktop,
    );
}

// ------------------------------------------------------------ the union

/// What one app folder looks like through the union: path → attributes and
/// a checksum of the data, link target or listing.
fn snapshot(u: &Union, ino: u64) -> BTreeMap<Vec<u8>, (Attr, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(ino, Vec::new(), 0usize)];
    while let Some((ino, path, depth)) = stack.pop() {
        if out.len() > 5000 || depth > 40 {
            break;
        }
        let Ok(attr) = u.getattr(ino) else {
            continue;
        };
        let sum = match attr.kind {
            Kind::File => {
                let mut sum = 0u64;
                let mut at = 0;
                while at < attr.size.min(2 << 20) {
                    match u.read(ino, at, 128 << 10) {
                        Ok(d) if !d.is_empty() => {
                            sum = d
                                .iter()
                                .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
                            at += d.len() as u64;
                        }
                        _ => break,
                    }
                }
                sum ^ at
            }
            Kind::Symlink => u
                .readlink(ino)
                .map(|t| {
                    t.iter()
                        .fold(7u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)))
                })
                .unwrap_or(1),
            Kind::Dir => {
                let mut sum = 0;
                if let Ok(list) = u.readdir(ino) {
                    for l in list.iter() {
                        sum ^= l
                            .name
                            .iter()
                            .fold(3u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
                        if let Ok(e) = u.lookup(ino, &l.name) {
                            let mut p = path.clone();
                            p.push(b'/');
                            p.extend_from_slice(&l.name);
                            stack.push((e.ino, p, depth + 1));
                        }
                    }
                }
                sum
            }
            _ => 0,
        };
        let xattrs = u.xattrs(ino).map(|x| x.len() as u64).unwrap_or(99);
        out.insert(path, (attr, sum ^ (xattrs << 56)));
    }
    out
}

/// Touches everything the union serves (app folders within bounds, the
/// synthesized `bin/` and `share/`), checking only that each answer is data
/// or an error.
fn touch_all(u: &Union) -> usize {
    let mut stack = vec![(1u64, 0usize)];
    let mut seen = HashSet::new();
    while let Some((ino, depth)) = stack.pop() {
        if seen.len() > 60_000 || !seen.insert(ino) {
            continue;
        }
        let attr = u.getattr(ino);
        let _ = u.xattrs(ino);
        let _ = u.readlink(ino);
        if let Ok(a) = attr {
            if a.kind == Kind::File {
                let _ = u.read(ino, 0, 128 << 10);
                let _ = u.read(ino, a.size.saturating_sub(10), 4096);
            }
        }
        if let Ok(list) = u.readdir(ino) {
            for l in list.iter().take(300) {
                if let Ok(e) = u.lookup(ino, &l.name) {
                    if depth < 30 {
                        stack.push((e.ino, depth + 1));
                    }
                }
            }
        }
    }
    seen.len()
}

/// A fresh folder under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("appimagefs-hardening-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The folders of the union's root, by name → inode.
fn app_folders(u: &Union) -> BTreeMap<Vec<u8>, u64> {
    u.readdir(1)
        .unwrap()
        .iter()
        .filter(|l| l.name != b"bin" && l.name != b"share")
        .map(|l| (l.name.clone(), l.ino))
        .collect()
}

#[test]
fn corrupted_copies_beside_intact_images_in_one_union() {
    let intact_dir = TempDir::new("intact");
    let mixed_dir = TempDir::new("mixed");
    let all = crate::test_support::corpus();
    let apps: Vec<&(String, Vec<u8>)> = all
        .iter()
        .filter(|(_, b)| detect::detect(&memfd(b)).is_ok())
        .collect();
    assert!(apps.len() >= 12, "{} detectable test images", apps.len());
    for (name, bytes) in &apps {
        fs::write(intact_dir.0.join(name), bytes).unwrap();
        fs::write(mixed_dir.0.join(name), bytes).unwrap();
    }
    // Corrupted copies, named so they sort after and never take an intact
    // image's folder name.
    let per_app = scale(12);
    let mut corrupted = 0;
    for (k, (name, bytes)) in apps.iter().enumerate() {
        let found = detect::detect(&memfd(bytes)).unwrap();
        let hot = match found.payload {
            Payload::SquashFs {
                offset,
                ref superblock,
            } => {
                (offset + superblock.inode_table) as usize
                    ..(offset + superblock.bytes_used) as usize
            }
            Payload::Iso9660 { .. } => 16 * 2048..bytes.len().min(16 * 2048 + 96 * 1024),
            Payload::Dwarfs { offset, .. } => offset as usize..bytes.len(),
        };
        let donor = &apps[(k + 1) % apps.len()].1;
        for i in 0..per_app {
            let mut rng = Rng::new(seed_of("union", name, i));
            let mut data = bytes.clone();
            mutate(&mut rng, &mut data, &hot, donor);
            fs::write(mixed_dir.0.join(format!("zz-corrupt-{i}-{name}")), &data).unwrap();
            corrupted += 1;
        }
    }
    // Plus a few hostile non-images and empty files.
    fs::write(mixed_dir.0.join("zz-empty.AppImage"), b"").unwrap();
    fs::write(
        mixed_dir.0.join("zz-elf-only.AppImage"),
        b"\x7fELF\x02\x01\x01",
    )
    .unwrap();

    let before = {
        let u = Union::new(
            &intact_dir.0,
            Path::new("/opt/apps"),
            Arc::new(BlockCache::new(64 << 20)),
        )
        .unwrap();
        app_folders(&u)
            .into_iter()
            .map(|(name, ino)| {
                let snap = snapshot(&u, ino);
                (name, snap)
            })
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(before.len(), apps.len());

    // The mixed folder, with a cache far smaller than the images, so blocks
    // of corrupted and intact images keep evicting each other.
    let mixed = mixed_dir.0.clone();
    let (touched, after, folders) = guarded("union-mixed", Arc::default(), move |_| {
        let u = Union::new(
            &mixed,
            Path::new("/opt/apps"),
            Arc::new(BlockCache::new(1 << 20)),
        )
        .unwrap();
        let folders = app_folders(&u).len();
        let touched = touch_all(&u);
        let after: BTreeMap<Vec<u8>, _> = app_folders(&u)
            .into_iter()
            .filter(|(name, _)| !name.starts_with(b"zz-"))
            .map(|(name, ino)| {
                let snap = snapshot(&u, ino);
                (name, snap)
            })
            .collect();
        // Everything a second time, now with warm (and churned) caches.
        touch_all(&u);
        (touched, after, folders)
    });
    eprintln!(
        "union: {} intact + {corrupted} corrupted files, {folders} app folders, {touched} inodes touched",
        apps.len()
    );
    assert!(
        folders > apps.len(),
        "no corrupted copy was detected as an AppImage"
    );
    assert_eq!(after.len(), before.len());
    for (name, snap) in &before {
        let other = &after[name];
        assert_eq!(
            snap.len(),
            other.len(),
            "{}: a different number of paths",
            String::from_utf8_lossy(name)
        );
        for (path, v) in snap {
            assert_eq!(
                Some(v),
                other.get(path),
                "{}{} differs next to corrupted copies",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(path)
            );
        }
    }
}

// ------------------------------------------------------------ regressions

/// An ELF whose `count` section headers all name themselves at offset 0 of
/// a 4 MiB string table without a NUL: each name used to be the whole
/// table, `count` × 4 MiB in all (65535 sections: 256 GiB).
fn elf_with_long_section_names(count: u16) -> Vec<u8> {
    let strtab_len: u64 = 4 << 20;
    let table_at: u64 = 64;
    let strtab_at = table_at + 64 * u64::from(count);
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little endian
    elf[6] = 1;
    elf[18] = 62; // x86_64
    elf[0x28..0x30].copy_from_slice(&table_at.to_le_bytes());
    elf[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3C..0x3E].copy_from_slice(&count.to_le_bytes());
    elf[0x3E..0x40].copy_from_slice(&0u16.to_le_bytes()); // shstrndx
    for i in 0..count {
        let mut sh = [0u8; 64];
        if i == 0 {
            sh[4..8].copy_from_slice(&3u32.to_le_bytes()); // SHT_STRTAB
            sh[0x18..0x20].copy_from_slice(&strtab_at.to_le_bytes());
            sh[0x20..0x28].copy_from_slice(&strtab_len.to_le_bytes());
        } else {
            sh[4..8].copy_from_slice(&1u32.to_le_bytes()); // SHT_PROGBITS, empty
        }
        elf.extend_from_slice(&sh);
    }
    elf.resize((strtab_at + strtab_len) as usize, b'A');
    elf
}

#[test]
fn elf_section_names_are_bounded() {
    // 100 sections: 400 MiB of names before the fix, caught by the
    // allocation count without endangering the machine.
    let elf = Arc::new(elf_with_long_section_names(100));
    guarded("elf-section-names", elf, |data| {
        let r = detect::detect(&memfd(data));
        assert!(r.is_err(), "nothing follows the ELF, so it is no AppImage");
    });
    // And the section names that matter still come through.
    let echo = fs::read(crate::test_support::apps::echo()).unwrap();
    let found = detect::detect(&memfd(&echo)).unwrap();
    assert!(found.elf.section(".upd_info").is_some());
}

/// Stores `data` as uncompressed SquashFS metadata blocks.
fn meta_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(8192) {
        out.extend_from_slice(&(chunk.len() as u16 | 0x8000).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A SquashFS image whose root directory has `pairs` extended attributes:
/// one `user.a` with a `value_len`-byte value, then `pairs - 1` out-of-line
/// references to that same value. The image is small; reading every pair's
/// value used to materialize `pairs × value_len` bytes (65536 × 64 KiB =
/// 4 GiB from a 1 MB image).
fn squashfs_with_shared_xattr_values(pairs: u32, value_len: u32) -> Vec<u8> {
    let mut img = vec![0u8; 96];
    // Inode table: the root, an extended directory (type 8) with xattr 0.
    let inode_table = img.len() as u64;
    let mut root = Vec::new();
    for v in [8u16, 0o40755, 0, 0] {
        root.extend_from_slice(&v.to_le_bytes());
    }
    root.extend_from_slice(&0u32.to_le_bytes()); // mtime
    root.extend_from_slice(&1u32.to_le_bytes()); // inode number
    root.extend_from_slice(&2u32.to_le_bytes()); // nlink
    root.extend_from_slice(&3u32.to_le_bytes()); // size: empty listing
    root.extend_from_slice(&0u32.to_le_bytes()); // start block
    root.extend_from_slice(&1u32.to_le_bytes()); // parent
    root.extend_from_slice(&0u16.to_le_bytes()); // index count
    root.extend_from_slice(&0u16.to_le_bytes()); // offset
    root.extend_from_slice(&0u32.to_le_bytes()); // xattr index
    img.extend(meta_blocks(&root));
    let dir_table = img.len() as u64;
    img.extend(meta_blocks(&[0; 4]));
    // Key/value area.
    let kv_start = img.len() as u64;
    let mut kv = Vec::new();
    kv.extend_from_slice(&0u16.to_le_bytes()); // user.
    kv.extend_from_slice(&1u16.to_le_bytes());
    kv.push(b'a');
    kv.extend_from_slice(&value_len.to_le_bytes()); // at offset 5
    kv.resize(kv.len() + value_len as usize, b'v');
    for _ in 1..pairs {
        kv.extend_from_slice(&0x100u16.to_le_bytes()); // user., out of line
        kv.extend_from_slice(&1u16.to_le_bytes());
        kv.push(b'b');
        kv.extend_from_slice(&8u32.to_le_bytes());
        kv.extend_from_slice(&5u64.to_le_bytes()); // block 0, offset 5
    }
    img.extend(meta_blocks(&kv));
    // Xattr id block, then the xattr table header and its index.
    let id_block = img.len() as u64;
    let mut id = Vec::new();
    id.extend_from_slice(&0u64.to_le_bytes());
    id.extend_from_slice(&pairs.to_le_bytes());
    id.extend_from_slice(&(kv.len() as u32).to_le_bytes());
    img.extend(meta_blocks(&id));
    let xattr_table = img.len() as u64;
    img.extend_from_slice(&kv_start.to_le_bytes());
    img.extend_from_slice(&1u32.to_le_bytes());
    img.extend_from_slice(&0u32.to_le_bytes());
    img.extend_from_slice(&id_block.to_le_bytes());
    // Id table: one id (0), then its index.
    let ids_block = img.len() as u64;
    img.extend(meta_blocks(&0u32.to_le_bytes()));
    let id_table = img.len() as u64;
    img.extend_from_slice(&ids_block.to_le_bytes());
    let bytes_used = img.len() as u64;
    // Superblock.
    let sb = &mut img[..96];
    sb[0..4].copy_from_slice(b"hsqs");
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[12..16].copy_from_slice(&131072u32.to_le_bytes());
    sb[20..22].copy_from_slice(&1u16.to_le_bytes()); // gzip
    sb[22..24].copy_from_slice(&17u16.to_le_bytes());
    sb[26..28].copy_from_slice(&1u16.to_le_bytes()); // one id
    sb[28..30].copy_from_slice(&4u16.to_le_bytes());
    sb[32..40].copy_from_slice(&0u64.to_le_bytes()); // root inode ref
    sb[40..48].copy_from_slice(&bytes_used.to_le_bytes());
    sb[48..56].copy_from_slice(&id_table.to_le_bytes());
    sb[56..64].copy_from_slice(&xattr_table.to_le_bytes());
    sb[64..72].copy_from_slice(&inode_table.to_le_bytes());
    sb[72..80].copy_from_slice(&dir_table.to_le_bytes());
    sb[80..88].copy_from_slice(&u64::MAX.to_le_bytes());
    sb[88..96].copy_from_slice(&u64::MAX.to_le_bytes());
    img
}

fn open_bare_squashfs(data: &[u8]) -> squashfs::SquashImage {
    let sb = squashfs::superblock::Superblock::parse(data, data.len() as u64).unwrap();
    let backing = Backing::new(Arc::new(memfd(data)), 0, sb.bytes_used);
    squashfs::open(backing, sb, Arc::new(BlockCache::new(16 << 20))).unwrap()
}

#[test]
fn squashfs_xattr_values_are_bounded_per_inode() {
    // The builder is right: a few pairs read back as stored.
    let small = squashfs_with_shared_xattr_values(3, 100);
    let img = open_bare_squashfs(&small);
    assert_eq!(img.attr(img.root()).unwrap().kind, Kind::Dir);
    let x = img.xattrs(img.root()).unwrap();
    assert_eq!(x.len(), 3);
    assert_eq!(x[0], (b"user.a".to_vec(), vec![b'v'; 100]));
    assert_eq!(x[2], (b"user.b".to_vec(), vec![b'v'; 100]));
    // 8192 references to one 64 KiB value: 512 MiB before the cap.
    let big = Arc::new(squashfs_with_shared_xattr_values(8192, 65536));
    assert!(big.len() < 300_000);
    guarded("squashfs-xattr-amplification", big, |data| {
        let img = open_bare_squashfs(data);
        let started = Instant::now();
        assert!(img.xattrs(img.root()).is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

/// Compresses `data` with `codec` (zlib, xz, zstd, or LZMA-alone as
/// squashfs-tools writes it).
fn compress(codec: crate::decompress::Codec, data: &[u8]) -> Vec<u8> {
    use crate::decompress::Codec;
    use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};
    use backhand::FilesystemCompressor;
    let id = match codec {
        Codec::Zlib => Compressor::Gzip,
        Codec::Xz => Compressor::Xz,
        Codec::Zstd => Compressor::Zstd,
        Codec::Lzma => {
            use liblzma::stream::{Action, LzmaOptions, Stream};
            let opts = LzmaOptions::new_preset(6).unwrap();
            let mut s = Stream::new_lzma_encoder(&opts).unwrap();
            let mut out = Vec::with_capacity(data.len() / 100 + 4096);
            loop {
                let consumed = s.total_in() as usize;
                let status = s.process_vec(&data[consumed..], &mut out, Action::Finish);
                match status.unwrap() {
                    liblzma::stream::Status::StreamEnd => return out,
                    _ => out.reserve(1 << 16),
                }
            }
        }
        other => panic!("no bomb for {other:?}"),
    };
    let fc = FilesystemCompressor::new(id, None).unwrap();
    DefaultCompressor.compress(data, fc, 1 << 20).unwrap()
}

#[test]
fn decompression_bombs_are_bounded() {
    use crate::decompress::{decompress, Codec};
    // 16 MiB of zeros: a few KiB compressed. Each codec must refuse it
    // against an 8 KiB (metadata) or 128 KiB (data) cap, quickly, without
    // holding more than a few MiB: xz grows its output buffer up to
    // backhand's 4 MiB limit before giving up, the others stop at the cap.
    let zeros = vec![0u8; 16 << 20];
    for codec in [Codec::Zlib, Codec::Xz, Codec::Zstd, Codec::Lzma] {
        let bomb = Arc::new(compress(codec, &zeros));
        assert!(bomb.len() < 64 << 10, "{codec:?}: {} bytes", bomb.len());
        let peak = guarded(&format!("bomb-{codec:?}"), bomb, move |b| {
            for cap in [8192, 128 << 10] {
                let started = Instant::now();
                assert!(decompress(codec, b, cap).is_err(), "{codec:?}");
                assert!(started.elapsed() < Duration::from_secs(2), "{codec:?}");
            }
            PEAK.with(Cell::get)
        });
        eprintln!("{codec:?} bomb refused, {} KiB held at most", peak >> 10);
        assert!(peak < 16 << 20, "{codec:?}: {} MiB at once", peak >> 20);
        // A stream that fits its cap still decodes.
        let small = compress(codec, &zeros[..8192]);
        assert_eq!(decompress(codec, &small, 8192).unwrap().len(), 8192);
        assert!(decompress(codec, &small, 8191).is_err());
    }
}

/// A SquashFS image whose inode table starts with `k` metadata blocks that
/// decompress to nothing (a zlib stream of no bytes), followed by the root
/// directory's inode. The root lists `k` subdirectories, entry `i` pointing
/// at empty block `i`, so its inode is found after crossing `k - i` empty
/// blocks: listing the root with attributes (`ls -l`) used to cost
/// `k²/2` block fetches (100,000 entries from a 4 MB image: hours of CPU,
/// every FUSE thread busy).
fn squashfs_with_empty_metadata_chain(k: u32) -> Vec<u8> {
    const EMPTY_ZLIB: [u8; 8] = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    let mut img = vec![0u8; 96];
    let inode_table = img.len() as u64;
    for _ in 0..k {
        img.extend_from_slice(&8u16.to_le_bytes()); // 8 bytes, compressed
        img.extend_from_slice(&EMPTY_ZLIB);
    }
    let root_block = u64::from(k) * 10;
    let mut listing = Vec::new();
    for i in 0..k {
        let name = format!("{i:06}");
        listing.extend_from_slice(&0u32.to_le_bytes()); // one entry
        listing.extend_from_slice(&(i * 10).to_le_bytes()); // inode block
        listing.extend_from_slice(&(i + 2).to_le_bytes());
        listing.extend_from_slice(&0u16.to_le_bytes()); // offset in block
        listing.extend_from_slice(&0u16.to_le_bytes());
        listing.extend_from_slice(&1u16.to_le_bytes()); // directory
        listing.extend_from_slice(&(name.len() as u16 - 1).to_le_bytes());
        listing.extend_from_slice(name.as_bytes());
    }
    let mut root = Vec::new();
    for v in [8u16, 0o40755, 0, 0] {
        root.extend_from_slice(&v.to_le_bytes());
    }
    root.extend_from_slice(&0u32.to_le_bytes()); // mtime
    root.extend_from_slice(&1u32.to_le_bytes()); // inode number
    root.extend_from_slice(&(k + 2).to_le_bytes()); // nlink
    root.extend_from_slice(&(listing.len() as u32 + 3).to_le_bytes());
    root.extend_from_slice(&0u32.to_le_bytes()); // listing at block 0
    root.extend_from_slice(&1u32.to_le_bytes()); // parent
    root.extend_from_slice(&0u16.to_le_bytes()); // index count
    root.extend_from_slice(&0u16.to_le_bytes()); // offset 0
    root.extend_from_slice(&u32::MAX.to_le_bytes()); // no xattrs
    img.extend(meta_blocks(&root));
    let dir_table = img.len() as u64;
    img.extend(meta_blocks(&listing));
    let ids_block = img.len() as u64;
    img.extend(meta_blocks(&0u32.to_le_bytes()));
    let id_table = img.len() as u64;
    img.extend_from_slice(&ids_block.to_le_bytes());
    let bytes_used = img.len() as u64;
    let sb = &mut img[..96];
    sb[0..4].copy_from_slice(b"hsqs");
    sb[4..8].copy_from_slice(&(k + 1).to_le_bytes());
    sb[12..16].copy_from_slice(&131072u32.to_le_bytes());
    sb[20..22].copy_from_slice(&1u16.to_le_bytes()); // gzip
    sb[22..24].copy_from_slice(&17u16.to_le_bytes());
    sb[26..28].copy_from_slice(&1u16.to_le_bytes());
    sb[28..30].copy_from_slice(&4u16.to_le_bytes());
    sb[32..40].copy_from_slice(&(root_block << 16).to_le_bytes());
    sb[40..48].copy_from_slice(&bytes_used.to_le_bytes());
    sb[48..56].copy_from_slice(&id_table.to_le_bytes());
    sb[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    sb[64..72].copy_from_slice(&inode_table.to_le_bytes());
    sb[72..80].copy_from_slice(&dir_table.to_le_bytes());
    sb[80..88].copy_from_slice(&u64::MAX.to_le_bytes());
    sb[88..96].copy_from_slice(&u64::MAX.to_le_bytes());
    img
}

#[test]
fn squashfs_metadata_work_is_bounded_by_bytes_read() {
    const K: u32 = 2000;
    let data = squashfs_with_empty_metadata_chain(K);
    let sb = squashfs::superblock::Superblock::parse(&data, data.len() as u64).unwrap();
    let cache = Arc::new(BlockCache::new(64 << 20));
    let backing = Backing::new(Arc::new(memfd(&data)), 0, sb.bytes_used);
    let img = squashfs::open(backing, sb, cache.clone()).unwrap();
    let root = img.root();
    assert_eq!(img.attr(root).unwrap().kind, Kind::Dir);
    let list = img.read_dir(root).unwrap();
    assert_eq!(list.len(), K as usize);
    let before = cache.stats();
    for e in list.iter() {
        let _ = img.attr(e.node);
    }
    let after = cache.stats();
    let fetches =
        (after.hits + after.misses + after.waits) - (before.hits + before.misses + before.waits);
    // A few blocks per inode, not the k²/2 = 2,000,000 of a chain walk.
    assert!(
        fetches <= 8 * u64::from(K),
        "{fetches} metadata block fetches for {K} inodes"
    );
}

/// An ISO 9660 directory record (ECMA-119 9.1) with a System Use area.
fn iso_record(name: &[u8], extent: u32, size: u32, dir: bool, su: &[u8]) -> Vec<u8> {
    let mut len = 33 + name.len();
    len += len % 2; // padding byte after an even-length identifier
    let mut r = vec![0u8; len];
    r[2..6].copy_from_slice(&extent.to_le_bytes());
    r[6..10].copy_from_slice(&extent.to_be_bytes());
    r[10..14].copy_from_slice(&size.to_le_bytes());
    r[14..18].copy_from_slice(&size.to_be_bytes());
    r[25] = if dir { 2 } else { 0 };
    r[28..30].copy_from_slice(&1u16.to_le_bytes());
    r[30..32].copy_from_slice(&1u16.to_be_bytes());
    r[32] = name.len() as u8;
    r[33..33 + name.len()].copy_from_slice(name);
    r.extend_from_slice(su);
    r[0] = r.len() as u8;
    r
}

/// A Rock Ridge ISO whose root holds `n` directories that each contain
/// only a relocated (`RE`) directory, so all `n` are hidden relocation
/// folders. Hiding them compared every root entry with every hidden one.
fn iso_with_relocation_dirs(n: u32) -> Vec<u8> {
    const S: usize = 2048;
    let mut sp_er = vec![b'S', b'P', 7, 1, 0xBE, 0xEF, 0];
    sp_er.extend_from_slice(&[b'E', b'R', 18, 1, 10, 0, 0, 1]);
    sp_er.extend_from_slice(b"RRIP_1991A");
    // Root extent: ".", "..", then one record per directory.
    let mut root_records = vec![Vec::new(), iso_record(&[1], 0, 0, true, &[])];
    for i in 0..n {
        root_records.push(iso_record(
            format!("D{i}").as_bytes(),
            0,
            S as u32,
            true,
            &[],
        ));
    }
    let mut root_sectors = 1;
    let mut used = 34 + sp_er.len() + 34;
    for r in &root_records[2..] {
        if used + r.len() > root_sectors * S {
            root_sectors += 1;
            used = (root_sectors - 1) * S;
        }
        used += r.len();
    }
    let root_at = 18u32;
    let first_d = root_at + root_sectors as u32;
    let total = first_d as usize + n as usize;
    let mut img = vec![0u8; total * S];
    // Descriptors.
    let pvd = &mut img[16 * S..17 * S];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[80..84].copy_from_slice(&(total as u32).to_le_bytes());
    pvd[84..88].copy_from_slice(&(total as u32).to_be_bytes());
    pvd[128..130].copy_from_slice(&(S as u16).to_le_bytes());
    pvd[130..132].copy_from_slice(&(S as u16).to_be_bytes());
    let root_size = (root_sectors * S) as u32;
    pvd[156..190].copy_from_slice(&iso_record(&[0], root_at, root_size, true, &[]));
    img[17 * S] = 255;
    img[17 * S + 1..17 * S + 6].copy_from_slice(b"CD001");
    img[17 * S + 6] = 1;
    // Root directory.
    root_records[0] = iso_record(&[0], root_at, root_size, true, &sp_er);
    root_records[1] = iso_record(&[1], root_at, root_size, true, &[]);
    let mut pos = root_at as usize * S;
    for (k, r) in root_records.iter_mut().enumerate() {
        if k >= 2 {
            let extent = first_d + (k as u32 - 2);
            r[2..6].copy_from_slice(&extent.to_le_bytes());
            r[6..10].copy_from_slice(&extent.to_be_bytes());
        }
        if pos % S + r.len() > S {
            pos = pos.div_ceil(S) * S;
        }
        img[pos..pos + r.len()].copy_from_slice(r);
        pos += r.len();
    }
    // Each directory: ".", "..", and a relocated directory.
    for i in 0..n {
        let at = first_d + i;
        let mut recs = iso_record(&[0], at, S as u32, true, &[]);
        recs.extend(iso_record(&[1], root_at, root_size, true, &[]));
        recs.extend(iso_record(b"MOVED", at, S as u32, true, b"RE\x04\x01"));
        let p = at as usize * S;
        img[p..p + recs.len()].copy_from_slice(&recs);
    }
    img
}

#[test]
fn many_relocation_dirs_are_hidden_in_linear_time() {
    // The builder is right: one relocation folder is hidden.
    let one = iso_with_relocation_dirs(1);
    let img = iso9660::open(
        Backing::new(Arc::new(memfd(&one)), 0, one.len() as u64),
        shared_cache(),
    )
    .unwrap();
    assert!(img.read_dir(img.root()).unwrap().is_empty());
    // 20,000 of them: 4·10⁸ comparisons before, and the square grows to
    // hours for the 2,000,000 directories a 4 GB image can hold.
    let many = Arc::new(iso_with_relocation_dirs(20_000));
    guarded("iso-relocation-dirs", many, |data| {
        let started = Instant::now();
        let backing = Backing::new(Arc::new(memfd(data)), 0, data.len() as u64);
        let img = iso9660::open(backing, shared_cache()).unwrap();
        assert!(img.read_dir(img.root()).unwrap().is_empty());
        eprintln!(
            "20,000 relocation folders hidden in {:?}",
            started.elapsed()
        );
    });
}

/// The harness itself: a panic the code under test catches still fails.
#[test]
#[should_panic(expected = "caught inside the library")]
fn guarded_sees_panics_caught_inside_the_library() {
    guarded("self-test", Arc::default(), |_| {
        let _ = std::panic::catch_unwind(|| panic!("caught by the code under test"));
    });
}
