//! The mount lifecycle: checks before mounting, detaching into the
//! background once the mount is ready, signals, and unmounting.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};

use crate::cache::BlockCache;
use crate::cli::Settings;
use crate::disk_cache::{DiskCache, OpenError};
use crate::fuse_adapter::FuseAdapter;
use crate::kernel_mount;
use crate::passthrough::Passthrough;
use crate::profile::Profiles;
use crate::union::Union;
use crate::warm::Warmer;

/// Why the daemon could not start; printed as `appimagefs: <message>`.
#[derive(Debug)]
pub struct StartError(pub String);

impl<E: std::fmt::Display> From<E> for StartError {
    fn from(e: E) -> StartError {
        StartError(e.to_string())
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, StartError> {
    Err(StartError(msg.into()))
}

/// Checks the source folder, returning its absolute path.
fn check_source(source: &Path) -> Result<PathBuf, StartError> {
    let meta = std::fs::metadata(source)
        .map_err(|e| StartError(format!("source folder {}: {e}", source.display())))?;
    if !meta.is_dir() {
        return fail(format!("source {} is not a folder", source.display()));
    }
    std::fs::read_dir(source)
        .map_err(|e| StartError(format!("cannot list {}: {e}", source.display())))?;
    Ok(std::fs::canonicalize(source)?)
}

/// Checks the mount point: it must be a folder that is not already a mount
/// point. A dead FUSE mount left by a killed instance ("Transport endpoint
/// is not connected") is detached first.
fn check_mountpoint(mnt: &Path) -> Result<PathBuf, StartError> {
    if let Err(e) = std::fs::metadata(mnt) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            crate::log::info(format_args!(
                "{} is a dead FUSE mount left by an earlier instance; detaching it",
                mnt.display()
            ));
            detach(mnt)?;
        } else {
            return fail(format!("mount point {}: {e}", mnt.display()));
        }
    }
    let meta = std::fs::metadata(mnt)
        .map_err(|e| StartError(format!("mount point {}: {e}", mnt.display())))?;
    if !meta.is_dir() {
        return fail(format!("mount point {} is not a folder", mnt.display()));
    }
    let abs = std::fs::canonicalize(mnt)?;
    if let Some(fstype) = mounted_at(&abs) {
        return fail(format!(
            "{} is already a mount point ({fstype}); unmount it first (fusermount3 -u {0} or umount {0})",
            abs.display()
        ));
    }
    Ok(abs)
}

/// Lazily unmounts `mnt` (root: umount2 MNT_DETACH; others: fusermount3 -uz).
pub fn detach(mnt: &Path) -> Result<(), StartError> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = CString::new(mnt.as_os_str().as_bytes())?;
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return fail(format!(
                "cannot detach {}: {}",
                mnt.display(),
                std::io::Error::last_os_error()
            ));
        }
        return Ok(());
    }
    let status = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(mnt)
        .status()?;
    if !status.success() {
        return fail(format!("fusermount3 -uz {} failed", mnt.display()));
    }
    Ok(())
}

/// The filesystem type mounted exactly at `path`, if any (from
/// /proc/self/mountinfo, whose paths escape spaces as octal).
fn mounted_at(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    info.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        (unescape_octal(fields.get(4)?) == want)
            .then(|| fields.get(dash + 1).unwrap_or(&"?").to_string())
    })
}

fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn check_fuse_device() -> Result<(), StartError> {
    match OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(
            "/dev/fuse is missing: in a container, start it with --device /dev/fuse --cap-add SYS_ADMIN \
             (or mount on the host and bind-mount the tree in)",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => fail(format!(
            "cannot open /dev/fuse: {e}: a normal user can mount only where /dev/fuse is \
             readable and writable by all (mode 0666, as Debian's udev sets it; as root: \
             chmod 0666 /dev/fuse), or start appimagefs as root"
        )),
        Err(e) => fail(format!("cannot open /dev/fuse: {e}")),
    }
}

/// The FUSE configuration. By default there is no `default_permissions`:
/// like an AppImage mounted by its own runtime, whoever may use the mount
/// may read and run every app in it, whatever owners and modes the image
/// stores (anyone who can read an AppImage file can extract it anyway). The
/// kernel still refuses to execute files without an execute bit.
fn fuse_config(s: &Settings) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![
        MountOption::FSName(s.fsname.clone()),
        MountOption::Subtype(kernel_mount::SUBTYPE.into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    if s.default_permissions {
        c.mount_options.push(MountOption::DefaultPermissions);
    }
    c.acl = if s.allow_other {
        SessionACL::All
    } else if s.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    c.n_threads = Some(s.threads);
    c.clone_fd = true;
    c
}

/// How the signal thread unmounts: the mount fuser made (through
/// fusermount3) or the one made with mount(2) in [`kernel_mount`].
enum Unmounter {
    Fuser(SessionUnmounter),
    Kernel(PathBuf),
}

impl Unmounter {
    fn unmount(&mut self) -> std::io::Result<()> {
        match self {
            Unmounter::Fuser(u) => u.unmount(),
            Unmounter::Kernel(path) => kernel_mount::unmount(path),
        }
    }
}

/// Detaches a mount made with mount(2) when serving it fails, as fuser
/// does for its own mounts when a session drops, so a failed start or a
/// session error leaves no dead mount behind.
struct DetachOnError(Option<PathBuf>);

impl Drop for DetachOnError {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = detach(&path) {
                crate::log::warn(format_args!("{}", e.0));
            }
        }
    }
}

/// The write end of the pipe on which a background child tells its waiting
/// parent "ready" or why it failed.
struct Readiness(Option<File>);

impl Readiness {
    fn report(&mut self, msg: &str) {
        if let Some(mut w) = self.0.take() {
            let _ = w.write_all(msg.as_bytes());
        }
    }
}

/// Forks; the parent waits for the child's report and exits with it.
fn daemonize() -> Result<Readiness, StartError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us.
    let (mut r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: no other threads exist yet (checked by the caller's ordering),
    // so the child inherits a consistent process.
    match unsafe { libc::fork() } {
        -1 => fail(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(r);
            // SAFETY: setsid has no memory-safety preconditions.
            unsafe { libc::setsid() };
            Ok(Readiness(Some(w)))
        }
        _ => {
            drop(w);
            let mut msg = String::new();
            let _ = r.read_to_string(&mut msg);
            if msg == "ready" {
                std::process::exit(0);
            }
            if msg.is_empty() {
                msg = "the background process died before the mount was ready".into();
            }
            eprintln!("appimagefs: {msg}");
            std::process::exit(1);
        }
    }
}

/// Points stdin and stdout at /dev/null and stderr at the log file (or
/// /dev/null), so a detached daemon holds no terminal.
fn detach_stdio(log_file: Option<&Path>) -> Result<(), StartError> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let log = match log_file {
        Some(p) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| StartError(format!("log file {}: {e}", p.display())))?,
        None => null.try_clone()?,
    };
    // SAFETY: dup2 on descriptors we own onto the standard ones.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(())
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread it
/// starts afterwards, so only the watcher thread receives them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset operations on a zeroed, then initialised, local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Raises glibc's mmap threshold above the largest block buffer (1 MiB
/// decoded, plus its compressed input): by default every buffer of 128 KiB
/// or more is a fresh mmap, so each decompressed block paid page faults and
/// an munmap. Freed buffers are now reused from the heap.
fn keep_block_buffers_in_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// How long a daemon that is stopping waits for the start-up files it is
/// keeping whole in the cache folder (decoding them takes seconds for a
/// browser packed with xz); what is not done by then is left for the next.
const WHOLE_FILES_WAIT: Duration = Duration::from_secs(30);

/// Mounts and serves until unmounted. Returns once the mount is gone.
pub fn run(settings: Settings) -> Result<(), StartError> {
    crate::log::set_verbose(settings.verbose);
    keep_block_buffers_in_heap();
    let nofile = crate::fd_pool::raise_nofile_limit();
    crate::log::debug(format_args!(
        "open files: limit {nofile}, at most {} AppImages open at once",
        crate::fd_pool::FdPool::global().limit()
    ));
    let source = check_source(&settings.source)?;
    let mnt = check_mountpoint(&settings.mountpoint)?;
    check_fuse_device()?;
    let disk = open_cache_dir(&settings)?;
    let cache = Arc::new(BlockCache::with_disk(
        usize::try_from(settings.cache_size).unwrap_or(usize::MAX),
        disk,
    ));
    let union = Arc::new(
        Union::new(&source, &mnt, cache.clone())?
            .with_sandbox(settings.sandbox)
            .with_tree_budget(crate::union::opened::default_budget(settings.cache_size)),
    );
    let mut readiness = if settings.foreground {
        Readiness(None)
    } else {
        daemonize()?
    };
    let result = serve(&settings, &mnt, union, &mut readiness);
    crate::log::debug(format_args!("block cache at exit: {:?}", cache.stats()));
    if let Some(disk) = cache.disk() {
        disk.flush(Duration::from_secs(5));
        crate::log::debug(format_args!(
            "cache folder at exit: {:?}",
            disk.store().stats()
        ));
    }
    if let Err(e) = &result {
        readiness.report(&e.0);
    }
    result
}

/// Opens the `--cache-dir` folder: refusing to start when it is unsafe to
/// use, going on without it (one log line) when it cannot be created.
fn open_cache_dir(settings: &Settings) -> Result<Option<DiskCache>, StartError> {
    let Some(dir) = &settings.cache_dir else {
        return Ok(None);
    };
    match DiskCache::open(dir, settings.cache_dir_size) {
        Ok(d) => Ok(Some(d)),
        Err(OpenError::Refused(m)) => Err(StartError(m)),
        Err(OpenError::Unavailable(m)) => {
            crate::log::warn(format_args!("{m}; running without a cache folder"));
            Ok(None)
        }
    }
}

fn serve(
    settings: &Settings,
    mnt: &Path,
    union: Arc<Union>,
    readiness: &mut Readiness,
) -> Result<(), StartError> {
    let signals = block_signals();
    let (apps, skipped) = (union.apps().len(), union.skipped());
    let warmer = Arc::new(Warmer::new(union.clone(), crate::prefetch::cores()));
    let passthrough = union.cache().disk().map(|_| {
        Passthrough::new(
            union.clone(),
            crate::prefetch::cores(),
            crate::passthrough::MAX_PREPARED,
        )
    });
    let profiles = Profiles::new(union.clone(), warmer.clone(), passthrough.clone());
    let counts = Arc::new(crate::request_counts::RequestCounts::default());
    let adapter = FuseAdapter::new(union.clone(), warmer.clone())
        .with_profiles(profiles.clone())
        .with_passthrough(passthrough.clone())
        .with_request_counts(counts.clone());
    let config = fuse_config(settings);
    let mount_error = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (as a normal user, -o allow_other needs user_allow_other in /etc/fuse.conf)"
        } else {
            ""
        };
        StartError(format!("cannot mount on {}: {e}{hint}", mnt.display()))
    };
    // SAFETY: geteuid cannot fail.
    let direct = if unsafe { libc::geteuid() } == 0 {
        kernel_mount::mount(mnt, settings).map_err(mount_error)?
    } else {
        None
    };
    let (session, mut unmounter) = match direct {
        Some(km) => {
            let path = km.path.clone();
            let session = Session::from_fd(adapter, km.fuse, config.acl, config).map_err(|e| {
                let _ = kernel_mount::unmount(&path);
                mount_error(e)
            })?;
            (session, Unmounter::Kernel(path))
        }
        None => {
            let mut session = Session::new(adapter, mnt, &config).map_err(mount_error)?;
            let unmounter = Unmounter::Fuser(session.unmount_callable());
            (session, unmounter)
        }
    };
    let mut guard = DetachOnError(match &unmounter {
        Unmounter::Kernel(path) => Some(path.clone()),
        Unmounter::Fuser(_) => None,
    });
    let rescan_every =
        (settings.rescan_interval > 0).then(|| Duration::from_secs(settings.rescan_interval));
    warmer.connect(Arc::new(session.notifier()));
    crate::watch::spawn(union.clone(), session.notifier(), rescan_every)?;
    let watched = mnt.to_path_buf();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: `signals` is an initialised set and `sig` a valid out pointer.
            unsafe { libc::sigwait(&signals, &mut sig) };
            crate::log::info(format_args!(
                "signal {sig}: unmounting {}",
                watched.display()
            ));
            if let Err(e) = unmounter.unmount() {
                crate::log::warn(format_args!("unmount failed ({e}); detaching lazily"));
                if let Err(e) = detach(&watched) {
                    crate::log::warn(format_args!("{}", e.0));
                }
            }
        })?;
    crate::log::info(format_args!(
        "ready: {apps} AppImage(s) from {} mounted on {} ({}), {skipped} file(s) skipped",
        settings.source.display(),
        mnt.display(),
        kernel_mount::FSTYPE,
    ));
    if !settings.foreground {
        readiness.report("ready");
        detach_stdio(settings.log_file.as_deref())?;
    }
    session.run()?;
    guard.0 = None;
    crate::log::debug(format_args!("requests at exit: {counts}"));
    if let Some(p) = &profiles {
        p.finish_all();
        crate::log::debug(format_args!("start-up profiles at exit: {:?}", p.stats()));
    }
    if let Some(pt) = &passthrough {
        pt.finish(WHOLE_FILES_WAIT);
        crate::log::debug(format_args!("passthrough at exit: {:?}", pt.stats()));
    }
    crate::log::info(format_args!("{} unmounted", mnt.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_octal(r"/opt/my\040apps"), b"/opt/my apps");
        assert_eq!(unescape_octal(r"/a\\b"), br"/a\\b");
        assert_eq!(unescape_octal(r"\01"), br"\01");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(mounted_at(Path::new("/")).is_some());
        assert!(mounted_at(Path::new("/definitely/not/mounted")).is_none());
    }
}
