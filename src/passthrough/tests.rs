//! Passthrough decisions against a fake union: which opens pass through,
//! that one inode never mixes both ways, and whole copies written and
//! checked.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::disk_cache::DiskCache;
use crate::test_support::TempDir;

/// Files by inode number, in a cache folder of their own.
struct Files {
    files: HashMap<u64, Vec<u8>>,
    disk: DiskCache,
    reads: AtomicU64,
}

impl WholeSource for Files {
    fn file_size(&self, ino: u64) -> Option<u64> {
        self.files.get(&ino).map(|f| f.len() as u64)
    }

    fn generation(&self, _ino: u64) -> u64 {
        1
    }

    fn content_key(&self, ino: u64) -> Option<FileKey> {
        let f = self.files.get(&ino)?;
        Some(FileKey(*blake3::hash(f).as_bytes()))
    }

    fn read_piece(&self, ino: u64, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let f = &self.files[&ino];
        let start = (offset as usize).min(f.len());
        let end = (start + len as usize).min(f.len());
        Ok(f[start..end].to_vec())
    }

    fn store(&self) -> Option<&Store> {
        Some(self.disk.store())
    }
}

/// A backing id: the bytes of the file it was registered for.
struct Backing(Vec<u8>);

fn register(f: &File) -> std::io::Result<Backing> {
    let mut v = Vec::new();
    (&*f).read_to_end(&mut v)?;
    Ok(Backing(v))
}

fn bytes(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(n) ^ n).collect()
}

const BIG: u64 = 1;
const OTHER: u64 = 2;
const SMALL: u64 = 3;
/// A big file with no copy kept.
const UNKEPT: u64 = 4;

fn setup(t: &TempDir) -> Arc<Passthrough<Files, Backing>> {
    let files = HashMap::from([
        (BIG, bytes(3, 3 << 20)),
        (OTHER, bytes(5, 1 << 20)),
        (SMALL, bytes(7, MIN_LEN as usize - 1)),
        (UNKEPT, bytes(9, 1 << 20)),
    ]);
    let disk = DiskCache::open(&t.path().join("cache"), 1 << 30).unwrap();
    let pt = Passthrough::new(
        Arc::new(Files {
            files,
            disk,
            reads: AtomicU64::new(0),
        }),
        2,
        2,
    );
    pt.set_granted(true);
    pt
}

/// Queues `inos` to be written whole and waits for the writer.
fn keep(pt: &Arc<Passthrough<Files, Backing>>, inos: &[u64]) {
    for &ino in inos {
        pt.keep_whole(ino);
    }
    pt.finish(Duration::from_secs(30));
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn files_read_at_start_are_kept_whole_and_passed_through_later() {
    let t = TempDir::new("pt-later");
    let first = setup(&t);
    keep(&first, &[BIG, SMALL, OTHER]);
    assert_eq!(first.stats().written, 2, "a small file is not kept whole");
    drop(first);

    // A later daemon: the replay prepares BIG; its opens pass through to
    // one registered copy.
    let pt = setup(&t);
    let missing = Arc::new(AtomicBool::new(false));
    let m = missing.clone();
    assert!(pt.prepare(BIG, move || m.store(true, Ordering::SeqCst)));
    assert!(!pt.prepare(SMALL, || ()), "too small to pass through");
    let a = pt.open(BIG, true, register).expect("passes through");
    assert!(a.0 == bytes(3, 3 << 20), "the registered copy is the file");
    let b = pt.open(BIG, false, |_| panic!("registered once")).unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "every open names the same backing file"
    );
    // A file the profile lists, opened before the replay reached it, is
    // prepared by the open itself.
    assert!(pt.open(OTHER, true, register).is_some());
    // Nothing read through the daemon, nothing the replay must store.
    assert_eq!(pt.source.reads.load(Ordering::Relaxed), 0);
    assert!(!missing.load(Ordering::SeqCst));
    let s = pt.stats();
    assert_eq!((s.prepared, s.verified, s.passthrough_opens), (2, 2, 3));
}

#[test]
fn a_file_open_without_passthrough_is_not_prepared_until_released() {
    let t = TempDir::new("pt-mixed");
    keep(&setup(&t), &[BIG]);
    let pt = setup(&t);
    // Opened before its app's profile was known to list it.
    assert!(pt.open(BIG, false, register).is_none());
    assert!(
        !pt.prepare(BIG, || ()),
        "the kernel refuses to mix both ways on one inode"
    );
    assert!(pt.open(BIG, true, register).is_none());
    assert_eq!(pt.stats().cached_opens, 2);
    // Once both handles are released, it may pass through.
    pt.released(BIG, false);
    assert!(!pt.prepare(BIG, || ()), "one handle is still open");
    pt.released(BIG, false);
    assert!(pt.open(BIG, true, register).is_some());
}

#[test]
fn a_prepared_file_is_dropped_for_another_only_when_no_handle_is_open() {
    let t = TempDir::new("pt-drop");
    keep(&setup(&t), &[BIG, OTHER]);
    // Room for two: BIG and OTHER.
    let pt = setup(&t);
    let a = pt.open(BIG, true, register).unwrap();
    assert!(pt.open(OTHER, true, register).is_some());
    // Full, and both have a handle open: a third file is not prepared.
    assert!(!pt.prepare(UNKEPT, || ()));
    assert!(pt.open(UNKEPT, true, register).is_none());
    assert_eq!(pt.stats().prepared, 2, "no room was made for it");
    // OTHER released: its entry may go, and a later open of BIG still
    // names the backing id its open handle has.
    pt.released(OTHER, true);
    pt.released(UNKEPT, false);
    let b = pt.open(BIG, true, |_| panic!("registered once")).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let missing = Arc::new(AtomicBool::new(false));
    let m = missing.clone();
    assert!(pt.prepare(UNKEPT, move || m.store(true, Ordering::SeqCst)));
    wait_for("UNKEPT has no copy", || missing.load(Ordering::SeqCst));
    assert_eq!(pt.stats().prepared, 3, "OTHER made room for it");
}

#[test]
fn without_a_copy_the_replay_stores_pieces_and_a_copy_is_written() {
    let t = TempDir::new("pt-missing");
    let pt = setup(&t);
    let missing = Arc::new(AtomicBool::new(false));
    let m = missing.clone();
    assert!(pt.prepare(BIG, move || m.store(true, Ordering::SeqCst)));
    wait_for("the replay is told", || missing.load(Ordering::SeqCst));
    assert!(pt.open(BIG, true, register).is_none(), "no copy yet");
    assert!(
        !pt.prepare(BIG, || panic!("not run")),
        "known to have no copy: the replay stores its pieces"
    );
    pt.finish(Duration::from_secs(30));
    assert_eq!(pt.stats().written, 1);
    let later = setup(&t);
    assert!(later.open(BIG, true, register).is_some());
}

#[test]
fn nothing_is_kept_whole_where_files_cannot_pass_through() {
    let t = TempDir::new("pt-not-granted");
    let pt = setup(&t);
    pt.set_granted(false);
    keep(&pt, &[BIG]);
    assert_eq!(pt.stats().written, 0);
    assert!(setup(&t).open(BIG, true, register).is_none());
}

#[test]
fn a_refused_backing_file_stops_passthrough() {
    let t = TempDir::new("pt-refused");
    keep(&setup(&t), &[BIG, OTHER]);
    let pt = setup(&t);
    let no = |_: &File| -> std::io::Result<Backing> {
        Err(std::io::Error::from_raw_os_error(libc::EPERM))
    };
    assert!(pt.open(BIG, true, no).is_none());
    assert!(
        pt.open(BIG, true, register).is_none(),
        "that inode stays cached"
    );
    assert!(!pt.prepare(OTHER, || ()), "no more files are prepared");
    assert!(pt.open(OTHER, true, register).is_none());
}

#[test]
fn concurrent_opens_check_a_copy_once() {
    let t = TempDir::new("pt-concurrent");
    keep(&setup(&t), &[BIG]);
    let pt = setup(&t);
    let got: Vec<bool> = std::thread::scope(|s| {
        let opens: Vec<_> = (0..6)
            .map(|_| s.spawn(|| pt.open(BIG, true, register).is_some()))
            .collect();
        opens.into_iter().map(|o| o.join().unwrap()).collect()
    });
    assert_eq!(got, vec![true; 6]);
    let s = pt.stats();
    assert_eq!((s.prepared, s.verified, s.passthrough_opens), (1, 1, 6));
}
