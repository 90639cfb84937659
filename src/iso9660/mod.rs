//! ISO 9660 reader for type 1 AppImages (Rock Ridge, Joliet, zisofs).
//!
//! A type 1 AppImage is an ISO 9660 image whose system area (the first
//! 32 KiB) holds the ELF runtime, so the image starts at byte 0 of the file.
//! [`open`] reads the volume descriptors and walks the whole directory tree
//! once (`walk.rs`) into a vector of plain nodes: node id `n` is `nodes[n - 1]`
//! (the root is 1), directory listings are sorted vectors searched by binary
//! search, and hard links (Rock Ridge serial numbers) share one node. After
//! that, metadata operations touch no I/O, and file data is read with
//! `pread` through [`Backing`]:
//!
//! - stored files: straight from their extent(s), without the block cache
//!   (the kernel's page cache already holds the backing file's pages, and
//!   FUSE keeps its own page cache of the file);
//! - zisofs files (`zisofs.rs`): one zlib block at a time, through the shared
//!   [`BlockCache`] keyed by the compressed block's byte position, with
//!   read-ahead of the next blocks when a file is read sequentially.
//!
//! Everything is parsed here rather than with the `cdfs` crate (0.2.3), which
//! mis-reads valid Rock Ridge images made by xorriso: a name containing ';'
//! aborts a whole directory, "." and ".." come back as empty names,
//! non-UTF-8 names fall back to 8.3 names, symlink targets longer than one
//! `SL` entry vanish, relocated directories are cut at 2048 bytes, `ZF`/`PN`
//! entries and multi-extent files are dropped, ISO 9660:1999 descriptors make
//! the image unreadable, and assertions panic on hostile input.
//!
//! Not supported: extended attributes and ACLs (AAIP `AL` entries, so
//! `xattrs` is always empty), zisofs version 2 (`PZ`, read fails with
//! `Unsupported`), interleaved files (same), sessions other than the one
//! whose descriptors are at sector 16, block sizes other than 2048.

mod names;
mod node;
mod record;
mod susp;
mod volume;
mod walk;
mod zisofs;

#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::backing::Backing;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::tree::{Attr, DirEntry, ImageInfo, ImageTree, NodeId, ReadIntent};

use node::{Content, Extent, FileData, Node};

/// An opened ISO 9660 image: the whole tree in memory, file data read on
/// demand. Safe to share between threads.
pub struct IsoImage {
    backing: Backing,
    cache: Arc<BlockCache>,
    image_id: u64,
    nodes: Vec<Node>,
    zisofs: bool,
    /// What `nodes` holds, in bytes (the tree never changes once read).
    memory: usize,
}

/// Opens the ISO 9660 image in `backing` (offset 0 = start of the ISO).
///
/// Reads the volume descriptors and the whole directory tree (bounded in
/// time and memory by the image size); an image that contradicts the format
/// gives [`Error::Corrupt`]. File contents are not read.
pub fn open(backing: Backing, cache: Arc<BlockCache>) -> Result<IsoImage> {
    // The walk never panics on purpose; this only keeps a bug in it from
    // taking the caller's thread down.
    let tree = catch_unwind(AssertUnwindSafe(|| walk::read_tree(&backing)))
        .map_err(|_| Error::corrupt("internal error while reading the ISO 9660 tree"))??;
    let image_id = cache.new_image_id();
    let memory = std::mem::size_of::<IsoImage>() + node::memory_bytes(&tree.nodes);
    Ok(IsoImage {
        backing,
        cache,
        image_id,
        nodes: tree.nodes,
        zisofs: tree.zisofs,
        memory,
    })
}

impl IsoImage {
    fn node(&self, id: NodeId) -> Result<&Node> {
        node::index_of(id)
            .and_then(|i| self.nodes.get(i))
            .ok_or(Error::NotFound)
    }

    fn listing(&self, dir: NodeId) -> Result<&Arc<Vec<DirEntry>>> {
        match &self.node(dir)?.content {
            Content::Dir(entries) => Ok(entries),
            _ => Err(Error::NotDir),
        }
    }

    /// Reads a stored (uncompressed) file from its extents.
    fn read_extents(&self, extents: &[Extent], offset: u64, size: u32) -> Result<Vec<u8>> {
        let total: u64 = extents.iter().map(|e| e.len).sum();
        if offset >= total {
            return Ok(Vec::new());
        }
        let end = total.min(offset.saturating_add(u64::from(size)));
        let mut out = vec![0u8; (end - offset) as usize];
        let mut start = 0u64; // file offset of the current extent
        for e in extents {
            let (lo, hi) = (offset.max(start), end.min(start + e.len));
            if lo < hi {
                let dst = &mut out[(lo - offset) as usize..(hi - offset) as usize];
                self.backing.read_exact_at(dst, e.pos + (lo - start))?;
            }
            start += e.len;
            if start >= end {
                break;
            }
        }
        Ok(out)
    }
}

impl Drop for IsoImage {
    fn drop(&mut self) {
        if self.zisofs {
            self.cache.forget_image(self.image_id);
        }
    }
}

impl ImageTree for IsoImage {
    fn memory_bytes(&self) -> usize {
        self.memory
    }

    fn root(&self) -> NodeId {
        node::id_of(0)
    }

    fn attr(&self, node: NodeId) -> Result<Attr> {
        Ok(self.node(node)?.attr)
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let entries = self.listing(dir)?;
        Ok(entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| entries[i].node))
    }

    fn read_dir(&self, dir: NodeId) -> Result<Arc<Vec<DirEntry>>> {
        self.listing(dir).cloned()
    }

    fn read_with(
        &self,
        node: NodeId,
        offset: u64,
        size: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>> {
        match &self.node(node)?.content {
            Content::File(FileData::Extents(extents)) => self.read_extents(extents, offset, size),
            Content::File(FileData::Zisofs(z)) => {
                let at = zisofs::Source {
                    backing: &self.backing,
                    cache: &self.cache,
                    image: self.image_id,
                };
                z.read(&at, offset, size, intent)
            }
            Content::File(FileData::Broken(msg)) => Err(Error::Corrupt(msg.clone())),
            Content::File(FileData::Unsupported(msg)) => Err(Error::Unsupported(msg.clone())),
            Content::Dir(_) => Err(Error::IsDir),
            Content::Symlink(_) | Content::Special => Err(Error::Invalid),
        }
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        match &self.node(node)?.content {
            Content::Symlink(target) => Ok(target.clone()),
            _ => Err(Error::Invalid),
        }
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.node(node)?;
        Ok(Vec::new())
    }

    fn block_size(&self) -> u32 {
        record::SECTOR as u32
    }

    fn info(&self) -> ImageInfo {
        ImageInfo {
            format: "iso9660",
            compression: if self.zisofs { "zisofs" } else { "none" }.to_string(),
            block_size: record::SECTOR as u32,
            inode_count: Some(self.nodes.len() as u64),
        }
    }
}
