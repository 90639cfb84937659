//! Start-up profiles: which files, and which ranges of them, an app reads
//! in its first seconds, kept in the `--cache-dir` folder per image content
//! and replayed as page-cache warming the next time the app is touched, in
//! any daemon sharing the folder.
//!
//! - **Recording** starts when an app is first touched in this daemon (a
//!   lookup in or of its folder) and lasts [`RECORD_FOR`]: every read and
//!   every open (the `isatty()` ioctl) of one of its files widens that
//!   file's range. At most [`MAX_ENTRIES`] files per profile.
//! - **Merging and ageing**: when recording ends (or the daemon stops),
//!   the ranges are merged into the stored profile; a file not read in
//!   [`MAX_MISSES`] runs in a row is dropped from it.
//! - **Replay**: on the same first touch, the stored profile (if any) is
//!   read on the profile thread and its ranges handed to the warmer, whose
//!   workers (one per core) store them into the page cache; at most
//!   [`REPLAY_MAX`] bytes. Nothing on a request thread waits for it.
//!
//! A profile is a hint and names files by the image reader's node ids, so
//! it is tied to one image content by a cheap identity (size, the bytes at
//! the payload's start, the last 64 KiB). A profile that does not match
//! (a collision, a damaged file) can only make the warmer store the wrong
//! files' *own* bytes: every byte stored is read from the image as for any
//! read.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::detect::Payload;
use crate::tree::ReadIntent;
use crate::union::inode::{self, Slot, IMAGE_ROOT, SYNTH_SLOT};
use crate::union::Union;
use crate::warm::{Gate, KernelWarmer, Piece, OPEN_STORE_MAX};

/// How long an app's reads are recorded after it is first touched.
pub const RECORD_FOR: Duration = Duration::from_secs(30);
/// Files remembered per profile at most.
pub const MAX_ENTRIES: usize = 16_384;
/// Runs in a row without reading a file after which it leaves the profile.
pub const MAX_MISSES: u8 = 4;
/// Bytes one replay stores at most.
pub const REPLAY_MAX: u64 = 1 << 30;

const MAGIC: &[u8; 8] = b"AIFSPRF1";
const ENTRY_LEN: usize = 8 + 8 + 8 + 1;

/// One file of a profile: its node id in the image, the range read, and
/// for how many runs in a row it was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The image reader's node id.
    pub node: u64,
    /// First byte read.
    pub lo: u64,
    /// End of the last byte read.
    pub hi: u64,
    /// Runs since it was last read.
    pub misses: u8,
}

/// Serialises a profile: magic, count, xxh3 of the entries, entries.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        body.extend_from_slice(&e.node.to_le_bytes());
        body.extend_from_slice(&e.lo.to_le_bytes());
        body.extend_from_slice(&e.hi.to_le_bytes());
        body.push(e.misses);
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
    let (head, body) = (data.get(..20)?, data.get(20..)?);
    if &head[..8] != MAGIC {
        return None;
    }
    let count = u32::from_le_bytes(head[8..12].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(head[12..20].try_into().ok()?);
    if count > MAX_ENTRIES
        || body.len() != count * ENTRY_LEN
        || xxhash_rust::xxh3::xxh3_64(body) != sum
    {
        return None;
    }
    let u64_at =
        |c: &[u8], at: usize| u64::from_le_bytes(c[at..at + 8].try_into().unwrap_or_default());
    body.chunks_exact(ENTRY_LEN)
        .map(|c| {
            let e = Entry {
                node: u64_at(c, 0),
                lo: u64_at(c, 8),
                hi: u64_at(c, 16),
                misses: c[24],
            };
            (e.lo < e.hi).then_some(e)
        })
        .collect()
}

/// Merges this run's ranges (in first-read order) into a stored profile:
/// stored files keep their place (ranges widened, or a miss counted), new
/// ones follow, files missed [`MAX_MISSES`] times leave.
pub fn merge(old: &[Entry], run: &[(u64, u64, u64)]) -> Vec<Entry> {
    let now: HashMap<u64, (u64, u64)> = run.iter().map(|&(n, lo, hi)| (n, (lo, hi))).collect();
    let mut out: Vec<Entry> = Vec::with_capacity(old.len() + run.len());
    let mut seen = std::collections::HashSet::new();
    for e in old {
        if !seen.insert(e.node) {
            continue;
        }
        match now.get(&e.node) {
            Some(&(lo, hi)) => out.push(Entry {
                node: e.node,
                lo: lo.min(e.lo),
                hi: hi.max(e.hi),
                misses: 0,
            }),
            None if e.misses + 1 < MAX_MISSES => out.push(Entry {
                misses: e.misses + 1,
                ..*e
            }),
            None => {}
        }
    }
    for &(node, lo, hi) in run {
        if seen.insert(node) {
            out.push(Entry {
                node,
                lo,
                hi,
                misses: 0,
            });
        }
    }
    out.truncate(MAX_ENTRIES);
    out
}

/// What one app read so far in this daemon.
struct Recording {
    until: Instant,
    /// Node → index in `order`, and reads seen.
    index: HashMap<u64, (usize, u32)>,
    /// (node, lo, hi) in first-read order.
    order: Vec<(u64, u64, u64)>,
    /// The image's identity, once the profile thread has computed it.
    identity: Option<[u8; 32]>,
}

/// Work for the profile thread.
enum Msg {
    /// An app was touched for the first time: replay its profile, and end
    /// its recording after [`RECORD_FOR`].
    Touched(Slot),
    /// Pieces of files just looked up, to store from this time on.
    Store(Instant, Vec<Piece>),
}

/// Start-up profiles of one daemon (see the module documentation).
pub struct Profiles {
    me: std::sync::Weak<Profiles>,
    union: Arc<Union>,
    warmer: Arc<KernelWarmer>,
    /// One bit per slot: touched in this daemon.
    touched: Vec<AtomicU64>,
    recordings: Mutex<HashMap<Slot, Recording>>,
    thread: OnceLock<Option<Sender<Msg>>>,
    replayed: AtomicU64,
    /// Replayed pieces waiting for their file's lookup, and the files
    /// looked up.
    pending: Mutex<Pending>,
    pending_count: AtomicU64,
}

/// Replayed pieces of files the kernel does not know yet (it drops pages
/// of a file it has not looked up, with no error that reaches us), stored
/// once it does. One lock covers both maps, so a piece is either parked
/// before its file's lookup takes the parked pieces, or sees the lookup.
#[derive(Default)]
struct Pending {
    /// Parked pieces by inode; at most [`MAX_PENDING`] in all.
    parked: HashMap<u64, Vec<Piece>>,
    /// When each inode was last looked up; emptied when it reaches
    /// [`MAX_PENDING`] (a replay runs in the first seconds of an app, so
    /// only recent lookups matter).
    known: HashMap<u64, Instant>,
}

/// How long after a lookup reply the kernel surely holds the inode: it
/// makes the inode in the looking-up process once that process has taken
/// the reply, so a store sent at once could still be dropped.
const LOOKUP_SETTLE: Duration = Duration::from_millis(20);

/// Replayed pieces waiting for their file's lookup, across all apps.
pub const MAX_PENDING: u64 = 65_536;

impl Profiles {
    /// Profiles kept in the cache folder of `union`'s block cache; `None`
    /// without `--cache-dir`.
    pub fn new(union: Arc<Union>, warmer: Arc<KernelWarmer>) -> Option<Arc<Profiles>> {
        union.cache().disk()?;
        Some(Arc::new_cyclic(|me| Profiles {
            me: me.clone(),
            union,
            warmer,
            touched: (0..(1usize << 16) / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            recordings: Mutex::new(HashMap::new()),
            thread: OnceLock::new(),
            replayed: AtomicU64::new(0),
            pending: Mutex::new(Pending::default()),
            pending_count: AtomicU64::new(0),
        }))
    }

    /// Called after every lookup answered with `ino`: the first one in an
    /// app starts its recording and replay; a file whose replayed pages the
    /// kernel refused before it knew the file is stored now.
    pub fn on_lookup(self: &Arc<Self>, ino: u64) {
        let (slot, _) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            return;
        }
        let bit = 1u64 << (slot % 64);
        let word = &self.touched[usize::from(slot / 64)];
        let first = word.load(Ordering::Relaxed) & bit == 0
            && word.fetch_or(bit, Ordering::Relaxed) & bit == 0;
        let pieces = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.known.len() >= MAX_PENDING as usize {
                p.known.clear();
            }
            p.known.entry(ino).or_insert_with(Instant::now);
            p.parked.remove(&ino)
        };
        if let Some(pieces) = pieces {
            self.pending_count
                .fetch_sub(pieces.len() as u64, Ordering::Relaxed);
            self.store_later(pieces);
        }
        if !first {
            return;
        }
        self.lock().insert(
            slot,
            Recording {
                until: Instant::now() + RECORD_FOR,
                index: HashMap::new(),
                order: Vec::new(),
                identity: None,
            },
        );
        if let Some(tx) = self.thread() {
            let _ = tx.send(Msg::Touched(slot));
        }
    }

    /// Called after a read of `len` bytes of `ino` at `offset` was answered.
    pub fn on_read(&self, ino: u64, offset: u64, len: u32) {
        self.record(ino, offset, offset.saturating_add(u64::from(len)), 1);
    }

    /// Called when a program opened `ino` (its `isatty()` ioctl): the
    /// warmer stores small files whole at open, so the replay will too.
    pub fn on_open(&self, ino: u64) {
        self.record(ino, 0, OPEN_STORE_MAX, 0);
    }

    /// Widens the recorded range of `ino` to `[lo, hi)`; `reads` is 1 for
    /// a read, 0 for an open.
    fn record(&self, ino: u64, lo: u64, hi: u64, reads: u32) {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT || node == IMAGE_ROOT || lo >= hi {
            return;
        }
        let mut recs = self.lock();
        let Some(r) = recs.get_mut(&slot) else { return };
        match r.index.get_mut(&node) {
            Some((i, seen)) => {
                *seen += reads;
                let e = &mut r.order[*i];
                e.1 = e.1.min(lo);
                // A file read twice is warmed whole by the warmer, so later
                // reads of it never reach the daemon: record it whole
                // (clamped to its size at replay).
                e.2 = if *seen >= 2 { u64::MAX } else { e.2.max(hi) };
            }
            None if r.order.len() < MAX_ENTRIES && Instant::now() < r.until => {
                r.index.insert(node, (r.order.len(), reads));
                r.order.push((node, lo, hi));
            }
            None => {}
        }
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
                                    Ok(Msg::Store(at, pieces)) => {
                                        std::thread::sleep(
                                            at.saturating_duration_since(Instant::now()),
                                        );
                                        me.warmer.replay(pieces, ReadIntent::Warm, None);
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

    /// Computes the app's identity and replays its stored profile.
    fn start(&self, slot: Slot) {
        let Some(identity) = self.identity(slot) else {
            return;
        };
        if let Some(r) = self.lock().get_mut(&slot) {
            r.identity = Some(identity);
        }
        let Some(entries) = self.load(&identity) else {
            return;
        };
        let mut pieces = Vec::new();
        let mut total = 0u64;
        for e in entries {
            let ino = inode::encode(slot, e.node);
            let Some((size, block)) = self.union.file_extent(ino) else {
                continue;
            };
            let chunk = u64::from(block.clamp(128 << 10, 1 << 20));
            let mut at = e.lo / chunk * chunk;
            let end = e.hi.min(size);
            while at < end && total < REPLAY_MAX {
                let len = chunk.min(size - at);
                pieces.push((ino, at, len as u32));
                total += len;
                at += len;
            }
        }
        self.replayed.fetch_add(total, Ordering::Relaxed);
        crate::log::debug(format_args!(
            "replaying the start-up profile of slot {slot}: {} pieces, {total} bytes",
            pieces.len()
        ));
        // Pieces of files the kernel does not know yet are decoded now (kept
        // in the block cache) and stored from memory after their lookup.
        let me = self.me.clone();
        let gate: Gate = Arc::new(move |piece: Piece| match me.upgrade() {
            Some(me) => me.may_store(piece),
            None => false,
        });
        self.warmer.replay(pieces, ReadIntent::Rewarm, Some(gate));
    }

    /// True when `piece`'s file was looked up long enough ago for a store
    /// to reach its pages; otherwise the piece is parked until its lookup
    /// (or, looked up just now, handed to the profile thread to store in a
    /// moment).
    fn may_store(self: &Arc<Self>, piece: Piece) -> bool {
        let recent = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match p.known.get(&piece.0) {
                Some(at) if at.elapsed() >= LOOKUP_SETTLE => return true,
                Some(_) => true,
                None => {
                    if self.pending_count.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
                        self.pending_count.fetch_sub(1, Ordering::Relaxed);
                    } else {
                        p.parked.entry(piece.0).or_default().push(piece);
                    }
                    false
                }
            }
        };
        if recent {
            self.store_later(vec![piece]);
        }
        false
    }

    /// Stores `pieces` of files just looked up, [`LOOKUP_SETTLE`] from now,
    /// on the profile thread's schedule and the warmer's workers.
    fn store_later(self: &Arc<Self>, pieces: Vec<Piece>) {
        if let Some(tx) = self.thread() {
            let _ = tx.send(Msg::Store(Instant::now() + LOOKUP_SETTLE, pieces));
        }
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
        let old = self.load(&identity).unwrap_or_default();
        let merged = merge(&old, &rec.order);
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

    /// Bytes handed to the warmer by replays so far.
    pub fn replayed_bytes(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    fn load(&self, identity: &[u8; 32]) -> Option<Vec<Entry>> {
        let disk = self.union.cache().disk()?;
        let max = (20 + MAX_ENTRIES * ENTRY_LEN) as u64;
        decode(&disk.store().read_aux(&file_name(identity), max)?)
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

fn file_name(identity: &[u8; 32]) -> String {
    let hex: String = identity.iter().map(|b| format!("{b:02x}")).collect();
    format!("profile-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(node: u64, lo: u64, hi: u64, misses: u8) -> Entry {
        Entry {
            node,
            lo,
            hi,
            misses,
        }
    }

    #[test]
    fn profiles_round_trip_and_damage_is_refused() {
        let entries = vec![e(1, 0, 10, 0), e(0x2_0000, 4096, 1 << 20, 3)];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes), Some(entries));
        for at in [0, 9, 15, 25, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad), None, "byte {at} flipped");
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&[]), None);
        // An empty range is refused even under a valid checksum.
        assert_eq!(decode(&encode(&[e(1, 5, 5, 0)])), None);
    }

    #[test]
    fn runs_merge_and_unread_files_age_out() {
        let old = vec![
            e(1, 100, 200, 0),
            e(2, 0, 50, MAX_MISSES - 1),
            e(3, 0, 10, 1),
        ];
        let merged = merge(&old, &[(4, 0, 5), (1, 0, 150)]);
        assert_eq!(
            merged,
            vec![e(1, 0, 200, 0), e(3, 0, 10, 2), e(4, 0, 5, 0)],
            "1 widened, 2 aged out, 3 missed once more, 4 appended"
        );
    }

    #[test]
    fn a_profile_never_grows_past_its_bound() {
        let run: Vec<(u64, u64, u64)> = (0..MAX_ENTRIES as u64 + 10).map(|n| (n, 0, 1)).collect();
        assert_eq!(merge(&[], &run).len(), MAX_ENTRIES);
    }
}
