//! Positional, lock-free reads of one region of a backing file.
//!
//! Every image reader goes through [`Backing`] so that each read is bounded
//! by the region the image claims (an AppImage payload starts at an offset
//! and must end inside the file), and so that reads from many threads never
//! share a file position or a lock.
//!
//! A backing can be pinned to one version of its file ([`FileVersion`]):
//! then every read checks, after reading, that the file was not modified in
//! place, and fails with [`Error::Stale`] instead of returning bytes that may
//! belong to a newer version. (A file replaced by rename or deleted keeps
//! its old inode open here, so it stays readable and unchanged.)

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fd_pool::PooledFile;

/// Where a [`Backing`] gets its descriptor from.
#[derive(Clone, Debug)]
pub enum Descriptor {
    /// A file the backing holds open for as long as it lives (one image
    /// looked at by `inspect`, tests).
    Held(Arc<File>),
    /// A file opened on use and closed when idle, under the process-wide
    /// bound of [`crate::fd_pool`] (the mounted AppImages).
    Pooled(Arc<PooledFile>),
}

impl From<Arc<File>> for Descriptor {
    fn from(file: Arc<File>) -> Descriptor {
        Descriptor::Held(file)
    }
}

impl From<&Arc<File>> for Descriptor {
    fn from(file: &Arc<File>) -> Descriptor {
        Descriptor::Held(file.clone())
    }
}

impl From<&Descriptor> for Descriptor {
    fn from(file: &Descriptor) -> Descriptor {
        file.clone()
    }
}

/// The open file behind a [`Descriptor`] for the length of one read.
enum OpenFile<'a> {
    Held(&'a File),
    Pooled(Arc<File>),
}

impl std::ops::Deref for OpenFile<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match self {
            OpenFile::Held(f) => f,
            OpenFile::Pooled(f) => f,
        }
    }
}

impl Descriptor {
    fn open(&self) -> Result<OpenFile<'_>> {
        match self {
            Descriptor::Held(f) => Ok(OpenFile::Held(f)),
            Descriptor::Pooled(p) => Ok(OpenFile::Pooled(p.get()?)),
        }
    }
}

/// What identifies one version of a file's content: writing to the file
/// changes its size or modification time. (The change time is left out:
/// renaming, deleting, linking or chmod-ing the file changes it too, and
/// those leave the content as it was.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileVersion {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl FileVersion {
    /// The version of an open file, from `fstat`.
    pub fn of(file: &File) -> std::io::Result<FileVersion> {
        Ok(FileVersion::from_metadata(&file.metadata()?))
    }

    /// The version described by `meta`.
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileVersion {
        FileVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// A region `[base, base + len)` of an open file, read with `pread`.
#[derive(Clone, Debug)]
pub struct Backing {
    file: Descriptor,
    base: u64,
    len: u64,
    version: Option<FileVersion>,
}

impl Backing {
    /// Wraps `file`, exposing `len` bytes starting at `base`.
    pub fn new(file: impl Into<Descriptor>, base: u64, len: u64) -> Backing {
        Backing {
            file: file.into(),
            base,
            len,
            version: None,
        }
    }

    /// Like [`Backing::new`], but every read fails with [`Error::Stale`]
    /// once the file no longer has `version`.
    pub fn pinned(
        file: impl Into<Descriptor>,
        base: u64,
        len: u64,
        version: FileVersion,
    ) -> Backing {
        Backing {
            file: file.into(),
            base,
            len,
            version: Some(version),
        }
    }

    /// Number of bytes in the region.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads exactly `buf.len()` bytes at `offset` within the region; a read
    /// that would cross the end of the region is a corruption error.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "read of {} bytes at {offset} passes the end of the image ({} bytes)",
                    buf.len(),
                    self.len
                ))
            })?;
        debug_assert!(end <= self.len);
        let file = self.file.open()?;
        file.read_exact_at(buf, self.base + offset)?;
        if let Some(version) = self.version {
            if FileVersion::of(&file)? != version {
                return Err(Error::Stale);
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new vector (bounded by the region,
    /// so a hostile length cannot allocate more than the image's size).
    pub fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if (len as u64) > self.len {
            return Err(Error::corrupt(format!(
                "read of {len} bytes is larger than the image"
            )));
        }
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Reads `len` bytes at `offset` into the calling thread's scratch
    /// buffer and hands them to `use_bytes`: for compressed blocks, which
    /// are decoded at once and not kept: no buffer is allocated and zeroed
    /// per block, and the bytes land in memory the core has just used.
    /// Reads over [`SCRATCH_MAX`] bytes get a buffer of their own.
    pub fn with_bytes<T>(
        &self,
        offset: u64,
        len: usize,
        use_bytes: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) if len <= SCRATCH_MAX => {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                let bytes = &mut buf[..len];
                self.read_exact_at(bytes, offset)?;
                use_bytes(bytes)
            }
            _ => use_bytes(&self.read_vec(offset, len)?),
        })
    }
}

/// Largest read [`Backing::with_bytes`] serves from the thread's scratch
/// buffer, and so the most that buffer holds: a SquashFS block (1 MiB)
/// with room to spare.
pub const SCRATCH_MAX: usize = 2 << 20;

thread_local! {
    /// Each thread's buffer for [`Backing::with_bytes`].
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pinned_reads_fail_after_an_in_place_write() {
        let path = std::env::temp_dir().join(format!("appimagefs-backing-{}", std::process::id()));
        std::fs::write(&path, b"version one").unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let version = FileVersion::of(&file).unwrap();
        let b = Backing::pinned(file.clone(), 0, 11, version);
        let mut buf = [0u8; 7];
        b.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"version");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all(b"VERSION")
            .unwrap();
        assert!(matches!(b.read_exact_at(&mut buf, 0), Err(Error::Stale)));
        let unpinned = Backing::new(file, 0, 11);
        unpinned.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"VERSION");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn reads_past_the_region_are_corrupt() {
        let path = std::env::temp_dir().join(format!("appimagefs-backing2-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let b = Backing::new(Arc::new(File::open(&path).unwrap()), 2, 6);
        let mut buf = [0u8; 4];
        b.read_exact_at(&mut buf, 2).unwrap();
        assert_eq!(&buf, b"4567");
        assert!(matches!(
            b.read_exact_at(&mut buf, 3),
            Err(Error::Corrupt(_))
        ));
        assert!(b.read_vec(u64::MAX, 1).is_err());
        assert!(b.with_bytes(u64::MAX, 1, |_| Ok(())).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn scratch_reads_give_exactly_the_bytes_asked_for() {
        let path = std::env::temp_dir().join(format!("appimagefs-backing3-{}", std::process::id()));
        let data: Vec<u8> = (0..SCRATCH_MAX + 4096).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let b = Backing::new(Arc::new(File::open(&path).unwrap()), 0, data.len() as u64);
        // A long read leaves old bytes in the buffer; a shorter one after it
        // sees only its own.
        let long = b.with_bytes(0, 100_000, |x| Ok(x.to_vec())).unwrap();
        assert_eq!(long, &data[..100_000]);
        let short = b.with_bytes(7, 10, |x| Ok(x.to_vec())).unwrap();
        assert_eq!(short, &data[7..17]);
        // Reads bigger than the scratch buffer, and reads made while the
        // buffer is in use, get their own.
        let huge = b
            .with_bytes(1, SCRATCH_MAX + 1, |x| Ok(x.to_vec()))
            .unwrap();
        assert_eq!(huge, &data[1..SCRATCH_MAX + 2]);
        let nested = b
            .with_bytes(0, 4, |outer| {
                let inner = b.with_bytes(4, 4, |x| Ok(x.to_vec()))?;
                Ok((outer.to_vec(), inner))
            })
            .unwrap();
        assert_eq!(nested, (data[..4].to_vec(), data[4..8].to_vec()));
        std::fs::remove_file(&path).unwrap();
    }
}
