//! Tests of the ISO 9660 reader against `xorriso` extractions of the
//! shared test images and of images built here, plus hostile and corrupted
//! images.
//!
//! Ground truth is `xorriso -osirrox on:device_files -indev IMAGE -extract /
//! DIR`, which decodes zisofs content on extraction. Tests that need xorriso
//! are skipped (with a message) where it is not installed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::node::{Content, FileData};
use super::*;
use crate::test_support::{apps, iso, kind_of, TempDir};
use crate::tree::Kind;

fn open_path(path: &Path) -> Result<IsoImage> {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    open(
        Backing::new(Arc::new(file), 0, len),
        Arc::new(BlockCache::new(64 << 20)),
    )
}

/// A directory under the system temp dir, removed on drop.
fn have_xorriso() -> bool {
    let ok = Command::new("xorriso")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("xorriso not installed: skipping");
    }
    ok
}

fn xorriso(args: &[&std::ffi::OsStr]) {
    let out = Command::new("xorriso")
        .args(args)
        .output()
        .expect("run xorriso");
    assert!(
        out.status.success(),
        "xorriso {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `xorriso!(a, b, ...)` runs xorriso with arguments of any `AsRef<OsStr>` type.
macro_rules! xorriso {
    ($($a:expr),* $(,)?) => {
        xorriso(&[$(AsRef::<std::ffi::OsStr>::as_ref(&$a)),*])
    };
}

/// One node as seen through a path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Item {
    kind: Kind,
    perm: u16,
    size: u64,
    mtime: i64,
    target: Option<Vec<u8>>,
    rdev: u32,
    data: Option<Vec<u8>>,
}

type Snapshot = BTreeMap<Vec<u8>, Item>;

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Reads a whole file through `read`, in chunks of an odd size.
fn read_all(img: &IsoImage, node: NodeId, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = img.read(node, out.len() as u64, 50_001).unwrap();
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
        assert!(out.len() as u64 <= size);
    }
    assert_eq!(out.len() as u64, size, "short file");
    out
}

/// Every path of the image with its metadata and content; also checks that
/// `lookup` and `attr` agree with `read_dir`.
fn snapshot(img: &IsoImage) -> Snapshot {
    let mut map = Snapshot::new();
    let mut stack = vec![(Vec::new(), img.root())];
    assert_eq!(img.attr(img.root()).unwrap().kind, Kind::Dir);
    while let Some((path, dir)) = stack.pop() {
        let entries = img.read_dir(dir).unwrap();
        assert!(
            entries.windows(2).all(|w| w[0].name < w[1].name),
            "listing not sorted/unique"
        );
        for e in entries.iter() {
            assert_eq!(img.lookup(dir, &e.name).unwrap(), Some(e.node));
            let attr = img.attr(e.node).unwrap();
            assert_eq!(attr.kind, e.kind);
            assert!(e.node < 1 << crate::tree::NODE_ID_BITS);
            let p = join(&path, &e.name);
            let mut item = Item {
                kind: attr.kind,
                perm: attr.perm,
                size: if attr.kind == Kind::Dir { 0 } else { attr.size },
                mtime: attr.mtime,
                target: None,
                rdev: attr.rdev,
                data: None,
            };
            match attr.kind {
                Kind::Dir => stack.push((p.clone(), e.node)),
                Kind::File => item.data = Some(read_all(img, e.node, attr.size)),
                Kind::Symlink => item.target = Some(img.read_link(e.node).unwrap()),
                _ => {}
            }
            map.insert(p, item);
        }
    }
    map
}

/// Linux `new_encode_dev`.
fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The same for a directory on disk.
fn disk_snapshot(root: &Path) -> Snapshot {
    let mut map = Snapshot::new();
    let mut stack = vec![(Vec::new(), root.to_path_buf())];
    while let Some((path, dir)) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = join(&path, e.file_name().as_bytes());
            let md = fs::symlink_metadata(e.path()).unwrap();
            let ft = md.file_type();
            let kind = kind_of(ft);
            let mut item = Item {
                kind,
                perm: (md.mode() & 0o7777) as u16,
                size: if kind == Kind::Dir { 0 } else { md.len() },
                mtime: md.mtime(),
                target: None,
                rdev: if matches!(kind, Kind::BlockDev | Kind::CharDev) {
                    encode_dev(md.rdev())
                } else {
                    0
                },
                data: None,
            };
            match kind {
                Kind::Dir => stack.push((p.clone(), e.path())),
                Kind::File => item.data = Some(fs::read(e.path()).unwrap()),
                Kind::Symlink => {
                    item.target = Some(fs::read_link(e.path()).unwrap().into_os_string().into_vec())
                }
                _ => {}
            }
            map.insert(p, item);
        }
    }
    map
}

/// Extracts `image` with xorriso.
fn extract(image: &Path) -> TempDir {
    let dir = TempDir::new("x");
    let out = dir.path().join("root");
    xorriso!(
        "-osirrox",
        "on:device_files",
        "-indev",
        image,
        "-extract",
        "/",
        out
    );
    dir
}

/// Compares two snapshots field by field; symlink mtimes are ignored
/// (extraction does not restore them).
fn assert_same(ours: &Snapshot, truth: &Snapshot, what: &str) {
    let mut problems = Vec::new();
    for (path, want) in truth {
        let shown = String::from_utf8_lossy(path);
        match ours.get(path) {
            None => problems.push(format!("missing {shown}")),
            Some(got) => {
                let mut got = got.clone();
                let mut want = want.clone();
                if want.kind == Kind::Symlink {
                    (got.mtime, want.mtime) = (0, 0);
                    // Extraction does not restore symlink modes either.
                    (got.perm, want.perm) = (0, 0);
                }
                if got != want {
                    let (gd, wd) = (got.data.take(), want.data.take());
                    if gd != wd {
                        problems.push(format!("{shown}: content differs"));
                    }
                    if got != want {
                        problems.push(format!("{shown}: ours {got:?}\n   want {want:?}"));
                    }
                }
            }
        }
    }
    for path in ours.keys().filter(|p| !truth.contains_key(*p)) {
        problems.push(format!("extra {}", String::from_utf8_lossy(path)));
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

/// Opens `image` and compares it with its xorriso extraction.
fn check_against_xorriso(image: &Path) -> IsoImage {
    let img = open_path(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let x = extract(image);
    let truth = disk_snapshot(&x.path().join("root"));
    let ours = snapshot(&img);
    assert_same(&ours, &truth, &image.display().to_string());
    img
}

#[test]
fn shared_images_match_xorriso() {
    if !have_xorriso() {
        return;
    }
    for path in [
        apps::extract(),
        apps::extract_no_magic(),
        apps::assistant(),
        iso::archive(),
        iso::single_file(),
        iso::minimal(),
        iso::plain(),
        iso::joliet_rockridge(),
        iso::rockridge_ce(),
        iso::xorriso_tree(),
        iso::zisofs(),
        iso::multi_extent(),
    ] {
        let img = check_against_xorriso(&path);
        let info = img.info();
        assert_eq!((info.format, info.block_size), ("iso9660", 2048));
        assert_eq!(info.inode_count, Some(img.nodes.len() as u64));
    }
}

#[test]
fn shared_image_details() {
    let img = open_path(&apps::extract()).unwrap();
    assert_eq!(img.info().compression, "zisofs");
    assert_eq!(img.block_size(), img.info().block_size);
    let names: Vec<_> = img
        .read_dir(img.root())
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            &b".DirIcon"[..],
            b"AppRun",
            b"Extract.desktop",
            b"Extract.png",
            b"usr"
        ]
    );
    // Names are case-sensitive.
    assert_eq!(img.lookup(img.root(), b"apprun").unwrap(), None);
    assert!(img.lookup(img.root(), b"AppRun").unwrap().is_some());

    let img = open_path(&iso::minimal()).unwrap();
    assert!(img.read_dir(img.root()).unwrap().is_empty());
    assert_eq!(img.info().compression, "none");

    // Hard link with a Rock Ridge 1.12 serial number: one node, nlink 2.
    let img = open_path(&iso::joliet_rockridge()).unwrap();
    let a = img.lookup(img.root(), b"hardlink").unwrap().unwrap();
    let b = img
        .lookup(img.root(), b"long-joliet-file-name.textfile")
        .unwrap()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(img.attr(a).unwrap().nlink, 2);

    // One file in three extents.
    let img = open_path(&iso::multi_extent()).unwrap();
    let entries = img.read_dir(img.root()).unwrap();
    let file = entries.iter().find(|e| e.name == b"file").unwrap();
    assert!(matches!(&img.nodes[(file.node - 1) as usize].content,
        Content::File(FileData::Extents(e)) if e.len() == 3));

    // Plain ISO 9660: version numbers dropped, fixed modes.
    let img = open_path(&iso::plain()).unwrap();
    let f = img.lookup(img.root(), b"GPL_3_0.TXT").unwrap().unwrap();
    assert_eq!(img.attr(f).unwrap().perm, 0o555);

    // Trait errors.
    let img = open_path(&iso::xorriso_tree()).unwrap();
    let root = img.root();
    let file = img.lookup(root, b"file").unwrap().unwrap();
    let link = img.lookup(root, b"symlink").unwrap().unwrap();
    assert!(matches!(img.lookup(file, b"x"), Err(Error::NotDir)));
    assert!(matches!(img.read_dir(file), Err(Error::NotDir)));
    assert!(matches!(img.read(root, 0, 10), Err(Error::IsDir)));
    assert!(matches!(img.read(link, 0, 10), Err(Error::Invalid)));
    assert!(matches!(img.read_link(file), Err(Error::Invalid)));
    assert!(matches!(img.attr(0), Err(Error::NotFound)));
    assert!(matches!(img.attr(1 << 40), Err(Error::NotFound)));
    assert_eq!(img.read_link(link).unwrap(), b"file");
    assert_eq!(img.read(file, 1, 3).unwrap(), b"ell");
    assert_eq!(img.read(file, 1 << 40, 3).unwrap(), b"");
    assert!(img.xattrs(file).unwrap().is_empty());
}

/// Opens (and walks and reads) a hostile image without catching panics:
/// it must error or open, quickly.
fn survives(path: &Path) -> Option<Snapshot> {
    let start = Instant::now();
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let backing = Backing::new(Arc::new(file), 0, len);
    let result = match walk::read_tree(&backing) {
        Ok(tree) => {
            let cache = Arc::new(BlockCache::new(8 << 20));
            let img = IsoImage {
                backing,
                image_id: cache.new_image_id(),
                cache,
                memory: node::memory_bytes(&tree.nodes),
                nodes: tree.nodes,
                zisofs: tree.zisofs,
            };
            Some(lenient_snapshot(&img))
        }
        Err(_) => None,
    };
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{}: too slow",
        path.display()
    );
    result
}

/// Like [`snapshot`] but read errors are fine.
fn lenient_snapshot(img: &IsoImage) -> Snapshot {
    let mut map = Snapshot::new();
    let mut stack = vec![(Vec::new(), img.root())];
    while let Some((path, dir)) = stack.pop() {
        for e in img.read_dir(dir).unwrap().iter() {
            let attr = img.attr(e.node).unwrap();
            let p = join(&path, &e.name);
            if attr.kind == Kind::Dir {
                stack.push((p.clone(), e.node));
            }
            let data = img.read(e.node, 0, 1 << 20).ok();
            let _ = img.read(e.node, attr.size.saturating_sub(3), 7);
            let target = img.read_link(e.node).ok();
            map.insert(
                p,
                Item {
                    kind: attr.kind,
                    perm: attr.perm,
                    size: attr.size,
                    mtime: 0,
                    target,
                    rdev: 0,
                    data,
                },
            );
        }
    }
    map
}

#[test]
fn hostile_images_error_or_open() {
    // The continuation loop must be cut (xorriso itself hangs on it).
    assert!(survives(&iso::ce_loop()).is_none());
    // Only volume descriptors: nothing to open.
    assert!(survives(&iso::volume_descriptors_only()).is_none());
    // A partial copy: the file ends 10 000 bytes before its volume does.
    let dir = TempDir::new("short");
    let path = dir.path().join("short.iso");
    let bytes = fs::read(apps::extract()).unwrap();
    let at = 16 * 2048 + 80;
    let volume = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize * 2048;
    fs::write(&path, &bytes[..volume - 10_000]).unwrap();
    assert!(matches!(open_path(&path), Err(Error::Corrupt(m)) if m.contains("truncated")));
    // Overflowing zisofs sizes: the tree opens, reading the file fails.
    let s = survives(&iso::zisofs_overflow()).expect("the tree opens");
    assert_eq!(
        s.values().filter(|i| i.kind == Kind::File).count(),
        2,
        "{s:?}"
    );
    assert!(
        s.values().all(|i| i.kind != Kind::File || i.data.is_none()),
        "{s:?}"
    );
    if let Some(s) = survives(&iso::zf_overflow()) {
        assert!(
            s.values().all(|i| i.kind != Kind::File || i.data.is_none()),
            "{s:?}"
        );
    }
}

#[test]
fn directory_loop_is_corrupt() {
    // Point the record of "dir" back at the root directory's extent.
    let mut bytes = fs::read(iso::xorriso_tree()).unwrap();
    let root = record::parse(&bytes[16 * 2048 + 156..16 * 2048 + 190])
        .unwrap()
        .extent;
    let at = root as usize * 2048;
    let mut pos = at;
    loop {
        let rec = record::parse(&bytes[pos..at + 2048]).unwrap();
        if rec.name.eq_ignore_ascii_case(b"DIR") {
            break;
        }
        pos += rec.len;
    }
    bytes[pos + 2..pos + 6].copy_from_slice(&root.to_le_bytes());
    bytes[pos + 6..pos + 10].copy_from_slice(&root.to_be_bytes());
    let dir = TempDir::new("loop");
    let path = dir.path().join("loop.iso");
    fs::write(&path, &bytes).unwrap();
    match open_path(&path) {
        Err(Error::Corrupt(msg)) => assert!(msg.contains("loop"), "{msg}"),
        other => panic!("expected a loop error, got {:?}", other.map(|i| i.info())),
    }
}

/// Small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn corrupted_images_do_not_panic() {
    let dir = TempDir::new("corrupt");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for path in [apps::extract(), iso::zisofs()] {
        let orig = fs::read(&path).unwrap();
        let good = open_path(&path).unwrap();
        // Byte positions worth hitting: descriptors, directories and the
        // first bytes of every file (zisofs headers and pointers).
        let mut hot: Vec<u64> = (16 * 2048..20 * 2048).collect();
        for n in &good.nodes {
            if let Content::File(FileData::Extents(e)) = &n.content {
                hot.extend(e.iter().map(|e| e.pos));
            }
            if let Content::File(FileData::Zisofs(z)) = &n.content {
                hot.extend((0..64).map(|i| z.pos() + i));
            }
        }
        for round in 0..120 {
            let mut bytes = orig.clone();
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = if rng.below(2) == 0 {
                    hot[rng.below(hot.len() as u64) as usize] + rng.below(4096)
                } else {
                    rng.below(bytes.len() as u64)
                } as usize;
                if at < bytes.len() {
                    bytes[at] = rng.next() as u8;
                }
            }
            if round % 10 == 9 {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
            }
            let path = dir.path().join("img");
            fs::write(&path, &bytes).unwrap();
            survives(&path);
        }
    }
}

/// Writes the source tree the built images are made of; returns the 3 MiB
/// file's content.
fn make_source(root: &Path) -> Vec<u8> {
    let w = |p: &str, data: &[u8]| fs::write(root.join(p), data).unwrap();
    let mut rng = Rng(42);
    // Deep tree (relocated when deep paths are off) with a big directory.
    let mut deep = root.to_path_buf();
    for i in 1..=12 {
        deep.push(format!("d{i}"));
        fs::create_dir(&deep).unwrap();
        if i == 9 {
            for n in 0..40 {
                fs::write(
                    deep.join(format!("{n:03}-{}", "x".repeat(90))),
                    n.to_string(),
                )
                .unwrap();
            }
        }
    }
    fs::write(deep.join("deepfile"), b"deep").unwrap();
    // Awkward names.
    w(&"n".repeat(200), b"long name");
    w(&"m".repeat(255), b"longest name");
    for n in ["a;b", "trail.", "x;1", "sp ace ", "αβγ", ".hidden"] {
        w(n, n.as_bytes());
    }
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"bad\xff\xfeutf8")),
        b"latin",
    )
    .unwrap();
    // Symlinks.
    symlink("d1/d2", root.join("sl_rel")).unwrap();
    symlink("/tmp/..", root.join("sl_abs")).unwrap();
    symlink(
        format!("/{}/{}/../y", "z".repeat(200), "q".repeat(200)),
        root.join("sl_long"),
    )
    .unwrap();
    symlink(std::ffi::OsStr::from_bytes(b"x\xff"), root.join("sl_bytes")).unwrap();
    symlink("missing", root.join("sl_dangling")).unwrap();
    // Sizes around the zisofs block sizes.
    w("empty", b"");
    for (name, len) in [
        ("b32k", 32768),
        ("b32k1", 32769),
        ("b64k", 65536),
        ("b64k1", 65537),
        ("b128k", 131072),
        ("b128k1", 131073),
        ("zeros", 300_000),
    ] {
        let data: Vec<u8> = if name == "zeros" {
            vec![0; len]
        } else {
            (0..len)
                .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
                .collect()
        };
        w(name, &data);
    }
    // 3 MiB: text-like, then random, then zeros.
    let mut big: Vec<u8> = (0..1 << 20)
        .map(|i| b"lorem ipsum dolor sit amet "[i % 27])
        .collect();
    big.extend((0..1 << 20).map(|_| rng.next() as u8));
    big.extend(std::iter::repeat_n(0u8, 1 << 20));
    w("big", &big);
    // Hard link, modes, times, special files.
    w("small", b"small file\n");
    fs::hard_link(root.join("small"), root.join("small_link")).unwrap();
    w("setuid", b"#!/bin/sh\n");
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::create_dir(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(981_173_106);
    File::options()
        .write(true)
        .open(root.join("small"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c(&root.join("fifo")).as_ptr(), 0o640) },
        0
    );
    if unsafe { libc::geteuid() } == 0 {
        let dev = libc::makedev(1, 3);
        assert_eq!(
            unsafe { libc::mknod(c(&root.join("null")).as_ptr(), libc::S_IFCHR | 0o666, dev) },
            0
        );
        let dev = libc::makedev(259, 70_000);
        assert_eq!(
            unsafe { libc::mknod(c(&root.join("blk")).as_ptr(), libc::S_IFBLK | 0o600, dev) },
            0
        );
    }
    big
}

/// Random reads at odd offsets and sizes, compared with the source.
fn random_reads(img: &IsoImage, node: NodeId, want: &[u8]) {
    let mut rng = Rng(7);
    let len = want.len() as u64;
    for _ in 0..200 {
        let off = rng.below(len + 10);
        let size = rng.below(300_000) as u32;
        let got = img.read(node, off, size).unwrap();
        let lo = off.min(len) as usize;
        let hi = (off + u64::from(size)).min(len) as usize;
        assert_eq!(got, &want[lo..hi], "read({off}, {size})");
    }
    // Exactly at block edges.
    for edge in [32768u64, 65536, 131072, 1 << 20, 2 << 20] {
        let got = img.read(node, edge - 1, 2).unwrap();
        assert_eq!(got, &want[edge as usize - 1..edge as usize + 1]);
    }
}

/// A read at the start of a zisofs file queues the next blocks.
fn read_ahead_fills_the_cache(image: &Path, big: &[u8]) {
    let img = open_path(image).unwrap();
    let node = img.lookup(img.root(), b"big").unwrap().unwrap();
    assert_eq!(img.read(node, 0, 10).unwrap(), &big[..10]);
    let start = Instant::now();
    while img.cache.stats().misses < 1 + 4 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no read-ahead: {:?}",
            img.cache.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The next block is served from the cache.
    let before = img.cache.stats();
    // 128 KiB in is within the four blocks read ahead at every block size.
    let bs = 1 << 17;
    assert_eq!(
        img.read(node, bs, 10).unwrap(),
        &big[bs as usize..bs as usize + 10]
    );
    let after = img.cache.stats();
    assert!(
        after.hits + after.waits > before.hits + before.waits,
        "{before:?} {after:?}"
    );
}

#[test]
fn built_images_match_xorriso() {
    if !have_xorriso() {
        return;
    }
    let work = TempDir::new("built");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    let big = make_source(&src);
    let image = |tag: &str| work.path().join(format!("{tag}.iso"));

    // mkisofs style, Rock Ridge + Joliet, deep paths kept.
    xorriso!("-as", "mkisofs", "-R", "-J", "-o", image("mkisofs"), src);
    let img = check_against_xorriso(&image("mkisofs"));
    assert_eq!(img.info().compression, "none");

    // Deep directories relocated into rr_moved, hard links with serial
    // numbers (RRIP 1.12).
    let reloc = image("reloc");
    xorriso!(
        "-compliance",
        "deep_paths_off:long_paths_off:new_rr",
        "-hardlinks",
        "on",
        "-rr_reloc_dir",
        "rr_moved",
        "-outdev",
        reloc,
        "-map",
        src,
        "/",
        "-commit",
    );
    let img = check_against_xorriso(&reloc);
    let small = img.lookup(img.root(), b"small").unwrap().unwrap();
    assert_eq!(img.lookup(img.root(), b"small_link").unwrap(), Some(small));
    assert_eq!(img.attr(small).unwrap().nlink, 2);
    assert_eq!(img.attr(small).unwrap().mtime, 981_173_106);
    // The relocated directories really are relocated in this image.
    let raw = fs::read(&reloc).unwrap();
    assert!(
        raw.windows(8).any(|w| w == b"RR_MOVED"),
        "no relocation happened"
    );
    // The same tree on disk is the ground truth too.
    let on_disk = disk_snapshot(&src);
    assert_eq!(
        snapshot(&img).keys().collect::<Vec<_>>(),
        on_disk.keys().collect::<Vec<_>>()
    );

    // zisofs at each block size.
    for bs in ["32k", "64k", "128k"] {
        let z = image(&format!("zisofs{bs}"));
        let opts = format!("level=6:block_size={bs}:bpt_target=-1");
        xorriso!(
            "-zisofs",
            opts,
            "-outdev",
            z,
            "-map",
            src,
            "/",
            "-set_filter_r",
            "--zisofs",
            "/",
            "--",
            "-commit"
        );
        let img = check_against_xorriso(&z);
        assert_eq!(img.info().compression, "zisofs");
        assert_eq!(img.block_size(), img.info().block_size);
        let node = img.lookup(img.root(), b"big").unwrap().unwrap();
        assert!(matches!(
            &img.nodes[(node - 1) as usize].content,
            Content::File(FileData::Zisofs(_))
        ));
        assert_eq!(img.attr(node).unwrap().size, big.len() as u64);
        random_reads(&img, node, &big);
        read_ahead_fills_the_cache(&z, &big);
        let ours = snapshot(&img);
        assert_same(&ours, &on_disk, &format!("zisofs {bs} vs source"));
    }
}

#[test]
fn unmarked_relocation_dir_is_hidden() {
    if !have_xorriso() {
        return;
    }
    // When the relocation directory exists before xorriso runs, it is not
    // marked RE (as with mkisofs' rr_moved): it must still be hidden once
    // its relocated directories are shown in their real place.
    let work = TempDir::new("rrmoved");
    let src = work.path().join("src");
    let deep = src.join("a/b/c/d/e/f/g/h/i/j");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f"), b"deep\n").unwrap();
    fs::create_dir(src.join("rr_moved")).unwrap();
    let iso = work.path().join("r.iso");
    xorriso!(
        "-compliance",
        "deep_paths_off",
        "-rr_reloc_dir",
        "rr_moved",
        "-outdev",
        iso,
        "-map",
        src,
        "/",
        "-commit"
    );
    let img = open_path(&iso).unwrap();
    let names: Vec<_> = img
        .read_dir(img.root())
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(names, [b"a".to_vec()]);
    let mut node = img.root();
    for part in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "f"] {
        node = img.lookup(node, part.as_bytes()).unwrap().unwrap();
    }
    assert_eq!(img.read(node, 0, 100).unwrap(), b"deep\n");
}

#[test]
fn joliet_only_image() {
    if !have_xorriso() {
        return;
    }
    let work = TempDir::new("joliet");
    let src = work.path().join("src");
    fs::create_dir_all(src.join("Sub.Dir")).unwrap();
    fs::write(src.join("Mixed Case name.txt"), b"hi\n").unwrap();
    fs::write(src.join("Sub.Dir/αβγ"), b"y\n").unwrap();
    fs::write(src.join(format!("{}.txt", "j".repeat(60))), b"long\n").unwrap();
    let iso = work.path().join("j.iso");
    xorriso!(
        "-rockridge",
        "off",
        "-joliet",
        "on",
        "-outdev",
        iso,
        "-map",
        src,
        "/",
        "-commit"
    );
    let img = check_against_xorriso(&iso);
    let sub = img.lookup(img.root(), b"Sub.Dir").unwrap().unwrap();
    assert!(img.lookup(sub, "αβγ".as_bytes()).unwrap().is_some());
    assert_eq!(img.attr(sub).unwrap().perm, 0o555);
}

#[test]
fn concurrent_reads_share_the_cache() {
    let img = Arc::new(open_path(&apps::assistant()).unwrap());
    let want = snapshot(&img);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let img = img.clone();
            std::thread::spawn(move || snapshot(&img))
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap() == want);
    }
    assert!(img.cache.stats().hits > 0);
}
