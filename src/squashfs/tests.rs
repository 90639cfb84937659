//! Tests of the SquashFS reader against images built with `mksquashfs`:
//! the shared test images checked against `unsquashfs` extractions, and
//! images built here checked against their source trees.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::superblock::{Superblock, SUPERBLOCK_SIZE};
use super::*;
use crate::detect::{detect, Payload};
use crate::test_support::{apps, kind_of, run, sqfs};
use crate::tree::Kind;

// ---------------------------------------------------------------- helpers

fn new_cache() -> Arc<BlockCache> {
    Arc::new(BlockCache::new(32 << 20))
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "appimagefs-sqfs-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Opens a bare SquashFS image file.
fn open_bare(path: &Path) -> Result<SquashImage> {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut head = vec![0u8; SUPERBLOCK_SIZE.min(len as usize)];
    file.read_exact_at(&mut head, 0).unwrap();
    let sb = Superblock::parse(&head, len)?;
    open(Backing::new(Arc::new(file), 0, len), sb, new_cache())
}

/// Opens the SquashFS payload of an AppImage; also returns its offset.
fn open_appimage(path: &Path) -> (SquashImage, u64) {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let (offset, superblock) = match detect(&file).unwrap().payload {
        Payload::SquashFs { offset, superblock } => (offset, superblock),
        other => panic!("{path:?}: not a type 2 AppImage: {other:?}"),
    };
    let backing = Backing::new(Arc::new(file), offset, len - offset);
    (open(backing, superblock, new_cache()).unwrap(), offset)
}

/// Extracts `image` (payload at `offset`) with unsquashfs into `dest`.
fn unsquashfs(image: &Path, offset: u64, dest: &Path) {
    let mut cmd = Command::new("unsquashfs");
    cmd.arg("-d").arg(dest).arg("-f").arg("-no-progress");
    if offset != 0 {
        cmd.arg("-o").arg(offset.to_string());
    }
    run(cmd.arg(image));
}

use crate::test_support::sqfs::mksquashfs;

/// Reads a whole file through the tree in chunks of an odd size.
fn read_all(img: &SquashImage, node: NodeId, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let piece = img.read(node, out.len() as u64, 100_003).unwrap();
        if piece.is_empty() {
            break;
        }
        out.extend_from_slice(&piece);
    }
    assert_eq!(out.len() as u64, size);
    out
}

/// Extended attributes of `path` as the kernel reports them.
fn fs_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: valid NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {path:?}");
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: as above.
        let v = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(v >= 0, "lgetxattr {path:?}");
        value.truncate(v as usize);
        out.push((name.to_vec(), value));
    }
    out.sort();
    out
}

#[derive(Default)]
struct Checks {
    /// Compare uid/gid (only meaningful when the reference was made as root).
    owners: bool,
    /// Compare extended attributes.
    xattrs: bool,
    /// Names at the top level that exist only in the image.
    extra_top: Vec<&'static [u8]>,
}

/// Walks `node` and `dir` side by side and asserts they hold the same tree.
/// Returns the number of nodes compared.
fn compare_tree(img: &SquashImage, node: NodeId, dir: &Path, checks: &Checks, top: bool) -> usize {
    let listing = img.read_dir(node).unwrap();
    let mut ours: BTreeMap<Vec<u8>, (NodeId, Kind)> = listing
        .iter()
        .map(|e| (e.name.clone(), (e.node, e.kind)))
        .collect();
    assert_eq!(ours.len(), listing.len(), "duplicate names in {dir:?}");
    if top {
        for extra in &checks.extra_top {
            ours.remove(*extra);
        }
    }
    let theirs: BTreeMap<Vec<u8>, PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().as_bytes().to_vec(), e.path())
        })
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "listing of {dir:?}"
    );
    let mut count = 1;
    for (name, (child, kind)) in &ours {
        let path = &theirs[name];
        let md = fs::symlink_metadata(path).unwrap();
        let attr = img.attr(*child).unwrap();
        assert_eq!(img.lookup(node, name).unwrap(), Some(*child), "{path:?}");
        assert_eq!(*kind, kind_of(md.file_type()), "{path:?}");
        assert_eq!(attr.kind, *kind, "{path:?}");
        assert_eq!(u32::from(attr.perm), md.mode() & 0o7777, "{path:?}");
        if checks.owners {
            assert_eq!((attr.uid, attr.gid), (md.uid(), md.gid()), "{path:?}");
        }
        if *kind != Kind::Symlink && *kind != Kind::Dir {
            assert_eq!(attr.mtime, md.mtime(), "{path:?}");
        }
        if checks.xattrs {
            let mut x = img.xattrs(*child).unwrap();
            x.sort();
            assert_eq!(x, fs_xattrs(path), "xattrs of {path:?}");
        }
        match kind {
            Kind::File => {
                assert_eq!(attr.size, md.len(), "{path:?}");
                assert_eq!(attr.nlink as u64, md.nlink(), "{path:?}");
                let data = read_all(img, *child, attr.size);
                assert!(data == fs::read(path).unwrap(), "contents of {path:?}");
            }
            Kind::Symlink => {
                let target = img.read_link(*child).unwrap();
                assert_eq!(target, fs::read_link(path).unwrap().as_os_str().as_bytes());
                assert_eq!(attr.size, target.len() as u64);
            }
            Kind::Dir => count += compare_tree(img, *child, path, checks, false),
            Kind::BlockDev | Kind::CharDev => assert_eq!(u64::from(attr.rdev), md.rdev()),
            Kind::Fifo | Kind::Socket => {}
        }
        count += 1;
    }
    count
}

/// Resolves a `/`-separated path from the root.
fn resolve(img: &SquashImage, path: &[u8]) -> NodeId {
    let mut node = img.root();
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        node = img
            .lookup(node, part)
            .unwrap()
            .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(path)));
    }
    node
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Half compressible text, half noise.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let n = noise(len, seed);
    n.iter()
        .enumerate()
        .map(|(i, &b)| {
            if (i / 5000) % 2 == 0 {
                b'a' + (i % 23) as u8
            } else {
                b
            }
        })
        .collect()
}

// ------------------------------------------------------ shared test images

#[test]
fn bare_images_match_unsquashfs() {
    let mut images: Vec<PathBuf> = ["gzip", "xz", "lz4", "lzo", "zstd"]
        .into_iter()
        .map(sqfs::edge_tree)
        .collect();
    for comp in ["gzip", "lz4", "lzma", "lzo", "xz", "zstd"] {
        images.push(sqfs::folder_symlink(Some(comp)));
    }
    images.push(sqfs::folder_symlink(None));
    images.push(sqfs::big_dir());
    let root_is_root = unsafe { libc::geteuid() } == 0;
    for path in images {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let img = open_bare(&path).unwrap();
        let scratch = Scratch::new("fx");
        let dest = scratch.path().join("root");
        unsquashfs(&path, 0, &dest);
        let checks = Checks {
            owners: root_is_root,
            xattrs: false,
            ..Default::default()
        };
        let n = compare_tree(&img, img.root(), &dest, &checks, true);
        assert!(n > 1, "{name}");
        if name == "dir_read.sqs" {
            assert_eq!(img.read_dir(img.root()).unwrap().len(), 300);
            assert_eq!(img.info().block_size, 4096);
            let listing = img.attr(img.root()).unwrap().size;
            assert!(listing > 2 * 8192, "spans metadata blocks: {listing}");
        }
    }
}

#[test]
fn edge_tree_details() {
    let img = open_bare(&sqfs::edge_tree("zstd")).unwrap();
    let long = vec![b'A'; 255];
    let node = img
        .lookup(img.root(), &long)
        .unwrap()
        .expect("255-byte name");
    assert_eq!(img.attr(node).unwrap().size, 1);
    let sparse = resolve(&img, b"2/another dir/sparse_file");
    let attr = img.attr(sparse).unwrap();
    assert_eq!(attr.size, 65536);
    let data = read_all(&img, sparse, attr.size);
    assert!(data.iter().all(|&b| b == 0));
    assert_eq!(
        img.read_link(resolve(&img, b"broken_symlink")).unwrap(),
        b"I_DONT_EXIST"
    );
    assert_eq!(img.attr(resolve(&img, b"perm_400")).unwrap().perm, 0o400);
    assert_eq!(img.attr(resolve(&img, b"perm_777")).unwrap().perm, 0o777);
    let info = img.info();
    assert_eq!(
        (info.format, info.compression.as_str()),
        ("squashfs", "zstd")
    );
    assert_eq!(info.inode_count, Some(13));
}

#[test]
fn appimages_match_unsquashfs() {
    let root_is_root = unsafe { libc::geteuid() } == 0;
    for path in [
        apps::echo(),
        apps::echo_elf32(),
        apps::hello_world("xz"),
        apps::hello_world("zstd"),
        apps::hello(),
        apps::scribble(),
        apps::tool(),
    ] {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (img, offset) = open_appimage(&path);
        let scratch = Scratch::new("ai");
        let dest = scratch.path().join("root");
        unsquashfs(&path, offset, &dest);
        let checks = Checks {
            owners: root_is_root,
            xattrs: false,
            ..Default::default()
        };
        let n = compare_tree(&img, img.root(), &dest, &checks, true);
        assert!(n > 5, "{name}: {n}");
        assert!(
            img.lookup(img.root(), b"AppRun").unwrap().is_some(),
            "{name}"
        );
    }
}

#[test]
fn path_traversal_image_is_refused_without_panic() {
    let img = open_bare(&sqfs::path_traversal()).unwrap();
    let root = img.root();
    assert_eq!(img.attr(root).unwrap().kind, Kind::Dir);
    match img.read_dir(root) {
        Err(Error::Corrupt(msg)) => assert!(msg.contains("two entries named \"DIR\""), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(img.lookup(root, b"x"), Err(Error::Corrupt(_))));
}

#[test]
fn forbidden_names_make_the_directory_unreadable() {
    let original = fs::read(sqfs::folder_symlink(None)).unwrap();
    // The uncompressed directory table holds the entry names verbatim.
    let at = |name: &[u8]| {
        original
            .windows(name.len())
            .rposition(|w| w == name)
            .unwrap()
    };
    let (jet, ufo) = (at(b"jet"), at(b"ufo"));
    let scratch = Scratch::new("names");
    for (pos, patch, dir) in [
        (jet, &b"j/t"[..], &b"foo"[..]),
        (ufo, b"u\0o", b"foo/fighter"),
        (jet - 2, b"\x01\x00..", b"foo"),
    ] {
        let mut bytes = original.clone();
        bytes[pos..pos + patch.len()].copy_from_slice(patch);
        let path = scratch.path().join("img");
        fs::write(&path, &bytes).unwrap();
        let img = open_bare(&path).unwrap();
        let parent = &dir[..dir.iter().rposition(|&b| b == b'/').unwrap_or(0)];
        let node = if parent.is_empty() {
            img.lookup(img.root(), dir).unwrap().unwrap()
        } else {
            let p = resolve(&img, parent);
            img.lookup(p, &dir[parent.len() + 1..]).unwrap().unwrap()
        };
        match img.read_dir(node) {
            Err(Error::Corrupt(m)) => assert!(m.contains("forbidden name"), "{m}"),
            other => panic!("{patch:?}: expected Corrupt, got {other:?}"),
        }
        assert!(img.lookup(node, b"x").is_err());
    }
    assert!(dir::valid_name(b"ok") && dir::valid_name(&[0xff; 255]));
    for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0"] {
        assert!(!dir::valid_name(bad), "{bad:?}");
    }
}

#[test]
fn open_reads_nothing() {
    let path = apps::echo();
    let file = File::open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    let Payload::SquashFs { offset, superblock } = detect(&file).unwrap().payload else {
        panic!("not type 2");
    };
    let cache = new_cache();
    let img = open(
        Backing::new(Arc::new(file), offset, len - offset),
        superblock,
        cache.clone(),
    )
    .unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.bytes), (0, 0, 0));
    img.attr(img.root()).unwrap();
    assert!(cache.stats().misses >= 1);
    // Dropping the image releases its cached blocks.
    drop(img);
    assert_eq!(cache.stats().bytes, 0);
}

/// The id table is read whole once; when it cannot be (its claimed count
/// runs past its block), each id is still read on its own, and an index
/// past the count fails only the node that names it.
#[test]
fn ids_come_from_the_whole_table_or_one_by_one() {
    let path = apps::echo();
    let file = Arc::new(File::open(&path).unwrap());
    let len = file.metadata().unwrap().len();
    let Payload::SquashFs { offset, superblock } = detect(&file).unwrap().payload else {
        panic!("not type 2");
    };
    let open_with = |id_count: u16| {
        let mut sb = superblock.clone();
        sb.id_count = id_count;
        open(
            Backing::new(file.clone(), offset, len - offset),
            sb,
            new_cache(),
        )
        .unwrap()
    };
    let img = open_with(superblock.id_count);
    let root = img.root();
    let want = img.attr(root).unwrap();
    let files: Vec<_> = img.read_dir(root).unwrap().iter().map(|e| e.node).collect();
    for &node in &files {
        img.attr(node).unwrap();
    }
    assert_eq!(
        img.id_values.get().and_then(|v| v.as_ref()).map(Vec::len),
        Some(usize::from(superblock.id_count)),
        "read whole"
    );
    // 2000 ids of 4 bytes would fill most of one 8 KiB block; the real
    // block is much shorter, so the table cannot be read whole.
    let long = open_with(2000);
    let got = long.attr(root).unwrap();
    assert_eq!((got.uid, got.gid), (want.uid, want.gid));
    assert_eq!(long.id_values.get(), Some(&None), "not kept whole");
    let none = open_with(0);
    assert!(matches!(none.attr(root), Err(Error::Corrupt(_))));
}

#[test]
fn wrong_operations_give_the_right_errors() {
    let img = open_bare(&sqfs::edge_tree("gzip")).unwrap();
    let root = img.root();
    let file = resolve(&img, b"2/text");
    let link = resolve(&img, b"symlink");
    assert!(matches!(img.read(root, 0, 10), Err(Error::IsDir)));
    assert!(matches!(img.read(link, 0, 10), Err(Error::Invalid)));
    assert!(matches!(img.read_link(file), Err(Error::Invalid)));
    assert!(matches!(img.lookup(file, b"x"), Err(Error::NotDir)));
    assert!(matches!(img.read_dir(file), Err(Error::NotDir)));
    assert_eq!(img.lookup(root, b".").unwrap(), None);
    assert_eq!(img.lookup(root, b"..").unwrap(), None);
    assert_eq!(img.lookup(root, b"1/TEST").unwrap(), None);
    assert_eq!(img.lookup(root, b"").unwrap(), None);
    assert!(img.read(file, 1687, 10).unwrap().is_empty());
    assert!(img.read(file, u64::MAX, u32::MAX).unwrap().is_empty());
    assert_eq!(img.read(file, 1680, 100).unwrap().len(), 7);
    assert!(img.attr(0xffff_ffff_ffff).is_err());
    assert!(img.attr(u64::MAX).is_err());
    assert!(img.xattrs(file).unwrap().is_empty());
}

// ---------------------------------------------------------- built images

/// Fills `src` with one of everything mksquashfs can store.
fn populate(src: &Path) {
    fs::write(src.join("hello.txt"), b"hello, world\n").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("mixed.bin"), mixed(300_001, 7)).unwrap();
    fs::write(src.join("exact_block"), mixed(131072, 9)).unwrap();
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("sub/deeper/leaf"), b"leaf").unwrap();
    fs::write(src.join("sub/linked"), b"two names, one inode").unwrap();
    fs::hard_link(src.join("sub/linked"), src.join("hardlink")).unwrap();
    // Sparse: a hole, some data, a hole.
    let sparse = File::create(src.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    sparse.write_all_at(&noise(10_000, 3), 1 << 20).unwrap();
    drop(sparse);
    let long_target: String = (0..50).map(|i| format!("dir{i:03}/")).collect::<String>() + "end";
    assert!(long_target.len() > 300);
    std::os::unix::fs::symlink(&long_target, src.join("longlink")).unwrap();
    std::os::unix::fs::symlink("hello.txt", src.join("shortlink")).unwrap();
    fs::write(src.join("n".repeat(255)), b"long name").unwrap();
    fs::write(src.join(OsStr::from_bytes(b"caf\xe9-\xff\xfe")), b"latin-1").unwrap();
    let fifo = CString::new(src.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    drop(std::os::unix::net::UnixListener::bind(src.join("socket")).unwrap());
    // Hard links to a symlink, a fifo and a socket make extended inodes.
    fs::hard_link(src.join("shortlink"), src.join("shortlink2")).unwrap();
    fs::hard_link(src.join("fifo"), src.join("fifo2")).unwrap();
    fs::hard_link(src.join("socket"), src.join("socket2")).unwrap();
    let mut p = fs::metadata(src.join("sub/deeper")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o750);
    fs::set_permissions(src.join("sub/deeper"), p).unwrap();
    // Extended attributes: plain, on a directory, and one large value
    // shared by two files with different sets (stored out of line).
    let big = "v".repeat(300);
    for (file, name, value) in [
        ("hello.txt", "user.test", "hello"),
        ("sub", "user.dir", "on a directory"),
        ("mixed.bin", "user.big", big.as_str()),
        ("mixed.bin", "user.a", "1"),
        ("exact_block", "user.big", big.as_str()),
        ("exact_block", "user.b", "2"),
        ("sub/linked", "user.link", ""),
    ] {
        run(Command::new("setfattr")
            .args(["-n", name, "-v", value])
            .arg(src.join(file)));
    }
    // The other namespaces need privileges; use them when available.
    for name in ["trusted.t", "security.s"] {
        let _ = Command::new("setfattr")
            .args(["-n", name, "-v", "privileged"])
            .arg(src.join("empty"))
            .output();
    }
    // A symlink with an xattr is stored as an extended symlink inode.
    let _ = Command::new("setfattr")
        .args(["-h", "-n", "trusted.sym", "-v", "on a symlink"])
        .arg(src.join("longlink"))
        .output();
    // Device nodes need privileges too; hard-linked ones are extended.
    let dev = CString::new(src.join("chardev").as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o620, libc::makedev(4, 300)) } == 0 {
        fs::hard_link(src.join("chardev"), src.join("chardev2")).unwrap();
        let blk = CString::new(src.join("blockdev").as_os_str().as_bytes()).unwrap();
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::mknod(blk.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(259, 2)) },
            0
        );
    }
}

/// In every directory under `dir`, the attributes of a whole listing
/// read at once ([`ImageTree::attrs`], reusing metadata blocks) are those
/// read one by one; a bad node id fails alone.
fn same_attrs_by_page(img: &SquashImage, dir: NodeId) {
    let list = img.read_dir(dir).unwrap();
    let mut nodes: Vec<NodeId> = list.iter().map(|e| e.node).collect();
    nodes.insert(nodes.len() / 2, 0xffff_ffff_ffff);
    let paged = img.attrs(&nodes);
    assert_eq!(paged.len(), nodes.len());
    for (node, got) in nodes.iter().zip(paged) {
        match img.attr(*node) {
            Ok(want) => assert_eq!(got.unwrap(), want, "node {node:#x}"),
            Err(_) => assert!(got.is_err(), "node {node:#x}"),
        }
    }
    for e in list.iter().filter(|e| e.kind == Kind::Dir) {
        same_attrs_by_page(img, e.node);
    }
}

#[test]
fn built_images_every_codec() {
    let scratch = Scratch::new("codecs");
    let src = scratch.path().join("src");
    fs::create_dir(&src).unwrap();
    populate(&src);
    let checks = Checks {
        owners: true,
        xattrs: true,
        ..Default::default()
    };
    for comp in ["gzip", "xz", "lzma", "lzo", "lz4", "zstd"] {
        let out = scratch.path().join(format!("{comp}.sqfs"));
        mksquashfs(&src, &out, &["-comp", comp]);
        let img = open_bare(&out).unwrap();
        assert_eq!(img.info().compression, comp);
        let n = compare_tree(&img, img.root(), &src, &checks, true);
        assert!(n >= 15, "{comp}: {n}");
        same_attrs_by_page(&img, img.root());

        let a = resolve(&img, b"hardlink");
        let b = resolve(&img, b"sub/linked");
        assert_eq!(a, b, "{comp}: hard links share a node id");
        assert_eq!(img.attr(a).unwrap().nlink, 2);
        assert_eq!(
            img.xattrs(resolve(&img, b"hello.txt")).unwrap(),
            vec![(b"user.test".to_vec(), b"hello".to_vec())]
        );
        let long = img.read_link(resolve(&img, b"longlink")).unwrap();
        assert!(long.len() > 300 && long.ends_with(b"/end"));
        assert_eq!(img.attr(resolve(&img, b"fifo")).unwrap().kind, Kind::Fifo);
        assert_eq!(resolve(&img, b"fifo"), resolve(&img, b"fifo2"));
        assert_eq!(
            img.read_link(resolve(&img, b"shortlink2")).unwrap(),
            b"hello.txt"
        );
        assert_eq!(
            img.attr(resolve(&img, b"socket")).unwrap().kind,
            Kind::Socket
        );
        let sparse = resolve(&img, b"sparse");
        let hole = img.read(sparse, 4096, 8192).unwrap();
        assert!(hole.len() == 8192 && hole.iter().all(|&b| b == 0));
        assert_eq!(img.read(sparse, 1 << 20, 16).unwrap(), noise(16, 3));
    }
}

#[test]
fn built_images_block_sizes_and_layouts() {
    let scratch = Scratch::new("layouts");
    let src = scratch.path().join("src");
    fs::create_dir(&src).unwrap();
    let big = mixed(3 * (1 << 20) + 12345, 11);
    fs::write(src.join("big"), &big).unwrap();
    fs::write(src.join("small"), mixed(5000, 12)).unwrap();
    fs::write(src.join("zeros"), vec![0u8; 70_000]).unwrap();
    let variants: &[&[&str]] = &[
        &["-b", "4096", "-comp", "zstd"],
        &["-b", "1048576", "-comp", "gzip"],
        &["-b", "65536", "-comp", "lz4", "-tailends"],
        &["-b", "16384", "-comp", "xz", "-always-use-fragments"],
        &["-comp", "gzip", "-noD", "-noF"],
        &["-comp", "zstd", "-noI", "-noD", "-noF", "-noX"],
        &["-comp", "lzo", "-no-fragments"],
    ];
    let checks = Checks {
        owners: true,
        xattrs: true,
        ..Default::default()
    };
    for (i, opts) in variants.iter().enumerate() {
        let out = scratch.path().join(format!("v{i}.sqfs"));
        mksquashfs(&src, &out, opts);
        let img = open_bare(&out).unwrap();
        compare_tree(&img, img.root(), &src, &checks, true);
        let node = resolve(&img, b"big");
        let bs = img.info().block_size as u64;
        assert_eq!(u64::from(img.block_size()), bs);
        // Ranges inside one block, across block boundaries, and at the tail.
        for (off, len) in [
            (0u64, 1u32),
            (bs - 3, 7),
            (bs * 2 + 5, (bs * 3) as u32),
            (big.len() as u64 - 10, 100),
            (big.len() as u64 - 12345, 12345),
            (123_457, 131_072),
        ] {
            let got = img.read(node, off, len).unwrap();
            let end = (off as usize + len as usize).min(big.len());
            assert!(got == big[off as usize..end], "{opts:?} read({off}, {len})");
        }
    }
}

#[test]
fn device_nodes_from_pseudo_definitions() {
    let scratch = Scratch::new("dev");
    let src = scratch.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let out = scratch.path().join("dev.sqfs");
    mksquashfs(
        &src,
        &out,
        &[
            "-p",
            "null c 666 0 0 1 3",
            "-p",
            "sda1 b 660 0 6 8 1",
            "-p",
            "big c 600 1000 1000 300 70000",
        ],
    );
    let img = open_bare(&out).unwrap();
    fn encode(major: u32, minor: u32) -> u32 {
        (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
    }
    let null = img.attr(resolve(&img, b"null")).unwrap();
    assert_eq!(
        (null.kind, null.perm, null.rdev),
        (Kind::CharDev, 0o666, encode(1, 3))
    );
    let sda = img.attr(resolve(&img, b"sda1")).unwrap();
    assert_eq!(
        (sda.kind, sda.perm, sda.gid, sda.rdev),
        (Kind::BlockDev, 0o660, 6, encode(8, 1))
    );
    let big = img.attr(resolve(&img, b"big")).unwrap();
    assert_eq!(
        (big.uid, big.gid, big.rdev),
        (1000, 1000, encode(300, 70000))
    );
    assert_eq!(u64::from(big.rdev), libc::makedev(300, 70000));
    let checks = Checks {
        owners: true,
        xattrs: false,
        extra_top: vec![b"null", b"sda1", b"big"],
    };
    compare_tree(&img, img.root(), &src, &checks, true);
}

#[test]
fn huge_directory_lookup() {
    const N: usize = 20_000;
    let scratch = Scratch::new("bigdir");
    let src = scratch.path().join("src");
    let dir = src.join("d");
    fs::create_dir_all(&dir).unwrap();
    // Names of varying length and spelling so sorting matters.
    let names: Vec<String> = (0..N)
        .map(|i| format!("{}-{i}", ["x", "ab", "Q_", "zz9"][i % 4]))
        .collect();
    for n in &names {
        File::create(dir.join(n)).unwrap();
    }
    let out = scratch.path().join("bigdir.sqfs");
    mksquashfs(&src, &out, &["-comp", "zstd"]);
    let img = open_bare(&out).unwrap();
    let d = resolve(&img, b"d");
    let listing = img.read_dir(d).unwrap();
    assert_eq!(listing.len(), N);
    assert!(listing.windows(2).all(|w| w[0].name < w[1].name));
    let first = &listing[0];
    let middle = &listing[N / 2];
    let last = &listing[N - 1];
    for e in [first, middle, last] {
        assert_eq!(img.lookup(d, &e.name).unwrap(), Some(e.node));
    }
    assert_eq!(img.lookup(d, b"missing").unwrap(), None);
    assert_eq!(img.lookup(d, b"0").unwrap(), None);
    assert_eq!(img.lookup(d, b"~~~").unwrap(), None);
    let start = std::time::Instant::now();
    for n in &names {
        let node = img.lookup(d, n.as_bytes()).unwrap().unwrap();
        assert_eq!(img.attr(node).unwrap().kind, Kind::File);
    }
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
}

#[test]
fn concurrent_readers_agree() {
    let img = Arc::new(open_appimage(&apps::tool()).0);
    let mut files = Vec::new();
    let mut stack = vec![img.root()];
    while let Some(d) = stack.pop() {
        for e in img.read_dir(d).unwrap().iter() {
            match e.kind {
                Kind::Dir => stack.push(e.node),
                Kind::File => files.push(e.node),
                _ => {}
            }
        }
    }
    let expected: Vec<Vec<u8>> = files
        .iter()
        .map(|&f| read_all(&img, f, img.attr(f).unwrap().size))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let img = img.clone();
            let files = files.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                for round in 0..3 {
                    for (i, &f) in files.iter().enumerate().skip((t + round) % 2) {
                        let size = img.attr(f).unwrap().size;
                        assert!(read_all(&img, f, size) == expected[i]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

// ------------------------------------------------------------ corruption

/// Touches every node reachable from the root, within bounds; errors are
/// fine, panics are not.
fn walk_bounded(img: &SquashImage) -> usize {
    let mut seen = 0usize;
    let mut stack = vec![(img.root(), 0u32)];
    while let Some((node, depth)) = stack.pop() {
        seen += 1;
        if seen > 2000 {
            break;
        }
        let _ = img.attr(node);
        let _ = img.xattrs(node);
        let _ = img.read_link(node);
        let _ = img.read(node, 0, 200_000);
        let _ = img.read(node, 70_000, 10);
        if let Ok(list) = img.read_dir(node) {
            let nodes: Vec<NodeId> = list.iter().take(400).map(|e| e.node).collect();
            let _ = img.attrs(&nodes);
            for e in list.iter().take(400) {
                let _ = img.lookup(node, &e.name);
                if depth < 12 {
                    stack.push((e.node, depth + 1));
                }
            }
        }
    }
    seen
}

/// Flips bytes of `image` (a squashfs image's bytes) at many positions and
/// walks each result.
fn mutate_and_walk(image: &[u8], tag: &str, step: usize) {
    let scratch = Scratch::new(tag);
    let path = scratch.path().join("img");
    fs::write(&path, image).unwrap();
    let file = Arc::new(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap(),
    );
    let len = image.len() as u64;
    let cache = new_cache();
    let mut opened = 0;
    for pos in (0..image.len()).step_by(step) {
        for mask in [0xffu8, 1 << (pos % 8)] {
            file.write_all_at(&[image[pos] ^ mask], pos as u64).unwrap();
            if let Ok(sb) = Superblock::parse(&image_head(&file), len) {
                if let Ok(img) = open(Backing::new(file.clone(), 0, len), sb, cache.clone()) {
                    walk_bounded(&img);
                    opened += 1;
                }
            }
            file.write_all_at(&image[pos..pos + 1], pos as u64).unwrap();
        }
    }
    assert!(opened > 0, "{tag}");
    // Superblock fields set to hostile values (as if parsed by a more
    // lenient parser).
    let sb = Superblock::parse(&image[..SUPERBLOCK_SIZE], len).unwrap();
    let hostile = [
        0,
        1,
        95,
        96,
        sb.bytes_used - 1,
        sb.bytes_used,
        u64::MAX,
        1 << 40,
    ];
    for (field, &value) in (0..8).flat_map(|f| hostile.iter().map(move |v| (f, v))) {
        let mut bad = sb.clone();
        match field {
            0 => bad.root_inode = value,
            1 => bad.inode_table = value,
            2 => bad.dir_table = value,
            3 => bad.id_table = value,
            4 => bad.fragment_table = value,
            5 => bad.xattr_table = value,
            6 => bad.fragment_count = value as u32,
            _ => bad.id_count = value as u16,
        }
        if let Ok(img) = open(Backing::new(file.clone(), 0, len), bad, cache.clone()) {
            walk_bounded(&img);
        }
    }
    // Truncations with a superblock that claims only what is left.
    for cut in (SUPERBLOCK_SIZE as u64..sb.bytes_used).step_by(step * 3 + 1) {
        let mut short = sb.clone();
        short.bytes_used = cut;
        if let Ok(img) = open(Backing::new(file.clone(), 0, cut), short, cache.clone()) {
            walk_bounded(&img);
        }
        // A backing shorter than bytes_used is refused outright.
        assert!(open(
            Backing::new(file.clone(), 0, cut),
            sb.clone(),
            cache.clone()
        )
        .is_err());
    }
}

fn image_head(file: &File) -> Vec<u8> {
    let mut head = vec![0u8; SUPERBLOCK_SIZE];
    file.read_exact_at(&mut head, 0).unwrap();
    head
}

#[test]
fn corrupted_bare_images_do_not_panic() {
    for (path, name, step) in [
        (sqfs::edge_tree("gzip"), "tree_gzip", 1),
        (sqfs::edge_tree("xz"), "tree_xz", 3),
        (sqfs::big_dir(), "dir_read", 11),
    ] {
        let bytes = fs::read(path).unwrap();
        mutate_and_walk(&bytes, name, step);
    }
}

#[test]
fn corrupted_appimage_does_not_panic() {
    let path = apps::echo();
    let (_, offset) = open_appimage(&path);
    let bytes = fs::read(&path).unwrap();
    mutate_and_walk(&bytes[offset as usize..], "echo", 61);
}

#[test]
fn reading_a_tail_decompresses_the_next_fragments_ahead() {
    let s = Scratch::new("fragahead");
    let src = s.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..24u64 {
        fs::write(src.join(format!("f{i:02}")), noise(30_000, i + 1)).unwrap();
    }
    let out = s.path().join("img.sqfs");
    mksquashfs(&src, &out, &["-comp", "gzip"]);
    let img = open_bare(&out).unwrap();
    let cache = img.reader.cache.clone();
    let cached = |index: u64| {
        let (pos, _) = data::fragment_block(&img.reader, &img.fragments, index).unwrap();
        cache
            .peek(crate::cache::BlockKey {
                image: img.reader.image,
                pos,
            })
            .is_some()
    };
    assert!(
        (0..5).all(|i| !cached(i)),
        "nothing is cached before a read"
    );
    let first = resolve(&img, b"f00");
    assert_eq!(read_all(&img, first, 30_000), noise(30_000, 1));
    let start = std::time::Instant::now();
    while !(cached(1) && cached(2)) && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        cached(0) && cached(1) && cached(2),
        "fragments 1 and 2 were read ahead: {:?}",
        (0..6).map(cached).collect::<Vec<_>>()
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !cached(3) && !cached(4),
        "read-ahead stops two fragments ahead: {:?}",
        (0..6).map(cached).collect::<Vec<_>>()
    );
}

#[test]
fn warming_keeps_only_blocks_that_are_costly_to_decompress_again() {
    let s = Scratch::new("intent");
    let src = s.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // Eight full 128 KiB blocks and a tail in a fragment.
    let big = mixed((1 << 20) + 777, 9);
    fs::write(src.join("big"), &big).unwrap();
    for (comp, warm_keeps) in [("gzip", false), ("zstd", false), ("xz", true)] {
        let out = s.path().join(format!("{comp}.sqfs"));
        mksquashfs(&src, &out, &["-comp", comp, "-b", "131072"]);
        let img = open_bare(&out).unwrap();
        let cache = img.reader.cache.clone();
        let node = resolve(&img, b"big");
        // Bytes the cache holds after reading the whole file for `intent`
        // (and giving read-ahead, if any started, the time to finish).
        let growth = |intent| {
            let before = cache.stats().bytes;
            let mut got = Vec::new();
            loop {
                let piece = img
                    .read_with(node, got.len() as u64, 128 << 10, intent)
                    .unwrap();
                if piece.is_empty() {
                    break;
                }
                got.extend_from_slice(&piece);
            }
            assert!(got == big, "{comp} {intent:?}: wrong bytes");
            std::thread::sleep(std::time::Duration::from_millis(100));
            cache.stats().bytes - before
        };
        let replay = growth(ReadIntent::Replay);
        assert!(
            replay < 64 << 10,
            "{comp}: a replay keeps only metadata and the shared fragment ({replay})"
        );
        let warm = growth(ReadIntent::Warm);
        if warm_keeps {
            assert!(warm >= 1 << 20, "{comp}: warming keeps its blocks ({warm})");
        } else {
            assert!(
                warm < 64 << 10,
                "{comp}: warming keeps only metadata and the shared fragment ({warm})"
            );
            let rewarm = growth(ReadIntent::Rewarm);
            assert!(rewarm >= 1 << 20, "{comp}: warming again keeps ({rewarm})");
        }
    }
}

#[test]
fn content_keys_follow_exactly_the_stored_bytes() {
    let scratch = Scratch::new("content-key");
    let build = |tag: &str, files: &[(&str, Vec<u8>)], opts: &[&str]| {
        let src = scratch.path().join(format!("src-{tag}"));
        fs::create_dir(&src).unwrap();
        for (name, bytes) in files {
            fs::write(src.join(name), bytes).unwrap();
        }
        let out = scratch.path().join(format!("{tag}.sqfs"));
        mksquashfs(&src, &out, opts);
        open_bare(&out).unwrap()
    };
    let key =
        |img: &SquashImage, name: &[u8]| img.content_key(resolve(img, name)).unwrap().unwrap();
    let big = mixed(600_000, 1);
    let mut big2 = big.clone();
    big2[599_990] ^= 1;
    let zstd = ["-comp", "zstd", "-b", "128K"];
    let a = build(
        "a",
        &[("big", big.clone()), ("tail", mixed(3000, 2))],
        &zstd,
    );
    // The same bytes in another image, among other files: the same key.
    let b = build(
        "b",
        &[
            ("big", big.clone()),
            ("other", mixed(9000, 3)),
            ("tail", mixed(3000, 2)),
        ],
        &zstd,
    );
    assert_eq!(key(&a, b"big"), key(&b, b"big"));
    // One byte changed (in the short last block), another codec or another
    // block size: another key.
    let c = build("c", &[("big", big2), ("tail", mixed(3000, 2))], &zstd);
    let d = build("d", &[("big", big.clone())], &["-comp", "xz", "-b", "128K"]);
    let e = build(
        "e",
        &[("big", big.clone())],
        &["-comp", "zstd", "-b", "64K"],
    );
    let all = [
        key(&a, b"big"),
        key(&c, b"big"),
        key(&d, b"big"),
        key(&e, b"big"),
    ];
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            assert_ne!(all[i], all[j], "images {i} and {j}");
        }
    }
    // A file kept in a fragment block has a key over that whole block: the
    // same bytes beside other files' tails are another key (a copy is
    // only reused for the exact stored bytes); a folder has none.
    assert_ne!(key(&a, b"tail"), key(&b, b"tail"));
    assert_ne!(key(&a, b"tail"), key(&a, b"big"));
    assert!(a.content_key(a.root()).is_err());

    // A file stored over several key parts (hashed on several threads):
    // the same key again, another for one byte changed in its last part.
    let huge = mixed(40 << 20, 9);
    let mut huge2 = huge.clone();
    huge2[(40 << 20) - 7] ^= 0x80;
    let raw = ["-noD", "-b", "1M"];
    let f = build("f", &[("huge", huge.clone())], &raw);
    let g = build("g", &[("huge", huge)], &raw);
    let h = build("h", &[("huge", huge2)], &raw);
    assert_eq!(key(&f, b"huge"), key(&g, b"huge"));
    assert_ne!(key(&f, b"huge"), key(&h, b"huge"));
}
