//! SquashFS 4.0 reader (type 2 AppImage payloads).
//!
//! [`open`] reads nothing but what the caller already parsed (the
//! superblock): inodes, directory listings, the id, fragment and xattr
//! tables are all read on demand, every block through the shared
//! [`BlockCache`]. Node ids are inode references
//! (`block relative to the inode table << 16 | offset`), so hard links share
//! a node id. Parsed inodes and directory listings are kept in small bounded
//! LRUs; directory lookups binary-search the sorted listing.
//!
//! Nothing in an image can make this reader panic: every length, count,
//! index and position is checked, and a bad inode or directory gives
//! [`Error::Corrupt`] for that node only. A directory holding a forbidden
//! name (empty, `.`, `..`, containing `/` or NUL) or the same name twice is
//! unreadable as a whole (see `dir.rs`).
//!
//! Limits, each far beyond what AppImages hold, bound the memory one hostile
//! image can claim: a file of at most 4 Mi blocks (16 GiB at 4 KiB blocks),
//! a directory of at most 1 Mi entries, symlink targets of at most 4096
//! bytes, xattr values of at most 64 KiB (and 4 MiB of names and values
//! per inode). Dropping a [`SquashImage`] drops its blocks from the shared
//! cache.

pub mod superblock;

mod data;
mod dir;
mod inode;
mod memo;
mod metadata;
mod table;
mod xattr;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use crate::backing::Backing;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::tree::{Attr, DirEntry, ImageInfo, ImageTree, NodeId, ReadIntent};

use self::dir::Listing;
use self::inode::{Body, Inode};
use self::memo::Memo;
use self::metadata::{Reader, Table};
use self::superblock::{Superblock, NO_TABLE};
use self::table::LookupTable;
use self::xattr::XattrTable;

/// Parsed inodes kept per image. These memos sit outside the shared
/// cache's budget (their source metadata blocks are in it), so they are
/// kept small: together at most about 6 MiB per opened image, the overhead
/// the README states.
const INODE_CACHE_ENTRIES: usize = 4096;
/// Bytes of parsed inodes (mostly block lists) kept per image.
const INODE_CACHE_BYTES: usize = 2 << 20;
/// Parsed directory listings kept per image.
const DIR_CACHE_ENTRIES: usize = 64;
/// Bytes of parsed directory listings kept per image.
const DIR_CACHE_BYTES: usize = 4 << 20;

/// An opened SquashFS image.
pub struct SquashImage {
    reader: Reader,
    superblock: Superblock,
    inode_table: Table,
    dir_table: Table,
    ids: LookupTable,
    /// The whole id table once read (see [`SquashImage::id`]); `None`
    /// when some entry of it could not be read.
    id_values: OnceLock<Option<Vec<u32>>>,
    fragments: LookupTable,
    xattrs: XattrTable,
    inodes: Memo<Inode>,
    dirs: Memo<Listing>,
}

/// Opens the SquashFS image in `backing` (offset 0 of the backing = the
/// superblock). Reads nothing from the image; `superblock` must come from
/// [`Superblock::parse`] of the same bytes.
pub fn open(
    backing: Backing,
    superblock: Superblock,
    cache: Arc<BlockCache>,
) -> Result<SquashImage> {
    if backing.len() < superblock.bytes_used {
        return Err(Error::corrupt(format!(
            "SquashFS uses {} bytes but only {} are present",
            superblock.bytes_used,
            backing.len()
        )));
    }
    let sb = superblock;
    // Superblock::parse guarantees these; re-checked because the fields are
    // public and everything below divides by the block size and trusts the
    // table order.
    if !(4096..=1 << 20).contains(&sb.block_size)
        || !sb.block_size.is_power_of_two()
        || sb.inode_table > sb.dir_table
        || sb.dir_table > sb.bytes_used
    {
        return Err(Error::corrupt(
            "SquashFS superblock fields are inconsistent",
        ));
    }
    let limit = sb.bytes_used;
    let inode_table = Table {
        start: sb.inode_table,
        end: sb.dir_table,
    };
    if !inode::valid_ref(sb.root_inode, inode_table.len()) {
        return Err(Error::corrupt(format!(
            "root inode reference {:#x} is out of range",
            sb.root_inode
        )));
    }
    // The directory table ends where the next table written after it
    // begins; the fragment table's own blocks may still lie before that
    // bound, which only loosens it, never lets a read leave the image.
    let dir_end = [
        sb.fragment_table,
        sb.export_table,
        sb.id_table,
        sb.xattr_table,
        limit,
    ]
    .into_iter()
    .filter(|&p| p > sb.dir_table && p <= limit)
    .min()
    .unwrap_or(limit);
    let dir_table = Table {
        start: sb.dir_table,
        end: dir_end,
    };
    let ids = LookupTable::new("id", sb.id_table, sb.id_table, u64::from(sb.id_count), 4);
    let fragments = LookupTable::new(
        "fragment",
        sb.fragment_table,
        sb.fragment_table,
        if sb.fragment_table == NO_TABLE {
            0
        } else {
            u64::from(sb.fragment_count)
        },
        16,
    );
    let xattrs = XattrTable::new(sb.xattr_table);
    let image = cache.new_image_id();
    Ok(SquashImage {
        reader: Reader {
            backing,
            cache,
            image,
            codec: sb.codec,
            block_size: sb.block_size,
            limit,
        },
        inode_table,
        dir_table,
        ids,
        id_values: OnceLock::new(),
        fragments,
        xattrs,
        inodes: Memo::new(INODE_CACHE_ENTRIES, INODE_CACHE_BYTES),
        dirs: Memo::new(DIR_CACHE_ENTRIES, DIR_CACHE_BYTES),
        superblock: sb,
    })
}

impl SquashImage {
    /// The superblock this image was opened with.
    pub fn superblock(&self) -> &Superblock {
        &self.superblock
    }

    /// This opening's id in the shared block cache.
    pub fn cache_image_id(&self) -> u64 {
        self.reader.image
    }

    fn inode(&self, node: NodeId) -> Result<Arc<Inode>> {
        if let Some(i) = self.inodes.get(node) {
            return Ok(i);
        }
        let parsed = inode::parse(
            &self.reader,
            self.inode_table,
            node,
            self.fragments.count() as u32,
        )?;
        let parsed = Arc::new(parsed);
        self.inodes.insert(node, parsed.clone(), parsed.cost());
        Ok(parsed)
    }

    /// The listing of `dir`, kept for the lookups that follow.
    fn listing(&self, dir: NodeId) -> Result<Arc<Listing>> {
        if let Some(l) = self.dirs.get(dir) {
            return Ok(l);
        }
        let listing = Arc::new(self.parse_listing(dir)?);
        self.dirs.insert(dir, listing.clone(), listing.cost());
        Ok(listing)
    }

    /// Parses the listing of `dir` (keeping neither it nor the inode).
    fn parse_listing(&self, dir: NodeId) -> Result<Listing> {
        let ino = match self.inodes.get(dir) {
            Some(ino) => ino,
            None => Arc::new(inode::parse(
                &self.reader,
                self.inode_table,
                dir,
                self.fragments.count() as u32,
            )?),
        };
        let d = match &ino.body {
            Body::Dir(d) => d,
            _ => return Err(Error::NotDir),
        };
        dir::parse(&self.reader, self.dir_table, self.inode_table.len(), d).map_err(|e| match e {
            Error::Corrupt(m) => Error::Corrupt(format!("directory {dir:#x}: {m}")),
            other => other,
        })
    }

    /// Owner or group `index`. Every attribute needs two ids, so the id
    /// table (at most 65,535 ids of 4 bytes, usually one or two) is read
    /// whole on first use and kept, instead of fetching a cached block and
    /// copying an entry out of it twice per `stat`. Read outside any lock
    /// (two threads may both read it; one result is kept). A table with an
    /// unreadable entry is not kept whole, and each id is then read on its
    /// own, failing only the nodes that name the bad one.
    fn id(&self, index: u16) -> Result<u32> {
        let values = match self.id_values.get() {
            Some(v) => v,
            None => {
                let all = (0..self.ids.count())
                    .map(|i| self.ids.entry_u32(&self.reader, i))
                    .collect::<Result<Vec<u32>>>()
                    .ok();
                self.id_values.get_or_init(|| all)
            }
        };
        match values {
            Some(v) => v.get(usize::from(index)).copied().ok_or_else(|| {
                Error::corrupt(format!(
                    "id index {index} is out of range ({} entries)",
                    v.len()
                ))
            }),
            None => self.ids.entry_u32(&self.reader, u64::from(index)),
        }
    }
}

impl SquashImage {
    /// The attributes `stat` shows, with its owner and group looked up.
    fn attr_of(&self, stat: inode::Stat) -> Result<Attr> {
        Ok(Attr {
            kind: stat.kind,
            perm: stat.mode & 0o7777,
            uid: self.id(stat.uid_idx)?,
            gid: self.id(stat.gid_idx)?,
            size: stat.size,
            mtime: i64::from(stat.mtime),
            mtime_nsec: 0,
            nlink: stat.nlink,
            rdev: stat.rdev,
        })
    }
}

impl Drop for SquashImage {
    fn drop(&mut self) {
        self.reader.cache.forget_image(self.reader.image);
    }
}

impl ImageTree for SquashImage {
    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<SquashImage>()
            + self.inodes.memory_bytes()
            + self.dirs.memory_bytes()
            + self.ids.memory_bytes()
            + self.fragments.memory_bytes()
            + self.xattrs.memory_bytes()
    }

    fn root(&self) -> NodeId {
        self.superblock.root_inode
    }

    /// Parses only what `stat` shows unless the whole inode is kept
    /// already, and keeps nothing: a walk stats every node once, and the
    /// memo then holds the inodes that are read, listed or linked.
    fn attr(&self, node: NodeId) -> Result<Attr> {
        let stat = match self.inodes.get(node) {
            Some(ino) => ino.stat,
            None => inode::parse_stat(&self.reader, self.inode_table, node, &mut None)?,
        };
        self.attr_of(stat)
    }

    /// Parses each node's fixed fields from the metadata blocks, each
    /// block fetched once for a run of nodes in it (see
    /// [`inode::parse_stat`]); the memo is not consulted (it would give
    /// the same fields).
    fn attrs(&self, nodes: &[NodeId]) -> Vec<Result<Attr>> {
        let mut held = None;
        nodes
            .iter()
            .map(|&node| {
                inode::parse_stat(&self.reader, self.inode_table, node, &mut held)
                    .and_then(|stat| self.attr_of(stat))
            })
            .collect()
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let listing = self.listing(dir)?;
        if !dir::valid_name(name) {
            return Ok(None);
        }
        Ok(listing.lookup(name))
    }

    /// A listing kept for lookups is shared; one parsed now is not kept:
    /// the union keeps the listings it pages through, moving the names
    /// out of one nobody shares, so a walk parses each directory once and
    /// copies no name.
    fn read_dir(&self, dir: NodeId) -> Result<Arc<Vec<DirEntry>>> {
        match self.dirs.get(dir) {
            Some(l) => Ok(l.entries.clone()),
            None => Ok(self.parse_listing(dir)?.entries),
        }
    }

    fn read_with(
        &self,
        node: NodeId,
        offset: u64,
        size: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>> {
        let ino = self.inode(node)?;
        match &ino.body {
            Body::File(f) => f.read(&self.reader, &self.fragments, offset, size, intent),
            Body::Dir(_) => Err(Error::IsDir),
            _ => Err(Error::Invalid),
        }
    }

    fn content_key(&self, node: NodeId) -> Result<Option<[u8; 32]>> {
        match &self.inode(node)?.body {
            Body::File(f) => f.content_key(&self.reader, &self.fragments).map(Some),
            _ => Err(Error::Invalid),
        }
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        match &self.inode(node)?.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(Error::Invalid),
        }
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let ino = self.inode(node)?;
        self.xattrs.get(&self.reader, ino.xattr)
    }

    fn block_size(&self) -> u32 {
        self.superblock.block_size
    }

    fn info(&self) -> ImageInfo {
        ImageInfo {
            format: "squashfs",
            compression: self.superblock.codec.name().to_string(),
            block_size: self.superblock.block_size,
            inode_count: Some(u64::from(self.superblock.inode_count)),
        }
    }
}
