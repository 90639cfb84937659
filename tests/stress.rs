//! Load and faults: many readers (more threads than cores) doing random
//! reads, tree walks and launches across several apps, every byte checked
//! against the unsquashfs extraction, with the daemon's memory measured
//! before and after; and SIGTERM in the middle of heavy reads.
//!
//! The load runs for `APPIMAGEFS_STRESS_SECS` seconds (default 20; set it
//! to minutes for a soak run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// Sample apps (see `common::sample_apps`): gzip, xz with 16K blocks,
/// zstd, many files, multi-block files; `echo` is launched through bin/.
const APPS: &[&str] = &[
    "echo",
    "hello-xz",
    "hello-zstd",
    "many-files",
    "big-tool",
    "hello-gzip",
];

/// Relative path → bytes of every regular file of every app.
type Truth = BTreeMap<PathBuf, Vec<u8>>;

fn ground_truth(tmp: &TempDir) -> Truth {
    let mut truth = Truth::new();
    for app in APPS {
        let out = tmp.subdir(&format!("x-{app}"));
        let sample = sample_app(app);
        unsquashfs_extract(&sample.image, sample.offset, &out).unwrap_or_else(|e| panic!("{e}"));
        collect(&out, &PathBuf::from(app_name(sample.file_name)), &mut truth);
    }
    truth
}

fn collect(dir: &Path, rel: &Path, out: &mut Truth) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        let r = rel.join(e.file_name());
        if ft.is_dir() {
            collect(&e.path(), &r, out);
        } else if ft.is_file() {
            out.insert(r, std::fs::read(e.path()).unwrap());
        }
    }
}

fn vm_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator, so a failure names a reproducible op.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn walk_count(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            n += 1;
            let _ = std::fs::symlink_metadata(e.path());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += walk_count(&e.path());
            }
        }
    }
    n
}

#[test]
fn parallel_readers_walks_and_launches_stay_correct_and_bounded() {
    let secs: u64 = std::env::var("APPIMAGEFS_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = TempDir::new("stress");
    let src = tmp.subdir("src");
    for app in APPS {
        copy_sample_app(app, &src, sample_app(app).file_name);
    }
    let truth = Arc::new(ground_truth(&tmp));
    let files: Arc<Vec<PathBuf>> = Arc::new(truth.keys().cloned().collect());
    let mnt = tmp.subdir("mnt");
    let mut mount = Mount::start(&src, &mnt, &["-o", "cache_size=8M"]);
    let pid = mount.pid().expect("daemon pid");
    let expected_entries = walk_count(&mnt);
    let rss_before = vm_rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let ops = Arc::new(AtomicU64::new(0));
    let threads = 2 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        + 2;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, bytes, ops) = (stop.clone(), bytes.clone(), ops.clone());
            let (truth, files, mnt) = (truth.clone(), files.clone(), mnt.clone());
            std::thread::spawn(move || -> Result<(), String> {
                use std::os::unix::fs::FileExt;
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let op = next(&mut rng) % 20;
                    if op == 0 && t == 0 {
                        let n = walk_count(&mnt);
                        if n != expected_entries {
                            return Err(format!(
                                "walk saw {n} entries, expected {expected_entries}"
                            ));
                        }
                    } else if op == 1 {
                        let out = run_timeout(
                            std::process::Command::new(mnt.join("bin/echo")).arg("stress"),
                            Duration::from_secs(30),
                        );
                        if !out.success() || out.stdout_text().trim() != "stress" {
                            return Err(format!("launch through bin/echo: {}", out.describe()));
                        }
                    } else {
                        let rel = &files[(next(&mut rng) % files.len() as u64) as usize];
                        let want = &truth[rel];
                        let f = std::fs::File::open(mnt.join(rel))
                            .map_err(|e| format!("{}: {e}", rel.display()))?;
                        let off = if want.is_empty() {
                            0
                        } else {
                            next(&mut rng) % want.len() as u64
                        };
                        let len = (next(&mut rng) % (256 * 1024)) as usize;
                        let mut buf = vec![0u8; len];
                        let n = f
                            .read_at(&mut buf, off)
                            .map_err(|e| format!("{} at {off}: {e}", rel.display()))?;
                        let end = (off as usize + len).min(want.len());
                        if buf[..n] != want[off as usize..end] {
                            return Err(format!(
                                "{} at {off} (+{len}): wrong bytes",
                                rel.display()
                            ));
                        }
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) && mount.is_alive() {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let mut fails = Failures::new();
    for (i, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fails.push(format!("thread {i}: {e}")),
            Err(_) => fails.push(format!("thread {i} panicked")),
        }
    }
    fails.check(mount.is_alive(), || {
        format!("the daemon died:\n{}", mount.log_text())
    });
    let rss_after = vm_rss_kib(pid);
    eprintln!(
        "INFO stress: {threads} threads, {secs} s, {} ops, {} MiB verified; daemon RSS {} -> {} MiB",
        ops.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed) >> 20,
        rss_before >> 10,
        rss_after >> 10
    );
    fails.check(ops.load(Ordering::Relaxed) > 100, || {
        "almost no work was done".into()
    });
    // 8 MiB of cache, a few MiB of parsed metadata per image and the request
    // threads' buffers: anything near 100 MiB more means unbounded growth.
    fails.check(rss_after < rss_before + 96 * 1024, || {
        format!(
            "daemon memory grew from {} to {} KiB",
            rss_before, rss_after
        )
    });
    drop(mount);
    fails.finish("stress");
}

#[test]
fn sigterm_during_heavy_reads_unmounts_without_hanging() {
    let tmp = TempDir::new("stress-sigterm");
    let src = tmp.subdir("src");
    for app in APPS {
        copy_sample_app(app, &src, sample_app(app).file_name);
    }
    let mnt = tmp.subdir("mnt");
    let mut mount = Mount::start(&src, &mnt, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (stop, mnt) = (stop.clone(), mnt.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if walk_count(&mnt) == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    for app in APPS {
                        let dir = app_name(sample_app(app).file_name);
                        let _ = std::fs::read(mnt.join(dir).join("AppRun"));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    mount.signal(libc::SIGTERM);
    let exited = mount.wait_exit(Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    for r in readers {
        while !r.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(r.is_finished(), "a reader hung after SIGTERM");
        r.join().unwrap();
    }
    assert!(
        exited.is_some(),
        "the daemon did not exit within 15 s of SIGTERM"
    );
    assert!(!is_mounted(&mnt), "SIGTERM left the mount behind");
}
