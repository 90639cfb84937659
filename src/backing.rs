//! Positional, lock-free reads of one region of a backing file.
//!
//! Every image reader goes through [`Backing`] so that each read is bounded
//! by the region the image claims (an AppImage payload starts at an offset
//! and must end inside the file), and so that reads from many threads never
//! share a file position or a lock.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A region `[base, base + len)` of an open file, read with `pread`.
#[derive(Clone, Debug)]
pub struct Backing {
    file: Arc<File>,
    base: u64,
    len: u64,
}

impl Backing {
    /// Wraps `file`, exposing `len` bytes starting at `base`.
    pub fn new(file: Arc<File>, base: u64, len: u64) -> Backing {
        Backing { file, base, len }
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
        self.file.read_exact_at(buf, self.base + offset)?;
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
}
