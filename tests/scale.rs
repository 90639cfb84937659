//! Robustness at scale (issue 15): many AppImages under a low open-file
//! limit, concurrency on few request threads, permission changes. Every
//! image is built here at test time (mksquashfs + the stand-in runtime).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

/// The content of `hello.txt` in the tiny test app.
const HELLO: &[u8] = b"hello from a tiny app\n";

/// A tiny type 2 AppImage (AppRun, hello.txt, a small binary file), built
/// once per test process.
fn tiny_app() -> &'static Path {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = build_dir().join("scale-tiny");
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("data")).unwrap();
        std::fs::write(tree.join("AppRun"), b"#!/bin/sh\necho tiny\n").unwrap();
        set_mode(&tree.join("AppRun"), 0o755);
        std::fs::write(tree.join("hello.txt"), HELLO).unwrap();
        std::fs::write(tree.join("data/blob.bin"), pseudo_random(15, 20_000)).unwrap();
        let sqfs = dir.join("tiny.sqfs");
        mksquashfs(&tree, &sqfs, &["-comp", "gzip", "-all-root"]);
        let app = dir.join("tiny.AppImage");
        wrap_squashfs_as_appimage(&sqfs, &app);
        app
    })
}

/// A source folder holding `n` hard links of the tiny app, named
/// `app-NNNNN.AppImage`.
fn many_apps(tmp: &TempDir, n: usize) -> PathBuf {
    let src = tmp.subdir("src");
    for i in 0..n {
        std::fs::hard_link(tiny_app(), src.join(format!("app-{i:05}.AppImage"))).unwrap();
    }
    src
}

/// Sets the daemon's `RLIMIT_NOFILE` to `soft`/`hard` before it starts.
fn limit_open_files(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The daemon's descriptors now.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// The soft "Max open files" of a process.
fn soft_nofile(pid: i32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// 1,100 AppImages with the daemon's soft limit at 200 open files (hard
/// 256): the daemon raises its soft limit to the hard one, every app is
/// listed and every app's files read back, building `bin/` (which opens
/// every image) works, and the daemon never runs out of descriptors.
#[test]
fn more_apps_than_open_files() {
    const N: usize = 1_100;
    let tmp = TempDir::new("scale-fds");
    let src = many_apps(&tmp, N);
    let mnt = tmp.subdir("mnt");
    let m = Mount::try_start_with(&src, &mnt, &["-v"], |cmd| limit_open_files(cmd, 200, 256))
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = m.pid().expect("daemon pid");
    assert_eq!(soft_nofile(pid), Some(256), "the soft limit was not raised");
    let names = m.root_names();
    let apps = names.iter().filter(|n| n.starts_with("app-")).count();
    assert_eq!(apps, N, "apps listed\n{}", m.log_text());
    let mut most_fds = 0;
    for round in 0..2 {
        for i in 0..N {
            let p = mnt.join(format!("app-{i:05}/hello.txt"));
            match std::fs::read(&p) {
                Ok(bytes) => assert_eq!(bytes, HELLO, "{}", p.display()),
                Err(e) => panic!(
                    "round {round}: reading {}: {e}\n{}",
                    p.display(),
                    m.log_text()
                ),
            }
            if i % 100 == 0 {
                most_fds = most_fds.max(open_fds(pid));
            }
        }
    }
    let bin = std::fs::read_dir(mnt.join("bin"));
    assert!(bin.is_ok(), "bin/: {:?}\n{}", bin.err(), m.log_text());
    most_fds = most_fds.max(open_fds(pid));
    assert!(most_fds <= 200, "{most_fds} descriptors open");
    let blob = std::fs::read(mnt.join(format!("app-{:05}/data/blob.bin", N - 1))).unwrap();
    assert_eq!(blob, pseudo_random(15, 20_000));
    let log = m.log_text();
    assert!(
        !log.contains("Too many open files"),
        "the daemon ran out of descriptors:\n{log}"
    );
}
