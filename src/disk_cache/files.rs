//! Whole decoded files kept in the `--cache-dir` folder, for FUSE
//! passthrough: a later daemon hands such a file to the kernel as the
//! backing file of an app's file (see [`crate::passthrough`]), and the
//! kernel then reads and maps it directly, as it would a plain folder's
//! file, with no request, decoding or copy through the daemon.
//!
//! **Two files per entry.** The kernel reads the backing file at the app
//! file's own offsets, so it holds exactly the decoded bytes
//! (`file-<key>`); what checks it lives beside it (`file-<key>.sum`: magic,
//! key, length, segment size and an xxh3 checksum per
//! [`SEGMENT`]-byte segment). The key is the file's content address
//! ([`crate::tree::ImageTree::content_key`]), a hash of the stored bytes
//! it is decoded from, so an entry is only ever used for the exact content
//! it came from.
//!
//! **Checked before use.** Every segment is checked against its checksum
//! (on several cores) before the file is handed to the kernel; a file of
//! the wrong size, owner or type, or with a segment that does not match,
//! is deleted with its checksums. The data file is written to a private
//! temporary file and renamed into place before its checksum file is: a
//! data file without checksums is not used (and is evicted like the rest).
//!
//! Whole files count in the folder's size and are evicted with blocks and
//! profiles, least recently used first. A damaged copy counts in the
//! folder's `dropped`; copies found and written are counted by
//! [`crate::passthrough`].

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::Store;

/// Bytes per checksummed segment: verification splits a file across cores
/// by segments.
pub const SEGMENT: u64 = 8 << 20;
/// Largest file kept whole (a bigger one stays in the block cache).
pub const MAX_LEN: u64 = 1 << 30;
/// First bytes of a checksum file (the digit is the format version).
const MAGIC: &[u8; 8] = b"AIFSWHL1";
/// Magic, key, length, segment size.
const SUM_HEAD: usize = 8 + 32 + 8 + 8;
/// Bytes read at a time when writing or checking.
const IO_PIECE: usize = 1 << 20;

/// The content address of one file of one image (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey(pub [u8; 32]);

impl FileKey {
    fn data_name(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!("file-{hex}")
    }

    fn sum_name(&self) -> String {
        format!("{}.sum", self.data_name())
    }
}

/// Whether `name` is a whole file's data or checksum file, counted in the
/// folder's size and evicted like entries.
pub fn is_whole_file_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("file-") else {
        return false;
    };
    let hex = rest.strip_suffix(".sum").unwrap_or(rest);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The checksum file's path for a data file's path (eviction deletes both).
pub fn sum_path_of(data: &std::path::Path) -> Option<PathBuf> {
    let name = data.file_name()?.to_str()?;
    (is_whole_file_name(name) && !name.ends_with(".sum"))
        .then(|| data.with_file_name(format!("{name}.sum")))
}

impl Store {
    /// Whether the folder holds `key`'s data and checksum files (the data may
    /// still turn out damaged when opened): a cheap test before writing it
    /// again.
    pub fn has_whole_file(&self, key: &FileKey) -> bool {
        [key.sum_name(), key.data_name()]
            .iter()
            .all(|n| std::fs::symlink_metadata(self.dir.join(n)).is_ok_and(|m| m.is_file()))
    }

    /// The decoded file for `key`, of `len` bytes, opened read-only, if the
    /// folder holds an intact copy of it: every segment is checked on up to
    /// `threads` threads first. A damaged copy is deleted.
    pub fn open_whole_file(&self, key: &FileKey, len: u64, threads: usize) -> Option<File> {
        let data_path = self.dir.join(key.data_name());
        let sum_path = self.dir.join(key.sum_name());
        let open = |p: &PathBuf| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(p)
        };
        let (sums, data) = match (open(&sum_path), open(&data_path)) {
            (Ok(s), Ok(d)) => (s, d),
            (Err(e), _) | (_, Err(e)) if e.kind() == ErrorKind::NotFound => return None,
            (Err(e), _) | (_, Err(e)) => {
                crate::log::debug(format_args!("whole file {}: {e}", data_path.display()));
                return None;
            }
        };
        match self.check_whole(&sums, &data, key, len, threads) {
            Ok(()) => {
                super::touch(&data);
                Some(data)
            }
            Err(why) => {
                crate::log::debug(format_args!(
                    "whole file {} dropped: {why}",
                    data_path.display()
                ));
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_file(&sum_path);
                let _ = std::fs::remove_file(&data_path);
                None
            }
        }
    }

    fn check_whole(
        &self,
        mut sums: &File,
        data: &File,
        key: &FileKey,
        len: u64,
        threads: usize,
    ) -> Result<(), String> {
        let sums_len = self.owned(sums)?.len();
        let data_len = self.owned(data)?.len();
        let count = len.div_ceil(SEGMENT);
        if len > MAX_LEN || sums_len != SUM_HEAD as u64 + 8 * count {
            return Err(format!("checksum file of {sums_len} bytes for {len} bytes"));
        }
        let mut raw = Vec::with_capacity(sums_len as usize);
        sums.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        if raw.len() as u64 != sums_len || &raw[..8] != MAGIC || raw[8..40] != key.0 {
            return Err("bad checksum file header".into());
        }
        let field = |at: usize| {
            raw.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(u64::MAX)
        };
        if field(40) != len || field(48) != SEGMENT || data_len != len {
            return Err(format!(
                "length {data_len} (recorded {}, expected {len})",
                field(40)
            ));
        }
        let expected: Vec<u64> = (0..count as usize)
            .map(|i| field(SUM_HEAD + 8 * i))
            .collect();
        let threads = threads.clamp(1, 8).min(expected.len().max(1));
        let bad = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let expected = &expected;
                    s.spawn(move || {
                        let mut buf = vec![0u8; IO_PIECE];
                        (t..expected.len()).step_by(threads).find(|&i| {
                            segment_sum(data, i as u64, len, &mut buf).ok() != Some(expected[i])
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .filter_map(|w| w.join().ok().flatten())
                .min()
        });
        match bad {
            Some(i) => Err(format!("segment {i} does not match its checksum")),
            None => Ok(()),
        }
    }

    /// Writes the whole file for `key`, `len` bytes that `fill(offset, buf)`
    /// provides piece by piece, unless the folder has it already: data
    /// first, then its checksums, each renamed into place. Counts in the
    /// folder's size (evicting beyond it).
    pub fn store_whole_file(
        &self,
        key: &FileKey,
        len: u64,
        mut fill: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if !self.writable.load(Ordering::Relaxed) || len > MAX_LEN || self.has_whole_file(key) {
            return Ok(());
        }
        let (tmp, mut file) = self.create_tmp()?;
        let mut sums = Vec::with_capacity(SUM_HEAD + 8 * len.div_ceil(SEGMENT) as usize);
        sums.extend_from_slice(MAGIC);
        sums.extend_from_slice(&key.0);
        sums.extend_from_slice(&len.to_le_bytes());
        sums.extend_from_slice(&SEGMENT.to_le_bytes());
        let mut written = || -> std::io::Result<()> {
            let mut buf = vec![0u8; IO_PIECE];
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            let mut at = 0u64;
            while at < len {
                let n = (len - at).min(IO_PIECE as u64).min(SEGMENT - at % SEGMENT) as usize;
                let piece = &mut buf[..n];
                fill(at, piece)?;
                file.write_all(piece)?;
                hasher.update(piece);
                at += n as u64;
                if at.is_multiple_of(SEGMENT) || at == len {
                    sums.extend_from_slice(&hasher.digest().to_le_bytes());
                    hasher.reset();
                }
            }
            std::fs::rename(&tmp, self.dir.join(key.data_name()))
        };
        if let Err(e) = written() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.write_aux(&key.sum_name(), &sums)?;
        if self.used.fetch_add(len, Ordering::Relaxed) + len > self.limit {
            self.scan_and_evict();
        }
        Ok(())
    }
}

/// The xxh3 checksum of segment `i` of `data` (`len` bytes in all).
fn segment_sum(data: &File, i: u64, len: u64, buf: &mut [u8]) -> std::io::Result<u64> {
    let start = i * SEGMENT;
    let end = (start + SEGMENT).min(len);
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut at = start;
    while at < end {
        let n = (end - at).min(buf.len() as u64) as usize;
        let piece = &mut buf[..n];
        data.read_exact_at(piece, at)?;
        hasher.update(piece);
        at += n as u64;
    }
    Ok(hasher.digest())
}
