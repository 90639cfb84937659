//! The command line and the mount lifecycle: errors, daemon mode, signals,
//! dead mount points, mount options, read-only-ness.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::apps::{app, copy_app, plain_program, App, GUI_UPDATE_INFO};
use crate::common::*;

/// A source dir holding Echo, and an empty mount point.
fn setup(tag: &str) -> (TempDir, PathBuf, PathBuf) {
    let tmp = TempDir::new(tag);
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_app(App::Echo, &src, "Echo-x86_64.AppImage");
    (tmp, src, mnt)
}

fn list(dir: &Path) -> Result<Vec<String>, String> {
    let d = dir.to_path_buf();
    with_timeout("readdir", Duration::from_secs(20), move || {
        std::fs::read_dir(&d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| errno_name(&e))
    })?
}

fn fuse_mounts_at(p: &Path) -> usize {
    mounts_at(&p.canonicalize().unwrap_or(p.to_path_buf()))
        .iter()
        .filter(|m| m.is_fuse())
        .count()
}

/// Runs the binary without -f and expects a failure with a message.
fn expect_launch_failure(src: &Path, mnt: &Path, what: &str) -> Output {
    let mut cmd = Command::new(appimagefs_bin());
    cmd.arg(src).arg(mnt);
    let out = run_timeout(&mut cmd, Duration::from_secs(30));
    // Clean up whatever it may have mounted by mistake.
    if mnt.exists() {
        if let Ok(c) = mnt.canonicalize() {
            if fuse_mounts_at(&c) > 0 {
                let pid = find_daemon_pid(&c);
                force_unmount(&c);
                if let Some(pid) = pid {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                panic!("{what}: it mounted anyway: {}", out.describe());
            }
        }
    }
    assert!(
        out.status.is_some(),
        "{what}: the command hung: {}",
        out.describe()
    );
    assert!(!out.success(), "{what}: exit status 0: {}", out.describe());
    assert!(
        !out.stderr_text().trim().is_empty(),
        "{what}: no error message on stderr: {}",
        out.describe()
    );
    out
}

#[test]
fn help_mentions_every_option() {
    let out = run_timeout(
        &mut command(appimagefs_bin(), ["--help"]),
        Duration::from_secs(20),
    );
    assert!(out.success(), "--help failed: {}", out.describe());
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    let lower = text.to_lowercase();
    for needle in ["-f", "-o", "allow_other"] {
        assert!(
            text.contains(needle),
            "--help does not mention {needle}:\n{text}"
        );
    }
    assert!(
        lower.contains("source"),
        "--help does not name the SOURCE argument:\n{text}"
    );
    assert!(
        lower.contains("mountpoint")
            || lower.contains("mount point")
            || lower.contains("mount_point"),
        "--help does not name the MOUNTPOINT argument:\n{text}"
    );
}

#[test]
fn missing_source_dir_is_an_error() {
    let (tmp, _src, mnt) = setup("cli-nosrc");
    let missing = tmp.join("no-such-dir");
    let out = expect_launch_failure(&missing, &mnt, "missing source dir");
    assert!(
        out.stderr_text().contains("no-such-dir"),
        "message does not name the missing dir: {}",
        out.describe()
    );
}

#[test]
fn source_that_is_a_file_is_an_error() {
    let (tmp, src, mnt) = setup("cli-srcfile");
    let _ = tmp;
    expect_launch_failure(&src.join("Echo-x86_64.AppImage"), &mnt, "source is a file");
}

#[test]
fn missing_mount_point_is_an_error() {
    let (tmp, src, _mnt) = setup("cli-nomnt");
    let missing = tmp.join("no-such-mnt");
    let out = expect_launch_failure(&src, &missing, "missing mount point");
    assert!(
        out.stderr_text().contains("no-such-mnt"),
        "message does not name the mount point: {}",
        out.describe()
    );
    assert!(!missing.exists(), "the missing mount point was created");
}

#[test]
fn busy_mount_point_is_refused() {
    let (_tmp, src, mnt) = setup("cli-busy");
    let mut first = Mount::start(&src, &mnt, &[]);
    let canon = mnt.canonicalize().unwrap();
    let (out, second) = Mount::start_daemon(&src, &mnt, &[]);
    let stacked = fuse_mounts_at(&canon);
    drop(second);
    assert!(
        !out.success(),
        "a second instance on a mounted mount point exited 0 ({stacked} FUSE mounts there): {}",
        out.describe()
    );
    assert!(
        !out.stderr_text().trim().is_empty(),
        "no message: {}",
        out.describe()
    );
    assert_eq!(stacked, 1, "the second instance stacked a mount anyway");
    assert!(first.is_alive(), "the first instance died");
    let names = list(&mnt).expect("first mount still works");
    assert!(names.contains(&"Echo-x86_64".to_string()), "{names:?}");
}

#[test]
fn dead_mount_point_is_recovered_or_reported() {
    let (_tmp, src, mnt) = setup("cli-dead");
    let mut first = Mount::start(&src, &mnt, &[]);
    first.signal(libc::SIGKILL);
    assert!(
        first.wait_exit(Duration::from_secs(10)).is_some(),
        "SIGKILL did not end the first instance"
    );
    // The scenario is real: the mount point is dead.
    let err = std::fs::metadata(&mnt).err().and_then(|e| e.raw_os_error());
    assert_eq!(
        err,
        Some(libc::ENOTCONN),
        "expected a dead mount (ENOTCONN) after SIGKILL"
    );

    let (out, second) = Mount::start_daemon(&src, &mnt, &[]);
    if out.success() {
        // Recovered: the new mount must work.
        let names = list(&mnt)
            .unwrap_or_else(|e| panic!("recovered mount does not answer: {e}; {}", out.describe()));
        assert!(names.contains(&"Echo-x86_64".to_string()), "{names:?}");
        assert!(second.is_some());
    } else {
        let msg = out.stderr_text().to_lowercase();
        assert!(
            msg.contains("not connected")
                || msg.contains("fusermount")
                || msg.contains("umount")
                || msg.contains(&mnt.display().to_string().to_lowercase()),
            "the failure does not explain the dead mount point: {}",
            out.describe()
        );
    }
    drop(second);
    drop(first);
    assert_eq!(fuse_mounts_at(&mnt), 0);
}

fn signal_unmounts(sig: i32) {
    let (_tmp, src, mnt) = setup("cli-signal");
    let mut m = Mount::start(&src, &mnt, &[]);
    assert!(list(&mnt)
        .expect("mount works")
        .contains(&"Echo-x86_64".to_string()));
    m.signal(sig);
    let status = m.wait_exit(Duration::from_secs(15));
    let canon = mnt.canonicalize().ok();
    let still = canon.as_deref().map(fuse_mounts_at).unwrap_or(1);
    let log = m.log_text();
    drop(m);
    let status = status.unwrap_or_else(|| {
        panic!("signal {sig}: the -f instance did not exit within 15 s; output:\n{log}")
    });
    assert_eq!(still, 0, "signal {sig}: exited but left the mount behind");
    let status = status.expect("foreground child status");
    assert!(
        status.success(),
        "signal {sig}: exit status {status} (expected a clean exit 0); output:\n{log}"
    );
}

#[test]
fn sigterm_unmounts_a_foreground_instance() {
    signal_unmounts(libc::SIGTERM);
}

#[test]
fn sigint_unmounts_a_foreground_instance() {
    signal_unmounts(libc::SIGINT);
}

#[test]
fn umount_ends_a_foreground_instance() {
    let (_tmp, src, mnt) = setup("cli-umount");
    let mut m = Mount::start(&src, &mnt, &[]);
    let out = run_timeout(
        &mut command("umount", [mnt.as_os_str()]),
        Duration::from_secs(20),
    );
    assert!(out.success(), "umount failed: {}", out.describe());
    let status = m.wait_exit(Duration::from_secs(15));
    let log = m.log_text();
    drop(m);
    let status =
        status.unwrap_or_else(|| panic!("still running 15 s after umount; output:\n{log}"));
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "exit status {status:?} after umount; output:\n{log}"
    );
}

#[test]
fn daemon_mode_returns_once_ready_and_exits_on_unmount() {
    let (_tmp, src, mnt) = setup("cli-daemon");
    let (out, guard) = Mount::start_daemon(&src, &mnt, &[]);
    let mut guard =
        guard.unwrap_or_else(|| panic!("daemon mode did not mount: {}", out.describe()));
    assert!(
        out.success(),
        "daemon mode exited non-zero: {}",
        out.describe()
    );
    // Ready means ready: right after the launcher exits the tree is there.
    assert_eq!(
        fuse_mounts_at(&mnt),
        1,
        "no FUSE mount right after the launcher exited 0"
    );
    let names = list(&mnt).expect("readdir right after launch");
    assert!(names.contains(&"Echo-x86_64".to_string()), "{names:?}");
    assert!(
        guard.pid().is_some(),
        "cannot find the daemon process (command line naming the mount point)"
    );
    assert!(guard.is_alive());
    let res = guard.unmount();
    assert!(res.is_ok(), "fusermount3 -u / daemon exit: {res:?}");
}

#[test]
fn allow_other_is_accepted() {
    let (_tmp, src, mnt) = setup("cli-allow-other");
    // Echo's payload root is 0700 (as stored in the image), so read Hello's
    // world-readable desktop file instead.
    copy_app(App::Hello, &src, "hello-x86_64.AppImage");
    let m = Mount::start(&src, &mnt, &["-o", "allow_other"]);
    let info = mounts_at(&m.mountpoint);
    let info = info.last().expect("mountinfo entry");
    assert!(
        info.has_super_option("allow_other") || info.has_mount_option("allow_other"),
        "allow_other not in mountinfo: {info:?}"
    );
    // Another user can read through the mount.
    let mut cmd = Command::new("cat");
    cmd.arg(m.mountpoint.join("hello-x86_64/hello-world.desktop"))
        .uid(65534)
        .gid(65534);
    let out = run_timeout(&mut cmd, Duration::from_secs(20));
    assert!(
        out.success() && out.stdout_text().contains("Name=Hello World"),
        "uid 65534 cannot read with allow_other: {}",
        out.describe()
    );
    drop(m);
}

#[test]
fn mount_is_read_only_nosuid_nodev() {
    let (_tmp, src, mnt) = setup("cli-ro");
    let mut m = Mount::start(&src, &mnt, &[]);
    let info = mounts_at(&m.mountpoint)
        .last()
        .cloned()
        .expect("mountinfo entry");
    let mut fails = Failures::new();
    for opt in ["ro", "nosuid", "nodev"] {
        fails.check(info.has_mount_option(opt), || {
            format!("mount options {:?} lack {opt}", info.mount_options)
        });
    }
    let app = m.mountpoint.join("Echo-x86_64");
    let erofs = |what: &str, r: std::io::Result<()>, fails: &mut Failures| match r {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
        Err(e) => fails.push(format!("{what}: {} instead of EROFS", errno_name(&e))),
        Ok(()) => fails.push(format!("{what}: succeeded on a read-only mount")),
    };
    let create = |p: PathBuf| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map(|_| ())
    };
    erofs(
        "create a file at the root",
        create(m.mountpoint.join("new-file")),
        &mut fails,
    );
    erofs(
        "create a file in an app",
        create(app.join("new-file")),
        &mut fails,
    );
    erofs(
        "mkdir in an app",
        std::fs::create_dir(app.join("new-dir")),
        &mut fails,
    );
    erofs(
        "open AppRun for writing",
        std::fs::OpenOptions::new()
            .write(true)
            .open(app.join("AppRun"))
            .map(|_| ()),
        &mut fails,
    );
    erofs(
        "unlink AppRun",
        std::fs::remove_file(app.join("AppRun")),
        &mut fails,
    );
    erofs(
        "rename",
        std::fs::rename(app.join("AppRun"), app.join("AppRun2")),
        &mut fails,
    );
    erofs(
        "symlink",
        std::os::unix::fs::symlink("x", app.join("newlink")),
        &mut fails,
    );
    {
        use std::os::unix::fs::PermissionsExt;
        erofs(
            "chmod",
            std::fs::set_permissions(app.join("AppRun"), std::fs::Permissions::from_mode(0o777)),
            &mut fails,
        );
    }
    let c = std::ffi::CString::new(app.join("AppRun").as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new("user.new").unwrap();
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            b"v".as_ptr() as *const libc::c_void,
            1,
            0,
        )
    };
    erofs(
        "setxattr",
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        },
        &mut fails,
    );
    // Nothing was created in the source folder either.
    let src_names: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    fails.check(
        src_names == vec![std::ffi::OsString::from("Echo-x86_64.AppImage")],
        || format!("source folder changed: {src_names:?}"),
    );
    // ioctls on an image file fail with ENOTTY, as on any regular file:
    // isatty() is false, and overlayfs copy-up reads no flags.
    {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(app.join("AppRun")).unwrap();
        let mut out = [0u8; 256];
        for (name, cmd) in [
            ("TCGETS", libc::TCGETS),
            ("FS_IOC_GETFLAGS", libc::FS_IOC_GETFLAGS),
        ] {
            // SAFETY: an ioctl on an open file whose out buffer is larger
            // than either command writes.
            let rc = unsafe { libc::ioctl(f.as_raw_fd(), cmd, out.as_mut_ptr()) };
            let err = std::io::Error::last_os_error();
            fails.check(rc == -1 && err.raw_os_error() == Some(libc::ENOTTY), || {
                format!("ioctl {name}: {rc}, {} instead of ENOTTY", errno_name(&err))
            });
        }
    }
    // statfs works (df).
    let out = run_timeout(
        &mut command("df", [OsStr::new("-P"), m.mountpoint.as_os_str()]),
        Duration::from_secs(20),
    );
    fails.check(out.success(), || {
        format!("df on the mount failed: {}", out.describe())
    });
    fails.check(m.is_alive(), || "daemon died".into());
    drop(m);
    fails.finish("read-only mount");
}

/// `appimagefs inspect`: facts for a usable file, the reason for an
/// unusable one, exit status 1 when any file is unusable, and JSON that
/// says the same.
#[test]
fn inspect_reports_facts_and_reasons() {
    let tmp = TempDir::new("cli-inspect");
    let good = copy_app(App::Gui, tmp.path(), "XMessage-x86_64.AppImage");
    let bad = tmp.join("plain-program");
    plain_program(&bad);
    let offset = app(App::Gui).wrap.payload_offset().unwrap();
    let text = run_timeout(
        Command::new(appimagefs_bin()).arg("inspect").arg(&good),
        Duration::from_secs(30),
    );
    assert!(text.success(), "{}", text.describe());
    let out = text.stdout_text();
    for fact in [
        "type:           2".to_string(),
        "x86_64".to_string(),
        format!("offset {offset}"),
        "gzip, block size 131072".to_string(),
        "XMessage".to_string(),
        GUI_UPDATE_INFO.to_string(),
        "signed:         yes".to_string(),
    ] {
        assert!(out.contains(&fact), "missing {fact:?} in:\n{out}");
    }
    let json = run_timeout(
        Command::new(appimagefs_bin())
            .args(["inspect", "--json"])
            .arg(&good)
            .arg(&bad),
        Duration::from_secs(30),
    );
    assert_eq!(
        json.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        json.describe()
    );
    let out = json.stdout_text();
    assert!(
        out.trim_start().starts_with('[') && out.trim_end().ends_with(']'),
        "{out}"
    );
    assert!(
        out.contains("\"usable\": true") && out.contains("\"usable\": false"),
        "{out}"
    );
    assert!(
        out.contains(&format!("\"payload_offset\": {offset}")),
        "{out}"
    );
    assert!(out.contains("a plain program, not an AppImage"), "{out}");
}

/// With `-v`, the log says at exit what the block cache did, for an admin
/// sizing `--cache-size`: reading a file shows up as blocks decompressed.
#[test]
fn verbose_logs_the_block_cache_counters_at_exit() {
    let (_tmp, src, mnt) = setup("cli-cache-counters");
    let mut m = Mount::start(&src, &mnt, &["-v"]);
    let apprun = std::fs::read(mnt.join("Echo-x86_64/AppRun")).expect("read AppRun");
    assert!(!apprun.is_empty());
    m.unmount().expect("unmount");
    let log = m.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("block cache at exit"))
        .unwrap_or_else(|| panic!("no cache counters in the log:\n{log}"));
    let misses: u64 = line
        .split("misses: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no miss count in {line:?}"));
    assert!(misses >= 1, "reading a file decompressed nothing: {line}");
}
