//! Decompressed blocks kept on local disk, so that a new daemon (after a
//! restart, or in a new container mapping the same host folder) reads a
//! block it has decoded before instead of decoding it again
//! (`--cache-dir`).
//!
//! **Keys are content addresses.** An entry is named by the BLAKE3 hash of
//! the codec, the output cap and the block's *compressed bytes as read from
//! the image right now*. Decompression is a pure function of those, so an entry
//! can only ever be served for a block whose stored bytes are exactly the
//! ones it was decoded from: a replaced, rewritten or truncated AppImage
//! gets no other file's bytes, whatever its name, size or times, and two
//! versions of an app share the blocks they have in common. The hash is
//! cryptographic because AppImage authors are untrusted: with a weaker hash
//! one image could be crafted to collide with another's blocks and have
//! its own bytes served inside the other app. The cost is hashing the
//! compressed bytes once per block missed in memory (BLAKE3 runs at several
//! gigabytes per second on one core with AVX2 or AVX-512, 3-4 times
//! SHA-256 with the SHA instructions), far less than decoding them.
//!
//! **Entries are checked before use.** Each file holds a header (magic,
//! key, length, xxh3 checksum of the payload) and the payload; a file that
//! is torn, truncated, tampered with, of the wrong size or not owned by us
//! is deleted and the block decoded again. xxh3 (already in the build, via
//! backhand) is enough here: it guards against accidents, while a
//! deliberate forgery needs write access to the folder, which only its
//! owner has (see SECURITY.md).
//!
//! **Several daemons may share the folder.** An entry is written to a
//! private temporary file (`O_EXCL`, mode 0600) and renamed into place, so
//! a reader sees a whole entry or none; two daemons writing the same block
//! write the same bytes, and either rename wins.
//!
//! **Writing never delays a request.** Decoded blocks are queued (bounded
//! in bytes; a block a request thread decoded that does not fit is simply
//! not stored, one a warming thread decoded waits for room) to one writer
//! thread, started on first use. The writer also keeps the folder within
//! its size: entries are touched when read (at most once a minute), and
//! the least recently used are deleted first.
//!
//! **A folder that cannot be written** (read-only, full, over quota) is
//! still read from; storing stops with one log line.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::decompress::Codec;

pub mod files;

/// First bytes of every entry file (the digit is the format version).
const MAGIC: &[u8; 8] = b"AIFSBLK1";
/// Magic, key, payload length, checksum.
const HEADER_LEN: usize = 8 + 32 + 8 + 8;
/// Bytes of decoded blocks waiting for the writer at most.
const QUEUE_BYTES: usize = 32 << 20;
/// An entry read is marked recently used only if its mark is older than this
/// (one metadata write per entry per minute, not one per read).
const TOUCH_AFTER: Duration = Duration::from_secs(60);
/// Eviction deletes down to this share of the size limit, so that it runs
/// once per tens of megabytes written, not once per block.
const EVICT_TO_PERCENT: u64 = 90;
/// Temporary files of a daemon that died mid-write are deleted after this.
const STALE_TMP: Duration = Duration::from_secs(3600);
/// Entries listed at most when the folder is scanned (bounds the scan's
/// memory whatever the folder holds).
const SCAN_LIMIT: usize = 4_000_000;

/// The address of one decoded block: BLAKE3 (in its key-derivation mode,
/// for a context of its own) over the codec, the output cap and the
/// compressed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of the block stored as `stored` that `codec` decodes to at
    /// most `max_out` bytes.
    pub fn of(codec: Codec, max_out: usize, stored: &[u8]) -> Key {
        let mut h = blake3::Hasher::new_derive_key("appimagefs 2026-12 cache-dir block key v2");
        h.update(codec.name().as_bytes());
        h.update(&[0]);
        h.update(&(max_out as u64).to_le_bytes());
        h.update(stored);
        Key(*h.finalize().as_bytes())
    }

    /// The entry's file name: the key in lower-case hex.
    fn file_name(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Counters for `-v` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats {
    /// Blocks served from the folder.
    pub hits: u64,
    /// Blocks looked for and not there.
    pub misses: u64,
    /// Entries written.
    pub stored: u64,
    /// Entries found damaged (or not ours) and deleted.
    pub dropped: u64,
    /// Blocks not stored because the writer's queue was full.
    pub skipped: u64,
    /// Entries deleted to stay within the size limit.
    pub evicted: u64,
}

/// A block waiting to be written.
struct Job {
    key: Key,
    data: Vec<u8>,
}

/// Why a cache folder cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Using it would be unsafe (another user's folder, writable by others,
    /// not a folder): the mount must not start.
    Refused(String),
    /// It cannot be created (a read-only or missing parent): the mount runs
    /// without it.
    Unavailable(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Refused(m) | OpenError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// The on-disk block cache of one daemon (see the module documentation).
pub struct DiskCache {
    store: Arc<Store>,
    writer: OnceLock<Option<SyncSender<Job>>>,
}

/// The folder and its counters, shared with the writer thread (which ends
/// when the [`DiskCache`] is dropped and its queue closes).
pub struct Store {
    dir: PathBuf,
    limit: u64,
    uid: u32,
    writable: AtomicBool,
    /// Bytes the folder holds, as last scanned plus what was written since.
    used: AtomicU64,
    queued: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    dropped: AtomicU64,
    skipped: AtomicU64,
    evicted: AtomicU64,
}

impl DiskCache {
    /// Opens (creating it, mode 0700, if missing) the cache folder `dir`,
    /// which may hold about `limit` bytes. Fails when the folder cannot be
    /// used safely: another user owns it, others may write it, or it is not
    /// a folder. A folder that exists but cannot be written is opened for
    /// reading only, with one log line.
    pub fn open(dir: &Path, limit: u64) -> Result<DiskCache, OpenError> {
        // Absolute, because the daemon changes to / when it detaches.
        let dir = &std::path::absolute(dir)
            .map_err(|e| OpenError::Unavailable(format!("cache folder {}: {e}", dir.display())))?;
        let shown = dir.display();
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(e) if dir.is_dir() => {
                crate::log::debug(format_args!("cache folder {shown}: {e}"));
            }
            Err(e) => {
                return Err(OpenError::Unavailable(format!(
                    "cannot create cache folder {shown}: {e}"
                )))
            }
        }
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| OpenError::Unavailable(format!("cache folder {shown}: {e}")))?;
        if !meta.is_dir() {
            return Err(OpenError::Refused(format!(
                "cache folder {shown} is not a folder (symbolic links are refused)"
            )));
        }
        if meta.uid() != uid {
            return Err(OpenError::Refused(format!(
                "cache folder {shown} belongs to uid {}, not to this user (uid {uid}): \
                 whoever can write it decides what the mount serves",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(OpenError::Refused(format!(
                "cache folder {shown} may be written by other users (mode {:o}); \
                 make it private: chmod 700 {shown}",
                meta.mode() & 0o7777
            )));
        }
        let store = Store {
            dir: dir.to_path_buf(),
            limit,
            uid,
            writable: AtomicBool::new(true),
            used: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        };
        match store.create_tmp() {
            Ok((path, _file)) => {
                let _ = std::fs::remove_file(path);
            }
            Err(e) => store.stop_writing(&e),
        }
        Ok(DiskCache {
            store: Arc::new(store),
            writer: OnceLock::new(),
        })
    }

    /// Whether a block of `codec`, decoded to at most `max_out` bytes, is
    /// worth a trip to the disk: LZ4 and LZO decode faster than a file is
    /// opened and read, and so do the small metadata blocks of zlib and
    /// zstd.
    pub fn worth(codec: Codec, max_out: usize) -> bool {
        match codec {
            Codec::Lz4 | Codec::Lzo => false,
            Codec::Zlib | Codec::Zstd => max_out > 8192,
            Codec::Xz | Codec::Lzma => true,
        }
    }

    /// The folder and its counters.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues `data`, the decoded block for `key`, to be stored. On a
    /// request thread it never blocks: when the queue is full or storing
    /// has stopped, nothing is stored. On a background thread (see
    /// [`background_thread`]) it waits up to [`WAIT_FOR_ROOM`] for room,
    /// so that warming a whole app, which decodes faster than the writer
    /// writes (gzip and zstd most of all), leaves all of it in the folder.
    pub fn put(&self, key: Key, data: &[u8]) {
        let store = &self.store;
        let may_wait = MAY_WAIT.with(Cell::get);
        let deadline = Instant::now() + WAIT_FOR_ROOM;
        let mut job = Job {
            key,
            data: Vec::new(),
        };
        loop {
            if !store.writable.load(Ordering::Relaxed) {
                return;
            }
            let queued = store.queued.fetch_add(data.len(), Ordering::Relaxed);
            let sent = if queued + data.len() > QUEUE_BYTES {
                false
            } else {
                if job.data.is_empty() {
                    job.data = data.to_vec();
                }
                match self.writer().map(|tx| tx.try_send(job)) {
                    Some(Ok(())) => return,
                    Some(Err(TrySendError::Full(j) | TrySendError::Disconnected(j))) => {
                        job = j;
                        false
                    }
                    None => return store.skip(data.len()),
                }
            };
            if !sent {
                store.queued.fetch_sub(data.len(), Ordering::Relaxed);
                if !may_wait || Instant::now() >= deadline {
                    store.skipped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// The writer thread's queue, started on first use (never before the
    /// daemon forks); `None` if the thread could not be started.
    fn writer(&self) -> Option<&SyncSender<Job>> {
        self.writer
            .get_or_init(|| {
                let (tx, rx) = sync_channel::<Job>(1024);
                let store = self.store.clone();
                let spawned = std::thread::Builder::new()
                    .name("cache-writer".into())
                    .spawn(move || store.write_loop(&rx));
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        crate::log::warn(format_args!("cannot start the cache writer: {e}"));
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Whether nothing is waiting to be written.
    pub fn idle(&self) -> bool {
        self.store.queued.load(Ordering::Relaxed) == 0
    }

    /// Waits up to `timeout` for queued blocks to be written (at unmount, so
    /// that what this daemon decoded is there for the next one).
    pub fn flush(&self, timeout: Duration) {
        let start = std::time::Instant::now();
        while !self.idle() && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How long a background thread waits for room in the writer's queue
/// before giving up on storing a block.
pub const WAIT_FOR_ROOM: Duration = Duration::from_secs(2);

thread_local! {
    static MAY_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as a background thread (read-ahead and
/// warming workers, never a request thread): blocks it decodes wait for
/// room in the writer's queue instead of being skipped (see
/// [`DiskCache::put`]).
pub fn background_thread() {
    MAY_WAIT.with(|w| w.set(true));
}

impl Store {
    fn skip(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether entries are still being stored (false once the folder
    /// turned out read-only or full).
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The decoded block for `key` if the folder holds an intact entry for
    /// it of at most `max_out` bytes. A damaged entry is deleted.
    pub fn get(&self, key: &Key, max_out: usize) -> Option<Vec<u8>> {
        let path = self.dir.join(key.file_name());
        let found = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        let mut file = match found {
            Ok(f) => f,
            Err(_) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        match self.read_entry(&mut file, key, max_out) {
            Ok(data) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                touch(&file);
                Some(data)
            }
            Err(why) => {
                crate::log::debug(format_args!(
                    "cache entry {} dropped: {why}",
                    path.display()
                ));
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// The metadata of `file` if it is a regular file owned by the
    /// daemon's user (anything else in the folder is never read).
    fn owned(&self, file: &File) -> Result<std::fs::Metadata, String> {
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() || meta.uid() != self.uid {
            return Err(format!("not a file of uid {}", self.uid));
        }
        Ok(meta)
    }

    fn read_entry(&self, file: &mut File, key: &Key, max_out: usize) -> Result<Vec<u8>, String> {
        let meta = self.owned(file)?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)
            .map_err(|e| format!("header: {e}"))?;
        if &header[..8] != MAGIC {
            return Err("bad magic".into());
        }
        if header[8..40] != key.0 {
            return Err("key does not match the name".into());
        }
        let len = u64::from_le_bytes(header[40..48].try_into().unwrap_or_default());
        let sum = u64::from_le_bytes(header[48..56].try_into().unwrap_or_default());
        if len > max_out as u64 || meta.len() != HEADER_LEN as u64 + len {
            return Err(format!(
                "length {len} does not fit (file of {} bytes, cap {max_out})",
                meta.len()
            ));
        }
        let mut data = Vec::with_capacity(len as usize);
        file.take(len)
            .read_to_end(&mut data)
            .map_err(|e| format!("payload: {e}"))?;
        if data.len() as u64 != len {
            return Err("truncated".into());
        }
        if xxhash_rust::xxh3::xxh3_64(&data) != sum {
            return Err("checksum mismatch".into());
        }
        Ok(data)
    }

    fn write_loop(&self, rx: &Receiver<Job>) {
        self.scan_and_evict();
        while let Ok(job) = rx.recv() {
            let len = job.data.len();
            if self.writable.load(Ordering::Relaxed) {
                if let Err(e) = self.store(&job.key, &job.data) {
                    self.stop_writing(&e);
                }
            }
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Writes the entry for `key` now (the writer thread's work; tests call
    /// it directly). An entry already present is left alone.
    pub fn store(&self, key: &Key, data: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(key.file_name());
        if std::fs::symlink_metadata(&path).is_ok() {
            return Ok(());
        }
        let (tmp, mut file) = self.create_tmp()?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..40].copy_from_slice(&key.0);
        header[40..48].copy_from_slice(&(data.len() as u64).to_le_bytes());
        header[48..56].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(data).to_le_bytes());
        let written = file
            .write_all(&header)
            .and_then(|()| file.write_all(data))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        self.stored.fetch_add(1, Ordering::Relaxed);
        let size = (HEADER_LEN + data.len()) as u64;
        if self.used.fetch_add(size, Ordering::Relaxed) + size > self.limit {
            self.scan_and_evict();
        }
        Ok(())
    }

    /// The bytes of the auxiliary file `name` (start-up profiles) if it is
    /// ours, a regular file and at most `max` bytes; it is marked recently
    /// used, as an entry read is.
    pub fn read_aux(&self, name: &str, max: u64) -> Option<Vec<u8>> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.dir.join(name))
            .ok()?;
        let meta = self.owned(&file).ok()?;
        if meta.len() > max {
            return None;
        }
        touch(&file);
        let mut data = Vec::with_capacity(meta.len() as usize);
        Read::by_ref(&mut file)
            .take(max)
            .read_to_end(&mut data)
            .ok()?;
        Some(data)
    }

    /// Replaces the auxiliary file `name` with `data`, atomically. Does
    /// nothing once storing has stopped.
    pub fn write_aux(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        if !self.writable.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (tmp, mut file) = self.create_tmp()?;
        let written = file
            .write_all(data)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(name)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            self.stop_writing(&e);
            return Err(e);
        }
        // Profiles count in the folder's size like entries (the one
        // replaced is counted until the next scan: the count errs high).
        let size = data.len() as u64;
        if self.used.fetch_add(size, Ordering::Relaxed) + size > self.limit {
            self.scan_and_evict();
        }
        Ok(())
    }

    /// A new private temporary file in the folder, named after this
    /// process and a counter shared by every cache it opens. A name left by
    /// a dead process of the same pid is skipped.
    fn create_tmp(&self) -> std::io::Result<(PathBuf, File)> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut tries = 0;
        loop {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!(".tmp.{}.{n}", std::process::id()));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path);
            match opened {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops storing after a write failed for a reason that will not go away
    /// by itself (read-only, full, no permission); one log line.
    fn stop_writing(&self, e: &std::io::Error) {
        let lasting = matches!(
            e.raw_os_error(),
            Some(libc::EROFS | libc::ENOSPC | libc::EDQUOT | libc::EACCES | libc::EPERM)
        ) || e.kind() == ErrorKind::PermissionDenied;
        if !lasting {
            crate::log::debug(format_args!(
                "cache folder {}: a block was not stored: {e}",
                self.dir.display()
            ));
            return;
        }
        if self.writable.swap(false, Ordering::Relaxed) {
            crate::log::warn(format_args!(
                "cache folder {}: cannot store blocks ({e}); entries already there are \
                 still used, new blocks are decoded as without --cache-dir",
                self.dir.display()
            ));
        }
    }

    /// Lists the folder, deletes stale temporary files, recounts the bytes
    /// held (entries, start-up profiles and whole files) and deletes the
    /// least recently used of them while over the limit.
    pub fn scan_and_evict(&self) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let mut total = 0u64;
        for e in listing.flatten().take(SCAN_LIMIT) {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(meta) = e.metadata() else { continue };
            let mtime = meta.modified().unwrap_or(now);
            if name.starts_with(".tmp.") {
                if now.duration_since(mtime).unwrap_or_default() > STALE_TMP {
                    let _ = std::fs::remove_file(e.path());
                }
                continue;
            }
            let whole = files::is_whole_file_name(name);
            if !meta.is_file() || !(name.len() == 64 || is_profile_name(name) || whole) {
                continue;
            }
            total += meta.len();
            if whole && name.ends_with(".sum") {
                // Evicted with its data file, which reads mark as used; one
                // whose data file is gone is deleted now.
                let data = e.path().with_extension("");
                if std::fs::symlink_metadata(&data).is_err() {
                    let _ = std::fs::remove_file(e.path());
                    total -= meta.len();
                }
                continue;
            }
            entries.push((mtime, meta.len(), e.path()));
        }
        if total > self.limit && self.writable.load(Ordering::Relaxed) {
            entries.sort_unstable_by_key(|(t, _, _)| *t);
            let target = self.limit / 100 * EVICT_TO_PERCENT;
            for (_, size, path) in entries {
                if total <= target {
                    break;
                }
                if std::fs::remove_file(&path).is_ok() {
                    total -= size;
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                    if let Some(sums) = files::sum_path_of(&path) {
                        let _ = std::fs::remove_file(sums);
                    }
                }
            }
        }
        self.used.store(total, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DiskStats {
        DiskStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }
}

/// Whether `name` is a start-up profile's (`profile-` and 64 hex digits),
/// counted in the folder's size and evicted like entries.
pub fn is_profile_name(name: &str) -> bool {
    name.strip_prefix("profile-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Marks an entry as recently used (its modification time orders
/// eviction), unless that was done within [`TOUCH_AFTER`]. Failure (a
/// read-only folder) only costs LRU precision.
fn touch(file: &File) {
    let recent = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < TOUCH_AFTER);
    if !recent {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests;
