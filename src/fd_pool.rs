//! One bound on the descriptors the daemon holds for AppImage files, for
//! the whole process (an admin may drop 10,000 AppImages in the folder,
//! and `RLIMIT_NOFILE` is often 1024).
//!
//! A [`PooledFile`] knows its path and the [`FileVersion`] it stands for;
//! it opens the file on use and the pool closes the least recently used
//! ones once more than [`FdPool::limit`] are open. A reopen that finds
//! another version under the path (the file was changed, replaced or
//! removed) fails with [`Error::Stale`], so bytes of two versions never
//! mix. A file whose old version must stay readable (its folder left the
//! tree while programs still use it) is [kept open](PooledFile::keep_open)
//! from then on, if it is open at that moment.
//!
//! The bound is process-wide because the limit is: the pool is a global,
//! sized from `RLIMIT_NOFILE` when first used (the daemon raises the soft
//! limit to the hard one before that, see [`raise_nofile_limit`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use crate::backing::FileVersion;
use crate::error::{Error, Result};

/// Descriptors kept free for everything else the daemon opens (the FUSE
/// device per request thread, inotify, the log, the source folder, a file
/// being examined, /proc reads).
const RESERVED: u64 = 64;

/// Fewest pooled descriptors, however low the limit.
const MIN_LIMIT: usize = 8;

/// The process-wide pool of AppImage descriptors.
pub struct FdPool {
    limit: usize,
    /// Files counted as open (their slot holds a descriptor).
    open: AtomicUsize,
    /// Every file that may hold a descriptor, to choose whom to close.
    registry: Mutex<Vec<Weak<PooledFile>>>,
    /// Use counter standing in for time, for least-recently-used order.
    clock: AtomicU64,
}

impl FdPool {
    /// A pool holding at most `limit` descriptors at once.
    pub fn new(limit: usize) -> FdPool {
        FdPool {
            limit: limit.max(MIN_LIMIT),
            open: AtomicUsize::new(0),
            registry: Mutex::new(Vec::new()),
            clock: AtomicU64::new(0),
        }
    }

    /// The process-wide pool, sized from the soft `RLIMIT_NOFILE` at first
    /// use: half of what is left after [`RESERVED`].
    pub fn global() -> &'static Arc<FdPool> {
        static POOL: OnceLock<Arc<FdPool>> = OnceLock::new();
        POOL.get_or_init(|| {
            let soft = nofile_limit().0;
            let limit = usize::try_from(soft.saturating_sub(RESERVED) / 2).unwrap_or(usize::MAX);
            Arc::new(FdPool::new(limit))
        })
    }

    /// Most descriptors held at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Descriptors held now.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Makes room for one more descriptor: when the pool is full, closes
    /// the least recently used eighth of its files (those not kept open).
    /// The descriptors are closed after the registry lock is released.
    fn make_room(&self) {
        if self.open.load(Ordering::Acquire) < self.limit {
            return;
        }
        let mut closing = Vec::new();
        {
            let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            let mut candidates: Vec<(u64, Arc<PooledFile>)> = Vec::new();
            registry.retain(|weak| match weak.upgrade() {
                Some(f) if f.is_open() => {
                    if !f.kept.load(Ordering::Acquire) {
                        candidates.push((f.last_use.load(Ordering::Relaxed), f));
                    }
                    true
                }
                _ => false,
            });
            if self.open.load(Ordering::Acquire) < self.limit {
                return;
            }
            candidates.sort_unstable_by_key(|(used, _)| *used);
            let target = self.limit - self.limit / 8;
            let excess = self.open.load(Ordering::Acquire).saturating_sub(target);
            for (_, f) in candidates.into_iter().take(excess.max(1)) {
                closing.extend(f.close());
            }
        }
        drop(closing);
    }
}

/// An AppImage file opened on use through the [`FdPool`].
pub struct PooledFile {
    pool: Arc<FdPool>,
    path: PathBuf,
    version: FileVersion,
    file: RwLock<Option<Arc<File>>>,
    last_use: AtomicU64,
    kept: AtomicBool,
}

impl std::fmt::Debug for PooledFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledFile")
            .field("path", &self.path)
            .field("open", &self.is_open())
            .finish()
    }
}

impl PooledFile {
    /// The file at `path` as of `version`; not opened until used.
    pub fn new(pool: &Arc<FdPool>, path: &Path, version: FileVersion) -> Arc<PooledFile> {
        Arc::new(PooledFile {
            pool: pool.clone(),
            path: path.to_path_buf(),
            version,
            file: RwLock::new(None),
            last_use: AtomicU64::new(0),
            kept: AtomicBool::new(false),
        })
    }

    /// The open file, opened now (closing idle others if the pool is full)
    /// when it is not. Fails with [`Error::Stale`] when the path no longer
    /// holds this version.
    pub fn get(self: &Arc<Self>) -> Result<Arc<File>> {
        self.last_use.store(
            self.pool.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if let Some(f) = self.read_slot().as_ref() {
            return Ok(f.clone());
        }
        self.pool.make_room();
        let opened = Arc::new(self.open()?);
        let mut slot = self.file.write().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = slot.as_ref() {
            // Another thread opened it meanwhile; ours is closed below,
            // after the lock.
            let f = f.clone();
            drop(slot);
            return Ok(f);
        }
        *slot = Some(opened.clone());
        drop(slot);
        self.pool.open.fetch_add(1, Ordering::AcqRel);
        self.pool
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(self));
        Ok(opened)
    }

    /// Never closes this file's descriptor from now on, if it is open: the
    /// version it holds may be reachable no longer through the path.
    pub fn keep_open(&self) {
        self.kept.store(true, Ordering::Release);
    }

    /// Whether a descriptor is held now.
    pub fn is_open(&self) -> bool {
        self.read_slot().is_some()
    }

    fn read_slot(&self) -> std::sync::RwLockReadGuard<'_, Option<Arc<File>>> {
        self.file.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the path without blocking on a fifo swapped in under the name,
    /// and checks it is still this version.
    fn open(&self) -> Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Stale,
                _ => Error::Io(e),
            })?;
        if FileVersion::of(&file)? != self.version {
            return Err(Error::Stale);
        }
        Ok(file)
    }

    /// Gives up the descriptor (readers that hold it keep it until done);
    /// returns it so the caller closes it outside its locks.
    fn close(&self) -> Option<Arc<File>> {
        let taken = self.file.write().unwrap_or_else(|p| p.into_inner()).take();
        if taken.is_some() {
            self.pool.open.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        let slot = self.file.get_mut().unwrap_or_else(|p| p.into_inner());
        if slot.take().is_some() {
            self.pool.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a valid local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, 1024);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as daemons do;
/// returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    let (soft, hard) = nofile_limit();
    if soft >= hard {
        return soft;
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        hard
    } else {
        soft
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    fn files(dir: &Path, n: usize) -> Vec<(PathBuf, FileVersion)> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("f{i}"));
                std::fs::write(&p, format!("file {i}")).unwrap();
                let v = FileVersion::from_metadata(&std::fs::metadata(&p).unwrap());
                (p, v)
            })
            .collect()
    }

    #[test]
    fn never_more_than_the_limit_open() {
        let dir = TempDir::new("fdpool-limit");
        let pool = Arc::new(FdPool::new(MIN_LIMIT));
        let pooled: Vec<_> = files(dir.path(), 40)
            .iter()
            .map(|(p, v)| PooledFile::new(&pool, p, *v))
            .collect();
        for round in 0..3 {
            for (i, f) in pooled.iter().enumerate() {
                let file = f.get().unwrap();
                let mut buf = String::new();
                std::io::Read::read_to_string(&mut &*file, &mut buf).unwrap();
                assert_eq!(buf, format!("file {i}"), "round {round}");
                assert!(pool.open_count() <= pool.limit());
            }
        }
        assert!(pool.open_count() > 0);
        drop(pooled);
        assert_eq!(pool.open_count(), 0);
    }

    #[test]
    fn kept_files_are_not_closed_and_a_changed_file_is_stale() {
        let dir = TempDir::new("fdpool-keep");
        let pool = Arc::new(FdPool::new(MIN_LIMIT));
        let all = files(dir.path(), 20);
        let kept = PooledFile::new(&pool, &all[0].0, all[0].1);
        kept.get().unwrap();
        kept.keep_open();
        std::fs::remove_file(&all[0].0).unwrap();
        let others: Vec<_> = all[1..]
            .iter()
            .map(|(p, v)| PooledFile::new(&pool, p, *v))
            .collect();
        for f in &others {
            f.get().unwrap();
        }
        assert!(kept.is_open(), "a kept file was closed");
        assert!(kept.get().is_ok());
        // Closed and then removed: the old version is gone.
        let closed = others.iter().find(|f| !f.is_open()).unwrap();
        std::fs::remove_file(&closed.path).unwrap();
        assert!(matches!(closed.get(), Err(Error::Stale)));
        // Closed and then rewritten: another version, never its bytes.
        let closed = others.iter().find(|f| !f.is_open()).unwrap();
        std::fs::write(&closed.path, "another version, longer").unwrap();
        assert!(matches!(closed.get(), Err(Error::Stale)));
    }
}
