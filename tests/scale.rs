//! Robustness at scale (issue 15): many AppImages under a low open-file
//! limit, concurrency on few request threads, permission changes. Every
//! image is built here at test time (mksquashfs + the stand-in runtime).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// `cat PATH` as uid/gid 65534 with no other groups.
fn cat_as_nobody(path: &Path) -> Output {
    run_timeout(
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args(["--", "/bin/cat"])
            .arg(path),
        Duration::from_secs(30),
    )
}

/// Sets the POSIX access ACL of `path`: owner `rw`, the named users with
/// `r`, owning group and others nothing (what `setfacl -m u:ID:r` gives on
/// a 0600 file), or removes it.
fn set_acl(path: &Path, readers: &[u32]) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let name = c"system.posix_acl_access";
    if readers.is_empty() {
        // SAFETY: valid NUL-terminated strings.
        let rc = unsafe { libc::removexattr(c.as_ptr(), name.as_ptr()) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        return;
    }
    let mut acl = 2u32.to_le_bytes().to_vec();
    let mut entry = |tag: u16, perm: u16, id: u32| {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    };
    entry(0x01, 6, u32::MAX);
    for &id in readers {
        entry(0x02, 4, id);
    }
    entry(0x04, 0, u32::MAX);
    entry(0x10, 4, u32::MAX);
    entry(0x20, 0, u32::MAX);
    // SAFETY: valid strings and a buffer of acl.len() bytes.
    let rc =
        unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), acl.as_ptr().cast(), acl.len(), 0) };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

/// Waits (up to 3 s) until `cat` as nobody of `path` succeeds (`allowed`)
/// or fails with "Permission denied"; panics with `what` otherwise.
fn wait_for_nobody(m: &Mount, path: &Path, allowed: bool, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let out = cat_as_nobody(path);
        let denied = !out.success() && out.stderr_text().contains("Permission denied");
        if (allowed && out.success() && out.stdout_text().as_bytes() == HELLO)
            || (!allowed && denied)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{what}: nobody {} after 3 s: {}\n{}",
            if allowed {
                "still refused"
            } else {
                "still allowed"
            },
            out.describe(),
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// chmod, chown and ACL changes of a mounted AppImage take effect within
/// about a second, in both directions, also after the kernel cached the
/// app's folder.
#[test]
fn permission_changes_take_effect_both_ways() {
    let tmp = TempDir::new("scale-perms");
    set_mode(tmp.path(), 0o755);
    let src = tmp.subdir("src");
    let app = src.join("p.AppImage");
    std::fs::copy(tiny_app(), &app).unwrap();
    set_mode(&app, 0o644);
    let mnt = tmp.subdir("mnt");
    let m = Mount::start(&src, &mnt, &[]);
    let hello = mnt.join("p/hello.txt");
    wait_for_nobody(&m, &hello, true, "0644 at mount");
    let mut took = Vec::new();
    set_mode(&app, 0o600);
    took.push(wait_for_nobody(&m, &hello, false, "chmod 600"));
    set_mode(&app, 0o644);
    took.push(wait_for_nobody(&m, &hello, true, "chmod 644"));
    set_mode(&app, 0o600);
    took.push(wait_for_nobody(&m, &hello, false, "chmod 600 again"));
    set_acl(&app, &[65534]);
    took.push(wait_for_nobody(&m, &hello, true, "ACL u:65534:r"));
    set_acl(&app, &[]);
    set_mode(&app, 0o600);
    took.push(wait_for_nobody(&m, &hello, false, "ACL removed"));
    std::os::unix::fs::chown(&app, Some(65534), Some(65534)).unwrap();
    set_mode(&app, 0o400);
    took.push(wait_for_nobody(&m, &hello, true, "chown 65534"));
    std::os::unix::fs::chown(&app, Some(0), Some(0)).unwrap();
    took.push(wait_for_nobody(&m, &hello, false, "chown 0"));
    println!("TIMING permission changes took {took:?}");
}

/// The mtime of the root changes when its listing does, so the kernel's
/// readdir cache (and `ls`, `make`-style tools) can tell a stale listing.
#[test]
fn the_root_mtime_follows_its_listing() {
    use std::os::unix::fs::MetadataExt;
    let tmp = TempDir::new("scale-mtime");
    let src = tmp.subdir("src");
    std::fs::hard_link(tiny_app(), src.join("one.AppImage")).unwrap();
    let mnt = tmp.subdir("mnt");
    let m = Mount::start(&src, &mnt, &[]);
    let mtime = |p: &Path| {
        let meta = std::fs::metadata(p).unwrap();
        (meta.mtime(), meta.mtime_nsec())
    };
    let before = mtime(&mnt);
    std::thread::sleep(Duration::from_millis(50));
    std::fs::hard_link(tiny_app(), src.join("two.AppImage")).unwrap();
    let start = Instant::now();
    while !m.root_names().iter().any(|n| n == "two") {
        assert!(start.elapsed() < Duration::from_secs(5), "two not listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    while mtime(&mnt) == before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the root's mtime stayed {before:?} after its listing changed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many small files [`small_files_app`] holds in `files/`.
const SMALL_FILES: usize = 150;

/// A type 2 AppImage whose `files/` holds [`SMALL_FILES`] files of 200 KB of text,
/// each small enough to be stored into the page cache when opened.
fn small_files_app() -> &'static Path {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = build_dir().join("scale-small-files");
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("files")).unwrap();
        std::fs::write(tree.join("AppRun"), b"#!/bin/sh\necho small\n").unwrap();
        set_mode(&tree.join("AppRun"), 0o755);
        for i in 0..SMALL_FILES {
            let data = text(200_000, 100 + i);
            std::fs::write(tree.join(format!("files/f{i:03}")), data).unwrap();
        }
        let sqfs = dir.join("small.sqfs");
        mksquashfs(&tree, &sqfs, &["-comp", "gzip", "-all-root"]);
        let app = dir.join("small.AppImage");
        wrap_squashfs_as_appimage(&sqfs, &app);
        app
    })
}

/// Issue 15 item 3: with one request thread, two processes that open each
/// small file at once, ask `isatty()` of it (the ioctl after which the
/// daemon stores the file into the page cache) and read it must all finish:
/// a store made on the request thread could wait for a page another
/// reader's read-ahead holds while that read waits for the thread.
#[test]
fn one_request_thread_serves_concurrent_opens_and_reads() {
    let tmp = TempDir::new("scale-one-thread");
    let src = tmp.subdir("src");
    std::fs::hard_link(small_files_app(), src.join("small.AppImage")).unwrap();
    let mnt = tmp.subdir("mnt");
    let m = Mount::start(&src, &mnt, &["--threads", "1"]);
    let files = m.mountpoint.join("small/files");
    // One reader asks isatty() before reading, the other only reads: its
    // read-ahead locks pages while the first one's open triggers a store.
    let readers: Vec<_> = ["{ test -t 0; cat >/dev/null; }", "cat >/dev/null"]
        .iter()
        .map(|body| {
            let script = format!(
                "for round in 1 2 3; do for f in \"$1\"/*; do {body} < \"$f\" || exit 1; done; done"
            );
            Command::new("sh")
                .args(["-c", &script, "sh"])
                .arg(&files)
                .spawn()
                .unwrap()
        })
        .collect();
    let statuses = must_finish(
        "two readers of small files on one request thread",
        Duration::from_secs(60),
        move || {
            readers
                .into_iter()
                .map(|mut r| r.wait().unwrap().success())
                .collect::<Vec<_>>()
        },
    );
    assert_eq!(statuses, [true, true], "a reader failed");
    let f = files.join("f007");
    let read = must_finish(
        "a read after the readers",
        Duration::from_secs(10),
        move || std::fs::read(f).unwrap(),
    );
    assert_eq!(read, text(200_000, 107));
    drop(m);
}
