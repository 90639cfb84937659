//! FUSE passthrough of the files an app reads as it starts, from whole
//! decoded copies kept in the `--cache-dir` folder (see
//! [`crate::disk_cache::files`]).
//!
//! A warm block cache still leaves a new daemon copying every byte an app
//! reads into the kernel's page cache (a browser's 300 MB: most of its
//! first launch's extra CPU). With passthrough the kernel reads and maps
//! the backing file itself, as it would a plain folder's file: no request,
//! no decoding, no copy through the daemon.
//!
//! - **Writing.** A file of at least [`MIN_LEN`] bytes that an app reads
//!   while its start-up profile is recorded is queued here; one thread at
//!   the lowest CPU priority (`SCHED_IDLE`, so it never competes with the
//!   app) decodes it whole into the folder, unless the folder has it.
//! - **Preparing.** When a daemon replays the profile, each such file is
//!   prepared in the background: its content key is computed from the
//!   image's stored bytes and the folder's copy checked segment by segment.
//!   An open that comes first does the same itself (an open of a file the
//!   profile says is read at start-up), so the app never reads such a file
//!   through the daemon while its copy is being checked.
//! - **Opening.** The first open of a prepared file registers its copy with
//!   the kernel (a backing id, kept for the daemon's life: every open of one
//!   inode must name the same backing file); later opens reuse it.
//!
//! The kernel refuses to mix passthrough and cached opens of one inode
//! (the open fails with EIO), and every open of an inode must name the
//! same backing file while any is open. So the daemon counts each node's
//! open handles of either kind (opens, and the RELEASE of each): a node
//! with a handle open without passthrough is not prepared, and a prepared
//! node (its backing id with it) is dropped to make room only when no
//! handle of it is open. Beyond [`MAX_TRACKED`] open nodes nothing more is
//! prepared or dropped.
//!
//! Passthrough needs Linux 6.9 or later and `CAP_SYS_ADMIN`; where the
//! kernel does not offer it or refuses a backing file, opens are answered
//! as before (one log line).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::disk_cache::files::{FileKey, MAX_LEN};
use crate::disk_cache::Store;
use crate::prefetch::Prefetcher;

/// Smallest file served by passthrough: smaller ones are stored whole into
/// the page cache at open by the warmer ([`crate::warm::OPEN_STORE_MAX`]),
/// which costs less than checking and registering a copy.
pub const MIN_LEN: u64 = crate::warm::OPEN_STORE_MAX + 1;
/// Files prepared for passthrough at once at most (each holds a descriptor
/// until its first open, then a kernel backing id); beyond it one no handle
/// of which is open is dropped for a new one.
pub const MAX_PREPARED: usize = 256;
/// Nodes with open handles counted at most; beyond it nothing more is
/// prepared or dropped (an uncounted handle could be open).
pub const MAX_TRACKED: usize = 1 << 20;
/// The file handle of an open without passthrough.
pub const FH_CACHED: u64 = 1;
/// The file handle of an open passed through to a backing file.
pub const FH_PASSTHROUGH: u64 = 2;
/// Files queued to be written whole per daemon at most.
pub const MAX_WRITES: usize = 1024;

/// What passthrough needs of the union (a fake in tests).
pub trait WholeSource: Send + Sync + 'static {
    /// Size of regular file `ino` of an image, `None` for anything else.
    fn file_size(&self, ino: u64) -> Option<u64>;
    /// The generation of `ino` (a reused inode number is another file).
    fn generation(&self, ino: u64) -> u64;
    /// The content key of file `ino`, `None` where its format has none.
    fn content_key(&self, ino: u64) -> Option<FileKey>;
    /// `len` bytes of `ino` at `offset` (short only at the end), read
    /// without keeping decoded blocks in memory.
    fn read_piece(&self, ino: u64, offset: u64, len: u32) -> std::io::Result<Vec<u8>>;
    /// The cache folder.
    fn store(&self) -> Option<&Store>;
}

impl WholeSource for crate::union::Union {
    fn file_size(&self, ino: u64) -> Option<u64> {
        self.file_extent(ino).map(|(size, _)| size)
    }

    fn generation(&self, ino: u64) -> u64 {
        crate::union::Union::generation(self, ino)
    }

    fn content_key(&self, ino: u64) -> Option<FileKey> {
        self.file_content_key(ino).map(FileKey)
    }

    fn read_piece(&self, ino: u64, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        self.read_with(ino, offset, len, crate::tree::ReadIntent::Replay)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn store(&self) -> Option<&Store> {
        self.cache().disk().map(|d| d.store())
    }
}

/// Passthrough as the daemon runs it.
pub type KernelPassthrough = Passthrough<crate::union::Union, fuser::BackingId>;

/// An inode number with its generation.
type NodeKey = (u64, u64);

/// What a replay does when a prepared file has no usable copy, run once.
type Pending = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// Where one prepared file stands.
enum State<B> {
    /// Not looked at yet.
    Unresolved,
    /// A thread is computing its key and checking its copy.
    Resolving,
    /// Its copy is intact, opened, not registered yet.
    Verified(File),
    /// Registered with the kernel: every open passes through.
    Registered(Arc<B>),
    /// No usable copy (or the kernel refused it): opens are answered as
    /// without passthrough.
    Cached,
}

/// One file prepared for passthrough.
struct Prepared<B> {
    state: Mutex<State<B>>,
    resolved: Condvar,
    /// Opens and preparations working with it now: it is not dropped.
    in_use: AtomicUsize,
}

/// Marks a prepared entry in use while it lives.
struct InUse<B>(Arc<Prepared<B>>);

impl<B> Drop for InUse<B> {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The nodes of this daemon.
struct Nodes<B> {
    /// Files prepared for passthrough (at most `max_prepared`).
    prepared: HashMap<NodeKey, Arc<Prepared<B>>>,
    /// Open handles per node: (without passthrough, passed through).
    handles: HashMap<NodeKey, (u32, u32)>,
    writes: HashSet<NodeKey>,
    /// [`MAX_TRACKED`] reached: nothing more is prepared or dropped.
    full: bool,
}

/// Counters for `-v` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassthroughStats {
    /// Files prepared (a copy looked for).
    pub prepared: u64,
    /// Copies found intact.
    pub verified: u64,
    /// Opens answered with a backing file.
    pub passthrough_opens: u64,
    /// Opens answered without one.
    pub cached_opens: u64,
    /// Whole files written to the folder.
    pub written: u64,
    /// Whole files not written (a read or write failed, or the daemon
    /// stopped first).
    pub not_written: u64,
}

/// Passthrough of one daemon (see the module documentation); `B` is the
/// kernel's backing id ([`fuser::BackingId`] in the daemon).
pub struct Passthrough<S: WholeSource, B: Send + Sync + 'static> {
    /// Itself, for the writer thread it starts.
    me: Weak<Self>,
    source: Arc<S>,
    nodes: Mutex<Nodes<B>>,
    /// False once the kernel refused a backing file for a reason that
    /// holds for every file (no `CAP_SYS_ADMIN`, no kernel support).
    enabled: AtomicBool,
    /// The kernel offered passthrough at INIT: only then are files kept
    /// whole (a daemon that cannot pass them through would write copies
    /// that only cost disk and CPU).
    granted: AtomicBool,
    pool: Prefetcher,
    threads: usize,
    /// Entries prepared at once at most ([`MAX_PREPARED`] in the daemon).
    max_prepared: usize,
    writer: OnceLock<Option<SyncSender<u64>>>,
    /// Files queued or being written.
    writing: Arc<AtomicUsize>,
    /// Set at exit: the writer abandons what it has not finished.
    stop: Arc<AtomicBool>,
    /// The writer thread's id, once it runs (0 before).
    writer_tid: AtomicI32,
    stats: Mutex<PassthroughStats>,
}

impl<S: WholeSource, B: Send + Sync + 'static> Passthrough<S, B> {
    /// Passthrough from `source`'s cache folder, checking copies on up to
    /// `threads` threads, with at most `max_prepared` files prepared at
    /// once (the daemon uses [`MAX_PREPARED`]).
    pub fn new(source: Arc<S>, threads: usize, max_prepared: usize) -> Arc<Self> {
        Arc::new_cyclic(|me| Passthrough {
            me: me.clone(),
            source,
            nodes: Mutex::new(Nodes {
                prepared: HashMap::new(),
                handles: HashMap::new(),
                writes: HashSet::new(),
                full: false,
            }),
            enabled: AtomicBool::new(true),
            granted: AtomicBool::new(false),
            pool: Prefetcher::new(threads.clamp(1, 4)),
            threads: threads.max(1),
            max_prepared: max_prepared.max(1),
            writer: OnceLock::new(),
            writing: Arc::default(),
            stop: Arc::default(),
            writer_tid: AtomicI32::new(0),
            stats: Mutex::default(),
        })
    }

    /// Tells whether the kernel offered passthrough (at INIT).
    pub fn set_granted(&self, granted: bool) {
        self.granted.store(granted, Ordering::Relaxed);
    }

    fn nodes(&self) -> MutexGuard<'_, Nodes<B>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut PassthroughStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// What happened so far.
    pub fn stats(&self) -> PassthroughStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sized(&self, ino: u64) -> bool {
        self.source
            .file_size(ino)
            .is_some_and(|s| (MIN_LEN..=MAX_LEN).contains(&s))
    }

    /// The prepared entry of `key`, marked in use: an existing one, or
    /// (when `create` and no handle of the node is open without
    /// passthrough) a new one, for which one idle entry may be dropped.
    fn entry(&self, key: NodeKey, create: bool) -> Option<(InUse<B>, bool)> {
        let mut dropped = None;
        let found = {
            let mut nodes = self.nodes();
            let Nodes {
                prepared,
                handles,
                full,
                ..
            } = &mut *nodes;
            let use_it = |p: &Arc<Prepared<B>>| {
                p.in_use.fetch_add(1, Ordering::AcqRel);
                InUse(p.clone())
            };
            if let Some(p) = prepared.get(&key) {
                Some((use_it(p), false))
            } else if !create
                || *full
                || handles.get(&key).is_some_and(|h| h.0 > 0)
                || !self.enabled.load(Ordering::Relaxed)
            {
                None
            } else {
                if prepared.len() >= self.max_prepared {
                    let idle = prepared
                        .iter()
                        .find(|(k, p)| {
                            p.in_use.load(Ordering::Acquire) == 0 && !handles.contains_key(k)
                        })
                        .map(|(k, _)| *k);
                    dropped = idle.and_then(|k| prepared.remove(&k));
                }
                if prepared.len() >= self.max_prepared {
                    None
                } else {
                    let p = Arc::new(Prepared {
                        state: Mutex::new(State::Unresolved),
                        resolved: Condvar::new(),
                        in_use: AtomicUsize::new(0),
                    });
                    prepared.insert(key, p.clone());
                    Some((use_it(&p), true))
                }
            }
        };
        // A dropped entry closes its descriptor or backing id: not under
        // the locks.
        drop(dropped);
        found
    }

    /// Prepares `ino`, a file the replayed profile says the app reads as it
    /// starts, in the background. Returns false when it will not pass
    /// through (too small or big, open without passthrough, or already
    /// found without a usable copy): the replay then stores its pieces as
    /// before; otherwise `if_missing` runs if it turns out the folder has
    /// no usable copy.
    pub fn prepare(self: &Arc<Self>, ino: u64, if_missing: impl FnOnce() + Send + 'static) -> bool {
        if !self.sized(ino) {
            return false;
        }
        let key = (ino, self.source.generation(ino));
        let Some((p, new)) = self.entry(key, true) else {
            return false;
        };
        if !new {
            // An open got there first: whether its copy is usable decides
            // (the replay's thread waits for a check under way).
            return self.resolve(ino, &p.0);
        }
        let p = Arc::new(p);
        let if_missing: Pending = Arc::new(Mutex::new(Some(Box::new(if_missing))));
        let job = {
            let (me, p, if_missing) = (self.clone(), p.clone(), if_missing.clone());
            move || me.prepare_now(ino, &p.0, &if_missing)
        };
        if !self.pool.submit(job) {
            // The pool's queue is full: the replay's own thread does it.
            self.prepare_now(ino, &p.0, &if_missing);
        }
        true
    }

    fn prepare_now(&self, ino: u64, p: &Prepared<B>, if_missing: &Pending) {
        if !self.resolve(ino, p) {
            let run = if_missing.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(run) = run {
                run();
            }
        }
    }

    /// Resolves `p` (the copy of `ino`) unless another thread did or does;
    /// waits for that thread. Returns whether a copy is there to use.
    fn resolve(&self, ino: u64, p: &Prepared<B>) -> bool {
        let mut state = p.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*state {
                State::Unresolved => break,
                State::Resolving => {
                    state = p.resolved.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                State::Cached => return false,
                State::Verified(_) | State::Registered(_) => return true,
            }
        }
        *state = State::Resolving;
        drop(state);
        self.count(|s| s.prepared += 1);
        let found = self.find_copy(ino);
        match found {
            Some(_) => self.count(|s| s.verified += 1),
            // Read at start-up and not kept (yet, or damaged): written
            // whole for the next daemon, whoever looked.
            None => self.keep_whole(ino),
        }
        let mut state = p.state.lock().unwrap_or_else(|e| e.into_inner());
        let ok = found.is_some();
        *state = match found {
            Some(f) => State::Verified(f),
            None => State::Cached,
        };
        p.resolved.notify_all();
        ok
    }

    fn find_copy(&self, ino: u64) -> Option<File> {
        let store = self.source.store()?;
        let len = self.source.file_size(ino)?;
        let started = Instant::now();
        let key = self.source.content_key(ino)?;
        let keyed = started.elapsed();
        let found = store.open_whole_file(&key, len, self.threads);
        crate::log::debug(format_args!(
            "inode {ino:#x} ({len} bytes): content key in {} ms, {} in {} ms",
            keyed.as_millis(),
            if found.is_some() {
                "whole copy checked"
            } else {
                "no usable whole copy"
            },
            (started.elapsed() - keyed).as_millis()
        ));
        found
    }

    /// Answers an open of `ino`: the backing id to pass through to, or
    /// `None` to open it as without passthrough. `read_at_start` tells that
    /// the replayed profile lists the file as read at start-up (it is then
    /// prepared now if the replay has not reached it yet); `register` hands
    /// a checked copy to the kernel.
    pub fn open(
        &self,
        ino: u64,
        read_at_start: bool,
        register: impl FnOnce(&File) -> std::io::Result<B>,
    ) -> Option<Arc<B>> {
        let create = read_at_start && self.sized(ino);
        let key = (ino, self.source.generation(ino));
        let chosen = self.entry(key, create);
        let backing = match &chosen {
            Some((p, _)) if self.resolve(ino, &p.0) => self.backing(ino, &p.0, register),
            _ => None,
        };
        {
            let mut nodes = self.nodes();
            if !nodes.full {
                if nodes.handles.len() >= MAX_TRACKED && !nodes.handles.contains_key(&key) {
                    nodes.full = true;
                } else {
                    let h = nodes.handles.entry(key).or_default();
                    match backing {
                        Some(_) => h.1 += 1,
                        None => h.0 += 1,
                    }
                }
            }
        }
        drop(chosen);
        self.count(|s| match backing {
            Some(_) => s.passthrough_opens += 1,
            None => s.cached_opens += 1,
        });
        backing
    }

    /// The backing id of `p`, registering its checked copy on first use.
    fn backing(
        &self,
        ino: u64,
        p: &Prepared<B>,
        register: impl FnOnce(&File) -> std::io::Result<B>,
    ) -> Option<Arc<B>> {
        let mut state = p.state.lock().unwrap_or_else(|e| e.into_inner());
        let backing = match std::mem::replace(&mut *state, State::Cached) {
            State::Registered(b) => Some(b),
            State::Verified(file) => match register(&file) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    self.refused(ino, &e);
                    None
                }
            },
            _ => None,
        };
        if let Some(b) = &backing {
            *state = State::Registered(b.clone());
        }
        backing
    }

    /// Called for the RELEASE of a handle of `ino` (`passed_through` as
    /// [`open`](Self::open) answered it).
    pub fn released(&self, ino: u64, passed_through: bool) {
        let key = (ino, self.source.generation(ino));
        let mut nodes = self.nodes();
        if let Some(h) = nodes.handles.get_mut(&key) {
            let n = if passed_through { &mut h.1 } else { &mut h.0 };
            *n = n.saturating_sub(1);
            if *h == (0, 0) {
                nodes.handles.remove(&key);
            }
        }
    }

    /// The kernel refused `ino`'s copy: that node stays without
    /// passthrough; a refusal that will hold for every file (no
    /// `CAP_SYS_ADMIN`, no kernel support) stops preparing others.
    fn refused(&self, ino: u64, e: &std::io::Error) {
        let lasting = matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::EACCES | libc::ENOTTY | libc::EOPNOTSUPP | libc::ENOSYS)
        );
        if lasting {
            if self.enabled.swap(false, Ordering::Relaxed) {
                crate::log::warn(format_args!(
                    "the kernel refuses passthrough backing files ({e}); files kept whole in \
                     the cache folder are read through the daemon instead"
                ));
            }
        } else {
            crate::log::debug(format_args!("inode {ino:#x}: backing file refused: {e}"));
        }
    }

    /// Called for a file an app reads as it starts (a read while its
    /// start-up profile is recorded, or a prepared file found without a
    /// usable copy): a file of at least [`MIN_LEN`] bytes is queued once to be
    /// written whole into the folder, where this daemon can pass files
    /// through.
    pub fn keep_whole(&self, ino: u64) {
        let writable = self.source.store().is_some_and(Store::writable);
        let usable = self.granted.load(Ordering::Relaxed) && self.enabled.load(Ordering::Relaxed);
        if !writable || !usable || self.stop.load(Ordering::Relaxed) {
            return;
        }
        let key = (ino, self.source.generation(ino));
        {
            let nodes = self.nodes();
            if nodes.writes.contains(&key) || nodes.writes.len() >= MAX_WRITES {
                return;
            }
        }
        if !self.sized(ino) {
            return;
        }
        if !self.nodes().writes.insert(key) {
            return;
        }
        let Some(tx) = self.writer() else { return };
        self.writing.fetch_add(1, Ordering::AcqRel);
        if tx.try_send(ino).is_err() {
            self.writing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The writer thread's queue, started on first use.
    fn writer(&self) -> Option<&SyncSender<u64>> {
        self.writer
            .get_or_init(|| {
                let (tx, rx) = sync_channel::<u64>(MAX_WRITES);
                let me = self.me.clone();
                let spawned = std::thread::Builder::new()
                    .name("whole-files".into())
                    .spawn(move || write_loop(&me, &rx));
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        crate::log::warn(format_args!("cannot start the whole-file writer: {e}"));
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Writes `ino` whole into the folder unless it holds it already.
    fn write_whole(&self, ino: u64) {
        let Some(store) = self.source.store() else {
            return;
        };
        let (Some(len), Some(key)) = (self.source.file_size(ino), self.source.content_key(ino))
        else {
            return;
        };
        if store.has_whole_file(&key) {
            return;
        }
        let stop = &self.stop;
        let written = store.store_whole_file(&key, len, |at, buf| {
            if stop.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("the daemon is stopping"));
            }
            let data = self.source.read_piece(ino, at, buf.len() as u32)?;
            if data.len() != buf.len() {
                return Err(std::io::Error::other("short read"));
            }
            buf.copy_from_slice(&data);
            Ok(())
        });
        match written {
            Ok(()) => self.count(|s| s.written += 1),
            Err(e) => {
                crate::log::debug(format_args!("inode {ino:#x} not kept whole: {e}"));
                self.count(|s| s.not_written += 1);
            }
        }
    }

    /// At exit: waits up to `timeout` for the files queued to be written,
    /// then abandons the rest (a partial file is deleted). The writer gets
    /// a normal priority for that: nothing else is left to run first.
    pub fn finish(&self, timeout: Duration) {
        let tid = self.writer_tid.load(Ordering::Acquire);
        if tid != 0 {
            set_idle_priority(tid, false);
        }
        let start = Instant::now();
        while self.writing.load(Ordering::Acquire) > 0 && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Puts thread `tid` in the idle scheduling class (runs only when a core
/// has nothing else to run), or back in the normal one.
fn set_idle_priority(tid: i32, idle: bool) {
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; `tid` is a thread of ours.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        crate::log::debug(format_args!(
            "the whole-file writer's priority is unchanged: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// The writer thread: at the lowest CPU priority, writes the queued files
/// one by one.
fn write_loop<S: WholeSource, B: Send + Sync + 'static>(
    me: &std::sync::Weak<Passthrough<S, B>>,
    rx: &Receiver<u64>,
) {
    crate::disk_cache::background_thread();
    // SAFETY: the gettid system call has no preconditions. (Called as a
    // system call: glibc's wrapper is newer than the portable build's
    // glibc 2.17.)
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    set_idle_priority(tid, true);
    if let Some(me) = me.upgrade() {
        me.writer_tid.store(tid, Ordering::Release);
    }
    while let Ok(ino) = rx.recv() {
        let Some(me) = me.upgrade() else { return };
        if !me.stop.load(Ordering::Relaxed) {
            me.write_whole(ino);
        }
        me.writing.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
