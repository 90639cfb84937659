//! zisofs (version 1) compressed files.
//!
//! A file is zisofs-compressed when its record has a `ZF` entry with
//! algorithm `pz` AND its data starts with the zisofs header:
//!
//! ```text
//! 0   8  magic 37 E4 53 96 C9 DB D6 07
//! 8   4  uncompressed size, u32 LE
//! 12  1  header size / 4 (= 4)
//! 13  1  log2 of the block size (15..=17)
//! 14  2  zero
//! 16     ceil(size / block) + 1 block pointers, u32 LE, offsets from the
//!        start of the file data
//! ```
//!
//! Block `i` is the zlib stream in `[p[i], p[i+1])` and inflates to one block
//! (the last one may be shorter); an empty range is a block of zeros.
//!
//! Everything that does not need the file's data is checked when the tree is
//! read ([`ZisofsFile::new`]), so `st_size` is known without I/O; the header
//! is read and compared with the `ZF` entry on the first read of the file,
//! and each pair of pointers is checked (ordered, after the pointer table,
//! inside the extent, not longer than a worst-case zlib stream) when its
//! block is read. Decompressed blocks go through the shared [`BlockCache`],
//! keyed by the byte position of the compressed block in the image; a read
//! that starts the file or starts near where the previous read ended queues
//! the next [`READ_AHEAD_BLOCKS`] blocks on the cache's background pool.

use std::sync::{Arc, OnceLock};

use crate::backing::Backing;
use crate::cache::{Block, BlockCache, BlockKey};
use crate::decompress::Codec;
use crate::error::{Error, Result};
use crate::prefetch::Sequential;
use crate::tree::ReadIntent;

use super::susp::Zf;

/// The zisofs header magic.
pub(crate) const MAGIC: [u8; 8] = [0x37, 0xE4, 0x53, 0x96, 0xC9, 0xDB, 0xD6, 0x07];
/// Header length in bytes (and `4 *` the header-size field).
const HEADER_LEN: u64 = 16;
/// Blocks decompressed ahead of a sequential reader.
const READ_AHEAD_BLOCKS: u64 = 4;

/// One zisofs file: where its data is and how it is cut into blocks.
#[derive(Debug)]
pub(crate) struct ZisofsFile {
    /// Byte position of the file data (the header) in the image.
    pos: u64,
    /// Length of the extent in bytes.
    extent_len: u64,
    /// Uncompressed size.
    size: u64,
    /// log2 of the block size.
    log2_block: u8,
    /// Result of checking the header against the `ZF` entry, done once.
    header: OnceLock<std::result::Result<(), String>>,
    /// Tells sequential reads of this file, which read ahead.
    sequential: Sequential,
}

impl ZisofsFile {
    /// Checks a `ZF` entry against the extent it describes; `Err` explains
    /// why the file cannot be zisofs version 1.
    pub fn new(zf: &Zf, pos: u64, extent_len: u64) -> std::result::Result<ZisofsFile, String> {
        if &zf.algorithm != b"pz" {
            return Err(format!(
                "unsupported ZF algorithm {:?}",
                String::from_utf8_lossy(&zf.algorithm)
            ));
        }
        if u64::from(zf.header_div4) * 4 != HEADER_LEN {
            return Err(format!(
                "ZF header size {} is not 16",
                u64::from(zf.header_div4) * 4
            ));
        }
        if !(15..=17).contains(&zf.log2_block) {
            return Err(format!(
                "ZF block size 2^{} is outside 2^15..2^17",
                zf.log2_block
            ));
        }
        let size = u64::from(zf.size);
        let blocks = size.div_ceil(1 << zf.log2_block);
        // The header and the pointer table must fit in the extent; this bounds
        // the uncompressed size by the extent length (at most one block of
        // output per 4 bytes of pointer).
        let table_end = HEADER_LEN + 4 * (blocks + 1);
        if table_end > extent_len {
            return Err(format!(
                "zisofs size {size} needs {table_end} bytes of header and pointers, \
                 more than the extent of {extent_len}"
            ));
        }
        Ok(ZisofsFile {
            pos,
            extent_len,
            size,
            log2_block: zf.log2_block,
            header: OnceLock::new(),
            sequential: Sequential::default(),
        })
    }

    /// Uncompressed size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Byte position of the file data in the image.
    #[cfg(test)]
    pub fn pos(&self) -> u64 {
        self.pos
    }

    fn block_size(&self) -> u64 {
        1 << self.log2_block
    }

    fn table_end(&self) -> u64 {
        HEADER_LEN + 4 * (self.blocks() + 1)
    }

    /// Reads the header once and checks it against the `ZF` entry.
    fn check_header(&self, backing: &Backing) -> Result<()> {
        if let Some(done) = self.header.get() {
            return done.clone().map_err(Error::Corrupt);
        }
        let mut h = [0u8; HEADER_LEN as usize];
        // An I/O error is not a verdict on the image: report it, keep no result.
        backing.read_exact_at(&mut h, self.pos)?;
        let verdict = if h[..8] != MAGIC {
            Err("ZF entry but no zisofs header magic".to_string())
        } else if u64::from(u32::from_le_bytes([h[8], h[9], h[10], h[11]])) != self.size
            || u64::from(h[12]) * 4 != HEADER_LEN
            || h[13] != self.log2_block
        {
            Err("zisofs header disagrees with the ZF entry".to_string())
        } else {
            Ok(())
        };
        self.header
            .get_or_init(|| verdict)
            .clone()
            .map_err(Error::Corrupt)
    }

    /// Reads up to `len` bytes at `offset` of the uncompressed file for
    /// `intent`; when a program's reads look sequential, the next blocks are
    /// decompressed ahead on the cache's background pool.
    pub fn read(
        &self,
        at: &Source<'_>,
        offset: u64,
        len: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>> {
        if offset >= self.size || len == 0 {
            return Ok(Vec::new());
        }
        self.check_header(at.backing)?;
        let end = self.size.min(offset + u64::from(len));
        let bs = self.block_size();
        let (first, last) = (offset / bs, (end - 1) / bs);
        // Pointers of the read's blocks and of the read-ahead window.
        let blocks = self.blocks();
        let hi = blocks.min(last + 1 + READ_AHEAD_BLOCKS);
        let ptrs = self.pointers(at.backing, first, hi)?;
        let ptr = |i: u64| ptrs[(i - first) as usize];
        let keep = intent.keeps(Codec::Zlib.decodes_slowly());
        let mut out = Vec::with_capacity((end - offset) as usize);
        for i in first..=last {
            let block = self.block(at, i, ptr(i), ptr(i + 1), keep)?;
            let start = i * bs;
            let from = (offset.max(start) - start) as usize;
            let to = (end.min(start + bs) - start) as usize;
            out.extend_from_slice(&block[from..to]);
        }
        if intent == ReadIntent::Demand && self.sequential.follows(offset, end, bs) {
            for i in last + 1..hi {
                self.prefetch(at, i, ptr(i), ptr(i + 1));
            }
        }
        Ok(out)
    }

    /// Number of blocks.
    fn blocks(&self) -> u64 {
        self.size.div_ceil(self.block_size())
    }

    /// Block pointers `lo..=hi` (at most `blocks()`).
    fn pointers(&self, backing: &Backing, lo: u64, hi: u64) -> Result<Vec<u64>> {
        let raw = backing.read_vec(self.pos + HEADER_LEN + 4 * lo, 4 * (hi - lo + 1) as usize)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect())
    }

    fn key(&self, at: &Source<'_>, p0: u64) -> BlockKey {
        BlockKey {
            image: at.image,
            pos: self.pos + p0,
        }
    }

    /// Checks the pointers `[p0, p1)` of block `i`: ordered, after the
    /// pointer table, inside the extent, and no longer than a zlib stream
    /// of one block can be (a few bytes per 64 KiB over the input; the
    /// margin is generous but nowhere near a hostile length).
    fn check_pointers(&self, i: u64, p0: u64, p1: u64) -> Result<()> {
        let bs = self.block_size();
        if p0 > p1 || p0 < self.table_end() || p1 > self.extent_len || p1 - p0 > bs + bs / 8 + 64 {
            return Err(Error::corrupt(format!(
                "zisofs block {i}: pointers {p0}..{p1} outside {}..{} or too far apart",
                self.table_end(),
                self.extent_len
            )));
        }
        Ok(())
    }

    /// How many bytes of block `i` belong to the file.
    fn block_len(&self, i: u64) -> usize {
        self.block_size().min(self.size - i * self.block_size()) as usize
    }

    /// Block `i`, stored in `[p0, p1)` of the file data; kept in the cache
    /// if this call decompresses it only when `keep`.
    fn block(&self, at: &Source<'_>, i: u64, p0: u64, p1: u64, keep: bool) -> Result<Block> {
        self.check_pointers(i, p0, p1)?;
        let want = self.block_len(i);
        if p0 == p1 {
            return Ok(Block::new(vec![0u8; want]));
        }
        let (backing, cache, bs) = (at.backing, at.cache, self.block_size() as usize);
        let pos = self.pos + p0;
        let block = at.cache.get_or_load_with(self.key(at, p0), keep, || {
            backing.with_bytes(pos, (p1 - p0) as usize, |stored| {
                cache.decompress(Codec::Zlib, stored, bs)
            })
        })?;
        if block.len() < want {
            return Err(Error::corrupt(format!(
                "zisofs block {i} inflates to {} bytes, expected {want}",
                block.len()
            )));
        }
        Ok(block)
    }

    /// Queues block `i` for decompression in the background, if its
    /// pointers are sane and it is not a block of zeros.
    fn prefetch(&self, at: &Source<'_>, i: u64, p0: u64, p1: u64) {
        if p0 == p1 || self.check_pointers(i, p0, p1).is_err() {
            return;
        }
        let (backing, cache, bs) = (
            at.backing.clone(),
            at.cache.clone(),
            self.block_size() as usize,
        );
        let pos = self.pos + p0;
        at.cache.prefetch(self.key(at, p0), move || {
            backing.with_bytes(pos, (p1 - p0) as usize, |stored| {
                cache.decompress(Codec::Zlib, stored, bs)
            })
        });
    }
}

/// Where zisofs blocks are read from and cached.
pub(crate) struct Source<'a> {
    /// The image.
    pub backing: &'a Backing,
    /// The shared block cache.
    pub cache: &'a Arc<BlockCache>,
    /// The image's id in the cache.
    pub image: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zf(size: u32, log2: u8) -> Zf {
        Zf {
            algorithm: *b"pz",
            header_div4: 4,
            log2_block: log2,
            size,
        }
    }

    #[test]
    fn zf_entries_are_checked_against_the_extent() {
        assert!(ZisofsFile::new(&zf(100, 15), 0, 24).is_ok());
        assert!(ZisofsFile::new(&zf(100, 15), 0, 23).is_err());
        assert!(ZisofsFile::new(&zf(100, 14), 0, 4096).is_err());
        assert!(ZisofsFile::new(&zf(100, 18), 0, 4096).is_err());
        assert!(ZisofsFile::new(&zf(u32::MAX, 15), 0, 4096).is_err());
        let mut bad = zf(100, 15);
        bad.algorithm = *b"PZ";
        assert!(ZisofsFile::new(&bad, 0, 4096).is_err());
        bad = zf(100, 15);
        bad.header_div4 = 0;
        assert!(ZisofsFile::new(&bad, 0, 4096).is_err());
        // Empty file: header plus one pointer.
        assert_eq!(ZisofsFile::new(&zf(0, 16), 0, 20).unwrap().size(), 0);
    }
}
