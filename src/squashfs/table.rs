//! Lookup tables: fixed-size entries packed into metadata blocks whose
//! positions are listed, as u64s, in an index array (the id table, the
//! fragment table and the xattr id table all work this way).
//!
//! The index array is read on first use and kept; the entry blocks go
//! through the shared cache like every other block.

use std::sync::OnceLock;

use super::metadata::{le_u32, le_u64, Reader, METADATA_SIZE};
use super::superblock::NO_TABLE;
use crate::error::{Error, Result};

/// One lookup table of the image.
pub struct LookupTable {
    name: &'static str,
    index_pos: u64,
    blocks_end: u64,
    count: u64,
    entry_size: usize,
    blocks: OnceLock<Vec<u64>>,
}

impl LookupTable {
    /// Bytes of the block positions read so far.
    pub fn memory_bytes(&self) -> usize {
        self.blocks
            .get()
            .map_or(0, |b| b.capacity() * std::mem::size_of::<u64>())
    }

    /// A table of `count` entries of `entry_size` bytes (which divides
    /// 8192), whose index array is at `index_pos` and whose blocks all end
    /// at or before `blocks_end`.
    pub fn new(
        name: &'static str,
        index_pos: u64,
        blocks_end: u64,
        count: u64,
        entry_size: usize,
    ) -> LookupTable {
        LookupTable {
            name,
            index_pos,
            blocks_end,
            count,
            entry_size,
            blocks: OnceLock::new(),
        }
    }

    /// Number of entries.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The positions of the entry blocks, read on first use.
    fn blocks(&self, reader: &Reader) -> Result<&[u64]> {
        if let Some(b) = self.blocks.get() {
            return Ok(b);
        }
        if self.index_pos == NO_TABLE {
            return Err(Error::corrupt(format!(
                "the {} table is missing",
                self.name
            )));
        }
        let n = self
            .count
            .checked_mul(self.entry_size as u64)
            .map(|bytes| bytes.div_ceil(METADATA_SIZE as u64))
            .and_then(|n| n.checked_mul(8))
            .filter(|&len| {
                self.index_pos
                    .checked_add(len)
                    .is_some_and(|e| e <= reader.limit)
            })
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "the {} table index ({} entries at {}) passes the end of the image",
                    self.name, self.count, self.index_pos
                ))
            })?;
        let raw = reader.backing.read_vec(self.index_pos, n as usize)?;
        let blocks: Vec<u64> = raw.chunks_exact(8).filter_map(|c| le_u64(c, 0)).collect();
        let _ = self.blocks.set(blocks);
        Ok(self.blocks.get().map(Vec::as_slice).unwrap_or(&[]))
    }

    /// The bytes of entry `i`.
    pub fn entry(&self, reader: &Reader, i: u64) -> Result<Vec<u8>> {
        if i >= self.count {
            return Err(Error::corrupt(format!(
                "{} index {i} is out of range ({} entries)",
                self.name, self.count
            )));
        }
        let byte = i * self.entry_size as u64; // i < count <= u32::MAX
        let block_no = (byte / METADATA_SIZE as u64) as usize;
        let offset = (byte % METADATA_SIZE as u64) as usize;
        let pos = *self.blocks(reader)?.get(block_no).ok_or_else(|| {
            Error::corrupt(format!("{} index block {block_no} is missing", self.name))
        })?;
        let block = reader.meta_block(pos, self.blocks_end)?;
        block
            .data()
            .get(offset..offset + self.entry_size)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "{} entry {i} lies past the end of its block",
                    self.name
                ))
            })
    }

    /// Entry `i` read as a little-endian u32 (the id table).
    pub fn entry_u32(&self, reader: &Reader, i: u64) -> Result<u32> {
        let e = self.entry(reader, i)?;
        le_u32(&e, 0).ok_or_else(|| Error::corrupt("short lookup table entry"))
    }
}
