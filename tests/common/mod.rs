//! Helpers shared by every integration test module (and by the opt-in
//! corpus target, `tests/corpus`).
//!
//! - this file: the binary's path, unique temp dirs, running commands and
//!   closures with a timeout. Every image is built at test time: the
//!   default suite never reads a corpus beside the checkout.
//! - [`mount`]: the `Mount` guard (FUSE mounts of the binary), `KernelMount`
//!   (loop mounts used to validate the comparator), /proc/self/mountinfo.
//! - [`snapshot`]: walking a tree into a comparable snapshot and diffing two.
//! - [`images`]: turning bare images into AppImages, building edge-case
//!   SquashFS and ISO images, ground-truth extraction with unsquashfs and
//!   xorriso.
//! - [`sample_apps`]: small type 2 and type 1 AppImages shaped like real
//!   ones, with an `AppRun` that runs.
//! - [`hostile_images`]: malicious and broken images made by patching bytes,
//!   ISO directory record helpers.
#![allow(dead_code)]

pub mod apps;
pub mod dwarfs;
pub mod hostile_images;
pub mod images;
pub mod mount;
pub mod runtime_stub;
pub mod sample_apps;
pub mod snapshot;
pub mod xvfb;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use hostile_images::*;
pub use images::*;
pub use mount::*;
// The corpus target (tests/corpus) builds no sample apps.
#[allow(unused_imports)]
pub use sample_apps::*;
pub use snapshot::*;

/// The path of the binary under test.
///
/// `option_env!` keeps the suite compiling while `src/main.rs` does not exist
/// yet; every test that needs the binary then fails here with a clear message.
/// `APPIMAGEFS_BIN=/path` at run time overrides it (e.g. a release build).
pub fn appimagefs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("APPIMAGEFS_BIN") {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_appimagefs") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "the appimagefs binary target does not exist (no src/main.rs when the tests were \
             compiled); rebuild once it lands"
        ),
    }
}

// ---------------------------------------------------------------------------
// Names

/// The app folder name the filesystem must show for an AppImage file name:
/// the name without a case-insensitive `.AppImage` suffix.
pub fn app_name(file_name: &str) -> String {
    let suffix = ".appimage";
    if file_name.len() > suffix.len() && file_name.to_ascii_lowercase().ends_with(suffix) {
        file_name[..file_name.len() - suffix.len()].to_string()
    } else {
        file_name.to_string()
    }
}

// ---------------------------------------------------------------------------
// Temp dirs

/// Prefix of every temp dir this suite creates (so stale ones are findable).
pub const TEMP_PREFIX: &str = "appimagefs-test-";

/// A unique temp directory, removed (with everything in it) on drop.
///
/// Before removing it, any mount still below it is lazily detached, so a
/// leaked mount can never make `remove_dir_all` walk into a FUSE tree.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `/tmp/appimagefs-test-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let base = std::env::temp_dir()
            .canonicalize()
            .expect("canonicalize temp dir");
        let path = base.join(format!("{TEMP_PREFIX}{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(p)`.
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Creates and returns a subdirectory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).expect("create subdir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        mount::detach_mounts_below(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Running things with a timeout

/// The result of a command run with [`run_timeout`].
#[derive(Debug)]
pub struct Output {
    /// Exit status; `None` when it was killed after the timeout.
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
    }

    /// stdout as (lossy) text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as (lossy) text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A one-paragraph description for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "status={} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            match self.status {
                Some(s) => format!("{s}"),
                None => "TIMED OUT (killed)".into(),
            },
            self.elapsed.as_secs_f64(),
            truncate_text(&self.stdout_text(), 4000),
            truncate_text(&self.stderr_text(), 4000)
        )
    }
}

/// Cuts long text for messages.
pub fn truncate_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... [{} more bytes]", &s[..end], s.len() - end)
    }
}

/// Runs `cmd` (stdin = /dev/null, in its own process group) and kills the
/// whole group if it runs longer than `timeout`. Output readers are given a
/// short grace period after exit, so a daemonised grandchild that keeps the
/// pipes open cannot block the caller.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A program file the test has just written can be briefly "busy": a
    // child another test thread forks meanwhile holds the write descriptor
    // until it execs. Retried a bounded number of times.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cannot spawn {cmd:?}: {e}"),
        }
    };
    let pgid = child.id() as i32;
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let spawn_reader =
        |mut r: Box<dyn Read + Send>, buf: Arc<Mutex<Vec<u8>>>, tx: mpsc::Sender<()>| {
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match r.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(());
            });
        };
    spawn_reader(
        Box::new(child.stdout.take().unwrap()),
        stdout.clone(),
        done_tx.clone(),
    );
    spawn_reader(
        Box::new(child.stderr.take().unwrap()),
        stderr.clone(),
        done_tx,
    );
    let deadline = start + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("wait for {cmd:?}: {e}"),
        }
    };
    let grace = Instant::now() + Duration::from_secs(2);
    for _ in 0..2 {
        let left = grace.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let out = Output {
        status,
        stdout: stdout.lock().unwrap().clone(),
        stderr: stderr.lock().unwrap().clone(),
        elapsed: start.elapsed(),
    };
    out
}

/// Shorthand: a `Command` for `program args...`.
pub fn command<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// True if the mount still answers a stat of its root within 5 s.
pub fn mount_responsive(mnt: &Path) -> bool {
    let m = mnt.to_path_buf();
    matches!(
        with_timeout("stat mount root", Duration::from_secs(5), move || {
            std::fs::metadata(&m).is_ok()
        }),
        Ok(true)
    )
}

/// Runs `f` on a helper thread and gives up after `timeout`.
///
/// On timeout the helper thread is left behind (it is typically blocked in a
/// FUSE request; the `Mount` guard's unmount/kill on drop releases it). A
/// panic inside `f` is propagated.
pub fn with_timeout<T, F>(what: &str, timeout: Duration, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(format!("timeout:{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn helper thread");
    match rx.recv_timeout(timeout) {
        Ok(v) => {
            let _ = handle.join();
            Ok(v)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => Err(format!("{what}: helper thread ended without a result")),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "{what}: no answer within {:.0}s (hang)",
            timeout.as_secs_f64()
        )),
    }
}

/// Like [`with_timeout`] but panics on timeout.
pub fn must_finish<T, F>(what: &str, timeout: Duration, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    with_timeout(what, timeout, f).unwrap_or_else(|e| panic!("{e}"))
}

/// Collects independent failures so one test can report all of them.
#[derive(Default)]
pub struct Failures {
    items: Vec<String>,
}

impl Failures {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one failure.
    pub fn push(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        eprintln!("FAILURE: {}", truncate_text(&msg, 2000));
        self.items.push(msg);
    }

    /// Records a failure when `cond` is false.
    pub fn check(&mut self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.push(msg());
        }
    }

    /// Number recorded so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Panics listing every failure (if any).
    pub fn finish(self, what: &str) {
        if !self.items.is_empty() {
            let mut msg = format!("{what}: {} failure(s):\n", self.items.len());
            for (i, f) in self.items.iter().enumerate() {
                msg.push_str(&format!("\n[{}] {}\n", i + 1, f));
            }
            panic!("{msg}");
        }
    }
}

/// `errno` of an io::Error as a readable name (`EIO`, `ENOENT`, ...).
pub fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => errno_str(code),
        None => format!("{e}"),
    }
}

/// Name of an errno value.
pub fn errno_str(code: i32) -> String {
    let names: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EIO, "EIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENODEV, "ENODEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::EFBIG, "EFBIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::EROFS, "EROFS"),
        (libc::EMLINK, "EMLINK"),
        (libc::ERANGE, "ERANGE"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ENOTEMPTY, "ENOTEMPTY"),
        (libc::ELOOP, "ELOOP"),
        (libc::ENODATA, "ENODATA"),
        (libc::EOVERFLOW, "EOVERFLOW"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::ECONNABORTED, "ECONNABORTED"),
        (libc::EINTR, "EINTR"),
        (libc::ENXIO, "ENXIO"),
        (libc::ESTALE, "ESTALE"),
        (libc::ETXTBSY, "ETXTBSY"),
    ];
    names
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("errno {code}"))
}

/// Shows bytes of a path for messages (non-UTF-8 bytes escaped).
pub fn show(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return ".".into();
    }
    bytes.escape_ascii().to_string()
}

/// Groups items into a map of lists (small helper for reports).
pub fn group_by<K: Ord, V>(items: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut m: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in items {
        m.entry(k).or_default().push(v);
    }
    m
}

/// chmod.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// (resident pages, all pages) of `path`, from mincore(2) on a read-only
/// shared mapping (which faults nothing in).
pub fn residency(path: &Path) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open for mincore");
    let len = f.metadata().expect("stat").len() as usize;
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a fresh read-only mapping of an open file, unmapped before
    // return; mincore writes one byte per page into `vec`.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}", path.display());
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0, "mincore {}", path.display());
    }
    (vec.iter().filter(|&&b| b & 1 != 0).count(), pages)
}

/// The count of `name` in the `requests at exit` line of a `-v` log.
pub fn requests(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("requests at exit: "))
        .unwrap_or_else(|| panic!("no request counts in the log:\n{log}"));
    let counts = &line[line.find("requests at exit: ").unwrap() + 18..];
    counts
        .split(", ")
        .find_map(|c| c.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no count of {name:?} in {line:?}"))
}
