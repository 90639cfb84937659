//! Regular file contents: the block list that follows a file inode, and
//! reads of byte ranges through the shared cache.
//!
//! A file of `size` bytes is stored as full blocks of `block_size` bytes
//! laid out back to back from `blocks_start`, followed either by a short
//! last block or by a tail kept in a fragment block (shared with other
//! files' tails). Each block's size word says how many bytes it occupies on
//! disk; 0 is a sparse hole that reads as zeros.

use super::metadata::{check_size_word, le_u32, le_u64, Cursor, Reader, DATA_SIZE_MASK};
use super::table::LookupTable;
use crate::error::{Error, Result};
use crate::prefetch::Sequential;
use crate::tree::ReadIntent;

/// Files with more blocks than this are refused (at 4 KiB blocks that is a
/// 16 GiB file, at 128 KiB 512 GiB): the block list is held in memory, and
/// a hostile inode must not make it grow without bound.
pub const MAX_FILE_BLOCKS: u64 = 1 << 22;

/// A block start position is remembered for every this many blocks; the
/// start of any other block is found by adding at most this many sizes.
const MARK_EVERY: usize = 64;

/// Blocks decompressed ahead of a sequential reader.
const READ_AHEAD_BLOCKS: usize = 4;

/// Fragment blocks decompressed ahead after a file's tail is read from one:
/// mksquashfs packs tails in directory order, so the next fragments hold
/// the small files next to this one, which programs (an interpreter
/// importing modules, a toolkit loading icons) tend to read next.
const FRAGMENTS_AHEAD: u64 = 2;

/// Stored bytes read at a time when a file's content key is computed.
const KEY_READ: usize = 1 << 20;
/// Stored bytes per part of a content key (parts are hashed in parallel).
const KEY_PART: u64 = 16 << 20;
/// Threads hashing one file's parts at most.
const KEY_THREADS: u64 = 4;

/// Inode fragment index meaning "no fragment".
pub const NO_FRAGMENT: u32 = 0xffff_ffff;

/// Where a file's bytes live.
#[derive(Debug)]
pub struct FileLayout {
    size: u64,
    /// (fragment index, byte offset of the tail inside the fragment block).
    fragment: Option<(u32, u32)>,
    /// Size word of every block.
    words: Vec<u32>,
    /// `marks[k]` = image position of block `k * MARK_EVERY`.
    marks: Vec<u64>,
    /// Tells sequential reads of this file, which read ahead.
    sequential: Sequential,
}

impl FileLayout {
    /// Reads the block list at `cursor` (right after the file inode) and
    /// precomputes block positions.
    pub fn parse(
        cursor: &mut Cursor<'_>,
        reader: &Reader,
        blocks_start: u64,
        size: u64,
        fragment: u32,
        frag_offset: u32,
        fragment_count: u32,
    ) -> Result<FileLayout> {
        let bs = u64::from(reader.block_size);
        let fragment = if fragment == NO_FRAGMENT {
            None
        } else {
            if fragment >= fragment_count || frag_offset >= reader.block_size {
                return Err(Error::corrupt(format!(
                    "file refers to fragment {fragment} at offset {frag_offset} ({fragment_count} fragments)"
                )));
            }
            Some((fragment, frag_offset))
        };
        let count = match fragment {
            None => size.div_ceil(bs),
            Some(_) => size / bs,
        };
        if count > MAX_FILE_BLOCKS {
            return Err(Error::Unsupported(format!(
                "file of {size} bytes has {count} blocks, more than the {MAX_FILE_BLOCKS} this reader holds"
            )));
        }
        if blocks_start > reader.limit {
            return Err(Error::corrupt(format!(
                "file data starts at {blocks_start}, past the end of the image"
            )));
        }
        let count = count as usize;
        // Reserve modestly: a hostile count is only believed as far as the
        // inode table actually holds block sizes.
        let mut words = Vec::with_capacity(count.min(1 << 14));
        let mut marks = Vec::with_capacity(count.div_ceil(MARK_EVERY).min(1 << 8));
        let mut pos = blocks_start;
        while words.len() < count {
            let word = cursor.u32()?;
            let len = check_size_word(word, reader.block_size)?;
            if words.len() % MARK_EVERY == 0 {
                marks.push(pos);
            }
            pos = pos
                .checked_add(u64::from(len))
                .filter(|&p| p <= reader.limit)
                .ok_or_else(|| Error::corrupt("file blocks run past the end of the image"))?;
            words.push(word);
        }
        Ok(FileLayout {
            size,
            fragment,
            words,
            marks,
            sequential: Sequential::default(),
        })
    }

    /// Approximate heap bytes held.
    pub fn cost(&self) -> usize {
        self.words.len() * 4 + self.marks.len() * 8
    }

    /// Position and size word of block `i` (< number of blocks).
    fn block(&self, i: usize) -> Result<(u64, u32)> {
        let mark = *self
            .marks
            .get(i / MARK_EVERY)
            .ok_or_else(|| Error::corrupt("block index out of range"))?;
        let first = i - i % MARK_EVERY;
        let before = self.words.get(first..i).unwrap_or(&[]);
        let pos = before
            .iter()
            .fold(mark, |p, w| p + u64::from(w & DATA_SIZE_MASK));
        let word = *self
            .words
            .get(i)
            .ok_or_else(|| Error::corrupt("block index out of range"))?;
        Ok((pos, word))
    }

    /// Reads up to `len` bytes at `offset` for `intent`; short only at the
    /// end of file. Fragment blocks are always kept (other files share
    /// them); read-ahead follows only a program's sequential reads.
    pub fn read(
        &self,
        reader: &Reader,
        fragments: &LookupTable,
        offset: u64,
        len: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(u64::from(len)).min(self.size);
        let bs = u64::from(reader.block_size);
        let keep = intent.keeps(reader.codec.decodes_slowly());
        let demand = intent == ReadIntent::Demand;
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut at = offset;
        while at < end {
            let index = at / bs;
            let block_start = index * bs;
            let block_len = (self.size - block_start).min(bs);
            let within = (at - block_start) as usize;
            let take = ((end - at).min(block_len - within as u64)) as usize;
            if index < self.words.len() as u64 {
                let (pos, word) = self.block(index as usize)?;
                if word & DATA_SIZE_MASK == 0 {
                    out.resize(out.len() + take, 0);
                } else {
                    let data = reader.data_block(pos, word, Some(block_len as usize), keep)?;
                    let piece = data
                        .get(within..within + take)
                        .ok_or_else(|| Error::corrupt("data block is short"))?;
                    out.extend_from_slice(piece);
                }
            } else {
                self.tail(reader, fragments, within, take, demand, &mut out)?;
            }
            at += take as u64;
        }
        if demand && self.sequential.follows(offset, end, bs) {
            self.read_ahead(reader, (end - 1) / bs);
        }
        Ok(out)
    }

    /// The content address of the whole file: BLAKE3 (key-derivation mode,
    /// a context of its own) over the codec, block size, file size, every
    /// block's size word and stored bytes, and the tail's fragment block
    /// (size word, stored bytes) and offset in it. The decoded file is a
    /// pure function of these, so a decoded copy kept under this key (see
    /// [`crate::disk_cache::files`]) is only ever served for a file whose
    /// stored bytes are exactly the ones it was decoded from. Reads the
    /// stored bytes in pieces of [`KEY_READ`] bytes (a bounded buffer per
    /// thread whatever the file's size), parts of [`KEY_PART`] bytes on
    /// several threads.
    pub fn content_key(&self, reader: &Reader, fragments: &LookupTable) -> Result<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("appimagefs 2026-12 whole-file key v1");
        h.update(reader.codec.name().as_bytes());
        h.update(&[0]);
        h.update(&reader.block_size.to_le_bytes());
        h.update(&self.size.to_le_bytes());
        h.update(&(self.words.len() as u64).to_le_bytes());
        let mut stored = 0u64;
        for w in &self.words {
            h.update(&w.to_le_bytes());
            stored += u64::from(w & DATA_SIZE_MASK);
        }
        // The stored bytes are hashed in parts of KEY_PART bytes on up to
        // KEY_THREADS threads (a browser's binary is 100 MB compressed, and
        // an open waits for its key), then the parts' hashes in order.
        let parts = stored.div_ceil(KEY_PART);
        h.update(&parts.to_le_bytes());
        if let Some(&start) = self.marks.first() {
            let hash_part = |k: u64| -> Result<blake3::Hash> {
                let mut ph =
                    blake3::Hasher::new_derive_key("appimagefs 2026-12 whole-file part v1");
                let (from, to) = (k * KEY_PART, ((k + 1) * KEY_PART).min(stored));
                let mut buf = vec![0u8; KEY_READ.min((to - from) as usize)];
                let mut at = from;
                while at < to {
                    let n = (to - at).min(buf.len() as u64) as usize;
                    let piece = buf.get_mut(..n).unwrap_or(&mut []);
                    reader.backing.read_exact_at(piece, start + at)?;
                    ph.update(piece);
                    at += n as u64;
                }
                Ok(ph.finalize())
            };
            let threads = (crate::prefetch::cores() as u64)
                .clamp(1, KEY_THREADS)
                .min(parts);
            // Every `threads`-th part from part `t` on, with its index.
            let share = |t: u64| {
                (t..parts)
                    .step_by(threads as usize)
                    .map(|k| hash_part(k).map(|hash| (k, hash)))
                    .collect::<Result<Vec<_>>>()
            };
            let hashes: Vec<Result<Vec<(u64, blake3::Hash)>>> = if threads <= 1 {
                // One part (most files): no thread started for it.
                vec![share(0)]
            } else {
                std::thread::scope(|s| {
                    let workers: Vec<_> = (0..threads).map(|t| s.spawn(move || share(t))).collect();
                    workers
                        .into_iter()
                        .map(|w| {
                            w.join()
                                .unwrap_or_else(|_| Err(Error::corrupt("a hashing thread failed")))
                        })
                        .collect()
                })
            };
            let mut all = Vec::with_capacity(parts as usize);
            for part in hashes {
                all.extend(part?);
            }
            all.sort_unstable_by_key(|(k, _)| *k);
            for (_, hash) in all {
                h.update(hash.as_bytes());
            }
        }
        match self.fragment {
            None => {
                h.update(&[0]);
            }
            Some((index, offset)) => {
                let (start, word) = fragment_block(reader, fragments, u64::from(index))?;
                let len = check_size_word(word, reader.block_size)?;
                h.update(&[1]);
                h.update(&word.to_le_bytes());
                h.update(&offset.to_le_bytes());
                h.update(&reader.backing.read_vec(start, len as usize)?);
            }
        }
        Ok(*h.finalize().as_bytes())
    }

    /// After a sequential read that ended in block `last`, starts
    /// decompressing the next few blocks on other cores.
    fn read_ahead(&self, reader: &Reader, last: u64) {
        let count = self.words.len() as u64;
        if last + 1 >= count {
            return;
        }
        let upto = (last + 1 + READ_AHEAD_BLOCKS as u64).min(count);
        for i in last + 1..upto {
            if let Ok((pos, word)) = self.block(i as usize) {
                if word & DATA_SIZE_MASK != 0 {
                    reader.prefetch_data_block(pos, word);
                }
            }
        }
    }

    /// Appends `take` bytes at `within` of the file's tail, which is held
    /// in its fragment block, to `out`; with `read_ahead`, the next
    /// fragment blocks are decompressed in the background.
    fn tail(
        &self,
        reader: &Reader,
        fragments: &LookupTable,
        within: usize,
        take: usize,
        read_ahead: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let (index, offset) = self
            .fragment
            .ok_or_else(|| Error::corrupt("file has no block or fragment for its tail"))?;
        let (start, word) = fragment_block(reader, fragments, u64::from(index))?;
        let block = reader.data_block(start, word, None, true)?;
        if read_ahead {
            for next in u64::from(index) + 1..=u64::from(index) + FRAGMENTS_AHEAD {
                if let Ok((start, word)) = fragment_block(reader, fragments, next) {
                    reader.prefetch_data_block(start, word);
                }
            }
        }
        let from = (offset as usize).checked_add(within);
        let piece = from
            .and_then(|f| block.get(f..f.checked_add(take)?))
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "file tail at offset {offset} runs past the end of fragment {index} ({} bytes)",
                    block.len()
                ))
            })?;
        out.extend_from_slice(piece);
        Ok(())
    }
}

/// Position and size word of fragment block `index`.
pub(super) fn fragment_block(
    reader: &Reader,
    fragments: &LookupTable,
    index: u64,
) -> Result<(u64, u32)> {
    let entry = fragments.entry(reader, index)?;
    match (le_u64(&entry, 0), le_u32(&entry, 8)) {
        (Some(start), Some(word)) => Ok((start, word)),
        _ => Err(Error::corrupt("short fragment table entry")),
    }
}
