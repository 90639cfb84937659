//! Page-cache warming: decompresses the files a program is reading on every
//! core and stores them into the kernel's page cache (`FUSE_NOTIFY_STORE`)
//! before the program asks for them.
//!
//! A program started from the mount maps its executable and libraries and
//! touches their pages in an order the kernel's read-ahead cannot follow;
//! every miss is a round trip to this daemon and, when cold, a block
//! decompression that the faulting thread waits for on one core. Once a
//! file has been read twice, the warmer reads the rest of it, whole image
//! blocks at a time, through the shared cache on its own threads and hands
//! the bytes to the kernel, so later faults are served from memory as on a
//! local disk. A single read of part of a big block (1 MiB xz blocks come
//! in 128 KiB requests) also has the rest of that block stored, since it is
//! decompressed already.
//!
//! Small files are stored at open instead: opens are not sent to the daemon
//! (see the adapter's `open`), but stdio and Python ask `isatty()` of every
//! file they open, an ioctl that is. Having a warming thread store a file
//! of at most [`OPEN_STORE_MAX`] bytes then usually saves the read round
//! trip that follows (a Python start imports ~190 modules this way). No
//! store ever runs on a request thread.
//!
//! Bounds: at most [`TRACKED_FILES`] files are remembered; a file bigger
//! than [`WHOLE_FILE_MAX`] is only warmed [`WINDOW`] bytes ahead of a
//! sequential reader; jobs that do not fit the pool's queue are dropped.
//! Warming is a hint: any error stops it and changes nothing for readers.

use std::collections::VecDeque;
use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

use crate::error::Result;
use crate::prefetch::Prefetcher;
use crate::tree::ReadIntent;

/// Files whose reads are remembered at once.
pub const TRACKED_FILES: usize = 4096;

/// Largest file warmed as a whole once it is being read.
pub const WHOLE_FILE_MAX: u64 = 1 << 30;

/// How far ahead of a sequential reader a file bigger than
/// [`WHOLE_FILE_MAX`] is warmed.
pub const WINDOW: u64 = 16 << 20;

/// Reads of a file already warmed once that start warming it again: the
/// kernel drops pages under memory pressure (or proactively), and a few
/// such misses are cheaper to serve from the block cache than a new pass
/// over the whole file.
pub const REWARM_AFTER: u32 = 64;

/// Largest file stored whole when a program opens it (see
/// [`Warmer::on_open`]).
pub const OPEN_STORE_MAX: u64 = 256 << 10;

/// Smallest unit of warming: image blocks smaller than this are read
/// several at a time.
const MIN_CHUNK: u32 = 128 << 10;

/// Largest unit of warming, the largest SquashFS block.
const MAX_CHUNK: u32 = 1 << 20;

/// Where the warmer gets file contents: the union namespace in the daemon,
/// a stand-in in tests.
pub trait WarmSource: Send + Sync + 'static {
    /// Size and image block size of regular file `ino`, or `None` when
    /// `ino` is not a file of an image.
    fn file_facts(&self, ino: u64) -> Option<(u64, u32)>;
    /// Reads `len` bytes of `ino` at `offset` (short only at end of file)
    /// for `intent`: [`ReadIntent::Warm`] or [`ReadIntent::Rewarm`] ahead
    /// of a reader, [`ReadIntent::Demand`] for a file stored at open.
    fn read(&self, ino: u64, offset: u64, len: u32, intent: ReadIntent) -> Result<Vec<u8>>;
}

/// Where warmed bytes go: the kernel's page cache through a FUSE
/// notification in the daemon, a recorder in tests.
pub trait PageSink: Send + Sync + 'static {
    /// Stores `data` as the contents of `ino` at `offset`.
    fn store(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl PageSink for fuser::Notifier {
    fn store(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        fuser::Notifier::store(self, fuser::INodeNo(ino), offset, data)
    }
}

impl WarmSource for crate::union::Union {
    fn file_facts(&self, ino: u64) -> Option<(u64, u32)> {
        self.file_extent(ino)
    }

    fn read(&self, ino: u64, offset: u64, len: u32, intent: ReadIntent) -> Result<Vec<u8>> {
        self.read_with(ino, offset, len, intent)
    }
}

/// The warmer the daemon runs: union contents into the kernel's page cache.
pub type KernelWarmer = Warmer<crate::union::Union, fuser::Notifier>;

/// What is remembered of one file's reads.
struct FileState {
    size: u64,
    chunk: u64,
    reads: u32,
    /// Where the last read ended, to tell sequential readers.
    last_end: u64,
    /// Bytes before this offset are warmed or being warmed (windowed mode).
    warmed_until: u64,
    /// The whole-file job started for this file, until a read sees that
    /// it has ended.
    busy: Option<Arc<Job>>,
    /// A whole-file job has ended before.
    warmed: bool,
}

impl FileState {
    /// A file of `size` bytes in an image of `block`-byte blocks, not read
    /// yet.
    fn new(size: u64, block: u32) -> Self {
        FileState {
            size,
            chunk: u64::from(block.clamp(MIN_CHUNK, MAX_CHUNK)),
            reads: 0,
            last_end: 0,
            warmed_until: 0,
            busy: None,
            warmed: false,
        }
    }
}

/// The warmer: one per mount, with its own pool of worker threads (one per
/// core), separate from the request threads so that a store waiting for a
/// page the kernel is reading never holds up the read.
pub struct Warmer<S: WarmSource, K: PageSink> {
    source: Arc<S>,
    sink: OnceLock<Arc<K>>,
    files: Mutex<LruCache<u64, FileState>>,
    pool: Arc<Prefetcher>,
    workers: usize,
}

/// One run over a range of a file's chunks, shared by the workers that
/// take chunks from it in turn.
struct Job {
    ino: u64,
    size: u64,
    chunk: u64,
    /// The job warms `todo` chunks, from chunk `first` on, wrapping at
    /// `count` (the file's number of chunks).
    first: u64,
    todo: u64,
    count: u64,
    /// Warm the first time, Rewarm once the kernel dropped what an earlier
    /// whole-file job stored: from then on what is decompressed is kept.
    intent: ReadIntent,
    /// Chunks handed to workers so far.
    taken: AtomicU64,
    /// Set by a worker whose read or store failed.
    stop: AtomicBool,
    /// Workers still on the job, plus one held while they are started.
    active: AtomicUsize,
    /// Set when the last worker leaves.
    ended: AtomicBool,
}

impl Job {
    /// One holder leaves; the last one marks the job ended.
    fn leave(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.ended.store(true, Ordering::Release);
        }
    }

    /// Whether any worker took a chunk (a job whose workers could not be
    /// queued never ran).
    fn ran(&self) -> bool {
        self.taken.load(Ordering::Acquire) > 0
    }
}

impl<S: WarmSource, K: PageSink> Warmer<S, K> {
    /// A warmer reading from `source` with `workers` threads (started on
    /// first use). It stores nothing until [`connect`](Self::connect).
    pub fn new(source: Arc<S>, workers: usize) -> Self {
        Warmer {
            source,
            sink: OnceLock::new(),
            files: Mutex::new(LruCache::new(
                NonZeroUsize::new(TRACKED_FILES).unwrap_or(NonZeroUsize::MIN),
            )),
            pool: Arc::new(Prefetcher::new(workers)),
            workers: workers.max(1),
        }
    }

    /// Gives the warmer the kernel connection, once the mount exists.
    pub fn connect(&self, sink: Arc<K>) {
        let _ = self.sink.set(sink);
    }

    /// Called when a program has just opened `ino` (the daemon learns of
    /// opens from the `isatty()` ioctl that stdio and Python send right
    /// after one; opens themselves are not sent): has a small file stored
    /// whole by a warming thread, so the program's first read usually finds
    /// it in the page cache instead of costing a round trip. Each file once
    /// while it is remembered; bigger files are left to [`on_read`](Self::on_read).
    ///
    /// The store never runs on the calling request thread: a store locks
    /// page-cache pages, and if another reader's read-ahead holds one while
    /// its READ waits for a free request thread (`--threads 1`, or a burst
    /// of opens taking every thread), the store would wait forever.
    pub fn on_open(&self, ino: u64) {
        let Some(sink) = self.sink.get() else { return };
        let lock = || self.files.lock().unwrap_or_else(|p| p.into_inner());
        if lock().contains(&ino) {
            return;
        }
        let Some((size, block)) = self.source.file_facts(ino) else {
            return;
        };
        if size == 0 || size > OPEN_STORE_MAX {
            return;
        }
        let fresh = FileState::new(size, block);
        {
            // Looked up without the lock: a read may have come first.
            let mut files = lock();
            if files.contains(&ino) {
                return;
            }
            files.put(ino, fresh);
        }
        let (source, sink) = (self.source.clone(), sink.clone());
        self.pool.submit(move || {
            let stored = source
                .read(ino, 0, size as u32, ReadIntent::Demand)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|data| sink.store(ino, 0, &data));
            if let Err(e) = stored {
                crate::log::debug(format_args!("storing inode {ino:#x} at open: {e}"));
            }
        });
    }

    /// Called after the kernel was answered a read of `len` bytes of `ino`
    /// at `offset`: decides what to warm next.
    pub fn on_read(&self, ino: u64, offset: u64, len: u32) {
        let Some(sink) = self.sink.get() else { return };
        let lock = || self.files.lock().unwrap_or_else(|p| p.into_inner());
        // A new file's facts are looked up without the lock held: that may
        // read image metadata.
        let facts = if lock().contains(&ino) {
            None
        } else {
            let Some(facts) = self.source.file_facts(ino) else {
                return;
            };
            Some(facts)
        };
        let mut files = lock();
        let f = match facts {
            Some((size, block)) => files.get_or_insert_mut(ino, || FileState::new(size, block)),
            // Dropped from the table since the check: the next read starts
            // it again.
            None => match files.get_mut(&ino) {
                Some(f) => f,
                None => return,
            },
        };
        if let Some(job) = f.busy.take_if(|j| j.ended.load(Ordering::Acquire)) {
            if job.ran() {
                // Reads from now on are pages the kernel dropped since the
                // whole-file run: count them afresh.
                f.reads = 0;
                f.warmed = true;
            }
        }
        let end = offset.saturating_add(u64::from(len)).min(f.size);
        let sequential = offset == 0 || offset.abs_diff(f.last_end) <= f.chunk;
        f.last_end = end;
        f.reads = f.reads.saturating_add(1);
        if f.size <= f.chunk || f.busy.is_some() {
            return;
        }
        let count = f.size.div_ceil(f.chunk);
        let whole_after = if f.warmed { REWARM_AFTER } else { 2 };
        let job = if f.size <= WHOLE_FILE_MAX && f.reads >= whole_after {
            // Everything after this read first, then what lies before it.
            let next = end.div_ceil(f.chunk) % count;
            let job = Arc::new(self.job(ino, f, next, count));
            f.busy = Some(job.clone());
            Some(job)
        } else if f.size > WHOLE_FILE_MAX
            && sequential
            && f.warmed_until < end.saturating_add(WINDOW / 2)
        {
            let from = f.warmed_until.max(end).div_ceil(f.chunk);
            let upto = end.saturating_add(WINDOW).div_ceil(f.chunk).min(count);
            f.warmed_until = upto * f.chunk;
            (upto > from).then(|| Arc::new(self.job(ino, f, from, upto - from)))
        } else if f.reads == 1 && end % f.chunk != 0 && end < f.size {
            // The block holding the end of this read is decompressed now:
            // store the rest of it.
            Some(Arc::new(self.job(ino, f, end / f.chunk, 1)))
        } else {
            None
        };
        drop(files);
        if let Some(job) = job {
            self.start(job, sink);
        }
    }

    /// Starts a replay (of a start-up profile, see [`crate::profile`]):
    /// pieces fed to it are read for `intent` and stored into the page cache
    /// in the order fed, by up to one worker per core. `None` until the
    /// warmer is connected.
    pub fn start_replay(
        &self,
        intent: ReadIntent,
        counts: Arc<ReplayCounts>,
    ) -> Option<Arc<Replay>> {
        let sink = self.sink.get()?.clone();
        Some(Arc::new(Replay {
            queue: Mutex::new(VecDeque::new()),
            running: AtomicUsize::new(0),
            workers: self.workers,
            intent,
            counts,
            pool: self.pool.clone(),
            source: self.source.clone(),
            sink,
        }))
    }

    /// Tells the warmer that a replay is storing all of `ino` (a file the
    /// profile marks as read whole): the app's reads of pages the replay
    /// has not reached yet then do not start a whole-file pass of their own
    /// over the same bytes, only one after many misses, as for a file
    /// warmed before.
    pub fn replaying_whole(&self, ino: u64) {
        let Some((size, block)) = self.source.file_facts(ino) else {
            return;
        };
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let f = files.get_or_insert_mut(ino, || FileState::new(size, block));
        f.warmed = true;
        f.reads = 0;
    }

    fn job(&self, ino: u64, f: &FileState, first: u64, todo: u64) -> Job {
        Job {
            ino,
            size: f.size,
            chunk: f.chunk,
            first,
            todo,
            count: f.size.div_ceil(f.chunk),
            intent: if f.warmed {
                ReadIntent::Rewarm
            } else {
                ReadIntent::Warm
            },
            taken: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(1),
            ended: AtomicBool::new(false),
        }
    }

    fn start(&self, job: Arc<Job>, sink: &Arc<K>) {
        for _ in 0..self.workers.min(job.todo as usize).max(1) {
            job.active.fetch_add(1, Ordering::AcqRel);
            let (mine, source, sink) = (job.clone(), self.source.clone(), sink.clone());
            let worker = move || {
                work(&mine, &*source, &*sink);
                mine.leave();
            };
            if !self.pool.submit(worker) {
                job.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
        job.leave();
    }
}

/// A range of a file to store: inode, offset, length.
pub type Piece = (u64, u64, u32);

/// Pieces replays stored into the page cache, and pieces whose read or
/// store failed (shared by the replays of one daemon).
#[derive(Debug, Default)]
pub struct ReplayCounts {
    stored: AtomicU64,
    failed: AtomicU64,
}

impl ReplayCounts {
    /// (stored, failed) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.stored.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Pieces a replay worker stores before it lets other warming jobs
/// queued behind it run.
const REPLAY_BATCH: usize = 8;

/// A replay under way (see [`Warmer::start_replay`]): a queue of pieces
/// that grows while the profile is walked, and the workers taking from it.
pub struct Replay {
    queue: Mutex<VecDeque<Piece>>,
    /// Workers on the queue now (at most `workers`).
    running: AtomicUsize,
    workers: usize,
    intent: ReadIntent,
    counts: Arc<ReplayCounts>,
    pool: Arc<Prefetcher>,
    source: Arc<dyn WarmSource>,
    sink: Arc<dyn PageSink>,
}

impl Replay {
    /// Queues `pieces` behind those fed before, and starts workers for them
    /// (up to one per core). Never waits for a piece to be stored.
    pub fn feed(self: &Arc<Self>, pieces: impl IntoIterator<Item = Piece>) {
        let fed = {
            let mut q = self.lock();
            let before = q.len();
            q.extend(pieces);
            q.len() > before
        };
        while fed && self.claim() {
            let me = self.clone();
            if !self.pool.submit(move || me.work()) {
                // The pool is full: the pieces wait for a running worker, or
                // for the feeder's own [`help`](Self::help).
                self.running.fetch_sub(1, Ordering::AcqRel);
                break;
            }
        }
    }

    /// Stores what is queued on the calling thread (not a request thread)
    /// until the queue is empty: a feeder that has fed everything lends a
    /// hand, and pieces the full pool could not take are not left behind.
    pub fn help(&self) {
        while let Some(piece) = self.pop() {
            self.store(piece);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Piece>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pop(&self) -> Option<Piece> {
        self.lock().pop_front()
    }

    /// Takes a worker's place if one is free.
    fn claim(&self) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.workers).then_some(n + 1)
            })
            .is_ok()
    }

    /// One worker's turn: a batch of pieces, then its place goes back to the
    /// pool's queue (so warming of files outside the profile is not held up
    /// for the whole replay), or it leaves when the queue is empty.
    fn work(self: Arc<Self>) {
        loop {
            for _ in 0..REPLAY_BATCH {
                match self.pop() {
                    Some(piece) => self.store(piece),
                    None => {
                        self.running.fetch_sub(1, Ordering::AcqRel);
                        // A piece fed between the pop and the release found
                        // every place taken and started nobody: take it.
                        if self.lock().is_empty() || !self.claim() {
                            return;
                        }
                    }
                }
            }
            let me = self.clone();
            if self.pool.submit(move || me.work()) {
                return;
            }
        }
    }

    fn store(&self, (ino, offset, len): Piece) {
        let stored = self
            .source
            .read(ino, offset, len, self.intent)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|data| self.sink.store(ino, offset, &data));
        let counter = match stored {
            Ok(()) => &self.counts.stored,
            Err(_) => &self.counts.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Takes chunks from `job` until none is left or one fails.
fn work(job: &Job, source: &dyn WarmSource, sink: &dyn PageSink) {
    while !job.stop.load(Ordering::Relaxed) {
        let k = job.taken.fetch_add(1, Ordering::Relaxed);
        if k >= job.todo {
            break;
        }
        let index = (job.first + k) % job.count;
        let offset = index * job.chunk;
        let len = job.chunk.min(job.size - offset) as u32;
        let stored = source
            .read(job.ino, offset, len, job.intent)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|data| sink.store(job.ino, offset, &data));
        if let Err(e) = stored {
            crate::log::debug(format_args!(
                "warming inode {:#x} at {offset} stopped: {e}",
                job.ino
            ));
            job.stop.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// The byte at `offset` of every test file.
    fn byte_at(ino: u64, offset: u64) -> u8 {
        (offset.wrapping_mul(31).wrapping_add(ino) % 251) as u8
    }

    /// Files of given sizes and block size, with generated contents; the
    /// intent of every read is recorded.
    struct Files {
        sizes: BTreeMap<u64, u64>,
        block: u32,
        fail_from: Option<u64>,
        intents: Mutex<Vec<ReadIntent>>,
    }

    impl WarmSource for Files {
        fn file_facts(&self, ino: u64) -> Option<(u64, u32)> {
            self.sizes.get(&ino).map(|&s| (s, self.block))
        }

        fn read(&self, ino: u64, offset: u64, len: u32, intent: ReadIntent) -> Result<Vec<u8>> {
            self.intents.lock().unwrap().push(intent);
            if self.fail_from.is_some_and(|f| offset >= f) {
                return Err(Error::corrupt("injected failure"));
            }
            let Some(&size) = self.sizes.get(&ino) else {
                return Err(Error::NotFound);
            };
            let end = (offset + u64::from(len)).min(size);
            Ok((offset..end).map(|o| byte_at(ino, o)).collect())
        }
    }

    /// Records every store, checking its bytes against the files.
    #[derive(Default)]
    struct Recorder {
        stored: Mutex<Vec<(u64, u64, u64)>>,
        wrong: Mutex<Vec<String>>,
        fail: bool,
    }

    impl PageSink for Recorder {
        fn store(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            for (i, &b) in data.iter().enumerate() {
                if b != byte_at(ino, offset + i as u64) {
                    self.wrong
                        .lock()
                        .unwrap()
                        .push(format!("inode {ino} byte {}", offset + i as u64));
                    break;
                }
            }
            self.stored
                .lock()
                .unwrap()
                .push((ino, offset, data.len() as u64));
            Ok(())
        }
    }

    impl Recorder {
        fn stores(&self) -> Vec<(u64, u64, u64)> {
            let mut s = self.stored.lock().unwrap().clone();
            s.sort();
            s
        }

        /// Bytes of `ino` covered by stores, without double counting.
        fn covered(&self, ino: u64) -> u64 {
            let mut ranges: Vec<(u64, u64)> = self
                .stores()
                .into_iter()
                .filter(|s| s.0 == ino)
                .map(|(_, o, l)| (o, o + l))
                .collect();
            ranges.sort();
            let (mut total, mut upto) = (0, 0);
            for (a, b) in ranges {
                let a = a.max(upto);
                if b > a {
                    total += b - a;
                    upto = b;
                }
            }
            total
        }
    }

    const KIB: u64 = 1024;

    fn setup(
        sizes: &[(u64, u64)],
        block: u32,
        fail_from: Option<u64>,
        sink: Recorder,
    ) -> (Warmer<Files, Recorder>, Arc<Recorder>) {
        let files = Files {
            sizes: sizes.iter().copied().collect(),
            block,
            fail_from,
            intents: Mutex::default(),
        };
        let warmer = Warmer::new(Arc::new(files), 2);
        let sink = Arc::new(sink);
        warmer.connect(sink.clone());
        (warmer, sink)
    }

    /// Gives stores that should not happen the time to show up.
    fn quiet() {
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Waits until `cond` holds (or 10 s pass) and then a little longer,
    /// so that stores that should not happen get the chance to show up.
    fn settle(cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    #[test]
    fn a_second_read_warms_the_whole_file_once() {
        let size = 10 * 128 * KIB + 5;
        let (w, sink) = setup(&[(7, size)], 4096, None, Recorder::default());
        w.on_read(7, 0, 128 * 1024);
        quiet();
        assert!(
            sink.stores().is_empty(),
            "a read ending on a chunk boundary stores nothing"
        );
        w.on_read(7, 5 * 128 * KIB, 4096);
        settle(|| sink.covered(7) == size);
        assert_eq!(sink.covered(7), size);
        assert!(sink.wrong.lock().unwrap().is_empty(), "{:?}", sink.wrong);
        let stores = sink.stores();
        assert_eq!(stores.len(), 11, "one store per 128 KiB chunk: {stores:?}");
        assert!(stores.iter().all(|&(_, o, _)| o % (128 * KIB) == 0));
        // Further reads (pages the kernel dropped) do not start a new pass
        // until there are many of them; the first one stores the rest of
        // its chunk, as any first read does.
        for i in 0..u64::from(REWARM_AFTER) - 1 {
            w.on_read(7, (i % 10) * 128 * KIB + 4096, 4096);
        }
        quiet();
        assert_eq!(sink.stores().len(), 12, "warmed again too soon");
        w.on_read(7, 0, 4096);
        settle(|| sink.stores().len() >= 23);
        assert_eq!(
            sink.stores().len(),
            23,
            "warmed again after {REWARM_AFTER} misses"
        );
        // The first pass leaves what it decompresses to the page cache; once
        // the kernel has dropped pages, what is decompressed is kept.
        let intents = w.source.intents.lock().unwrap().clone();
        assert_eq!(intents.len(), 23);
        assert!(
            intents[..11].iter().all(|&i| i == ReadIntent::Warm),
            "{intents:?}"
        );
        assert!(
            intents[11..].iter().all(|&i| i == ReadIntent::Rewarm),
            "{intents:?}"
        );
    }

    #[test]
    fn an_open_stores_a_small_file_whole_once() {
        let small = 200 * KIB + 7;
        let files = [(1, small), (2, OPEN_STORE_MAX + 1), (3, 0), (4, 9 * KIB)];
        let (w, sink) = setup(&files, 4096, None, Recorder::default());
        w.on_open(1);
        settle(|| !sink.stores().is_empty());
        assert_eq!(sink.stores(), vec![(1, 0, small)]);
        w.on_open(1);
        // Too big, empty, unknown: left to reads.
        w.on_open(2);
        w.on_open(3);
        w.on_open(99);
        // A file already read is in the page cache: not stored again.
        w.on_read(4, 0, 9 * 1024);
        w.on_open(4);
        quiet();
        assert_eq!(sink.stores(), vec![(1, 0, small)]);
        assert!(sink.wrong.lock().unwrap().is_empty(), "{:?}", sink.wrong);
        assert_eq!(
            *w.source.intents.lock().unwrap(),
            vec![ReadIntent::Demand],
            "read as the program's own read would be"
        );
        let failing = Recorder {
            fail: true,
            ..Recorder::default()
        };
        let (w, sink) = setup(&[(1, small)], 4096, None, failing);
        w.on_open(1);
        quiet();
        assert!(sink.stores().is_empty());
    }

    /// A page sink whose stores block until released, as a kernel store
    /// waiting for a page lock does.
    struct Blocking {
        released: Mutex<bool>,
        wake: std::sync::Condvar,
    }

    impl PageSink for Blocking {
        fn store(&self, _ino: u64, _offset: u64, _data: &[u8]) -> io::Result<()> {
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.wake.wait(released).unwrap();
            }
            Ok(())
        }
    }

    #[test]
    fn an_open_returns_while_its_store_is_blocked() {
        let files = Files {
            sizes: [(1, 10 * KIB)].into_iter().collect(),
            block: 4096,
            fail_from: None,
            intents: Mutex::default(),
        };
        let sink = Arc::new(Blocking {
            released: Mutex::new(false),
            wake: std::sync::Condvar::new(),
        });
        let warmer = Arc::new(Warmer::new(Arc::new(files), 1));
        warmer.connect(sink.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let opener = warmer.clone();
        std::thread::spawn(move || {
            opener.on_open(1);
            let _ = tx.send(());
        });
        let returned = rx.recv_timeout(Duration::from_secs(5));
        *sink.released.lock().unwrap() = true;
        sink.wake.notify_all();
        assert!(
            returned.is_ok(),
            "on_open waited for the page-cache store (a request thread would hang)"
        );
    }

    #[test]
    fn a_replay_stores_every_piece_fed_also_after_its_workers_left() {
        let (w, sink) = setup(
            &[(1, 256 * KIB), (2, 64 * KIB)],
            4096,
            None,
            Recorder::default(),
        );
        let replay = w
            .start_replay(ReadIntent::Warm, Arc::default())
            .expect("connected");
        let first = vec![(1, 0, 4096), (1, 128 * KIB, 1000), (2, 8192, 4096)];
        replay.feed(first.clone());
        settle(|| sink.stores().len() == 3);
        assert_eq!(replay.counts.get(), (3, 0));
        // Every worker has left; a later feed starts them again.
        assert_eq!(replay.running.load(Ordering::Acquire), 0);
        let later: Vec<Piece> = (0..20).map(|i| (1, i * 8192, 8192)).collect();
        replay.feed(later.clone());
        settle(|| sink.stores().len() == 23);
        let mut want: Vec<(u64, u64, u64)> = first
            .iter()
            .chain(&later)
            .map(|&(i, o, l)| (i, o, u64::from(l)))
            .collect();
        want.sort();
        assert_eq!(sink.stores(), want);
        assert!(sink.wrong.lock().unwrap().is_empty(), "{:?}", sink.wrong);
        assert_eq!(replay.counts.get(), (23, 0));
        assert!(w
            .source
            .intents
            .lock()
            .unwrap()
            .iter()
            .all(|&i| i == ReadIntent::Warm));
        // Pieces past the end of a file or of an unknown file count as
        // failed, and the rest goes on.
        replay.feed([(9, 0, 4096), (2, 0, 4096)]);
        replay.help();
        settle(|| replay.counts.get().0 == 24);
        assert_eq!(replay.counts.get(), (24, 1));
    }

    #[test]
    fn a_feeder_that_helps_stores_everything_itself_when_no_worker_runs() {
        let (w, sink) = setup(&[(1, 64 * KIB)], 4096, None, Recorder::default());
        let replay = w
            .start_replay(ReadIntent::Rewarm, Arc::default())
            .expect("connected");
        // As if every worker place were taken by others: feeding starts no
        // worker, and help() stores all of it on this thread.
        replay.running.store(replay.workers, Ordering::Release);
        replay.feed((0..16).map(|i| (1, i * 4096, 4096)));
        quiet();
        assert!(sink.stores().is_empty());
        replay.help();
        assert_eq!(sink.covered(1), 64 * KIB);
        assert_eq!(replay.counts.get(), (16, 0));
        let unconnected: Warmer<Files, Recorder> = Warmer::new(
            Arc::new(Files {
                sizes: BTreeMap::new(),
                block: 4096,
                fail_from: None,
                intents: Mutex::default(),
            }),
            2,
        );
        assert!(unconnected
            .start_replay(ReadIntent::Warm, Arc::default())
            .is_none());
    }

    #[test]
    fn a_file_a_replay_stores_whole_is_not_warmed_again_by_two_reads() {
        let size = 10 * 128 * KIB;
        let (w, sink) = setup(&[(7, size), (8, size)], 4096, None, Recorder::default());
        w.replaying_whole(7);
        w.on_read(7, 0, 4096);
        w.on_read(7, 5 * 128 * KIB, 4096);
        w.on_read(8, 0, 4096);
        w.on_read(8, 5 * 128 * KIB, 4096);
        settle(|| sink.covered(8) == size);
        quiet();
        assert_eq!(
            sink.covered(8),
            size,
            "a file outside the replay is warmed whole"
        );
        assert!(
            sink.covered(7) <= 2 * 128 * KIB,
            "only the chunks of the reads themselves: {:?}",
            sink.stores()
        );
        // Many misses later (the kernel dropped what the replay stored), it
        // is warmed again as any file warmed before.
        for i in 0..u64::from(REWARM_AFTER) {
            w.on_read(7, (i % 10) * 128 * KIB + 4096, 4096);
        }
        settle(|| sink.covered(7) == size);
        assert_eq!(sink.covered(7), size);
    }

    #[test]
    fn a_first_read_inside_a_big_block_stores_that_block() {
        let size = 3 * 1024 * KIB;
        let (w, sink) = setup(&[(3, size)], 1 << 20, None, Recorder::default());
        w.on_read(3, 1024 * KIB + 8192, 128 * 1024);
        settle(|| !sink.stores().is_empty());
        assert_eq!(sink.stores(), vec![(3, 1024 * KIB, 1024 * KIB)]);
        assert!(sink.wrong.lock().unwrap().is_empty());
    }

    #[test]
    fn small_files_unknown_inodes_and_unconnected_warmers_store_nothing() {
        let (w, sink) = setup(&[(1, 100 * KIB)], 4096, None, Recorder::default());
        for _ in 0..5 {
            w.on_read(1, 0, 4096);
            w.on_read(99, 0, 4096);
        }
        let unconnected: Warmer<Files, Recorder> = Warmer::new(
            Arc::new(Files {
                sizes: [(2, 10 << 20)].into_iter().collect(),
                block: 4096,
                fail_from: None,
                intents: Mutex::default(),
            }),
            2,
        );
        for i in 0..5 {
            unconnected.on_read(2, i * 4096, 4096);
        }
        quiet();
        assert!(sink.stores().is_empty(), "{:?}", sink.stores());
    }

    #[test]
    fn a_failing_read_or_store_stops_the_pass() {
        let size = 64 * 128 * KIB;
        let (w, sink) = setup(&[(5, size)], 4096, Some(8 * 128 * KIB), Recorder::default());
        w.on_read(5, 0, 4096);
        w.on_read(5, 4096, 4096);
        settle(|| sink.stores().len() >= 7);
        let stored = sink.stores().len();
        assert!(
            (7..=9).contains(&stored),
            "the pass goes on to the failing chunk and stops there: {stored} stores"
        );
        let failing = Recorder {
            fail: true,
            ..Recorder::default()
        };
        let (w, sink) = setup(&[(6, size)], 4096, None, failing);
        w.on_read(6, 0, 4096);
        w.on_read(6, 4096, 4096);
        quiet();
        // The pass ended; after enough misses it may run again, and still
        // nothing panics.
        for i in 0..u64::from(REWARM_AFTER) {
            w.on_read(6, i * 4096, 4096);
        }
        quiet();
        assert!(sink.stores().is_empty());
    }

    #[test]
    fn huge_files_are_warmed_a_window_ahead_of_a_sequential_reader() {
        let size = WHOLE_FILE_MAX + 5 * WINDOW;
        let (w, sink) = setup(&[(9, size)], 1 << 20, None, Recorder::default());
        w.on_read(9, 0, 1 << 20);
        w.on_read(9, 1 << 20, 1 << 20);
        settle(|| sink.covered(9) >= WINDOW);
        let covered = sink.covered(9);
        assert!(
            (WINDOW..=WINDOW + (2 << 20)).contains(&covered),
            "{covered} bytes warmed, expected about {WINDOW}"
        );
        let max_end = sink.stores().iter().map(|&(_, o, l)| o + l).max().unwrap();
        assert!(max_end <= (2 << 20) + WINDOW, "warmed up to {max_end}");
        // A read far away (not sequential) warms nothing more.
        let before = sink.stores().len();
        w.on_read(9, size / 2, 4096);
        quiet();
        assert_eq!(sink.stores().len(), before);
    }
}
