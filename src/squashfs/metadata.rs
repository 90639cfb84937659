//! Fetching blocks through the shared cache, and a cursor that reads a
//! metadata table across block boundaries.
//!
//! A metadata block is a 2-byte little-endian header (bits 0..14: stored
//! length, bit 15: stored uncompressed) followed by at most 8 KiB of
//! (usually compressed) data. Metadata blocks are cached as the 2-byte
//! header followed by the decompressed bytes, so a cursor can step to the
//! next block without reading the header again.
//!
//! Data and fragment blocks are described by a 32-bit size word (bits
//! 0..23: stored length, bit 24: stored uncompressed) and are cached as the
//! decompressed bytes.

use std::sync::Arc;

use crate::backing::Backing;
use crate::cache::{Block, BlockCache, BlockKey};
use crate::decompress::Codec;
use crate::error::{Error, Result};

/// Largest decompressed size of one metadata block.
pub const METADATA_SIZE: usize = 8192;

/// Metadata header bit: the block is stored uncompressed.
const META_UNCOMPRESSED: u16 = 0x8000;

/// Data/fragment size word bit: the block is stored uncompressed.
pub const DATA_UNCOMPRESSED: u32 = 1 << 24;

/// Mask of the stored length in a data/fragment size word.
pub const DATA_SIZE_MASK: u32 = DATA_UNCOMPRESSED - 1;

/// Everything needed to fetch and decompress the blocks of one opened image.
pub struct Reader {
    /// The image bytes (offset 0 = superblock).
    pub backing: Backing,
    /// The decompression cache shared by every image.
    pub cache: Arc<BlockCache>,
    /// This opening's id in the cache.
    pub image: u64,
    /// Compression of every block.
    pub codec: Codec,
    /// Data block size.
    pub block_size: u32,
    /// No read may reach past this position (the superblock's `bytes_used`,
    /// capped by the backing's length).
    pub limit: u64,
}

/// One metadata block as held in the cache: on-disk header, then data.
#[derive(Clone)]
pub struct MetaBlock {
    raw: Block,
    next: u64,
}

impl MetaBlock {
    /// The decompressed bytes.
    pub fn data(&self) -> &[u8] {
        self.raw.get(2..).unwrap_or(&[])
    }

    /// Position of the block that follows this one on disk.
    pub fn next(&self) -> u64 {
        self.next
    }
}

impl Reader {
    /// Fetches the metadata block whose header is at `pos`; the whole stored
    /// block must end at or before `end`.
    pub fn meta_block(&self, pos: u64, end: u64) -> Result<MetaBlock> {
        let end = end.min(self.limit);
        let key = BlockKey {
            image: self.image,
            pos,
        };
        let raw = self.cache.get_or_load(key, || {
            if pos.checked_add(2).is_none_or(|e| e > end) {
                return Err(Error::corrupt(format!(
                    "metadata block at {pos} lies outside its table (which ends at {end})"
                )));
            }
            let mut header = [0u8; 2];
            self.backing.read_exact_at(&mut header, pos)?;
            let word = u16::from_le_bytes(header);
            let len = usize::from(word & !META_UNCOMPRESSED);
            if len == 0 || len > METADATA_SIZE {
                return Err(Error::corrupt(format!(
                    "metadata block at {pos} claims a stored length of {len}"
                )));
            }
            if (pos + 2).checked_add(len as u64).is_none_or(|e| e > end) {
                return Err(Error::corrupt(format!(
                    "metadata block at {pos} ({len} bytes) runs past its table end {end}"
                )));
            }
            let mut stored = vec![0u8; len];
            self.backing.read_exact_at(&mut stored, pos + 2)?;
            let data = if word & META_UNCOMPRESSED != 0 {
                stored
            } else {
                self.cache.decompress(self.codec, &stored, METADATA_SIZE)?
            };
            // squashfs-tools never writes an empty block. Refusing one means
            // every block a cursor crosses yields a byte, so the work of a
            // read is bounded by the bytes it reads, not by a chain of empty
            // blocks (k entries pointing into k empty blocks made listing a
            // directory cost k²/2 block fetches).
            if data.is_empty() {
                return Err(Error::corrupt(format!(
                    "metadata block at {pos} decompresses to nothing"
                )));
            }
            let mut out = Vec::with_capacity(2 + data.len());
            out.extend_from_slice(&header);
            out.extend_from_slice(&data);
            Ok(out)
        })?;
        // Re-check what the cached copy says: it may have been loaded under
        // another table's bound, or (in a corrupt image) be some other kind
        // of block that happens to live at the same position.
        let word = match raw.get(..2) {
            Some(h) => u16::from_le_bytes([h[0], h[1]]),
            None => return Err(Error::corrupt(format!("metadata block at {pos} is empty"))),
        };
        let len = u64::from(word & !META_UNCOMPRESSED);
        let next = pos.checked_add(2 + len).filter(|&n| n <= end);
        let next = match next {
            Some(n) if len != 0 && raw.len() > 2 && raw.len() - 2 <= METADATA_SIZE => n,
            _ => {
                return Err(Error::corrupt(format!(
                    "metadata block at {pos} does not fit its table"
                )))
            }
        };
        Ok(MetaBlock { raw, next })
    }

    /// Starts decompressing the data block at `pos` (size word `word`) in
    /// the background, unless it is a hole, out of range, cached or already
    /// being loaded. Read-ahead only: errors are left for the real read.
    pub fn prefetch_data_block(&self, pos: u64, word: u32) {
        let Ok(len) = check_size_word(word, self.block_size) else {
            return;
        };
        if len == 0
            || pos
                .checked_add(u64::from(len))
                .is_none_or(|e| e > self.limit)
        {
            return;
        }
        let (backing, codec, block_size) = (self.backing.clone(), self.codec, self.block_size);
        let key = BlockKey {
            image: self.image,
            pos,
        };
        let cache = self.cache.clone();
        self.cache.prefetch(key, move || {
            load_data_block(&cache, &backing, codec, block_size, pos, len, word)
        });
    }

    /// Fetches the data or fragment block stored at `pos` with size word
    /// `word` (which must not be 0, a sparse hole). When `expected` is given,
    /// the block must decompress to exactly that many bytes. A block this
    /// call decompresses is kept in the cache only if `keep` (see
    /// [`BlockCache::get_or_load_with`]).
    pub fn data_block(
        &self,
        pos: u64,
        word: u32,
        expected: Option<usize>,
        keep: bool,
    ) -> Result<Block> {
        let len = check_size_word(word, self.block_size)?;
        if len == 0 {
            return Err(Error::corrupt(format!("empty data block at {pos}")));
        }
        let end = pos.checked_add(u64::from(len));
        if end.is_none_or(|e| e > self.limit) {
            return Err(Error::corrupt(format!(
                "data block at {pos} ({len} bytes) passes the end of the image"
            )));
        }
        let key = BlockKey {
            image: self.image,
            pos,
        };
        let block = self.cache.get_or_load_with(key, keep, || {
            load_data_block(
                &self.cache,
                &self.backing,
                self.codec,
                self.block_size,
                pos,
                len,
                word,
            )
        })?;
        if block.len() > self.block_size as usize {
            return Err(Error::corrupt(format!(
                "data block at {pos} is larger than the block size"
            )));
        }
        if let Some(want) = expected {
            if block.len() != want {
                return Err(Error::corrupt(format!(
                    "data block at {pos} holds {} bytes, expected {want}",
                    block.len()
                )));
            }
        }
        Ok(block)
    }
}

/// Validates a data/fragment size word and returns its stored length
/// (0 means a sparse hole).
pub fn check_size_word(word: u32, block_size: u32) -> Result<u32> {
    let len = word & DATA_SIZE_MASK;
    if word & !(DATA_SIZE_MASK | DATA_UNCOMPRESSED) != 0 || len > block_size {
        return Err(Error::corrupt(format!(
            "data block size word {word:#x} is invalid for block size {block_size}"
        )));
    }
    Ok(len)
}

/// A region of the image holding consecutive metadata blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    /// Position of the first block (references are relative to it).
    pub start: u64,
    /// No block of the table reaches past this position.
    pub end: u64,
}

impl Table {
    /// Bytes the table occupies on disk.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// Reads consecutive bytes of a metadata table, continuing into the next
/// block when one runs out, never leaving the table.
pub struct Cursor<'a> {
    reader: &'a Reader,
    table: Table,
    block_pos: u64,
    offset: usize,
    block: Option<MetaBlock>,
}

impl<'a> Cursor<'a> {
    /// A cursor at byte `offset` of the block `rel_block` bytes after the
    /// table's start.
    pub fn new(reader: &'a Reader, table: Table, rel_block: u64, offset: usize) -> Result<Self> {
        let block_pos = table
            .start
            .checked_add(rel_block)
            .filter(|&p| p < table.end)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "metadata reference {rel_block} lies outside its table ({} bytes)",
                    table.len()
                ))
            })?;
        if offset >= METADATA_SIZE {
            return Err(Error::corrupt(format!(
                "metadata offset {offset} is past the block size"
            )));
        }
        Ok(Cursor {
            reader,
            table,
            block_pos,
            offset,
            block: None,
        })
    }

    /// A cursor at a 48-bit reference `(block << 16) | offset`.
    pub fn at_ref(reader: &'a Reader, table: Table, reference: u64) -> Result<Self> {
        Cursor::new(
            reader,
            table,
            reference >> 16,
            (reference & 0xffff) as usize,
        )
    }

    /// Starts from `held` (a block position and the block fetched there)
    /// when that is the block this cursor starts in, instead of fetching
    /// it from the cache again.
    pub fn reusing(mut self, held: &mut Option<(u64, MetaBlock)>) -> Self {
        if let Some((pos, block)) = held.take() {
            if pos == self.block_pos {
                self.block = Some(block);
            }
        }
        self
    }

    /// Hands back the block the cursor is in (with its position), for
    /// [`reusing`](Self::reusing) by the next cursor.
    pub fn into_held(self) -> Option<(u64, MetaBlock)> {
        let pos = self.block_pos;
        self.block.map(|b| (pos, b))
    }

    /// The unread bytes of the current block, loading it if needed; empty
    /// only at a block boundary (the caller then calls [`Self::advance`]).
    fn available(&mut self) -> Result<&[u8]> {
        if self.block.is_none() {
            self.block = Some(self.reader.meta_block(self.block_pos, self.table.end)?);
        }
        let data = match &self.block {
            Some(b) => b.data(),
            None => &[],
        };
        data.get(self.offset..).ok_or_else(|| {
            Error::corrupt(format!(
                "metadata offset {} is past the end of the block at {} ({} bytes)",
                self.offset,
                self.block_pos,
                data.len()
            ))
        })
    }

    /// Moves to the start of the next block.
    fn advance(&mut self) {
        if let Some(b) = self.block.take() {
            self.block_pos = b.next();
        }
        self.offset = 0;
    }

    /// Passes the next `n` bytes to `sink`, in pieces.
    fn take(&mut self, mut n: u64, mut sink: impl FnMut(&[u8])) -> Result<()> {
        while n > 0 {
            let avail = self.available()?;
            if avail.is_empty() {
                self.advance();
                continue;
            }
            let k = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            sink(&avail[..k]);
            self.offset += k;
            n -= k as u64;
        }
        Ok(())
    }

    /// The next `n` bytes when the current block, already loaded, holds
    /// them all (the common case, served without a copy loop).
    fn within_block(&mut self, n: usize) -> Option<&[u8]> {
        let data = self.block.as_ref()?.data();
        let bytes = data.get(self.offset..self.offset.checked_add(n)?)?;
        self.offset += n;
        Some(bytes)
    }

    /// Fills `out` completely.
    pub fn read(&mut self, out: &mut [u8]) -> Result<()> {
        if let Some(bytes) = self.within_block(out.len()) {
            out.copy_from_slice(bytes);
            return Ok(());
        }
        let mut done = 0;
        self.take(out.len() as u64, |piece| {
            if let Some(dst) = out.get_mut(done..done + piece.len()) {
                dst.copy_from_slice(piece);
            }
            done += piece.len();
        })
    }

    /// Reads the next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        self.read(&mut out)?;
        Ok(out)
    }

    /// Reads `n` bytes into a new vector, growing it only as bytes arrive.
    pub fn read_vec(&mut self, n: usize) -> Result<Vec<u8>> {
        if let Some(bytes) = self.within_block(n) {
            return Ok(bytes.to_vec());
        }
        let mut v = Vec::with_capacity(n.min(METADATA_SIZE));
        self.take(n as u64, |piece| v.extend_from_slice(piece))?;
        Ok(v)
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Little-endian u32 at `at` of `b`, if present.
pub fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Little-endian u64 at `at` of `b`, if present.
pub fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Reads the `len` stored bytes of a data block at `pos` and decompresses
/// them (unless the size word says they are stored raw).
fn load_data_block(
    cache: &BlockCache,
    backing: &Backing,
    codec: Codec,
    block_size: u32,
    pos: u64,
    len: u32,
    word: u32,
) -> Result<Vec<u8>> {
    if word & DATA_UNCOMPRESSED != 0 {
        backing.read_vec(pos, len as usize)
    } else {
        backing.with_bytes(pos, len as usize, |stored| {
            cache.decompress(codec, stored, block_size as usize)
        })
    }
}
