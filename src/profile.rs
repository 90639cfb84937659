//! Start-up profiles: which names an app looks up, which folders it lists
//! and which parts of which files it reads in its first seconds, kept in
//! the `--cache-dir` folder per image content and replayed the next time
//! the app is touched, in any daemon sharing the folder.
//!
//! - **Recording** starts when an app is first touched in this daemon (a
//!   lookup in or of its folder, or a listing of a folder of it) and lasts
//!   [`RECORD_FOR`]. Each name looked
//!   up (found or not), each folder listed and each file read or opened
//!   (the `isatty()` ioctl) becomes an entry, named by its path in the app
//!   folder, in first-access order; a file's entry lists the 128 KiB chunks
//!   read, in the order first read, and whether it was read twice (the
//!   warmer then stores all of it). At most [`MAX_ENTRIES`] entries and
//!   [`MAX_CHUNKS`] chunks per profile.
//! - **Merging**: when recording ends (or the daemon stops), the entries
//!   are merged into the stored profile: stored ones keep their place, new
//!   ones follow, chunks are added. An entry not seen in [`MAX_MISSES`]
//!   runs in a row leaves. The replay itself looks up, lists and probes
//!   every entry it reaches (see below), so replayed entries are seen in
//!   every run and only leave with their whole profile (the folder's size
//!   limit); a path that is gone is recorded missing at once.
//! - **Replay**: on the same first touch, a thread of its own (never a
//!   request thread) walks the stored profile through the mount itself, in
//!   order: it looks names up and lists folders as the app did, so the
//!   kernel holds those names, folders and inodes before the app asks (a
//!   second-launch namespace), and each file, the moment the kernel knows
//!   it (a page-cache store for an inode the kernel has not looked up is
//!   dropped), has its chunks queued, in first-read order, to the warmer's
//!   workers, which store them into the page cache on every core. Chunks
//!   of files read twice that the app was not seen reading follow, after
//!   the walk. At most [`REPLAY_MAX`] bytes; nothing waits for it.
//!
//! A profile is a hint, tied to one image content by a cheap identity
//! (size, the bytes at the payload's start, the last 64 KiB). A profile
//! that does not match (a collision, a damaged file) can only make the
//! replay look up names inside that app's own folder and store that app's
//! own bytes: paths are resolved under the app folder on this mount only
//! (no `..`; each entry's folder is checked to be a folder of this app on
//! this mount before anything in it is looked up or it is listed, so no
//! symbolic link leads the replay outside; a file found is checked the
//! same way), and every byte stored is read from the image as for any
//! read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::detect::Payload;
use crate::passthrough::KernelPassthrough;
use crate::tree::ReadIntent;
use crate::union::inode::{self, Slot, IMAGE_ROOT, SYNTH_SLOT};
use crate::union::{Listing, Union};
use crate::warm::{KernelWarmer, Piece, ReplayCounts, OPEN_STORE_MAX};

/// Replays running at once in one daemon: each walks the mount on a thread
/// of its own, so touching many apps at once (`ls /opt/apps/*/`) must not
/// start a thread per app. A touch beyond this replays nothing (the app is
/// still recorded).
pub const MAX_REPLAYS: usize = 2;

/// How long an app's accesses are recorded after it is first touched.
pub const RECORD_FOR: Duration = Duration::from_secs(30);
/// Entries per profile at most.
pub const MAX_ENTRIES: usize = 16_384;
/// Chunks per profile at most (8 GiB of 128 KiB chunks; replay stops at
/// [`REPLAY_MAX`] anyway).
pub const MAX_CHUNKS: usize = 65_536;
/// Longest path kept (bytes, relative to the app folder).
pub const MAX_PATH: usize = 4096;
/// Runs in a row without an entry being seen after which it leaves.
pub const MAX_MISSES: u8 = 4;
/// Bytes one replay stores at most.
pub const REPLAY_MAX: u64 = 1 << 30;
/// Granularity of the chunks a profile records.
pub const CHUNK: u64 = 128 << 10;
/// Paths of nodes remembered per recording at most (names looked up or
/// listed, to name the files later read).
const MAX_PATHS: usize = 65_536;

const MAGIC: &[u8; 8] = b"AIFSPRF2";
/// Kind, misses, path length, chunk count.
const ENTRY_HEAD: usize = 1 + 1 + 2 + 4;
/// Largest profile file: every entry at its longest path is not possible
/// within this, so recording also stops adding at [`MAX_PROFILE_BYTES`].
pub const MAX_PROFILE_BYTES: usize = 4 << 20;
/// Set in an entry's kind byte: the file was read twice, and is stored
/// whole (after the walk) when replayed.
const WHOLE: u8 = 0x80;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A name looked up and found (and, for a file, the chunks read).
    Found,
    /// A name looked up and not there.
    Missing,
    /// A folder listed.
    Listed,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Found => 0,
            Kind::Missing => 1,
            Kind::Listed => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Found),
            1 => Some(Kind::Missing),
            2 => Some(Kind::Listed),
            _ => None,
        }
    }
}

/// One entry of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What was done.
    pub kind: Kind,
    /// Path in the app folder, names joined by `/` (see [`valid_path`]).
    pub path: Vec<u8>,
    /// Chunks ([`CHUNK`] bytes) read, in the order first read.
    pub chunks: Vec<u32>,
    /// Read twice: stored whole when replayed.
    pub whole: bool,
    /// Runs since it was last seen.
    pub misses: u8,
}

/// Whether `path` may name something in an app folder: names joined by
/// `/`, none empty, `.` or `..`, no NUL, at most [`MAX_PATH`] bytes. The
/// empty path is the folder itself.
pub fn valid_path(path: &[u8]) -> bool {
    path.len() <= MAX_PATH
        && !path.contains(&0)
        && (path.is_empty()
            || path
                .split(|&b| b == b'/')
                .all(|n| !n.is_empty() && n != b"." && n != b".."))
}

/// Serialises a profile: magic, count, xxh3 of the entries, entries.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        body.push(e.kind.byte() | if e.whole { WHOLE } else { 0 });
        body.push(e.misses);
        body.extend_from_slice(&(e.path.len() as u16).to_le_bytes());
        body.extend_from_slice(&(e.chunks.len() as u32).to_le_bytes());
        body.extend_from_slice(&e.path);
        for c in &e.chunks {
            body.extend_from_slice(&c.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(20 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses a profile; `None` for anything damaged or over the bounds.
pub fn decode(data: &[u8]) -> Option<Vec<Entry>> {
    if data.len() > MAX_PROFILE_BYTES {
        return None;
    }
    let (head, mut body) = (data.get(..20)?, data.get(20..)?);
    if &head[..8] != MAGIC {
        return None;
    }
    let count = u32::from_le_bytes(head[8..12].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(head[12..20].try_into().ok()?);
    if count > MAX_ENTRIES || xxhash_rust::xxh3::xxh3_64(body) != sum {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut chunks_total = 0usize;
    for _ in 0..count {
        let h = body.get(..ENTRY_HEAD)?;
        let kind = Kind::from_byte(h[0] & !WHOLE)?;
        let path_len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let n = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        chunks_total = chunks_total.checked_add(n)?;
        if chunks_total > MAX_CHUNKS || (n > 0 && kind != Kind::Found) {
            return None;
        }
        let path = body.get(ENTRY_HEAD..ENTRY_HEAD + path_len)?.to_vec();
        let raw = body.get(ENTRY_HEAD + path_len..ENTRY_HEAD + path_len + 4 * n)?;
        if !valid_path(&path) {
            return None;
        }
        out.push(Entry {
            kind,
            path,
            chunks: raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            whole: h[0] & WHOLE != 0,
            misses: h[1],
        });
        body = &body[ENTRY_HEAD + path_len + 4 * n..];
    }
    body.is_empty().then_some(out)
}

/// Merges this run's entries (in first-access order, misses 0) into a
/// stored profile: stored entries keep their place (chunks added, or a
/// miss counted), new ones follow, entries missed [`MAX_MISSES`] times
/// leave. Bounded by [`MAX_ENTRIES`], [`MAX_CHUNKS`] and
/// [`MAX_PROFILE_BYTES`] encoded.
pub fn merge(old: &[Entry], run: &[Entry]) -> Vec<Entry> {
    let now: HashMap<(Kind, &[u8]), &Entry> = run
        .iter()
        .map(|e| ((e.kind, e.path.as_slice()), e))
        .collect();
    let mut out: Vec<Entry> = Vec::with_capacity(old.len() + run.len());
    let mut seen: HashSet<(Kind, &[u8])> = HashSet::new();
    let (mut chunks_total, mut bytes) = (0usize, 20usize);
    let mut push = |out: &mut Vec<Entry>, mut e: Entry| {
        let head = ENTRY_HEAD + e.path.len();
        if out.len() >= MAX_ENTRIES || bytes + head > MAX_PROFILE_BYTES {
            return;
        }
        e.chunks
            .truncate((MAX_CHUNKS - chunks_total).min((MAX_PROFILE_BYTES - bytes - head) / 4));
        chunks_total += e.chunks.len();
        bytes += head + 4 * e.chunks.len();
        out.push(e);
    };
    for e in old {
        let key = (e.kind, e.path.as_slice());
        if !seen.insert(key) {
            continue;
        }
        match now.get(&key) {
            Some(r) => {
                let mut merged = e.clone();
                let have: HashSet<u32> = merged.chunks.iter().copied().collect();
                merged
                    .chunks
                    .extend(r.chunks.iter().filter(|c| !have.contains(c)));
                merged.whole |= r.whole;
                merged.misses = 0;
                push(&mut out, merged);
            }
            None if e.misses + 1 < MAX_MISSES => push(
                &mut out,
                Entry {
                    misses: e.misses + 1,
                    ..e.clone()
                },
            ),
            None => {}
        }
    }
    for r in run {
        if seen.insert((r.kind, r.path.as_slice())) {
            push(&mut out, r.clone());
        }
    }
    out
}

/// One entry being recorded.
struct RecEntry {
    entry: Entry,
    /// Chunks already listed, and reads seen (a file read twice is stored
    /// whole by the warmer, so later reads never reach the daemon).
    have: HashSet<u32>,
    reads: u32,
}

/// What one app did so far in this daemon.
struct Recording {
    until: Instant,
    /// Node → its path in the app folder, from lookups and listings.
    paths: HashMap<u64, Vec<u8>>,
    /// (kind, path) → index in `order`.
    index: HashMap<(Kind, Vec<u8>), usize>,
    order: Vec<RecEntry>,
    /// Bytes the entries would take stored, and chunks listed.
    bytes: usize,
    chunks: usize,
    /// The image's identity, once the profile thread has computed it.
    identity: Option<[u8; 32]>,
    /// The stored profile has been looked for (and `startup_files` filled).
    loaded: bool,
    /// Paths of the files the stored profile says the app reads as it
    /// starts: their opens may pass through to whole copies.
    startup_files: HashSet<Vec<u8>>,
}

impl Recording {
    fn new() -> Recording {
        Recording {
            until: Instant::now() + RECORD_FOR,
            paths: HashMap::new(),
            index: HashMap::new(),
            order: Vec::new(),
            bytes: 0,
            chunks: 0,
            identity: None,
            loaded: false,
            startup_files: HashSet::new(),
        }
    }

    /// The path of `node`: the app folder's own is empty.
    fn path_of(&self, node: u64) -> Option<&[u8]> {
        if node == IMAGE_ROOT {
            Some(&[])
        } else {
            self.paths.get(&node).map(Vec::as_slice)
        }
    }

    /// `name` in the folder `parent`, if the folder's path is known.
    fn child_path(&self, parent: u64, name: &[u8]) -> Option<Vec<u8>> {
        let dir = self.path_of(parent)?;
        let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
        if !dir.is_empty() {
            p.extend_from_slice(dir);
            p.push(b'/');
        }
        p.extend_from_slice(name);
        valid_path(&p).then_some(p)
    }

    fn remember(&mut self, node: u64, path: Vec<u8>) {
        if self.paths.len() < MAX_PATHS || self.paths.contains_key(&node) {
            self.paths.insert(node, path);
        }
    }

    /// The entry for (`kind`, `path`), added if recording is still open and
    /// the bounds allow.
    fn entry(&mut self, kind: Kind, path: &[u8]) -> Option<&mut RecEntry> {
        let key = (kind, path.to_vec());
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let cost = ENTRY_HEAD + path.len();
                if self.order.len() >= MAX_ENTRIES
                    || self.bytes + cost > MAX_PROFILE_BYTES / 2
                    || Instant::now() >= self.until
                {
                    return None;
                }
                self.bytes += cost;
                self.order.push(RecEntry {
                    entry: Entry {
                        kind,
                        path: path.to_vec(),
                        chunks: Vec::new(),
                        whole: false,
                        misses: 0,
                    },
                    have: HashSet::new(),
                    reads: 0,
                });
                self.index.insert(key, self.order.len() - 1);
                self.order.len() - 1
            }
        };
        self.order.get_mut(i)
    }

    /// Records the chunks of `[lo, hi)` of the file at `path`; `reads` is 1
    /// for a read, 0 for an open.
    fn read(&mut self, path: &[u8], lo: u64, hi: u64, reads: u32) {
        if self.entry(Kind::Found, path).is_none() {
            return;
        }
        let room = MAX_CHUNKS
            .saturating_sub(self.chunks)
            .min((MAX_PROFILE_BYTES / 2).saturating_sub(self.bytes) / 4);
        let Some(e) = self.entry(Kind::Found, path) else {
            return;
        };
        e.reads += reads;
        e.entry.whole |= e.reads >= 2;
        let mut added = 0;
        for c in lo / CHUNK..hi.div_ceil(CHUNK) {
            let Ok(c) = u32::try_from(c) else { break };
            if added >= room {
                break;
            }
            if e.have.insert(c) {
                e.entry.chunks.push(c);
                added += 1;
            }
        }
        self.chunks += added;
        self.bytes += 4 * added;
    }
}

/// Work for the profile thread.
enum Msg {
    /// An app was touched for the first time: replay its profile, and end
    /// its recording after [`RECORD_FOR`].
    Touched(Slot),
}

/// What replays did, for `-v` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Replays started.
    pub replays: u64,
    /// Names looked up and found.
    pub found: u64,
    /// Names looked up and not there.
    pub missing: u64,
    /// Folders listed.
    pub listed: u64,
    /// Pieces queued to be stored, and their bytes.
    pub pieces: u64,
    /// Bytes of those pieces.
    pub bytes: u64,
    /// Pieces stored into the page cache.
    pub stored: u64,
    /// Pieces whose read or store failed.
    pub failed: u64,
    /// Files prepared to pass through to their whole copies instead.
    pub passthrough: u64,
}

/// Start-up profiles of one daemon (see the module documentation).
pub struct Profiles {
    union: Arc<Union>,
    warmer: Arc<KernelWarmer>,
    /// One bit per slot: touched in this daemon.
    touched: Vec<AtomicU64>,
    recordings: Mutex<HashMap<Slot, Recording>>,
    thread: OnceLock<Option<Sender<Msg>>>,
    stats: Mutex<ReplayStats>,
    /// Pieces stored and failed by every replay's workers.
    counts: Arc<ReplayCounts>,
    /// Replays running now (at most [`MAX_REPLAYS`]).
    running: Arc<AtomicUsize>,
    /// Signalled when a recording's stored profile has been looked for.
    loaded: Condvar,
    /// Passthrough of start-up files kept whole, where the kernel offers it.
    passthrough: Option<Arc<KernelPassthrough>>,
}

/// How long an open of an app's file waits for the app's stored profile to
/// be looked for (it is, on the profile thread, from the app's first
/// lookup on): to know whether the file may pass through.
const LOAD_WAIT: Duration = Duration::from_millis(200);

/// A place among the [`MAX_REPLAYS`] replays that may run at once, given
/// back when dropped (the replay thread ends).
struct ReplayPlace(Arc<AtomicUsize>);

impl ReplayPlace {
    /// A place if fewer than `max` replays hold one.
    fn take(running: &Arc<AtomicUsize>, max: usize) -> Option<ReplayPlace> {
        running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ReplayPlace(running.clone()))
    }
}

impl Drop for ReplayPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Profiles {
    /// Profiles kept in the cache folder of `union`'s block cache; `None`
    /// without `--cache-dir`. With `passthrough`, the files a replayed
    /// profile lists as read at start-up are prepared to pass through to
    /// their whole copies (see [`crate::passthrough`]).
    pub fn new(
        union: Arc<Union>,
        warmer: Arc<KernelWarmer>,
        passthrough: Option<Arc<KernelPassthrough>>,
    ) -> Option<Arc<Profiles>> {
        union.cache().disk()?;
        Some(Arc::new(Profiles {
            union,
            warmer,
            touched: (0..(1usize << 16) / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            recordings: Mutex::new(HashMap::new()),
            thread: OnceLock::new(),
            stats: Mutex::new(ReplayStats::default()),
            counts: Arc::default(),
            running: Arc::default(),
            loaded: Condvar::new(),
            passthrough,
        }))
    }

    /// Whether the stored profile of `ino`'s app lists it as a file read at
    /// start-up. Waits (at most [`LOAD_WAIT`]) for the profile to be
    /// looked for if the app was touched only just now.
    pub fn read_at_start(&self, ino: u64) -> bool {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT || node == IMAGE_ROOT {
            return false;
        }
        let deadline = Instant::now() + LOAD_WAIT;
        let mut recs = self.lock();
        loop {
            let Some(r) = recs.get(&slot) else {
                return false;
            };
            if r.loaded {
                return r
                    .paths
                    .get(&node)
                    .is_some_and(|p| r.startup_files.contains(p));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            recs = self
                .loaded
                .wait_timeout(recs, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Marks `slot`'s stored profile as looked for, with the files it lists
    /// as read at start-up.
    fn mark_loaded(&self, slot: Slot, entries: Option<&[Entry]>) {
        let files: HashSet<Vec<u8>> = entries
            .unwrap_or_default()
            .iter()
            .filter(|e| e.kind == Kind::Found && (!e.chunks.is_empty() || e.whole))
            .map(|e| e.path.clone())
            .collect();
        if let Some(r) = self.lock().get_mut(&slot) {
            r.loaded = true;
            r.startup_files = files;
        }
        self.loaded.notify_all();
    }

    /// Called after a lookup of `name` in `parent` answered with `ino`: the
    /// first one in an app starts its recording and replay.
    pub fn on_lookup(self: &Arc<Self>, parent: u64, name: &[u8], ino: u64) {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            return;
        }
        self.touch(slot);
        let (pslot, pnode) = inode::decode(parent);
        if pslot != slot || node == IMAGE_ROOT {
            return;
        }
        let mut recs = self.lock();
        let Some(r) = recs.get_mut(&slot) else { return };
        let Some(path) = r.child_path(pnode, name) else {
            return;
        };
        r.entry(Kind::Found, &path);
        r.remember(node, path);
    }

    /// The first touch of `slot` in this daemon starts its recording and
    /// replay.
    fn touch(self: &Arc<Self>, slot: Slot) {
        let bit = 1u64 << (slot % 64);
        let word = &self.touched[usize::from(slot / 64)];
        let first = word.load(Ordering::Relaxed) & bit == 0
            && word.fetch_or(bit, Ordering::Relaxed) & bit == 0;
        if first {
            self.lock().insert(slot, Recording::new());
            if let Some(tx) = self.thread() {
                let _ = tx.send(Msg::Touched(slot));
            }
        }
    }

    /// Called after a lookup of `name` in `parent` found nothing.
    pub fn on_missing(&self, parent: u64, name: &[u8]) {
        let (slot, node) = inode::decode(parent);
        if slot == SYNTH_SLOT {
            return;
        }
        let mut recs = self.lock();
        let Some(r) = recs.get_mut(&slot) else { return };
        if let Some(path) = r.child_path(node, name) {
            r.entry(Kind::Missing, &path);
        }
    }

    /// Called when the folder `dir` is listed from `offset` on: a listing
    /// from the start is an entry, and the names listed name the files
    /// the app may then open without a lookup. Listing an app's folder
    /// touches the app as a lookup does (the folder itself may have come
    /// with the root's listing, without a lookup).
    pub fn on_listed(self: &Arc<Self>, dir: u64, offset: u64, listing: &[Listing]) {
        let (slot, node) = inode::decode(dir);
        if slot == SYNTH_SLOT {
            return;
        }
        self.touch(slot);
        let mut recs = self.lock();
        let Some(r) = recs.get_mut(&slot) else { return };
        let Some(path) = r.path_of(node).map(<[u8]>::to_vec) else {
            return;
        };
        if offset == 0 {
            r.entry(Kind::Listed, &path);
        }
        for l in listing {
            let (s, child) = inode::decode(l.ino);
            if s == slot && child != IMAGE_ROOT && !r.paths.contains_key(&child) {
                if let Some(p) = r.child_path(node, &l.name) {
                    r.remember(child, p);
                }
            }
        }
    }

    /// Called after a read of `len` bytes of `ino` at `offset` was answered.
    /// Returns whether `ino`'s app is being recorded (a start-up read).
    pub fn on_read(&self, ino: u64, offset: u64, len: u32) -> bool {
        self.record(ino, offset, offset.saturating_add(u64::from(len)), 1)
    }

    /// Called when a program opened `ino` (its `isatty()` ioctl): the
    /// warmer stores small files whole at open, so the replay will too.
    pub fn on_open(&self, ino: u64) {
        self.record(ino, 0, OPEN_STORE_MAX, 0);
    }

    /// Records a read of `lo..hi` of `ino`; returns whether its app is
    /// being recorded.
    fn record(&self, ino: u64, lo: u64, hi: u64, reads: u32) -> bool {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT || node == IMAGE_ROOT || lo >= hi {
            return false;
        }
        let mut recs = self.lock();
        let Some(r) = recs.get_mut(&slot) else {
            return false;
        };
        if let Some(path) = r.paths.get(&node).cloned() {
            r.read(&path, lo, hi, reads);
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, Recording>> {
        self.recordings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The profile thread's queue, started on first use (after the fork).
    fn thread(self: &Arc<Self>) -> Option<&Sender<Msg>> {
        self.thread
            .get_or_init(|| {
                let (tx, rx) = channel::<Msg>();
                let me = Arc::downgrade(self);
                let spawned =
                    std::thread::Builder::new()
                        .name("profiles".into())
                        .spawn(move || {
                            let mut due: VecDeque<(Instant, Slot)> = VecDeque::new();
                            loop {
                                let wait = due
                                    .front()
                                    .map(|(t, _)| t.saturating_duration_since(Instant::now()))
                                    .unwrap_or(Duration::from_secs(3600));
                                let msg = rx.recv_timeout(wait);
                                let Some(me) = me.upgrade() else { return };
                                match msg {
                                    Ok(Msg::Touched(slot)) => {
                                        me.start(slot);
                                        due.push_back((Instant::now() + RECORD_FOR, slot));
                                    }
                                    Err(RecvTimeoutError::Timeout) => {}
                                    Err(RecvTimeoutError::Disconnected) => return,
                                }
                                while due.front().is_some_and(|(t, _)| *t <= Instant::now()) {
                                    if let Some((_, slot)) = due.pop_front() {
                                        me.finish(slot);
                                    }
                                }
                            }
                        });
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        crate::log::warn(format_args!("cannot start the profile thread: {e}"));
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Computes the app's identity and starts replaying its stored profile
    /// on a thread of its own.
    fn start(self: &Arc<Self>, slot: Slot) {
        let Some(identity) = self.identity(slot) else {
            self.mark_loaded(slot, None);
            return;
        };
        if let Some(r) = self.lock().get_mut(&slot) {
            r.identity = Some(identity);
        }
        let entries = self.load(&identity);
        self.mark_loaded(slot, entries.as_deref());
        let Some(entries) = entries else {
            return;
        };
        let Ok(app) = self.union.app(slot) else {
            return;
        };
        let folder = self.union.mountpoint().join(OsStr::from_bytes(&app.name));
        let Some(place) = ReplayPlace::take(&self.running, MAX_REPLAYS) else {
            crate::log::debug(format_args!(
                "{}: not replaying its start-up profile, {MAX_REPLAYS} replays are running",
                folder.display()
            ));
            return;
        };
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("profile-replay".into())
            .spawn(move || {
                me.replay(slot, &folder, &entries);
                drop(place);
            });
        if let Err(e) = spawned {
            crate::log::debug(format_args!("cannot start a profile replay: {e}"));
        }
    }

    /// Walks `entries` under the app folder `folder` of `slot` (see the
    /// module documentation) and has the files' chunks stored.
    fn replay(&self, slot: Slot, folder: &std::path::Path, entries: &[Entry]) {
        let started = Instant::now();
        let mut stats = ReplayStats::default();
        let Some(replay) = self
            .warmer
            .start_replay(ReadIntent::Replay, self.counts.clone())
        else {
            return;
        };
        // The folder must be this mount's folder of this app: its inode
        // number says so (a mount stacked on ours would give another).
        let dev = match std::fs::symlink_metadata(folder) {
            Ok(m) if m.ino() == inode::encode(slot, IMAGE_ROOT) => m.dev(),
            _ => return,
        };
        // Whether `rel` is a folder of this app on this mount: checked before
        // anything is looked up in it or it is listed, so that a path
        // through a symbolic link (a profile that does not fit the image)
        // never makes the replay look at anything outside.
        let ours = |m: &std::fs::Metadata| m.dev() == dev && inode::decode(m.ino()).0 == slot;
        let mut checked: Vec<u8> = Vec::new();
        let mut folder_ok = |rel: &[u8]| {
            if rel.is_empty() || rel == checked.as_slice() {
                return true;
            }
            let ok = std::fs::symlink_metadata(folder.join(OsStr::from_bytes(rel)))
                .is_ok_and(|m| m.is_dir() && ours(&m));
            if ok {
                checked = rel.to_vec();
            }
            ok
        };
        let mut budget = REPLAY_MAX;
        let mut rest: Vec<Piece> = Vec::new();
        for e in entries {
            let parent = match e.path.iter().rposition(|&b| b == b'/') {
                Some(at) => &e.path[..at],
                None => &[][..],
            };
            let dir = if e.kind == Kind::Listed {
                &e.path[..]
            } else {
                parent
            };
            if !folder_ok(dir) {
                continue;
            }
            let path = folder.join(OsStr::from_bytes(&e.path));
            match e.kind {
                Kind::Missing => match std::fs::symlink_metadata(&path) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break,
                    Err(_) => stats.missing += 1,
                    Ok(_) => {}
                },
                Kind::Listed => {
                    if let Ok(list) = std::fs::read_dir(&path) {
                        list.for_each(drop);
                        stats.listed += 1;
                    }
                }
                Kind::Found => {
                    let meta = match std::fs::symlink_metadata(&path) {
                        Ok(m) if ours(&m) => m,
                        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break,
                        _ => continue,
                    };
                    stats.found += 1;
                    if !meta.is_file() || (e.chunks.is_empty() && !e.whole) {
                        continue;
                    }
                    let Some((size, block)) = self.union.file_extent(meta.ino()) else {
                        continue;
                    };
                    if e.whole {
                        self.warmer.replaying_whole(meta.ino());
                    }
                    let (now, later) = pieces(meta.ino(), size, block, e, &mut budget);
                    if let Some(pt) = &self.passthrough {
                        // Passed through if its whole copy is there; its
                        // pieces are stored only if it is not.
                        let all: Vec<Piece> = now.iter().chain(&later).copied().collect();
                        let r = replay.clone();
                        if pt.prepare(meta.ino(), move || r.feed(all)) {
                            stats.passthrough += 1;
                            continue;
                        }
                    }
                    stats.pieces += now.len() as u64;
                    stats.bytes += now.iter().map(|p| u64::from(p.2)).sum::<u64>();
                    replay.feed(now);
                    rest.extend(later);
                }
            }
        }
        stats.pieces += rest.len() as u64;
        stats.bytes += rest.iter().map(|p| u64::from(p.2)).sum::<u64>();
        replay.feed(rest);
        replay.help();
        crate::log::debug(format_args!(
            "replayed the start-up profile of {}: {} found, {} missing, {} listed, {} pieces \
             ({} bytes) queued, {} file(s) to pass through, in {} ms",
            folder.display(),
            stats.found,
            stats.missing,
            stats.listed,
            stats.pieces,
            stats.bytes,
            stats.passthrough,
            started.elapsed().as_millis()
        ));
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        all.replays += 1;
        all.found += stats.found;
        all.missing += stats.missing;
        all.listed += stats.listed;
        all.pieces += stats.pieces;
        all.bytes += stats.bytes;
        all.passthrough += stats.passthrough;
    }

    /// Ends the recording of `slot` and merges it into the stored profile.
    fn finish(&self, slot: Slot) {
        let Some(rec) = self.lock().remove(&slot) else {
            return;
        };
        let Some(identity) = rec.identity.or_else(|| self.identity(slot)) else {
            return;
        };
        if rec.order.is_empty() {
            return;
        }
        let run: Vec<Entry> = rec.order.into_iter().map(|r| r.entry).collect();
        let old = self.load(&identity).unwrap_or_default();
        let merged = merge(&old, &run);
        if let Some(disk) = self.union.cache().disk() {
            let _ = disk
                .store()
                .write_aux(&file_name(&identity), &encode(&merged));
        }
    }

    /// Ends every recording now (at unmount).
    pub fn finish_all(&self) {
        let slots: Vec<Slot> = self.lock().keys().copied().collect();
        for slot in slots {
            self.finish(slot);
        }
    }

    /// What replays did so far.
    pub fn stats(&self) -> ReplayStats {
        let mut s = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        (s.stored, s.failed) = self.counts.get();
        s
    }

    fn load(&self, identity: &[u8; 32]) -> Option<Vec<Entry>> {
        let disk = self.union.cache().disk()?;
        decode(
            &disk
                .store()
                .read_aux(&file_name(identity), MAX_PROFILE_BYTES as u64)?,
        )
    }

    /// The image's identity: its size, 4 KiB at the payload's start and its
    /// last 64 KiB.
    fn identity(&self, slot: Slot) -> Option<[u8; 32]> {
        let app = self.union.app(slot).ok()?;
        let file = File::open(&app.source).ok()?;
        let len = file.metadata().ok()?.len();
        let start = match &app.detected.payload {
            Payload::SquashFs { offset, .. } | Payload::Dwarfs { offset, .. } => *offset,
            Payload::Iso9660 { .. } => 32768,
        };
        let mut h = Sha256::new();
        h.update(b"appimagefs profile v1\0");
        h.update(len.to_le_bytes());
        for (at, n) in [(start, 4096u64), (len.saturating_sub(65536), 65536)] {
            let mut buf = vec![0u8; n.min(len.saturating_sub(at)) as usize];
            file.read_exact_at(&mut buf, at).ok()?;
            h.update(&buf);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&h.finalize());
        Some(id)
    }
}

/// The pieces to store for `e`, the file `ino` of `size` bytes in an image
/// of `block`-byte blocks: its chunks in first-read order now, and (for a
/// file read twice) the rest of it later; `budget` bytes at most.
fn pieces(
    ino: u64,
    size: u64,
    block: u32,
    e: &Entry,
    budget: &mut u64,
) -> (Vec<Piece>, Vec<Piece>) {
    let unit = u64::from(block.clamp(CHUNK as u32, 1 << 20));
    let mut done: HashSet<u64> = HashSet::new();
    let mut take = |k: u64, out: &mut Vec<Piece>| {
        let at = k * unit;
        if at >= size || *budget == 0 || !done.insert(k) {
            return;
        }
        let len = unit.min(size - at).min(*budget);
        *budget -= len;
        out.push((ino, at, len as u32));
    };
    let mut now = Vec::new();
    for &c in &e.chunks {
        take(u64::from(c) * CHUNK / unit, &mut now);
    }
    let mut later = Vec::new();
    if e.whole {
        for k in 0..size.div_ceil(unit) {
            take(k, &mut later);
        }
    }
    (now, later)
}

fn file_name(identity: &[u8; 32]) -> String {
    let hex: String = identity.iter().map(|b| format!("{b:02x}")).collect();
    format!("profile-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: Kind, path: &str, chunks: &[u32], whole: bool, misses: u8) -> Entry {
        Entry {
            kind,
            path: path.as_bytes().to_vec(),
            chunks: chunks.to_vec(),
            whole,
            misses,
        }
    }

    #[test]
    fn replays_take_at_most_their_places_and_give_them_back() {
        let running = Arc::new(AtomicUsize::new(0));
        let places: Vec<_> = (0..MAX_REPLAYS)
            .map(|_| ReplayPlace::take(&running, MAX_REPLAYS).expect("a free place"))
            .collect();
        assert!(ReplayPlace::take(&running, MAX_REPLAYS).is_none());
        assert_eq!(running.load(Ordering::SeqCst), MAX_REPLAYS);
        drop(places);
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert!(ReplayPlace::take(&running, MAX_REPLAYS).is_some());
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn profiles_round_trip_and_damage_is_refused() {
        let entries = vec![
            e(Kind::Found, "usr/lib/liba.so", &[3, 0, 7], true, 0),
            e(Kind::Missing, "usr/lib/libnone.so", &[], false, 2),
            e(Kind::Listed, "usr/lib", &[], false, 0),
            e(Kind::Found, "usr", &[], false, 3),
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes), Some(entries.clone()));
        for at in [0, 9, 15, 20, 25, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad), None, "byte {at} flipped");
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&[]), None);
        // Paths that could leave the app folder, and chunks on an entry
        // that is no file, are refused even under a valid checksum.
        for path in [
            "../etc/passwd",
            "usr/../../x",
            "/abs",
            "a//b",
            "a/./b",
            "a\0b",
        ] {
            let bad = encode(&[e(Kind::Found, path, &[], false, 0)]);
            assert_eq!(decode(&bad), None, "{path:?}");
        }
        assert_eq!(
            decode(&encode(&[e(Kind::Missing, "x", &[1], false, 0)])),
            None
        );
        let too_many: Vec<Entry> = (0..2)
            .map(|i| {
                e(
                    Kind::Found,
                    &format!("f{i}"),
                    &vec![0; MAX_CHUNKS / 2 + 1],
                    false,
                    0,
                )
            })
            .collect();
        assert_eq!(decode(&encode(&too_many)), None);
    }

    #[test]
    fn runs_merge_and_unseen_entries_age_out() {
        let old = vec![
            e(Kind::Found, "a", &[1, 0], false, 0),
            e(Kind::Found, "b", &[], false, MAX_MISSES - 1),
            e(Kind::Missing, "c", &[], false, 1),
            e(Kind::Listed, "a", &[], false, 0),
        ];
        let run = vec![
            e(Kind::Found, "d", &[0], false, 0),
            e(Kind::Found, "a", &[0, 5, 1], true, 0),
            e(Kind::Listed, "a", &[], false, 0),
        ];
        assert_eq!(
            merge(&old, &run),
            vec![
                e(Kind::Found, "a", &[1, 0, 5], true, 0),
                e(Kind::Missing, "c", &[], false, 2),
                e(Kind::Listed, "a", &[], false, 0),
                e(Kind::Found, "d", &[0], false, 0),
            ],
            "a widened in first-read order, b aged out, c missed once more, d appended"
        );
    }

    #[test]
    fn a_profile_never_grows_past_its_bounds() {
        let run: Vec<Entry> = (0..MAX_ENTRIES + 10)
            .map(|n| e(Kind::Found, &format!("f{n}"), &[0, 1, 2, 3, 4, 5], false, 0))
            .collect();
        let merged = merge(&[], &run);
        assert_eq!(merged.len(), MAX_ENTRIES);
        assert_eq!(
            merged.iter().map(|e| e.chunks.len()).sum::<usize>(),
            MAX_CHUNKS
        );
        assert!(decode(&encode(&merged)).is_some());
        // Long paths: the encoded size is the bound.
        let long = "d/".repeat(MAX_PATH / 2 - 4) + "f";
        let run: Vec<Entry> = (0..2000)
            .map(|n| e(Kind::Found, &format!("{long}{n}"), &[1, 2], false, 0))
            .collect();
        assert!(run.iter().all(|e| valid_path(&e.path)));
        let merged = merge(&[], &run);
        assert!(merged.len() < 2000);
        assert!(encode(&merged).len() <= MAX_PROFILE_BYTES);
        assert!(decode(&encode(&merged)).is_some());
    }

    #[test]
    fn a_recording_names_files_by_path_and_lists_chunks_in_first_read_order() {
        let mut r = Recording::new();
        // usr (node 5) looked up in the app folder, lib (6) in usr; lib
        // listed, naming liba.so (7) without a lookup.
        let usr = r.child_path(IMAGE_ROOT, b"usr").unwrap();
        r.entry(Kind::Found, &usr);
        r.remember(5, usr);
        let lib = r.child_path(5, b"lib").unwrap();
        r.remember(6, lib.clone());
        assert_eq!(r.child_path(6, b"liba.so").unwrap(), b"usr/lib/liba.so");
        assert_eq!(r.child_path(99, b"x"), None, "unknown folder");
        assert_eq!(r.child_path(6, b".."), None);
        let liba = r.child_path(6, b"liba.so").unwrap();
        r.read(&liba, 5 * CHUNK + 10, 5 * CHUNK + 20, 1);
        assert!(!r.order[1].entry.whole);
        r.read(&liba, 0, 2 * CHUNK + 1, 1);
        let entries: Vec<Entry> = r.order.iter().map(|x| x.entry.clone()).collect();
        assert_eq!(
            entries,
            vec![
                e(Kind::Found, "usr", &[], false, 0),
                e(Kind::Found, "usr/lib/liba.so", &[5, 0, 1, 2], true, 0),
            ]
        );
    }

    #[test]
    fn a_files_chunks_are_replayed_in_read_order_and_the_rest_after() {
        let entry = e(Kind::Found, "f", &[9, 2, 3, 40], true, 0);
        let mut budget = u64::MAX;
        // 128 KiB blocks: one piece per chunk; chunk 40 is past the end.
        let size = 10 * CHUNK + 5;
        let (now, later) = pieces(7, size, 128 << 10, &entry, &mut budget);
        let offsets = |v: &[Piece]| v.iter().map(|p| p.1 / CHUNK).collect::<Vec<_>>();
        assert_eq!(offsets(&now), [9, 2, 3]);
        assert_eq!(offsets(&later), [0, 1, 4, 5, 6, 7, 8, 10]);
        assert_eq!(
            later.last().unwrap().2,
            5,
            "the last piece ends with the file"
        );
        // 1 MiB blocks: chunks map to the block holding them, once each.
        let (now, later) = pieces(7, 3 << 20, 1 << 20, &entry, &mut budget);
        assert_eq!(now, vec![(7, 1 << 20, 1 << 20), (7, 0, 1 << 20)]);
        assert_eq!(later, vec![(7, 2 << 20, 1 << 20)]);
        // The budget stops it, mid-piece.
        let mut budget = 3 * CHUNK / 2;
        let (now, later) = pieces(7, size, 128 << 10, &entry, &mut budget);
        assert_eq!(
            now,
            vec![
                (7, 9 * CHUNK, CHUNK as u32),
                (7, 2 * CHUNK, (CHUNK / 2) as u32)
            ]
        );
        assert!(later.is_empty());
        assert_eq!(budget, 0);
    }
}
