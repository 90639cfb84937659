//! The on-disk block cache against damaged entries, other writers, its size
//! limit, unsafe folders and folders it cannot write.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::cache::BlockCache;
use crate::test_support::TempDir;

fn key(n: u32) -> Key {
    Key::of(Codec::Xz, 1 << 20, &n.to_le_bytes())
}

fn data(n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 ^ n.wrapping_mul(2654435761)) as u8)
        .collect()
}

fn entry_path(c: &DiskCache, k: &Key) -> PathBuf {
    c.store().dir().join(k.file_name())
}

fn open(dir: &Path, limit: u64) -> DiskCache {
    DiskCache::open(dir, limit).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_stored_block_is_read_back_by_a_later_opening() {
    let t = TempDir::new("dc-roundtrip");
    let dir = t.path().join("cache");
    let c = open(&dir, 1 << 30);
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    c.store().store(&key(1), &data(1, 5000)).unwrap();
    let file = std::fs::metadata(entry_path(&c, &key(1))).unwrap();
    assert_eq!(file.mode() & 0o777, 0o600);
    drop(c);
    let c = open(&dir, 1 << 30);
    assert_eq!(c.store().get(&key(1), 1 << 20), Some(data(1, 5000)));
    assert_eq!(c.store().get(&key(2), 1 << 20), None);
    let s = c.store().stats();
    assert_eq!((s.hits, s.misses, s.dropped), (1, 1, 0));
    // Only entries are left behind: no temporary file of the write probe.
    assert_eq!(entries(&dir), vec![key(1).file_name()]);
}

#[test]
fn keys_follow_codec_cap_and_every_stored_byte() {
    let k = Key::of(Codec::Zstd, 131072, b"abcdef");
    assert_eq!(k, Key::of(Codec::Zstd, 131072, b"abcdef"));
    assert_ne!(k, Key::of(Codec::Zstd, 131072, b"abcdeg"));
    assert_ne!(k, Key::of(Codec::Zlib, 131072, b"abcdef"));
    assert_ne!(k, Key::of(Codec::Zstd, 65536, b"abcdef"));
}

/// Damages the entry of `k` with `damage`, then checks it is not served,
/// is deleted, and is counted as dropped.
fn damaged_entry_is_dropped(tag: &str, damage: impl FnOnce(&Path)) {
    let t = TempDir::new(tag);
    let c = open(&t.path().join("cache"), 1 << 30);
    c.store().store(&key(7), &data(7, 70_000)).unwrap();
    let path = entry_path(&c, &key(7));
    damage(&path);
    assert_eq!(c.store().get(&key(7), 1 << 20), None);
    assert!(!path.exists(), "a damaged entry is deleted");
    assert_eq!(c.store().stats().dropped, 1);
    // Stored again, it is served again.
    c.store().store(&key(7), &data(7, 70_000)).unwrap();
    assert_eq!(c.store().get(&key(7), 1 << 20), Some(data(7, 70_000)));
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_flipped_payload_byte_is_caught_by_the_checksum() {
    damaged_entry_is_dropped("dc-flip", |p| flip(p, HEADER_LEN + 12_345));
}

#[test]
fn a_truncated_entry_is_dropped() {
    damaged_entry_is_dropped("dc-trunc", |p| {
        let f = OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(HEADER_LEN as u64 + 100).unwrap();
    });
}

#[test]
fn a_torn_header_is_dropped() {
    damaged_entry_is_dropped("dc-torn", |p| {
        let f = OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(20).unwrap();
    });
}

#[test]
fn a_bad_magic_is_dropped() {
    damaged_entry_is_dropped("dc-magic", |p| flip(p, 0));
}

#[test]
fn a_tampered_length_is_dropped() {
    damaged_entry_is_dropped("dc-len", |p| flip(p, 41));
}

#[test]
fn another_blocks_entry_under_this_name_is_dropped() {
    damaged_entry_is_dropped("dc-swap", |p| {
        // A whole, self-consistent entry of another block, renamed.
        let other = p.with_file_name(key(8).file_name());
        let t = TempDir::new("dc-swap-src");
        let c = open(&t.path().join("c"), 1 << 30);
        c.store().store(&key(8), &data(8, 100)).unwrap();
        std::fs::copy(entry_path(&c, &key(8)), &other).unwrap();
        std::fs::rename(&other, p).unwrap();
    });
}

#[test]
fn an_entry_longer_than_the_cap_is_not_served() {
    let t = TempDir::new("dc-cap");
    let c = open(&t.path().join("cache"), 1 << 30);
    c.store().store(&key(3), &data(3, 9000)).unwrap();
    assert_eq!(c.store().get(&key(3), 8192), None);
}

#[test]
fn an_entry_owned_by_another_user_is_not_served() {
    let t = TempDir::new("dc-fileowner");
    let c = open(&t.path().join("cache"), 1 << 30);
    c.store().store(&key(4), &data(4, 100)).unwrap();
    std::os::unix::fs::chown(entry_path(&c, &key(4)), Some(4242), None).unwrap();
    assert_eq!(c.store().get(&key(4), 1 << 20), None);
    assert_eq!(c.store().stats().dropped, 1);
}

#[test]
fn a_folder_of_another_user_is_refused() {
    let t = TempDir::new("dc-owner");
    let dir = t.path().join("cache");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
    match DiskCache::open(&dir, 1 << 30) {
        Err(OpenError::Refused(m)) => assert!(m.contains("uid 4242"), "{m}"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}

#[test]
fn a_folder_others_may_write_is_refused() {
    let t = TempDir::new("dc-mode");
    let dir = t.path().join("cache");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        DiskCache::open(&dir, 1 << 30),
        Err(OpenError::Refused(_))
    ));
}

#[test]
fn a_symlink_as_folder_is_refused() {
    let t = TempDir::new("dc-link");
    let real = t.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = t.path().join("cache");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(
        DiskCache::open(&link, 1 << 30),
        Err(OpenError::Refused(_))
    ));
}

#[test]
fn a_folder_that_cannot_be_created_is_unavailable() {
    let t = TempDir::new("dc-nodir");
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        DiskCache::open(&file.join("cache"), 1 << 30),
        Err(OpenError::Unavailable(_))
    ));
}

#[test]
fn two_caches_writing_the_same_blocks_at_once_leave_whole_entries() {
    let t = TempDir::new("dc-race");
    let dir = t.path().join("cache");
    let caches: Vec<Arc<DiskCache>> = (0..2).map(|_| Arc::new(open(&dir, 1 << 30))).collect();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let c = caches[i % 2].clone();
            std::thread::spawn(move || {
                for n in 0..40u32 {
                    let n = (n + i as u32 * 5) % 40;
                    c.store()
                        .store(&key(n), &data(n, 20_000 + n as usize))
                        .unwrap();
                    if let Some(got) = c.store().get(&key(n), 1 << 20) {
                        assert_eq!(got, data(n, 20_000 + n as usize));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let reader = open(&dir, 1 << 30);
    for n in 0..40u32 {
        assert_eq!(
            reader.store().get(&key(n), 1 << 20),
            Some(data(n, 20_000 + n as usize))
        );
    }
    assert_eq!(entries(&dir).len(), 40, "no temporary files are left");
    assert_eq!(
        caches
            .iter()
            .map(|c| c.store().stats().dropped)
            .sum::<u64>(),
        0
    );
}

#[test]
fn the_least_recently_used_entries_go_first() {
    let t = TempDir::new("dc-evict");
    let dir = t.path().join("cache");
    let entry = (HEADER_LEN + 10_000) as u64;
    let c = open(&dir, 10 * entry);
    let old = SystemTime::now() - Duration::from_secs(3600);
    for n in 0..10u32 {
        c.store().store(&key(n), &data(n, 10_000)).unwrap();
        // Older entries first: 0 is the least recently used.
        File::open(entry_path(&c, &key(n)))
            .unwrap()
            .set_modified(old + Duration::from_secs(n.into()))
            .unwrap();
    }
    // Reading entry 0 makes it the most recently used.
    assert!(c.store().get(&key(0), 1 << 20).is_some());
    // One more entry passes the limit: eviction brings the folder to 90%.
    c.store().store(&key(10), &data(10, 10_000)).unwrap();
    let left = entries(&dir);
    let size: u64 = left
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().len())
        .sum();
    assert!(size <= 9 * entry, "{size} bytes left");
    assert!(
        left.contains(&key(0).file_name()),
        "a recently read entry stays"
    );
    assert!(
        left.contains(&key(10).file_name()),
        "the newest entry stays"
    );
    assert!(
        !left.contains(&key(1).file_name()),
        "the oldest unread entry goes"
    );
    assert!(c.store().stats().evicted >= 2);
}

#[test]
fn profiles_count_in_the_size_limit_and_are_evicted_by_age_too() {
    let t = TempDir::new("dc-evict-profiles");
    let dir = t.path().join("cache");
    let entry = (HEADER_LEN + 60_000) as u64;
    let profile = 100_000u64;
    let c = open(&dir, 2 * profile + entry + entry / 2);
    let name = |c: char| format!("profile-{}", c.to_string().repeat(64));
    let hours_ago = |h: u64| SystemTime::now() - Duration::from_secs(3600 * h);
    let age = |path: PathBuf, when: SystemTime| {
        File::open(path).unwrap().set_modified(when).unwrap();
    };
    c.store()
        .write_aux(&name('a'), &vec![1; profile as usize])
        .unwrap();
    age(dir.join(name('a')), hours_ago(4));
    for n in 0..3u32 {
        c.store().store(&key(n), &data(n, 60_000)).unwrap();
        age(entry_path(&c, &key(n)), hours_ago(3 - u64::from(n)));
    }
    assert_eq!(c.store().stats().evicted, 0, "still within the limit");
    // A second profile passes the limit: the oldest files go, profile or
    // entry alike, down to 90%.
    c.store()
        .write_aux(&name('b'), &vec![2; profile as usize])
        .unwrap();
    let left = entries(&dir);
    assert_eq!(
        left,
        {
            let mut want = vec![key(1).file_name(), key(2).file_name(), name('b')];
            want.sort();
            want
        },
        "profile a (oldest), then entry 0 went"
    );
    assert_eq!(c.store().stats().evicted, 2);
    assert_eq!(c.store().used.load(Ordering::Relaxed), 2 * entry + profile);
    // Reading a profile marks it recently used.
    age(dir.join(name('b')), hours_ago(5));
    assert!(c.store().read_aux(&name('b'), 1 << 20).is_some());
    let mtime = std::fs::metadata(dir.join(name('b')))
        .unwrap()
        .modified()
        .unwrap();
    assert!(mtime > hours_ago(1));
    assert!(is_profile_name(&name('f')));
    assert!(!is_profile_name("profile-xyz"));
    assert!(!is_profile_name(&format!("profile-{}", "g".repeat(64))));
}

#[test]
fn stale_temporary_files_are_swept() {
    let t = TempDir::new("dc-tmp");
    let dir = t.path().join("cache");
    let c = open(&dir, 1 << 30);
    let stale = dir.join(".tmp.1.1");
    let fresh = dir.join(".tmp.2.1");
    std::fs::write(&stale, b"half an entry").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    File::open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - 2 * STALE_TMP)
        .unwrap();
    c.store().scan_and_evict();
    assert!(!stale.exists());
    assert!(fresh.exists(), "another daemon may be writing it right now");
}

#[test]
fn queued_blocks_reach_the_folder() {
    let t = TempDir::new("dc-queue");
    let dir = t.path().join("cache");
    let c = open(&dir, 1 << 30);
    for n in 0..20u32 {
        c.put(key(n), &data(n, 50_000));
    }
    let start = Instant::now();
    while !c.idle() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(c.idle());
    let s = c.store().stats();
    assert_eq!(s.stored + s.skipped, 20, "{s:?}");
    assert!(s.stored > 0);
    for n in 0..20u32 {
        if let Some(got) = c.store().get(&key(n), 1 << 20) {
            assert_eq!(got, data(n, 50_000));
        }
    }
}

#[test]
fn a_warming_thread_waits_for_room_instead_of_skipping() {
    let t = TempDir::new("dc-wait");
    let c = Arc::new(open(&t.path().join("cache"), 1 << 30));
    // Three times what the queue holds, put at once: a request thread would
    // have most of it skipped; a background thread waits for the writer.
    let blocks = (3 * QUEUE_BYTES / (1 << 20)) as u32;
    let putter = {
        let c = c.clone();
        std::thread::spawn(move || {
            background_thread();
            for n in 0..blocks {
                c.put(key(n), &data(n, 1 << 20));
            }
        })
    };
    putter.join().unwrap();
    c.flush(Duration::from_secs(60));
    let s = c.store().stats();
    assert_eq!((s.stored, s.skipped), (u64::from(blocks), 0), "{s:?}");
    assert_eq!(
        c.store().get(&key(blocks - 1), 1 << 20),
        Some(data(blocks - 1, 1 << 20))
    );
}

/// A tmpfs mounted for one test, unmounted on drop.
struct TmpMount(PathBuf);

impl TmpMount {
    fn new(at: &Path, options: &str) -> TmpMount {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "appimagefs-test"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs at {}", at.display());
        TmpMount(at.to_path_buf())
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_folder_is_still_read_but_not_written() {
    let t = TempDir::new("dc-ro");
    let m = TmpMount::new(&t.path().join("fs"), "size=4m,mode=0700");
    let dir = m.0.join("cache");
    open(&dir, 1 << 30)
        .store()
        .store(&key(1), &data(1, 1000))
        .unwrap();
    m.remount("ro");
    let c = open(&dir, 1 << 30);
    assert!(!c.store().writable.load(Ordering::Relaxed));
    assert_eq!(c.store().get(&key(1), 1 << 20), Some(data(1, 1000)));
    c.put(key(2), &data(2, 1000));
    assert!(
        c.idle(),
        "nothing is queued for a folder that cannot be written"
    );
    assert_eq!(c.store().get(&key(2), 1 << 20), None);
}

#[test]
fn a_full_disk_stops_storing_and_keeps_serving() {
    let t = TempDir::new("dc-full");
    let m = TmpMount::new(&t.path().join("fs"), "size=256k,mode=0700");
    let dir = m.0.join("cache");
    let c = open(&dir, 1 << 30);
    c.store().store(&key(1), &data(1, 1000)).unwrap();
    let err = c.store().store(&key(2), &data(2, 1 << 20)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    c.store().stop_writing(&err);
    assert!(!c.store().writable.load(Ordering::Relaxed));
    assert_eq!(
        entries(&dir),
        vec![key(1).file_name()],
        "no partial entry is left"
    );
    assert_eq!(c.store().get(&key(1), 1 << 20), Some(data(1, 1000)));
}

#[test]
fn the_block_cache_decodes_once_across_daemons_and_never_serves_stale_bytes() {
    let t = TempDir::new("dc-block");
    let dir = t.path().join("cache");
    let plain = data(5, 100_000);
    let stored = zstd::bulk::compress(&plain, 3).unwrap();
    let first = BlockCache::with_disk(1 << 20, Some(open(&dir, 1 << 30)));
    assert_eq!(
        first.decompress(Codec::Zstd, &stored, 1 << 17).unwrap(),
        plain
    );
    let disk = first.disk().unwrap();
    let start = Instant::now();
    while !disk.idle() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(disk.store().stats().stored, 1);
    // A new daemon: served from the folder.
    let second = BlockCache::with_disk(1 << 20, Some(open(&dir, 1 << 30)));
    assert_eq!(
        second.decompress(Codec::Zstd, &stored, 1 << 17).unwrap(),
        plain
    );
    assert_eq!(second.disk().unwrap().store().stats().hits, 1);
    // Other stored bytes (a rewritten image) are decoded, not looked up under
    // the old block's entry.
    let other = data(6, 100_000);
    let stored2 = zstd::bulk::compress(&other, 3).unwrap();
    assert_eq!(
        second.decompress(Codec::Zstd, &stored2, 1 << 17).unwrap(),
        other
    );
    assert_eq!(second.disk().unwrap().store().stats().misses, 1);
    // A corrupt block is an error, and nothing is stored for it.
    assert!(second
        .decompress(Codec::Zstd, b"not zstd", 1 << 17)
        .is_err());
}

fn file_key(n: u8) -> files::FileKey {
    files::FileKey([n; 32])
}

/// Stores `bytes` whole under `k`, piece by piece as the writer does.
fn store_whole(c: &DiskCache, k: &files::FileKey, bytes: &[u8]) {
    c.store()
        .store_whole_file(k, bytes.len() as u64, |at, buf| {
            let at = at as usize;
            buf.copy_from_slice(&bytes[at..at + buf.len()]);
            Ok(())
        })
        .unwrap();
}

fn read_all(mut f: &std::fs::File) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn a_whole_file_is_read_back_checked_on_several_threads() {
    let t = TempDir::new("dc-whole");
    let dir = t.path().join("cache");
    let c = open(&dir, 1 << 30);
    // Three segments, the last one short.
    let bytes = data(7, 2 * files::SEGMENT as usize + 12345);
    assert!(!c.store().has_whole_file(&file_key(1)));
    store_whole(&c, &file_key(1), &bytes);
    assert!(c.store().has_whole_file(&file_key(1)));
    for name in entries(&dir) {
        let mode = std::fs::metadata(dir.join(&name)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is private");
    }
    drop(c);
    let c = open(&dir, 1 << 30);
    let len = bytes.len() as u64;
    for threads in [1, 2, 5] {
        let f = c.store().open_whole_file(&file_key(1), len, threads);
        assert!(read_all(&f.expect("an intact copy")) == bytes);
    }
    assert!(c.store().open_whole_file(&file_key(2), len, 2).is_none());
    assert_eq!(c.store().stats().dropped, 0);
}

#[test]
fn a_damaged_whole_file_is_deleted_and_never_opened() {
    let t = TempDir::new("dc-whole-damage");
    let dir = t.path().join("cache");
    let c = open(&dir, 1 << 30);
    let bytes = data(3, files::SEGMENT as usize + 5000);
    let len = bytes.len() as u64;
    type Damage = fn(&Path, &Path);
    let damages: [(&str, Damage); 5] = [
        ("a byte of the last segment changed", |data, _| {
            let f = std::fs::OpenOptions::new().write(true).open(data).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, b"X", files::SEGMENT + 10).unwrap();
        }),
        ("cut short", |data, _| {
            let f = std::fs::OpenOptions::new().write(true).open(data).unwrap();
            f.set_len(1000).unwrap();
        }),
        ("grown", |data, _| {
            let f = std::fs::OpenOptions::new().append(true).open(data).unwrap();
            std::io::Write::write_all(&mut &f, b"more").unwrap();
        }),
        ("checksums of another key", |_, sums| {
            let mut s = std::fs::read(sums).unwrap();
            s[8] ^= 1;
            std::fs::write(sums, s).unwrap();
        }),
        ("checksums cut short", |_, sums| {
            let s = std::fs::read(sums).unwrap();
            std::fs::write(sums, &s[..s.len() - 1]).unwrap();
        }),
    ];
    for (i, (what, damage)) in damages.iter().enumerate() {
        let k = file_key(10 + i as u8);
        store_whole(&c, &k, &bytes);
        let names: Vec<PathBuf> = entries(&dir)
            .into_iter()
            .filter(|n| n.contains(&format!("{:02x}{:02x}", 10 + i, 10 + i)))
            .map(|n| dir.join(n))
            .collect();
        let data_path = names.iter().find(|p| p.extension().is_none()).unwrap();
        let sums = names.iter().find(|p| p.extension().is_some()).unwrap();
        damage(data_path, sums);
        assert!(
            c.store().open_whole_file(&k, len, 2).is_none(),
            "{what}: not opened"
        );
        assert!(!data_path.exists() && !sums.exists(), "{what}: deleted");
        assert!(!c.store().has_whole_file(&k));
        // And written again afresh.
        store_whole(&c, &k, &bytes);
        assert!(c.store().open_whole_file(&k, len, 2).is_some(), "{what}");
    }
    assert_eq!(c.store().stats().dropped, damages.len() as u64);
}

#[test]
fn whole_files_are_evicted_with_their_checksums() {
    let t = TempDir::new("dc-whole-evict");
    let dir = t.path().join("cache");
    let c = open(&dir, 1 << 30);
    store_whole(&c, &file_key(1), &data(1, 400_000));
    // Checksums whose data file is gone (a crash between the two renames
    // the other way round, a hand cleanup) are deleted by the next scan.
    store_whole(&c, &file_key(2), &data(2, 300_000));
    let orphan = entries(&dir)
        .into_iter()
        .find(|n| n.starts_with(&format!("file-{}", "02".repeat(32))) && !n.ends_with(".sum"))
        .unwrap();
    std::fs::remove_file(dir.join(orphan)).unwrap();
    assert!(!c.store().has_whole_file(&file_key(2)));
    drop(c);
    let c = open(&dir, 500_000);
    c.store().scan_and_evict();
    assert_eq!(entries(&dir).len(), 2, "{:?}", entries(&dir));
    // Over the limit: the copy goes with its checksums.
    store_whole(&c, &file_key(3), &data(3, 300_000));
    let left = entries(&dir);
    assert_eq!(left.len(), 2, "one copy and its checksums: {left:?}");
    assert!(c.store().has_whole_file(&file_key(3)));
    assert!(!c.store().has_whole_file(&file_key(1)));
}
