//! What an image can never do through the mount, and who may use it:
//! setuid bits never take effect, device nodes never open as devices, and a
//! mount made by a normal user is that user's alone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::apps::{copy_app, App};
use crate::common::*;

const NOBODY: &str = "65534";

/// Runs `program args` as uid/gid 65534 and returns its output.
fn as_nobody(program: &Path, args: &[&str]) -> Output {
    run_timeout(
        Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
            .arg(program)
            .args(args),
        Duration::from_secs(30),
    )
}

/// An AppImage whose tree holds a root-owned setuid copy of `id` and two
/// device nodes (/dev/null's and /dev/zero's numbers).
fn privileged_image(tmp: &TempDir) -> std::path::PathBuf {
    let tree = tmp.subdir("tree");
    std::fs::copy("/usr/bin/id", tree.join("id")).unwrap();
    std::fs::set_permissions(tree.join("id"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(
        tree.join("AppRun"),
        "#!/bin/sh\nexec \"$(dirname \"$0\")/id\" \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(tree.join("AppRun"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sqfs = tmp.join("priv.sqfs");
    mksquashfs(
        &tree,
        &sqfs,
        &[
            "-all-root",
            "-p",
            "null c 666 0 0 1 3",
            "-p",
            "zero c 666 0 0 1 5",
        ],
    );
    let src = tmp.subdir("src");
    wrap_squashfs_as_appimage(&sqfs, &src.join("priv.AppImage"));
    src
}

#[test]
fn setuid_bits_and_device_nodes_never_take_effect() {
    let tmp = TempDir::new("security-priv");
    // Control: the same setuid binary on an ordinary file system does run
    // as root for nobody, so the check below can fail.
    let control = tmp.join("id-control");
    std::fs::copy("/usr/bin/id", &control).unwrap();
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let control_honours_suid = as_nobody(&control, &["-u"]).stdout_text().trim() == "0";

    let src = privileged_image(&tmp);
    let mnt = tmp.subdir("mnt");
    let mount = Mount::start(&src, &mnt, &[]);
    let id = mnt.join("priv/id");
    let meta = std::fs::metadata(&id).unwrap();
    assert_eq!(
        meta.mode() & 0o7777,
        0o4755,
        "the stored mode is shown as stored"
    );
    assert_eq!(meta.uid(), 0);
    let out = as_nobody(&id, &["-u"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        out.stdout_text().trim(),
        NOBODY,
        "setuid root took effect through the mount"
    );
    if !control_honours_suid {
        eprintln!(
            "NOTE security: the control file system ignores setuid here; the check above still ran"
        );
    }

    for dev in ["null", "zero"] {
        let path = mnt.join("priv").join(dev);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()),
            "{dev} is shown as a device"
        );
        for write in [false, true] {
            let err = std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .open(&path)
                .expect_err("a device node in an image opened as a device");
            assert!(
                matches!(
                    err.raw_os_error(),
                    Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::EPERM)
                ),
                "{dev} (write={write}): {err}"
            );
        }
    }
    drop(mount);
}

/// Kills the child's process group and unmounts on drop.
struct UserMount {
    child: std::process::Child,
    mountpoint: std::path::PathBuf,
}

impl Drop for UserMount {
    fn drop(&mut self) {
        force_unmount(&self.mountpoint);
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives /dev/fuse a mode for a while and puts the old one back on drop.
/// Only this file's tests mount as a normal user; the others run as root,
/// whom the mode does not stop.
struct DevFuseMode(u32);

impl DevFuseMode {
    fn set(mode: u32) -> DevFuseMode {
        let old = std::fs::metadata("/dev/fuse").expect("/dev/fuse").mode() & 0o7777;
        set_mode(Path::new("/dev/fuse"), mode);
        DevFuseMode(old)
    }
}

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        set_mode(Path::new("/dev/fuse"), self.0);
    }
}

#[test]
fn a_mount_made_by_a_normal_user_is_private() {
    let tmp = TempDir::new("security-user");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.subdir("src");
    copy_app(App::Hello, &src, "hello.AppImage");
    let mnt = tmp.subdir("mnt");
    for p in [&src, &mnt] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(src.join("hello.AppImage"), Some(65534), Some(65534)).unwrap();

    // Where only root may open /dev/fuse (some containers), a normal user
    // is told so and what to change; nothing is mounted.
    let closed = DevFuseMode::set(0o600);
    let refused = as_nobody(
        &appimagefs_bin(),
        &[src.to_str().unwrap(), mnt.to_str().unwrap()],
    );
    drop(closed);
    assert!(
        !refused.success() && refused.stderr_text().contains("chmod 0666 /dev/fuse"),
        "{}",
        refused.describe()
    );
    assert!(!is_mounted(&mnt));

    // Debian's own mode: every user may open it, fusermount3 mounts.
    let _open = DevFuseMode::set(0o666);
    let child = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(appimagefs_bin())
        .arg(&src)
        .arg(&mnt)
        .arg("-f")
        .env("HOME", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.join("daemon.log")).unwrap())
        .spawn()
        .expect("start appimagefs as nobody");
    let guard = UserMount {
        child,
        mountpoint: mnt.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(&mnt) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        is_mounted(&mnt),
        "a normal user could not mount (fusermount3 must be setuid): {}",
        std::fs::read_to_string(tmp.join("daemon.log")).unwrap_or_default()
    );
    let own = as_nobody(Path::new("/bin/ls"), &[mnt.to_str().unwrap()]);
    assert!(
        own.success() && own.stdout_text().contains("hello"),
        "the mounting user: {}",
        own.describe()
    );
    let other = run_timeout(
        Command::new("setpriv")
            .args([
                "--reuid",
                "65533",
                "--regid",
                "65533",
                "--clear-groups",
                "--",
                "/bin/ls",
            ])
            .arg(&mnt),
        Duration::from_secs(30),
    );
    assert!(
        !other.success(),
        "another user can list a private mount: {}",
        other.describe()
    );
    let root = std::fs::read_dir(&mnt).map(|d| d.count());
    assert!(
        root.is_err(),
        "root can list a private mount without allow_root"
    );
    drop(guard);
    assert!(!is_mounted(&mnt));
}

/// An AppImage file that not everyone may read is, through the mount, only
/// open to those who may read the file: its content is the file's content.
#[test]
fn an_app_whose_file_is_private_is_only_open_to_its_readers() {
    let tmp = TempDir::new("security-private-app");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.subdir("src");
    let private = copy_app(App::Hello, &src, "private.AppImage");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = copy_app(App::Echo, &src, "public.AppImage");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mnt = tmp.subdir("mnt");
    let mount = Mount::start(&src, &mnt, &[]);
    let desktop = mnt.join("private/hello-world.desktop");
    assert!(
        std::fs::read(&desktop).is_ok(),
        "root may read the private app"
    );
    let listing = as_nobody(Path::new("/bin/ls"), &[mnt.to_str().unwrap()]);
    assert!(
        listing.stdout_text().contains("private"),
        "{}",
        listing.describe()
    );
    let denied = as_nobody(Path::new("/bin/cat"), &[desktop.to_str().unwrap()]);
    assert!(
        !denied.success(),
        "another user read a 0600 AppImage through the mount"
    );
    assert!(
        denied.stderr_text().contains("Permission denied"),
        "{}",
        denied.describe()
    );
    let allowed = as_nobody(
        Path::new("/bin/cat"),
        &[mnt.join("public/AppRun").to_str().unwrap()],
    );
    assert!(allowed.success(), "{}", allowed.describe());
    assert!(
        std::fs::read(&desktop).is_ok(),
        "root still may, after the denied walk"
    );
    drop(mount);
}

/// An AppImage file readable by its group is open through the mount to a
/// user who has that group only as a supplementary group (the kernel tells
/// FUSE only the primary one; the daemon reads the rest from /proc), and
/// to nobody else.
#[test]
fn a_group_readable_app_is_open_to_supplementary_members() {
    const GROUP: &str = "4242";
    let tmp = TempDir::new("security-group-app");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.subdir("src");
    let app = copy_app(App::Hello, &src, "grouped.AppImage");
    std::os::unix::fs::chown(&app, Some(0), Some(4242)).unwrap();
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mnt = tmp.subdir("mnt");
    let mount = Mount::start(&src, &mnt, &[]);
    let desktop = mnt.join("grouped/hello-world.desktop");
    let cat_as_nobody = |groups: &[&str]| {
        run_timeout(
            Command::new("setpriv")
                .args(["--reuid", NOBODY, "--regid", NOBODY])
                .args(groups)
                .args(["--", "/bin/cat"])
                .arg(&desktop),
            Duration::from_secs(30),
        )
    };
    let member = cat_as_nobody(&["--groups", GROUP]);
    assert!(
        member.success() && member.stdout_text().contains("Name=Hello World"),
        "a supplementary member of the file's group: {}",
        member.describe()
    );
    let outsider = cat_as_nobody(&["--clear-groups"]);
    assert!(
        !outsider.success() && outsider.stderr_text().contains("Permission denied"),
        "a user outside the file's group: {}",
        outsider.describe()
    );
    let other_group = cat_as_nobody(&["--groups", "4243"]);
    assert!(
        !other_group.success(),
        "a member of another group: {}",
        other_group.describe()
    );
    drop(mount);
}
