//! The live source folder (issue 6): AppImages added, removed, renamed and
//! overwritten under a running mount.
//!
//! Ground truth: three versions (A, B, C) of one AppImage built here, with the
//! same file paths and sizes but different bytes (and different compressors),
//! extracted with `unsquashfs -o OFFSET`. Whatever a reader gets from the
//! mount must be, byte for byte, the content of one of those versions (and
//! one open file must stay with one version), or an error (EIO, ENOENT,
//! ESTALE); never bytes of no version or of two versions mixed.
//!
//! Timings (how long the tree took to follow the folder) are printed with a
//! `TIMING` prefix; run with `--nocapture` to see them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common::apps::{copy_app, App};
use crate::common::*;

/// Number of versions of the test app.
const NV: usize = 3;
/// The `VERSION` file of each version (same length).
const MARKERS: [&str; NV] = ["version A\n", "version B\n", "version C\n"];
/// mksquashfs compressor of each version.
const COMPRESSORS: [&str; NV] = ["gzip", "xz", "zstd"];
/// What the spec promises: a finished file is shown within ~1 s, a removed
/// one vanishes at once; the tests poll up to this long.
const TREE_LIMIT: Duration = Duration::from_secs(2);
/// Errnos a reader may get while the folder changes underneath it.
const ALLOWED: &[i32] = &[libc::EIO, libc::ENOENT, libc::ESTALE];

// ---------------------------------------------------------------------------
// Versions and ground truth

struct Versions {
    /// The AppImage of each version.
    images: [PathBuf; NV],
    /// Relative path -> content in each version (from unsquashfs).
    files: Vec<(String, [Vec<u8>; NV])>,
    /// A large AppImage for the slow copy, and its `big.bin` content.
    big: PathBuf,
    big_content: Vec<u8>,
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
}

/// Version `v`'s tree: every file exists in every version with the same
/// size, the bytes differ.
fn build_version_tree(root: &Path, v: usize) {
    let tag = [b'A' + v as u8];
    put(root, "VERSION", MARKERS[v].as_bytes());
    let mut apprun = format!("#!/bin/sh\necho '{}'\n", MARKERS[v].trim()).into_bytes();
    apprun.resize(64, b'\n');
    put(root, "AppRun", &apprun);
    set_mode(&root.join("AppRun"), 0o755);
    put(
        root,
        "data/random.bin",
        &pseudo_random(100 + v as u64, 600_000),
    );
    // salts 0, 5, 10 give three different texts
    put(root, "data/text.txt", &text(700_000, v * 5));
    let mut mixed = text(200_000, v * 5 + 1);
    mixed.extend_from_slice(&pseudo_random(200 + v as u64, 150_001));
    put(root, "data/mixed.bin", &mixed);
    for i in 0..16usize {
        let mut small = tag.to_vec();
        small.extend_from_slice(&text(i * 301 + 7, v * 5 + 2));
        put(root, &format!("data/small/s{i:02}"), &small);
    }
}

fn read_tree(root: &Path, rel: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            read_tree(root, &r, out);
        } else if ft.is_file() {
            out.insert(
                r.to_string_lossy().into_owned(),
                std::fs::read(root.join(&r)).unwrap(),
            );
        }
    }
}

fn versions() -> &'static Versions {
    static V: OnceLock<Versions> = OnceLock::new();
    V.get_or_init(|| {
        let dir = build_dir().join("live");
        std::fs::create_dir_all(&dir).unwrap();
        let offset = type2_runtime().len() as u64;
        let mut images = Vec::new();
        let mut extracted: Vec<BTreeMap<String, Vec<u8>>> = Vec::new();
        for (v, compressor) in COMPRESSORS.iter().enumerate().take(NV) {
            let tree = dir.join(format!("tree-{v}"));
            build_version_tree(&tree, v);
            let sqfs = dir.join(format!("v{v}.sqfs"));
            mksquashfs(&tree, &sqfs, &["-comp", compressor]);
            let image = dir.join(format!("v{v}.AppImage"));
            wrap_squashfs_as_appimage(&sqfs, &image);
            let out = dir.join(format!("extracted-{v}"));
            unsquashfs_extract(&image, offset, &out).unwrap_or_else(|e| panic!("{e}"));
            let mut files = BTreeMap::new();
            read_tree(&out, Path::new(""), &mut files);
            extracted.push(files);
            images.push(image);
        }
        let paths: Vec<String> = extracted[0].keys().cloned().collect();
        let mut files = Vec::new();
        for p in &paths {
            let per: Vec<Vec<u8>> = extracted
                .iter()
                .map(|m| {
                    m.get(p)
                        .unwrap_or_else(|| panic!("{p} missing in a version"))
                        .clone()
                })
                .collect();
            assert!(
                per.iter().all(|c| c.len() == per[0].len()),
                "{p}: versions differ in size"
            );
            if p != "AppRun" {
                assert!(
                    per[0] != per[1] && per[1] != per[2] && per[0] != per[2],
                    "{p}: versions must differ"
                );
            }
            files.push((p.clone(), per.try_into().unwrap()));
        }
        assert!(extracted.iter().all(|m| m.len() == paths.len()));
        // The big one: ~3 MB of incompressible data.
        let big_tree = dir.join("tree-big");
        let big_content = pseudo_random(999, 3_000_000);
        put(&big_tree, "big.bin", &big_content);
        put(&big_tree, "VERSION", b"big\n");
        put(&big_tree, "AppRun", b"#!/bin/sh\necho big\n");
        let sqfs = dir.join("big.sqfs");
        mksquashfs(&big_tree, &sqfs, &["-comp", "gzip"]);
        let big = dir.join("big.AppImage");
        wrap_squashfs_as_appimage(&sqfs, &big);
        Versions {
            images: images.try_into().unwrap(),
            files,
            big,
            big_content,
        }
    })
}

fn image_bytes(v: usize) -> Vec<u8> {
    std::fs::read(&versions().images[v]).unwrap()
}

// ---------------------------------------------------------------------------
// Small helpers

fn drop_page_cache(f: &File) {
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// App folders at the top of the mount (without `bin` and `share`).
fn apps_at(mnt: &Path) -> std::io::Result<BTreeSet<Vec<u8>>> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(mnt)? {
        let n = e?.file_name().as_bytes().to_vec();
        if n != b"bin" && n != b"share" {
            out.insert(n);
        }
    }
    Ok(out)
}

fn show_set(s: &BTreeSet<Vec<u8>>) -> String {
    s.iter().map(|n| show(n)).collect::<Vec<_>>().join(", ")
}

/// The full log of a foreground mount (the guard's `log_text` is cut short):
/// the daemon's stderr is the log file.
fn full_log(m: &Mount) -> String {
    let Some(pid) = m.pid() else {
        return m.log_text();
    };
    match std::fs::read_link(format!("/proc/{pid}/fd/2")).and_then(std::fs::read) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => m.log_text(),
    }
}

/// What the source folder holds: file name -> version.
type Model = BTreeMap<String, usize>;

/// Compares the mount with `model` once; `Ok` when every expected folder,
/// and nothing else, is listed, and each one's VERSION is the right one.
fn tree_state(mnt: &Path, model: &Model) -> Result<(), String> {
    let want: BTreeSet<Vec<u8>> = model.keys().map(|f| app_name(f).into_bytes()).collect();
    let got = apps_at(mnt).map_err(|e| format!("cannot list the mount: {e}"))?;
    if got != want {
        return Err(format!(
            "listed [{}], expected [{}]",
            show_set(&got),
            show_set(&want)
        ));
    }
    for (file, &v) in model {
        let p = mnt.join(app_name(file)).join("VERSION");
        match std::fs::read(&p) {
            Ok(b) if b == MARKERS[v].as_bytes() => {}
            Ok(b) => {
                return Err(format!(
                    "{}/VERSION reads {:?}, expected {:?}",
                    app_name(file),
                    String::from_utf8_lossy(&b),
                    MARKERS[v]
                ))
            }
            Err(e) => return Err(format!("{}/VERSION: {}", app_name(file), errno_name(&e))),
        }
    }
    Ok(())
}

/// Polls until the mount matches `model`. Returns how long it took; a
/// result later than `limit` (polling goes on a few seconds more, to tell
/// slow from never) or never is a failure.
fn wait_tree(
    mnt: &Path,
    model: &Model,
    since: Instant,
    limit: Duration,
    what: &str,
    fails: &mut Failures,
) -> Option<Duration> {
    let give_up = since + limit + Duration::from_secs(6);
    let mut last;
    loop {
        let st = tree_state(mnt, model);
        let now = Instant::now();
        match st {
            Ok(()) => {
                let took = now - since;
                eprintln!(
                    "TIMING live: {what}: tree matched after {} ms",
                    took.as_millis()
                );
                if took > limit {
                    fails.push(format!(
                        "{what}: the tree matched the folder only after {} ms (limit {} ms)",
                        took.as_millis(),
                        limit.as_millis()
                    ));
                }
                return Some(took);
            }
            Err(e) => last = e,
        }
        if now > give_up {
            fails.push(format!(
                "{what}: the tree did not match the folder within {} s: {last}",
                (give_up - since).as_secs()
            ));
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// Readers

#[derive(Default)]
struct ReadStats {
    files_ok: u64,
    bytes_ok: u64,
    errors: BTreeMap<String, u64>,
    failures: Vec<String>,
}

/// Reads `path` with `pread`s of `chunk` bytes after dropping its page
/// cache, keeping the set of versions every chunk so far agrees with.
fn check_file(path: &Path, truth: &[Vec<u8>; NV], chunk: usize, st: &mut ReadStats) {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if ALLOWED.contains(&errno_of(&e)) => {
            *st.errors
                .entry(format!("open {}", errno_name(&e)))
                .or_default() += 1;
            return;
        }
        Err(e) => {
            st.failures.push(format!(
                "open {}: unexpected {}",
                path.display(),
                errno_name(&e)
            ));
            return;
        }
    };
    drop_page_cache(&f);
    let mut cand: Vec<usize> = (0..NV).collect();
    let mut buf = vec![0u8; chunk];
    let mut off = 0usize;
    loop {
        match f.read_at(&mut buf, off as u64) {
            Ok(0) => {
                cand.retain(|&v| truth[v].len() == off);
                if cand.is_empty() {
                    st.failures.push(format!(
                        "{}: end of file at {off}, but the versions are {} bytes",
                        path.display(),
                        truth[0].len()
                    ));
                } else {
                    st.files_ok += 1;
                }
                return;
            }
            Ok(n) => {
                let got = &buf[..n];
                let matches: Vec<usize> = (0..NV)
                    .filter(|&v| truth[v].get(off..off + n) == Some(got))
                    .collect();
                if matches.is_empty() {
                    let first_bad = (0..n)
                        .find(|&i| (0..NV).all(|v| truth[v].get(off + i) != Some(&got[i])))
                        .unwrap_or(0);
                    st.failures.push(format!(
                        "{}: WRONG BYTES: {n} bytes at offset {off} match no version \
                         (first byte matching none at {}; versions {} bytes)",
                        path.display(),
                        off + first_bad,
                        truth[0].len()
                    ));
                    return;
                }
                cand.retain(|v| matches.contains(v));
                if cand.is_empty() {
                    st.failures.push(format!(
                        "{}: MIXED VERSIONS in one open file: the {n} bytes at {off} are \
                         version {:?}, earlier bytes of the same open file another",
                        path.display(),
                        matches
                            .iter()
                            .map(|&v| MARKERS[v].trim())
                            .collect::<Vec<_>>()
                    ));
                    return;
                }
                st.bytes_ok += n as u64;
                off += n;
            }
            Err(e) if ALLOWED.contains(&errno_of(&e)) => {
                *st.errors
                    .entry(format!("read {}", errno_name(&e)))
                    .or_default() += 1;
                return;
            }
            Err(e) => {
                st.failures.push(format!(
                    "{}: read at {off}: unexpected {}",
                    path.display(),
                    errno_name(&e)
                ));
                return;
            }
        }
    }
}

fn reader(mnt: PathBuf, id: usize, stop: Arc<AtomicBool>) -> ReadStats {
    let chunk = [4096usize, 65_537, 1 << 20][id % 3];
    let files = &versions().files;
    let mut st = ReadStats::default();
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) && st.failures.len() < 20 {
        let apps = match apps_at(&mnt) {
            Ok(a) => a,
            Err(e) => {
                st.failures
                    .push(format!("listing the mount root failed: {}", errno_name(&e)));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        for app in apps {
            let dir = mnt.join(std::ffi::OsStr::from_bytes(&app));
            for k in 0..files.len() {
                let (rel, truth) = &files[(k + round + id * 7) % files.len()];
                check_file(&dir.join(rel), truth, chunk, &mut st);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        round += 1;
    }
    st
}

fn write_file(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, 0o755);
}

/// Overwrites the start of `path` in place without truncating it.
fn overwrite_no_trunc(path: &Path, data: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

/// Writes `data` to a hidden staging name, then renames it onto `path`.
fn replace_by_rename(path: &Path, data: &[u8]) {
    let stage = path.with_file_name(format!(
        ".stage-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    write_file(&stage, data);
    std::fs::rename(&stage, path).unwrap();
}

fn ino_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.ino())
}

enum Op {
    Add(&'static str, usize),
    AddByRename(&'static str, usize),
    Remove(&'static str),
    Rename(&'static str, &'static str),
    OverwriteTrunc(&'static str, usize),
    OverwriteNoTrunc(&'static str, usize),
    ReplaceByRename(&'static str, usize),
}

const SCRIPT: &[Op] = &[
    Op::Add("new-1.AppImage", 1),
    Op::OverwriteTrunc("app-a.AppImage", 2),
    Op::Rename("app-b.AppImage", "moved-b.AppImage"),
    Op::ReplaceByRename("app-c.AppImage", 0),
    Op::Remove("new-1.AppImage"),
    Op::OverwriteNoTrunc("moved-b.AppImage", 0),
    Op::AddByRename("new-2.AppImage", 2),
    Op::Remove("app-a.AppImage"),
    Op::Rename("new-2.AppImage", "app-a.AppImage"),
    Op::OverwriteTrunc("app-c.AppImage", 1),
    Op::ReplaceByRename("moved-b.AppImage", 2),
    Op::Remove("app-c.AppImage"),
];

fn changes_under_readers(tag: &str, extra: &[&str]) {
    let t0 = Instant::now();
    versions();
    let tmp = TempDir::new(tag);
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut model: Model = BTreeMap::new();
    for (i, f) in ["app-a.AppImage", "app-b.AppImage", "app-c.AppImage"]
        .iter()
        .enumerate()
    {
        write_file(&src.join(f), &image_bytes(i));
        model.insert(f.to_string(), i);
    }
    let mut mount = Mount::start(&src, &mnt, extra);
    let mut fails = Failures::new();
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        TREE_LIMIT,
        &format!("{tag}: initial"),
        &mut fails,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    for id in 0..3 {
        let (m, s, tx) = (mnt.clone(), stop.clone(), tx.clone());
        std::thread::spawn(move || {
            let _ = tx.send(reader(m, id, s));
        });
    }
    drop(tx);
    std::thread::sleep(Duration::from_millis(300));

    let mut timings = Vec::new();
    for (step, op) in SCRIPT.iter().enumerate() {
        let desc;
        let mut ino_must_change: Option<(String, Option<u64>)> = None;
        match *op {
            Op::Add(f, v) => {
                desc = format!("add {f} (version {})", MARKERS[v].trim());
                write_file(&src.join(f), &image_bytes(v));
                model.insert(f.into(), v);
            }
            Op::AddByRename(f, v) => {
                desc = format!("add {f} by rename from a hidden name");
                replace_by_rename(&src.join(f), &image_bytes(v));
                model.insert(f.into(), v);
            }
            Op::Remove(f) => {
                desc = format!("rm {f}");
                std::fs::remove_file(src.join(f)).unwrap();
                model.remove(f);
            }
            Op::Rename(a, b) => {
                desc = format!("mv {a} {b}");
                let old = ino_of(&mnt.join(app_name(a)));
                std::fs::rename(src.join(a), src.join(b)).unwrap();
                let v = model.remove(a).unwrap();
                model.insert(b.into(), v);
                ino_must_change = Some((b.into(), old));
            }
            Op::OverwriteTrunc(f, v) => {
                desc = format!(
                    "overwrite {f} in place (truncate) with {}",
                    MARKERS[v].trim()
                );
                let old = ino_of(&mnt.join(app_name(f)));
                write_file(&src.join(f), &image_bytes(v));
                model.insert(f.into(), v);
                ino_must_change = Some((f.into(), old));
            }
            Op::OverwriteNoTrunc(f, v) => {
                desc = format!(
                    "overwrite {f} in place (no truncate) with {}",
                    MARKERS[v].trim()
                );
                let old = ino_of(&mnt.join(app_name(f)));
                overwrite_no_trunc(&src.join(f), &image_bytes(v));
                model.insert(f.into(), v);
                ino_must_change = Some((f.into(), old));
            }
            Op::ReplaceByRename(f, v) => {
                desc = format!("mv new old: {f} := {}", MARKERS[v].trim());
                let old = ino_of(&mnt.join(app_name(f)));
                replace_by_rename(&src.join(f), &image_bytes(v));
                model.insert(f.into(), v);
                ino_must_change = Some((f.into(), old));
            }
        }
        let what = format!("{tag}: step {step}: {desc}");
        if let Some(took) = wait_tree(&mnt, &model, Instant::now(), TREE_LIMIT, &what, &mut fails) {
            timings.push((desc.clone(), took));
        }
        if let Some((f, Some(old))) = ino_must_change {
            let new = ino_of(&mnt.join(app_name(&f)));
            fails.check(new.is_some() && new != Some(old), || {
                format!("{what}: folder {} kept inode {old:#x} (got {new:x?}); a changed or renamed file must get new inode numbers", app_name(&f))
            });
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = ReadStats::default();
    for _ in 0..3 {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(st) => {
                total.files_ok += st.files_ok;
                total.bytes_ok += st.bytes_ok;
                for (k, n) in st.errors {
                    *total.errors.entry(k).or_default() += n;
                }
                total.failures.extend(st.failures);
            }
            Err(_) => {
                fails.push(format!(
                    "{tag}: a reader thread hung (no result 30 s after stop)"
                ));
                break;
            }
        }
    }
    eprintln!(
        "TIMING live: {tag}: readers verified {} whole files, {} MB; allowed errors {:?}; total {:.1}s",
        total.files_ok,
        total.bytes_ok >> 20,
        total.errors,
        t0.elapsed().as_secs_f64()
    );
    for f in total.failures {
        fails.push(format!("{tag}: reader: {f}"));
    }
    // The readers must really have read (a check that read nothing proves nothing).
    fails.check(total.files_ok >= 20 && total.bytes_ok > (20 << 20), || {
        format!(
            "{tag}: the readers verified only {} files / {} bytes",
            total.files_ok, total.bytes_ok
        )
    });
    let max = timings.iter().map(|t| t.1).max().unwrap_or_default();
    eprintln!("TIMING live: {tag}: slowest change {} ms", max.as_millis());
    fails.check(mount.is_alive(), || format!("{tag}: the daemon died"));
    if !fails.is_empty() {
        fails.push(format!(
            "daemon log:\n{}",
            truncate_text(&full_log(&mount), 6000)
        ));
    }
    drop(mount);
    fails.finish(tag);
}

/// (a) add / remove / rename / overwrite under three readers, default cache.
#[test]
fn changes_under_concurrent_readers() {
    changes_under_readers("live-readers", &[]);
}

/// (a) the same with a 1 MiB cache, so reads go back to the backing file.
#[test]
fn changes_under_concurrent_readers_tiny_cache() {
    changes_under_readers("live-readers-1m", &["-o", "cache_size=1M"]);
}

// ---------------------------------------------------------------------------
// (b) slow copy

#[test]
fn slow_copy_is_shown_only_once_complete() {
    let vs = versions();
    let data = std::fs::read(&vs.big).unwrap();
    let tmp = TempDir::new("live-slowcopy");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let name = "Big-Slow";
    let dst = src.join(format!("{name}.AppImage"));

    let seen: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop, mnt) = (seen.clone(), stop.clone(), mnt.clone());
        std::thread::spawn(move || {
            let p = mnt.join(name);
            while !stop.load(Ordering::Relaxed) {
                let listed = apps_at(&mnt)
                    .map(|a| a.contains(name.as_bytes()))
                    .unwrap_or(false);
                if listed || p.symlink_metadata().is_ok() {
                    seen.lock().unwrap().get_or_insert(Instant::now());
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let chunk = 64 * 1024;
    let chunks = data.len().div_ceil(chunk);
    let t_start = Instant::now();
    {
        let mut f = File::create(&dst).unwrap();
        for i in 0..chunks {
            let end = ((i + 1) * chunk).min(data.len());
            f.write_all(&data[i * chunk..end]).unwrap();
            f.flush().unwrap();
            if i + 1 == chunks {
                break;
            }
            if i == chunks / 2 {
                std::thread::sleep(Duration::from_millis(1500));
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    set_mode(&dst, 0o755);
    let t_done = Instant::now();
    let deadline = t_done + Duration::from_secs(5);
    while seen.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    let seen = *seen.lock().unwrap();
    eprintln!(
        "TIMING live: slow copy of {} bytes took {} ms",
        data.len(),
        (t_done - t_start).as_millis()
    );
    match seen {
        None => fails.push(format!(
            "slow copy: {name} did not appear within 5 s after the copy finished"
        )),
        Some(t) if t < t_done => fails.push(format!(
            "slow copy: {name} appeared {} ms BEFORE the copy finished ({} ms after it started)",
            (t_done - t).as_millis(),
            (t - t_start).as_millis()
        )),
        Some(t) => {
            let after = t - t_done;
            eprintln!(
                "TIMING live: slow copy: shown {} ms after the copy finished",
                after.as_millis()
            );
            fails.check(after <= Duration::from_millis(1500), || {
                format!(
                    "slow copy: shown only {} ms after the copy finished (limit 1500 ms)",
                    after.as_millis()
                )
            });
        }
    }
    match std::fs::read(mnt.join(name).join("big.bin")) {
        Ok(b) => fails.check(b == vs.big_content, || {
            "slow copy: big.bin read through the mount differs from the source".into()
        }),
        Err(e) => fails.push(format!(
            "slow copy: reading {name}/big.bin: {}",
            errno_name(&e)
        )),
    }
    fails.check(mount.is_alive(), || "slow copy: the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", full_log(&mount)));
    }
    drop(mount);
    fails.finish("slow_copy");
}

// ---------------------------------------------------------------------------
// (c) running apps

fn truth_of(rel: &str) -> &'static [Vec<u8>; NV] {
    &versions()
        .files
        .iter()
        .find(|(p, _)| p == rel)
        .unwrap_or_else(|| panic!("no {rel} in the versions"))
        .1
}

#[test]
fn running_apps_keep_their_version() {
    let tmp = TempDir::new("live-running");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut model: Model = BTreeMap::new();
    for (f, v) in [
        ("run-a.AppImage", 0),
        ("run-b.AppImage", 1),
        ("run-c.AppImage", 2),
    ] {
        write_file(&src.join(f), &image_bytes(v));
        model.insert(f.into(), v);
    }
    let mut mount = Mount::start(&src, &mnt, &["-o", "cache_size=1M"]);
    let mut fails = Failures::new();
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        TREE_LIMIT,
        "running: initial",
        &mut fails,
    );
    let random = truth_of("data/random.bin");
    let textf = truth_of("data/text.txt");

    // An fd held in run-a (version A) and one in run-c (version C).
    let fd_a = File::open(mnt.join("run-a/data/random.bin")).unwrap();
    let ino_a = fd_a.metadata().unwrap().ino();
    let mut head = vec![0u8; 4096];
    fd_a.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(
        head,
        random[0][..4096],
        "run-a is not version A to begin with"
    );
    // Two in run-c: a compressed file and an incompressible one (stored
    // raw, so reading it at the old offsets of a changed file would return
    // other bytes rather than fail to decompress).
    let mut held_c = Vec::new();
    for rel in ["data/text.txt", "data/random.bin"] {
        let f = File::open(mnt.join("run-c").join(rel)).unwrap();
        f.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(
            head,
            truth_of(rel)[2][..4096],
            "run-c is not version C to begin with"
        );
        held_c.push((rel, f));
    }
    let ino_c = held_c[0].1.metadata().unwrap().ino();
    // A process whose working directory is inside run-b (version B).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read go && cat VERSION data/random.bin data/text.txt && ls data >/dev/null && echo done")
        .current_dir(mnt.join("run-b"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    for app in ["run-a", "run-b", "run-c"] {
        let _ = std::fs::read(mnt.join(app).join("VERSION"));
    }
    // mv a new version over run-a, rm run-b, overwrite run-c in place.
    replace_by_rename(&src.join("run-a.AppImage"), &image_bytes(2));
    model.insert("run-a.AppImage".into(), 2);
    std::fs::remove_file(src.join("run-b.AppImage")).unwrap();
    model.remove("run-b.AppImage");
    write_file(&src.join("run-c.AppImage"), &image_bytes(0));
    model.insert("run-c.AppImage".into(), 0);
    // First by lookups only (no readdir, which would refresh the kernel's
    // entries by itself): the kernel cached MNT/run-* above, for a day, so
    // only the daemon's invalidation can make these change.
    let t = Instant::now();
    let mut last = String::new();
    loop {
        let b = std::fs::symlink_metadata(mnt.join("run-b"));
        let a = std::fs::read(mnt.join("run-a/VERSION"));
        let c = std::fs::read(mnt.join("run-c/VERSION"));
        let ok = matches!(&b, Err(e) if errno_of(e) == libc::ENOENT)
            && a.as_deref().ok() == Some(MARKERS[2].as_bytes())
            && c.as_deref().ok() == Some(MARKERS[0].as_bytes());
        if ok {
            eprintln!(
                "TIMING live: running: lookups (no readdir) saw the changes after {} ms",
                t.elapsed().as_millis()
            );
            break;
        }
        last = format!(
            "stat run-b: {:?}; run-a/VERSION: {:?}; run-c/VERSION: {:?}",
            b.map(|m| m.ino()).map_err(|e| errno_name(&e)),
            a.map(|v| String::from_utf8_lossy(&v).into_owned())
                .map_err(|e| errno_name(&e)),
            c.map(|v| String::from_utf8_lossy(&v).into_owned())
                .map_err(|e| errno_name(&e))
        );
        if t.elapsed() > TREE_LIMIT {
            fails.push(format!(
                "running: by lookups only (no readdir), the cached names still show the old state {} ms after mv/rm/overwrite: {last} (expected ENOENT, version C, version A)",
                t.elapsed().as_millis()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = last;
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        TREE_LIMIT,
        "running: mv/rm/overwrite",
        &mut fails,
    );

    // Push the old blocks out of the 1 MiB cache: read the new versions.
    for app in ["run-a", "run-c"] {
        for (rel, _) in &versions().files {
            let _ = std::fs::read(mnt.join(app).join(rel));
        }
    }

    // The fd of the renamed-over file: still the old bytes, no error.
    drop_page_cache(&fd_a);
    let mut all = vec![0u8; random[0].len()];
    match fd_a.read_exact_at(&mut all, 0) {
        Ok(()) => fails.check(all == random[0], || {
            let v = (0..NV).find(|&v| all == random[v]);
            format!("held fd in run-a after `mv new run-a.AppImage`: expected the old bytes (version A), got {}", match v { Some(v) => MARKERS[v].trim().to_string(), None => "bytes of no version".into() })
        }),
        Err(e) => fails.push(format!(
            "held fd in run-a after `mv new run-a.AppImage`: read failed with {} (the old file is still open, it must keep working)",
            errno_name(&e)
        )),
    }
    // The process in the removed app.
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"go\n");
    }
    let out = must_finish("cwd process", Duration::from_secs(30), move || {
        child.wait_with_output().unwrap()
    });
    let mut expected = MARKERS[1].as_bytes().to_vec();
    expected.extend_from_slice(&random[1]);
    expected.extend_from_slice(&textf[1]);
    expected.extend_from_slice(b"done\n");
    fails.check(out.status.success() && out.stdout == expected, || {
        format!(
            "process with its cwd in run-b after `rm run-b.AppImage`: expected status 0 and version B's VERSION, random.bin, text.txt; got {} with {} bytes of stdout (VERSION line {:?}); stderr: {}",
            out.status,
            out.stdout.len(),
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(10)]),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // The fds of the file overwritten in place: old bytes or EIO, never new.
    for (rel, fd_c) in &held_c {
        let truth = truth_of(rel);
        drop_page_cache(fd_c);
        let (mut ok, mut eio) = (0, 0);
        let mut off = 0usize;
        let mut buf = vec![0u8; 65536];
        while off < truth[2].len() {
            match fd_c.read_at(&mut buf, off as u64) {
                Ok(0) => {
                    fails.push(format!(
                        "held fd on run-c/{rel}: early end of file at {off}"
                    ));
                    break;
                }
                Ok(n) => {
                    if buf[..n] == truth[2][off..off + n] {
                        ok += 1;
                    } else {
                        let v = (0..NV).find(|&v| truth[v].get(off..off + n) == Some(&buf[..n]));
                        fails.push(format!(
                            "held fd on run-c/{rel} after an in-place overwrite: {n} bytes at {off} are {} instead of the old version C (or EIO)",
                            v.map(|v| MARKERS[v].trim().to_string()).unwrap_or("bytes of no version".into())
                        ));
                        break;
                    }
                    off += n;
                }
                Err(e) if errno_of(&e) == libc::EIO => {
                    eio += 1;
                    off += buf.len();
                }
                Err(e) => {
                    fails.push(format!(
                        "held fd on run-c/{rel} after an in-place overwrite: {} at {off} (expected old bytes or EIO)",
                        errno_name(&e)
                    ));
                    break;
                }
            }
        }
        eprintln!("TIMING live: held fd on run-c/{rel} after in-place overwrite: {ok} chunks of old bytes, {eio} EIO");
    }
    // New opens see the new versions, under new inode numbers.
    for (path, rel, v, old_ino) in [
        ("run-a/data/random.bin", "data/random.bin", 2, ino_a),
        ("run-c/data/text.txt", "data/text.txt", 0, ino_c),
    ] {
        match File::open(mnt.join(path)) {
            Ok(mut f) => {
                let ino = f.metadata().unwrap().ino();
                let mut b = Vec::new();
                let r = f.read_to_end(&mut b);
                fails.check(r.is_ok() && b == truth_of(rel)[v], || {
                    format!(
                        "new open of {path}: expected version {}, got {:?} / {} bytes",
                        MARKERS[v].trim(),
                        r.err().map(|e| errno_name(&e)),
                        b.len()
                    )
                });
                fails.check(ino != old_ino, || {
                    format!("new open of {path}: same inode number {ino:#x} as the old version")
                });
            }
            Err(e) => fails.push(format!("new open of {path}: {}", errno_name(&e))),
        }
    }
    fails.check(mount.is_alive(), || "running: the daemon died".into());
    drop(fd_a);
    drop(held_c);
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", full_log(&mount)));
    }
    drop(mount);
    fails.finish("running_apps");
}

// ---------------------------------------------------------------------------
// (d) a burst of thousands of files

#[test]
fn thousands_of_files_at_once() {
    let tmp = TempDir::new("live-burst");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut model: Model = BTreeMap::new();
    write_file(&src.join("base.AppImage"), &image_bytes(0));
    model.insert("base.AppImage".into(), 0);
    let mut mount = Mount::start(&src, &mnt, &["--rescan-interval", "1"]);
    let mut fails = Failures::new();
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        TREE_LIMIT,
        "burst: initial",
        &mut fails,
    );

    // A prober measuring how long simple requests take meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (stop, mnt) = (stop.clone(), mnt.clone());
        std::thread::spawn(move || {
            let (mut worst, mut n, mut errs) = (Duration::ZERO, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = std::fs::read(mnt.join("base/VERSION"))
                    .and_then(|_| std::fs::metadata(mnt.join("base/data/random.bin")))
                    .and_then(|_| apps_at(&mnt));
                if let Err(e) = r {
                    errs.push(errno_name(&e));
                }
                worst = worst.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (worst, n, errs)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let t_burst = Instant::now();
    let junk_base = src.join("junk-base");
    std::fs::write(&junk_base, pseudo_random(5, 300)).unwrap();
    let mut junk_names = vec!["junk-base".to_string()];
    for i in 0..1000 {
        let n = format!("link-{i:04}");
        std::fs::hard_link(&junk_base, src.join(&n)).unwrap();
        junk_names.push(n);
    }
    for i in 0..1000 {
        let n = format!("junk-{i:04}");
        let mut d = if i % 2 == 0 {
            b"\x7fELF\x02\x01\x01".to_vec()
        } else {
            Vec::new()
        };
        d.extend_from_slice(&pseudo_random(1000 + i as u64, 200));
        std::fs::write(src.join(&n), d).unwrap();
        junk_names.push(n);
    }
    for (f, v) in [
        ("burst-a.AppImage", 0),
        ("burst-b.AppImage", 1),
        ("burst-c.AppImage", 2),
    ] {
        write_file(&src.join(f), &image_bytes(v));
        model.insert(f.into(), v);
    }
    let t_end = Instant::now();
    eprintln!(
        "TIMING live: burst of 2004 files written in {} ms",
        (t_end - t_burst).as_millis()
    );
    wait_tree(
        &mnt,
        &model,
        t_end,
        TREE_LIMIT,
        "burst: 2001 junk files + 3 AppImages",
        &mut fails,
    );
    // Two periodic rescans later, every junk file must have been logged once.
    std::thread::sleep(Duration::from_millis(2500));
    let log = full_log(&mount);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in log.lines() {
        if let Some(rest) = line.split_once(": skipping ").map(|x| x.1) {
            if let Some(p) = rest.strip_prefix(src.to_str().unwrap()) {
                if let Some((name, _)) = p.trim_start_matches('/').split_once(':') {
                    if let Some(n) = junk_names.iter().find(|n| n.as_str() == name) {
                        *counts.entry(n.as_str()).or_default() += 1;
                    }
                }
            }
        }
    }
    let never: Vec<&String> = junk_names
        .iter()
        .filter(|n| !counts.contains_key(n.as_str()))
        .collect();
    let repeated: Vec<(&&str, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    fails.check(never.is_empty(), || {
        format!(
            "burst: {} of {} junk files were never logged as skipped (first: {:?})",
            never.len(),
            junk_names.len(),
            &never[..never.len().min(5)]
        )
    });
    fails.check(repeated.is_empty(), || {
        format!(
            "burst: {} junk files were logged more than once (first: {:?})",
            repeated.len(),
            &repeated[..repeated.len().min(5)]
        )
    });
    // Burst of removals.
    let t_rm = Instant::now();
    for n in &junk_names {
        std::fs::remove_file(src.join(n)).unwrap();
    }
    std::fs::remove_file(src.join("burst-b.AppImage")).unwrap();
    model.remove("burst-b.AppImage");
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        TREE_LIMIT,
        "burst: 2001 removals + rm burst-b",
        &mut fails,
    );
    eprintln!(
        "TIMING live: burst removal done in {} ms",
        t_rm.elapsed().as_millis()
    );
    stop.store(true, Ordering::SeqCst);
    let (worst, probes, errs) = prober.join().unwrap();
    eprintln!(
        "TIMING live: burst: slowest probe (read+stat+readdir) {} ms over {probes} probes",
        worst.as_millis()
    );
    fails.check(worst < Duration::from_secs(1), || {
        format!(
            "burst: the mount was unresponsive: a read+stat+readdir probe took {} ms",
            worst.as_millis()
        )
    });
    fails.check(errs.is_empty(), || {
        format!("burst: probes of an untouched app failed: {errs:?}")
    });
    fails.check(mount.is_alive(), || "burst: the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!(
            "daemon log (start):\n{}",
            truncate_text(&full_log(&mount), 4000)
        ));
    }
    drop(mount);
    fails.finish("burst");
}

// ---------------------------------------------------------------------------
// (e) the source folder itself removed and recreated

#[test]
fn source_folder_removed_and_recreated() {
    let tmp = TempDir::new("live-srcdir");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut model: Model = BTreeMap::new();
    for (f, v) in [("e-a.AppImage", 0), ("e-b.AppImage", 1)] {
        write_file(&src.join(f), &image_bytes(v));
        model.insert(f.into(), v);
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        TREE_LIMIT,
        "srcdir: initial",
        &mut fails,
    );

    // rm -rf, then mkdir and copy the apps back.
    std::fs::remove_dir_all(&src).unwrap();
    let empty = Model::new();
    wait_tree(
        &mnt,
        &empty,
        Instant::now(),
        TREE_LIMIT,
        "srcdir: rm -rf SOURCE",
        &mut fails,
    );
    std::thread::sleep(Duration::from_millis(300));
    std::fs::create_dir(&src).unwrap();
    for (f, v) in &model {
        write_file(&src.join(f), &image_bytes(*v));
    }
    // Re-watching a recreated folder may take the watcher's 1 s retry on
    // top of the usual ~1 s.
    let rewatch_limit = Duration::from_millis(2500);
    wait_tree(
        &mnt,
        &model,
        Instant::now(),
        rewatch_limit,
        "srcdir: mkdir SOURCE + copy 2 apps back",
        &mut fails,
    );

    // mv SOURCE away, then mv another folder into its place.
    let away = tmp.join("src-away");
    std::fs::rename(&src, &away).unwrap();
    wait_tree(
        &mnt,
        &empty,
        Instant::now(),
        TREE_LIMIT,
        "srcdir: mv SOURCE away",
        &mut fails,
    );
    let other = tmp.subdir("src-other");
    write_file(&other.join("e-c.AppImage"), &image_bytes(2));
    std::fs::rename(&other, &src).unwrap();
    let model2: Model = [("e-c.AppImage".to_string(), 2)].into_iter().collect();
    wait_tree(
        &mnt,
        &model2,
        Instant::now(),
        rewatch_limit,
        "srcdir: mv another folder to SOURCE",
        &mut fails,
    );
    // And the new folder is watched: an app added to it shows up.
    write_file(&src.join("e-d.AppImage"), &image_bytes(0));
    let mut model3 = model2.clone();
    model3.insert("e-d.AppImage".into(), 0);
    wait_tree(
        &mnt,
        &model3,
        Instant::now(),
        TREE_LIMIT,
        "srcdir: add to the new SOURCE",
        &mut fails,
    );
    fails.check(mount.is_alive(), || "srcdir: the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", full_log(&mount)));
    }
    drop(mount);
    fails.finish("source_folder");
}

/// The reader's check itself must catch wrong, mixed and short contents
/// (on plain files, no mount involved).
#[test]
fn reader_check_catches_wrong_and_mixed_bytes() {
    let tmp = TempDir::new("live-selfcheck");
    let truth = truth_of("data/mixed.bin");
    let len = truth[0].len();
    // Split on a 4 KiB boundary: 4 KiB reads see two versions, larger
    // reads a chunk matching none.
    let mut mixed = truth[0][..131_072].to_vec();
    mixed.extend_from_slice(&truth[1][131_072..]);
    let mut flipped = truth[2].clone();
    flipped[len - 10] ^= 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ok", truth[1].clone(), ""),
        ("mixed", mixed, "MIXED VERSIONS"),
        ("flipped", flipped, "WRONG BYTES"),
        ("short", truth[0][..len - 1].to_vec(), "end of file"),
    ];
    for (name, data, want) in cases {
        let p = tmp.join(name);
        std::fs::write(&p, &data).unwrap();
        for chunk in [4096, 65_537, 1 << 20] {
            let mut st = ReadStats::default();
            check_file(&p, truth, chunk, &mut st);
            if want.is_empty() {
                assert!(
                    st.failures.is_empty() && st.files_ok == 1,
                    "{name}: {:?}",
                    st.failures
                );
            } else {
                let want = if name == "mixed" && chunk != 4096 {
                    "WRONG BYTES"
                } else {
                    want
                };
                assert!(
                    st.failures.len() == 1 && st.failures[0].contains(want),
                    "{name} (chunk {chunk}): expected a {want} failure, got {:?}",
                    st.failures
                );
            }
        }
    }
}

/// The kernel caches every directory listing (the daemon answers OPENDIR
/// with ENOSYS, so listings are kept until invalidated): after an app is
/// added or removed, the top level, `bin/` and `share/applications/`
/// listed again must show it within the usual delay.
#[test]
fn cached_listings_follow_the_folder() {
    let tmp = TempDir::new("live-listings");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_app(App::Echo, &src, "Echo-x86_64.AppImage");
    let m = Mount::start(&src, &mnt, &[]);
    let names = |rel: &str| -> BTreeSet<String> {
        std::fs::read_dir(m.mountpoint.join(rel))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let expect = |step: &str, want: [(&str, &str, bool); 3], fails: &mut Failures| {
        let start = Instant::now();
        loop {
            let wrong: Vec<String> = want
                .iter()
                .filter(|(dir, name, present)| names(dir).contains(*name) != *present)
                .map(|(dir, name, present)| {
                    format!(
                        "{dir}/{name} {}",
                        if *present { "missing" } else { "still listed" }
                    )
                })
                .collect();
            if wrong.is_empty() {
                return;
            }
            if start.elapsed() > TREE_LIMIT {
                fails.push(format!(
                    "{step}: after {TREE_LIMIT:?}: {}",
                    wrong.join(", ")
                ));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut fails = Failures::new();
    let hello = |present| {
        [
            (".", "Hello", present),
            ("bin", "hello-world", present),
            (
                "share/applications",
                "appimagefs-hello-world.desktop",
                present,
            ),
        ]
    };
    let echo = |present| {
        [
            (".", "Echo-x86_64", present),
            ("bin", "echo", present),
            ("share/applications", "appimagefs-echo.desktop", present),
        ]
    };
    expect("initial", echo(true), &mut fails);
    expect("initial", hello(false), &mut fails);
    copy_app(App::Hello, &src, "Hello.AppImage");
    expect("add Hello", hello(true), &mut fails);
    std::fs::remove_file(src.join("Echo-x86_64.AppImage")).unwrap();
    expect("remove Echo", echo(false), &mut fails);
    expect("remove Echo", hello(true), &mut fails);
    fails.finish("cached listings");
}
