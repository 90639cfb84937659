//! Mount guards and /proc/self/mountinfo.
//!
//! [`Mount`] runs the binary under test; its `Drop` always unmounts
//! (`fusermount3 -u`, then `umount`, then aborting the FUSE connection and
//! `umount -l`) and always reaps the daemon (SIGTERM, then SIGKILL), also when
//! the test panics. Every wait has a timeout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{appimagefs_bin, command, run_timeout, truncate_text, TempDir};

/// How long a mount may take to become ready.
pub const MOUNT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to exit after its mount went away.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// mountinfo

/// One line of /proc/self/mountinfo.
#[derive(Clone, Debug)]
pub struct MountInfo {
    /// `major:minor` of the mounted filesystem.
    pub dev: String,
    /// Where it is mounted (unescaped).
    pub mount_point: PathBuf,
    /// Per-mount options (`ro,nosuid,nodev,...`).
    pub mount_options: String,
    /// Filesystem type (`fuse`, `fuse.appimagefs`, `squashfs`, ...).
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

impl MountInfo {
    /// True for any FUSE mount.
    pub fn is_fuse(&self) -> bool {
        self.fstype == "fuse" || self.fstype.starts_with("fuse.") || self.fstype == "fuseblk"
    }

    /// True when the comma-separated mount options contain `opt`.
    pub fn has_mount_option(&self, opt: &str) -> bool {
        self.mount_options.split(',').any(|o| o == opt)
    }

    /// True when the comma-separated superblock options contain `opt`.
    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.split(',').any(|o| o == opt)
    }
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo.
pub fn mountinfo() -> Vec<MountInfo> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            Some(MountInfo {
                dev: l[2].to_string(),
                mount_point: PathBuf::from(unescape_mountinfo(l[4])),
                mount_options: l[5].to_string(),
                fstype: r[0].to_string(),
                source: unescape_mountinfo(r[1]),
                super_options: r[2].to_string(),
            })
        })
        .collect()
}

/// All mounts stacked exactly at `path` (last = topmost).
pub fn mounts_at(path: &Path) -> Vec<MountInfo> {
    mountinfo()
        .into_iter()
        .filter(|m| m.mount_point == path)
        .collect()
}

/// True if something is mounted exactly at `path`.
pub fn is_mounted(path: &Path) -> bool {
    !mounts_at(path).is_empty()
}

/// Tries hard to get rid of every mount at `path`; returns true on success.
/// Never panics (used from `Drop`).
pub fn force_unmount(path: &Path) -> bool {
    let t = Duration::from_secs(5);
    for _ in 0..8 {
        let mounts = mounts_at(path);
        let Some(top) = mounts.last().cloned() else {
            return true;
        };
        if top.is_fuse() {
            let _ = run_timeout(
                &mut command(
                    "fusermount3",
                    [std::ffi::OsStr::new("-u"), path.as_os_str()],
                ),
                t,
            );
            if !is_mounted_same(path, &mounts) {
                continue;
            }
        }
        let _ = run_timeout(&mut command("umount", [path]), t);
        if !is_mounted_same(path, &mounts) {
            continue;
        }
        if top.is_fuse() {
            abort_fuse_connection(&top.dev);
        }
        let _ = run_timeout(
            &mut command("umount", [std::ffi::OsStr::new("-l"), path.as_os_str()]),
            t,
        );
    }
    !is_mounted(path)
}

fn is_mounted_same(path: &Path, before: &[MountInfo]) -> bool {
    mounts_at(path).len() >= before.len()
}

/// Aborts a FUSE connection (`major:minor` from mountinfo) through fusectl,
/// which makes every pending and future request fail with ENOTCONN.
pub fn abort_fuse_connection(dev: &str) {
    let conn_dir = Path::new("/sys/fs/fuse/connections");
    if !mountinfo().iter().any(|m| m.fstype == "fusectl") {
        let _ = run_timeout(
            &mut command(
                "mount",
                ["-t", "fusectl", "none", "/sys/fs/fuse/connections"],
            ),
            Duration::from_secs(5),
        );
    }
    if let Some((_, minor)) = dev.split_once(':') {
        let _ = std::fs::write(conn_dir.join(minor).join("abort"), "1");
    }
}

/// Lazily detaches every mount at or below `dir` (safety net for `TempDir`).
pub fn detach_mounts_below(dir: &Path) {
    let mut below: Vec<PathBuf> = mountinfo()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    // deepest first
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    below.dedup();
    for p in below {
        eprintln!(
            "warning: mount {} was still present at cleanup; detaching",
            p.display()
        );
        force_unmount(&p);
    }
}

// ---------------------------------------------------------------------------
// Mount (the binary under test)

/// How the filesystem process is run.
enum Proc {
    /// `-f`: our own child.
    Foreground(Child),
    /// Without `-f`: a daemon found by its command line.
    Daemon(Option<i32>),
    /// Already reaped.
    Gone,
}

/// A running `appimagefs` mount; unmounts and reaps on drop.
pub struct Mount {
    /// The mount point (canonical).
    pub mountpoint: PathBuf,
    proc_: Proc,
    log: PathBuf,
    _logdir: TempDir,
}

impl Mount {
    /// Mounts `source` on `mountpoint` with `appimagefs SOURCE MOUNTPOINT
    /// EXTRA... -f` and waits until the mount is in mountinfo. Panics (with
    /// the daemon's output) if that fails.
    pub fn start(source: &Path, mountpoint: &Path, extra: &[&str]) -> Mount {
        Self::try_start(source, mountpoint, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Mount::start`] but returns the failure.
    pub fn try_start(source: &Path, mountpoint: &Path, extra: &[&str]) -> Result<Mount, String> {
        Self::try_start_with(source, mountpoint, extra, |_| {})
    }

    /// Like [`Mount::try_start`], with `configure` applied to the daemon's
    /// command first (to set resource limits in a `pre_exec`, say).
    pub fn try_start_with(
        source: &Path,
        mountpoint: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Result<Mount, String> {
        let mountpoint = mountpoint
            .canonicalize()
            .map_err(|e| format!("canonicalize mountpoint: {e}"))?;
        let logdir = TempDir::new("mountlog");
        let log = logdir.join("daemon.log");
        let logf = File::create(&log).expect("create log");
        let mut cmd = Command::new(appimagefs_bin());
        cmd.arg(source).arg(&mountpoint).args(extra).arg("-f");
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .env("RUST_BACKTRACE", "1");
        configure(&mut cmd);
        let before = mounts_at(&mountpoint).len();
        let child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
        let mut m = Mount {
            mountpoint,
            proc_: Proc::Foreground(child),
            log,
            _logdir: logdir,
        };
        let deadline = Instant::now() + MOUNT_READY_TIMEOUT;
        loop {
            if mounts_at(&m.mountpoint)
                .iter()
                .skip(before)
                .any(|mi| mi.is_fuse())
            {
                return Ok(m);
            }
            if let Proc::Foreground(c) = &mut m.proc_ {
                if let Ok(Some(status)) = c.try_wait() {
                    m.proc_ = Proc::Gone;
                    return Err(format!(
                        "appimagefs {:?} exited with {status} before the mount was ready; its output:\n{}",
                        m.mountpoint,
                        m.log_text()
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "mount at {} not ready within {:?}; output:\n{}",
                    m.mountpoint.display(),
                    MOUNT_READY_TIMEOUT,
                    m.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `appimagefs SOURCE MOUNTPOINT EXTRA...` without `-f`: it must exit
    /// 0 only once the mount is ready. Returns the launcher's output and, on
    /// success, a guard for the daemon it left behind.
    pub fn start_daemon(
        source: &Path,
        mountpoint: &Path,
        extra: &[&str],
    ) -> (super::Output, Option<Mount>) {
        let mountpoint = mountpoint.canonicalize().expect("canonicalize mountpoint");
        let before = mounts_at(&mountpoint).len();
        let old_pids = find_daemon_pids(&mountpoint);
        let mut cmd = Command::new(appimagefs_bin());
        cmd.arg(source).arg(&mountpoint).args(extra);
        let out = run_timeout(&mut cmd, MOUNT_READY_TIMEOUT);
        let mounted = mounts_at(&mountpoint).len() > before;
        // Only a process that was not there before is this launch's daemon.
        let pid = find_daemon_pids(&mountpoint)
            .into_iter()
            .find(|p| !old_pids.contains(p));
        let logdir = TempDir::new("mountlog");
        let log = logdir.join("daemon.log");
        let _ = std::fs::write(&log, b"(daemon mode: output not captured)\n");
        let guard = if mounted || pid.is_some() {
            Some(Mount {
                mountpoint,
                proc_: Proc::Daemon(pid),
                log,
                _logdir: logdir,
            })
        } else {
            None
        };
        (out, guard)
    }

    /// The names at the top of the mount (panics with the daemon's output
    /// if listing fails or takes more than 30 s).
    pub fn root_names(&self) -> Vec<String> {
        let root = self.mountpoint.clone();
        match super::with_timeout("readdir mount root", Duration::from_secs(30), move || {
            std::fs::read_dir(&root).map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<String>>()
            })
        }) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("readdir of the mount root failed: {e}\n{}", self.log_text()),
            Err(e) => panic!("{e}\n{}", self.log_text()),
        }
    }

    /// The daemon's pid, if known.
    pub fn pid(&self) -> Option<i32> {
        match &self.proc_ {
            Proc::Foreground(c) => Some(c.id() as i32),
            Proc::Daemon(p) => *p,
            Proc::Gone => None,
        }
    }

    /// True while the filesystem process is running.
    pub fn is_alive(&mut self) -> bool {
        match &mut self.proc_ {
            Proc::Foreground(c) => matches!(c.try_wait(), Ok(None)),
            Proc::Daemon(Some(pid)) => pid_alive(*pid),
            Proc::Daemon(None) | Proc::Gone => false,
        }
    }

    /// The daemon's stdout+stderr so far (foreground mode only).
    pub fn log_text(&self) -> String {
        truncate_text(
            &String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()),
            8000,
        )
    }

    /// Sends a signal to the filesystem process.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit. For a foreground child
    /// returns its status; for a daemon returns `Some(None)` once it is gone.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            match &mut self.proc_ {
                Proc::Foreground(c) => {
                    if let Ok(Some(s)) = c.try_wait() {
                        self.proc_ = Proc::Gone;
                        return Some(Some(s));
                    }
                }
                Proc::Daemon(Some(pid)) => {
                    if !pid_alive(*pid) {
                        self.proc_ = Proc::Gone;
                        return Some(None);
                    }
                }
                Proc::Daemon(None) | Proc::Gone => return Some(None),
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts with `fusermount3 -u` (falling back as in `Drop`) and waits
    /// for the process to exit; returns its exit status when known.
    pub fn unmount(&mut self) -> Result<Option<ExitStatus>, String> {
        // With --cache-dir, the daemon's replay of a start-up profile walks
        // the mount for a few milliseconds after an app's first touch; an
        // unmount right then is refused as busy, as it would be for any
        // process inside the mount, so it is tried again for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let out = loop {
            let out = run_timeout(
                &mut command(
                    "fusermount3",
                    [std::ffi::OsStr::new("-u"), self.mountpoint.as_os_str()],
                ),
                Duration::from_secs(10),
            );
            if out.success()
                || !out.describe().contains("busy")
                || std::time::Instant::now() > deadline
            {
                break out;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let clean = out.success();
        if !force_unmount(&self.mountpoint) {
            return Err(format!("could not unmount {}", self.mountpoint.display()));
        }
        match self.wait_exit(EXIT_TIMEOUT) {
            Some(s) if clean => Ok(s),
            Some(_) => Err(format!("fusermount3 -u failed: {}", out.describe())),
            None => Err(format!(
                "filesystem process still running {EXIT_TIMEOUT:?} after its mount went away; output:\n{}",
                self.log_text()
            )),
        }
    }

    fn kill_and_reap(&mut self) {
        if self.wait_exit(EXIT_TIMEOUT).is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(3)).is_some() {
            return;
        }
        self.signal(libc::SIGKILL);
        if let Proc::Foreground(c) = &mut self.proc_ {
            let _ = c.kill();
        }
        let _ = self.wait_exit(Duration::from_secs(5));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !force_unmount(&self.mountpoint) {
            // Last resort: kill the daemon (closing /dev/fuse aborts the
            // connection), then detach lazily.
            self.signal(libc::SIGKILL);
            force_unmount(&self.mountpoint);
        }
        self.kill_and_reap();
        if is_mounted(&self.mountpoint) {
            eprintln!(
                "ERROR: {} is still mounted after cleanup",
                self.mountpoint.display()
            );
        }
    }
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the first field after the ")" closing the comm
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Finds an `appimagefs` process (not us) whose command line names
/// `mountpoint`.
pub fn find_daemon_pid(mountpoint: &Path) -> Option<i32> {
    find_daemon_pids(mountpoint).into_iter().next()
}

/// Every `appimagefs` process (not us) whose command line names `mountpoint`.
pub fn find_daemon_pids(mountpoint: &Path) -> Vec<i32> {
    let mut found = Vec::new();
    let me = std::process::id() as i32;
    let bin = appimagefs_bin();
    let mp = mountpoint.as_os_str().as_encoded_bytes();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for ent in rd.flatten() {
        let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || !pid_alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(ent.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let exe = std::fs::read_link(ent.path().join("exe")).ok();
        let is_ours = exe.as_deref() == Some(bin.as_path())
            || args
                .first()
                .map(|a| a.ends_with(b"appimagefs"))
                .unwrap_or(false);
        if is_ours && args.contains(&mp) {
            found.push(pid);
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Kernel loop mounts (comparator validation)

/// A read-only kernel loop mount; unmounted on drop.
pub struct KernelMount {
    /// Where it is mounted.
    pub dir: PathBuf,
}

impl KernelMount {
    /// `mount -t FSTYPE -o loop,ro,offset=OFFSET IMAGE DIR`.
    pub fn new(fstype: &str, image: &Path, offset: u64, dir: &Path) -> KernelMount {
        let dir = dir.canonicalize().expect("canonicalize");
        let out = run_timeout(
            Command::new("mount")
                .args(["-t", fstype, "-o", &format!("loop,ro,offset={offset}")])
                .arg(image)
                .arg(&dir),
            Duration::from_secs(30),
        );
        assert!(
            out.success(),
            "kernel mount of {} failed: {}",
            image.display(),
            out.describe()
        );
        KernelMount { dir }
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        force_unmount(&self.dir);
    }
}
