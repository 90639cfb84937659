//! Type 2 payloads: every built edge-case image (every compressor and
//! block size, fragments, sparse files, hard links, long symlinks, big
//! directories, non-UTF-8 names, devices, fifos, xattrs, owners, times) and
//! every sample app, all in ONE source folder, mounted once; each app folder
//! must equal unsquashfs's extraction of the same payload.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// One app folder to check.
struct Case {
    /// Folder name under the mount point.
    app: String,
    /// Where it came from (for messages).
    origin: String,
    /// Ground-truth extraction.
    truth: PathBuf,
    /// Built image name, if any.
    built: Option<&'static str>,
}

/// Wraps every built image and sample app into `src` (ground truth:
/// unsquashfs of the same payload, extracted once per process).
fn prepare(src: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for app in sample_apps() {
        std::fs::copy(&app.image, src.join(app.file_name)).unwrap();
        cases.push(Case {
            app: app_name(app.file_name),
            origin: format!("sample app {}", app.name),
            truth: sample_app_extraction(app.name),
            built: None,
        });
    }
    for img in built_images() {
        // A few use other spellings of the suffix, or none at all.
        let file = match img.name {
            "mixed-lz4" => "sq-mixed-lz4.appimage".to_string(),
            "mixed-lzo" => "sq-mixed-lzo.APPIMAGE".to_string(),
            "mixed-xz" => "sq-mixed-xz".to_string(),
            n => format!("sq-{n}.AppImage"),
        };
        wrap_squashfs_as_appimage(&img.sqfs, &src.join(&file));
        cases.push(Case {
            app: app_name(&file),
            origin: format!("built image {} ({:?})", img.name, img.args),
            truth: built_image_extraction(img.name),
            built: Some(img.name),
        });
    }
    // A 32-bit runtime in front of the payload.
    let file = "sq-elf32-edge.AppImage";
    wrap_squashfs_with_runtime(
        &runtime_stub::StubRuntime::type2_elf32().bytes(),
        &built_image("edge").sqfs,
        &src.join(file),
    );
    cases.push(Case {
        app: app_name(file),
        origin: "built image edge behind an ELF32 runtime".into(),
        truth: built_image_extraction("edge"),
        built: Some("edge"),
    });
    cases
}

/// pread at block-boundary offsets in every non-empty file (up to 200 per
/// app) and compare with the extraction.
fn check_random_reads(app_dir: &Path, truth: &Snapshot) -> Vec<String> {
    let mut errs = Vec::new();
    let offsets_base: [u64; 12] = [
        0, 1, 4095, 4096, 4097, 65535, 65536, 131071, 131072, 131073, 1048575, 1048576,
    ];
    let mut n = 0;
    for (rel, e) in &truth.entries {
        if e.kind != Kind::File || e.size == 0 {
            continue;
        }
        n += 1;
        if n > 200 {
            break;
        }
        let path = app_dir.join(std::ffi::OsStr::from_bytes(rel));
        let (Ok(want_f), got_f) = (std::fs::File::open(&e.abs), std::fs::File::open(&path)) else {
            continue;
        };
        let got_f = match got_f {
            Ok(f) => f,
            Err(err) => {
                errs.push(format!("{}: open: {}", show(rel), errno_name(&err)));
                continue;
            }
        };
        let mut offsets: Vec<u64> = offsets_base
            .iter()
            .copied()
            .filter(|o| *o < e.size)
            .collect();
        offsets.extend([e.size / 2, e.size.saturating_sub(1), e.size, e.size + 100]);
        for &off in &offsets {
            for &len in &[1usize, 4096, 200_000] {
                let mut want = vec![0u8; len];
                let mut got = vec![0u8; len];
                let wn = read_full_at(&want_f, &mut want, off).unwrap_or(0);
                match read_full_at(&got_f, &mut got, off) {
                    Err(err) => errs.push(format!(
                        "{}: pread({len} @ {off}): {}",
                        show(rel),
                        errno_name(&err)
                    )),
                    Ok(gn) if gn != wn || want[..wn] != got[..gn] => errs.push(format!(
                        "{}: pread({len} @ {off}) returned {gn} bytes{}, expected {wn}",
                        show(rel),
                        if gn == wn {
                            " with different content"
                        } else {
                            ""
                        }
                    )),
                    Ok(_) => {}
                }
                if errs.len() > 20 {
                    return errs;
                }
            }
        }
    }
    errs
}

fn read_full_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn errno_of<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// Direct checks on the edge image: hard links share one inode with the
/// right link count, xattr syscalls behave (ENODATA, ERANGE), long symlink
/// targets, device numbers, lookups of missing names.
fn check_edge_app(app_dir: &Path) -> Vec<String> {
    let mut errs = Vec::new();
    // hard links
    let stats: Vec<_> = EDGE_HARDLINKS
        .iter()
        .map(|p| (p, std::fs::symlink_metadata(app_dir.join(p))))
        .collect();
    let mut inos = Vec::new();
    for (p, st) in &stats {
        match st {
            Ok(m) => {
                inos.push(m.ino());
                if m.nlink() != 3 {
                    errs.push(format!(
                        "{p}: nlink {} (expected 3: hard-linked 3 times)",
                        m.nlink()
                    ));
                }
            }
            Err(e) => errs.push(format!("{p}: lstat: {}", errno_name(e))),
        }
    }
    if inos.len() == 3 && !(inos[0] == inos[1] && inos[1] == inos[2]) {
        errs.push(format!(
            "hard links {EDGE_HARDLINKS:?} have different inode numbers {inos:?}"
        ));
    }
    if let Ok(other) = std::fs::symlink_metadata(app_dir.join("frag/small-1")) {
        if inos.contains(&other.ino()) {
            errs.push("frag/small-1 shares the hard-link group's inode number".into());
        }
    }
    // xattrs, name by name
    let mut per_path: BTreeMap<&str, Vec<(&str, Vec<u8>)>> = BTreeMap::new();
    for (p, n, v) in edge_xattrs() {
        per_path.entry(p).or_default().push((n, v));
    }
    for (p, attrs) in &per_path {
        let path = app_dir.join(p);
        for (n, v) in attrs {
            match get_xattr(&path, n.as_bytes()) {
                Ok(got) if &got == v => {}
                Ok(got) => errs.push(format!(
                    "{p}: getxattr {n} = {:?}, expected {:?}",
                    show(&got),
                    show(v)
                )),
                Err(e) => errs.push(format!("{p}: getxattr {n}: {}", errno_name(&e))),
            }
        }
        match list_xattr_names(&path) {
            Ok(mut names) => {
                names.sort();
                let mut want: Vec<Vec<u8>> =
                    attrs.iter().map(|(n, _)| n.as_bytes().to_vec()).collect();
                want.sort();
                if names != want {
                    errs.push(format!(
                        "{p}: listxattr = {:?}, expected {:?}",
                        names.iter().map(|n| show(n)).collect::<Vec<_>>(),
                        want.iter().map(|n| show(n)).collect::<Vec<_>>()
                    ));
                }
            }
            Err(e) => errs.push(format!("{p}: listxattr: {}", errno_name(&e))),
        }
        if let Ok(v) = get_xattr(&path, b"user.does-not-exist") {
            errs.push(format!(
                "{p}: getxattr of a missing name returned {:?} (expected ENODATA)",
                show(&v)
            ));
        } else if let Err(e) = get_xattr(&path, b"user.does-not-exist") {
            if e.raw_os_error() != Some(libc::ENODATA) {
                errs.push(format!(
                    "{p}: getxattr of a missing name: {} (expected ENODATA)",
                    errno_name(&e)
                ));
            }
        }
    }
    // too-small buffers must give ERANGE
    let multi = CString::new(app_dir.join("xattr/multi").as_os_str().as_bytes()).unwrap();
    let name = CString::new("user.long").unwrap();
    let mut small = [0u8; 8];
    let r = unsafe {
        libc::lgetxattr(
            multi.as_ptr(),
            name.as_ptr(),
            small.as_mut_ptr() as *mut libc::c_void,
            small.len(),
        )
    };
    let e = std::io::Error::last_os_error();
    if r >= 0 || e.raw_os_error() != Some(libc::ERANGE) {
        errs.push(format!(
            "xattr/multi: lgetxattr(user.long) into 8 bytes returned {r} ({}) instead of ERANGE",
            errno_name(&e)
        ));
    }
    let r = unsafe { libc::llistxattr(multi.as_ptr(), small.as_mut_ptr() as *mut libc::c_char, 4) };
    let e = std::io::Error::last_os_error();
    if r >= 0 || e.raw_os_error() != Some(libc::ERANGE) {
        errs.push(format!(
            "xattr/multi: llistxattr into 4 bytes returned {r} ({}) instead of ERANGE",
            errno_name(&e)
        ));
    }
    // long symlink targets
    for (p, t) in edge_long_targets() {
        match std::fs::read_link(app_dir.join(p)) {
            Ok(got) if got.as_os_str().as_bytes() == &t[..] => {}
            Ok(got) => errs.push(format!(
                "{p}: readlink gave {} bytes, expected {}",
                got.as_os_str().len(),
                t.len()
            )),
            Err(e) => errs.push(format!("{p}: readlink: {}", errno_name(&e))),
        }
    }
    // device numbers
    match std::fs::symlink_metadata(app_dir.join("special/bigdev")) {
        Ok(m) if m.rdev() == libc::makedev(300, 70000) => {}
        Ok(m) => errs.push(format!(
            "special/bigdev: rdev {}:{}, expected 300:70000",
            libc::major(m.rdev()),
            libc::minor(m.rdev())
        )),
        Err(e) => errs.push(format!("special/bigdev: lstat: {}", errno_name(&e))),
    }
    // lookups that must fail
    for (p, want) in [
        ("does-not-exist", libc::ENOENT),
        ("frag/does-not-exist", libc::ENOENT),
        ("frag/tail/child", libc::ENOTDIR),
        ("empty-dir/x", libc::ENOENT),
    ] {
        match errno_of(std::fs::symlink_metadata(app_dir.join(p))) {
            Some(e) if e == want => {}
            got => errs.push(format!(
                "lstat {p}: got {:?}, expected {}",
                got.map(errno_str),
                errno_str(want)
            )),
        }
    }
    // a name longer than 255 bytes cannot exist
    let too_long = app_dir.join("names").join("n".repeat(256));
    match errno_of(std::fs::symlink_metadata(&too_long)) {
        Some(libc::ENAMETOOLONG) | Some(libc::ENOENT) => {}
        got => errs.push(format!(
            "lstat of a 256-byte name: {:?}",
            got.map(errno_str)
        )),
    }
    errs
}

/// Reads the big directory with telldir/seekdir: positions must be stable
/// and every entry must come exactly once.
fn check_bigdir_seek(dir: &Path) -> Vec<String> {
    let mut errs = Vec::new();
    let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
    unsafe {
        let d = libc::opendir(c.as_ptr());
        if d.is_null() {
            return vec![format!(
                "opendir {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            )];
        }
        let next = |d: *mut libc::DIR| -> Option<Vec<u8>> {
            let ent = libc::readdir(d);
            if ent.is_null() {
                None
            } else {
                Some(
                    std::ffi::CStr::from_ptr((*ent).d_name.as_ptr())
                        .to_bytes()
                        .to_vec(),
                )
            }
        };
        let mut names = Vec::new();
        for _ in 0..15_000 {
            match next(d) {
                Some(n) => names.push(n),
                None => break,
            }
        }
        let pos = libc::telldir(d);
        let a: Vec<_> = (0..10).filter_map(|_| next(d)).collect();
        libc::seekdir(d, pos);
        let b: Vec<_> = (0..10).filter_map(|_| next(d)).collect();
        if a != b {
            errs.push(format!(
                "seekdir(telldir()) did not return to the same position: {:?} vs {:?}",
                a.iter().map(|n| show(n)).collect::<Vec<_>>(),
                b.iter().map(|n| show(n)).collect::<Vec<_>>()
            ));
        }
        names.extend(b);
        while let Some(n) = next(d) {
            names.push(n);
        }
        libc::closedir(d);
        let total = names.len();
        names.retain(|n| n != b"." && n != b"..");
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != names.len() {
            errs.push(format!(
                "readdir returned {} duplicate names",
                names.len() - sorted.len()
            ));
        }
        if sorted.len() != BIGDIR_ENTRIES {
            errs.push(format!(
                "readdir returned {} distinct names ({} raw incl. . and ..), expected {}",
                sorted.len(),
                total,
                BIGDIR_ENTRIES
            ));
        }
    }
    errs
}

#[test]
fn squashfs_payloads_match_unsquashfs() {
    let t0 = Instant::now();
    let tmp = TempDir::new("sqfs-tree");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut fails = Failures::new();
    let cases = prepare(&src);
    assert!(cases.len() >= 25, "too few SquashFS cases: {}", cases.len());
    eprintln!(
        "prepared {} apps in {:.1}s",
        cases.len(),
        t0.elapsed().as_secs_f64()
    );

    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut compared = (0usize, 0usize);
    let root_names = mount.root_names();

    let mut all_snaps: Vec<(String, Snapshot)> = Vec::new();
    for case in &cases {
        if !root_names.contains(&case.app) {
            fails.push(format!(
                "app folder {:?} (from {}) missing from the mount root; root has {:?}",
                case.app, case.origin, root_names
            ));
            continue;
        }
        let app_dir = mnt.join(&case.app);
        let expected = snapshot(&case.truth);
        let dir = app_dir.clone();
        let actual = match with_timeout(
            &format!("snapshot {}", case.app),
            Duration::from_secs(120),
            move || snapshot(&dir),
        ) {
            Ok(s) => s,
            Err(e) => {
                fails.push(format!("{} ({}): {e}", case.app, case.origin));
                if !mount_responsive(&mnt) {
                    fails.push("the mount stopped answering; remaining apps skipped");
                    break;
                }
                continue;
            }
        };
        compared.0 += 1;
        compared.1 += actual.entries.len();
        if let Some(report) = compare_trees(&expected, &actual, &Compare::squashfs()) {
            fails.push(format!("{} ({}): {report}", case.app, case.origin));
        }
        let foreign = actual.foreign_devices();
        if !foreign.is_empty() {
            fails.push(format!(
                "{}: entries on another device (escape from the mount?): {:?}",
                case.app, foreign
            ));
        }
        let (dir, truth_snap) = (app_dir.clone(), expected.clone());
        match with_timeout(
            &format!("reads {}", case.app),
            Duration::from_secs(120),
            move || check_random_reads(&dir, &truth_snap),
        ) {
            Ok(errs) if errs.is_empty() => {}
            Ok(errs) => fails.push(format!(
                "{} ({}): random reads:\n  {}",
                case.app,
                case.origin,
                errs.join("\n  ")
            )),
            Err(e) => fails.push(format!("{}: {e}", case.app)),
        }
        match case.built {
            Some(n) if n.starts_with("edge") => {
                let dir = app_dir.clone();
                match with_timeout("edge checks", Duration::from_secs(60), move || {
                    check_edge_app(&dir)
                }) {
                    Ok(errs) if errs.is_empty() => {}
                    Ok(errs) => fails.push(format!(
                        "{} direct checks:\n  {}",
                        case.app,
                        errs.join("\n  ")
                    )),
                    Err(e) => fails.push(e),
                }
            }
            Some("bigdir") => {
                let dir = app_dir.join("many");
                match with_timeout("bigdir seekdir", Duration::from_secs(60), move || {
                    check_bigdir_seek(&dir)
                }) {
                    Ok(errs) if errs.is_empty() => {}
                    Ok(errs) => fails.push(format!("{} many/: {}", case.app, errs.join("; "))),
                    Err(e) => fails.push(e),
                }
            }
            _ => {}
        }
        all_snaps.push((case.app.clone(), actual));
    }

    // Inode numbers: unique across the whole mount except hard links.
    let mut owners: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (app, s) in &all_snaps {
        for (rel, e) in &s.entries {
            if e.kind != Kind::Unreadable {
                owners
                    .entry(e.ino)
                    .or_default()
                    .push(format!("{app}/{}", show(rel)));
            }
        }
    }
    let mut hardlinked: std::collections::BTreeSet<String> = Default::default();
    for (app, s) in &all_snaps {
        for g in &s.link_groups {
            for p in g {
                hardlinked.insert(format!("{app}/{}", show(p)));
            }
        }
    }
    let collisions: Vec<String> = owners
        .iter()
        .filter(|(_, paths)| paths.len() > 1 && !paths.iter().all(|p| hardlinked.contains(p)))
        .take(10)
        .map(|(ino, paths)| format!("inode {ino}: {paths:?}"))
        .collect();
    if !collisions.is_empty() {
        fails.push(format!(
            "distinct entries share an inode number (first 10):\n  {}",
            collisions.join("\n  ")
        ));
    }

    // Concurrent readers of one app (block cache under contention).
    if let Some(case) = cases.iter().find(|c| c.built == Some("mixed-xz-b1m")) {
        let expected = snapshot(&case.truth);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let dir = mnt.join(&case.app);
                std::thread::spawn(move || snapshot(&dir))
            })
            .collect();
        let app = case.app.clone();
        let joined = with_timeout(
            "concurrent snapshots",
            Duration::from_secs(120),
            move || {
                handles
                    .into_iter()
                    .map(|h| h.join().expect("snapshot thread"))
                    .collect::<Vec<_>>()
            },
        );
        match joined {
            Ok(snaps) => {
                for (i, s) in snaps.iter().enumerate() {
                    if let Some(r) = compare_trees(&expected, s, &Compare::squashfs()) {
                        fails.push(format!("{app}: concurrent reader {i}: {r}"));
                    }
                }
            }
            Err(e) => fails.push(e),
        }
    }

    // Lookups of names that do not exist at the root.
    match errno_of(std::fs::symlink_metadata(mnt.join("no-such-app"))) {
        Some(libc::ENOENT) => {}
        got => fails.push(format!(
            "lstat MOUNT/no-such-app: {:?}, expected ENOENT",
            got.map(errno_str)
        )),
    }

    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    eprintln!(
        "squashfs_tree: compared {} app folders ({} entries) in {:.1}s",
        compared.0,
        compared.1,
        t0.elapsed().as_secs_f64()
    );
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("squashfs_tree");
}

/// A sparse file larger than 4 GiB (64-bit sizes and offsets, extended file
/// inode): size, bytes across the 4 GiB boundary, the last bytes, EOF.
#[test]
fn file_larger_than_4gib() {
    let tmp = TempDir::new("sqfs-huge");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    wrap_squashfs_as_appimage(&huge_sparse_image(), &src.join("huge.AppImage"));
    let mount = Mount::start(&src, &mnt, &[]);
    let path = mnt.join("huge/huge");
    let result = with_timeout("huge file checks", Duration::from_secs(60), move || {
        let mut errs = Vec::new();
        let md = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => return vec![format!("lstat: {}", errno_name(&e))],
        };
        if md.size() != HUGE_SIZE {
            errs.push(format!("size {} != {HUGE_SIZE}", md.size()));
        }
        if md.mtime() != 1_500_000_000 {
            errs.push(format!("mtime {} != 1500000000", md.mtime()));
        }
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return vec![format!("open: {}", errno_name(&e))],
        };
        let mut check = |off: u64, len: usize, want: &dyn Fn(u64) -> u8, want_len: usize| {
            let mut buf = vec![0xAAu8; len];
            match read_full_at(&f, &mut buf, off) {
                Err(e) => errs.push(format!("pread({len} @ {off}): {}", errno_name(&e))),
                Ok(n) if n != want_len => errs.push(format!(
                    "pread({len} @ {off}) gave {n} bytes, expected {want_len}"
                )),
                Ok(n) => {
                    if let Some(i) = (0..n).find(|&i| buf[i] != want(off + i as u64)) {
                        errs.push(format!(
                            "pread({len} @ {off}): byte at {} is {:#04x}, expected {:#04x}",
                            off + i as u64,
                            buf[i],
                            want(off + i as u64)
                        ));
                    }
                }
            }
        };
        let content = |pos: u64| -> u8 {
            if (HUGE_MARKER_AT..HUGE_MARKER_AT + HUGE_MARKER.len() as u64).contains(&pos) {
                HUGE_MARKER[(pos - HUGE_MARKER_AT) as usize]
            } else if pos >= HUGE_SIZE - 3 {
                b"END"[(pos - (HUGE_SIZE - 3)) as usize]
            } else {
                0
            }
        };
        check(0, 4096, &content, 4096);
        check(2 << 30, 1 << 20, &content, 1 << 20);
        check(HUGE_MARKER_AT - 100, 300, &content, 300);
        check(
            HUGE_MARKER_AT,
            HUGE_MARKER.len(),
            &content,
            HUGE_MARKER.len(),
        );
        check((4 << 30) + 1, 4096, &content, 4096);
        check(HUGE_SIZE - 10, 100, &content, 10);
        check(HUGE_SIZE, 100, &content, 0);
        check(HUGE_SIZE + (1 << 32), 100, &content, 0);
        errs
    });
    let alive_log = mount.log_text();
    drop(mount);
    match result {
        Ok(errs) if errs.is_empty() => {}
        Ok(errs) => panic!(
            "huge/huge:\n  {}\ndaemon output:\n{alive_log}",
            errs.join("\n  ")
        ),
        Err(e) => panic!("{e}\ndaemon output:\n{alive_log}"),
    }
}

/// A 1 MiB decompression cache (smaller than two 1 MiB blocks) and one
/// request thread, then 8 request threads, each with 6 concurrent readers
/// over images with 4K, 128K and 1M blocks: every tree still reads back
/// identical (eviction and concurrency correctness).
#[test]
fn tiny_cache_and_concurrent_readers() {
    let names = ["mixed-xz-b1m", "mixed-gzip-b4k", "mixed-zstd", "edge"];
    for opts in ["cache_size=1M,threads=1", "cache_size=1M,threads=8"] {
        let tmp = TempDir::new("sqfs-tinycache");
        let src = tmp.subdir("src");
        let mnt = tmp.subdir("mnt");
        for n in names {
            wrap_squashfs_as_appimage(&built_image(n).sqfs, &src.join(format!("{n}.AppImage")));
        }
        let mut mount = Mount::start(&src, &mnt, &["-o", opts]);
        let mut fails = Failures::new();
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let n = names[i % names.len()];
                let dir = mnt.join(n);
                std::thread::spawn(move || (n, snapshot(&dir)))
            })
            .collect();
        let joined = with_timeout(
            "concurrent snapshots",
            Duration::from_secs(180),
            move || {
                handles
                    .into_iter()
                    .map(|h| h.join().expect("snapshot thread"))
                    .collect::<Vec<_>>()
            },
        );
        match joined {
            Ok(snaps) => {
                for (n, s) in snaps {
                    let expected = snapshot(&built_image_extraction(n));
                    if let Some(r) = compare_trees(&expected, &s, &Compare::squashfs()) {
                        fails.push(format!("-o {opts}: {n}: {r}"));
                    }
                }
            }
            Err(e) => fails.push(format!("-o {opts}: {e}")),
        }
        fails.check(mount.is_alive(), || {
            format!("-o {opts}: daemon died:\n{}", mount.log_text())
        });
        if !fails.is_empty() {
            fails.push(format!("daemon output:\n{}", mount.log_text()));
        }
        drop(mount);
        fails.finish("tiny cache");
    }
}

/// 300 AppImages (hard links to one file) in one folder: the mount comes up
/// quickly, lists all of them with distinct inode numbers, and serves them.
#[test]
fn many_appimages_in_one_folder() {
    let tmp = TempDir::new("sqfs-many");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let first = copy_sample_app("echo", &src, "app-000.AppImage");
    for i in 1..300 {
        std::fs::hard_link(&first, src.join(format!("app-{i:03}.AppImage"))).unwrap();
    }
    let t0 = Instant::now();
    let mount = Mount::start(&src, &mnt, &[]);
    let ready = t0.elapsed();
    let m = mnt.clone();
    let listing = must_finish("readdir root", Duration::from_secs(30), move || {
        std::fs::read_dir(&m).map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("app-"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().map(|m| m.ino()).ok(),
                    )
                })
                .collect::<Vec<_>>()
        })
    })
    .expect("readdir root");
    let log = mount.log_text();
    let names: std::collections::BTreeSet<_> = listing.iter().map(|(n, _)| n.clone()).collect();
    let inos: std::collections::BTreeSet<_> = listing.iter().filter_map(|(_, i)| *i).collect();
    let truth = sample_app_extraction("echo");
    let want = std::fs::read(truth.join("AppRun")).unwrap();
    let probe = mnt.clone();
    let got = must_finish(
        "read AppRun of 3 apps",
        Duration::from_secs(30),
        move || {
            ["app-000", "app-150", "app-299"]
                .iter()
                .map(|a| std::fs::read(probe.join(a).join("AppRun")).map_err(|e| errno_name(&e)))
                .collect::<Vec<_>>()
        },
    );
    drop(mount);
    assert!(
        ready < Duration::from_secs(20),
        "mount took {ready:?} to become ready with 300 AppImages"
    );
    assert_eq!(
        names.len(),
        300,
        "listed {} of 300 app folders; daemon output:\n{log}",
        names.len()
    );
    assert_eq!(
        inos.len(),
        300,
        "300 app folders have only {} distinct inode numbers",
        inos.len()
    );
    for (i, g) in got.into_iter().enumerate() {
        assert!(
            g.as_deref() == Ok(&want[..]),
            "AppRun #{i} differs or fails: {:?}",
            g.map(|v| v.len())
        );
    }
}
