//! What an admin sees of a mount from outside: its type in /proc/mounts,
//! and the log lines a start writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Writes a small type 2 AppImage `<name>.AppImage` into `dir`, built with
/// mksquashfs and the stand-in runtime.
fn add_app(tmp: &TempDir, dir: &Path, name: &str) {
    let tree = tmp.subdir(&format!("{name}-tree"));
    std::fs::write(tree.join("AppRun"), "#!/bin/sh\necho hello from AppRun\n").unwrap();
    set_mode(&tree.join("AppRun"), 0o755);
    std::fs::write(
        tree.join(format!("{name}.desktop")),
        format!("[Desktop Entry]\nType=Application\nName={name}\nExec={name}\nIcon={name}\n"),
    )
    .unwrap();
    let sqfs = tmp.join(format!("{name}.squashfs"));
    mksquashfs(&tree, &sqfs, &["-comp", "gzip"]);
    wrap_squashfs_as_appimage(&sqfs, &dir.join(format!("{name}.AppImage")));
}

/// A folder holding one AppImage, `hello.AppImage`.
fn source_with_one_app(tmp: &TempDir) -> PathBuf {
    let src = tmp.subdir("src");
    add_app(tmp, &src, "hello");
    src
}

/// The (type, source) of the mount at `mnt` as process `pid` sees it.
fn mount_of(pid: u32, mnt: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let want = mnt.to_str()?;
    info.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (left.split(' ').nth(4)? == want).then(|| {
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default().to_string();
            (fstype, r.next().unwrap_or_default().to_string())
        })
    })
}

#[test]
fn root_mount_has_type_fuse_appimagefs() {
    let tmp = TempDir::new("admin-type-root");
    let src = source_with_one_app(&tmp).canonicalize().unwrap();
    let mnt = tmp.subdir("mnt");
    let mut m = Mount::start(&src, &mnt, &[]);
    let top = mounts_at(&m.mountpoint).pop().expect("mounted");
    assert_eq!(top.fstype, "fuse.appimagefs", "{top:?}");
    assert_eq!(
        Path::new(&top.source),
        src,
        "the source folder names the mount"
    );
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(top.has_mount_option(opt), "{opt} missing: {top:?}");
    }
    assert!(top.has_super_option("allow_other"), "{top:?}");
    let found = run_timeout(
        Command::new("findmnt")
            .args(["-n", "-t", "fuse.appimagefs", "-o", "TARGET"])
            .arg(&m.mountpoint),
        Duration::from_secs(10),
    );
    assert!(
        found.success() && found.stdout_text().trim() == m.mountpoint.to_str().unwrap(),
        "findmnt -t fuse.appimagefs: {}",
        found.describe()
    );
    let mut names = m.root_names();
    names.sort();
    assert_eq!(names, ["bin", "hello", "share"]);
    // SIGTERM unmounts a mount made with mount(2) too.
    m.signal(libc::SIGTERM);
    let status = m.wait_exit(EXIT_TIMEOUT).expect("exits after SIGTERM");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(!is_mounted(&m.mountpoint), "still mounted after SIGTERM");
}

/// A normal user's instance in a private mount namespace whose /dev/fuse
/// is a fresh node every user may open (Debian's mode), so the host's
/// /dev/fuse is left alone; killed on drop, which ends the namespace and
/// its mount.
struct UserInstance {
    child: Child,
}

impl Drop for UserInstance {
    fn drop(&mut self) {
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn user_mount_through_fusermount3_has_type_fuse_appimagefs() {
    let tmp = TempDir::new("admin-type-user");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = source_with_one_app(&tmp);
    let mnt = tmp.subdir("mnt");
    let dev = tmp.subdir("dev");
    for p in [&src, &mnt, &src.join("hello.AppImage")] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    let script = r#"set -e
mount -t tmpfs -o mode=0755 devnode "$DEV"
mknod -m 0666 "$DEV/fuse" c 10 229
mount --bind "$DEV/fuse" /dev/fuse
exec setpriv --reuid 65534 --regid 65534 --clear-groups -- "$BIN" "$SRC" "$MNT" -f"#;
    let log = tmp.join("daemon.log");
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("DEV", &dev)
        .env("BIN", appimagefs_bin())
        .env("SRC", &src)
        .env("MNT", &mnt)
        .env("HOME", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start appimagefs as nobody in a mount namespace");
    let pid = child.id();
    let guard = UserInstance { child };
    let deadline = Instant::now() + MOUNT_READY_TIMEOUT;
    let mut seen = None;
    while seen.is_none() && Instant::now() < deadline {
        seen = mount_of(pid, &mnt).filter(|(t, _)| t.starts_with("fuse"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let (fstype, source) = seen.unwrap_or_else(|| panic!("not mounted: {}", log_text()));
    assert_eq!(fstype, "fuse.appimagefs", "{}", log_text());
    assert_eq!(Path::new(&source), src.canonicalize().unwrap());
    assert!(
        mount_of(std::process::id(), &mnt).is_none(),
        "the mount leaked out of the test's namespace"
    );
    drop(guard);
}

/// A folder with two AppImages, a text file and an AppImage cut short
/// after its runtime.
fn source_with_two_apps_and_two_duds(tmp: &TempDir) -> PathBuf {
    let src = tmp.subdir("src");
    add_app(tmp, &src, "alpha");
    add_app(tmp, &src, "beta");
    std::fs::write(src.join("notes.txt"), "not an AppImage\n").unwrap();
    std::fs::write(src.join("cut.AppImage"), type2_runtime()).unwrap();
    src
}

/// The mount's log once its "ready" line is there (it is written right
/// after the mount appears).
fn log_once_ready(m: &Mount) -> String {
    let deadline = Instant::now() + MOUNT_READY_TIMEOUT;
    loop {
        let log = m.log_text();
        if log.contains(" ready: ") || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn start_logs_one_summary_and_one_line_per_skipped_file() {
    let tmp = TempDir::new("admin-logs");
    let src = source_with_two_apps_and_two_duds(&tmp);
    let mnt = tmp.subdir("mnt");
    let m = Mount::start(&src, &mnt, &[]);
    let log = log_once_ready(&m);
    let lines: Vec<&str> = log.lines().collect();
    let ready: Vec<&&str> = lines.iter().filter(|l| l.contains(" ready: ")).collect();
    assert_eq!(ready.len(), 1, "one summary line:\n{log}");
    assert!(
        ready[0].contains("info: ready: 2 AppImage(s) from ")
            && ready[0].contains(&format!(" mounted on {} ", m.mountpoint.display()))
            && ready[0].ends_with(", 2 file(s) skipped"),
        "{log}"
    );
    for dud in ["notes.txt", "cut.AppImage"] {
        let about: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains(&format!("skipping {}: ", src.join(dud).display())))
            .collect();
        assert_eq!(
            about.len(),
            1,
            "one line for {dud}, with its reason:\n{log}"
        );
        let reason = about[0].rsplit_once(": ").map(|x| x.1).unwrap_or("");
        assert!(!reason.trim().is_empty(), "no reason for {dud}:\n{log}");
    }
    assert!(
        !log.contains("mounting "),
        "per-app lines without -v:\n{log}"
    );
    assert_eq!(lines.len(), 3, "nothing else at start:\n{log}");
}

#[test]
fn verbose_start_logs_each_app() {
    let tmp = TempDir::new("admin-logs-v");
    let src = source_with_two_apps_and_two_duds(&tmp);
    let mnt = tmp.subdir("mnt");
    let m = Mount::start(&src, &mnt, &["-v"]);
    let log = log_once_ready(&m);
    for app in ["alpha", "beta"] {
        let line = format!(
            "debug: mounting {} as {app} (type 2)",
            src.join(format!("{app}.AppImage")).display()
        );
        assert_eq!(log.matches(&line).count(), 1, "{line}:\n{log}");
    }
    assert!(log.contains("ready: 2 AppImage(s)"), "{log}");
}
