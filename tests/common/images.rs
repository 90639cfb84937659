//! Test images: wrapping bare images as AppImages, building edge-case
//! SquashFS images (once per test process), and ground-truth extraction.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::runtime_stub::{self, StubRuntime};
use super::{run_timeout, set_mode, TEMP_PREFIX};

// ---------------------------------------------------------------------------
// Wrapping

/// The stand-in type 2 runtime (64-bit ELF, `AI\x02`) that test AppImages
/// start with.
pub fn type2_runtime() -> &'static [u8] {
    static RT: OnceLock<Vec<u8>> = OnceLock::new();
    RT.get_or_init(|| StubRuntime::type2().bytes())
}

/// The ISO system area (32 KiB, holding the stand-in runtime with
/// `AI\x01`) that test type 1 AppImages start with.
pub fn type1_system_area() -> &'static [u8] {
    static SA: OnceLock<Vec<u8>> = OnceLock::new();
    SA.get_or_init(runtime_stub::type1_system_area)
}

/// Makes a type 2 AppImage: the stand-in runtime followed by `sqfs`.
pub fn wrap_squashfs_as_appimage(sqfs: &Path, out: &Path) {
    wrap_squashfs_with_runtime(type2_runtime(), sqfs, out);
}

/// Makes a type 2 AppImage from any runtime's bytes (e.g.
/// `StubRuntime::type2_elf32()`) followed by `sqfs`.
pub fn wrap_squashfs_with_runtime(runtime: &[u8], sqfs: &Path, out: &Path) {
    let mut data = runtime.to_vec();
    data.extend_from_slice(&std::fs::read(sqfs).expect("read squashfs image"));
    std::fs::write(out, data).expect("write AppImage");
    set_mode(out, 0o755);
}

/// Makes a type 1 AppImage: the 32 KiB system area (stand-in runtime +
/// `AI\x01` magic) followed by the ISO's bytes from 32768 on.
pub fn wrap_iso_as_appimage(iso: &Path, out: &Path) {
    let iso = std::fs::read(iso).expect("read ISO");
    assert!(iso.len() > 32768, "ISO too small to wrap");
    let mut data = type1_system_area().to_vec();
    data.extend_from_slice(&iso[32768..]);
    std::fs::write(out, data).expect("write AppImage");
    set_mode(out, 0o755);
}

// ---------------------------------------------------------------------------
// Ground truth

/// `unsquashfs -d DIR -f -o OFFSET IMAGE` (as root it restores owners,
/// setuid bits, xattrs, device nodes, fifos, sockets and hard links).
/// `dir` must not exist yet.
pub fn unsquashfs_extract(image: &Path, offset: u64, dir: &Path) -> Result<(), String> {
    let out = run_timeout(
        Command::new("unsquashfs")
            .args(["-no-progress", "-d"])
            .arg(dir)
            .args(["-f", "-o", &offset.to_string()])
            .arg(image),
        Duration::from_secs(120),
    );
    if out.success() {
        Ok(())
    } else {
        Err(format!(
            "unsquashfs -o {offset} {} failed: {}",
            image.display(),
            out.describe()
        ))
    }
}

/// `xorriso -osirrox on -indev IMAGE -extract / DIR`. See
/// [`super::Compare::iso`] for what it does and does not preserve. Never call
/// it on `test_read_format_iso_rockridge_ce_loop.iso` (it hangs).
pub fn xorriso_extract(image: &Path, dir: &Path) -> Result<(), String> {
    assert!(
        !image.to_string_lossy().contains("ce_loop"),
        "xorriso hangs on the CE loop image; do not extract it"
    );
    let out = run_timeout(
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(image)
            .args(["-extract", "/"])
            .arg(dir),
        Duration::from_secs(120),
    );
    if out.success() {
        Ok(())
    } else {
        Err(format!(
            "xorriso extraction of {} failed: {}",
            image.display(),
            out.describe()
        ))
    }
}

/// `mksquashfs SRC OUT -noappend -quiet -no-progress ARGS...`.
pub fn mksquashfs(src: &Path, out: &Path, args: &[&str]) {
    let o = run_timeout(
        Command::new("mksquashfs")
            .arg(src)
            .arg(out)
            .args(["-noappend", "-quiet", "-no-progress"])
            .args(args),
        Duration::from_secs(300),
    );
    assert!(
        o.success(),
        "mksquashfs {} {args:?} failed: {}",
        src.display(),
        o.describe()
    );
}

// ---------------------------------------------------------------------------
// Process-wide build directory

extern "C" fn remove_build_dir() {
    if let Some(d) = BUILD_DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}

static BUILD_DIR: OnceLock<PathBuf> = OnceLock::new();

/// A directory for images built once per test process; removed at exit
/// (atexit). Stale ones from killed runs are removed on first use.
pub fn build_dir() -> &'static Path {
    BUILD_DIR.get_or_init(|| {
        let base = std::env::temp_dir().canonicalize().expect("temp dir");
        let prefix = format!("{TEMP_PREFIX}images-");
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name
                    .strip_prefix(&prefix)
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create build dir");
        unsafe {
            libc::atexit(remove_build_dir);
        }
        dir
    })
}

// ---------------------------------------------------------------------------
// Tree builders

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible text of `len` bytes.
pub fn text(len: usize, salt: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0usize;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "line {i}: the quick brown fox {} jumps over the lazy dog\n",
                (i * 7 + salt) % 13
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn write(p: &Path, data: &[u8]) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn mkdir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
}

fn symlink(target: &[u8], link: &Path) {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::os::unix::fs::symlink(OsStr::from_bytes(target), link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// `setfattr -n NAME -v VALUE` (no symlink following).
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    let r = unsafe {
        libc::lsetxattr(
            cstr(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// `touch -h -d @SECS` (works on symlinks too).
pub fn set_mtime(p: &Path, secs: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [t, t];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cstr(p).as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        r,
        0,
        "utimensat {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

/// A tree exercising data layout: fragments, multi-block files,
/// incompressible blocks, zero blocks, duplicates, block-size boundaries.
pub fn build_mixed_tree(root: &Path) {
    mkdir(root);
    write(
        &root.join("README"),
        b"mixed tree for compressor and block size variants\n",
    );
    set_xattr(&root.join("README"), "user.mixed", b"1");
    write(&root.join("empty"), b"");
    write(&root.join("bin/tool"), &pseudo_random(1, 300_000));
    set_mode(&root.join("bin/tool"), 0o755);
    write(&root.join("share/text.txt"), &text(400_000, 0));
    write(&root.join("share/dup-of-text.txt"), &text(400_000, 0));
    write(&root.join("share/exact-4k"), &text(4096, 1));
    write(&root.join("share/4k-plus-1"), &text(4097, 2));
    write(&root.join("share/exact-128k"), &text(131_072, 3));
    write(&root.join("share/128k-plus-1"), &text(131_073, 4));
    write(&root.join("share/128k-minus-1"), &text(131_071, 5));
    let mut one_meg = text(524_288, 6);
    one_meg.extend_from_slice(&pseudo_random(2, 524_288));
    write(&root.join("share/exact-1m"), &one_meg);
    let mut over_meg = pseudo_random(3, 1_048_577);
    over_meg[..1000].fill(b'x');
    write(&root.join("share/1m-plus-1"), &over_meg);
    write(&root.join("share/zeros"), &vec![0u8; 600_000]);
    let mut mostly_zero = vec![0u8; 300_000];
    mostly_zero[150_000..150_010].copy_from_slice(b"not a hole");
    write(&root.join("share/mostly-zero"), &mostly_zero);
    for i in 0..20 {
        write(
            &root.join(format!("lib/small-{i:02}")),
            &text(i * 37 + 1, i),
        );
    }
    symlink(b"share/text.txt", &root.join("link"));
    symlink(b"/usr/bin/env", &root.join("abs-link"));
    write(&root.join("deep/a/b/c/d/e/f/g/h/file"), b"deep\n");
    write(&root.join("exec.sh"), b"#!/bin/sh\necho hi\n");
    set_mode(&root.join("exec.sh"), 0o755);
}

/// Mtimes used in the edge tree (beyond i32 and before/after y2k).
pub const EDGE_MTIMES: &[(&str, i64)] = &[
    ("meta/old", 946_684_799),      // 1999-12-31 23:59:59
    ("meta/future", 4_102_444_800), // 2100-01-01, > i32::MAX
    ("meta/epoch", 0),
    ("meta/olddir", 1_000_000_000),
    ("meta/old-symlink", 123_456_789),
];

/// The hard-link set in the edge tree (one inode, 3 names).
pub const EDGE_HARDLINKS: &[&str] = &["links/a", "links/sub/b", "links/c"];

/// Xattrs set in the edge tree: (path, name, value).
pub fn edge_xattrs() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("xattr/one", "user.x", b"y".to_vec()),
        ("xattr/multi", "user.a", b"1".to_vec()),
        ("xattr/multi", "user.b", vec![0, 255, 1, 0]),
        ("xattr/multi", "user.long", text(2000, 9)),
        ("xattr/dir", "user.d", b"dirval".to_vec()),
        ("xattr/empty-value", "user.e", Vec::new()),
        ("links/a", "user.shared", b"on a hard link".to_vec()),
    ]
}

/// Pseudo definitions (mksquashfs `-p`) for device nodes in the edge tree.
pub const EDGE_PSEUDO: &[&str] = &[
    "special/null c 666 0 0 1 3",
    "special/blk b 600 7 8 7 0",
    "special/bigdev c 640 0 6 300 70000",
];

/// A 255-byte file name.
pub fn long_name() -> String {
    "n".repeat(255)
}

/// The long symlink targets in the edge tree.
pub fn edge_long_targets() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("sym/long300", format!("{}z", "a/".repeat(150)).into_bytes()),
        ("sym/long4000", "b/".repeat(2000).into_bytes()),
    ]
}

/// The metadata edge-case tree. Returns nothing; device nodes come from
/// [`EDGE_PSEUDO`].
pub fn build_edge_tree(root: &Path) {
    mkdir(root);
    // fragments / tail ends
    let mut tail = pseudo_random(10, 131_072 * 2);
    tail.extend_from_slice(&text(1000, 10));
    write(&root.join("frag/tail"), &tail);
    for i in 0..10 {
        write(
            &root.join(format!("frag/small-{i}")),
            &text(i * 100 + 3, i + 20),
        );
    }
    // sparse files
    let sparse = root.join("sparse");
    mkdir(&sparse);
    let holes = std::fs::File::create(sparse.join("holes")).unwrap();
    holes.set_len(10 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&holes, b"tail", 5_000_000).unwrap();
    std::fs::File::create(sparse.join("all-hole"))
        .unwrap()
        .set_len(3 << 20)
        .unwrap();
    let lead = std::fs::File::create(sparse.join("leading-hole")).unwrap();
    lead.set_len(1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&lead, b"end", (1 << 20) - 3).unwrap();
    // hard links
    write(&root.join("links/a"), b"hardlinked\n");
    mkdir(&root.join("links/sub"));
    std::fs::hard_link(root.join("links/a"), root.join("links/sub/b")).unwrap();
    std::fs::hard_link(root.join("links/a"), root.join("links/c")).unwrap();
    symlink(b"a", &root.join("links/sym"));
    std::fs::hard_link(root.join("links/sym"), root.join("links/sym-hl")).unwrap();
    write(&root.join("links/empty-a"), b"");
    std::fs::hard_link(root.join("links/empty-a"), root.join("links/empty-b")).unwrap();
    // symlinks
    symlink(b"../frag/tail", &root.join("sym/rel"));
    symlink(b"/etc/passwd", &root.join("sym/abs"));
    symlink(b"nowhere", &root.join("sym/dangling"));
    symlink(b"../../../../../../etc/shadow", &root.join("sym/dotdot"));
    symlink(b"self", &root.join("sym/self"));
    for (p, t) in edge_long_targets() {
        symlink(&t, &root.join(p));
    }
    // empties
    write(&root.join("empty-file"), b"");
    mkdir(&root.join("empty-dir"));
    mkdir(&root.join("nested-empty/a/b/c"));
    // names
    let names = root.join("names");
    mkdir(&names);
    let weird: Vec<Vec<u8>> = vec![
        long_name().into_bytes(),
        b"bad\xff\xfename".to_vec(),
        b"new\nline".to_vec(),
        b"quote\"'`$(x)".to_vec(),
        "\u{fc}n\u{ef}c\u{f8}d\u{e9}".as_bytes().to_vec(),
        b"-dash".to_vec(),
        b" space ".to_vec(),
        b"star*?[".to_vec(),
        b"back\\slash".to_vec(),
    ];
    for (i, n) in weird.iter().enumerate() {
        write(
            &names.join(OsStr::from_bytes(n)),
            format!("name {i}\n").as_bytes(),
        );
    }
    mkdir(&names.join(OsStr::from_bytes(&[b'd'; 255])));
    write(
        &names
            .join(OsStr::from_bytes(&[b'd'; 255]))
            .join(OsStr::from_bytes(&[b'f'; 255])),
        b"long/long\n",
    );
    // fifo, socket (device nodes come from pseudo definitions)
    mkdir(&root.join("special"));
    let fifo = cstr(&root.join("special/fifo"));
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0, "mkfifo");
    drop(std::os::unix::net::UnixListener::bind(root.join("special/sock")).expect("bind socket"));
    // xattrs
    mkdir(&root.join("xattr/dir"));
    write(&root.join("xattr/one"), b"one\n");
    write(&root.join("xattr/multi"), b"multi\n");
    write(&root.join("xattr/empty-value"), b"");
    for (p, n, v) in edge_xattrs() {
        set_xattr(&root.join(p), n, &v);
    }
    // deep nesting
    let mut deep = root.join("deep");
    for i in 0..30 {
        deep = deep.join(format!("d{i}"));
    }
    write(&deep.join("leaf"), b"leaf\n");
    // owners, modes, mtimes (chown before chmod: chown clears setuid)
    let meta = root.join("meta");
    mkdir(&meta);
    for (name, uid, gid, mode) in [
        ("setuid", 1234u32, 5678u32, 0o4755u32),
        ("setgid", 0, 5678, 0o2755),
        ("mode000", 0, 0, 0o000),
        ("ro", 42, 42, 0o444),
        ("bigid", 3_000_000_000, 3_000_000_001, 0o640),
        ("nobody", 65534, 65534, 0o600),
    ] {
        let p = meta.join(name);
        write(&p, format!("{name}\n").as_bytes());
        chown(&p, uid, gid);
        set_mode(&p, mode);
    }
    mkdir(&meta.join("sticky-dir"));
    write(&meta.join("sticky-dir/inside"), b"x");
    set_mode(&meta.join("sticky-dir"), 0o1777);
    mkdir(&meta.join("private-dir"));
    write(&meta.join("private-dir/inside"), b"y");
    chown(&meta.join("private-dir"), 1000, 1000);
    set_mode(&meta.join("private-dir"), 0o700);
    write(&meta.join("old"), b"old");
    write(&meta.join("future"), b"future");
    write(&meta.join("epoch"), b"epoch");
    mkdir(&meta.join("olddir/child"));
    symlink(b"old", &meta.join("old-symlink"));
    chown(&meta.join("old-symlink"), 77, 88);
    for (p, t) in EDGE_MTIMES {
        set_mtime(&root.join(p), *t);
    }
}

/// 30000 empty files (names of varying length) in one directory.
pub fn build_bigdir_tree(root: &Path) {
    let many = root.join("many");
    mkdir(&many);
    for i in 0..30_000usize {
        let name = format!("f{i:05}{}", "x".repeat(i % 40));
        std::fs::File::create(many.join(name)).unwrap();
    }
    write(&many.join("zz-last"), b"last\n");
    write(&root.join("other"), b"other\n");
}

/// Number of entries in `many/` of the bigdir image.
pub const BIGDIR_ENTRIES: usize = 30_001;

/// 300 small files in one directory (`file_001` ...): with 4K blocks its
/// entries span several metadata blocks.
pub fn build_dir300_tree(root: &Path) {
    for i in 1..=300usize {
        write(
            &root.join(format!("file_{i:03}")),
            format!("{i}\n").as_bytes(),
        );
    }
}

// ---------------------------------------------------------------------------
// Built images

/// An edge-case SquashFS image built by this suite.
#[derive(Debug)]
pub struct BuiltImage {
    /// Short unique name (`mixed-xz`, `edge`, ...).
    pub name: &'static str,
    /// The bare SquashFS image.
    pub sqfs: PathBuf,
    /// The source tree it was built from.
    pub tree: &'static str,
    /// mksquashfs arguments used.
    pub args: Vec<String>,
}

/// Every edge-case image (built once per test process):
/// `mixed-{gzip,xz,lzma,lzo,lz4,zstd}` (default 128K blocks; lzma and lzo
/// with `-always-use-fragments`), `mixed-lz4-hc` (`-Xhc`: compressor
/// options in the image), `mixed-gzip-b4k`, `mixed-xz-b16k`,
/// `mixed-xz-b1m`, `mixed-uncompressed` (`-noI -noD -noF -noX`,
/// `-always-use-fragments`), `edge` (gzip, `-always-use-fragments`, device
/// pseudo files), `edge-zstd-nofrag` (`-no-fragments`, 64K blocks),
/// `edge-lz4`, `edge-lzo`, `edge-xz` (the edge tree in the other
/// compressors), `bigdir` (30000 entries), `dir300-zstd-b4k` (300 entries,
/// 4K blocks, zstd level 19).
pub fn built_images() -> &'static [BuiltImage] {
    static IMAGES: OnceLock<Vec<BuiltImage>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = build_dir();
        let trees = dir.join("trees");
        build_mixed_tree(&trees.join("mixed"));
        build_edge_tree(&trees.join("edge"));
        build_bigdir_tree(&trees.join("bigdir"));
        build_dir300_tree(&trees.join("dir300"));
        let mut pseudo: Vec<String> = Vec::new();
        for p in EDGE_PSEUDO {
            pseudo.push("-p".into());
            pseudo.push(p.to_string());
        }
        let mut specs: Vec<(&'static str, &'static str, Vec<String>)> = Vec::new();
        for (name, comp) in [
            ("mixed-gzip", "gzip"),
            ("mixed-xz", "xz"),
            ("mixed-lzma", "lzma"),
            ("mixed-lzo", "lzo"),
            ("mixed-lz4", "lz4"),
            ("mixed-zstd", "zstd"),
        ] {
            let mut args = vec!["-comp".to_string(), comp.to_string()];
            if comp == "lzma" || comp == "lzo" {
                args.push("-always-use-fragments".into());
            }
            specs.push((name, "mixed", args));
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        specs.push(("mixed-lz4-hc", "mixed", s(&["-comp", "lz4", "-Xhc"])));
        specs.push(("mixed-gzip-b4k", "mixed", s(&["-comp", "gzip", "-b", "4K"])));
        specs.push(("mixed-xz-b16k", "mixed", s(&["-comp", "xz", "-b", "16K"])));
        specs.push(("mixed-xz-b1m", "mixed", s(&["-comp", "xz", "-b", "1M"])));
        specs.push((
            "mixed-uncompressed",
            "mixed",
            s(&[
                "-comp",
                "gzip",
                "-noI",
                "-noD",
                "-noF",
                "-noX",
                "-always-use-fragments",
            ]),
        ));
        let mut edge = s(&["-comp", "gzip", "-always-use-fragments"]);
        edge.extend(pseudo.iter().cloned());
        specs.push(("edge", "edge", edge));
        let mut edge2 = s(&["-comp", "zstd", "-no-fragments", "-b", "64K"]);
        edge2.extend(pseudo.iter().cloned());
        specs.push(("edge-zstd-nofrag", "edge", edge2));
        for (name, comp) in [
            ("edge-lz4", &["-comp", "lz4", "-Xhc"][..]),
            ("edge-lzo", &["-comp", "lzo"][..]),
            ("edge-xz", &["-comp", "xz"][..]),
        ] {
            let mut args = s(comp);
            args.extend(pseudo.iter().cloned());
            specs.push((name, "edge", args));
        }
        specs.push(("bigdir", "bigdir", s(&["-comp", "zstd"])));
        specs.push((
            "dir300-zstd-b4k",
            "dir300",
            s(&["-comp", "zstd", "-b", "4K", "-Xcompression-level", "19"]),
        ));
        specs
            .into_iter()
            .map(|(name, tree, args)| {
                let sqfs = dir.join(format!("{name}.sqfs"));
                let argv: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
                mksquashfs(&trees.join(tree), &sqfs, &argv);
                BuiltImage {
                    name,
                    sqfs,
                    tree,
                    args,
                }
            })
            .collect()
    })
}

/// One built image by name.
pub fn built_image(name: &str) -> &'static BuiltImage {
    built_images()
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no built image {name}"))
}

/// The unsquashfs extraction of a built image (done once per process).
pub fn built_image_extraction(name: &str) -> PathBuf {
    static DONE: OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>>> =
        OnceLock::new();
    let map = DONE.get_or_init(Default::default);
    let mut m = map.lock().unwrap();
    if let Some(p) = m.get(name) {
        return p.clone();
    }
    let img = built_image(name);
    let out = build_dir().join("extracted").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    unsquashfs_extract(&img.sqfs, 0, &out).unwrap_or_else(|e| panic!("{e}"));
    m.insert(name.to_string(), out.clone());
    out
}

// ---------------------------------------------------------------------------
// Built ISO images

/// The tree the built ISO images hold: a 3000-entry directory (its records
/// span many 2 KiB sectors), 12 levels of nesting (beyond ISO 9660's 8),
/// files at sector-size boundaries, a 5 MB random file, long names and
/// symlink targets (Rock Ridge NM/SL continuation), owners, setuid, a 2100
/// mtime, empty files and directories.
pub fn build_iso_tree(root: &Path) {
    mkdir(root);
    for i in 0..3000 {
        write(
            &root.join(format!("big/file-with-a-longish-name-{i:04}")),
            format!("{i}\n").as_bytes(),
        );
    }
    let mut deep = root.join("deep");
    for i in 0..12 {
        deep = deep.join(format!("level{i}"));
    }
    write(&deep.join("leaf"), b"leaf\n");
    write(&root.join("rand"), &pseudo_random(20, 5_000_000));
    write(&root.join("text"), &text(300_001, 21));
    for (name, len) in [
        ("s2047", 2047usize),
        ("s2048", 2048),
        ("s2049", 2049),
        ("s32768", 32768),
        ("s32769", 32769),
    ] {
        write(&root.join("sizes").join(name), &text(len, len));
    }
    write(&root.join("empty-file"), b"");
    mkdir(&root.join("empty-dir"));
    write(&root.join("L".repeat(200)), b"long name\n");
    write(&root.join("names").join("m".repeat(255)), b"255\n");
    write(&root.join("names/\u{fc}n\u{ef}c\u{f8}d\u{e9}"), b"utf8\n");
    write(&root.join("names/with space"), b"space\n");
    symlink(b"text", &root.join("sym/dangling"));
    symlink(b"../text", &root.join("sym/rel"));
    symlink(b"/etc/passwd", &root.join("sym/abs"));
    symlink(
        format!("{}z", "a/".repeat(150)).as_bytes(),
        &root.join("sym/long300"),
    );
    let meta = root.join("meta");
    mkdir(&meta);
    for (name, uid, gid, mode) in [
        ("setuid", 1234u32, 5678u32, 0o4755u32),
        ("private", 1000, 1000, 0o600),
        ("ro", 0, 0, 0o444),
    ] {
        let p = meta.join(name);
        write(&p, format!("{name}\n").as_bytes());
        chown(&p, uid, gid);
        set_mode(&p, mode);
    }
    write(&meta.join("future"), b"future\n");
    set_mtime(&meta.join("future"), 4_102_444_800);
    write(&meta.join("old"), b"old\n");
    set_mtime(&meta.join("old"), 946_684_799);
}

/// An ISO image built by this suite with xorriso.
#[derive(Debug)]
pub struct BuiltIso {
    /// Short unique name.
    pub name: &'static str,
    /// The ISO image.
    pub iso: PathBuf,
    /// Whether it carries Rock Ridge.
    pub rockridge: bool,
}

/// ISO images of [`build_iso_tree`] (built once per process):
/// `iso-rr-joliet` (`-as mkisofs -R -J -rr_reloc_dir RR_MOVED`:
/// directories deeper than 8 levels are relocated, RE/CL entries; the
/// native-mode images keep them deep in place), `iso-rr-zisofs` (Rock Ridge, every
/// compressible file zisofs-compressed in 32 KiB blocks),
/// `iso-rr-zisofs-64k` and `iso-rr-joliet-zisofs-128k` (64 and 128 KiB
/// blocks), `iso-plain` (no Rock Ridge, no Joliet), `iso-joliet-only`
/// (Joliet, no Rock Ridge: xorriso, like the Linux kernel, then shows the
/// Joliet names), `iso-rr-empty` (Rock Ridge, empty root), and
/// `iso-multi-extent` (a file stored as three extents, patched by
/// [`super::iso_multi_extent`]).
pub fn built_isos() -> &'static [BuiltIso] {
    static ISOS: OnceLock<Vec<BuiltIso>> = OnceLock::new();
    ISOS.get_or_init(|| {
        let dir = build_dir().join("isos");
        let tree = dir.join("tree");
        build_iso_tree(&tree);
        let specs: Vec<(&'static str, bool, Vec<String>)> = vec![
            (
                "iso-rr-joliet",
                true,
                vec![
                    "-as",
                    "mkisofs",
                    "-R",
                    "-J",
                    "-rr_reloc_dir",
                    "RR_MOVED",
                    "-o",
                    "OUT",
                    "TREE",
                ],
            ),
            (
                "iso-rr-zisofs",
                true,
                vec![
                    "-outdev",
                    "OUT",
                    "-zisofs",
                    "level=6:block_size=32k",
                    "-map",
                    "TREE",
                    "/",
                    "-set_filter_r",
                    "--zisofs",
                    "/",
                    "--",
                ],
            ),
            (
                "iso-rr-zisofs-64k",
                true,
                vec![
                    "-outdev",
                    "OUT",
                    "-zisofs",
                    "level=6:block_size=64k",
                    "-map",
                    "TREE",
                    "/",
                    "-set_filter_r",
                    "--zisofs",
                    "/",
                    "--",
                ],
            ),
            (
                "iso-rr-joliet-zisofs-128k",
                true,
                vec![
                    "-outdev",
                    "OUT",
                    "-joliet",
                    "on",
                    "-zisofs",
                    "level=9:block_size=128k",
                    "-map",
                    "TREE",
                    "/",
                    "-set_filter_r",
                    "--zisofs",
                    "/",
                    "--",
                ],
            ),
            (
                "iso-rr-empty",
                true,
                vec!["-as", "mkisofs", "-R", "-V", "CDROM", "-o", "OUT", "EMPTY"],
            ),
            (
                "iso-plain",
                false,
                vec![
                    "-outdev",
                    "OUT",
                    "-rockridge",
                    "off",
                    "-joliet",
                    "off",
                    "-map",
                    "TREE",
                    "/",
                ],
            ),
            (
                "iso-joliet-only",
                false,
                vec![
                    "-outdev",
                    "OUT",
                    "-rockridge",
                    "off",
                    "-joliet",
                    "on",
                    "-map",
                    "TREE",
                    "/",
                ],
            ),
        ]
        .into_iter()
        .map(|(n, rr, v)| (n, rr, v.into_iter().map(String::from).collect()))
        .collect();
        let empty = dir.join("empty");
        mkdir(&empty);
        let mut isos: Vec<BuiltIso> = specs
            .into_iter()
            .map(|(name, rockridge, args)| {
                let iso = dir.join(format!("{name}.iso"));
                let argv: Vec<std::ffi::OsString> = args
                    .iter()
                    .map(|a| match a.as_str() {
                        "OUT" => iso.clone().into_os_string(),
                        "TREE" => tree.clone().into_os_string(),
                        "EMPTY" => empty.clone().into_os_string(),
                        s => s.into(),
                    })
                    .collect();
                let o = run_timeout(
                    Command::new("xorriso").args(&argv),
                    Duration::from_secs(120),
                );
                assert!(
                    o.success() && iso.exists(),
                    "xorriso {args:?} failed: {}",
                    o.describe()
                );
                BuiltIso {
                    name,
                    iso,
                    rockridge,
                }
            })
            .collect();
        isos.push(BuiltIso {
            name: "iso-multi-extent",
            iso: super::iso_multi_extent().to_path_buf(),
            rockridge: true,
        });
        isos
    })
}

/// One built ISO by name.
pub fn built_iso(name: &str) -> &'static BuiltIso {
    built_isos()
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no built ISO {name}"))
}

// ---------------------------------------------------------------------------
// A SquashFS image holding a sparse file larger than 4 GiB

/// Size of `huge` in [`huge_sparse_image`].
pub const HUGE_SIZE: u64 = (4 << 30) + 300_000;
/// Offset of [`HUGE_MARKER`] (it straddles the 4 GiB boundary).
pub const HUGE_MARKER_AT: u64 = (4 << 30) - 5;
/// Bytes written across 4 GiB; the file also ends in `END`.
pub const HUGE_MARKER: &[u8] = b"MARKER-ACROSS-4G";

/// A SquashFS image with one sparse file `huge` of [`HUGE_SIZE`] bytes
/// (zeros, [`HUGE_MARKER`] at [`HUGE_MARKER_AT`], `END` as its last bytes).
/// mksquashfs reads all 4 GiB (~20 s), so the 4 KiB image is cached in
/// cargo's target tmp dir across runs.
pub fn huge_sparse_image() -> PathBuf {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        let cache =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("appimagefs-huge-sparse-v1.sqfs");
        if cache.exists() {
            return cache;
        }
        let src = build_dir().join("huge-src");
        mkdir(&src);
        let f = std::fs::File::create(src.join("huge")).unwrap();
        f.set_len(HUGE_SIZE).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, HUGE_MARKER, HUGE_MARKER_AT).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"END", HUGE_SIZE - 3).unwrap();
        drop(f);
        set_mtime(&src.join("huge"), 1_500_000_000);
        let tmp = build_dir().join("huge.sqfs");
        mksquashfs(&src, &tmp, &["-comp", "zstd"]);
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        let staged = cache.with_extension(format!("tmp{}", std::process::id()));
        std::fs::copy(&tmp, &staged).unwrap();
        std::fs::rename(&staged, &cache).unwrap();
        cache
    })
    .clone()
}
