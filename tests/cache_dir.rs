//! `--cache-dir` (issue 18): a new daemon reads the blocks an earlier one
//! decoded from the cache folder, serves the same bytes, and never serves a
//! replaced AppImage the old one's bytes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use appimagefs::profile::{decode, encode, Entry, Kind};

use crate::common::images::{mksquashfs, pseudo_random, text, wrap_squashfs_as_appimage};
use crate::common::mount::Mount;
use crate::common::{requests, residency, TempDir};

/// Every regular file under `root`, by relative path, with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                walk(root, &path, out);
            } else if ft.is_file() {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// An app tree whose file names and sizes do not depend on `salt`, but
/// whose bytes do: big files over several blocks, small ones packed into
/// fragments.
fn build_tree(root: &Path, salt: usize) {
    let write = |rel: &str, data: Vec<u8>| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    write("AppRun", format!("#!/bin/sh\necho {salt}\n").into_bytes());
    // Under 256 KiB, as every file here: a bigger one read at start-up is
    // passed through to a whole copy in later daemons (tested below), and
    // its blocks are then not read back.
    write("usr/lib/libbig.so", text(250_000, salt));
    write("usr/lib/libmixed.so", {
        let mut v = text(200_000, salt + 1);
        v.extend(pseudo_random(salt as u64 + 1, 1000));
        v
    });
    for i in 0..40 {
        write(
            &format!("usr/share/app/res{i:02}.txt"),
            text(300 + i * 97, salt * 31 + i),
        );
    }
}

/// Builds the tree for `salt` into an AppImage at `out`, padded to `size`
/// bytes when given (the bytes after a SquashFS image are ignored).
fn build_appimage(tmp: &TempDir, salt: usize, out: &Path) -> PathBuf {
    let tree = tmp.subdir(&format!("tree{salt}"));
    build_tree(&tree, salt);
    let sqfs = tmp.join(format!("app{salt}.sqfs"));
    mksquashfs(&tree, &sqfs, &["-comp", "xz", "-b", "128K"]);
    wrap_squashfs_as_appimage(&sqfs, out);
    tree
}

fn pad_to(path: &Path, size: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(size).unwrap();
}

/// Replaces the AppImage `app` by `new` (renamed over it), both padded to
/// the same size and given `app`'s modification time: only the bytes
/// tell them apart.
fn replace_keeping_size_and_time(app: &Path, new: &Path) {
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    let size = len(app).max(len(new));
    pad_to(app, size);
    pad_to(new, size);
    let mtime = std::fs::metadata(app).unwrap().modified().unwrap();
    std::fs::rename(new, app).unwrap();
    std::fs::File::open(app)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert!(mtime <= SystemTime::now() + Duration::from_secs(1));
}

/// A counter of the first line of `log` that contains `marker`: one of the
/// `Debug`-printed stats (`Name { field: N, .. }`) the daemon logs at exit
/// with `-v`.
fn logged_counter(log: &str, marker: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line in the log:\n{log}"));
    let at = line.find(&format!(" {name}: ")).expect(name) + name.len() + 3;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `(hits, stored)` of the cache folder, from the `-v` line the daemon logs
/// at exit.
fn disk_counters(log: &str) -> (u64, u64) {
    let field = |name| logged_counter(log, "cache folder at exit", name);
    (field("hits"), field("stored"))
}

/// Mounts `src` with the cache folder, reads every file of the app, checks
/// them against `tree`, unmounts, and returns the folder's counters.
fn mount_and_read(src: &Path, mnt: &Path, cache: &Path, tree: &Path) -> (u64, u64) {
    let cache_arg = cache.to_str().unwrap();
    let mut m = Mount::start(src, mnt, &["--cache-dir", cache_arg, "-v"]);
    let expected = files(tree);
    let got = files(&m.mountpoint.join("App"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (rel, bytes) in &expected {
        assert!(
            got[rel] == *bytes,
            "{} differs from the image's own bytes",
            rel.display()
        );
    }
    m.unmount().expect("unmount");
    disk_counters(&m.log_text())
}

#[test]
fn a_new_daemon_reads_decoded_blocks_from_the_folder_and_never_stale_ones() {
    let tmp = TempDir::new("cachedir");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let cache = tmp.join("cache");
    let app = src.join("App.AppImage");
    let tree = build_appimage(&tmp, 1, &app);

    let (hits, stored) = mount_and_read(&src, &mnt, &cache, &tree);
    assert_eq!(hits, 0, "the folder starts empty");
    assert!(stored >= 4, "decoded blocks are stored ({stored})");
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700, "the folder is private");
    for e in std::fs::read_dir(&cache).unwrap().flatten() {
        assert_eq!(
            e.metadata().unwrap().mode() & 0o777,
            0o600,
            "{:?} is private",
            e.file_name()
        );
    }

    // A new daemon: same bytes, decoded by nobody.
    let (hits, stored_again) = mount_and_read(&src, &mnt, &cache, &tree);
    assert!(
        hits >= stored,
        "every block stored by the first daemon is read back ({hits} hits, {stored} stored)"
    );
    assert_eq!(stored_again, 0, "nothing had to be decoded again");

    // The AppImage replaced by one with other bytes, the same size and the
    // same modification time: the new bytes are served.
    let other = tmp.join("other.AppImage");
    let tree2 = build_appimage(&tmp, 2, &other);
    replace_keeping_size_and_time(&app, &other);
    let (_, stored_new) = mount_and_read(&src, &mnt, &cache, &tree2);
    assert!(
        stored_new >= 4,
        "the new image's blocks are decoded ({stored_new}), not taken from the folder"
    );
}

#[test]
fn a_cache_folder_of_another_user_stops_the_mount() {
    let tmp = TempDir::new("cachedir-owner");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    build_appimage(&tmp, 3, &src.join("App.AppImage"));
    let cache = tmp.subdir("cache");
    std::os::unix::fs::chown(&cache, Some(4242), Some(4242)).unwrap();
    let err = match Mount::try_start(&src, &mnt, &["--cache-dir", cache.to_str().unwrap()]) {
        Ok(_) => panic!("mounted with another user's cache folder"),
        Err(e) => e,
    };
    assert!(err.contains("belongs to uid 4242"), "{err}");
}

#[test]
fn a_new_daemon_replays_what_the_app_did_at_start_before_it_asks() {
    use std::os::unix::fs::FileExt;
    let tmp = TempDir::new("cachedir-profile");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let cache = tmp.join("cache");
    let tree = tmp.subdir("tree");
    std::fs::write(tree.join("AppRun"), b"#!/bin/sh\n").unwrap();
    // Small enough to be stored into the page cache (bigger files read at
    // start-up pass through to whole copies instead, tested below).
    for name in ["liba.so", "libb.so", "unread.so"] {
        std::fs::write(tree.join(name), text(256 << 10, name.len())).unwrap();
    }
    // A link out of the image, to a folder of the host.
    let host = tmp.subdir("host");
    std::fs::write(host.join("secret"), b"host bytes").unwrap();
    std::os::unix::fs::symlink(&host, tree.join("out")).unwrap();
    let sqfs = tmp.join("app.sqfs");
    mksquashfs(&tree, &sqfs, &["-comp", "zstd", "-b", "128K"]);
    wrap_squashfs_as_appimage(&sqfs, &src.join("App.AppImage"));
    let args = ["--cache-dir", cache.to_str().unwrap(), "-v"];

    // First daemon: the app lists its folder, probes a missing library,
    // reads all of liba and a page of libb.
    let mut m = Mount::start(&src, &mnt, &args);
    let app = m.mountpoint.join("App");
    assert_eq!(std::fs::read_dir(&app).unwrap().count(), 5);
    assert!(std::fs::metadata(app.join("libnone.so")).is_err());
    assert_eq!(std::fs::read(app.join("liba.so")).unwrap().len(), 256 << 10);
    let mut head = vec![0u8; 4096];
    std::fs::File::open(app.join("libb.so"))
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    m.unmount().expect("unmount");
    let profiles: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("profile-"))
        .collect();
    assert_eq!(profiles.len(), 1, "one profile for one app");
    // A profile that does not fit the image (damage, a collision) names
    // paths through the link: the replay must not follow it out.
    let path = profiles[0].path();
    let mut entries = decode(&std::fs::read(&path).unwrap()).expect("a valid profile");
    for (kind, rel) in [
        (Kind::Listed, "out"),
        (Kind::Missing, "out/nothere"),
        (Kind::Found, "out/secret"),
    ] {
        entries.push(Entry {
            kind,
            path: rel.as_bytes().to_vec(),
            chunks: if kind == Kind::Found { vec![0] } else { vec![] },
            whole: false,
            misses: 0,
        });
    }
    std::fs::write(&path, encode(&entries)).unwrap();

    // Second daemon: touching the app folder replays the profile. The
    // replay itself looks the files up (a store into a file the kernel
    // does not know yet is dropped), so their pages are in place before
    // anything here opens them.
    let mut m = Mount::start(&src, &mnt, &args);
    let app = m.mountpoint.join("App");
    std::fs::symlink_metadata(&app).unwrap();
    let (liba, libb, unread) = (
        app.join("liba.so"),
        app.join("libb.so"),
        app.join("unread.so"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut a, mut b) = (residency(&liba), residency(&libb));
    while (a.0 < a.1 || b.0 == 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        (a, b) = (residency(&liba), residency(&libb));
    }
    let u = residency(&unread);
    m.unmount().expect("unmount");
    let log = m.log_text();
    assert_eq!(a.0, a.1, "all of liba is in the page cache ({a:?})\n{log}");
    assert!(b.0 > 0, "the start of libb ({b:?})\n{log}");
    assert_eq!(u.0, 0, "a file the app did not read is not warmed ({u:?})");
    let count = |name| logged_counter(&log, "start-up profiles at exit", name);
    assert_eq!(count("replays"), 1, "{log}");
    assert_eq!(
        count("found"),
        2,
        "liba and libb looked up by the replay\n{log}"
    );
    assert_eq!(count("missing"), 1, "libnone probed by the replay\n{log}");
    assert_eq!(count("listed"), 1, "the folder listed by the replay\n{log}");
    assert!(
        count("pieces") >= 3,
        "2 chunks of liba, libb's first\n{log}"
    );
    assert_eq!(
        count("stored"),
        count("pieces"),
        "every piece stored\n{log}"
    );
    assert_eq!(count("failed"), 0, "{log}");
}

/// The whole copies in `cache`: (data files, checksum files).
fn whole_copies(cache: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut data = Vec::new();
    let mut sums = Vec::new();
    for e in std::fs::read_dir(cache).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("file-") {
            if name.ends_with(".sum") {
                sums.push(e.path());
            } else {
                data.push(e.path());
            }
        }
    }
    (data, sums)
}

#[test]
fn a_new_daemon_passes_start_up_files_through_to_checked_whole_copies() {
    let tmp = TempDir::new("cachedir-passthrough");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let cache = tmp.join("cache");
    let tree = tmp.subdir("tree");
    std::fs::write(tree.join("AppRun"), b"#!/bin/sh\n").unwrap();
    let mut big = text(3 << 20, 7);
    big.extend(pseudo_random(7, 100_000));
    std::fs::write(tree.join("libbig.so"), &big).unwrap();
    std::fs::write(tree.join("small.txt"), text(5000, 3)).unwrap();
    let sqfs = tmp.join("app.sqfs");
    mksquashfs(&tree, &sqfs, &["-comp", "zstd", "-b", "128K"]);
    wrap_squashfs_as_appimage(&sqfs, &src.join("App.AppImage"));
    let args = ["--cache-dir", cache.to_str().unwrap(), "-v"];
    let read_big = |m: &Mount| std::fs::read(m.mountpoint.join("App/libbig.so")).unwrap();

    // First daemon: the app reads libbig as it starts; its whole copy is
    // written before the daemon exits.
    let mut m = Mount::start(&src, &mnt, &args);
    assert!(read_big(&m) == big);
    m.unmount().expect("unmount");
    let log = m.log_text();
    if log.contains("offers no FUSE passthrough") {
        eprintln!("skipped: this kernel has no FUSE passthrough\n{log}");
        return;
    }
    assert_eq!(
        logged_counter(&log, "passthrough at exit", "written"),
        1,
        "{log}"
    );
    let (data, sums) = whole_copies(&cache);
    assert_eq!(
        (data.len(), sums.len()),
        (1, 1),
        "one copy and its checksums"
    );
    assert!(
        std::fs::read(&data[0]).unwrap() == big,
        "the copy is the file"
    );
    assert_eq!(std::fs::metadata(&data[0]).unwrap().mode() & 0o777, 0o600);

    // Second daemon: the copy is checked and the kernel reads it directly:
    // the file's bytes cost no READ request.
    let mut m = Mount::start(&src, &mnt, &args);
    assert!(read_big(&m) == big);
    assert!(read_big(&m) == big);
    m.unmount().expect("unmount");
    let log = m.log_text();
    let pt = |name| logged_counter(&log, "passthrough at exit", name);
    assert_eq!(pt("verified"), 1, "{log}");
    assert!(pt("passthrough_opens") >= 2, "{log}");
    assert_eq!(
        requests(&log, "read"),
        0,
        "no byte read through the daemon\n{log}"
    );

    // A damaged copy (one byte changed, then one cut short) is found out,
    // deleted and never served: the bytes come from the image, and the
    // copy is written again.
    for damage in ["flip", "truncate"] {
        let (data, _) = whole_copies(&cache);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&data[0])
            .unwrap();
        match damage {
            "flip" => {
                use std::os::unix::fs::FileExt;
                f.write_all_at(&[big[2 << 20] ^ 0x55], 2 << 20).unwrap();
            }
            _ => f.set_len(1 << 20).unwrap(),
        }
        drop(f);
        let mut m = Mount::start(&src, &mnt, &args);
        assert!(read_big(&m) == big, "{damage}: the image's own bytes");
        m.unmount().expect("unmount");
        let log = m.log_text();
        assert_eq!(
            logged_counter(&log, "passthrough at exit", "verified"),
            0,
            "{damage}\n{log}"
        );
        assert_eq!(
            logged_counter(&log, "passthrough at exit", "passthrough_opens"),
            0,
            "{damage}\n{log}"
        );
        assert!(
            logged_counter(&log, "cache folder at exit", "dropped") >= 1,
            "{damage}\n{log}"
        );
        let (data, sums) = whole_copies(&cache);
        assert_eq!((data.len(), sums.len()), (1, 1), "{damage}: written again");
        assert!(
            std::fs::read(&data[0]).unwrap() == big,
            "{damage}: the new copy is right"
        );
    }

    // The AppImage replaced by one whose libbig differs in one byte, with
    // the same size and modification time: the old copy is not used.
    let mut other = big.clone();
    other[100] ^= 1;
    std::fs::write(tree.join("libbig.so"), &other).unwrap();
    let sqfs2 = tmp.join("app2.sqfs");
    mksquashfs(&tree, &sqfs2, &["-comp", "zstd", "-b", "128K"]);
    let app = src.join("App.AppImage");
    let replacement = tmp.join("App2.AppImage");
    wrap_squashfs_as_appimage(&sqfs2, &replacement);
    replace_keeping_size_and_time(&app, &replacement);
    let mut m = Mount::start(&src, &mnt, &args);
    assert!(read_big(&m) == other, "the new image's bytes");
    m.unmount().expect("unmount");
    let log = m.log_text();
    assert_eq!(
        logged_counter(&log, "passthrough at exit", "passthrough_opens"),
        0,
        "{log}"
    );
}
