//! DwarFS reader (AppImages made by uruntime with a DwarFS payload).
//!
//! [`open`] reads the section list (the trailing section index, or the
//! headers one by one), then the metadata schema and metadata sections,
//! which hold the whole tree: DwarFS keeps no per-directory blocks, so the
//! root cannot be listed without them. The frozen-thrift decoding is the
//! `dwarfs` crate's; the checked index over it is ours (see `index.rs` for
//! why). File data is read lazily, a page of a block at a time, through the
//! shared [`BlockCache`] (see `blocks.rs`).
//!
//! Node ids are DwarFS inode numbers plus one, so hard links share a node
//! id. Nothing in an image can make this reader panic: every index is
//! checked once at open, and blocks are decoded with hard output limits.
//! Limits: metadata of at most [`MAX_METADATA`] bytes, at most
//! [`index::MAX_INODES`] inodes, block sizes up to 1 GiB, formats 2.3 to
//! 2.5 (mkdwarfs 0.5 to 0.12), codecs none, zstd, lzma and lz4; anything
//! else is an error for that image alone.

mod blocks;
mod codec;
mod index;
pub mod section;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use dwarfs::metadata::{Metadata, Schema};
use dwarfs::section::SectionType;

use self::blocks::Blocks;
use self::index::Index;
use self::section::Section;
use crate::backing::Backing;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::prefetch::Sequential;
use crate::tree::{Attr, DirEntry, ImageInfo, ImageTree, Kind, NodeId, ReadIntent};

/// Largest metadata section (decoded) this reader loads. It is held in
/// memory while the image is open; an AppImage of 100,000 files has a few
/// MiB.
pub const MAX_METADATA: usize = 256 << 20;

/// Largest schema section.
const MAX_SCHEMA: usize = 1 << 20;

/// Read-ahead trackers per image (files share them by inode number).
const TRACKERS: usize = 64;

/// Chunks looked at past a read's end for the file's next block.
const AHEAD_CHUNKS: usize = 16;

/// An opened DwarFS image.
pub struct DwarfsImage {
    index: Index,
    blocks: Arc<Blocks>,
    version: (u8, u8),
    cache: Arc<BlockCache>,
    image: u64,
    sequential: Vec<Sequential>,
    /// What the image holds in memory, in bytes (fixed once opened).
    memory: usize,
}

/// Opens the DwarFS image in `backing` (offset 0 = its first section).
pub fn open(backing: Backing, cache: Arc<BlockCache>) -> Result<DwarfsImage> {
    let sections = section::sections(&backing)?;
    let first = sections
        .first()
        .ok_or_else(|| Error::corrupt("DwarFS image without sections"))?;
    let version = (
        first.header.magic_version.major,
        first.header.magic_version.minor,
    );
    let schema = unique(
        &sections,
        SectionType::METADATA_V2_SCHEMA,
        "metadata schema",
    )?;
    let meta = unique(&sections, SectionType::METADATA_V2, "metadata")?;
    let schema = section::read_payload(&backing, schema, MAX_SCHEMA)?;
    let schema = Schema::parse(&schema)
        .map_err(|e| Error::corrupt(format!("DwarFS metadata schema: {e}")))?;
    let meta = section::read_payload(&backing, meta, MAX_METADATA)?;
    let meta = Metadata::parse(&schema, &meta)
        .map_err(|e| Error::corrupt(format!("DwarFS metadata: {e}")))?;
    let index = Index::new(meta)?;
    let image = cache.new_image_id();
    let blocks = Blocks::new(backing, cache.clone(), image, &sections, index.block_size());
    let memory = std::mem::size_of::<DwarfsImage>()
        + std::mem::size_of::<Blocks>()
        + std::mem::size_of_val(sections.as_slice())
        + TRACKERS * std::mem::size_of::<Sequential>()
        + index.memory_bytes();
    Ok(DwarfsImage {
        memory,
        index,
        blocks: Arc::new(blocks),
        version,
        cache,
        image,
        sequential: (0..TRACKERS).map(|_| Sequential::default()).collect(),
    })
}

/// The one section of type `kind`.
fn unique<'a>(sections: &'a [Section], kind: SectionType, what: &str) -> Result<&'a Section> {
    let mut found = sections.iter().filter(|s| s.kind == kind);
    match (found.next(), found.next()) {
        (Some(s), None) => Ok(s),
        (None, _) => Err(Error::corrupt(format!("DwarFS image without {what}"))),
        (Some(_), Some(_)) => Err(Error::corrupt(format!("DwarFS image with two {what}s"))),
    }
}

impl DwarfsImage {
    /// The format version of the image (major, minor).
    pub fn version(&self) -> (u8, u8) {
        self.version
    }

    /// The mkdwarfs version that wrote it, if recorded.
    pub fn creator(&self) -> Option<String> {
        self.index.creator()
    }

    fn ino(&self, node: NodeId) -> Result<u32> {
        node.checked_sub(1)
            .and_then(|i| u32::try_from(i).ok())
            .filter(|&i| (i as usize) < self.index.inode_count())
            .ok_or(Error::NotFound)
    }

    fn file_size(&self, ino: u32) -> Result<u64> {
        Ok(self
            .index
            .chunks(ino)?
            .iter()
            .map(|c| u64::from(c.size))
            .sum())
    }

    fn dir(&self, node: NodeId) -> Result<u32> {
        let ino = self.ino(node)?;
        if self.index.kind(ino)? != Kind::Dir {
            return Err(Error::NotDir);
        }
        Ok(ino)
    }
}

impl Drop for DwarfsImage {
    fn drop(&mut self) {
        self.cache.forget_image(self.image);
    }
}

impl ImageTree for DwarfsImage {
    fn memory_bytes(&self) -> usize {
        self.memory
    }

    fn root(&self) -> NodeId {
        1
    }

    fn attr(&self, node: NodeId) -> Result<Attr> {
        let ino = self.ino(node)?;
        let kind = self.index.kind(ino)?;
        let (perm, uid, gid, mtime, nlink) = self.index.basics(ino)?;
        let (size, rdev) = match kind {
            Kind::File => (self.file_size(ino)?, 0),
            Kind::Symlink => (self.index.symlink(ino)?.len() as u64, 0),
            Kind::BlockDev | Kind::CharDev => {
                (0, u32::try_from(self.index.device(ino)).unwrap_or(0))
            }
            _ => (0, 0),
        };
        Ok(Attr {
            kind,
            perm,
            uid,
            gid,
            size,
            mtime,
            mtime_nsec: 0,
            nlink,
            rdev,
        })
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let dir = self.dir(dir)?;
        Ok(self.index.find(dir, name)?.map(|ino| u64::from(ino) + 1))
    }

    fn read_dir(&self, dir: NodeId) -> Result<Arc<Vec<DirEntry>>> {
        let dir = self.dir(dir)?;
        let listing = self.index.list(dir)?;
        let mut out = Vec::with_capacity(listing.len());
        for (name, ino) in listing {
            out.push(DirEntry {
                name: name.to_vec(),
                node: u64::from(ino) + 1,
                kind: self.index.kind(ino)?,
            });
        }
        Ok(Arc::new(out))
    }

    fn read_with(
        &self,
        node: NodeId,
        offset: u64,
        size: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>> {
        let ino = self.ino(node)?;
        match self.index.kind(ino)? {
            Kind::File => {}
            Kind::Dir => return Err(Error::IsDir),
            _ => return Err(Error::Invalid),
        }
        let chunks = self.index.chunks(ino)?;
        let end = offset.saturating_add(u64::from(size));
        let mut out = Vec::with_capacity(size.min(16 << 20) as usize);
        let mut start = 0u64;
        let mut next = None;
        // Where the file goes on in another block than `next`'s (the block
        // after the one being read), looked for among a few more chunks.
        let mut beyond = None;
        let mut after = 0usize;
        for c in chunks {
            if start > end {
                match next {
                    Some((block, _)) if c.block != block => {
                        beyond = Some((c.block, c.offset as usize));
                        break;
                    }
                    Some(_) if after < AHEAD_CHUNKS => after += 1,
                    _ => break,
                }
                start += u64::from(c.size);
                continue;
            }
            let stop = start + u64::from(c.size);
            if stop > offset && start < end {
                let from = offset.max(start) - start;
                let upto = end.min(stop) - start;
                self.blocks.read(
                    c.block,
                    (u64::from(c.offset) + from) as usize,
                    (upto - from) as usize,
                    &mut out,
                )?;
            }
            if (start..stop).contains(&end) {
                next = Some((c.block, (u64::from(c.offset) + end - start) as usize));
            }
            start = stop;
        }
        let tracker = &self.sequential[ino as usize % TRACKERS];
        let page = blocks::page_size(self.index.block_size()) as u64;
        if intent == ReadIntent::Demand && tracker.follows(offset, end, page) {
            // The next page, and the start of the file's next block, which
            // another core can decode meanwhile (a block's own pages can
            // only be decoded one after the other).
            for (block, at) in next.into_iter().chain(beyond) {
                self.blocks.prefetch(block, at);
            }
        }
        Ok(out)
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        let ino = self.ino(node)?;
        Ok(self.index.symlink(ino)?.to_vec())
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.ino(node)?;
        Ok(Vec::new())
    }

    fn info(&self) -> ImageInfo {
        ImageInfo {
            format: "dwarfs",
            compression: self.blocks.first_codec().unwrap_or("none").to_string(),
            block_size: self.index.block_size(),
            inode_count: Some(self.index.inode_count() as u64),
        }
    }

    fn block_size(&self) -> u32 {
        self.index.block_size()
    }
}
