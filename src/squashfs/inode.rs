//! Inode parsing. An inode is found by its reference
//! `(block position relative to the inode table << 16) | offset in block`,
//! which this reader also uses as the node id.
//!
//! Every inode starts with a 16-byte header (type, mode, uid index, gid
//! index, mtime, inode number) followed by a type-specific body; types 1..7
//! are the basic forms, 8..14 the extended forms (wider fields, link count,
//! xattr index).

use super::data::FileLayout;
use super::metadata::{Cursor, Reader, Table, METADATA_SIZE};
use crate::error::{Error, Result};
use crate::tree::{Kind, NodeId, NODE_ID_BITS};

/// Inode xattr index meaning "no extended attributes".
pub const NO_XATTR: u32 = 0xffff_ffff;

/// Longest symlink target accepted (Linux's PATH_MAX).
pub const MAX_SYMLINK: u32 = 4096;

/// Where a directory's listing is, in the directory table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirRef {
    /// Block position relative to the directory table.
    pub start_block: u32,
    /// Offset in that block's decompressed bytes.
    pub offset: u16,
    /// Listing length in bytes (the stored size minus 3 for `.` and `..`).
    pub listing_size: u64,
}

/// The type-specific part of an inode.
#[derive(Debug)]
pub enum Body {
    /// A directory.
    Dir(DirRef),
    /// A regular file.
    File(FileLayout),
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A device node, fifo or socket.
    Special,
}

/// One parsed inode.
#[derive(Debug)]
pub struct Inode {
    /// File type.
    pub kind: Kind,
    /// Mode bits as stored.
    pub mode: u16,
    /// Index of the owner in the id table.
    pub uid_idx: u16,
    /// Index of the group in the id table.
    pub gid_idx: u16,
    /// Modification time.
    pub mtime: u32,
    /// Hard link count.
    pub nlink: u32,
    /// Size in bytes (directories: the stored listing size; symlinks: the
    /// target length).
    pub size: u64,
    /// Device number of device nodes, else 0.
    pub rdev: u32,
    /// Index in the xattr id table, or [`NO_XATTR`].
    pub xattr: u32,
    /// Type-specific data.
    pub body: Body,
}

impl Inode {
    /// Approximate heap bytes held, for cache accounting.
    pub fn cost(&self) -> usize {
        std::mem::size_of::<Inode>()
            + match &self.body {
                Body::File(f) => f.cost(),
                Body::Symlink(t) => t.len(),
                _ => 0,
            }
    }
}

/// The kind of an inode or directory entry type (1..14), if valid.
pub fn kind_of_type(t: u16) -> Option<Kind> {
    Some(match t {
        1 | 8 => Kind::Dir,
        2 | 9 => Kind::File,
        3 | 10 => Kind::Symlink,
        4 | 11 => Kind::BlockDev,
        5 | 12 => Kind::CharDev,
        6 | 13 => Kind::Fifo,
        7 | 14 => Kind::Socket,
        _ => return None,
    })
}

/// True when `node` can name an inode of a table of `table_len` bytes.
pub fn valid_ref(node: NodeId, table_len: u64) -> bool {
    node >> NODE_ID_BITS == 0
        && (node >> 16) < table_len
        && ((node & 0xffff) as usize) < METADATA_SIZE
}

/// Parses the inode `node` of the inode table `table`.
pub fn parse(reader: &Reader, table: Table, node: NodeId, fragment_count: u32) -> Result<Inode> {
    if !valid_ref(node, table.len()) {
        return Err(Error::corrupt(format!(
            "inode reference {node:#x} is out of range"
        )));
    }
    let mut c = Cursor::at_ref(reader, table, node)?;
    let itype = c.u16()?;
    let mode = c.u16()?;
    let uid_idx = c.u16()?;
    let gid_idx = c.u16()?;
    let mtime = c.u32()?;
    let _inode_number = c.u32()?;
    let kind = kind_of_type(itype)
        .ok_or_else(|| Error::corrupt(format!("inode {node:#x} has unknown type {itype}")))?;
    let extended = itype >= 8;
    let mut ino = Inode {
        kind,
        mode,
        uid_idx,
        gid_idx,
        mtime,
        nlink: 1,
        size: 0,
        rdev: 0,
        xattr: NO_XATTR,
        body: Body::Special,
    };
    match (kind, extended) {
        (Kind::Dir, false) => {
            let start_block = c.u32()?;
            ino.nlink = c.u32()?;
            let size = c.u16()?;
            let offset = c.u16()?;
            let _parent = c.u32()?;
            ino.size = u64::from(size);
            ino.body = Body::Dir(DirRef {
                start_block,
                offset,
                listing_size: u64::from(size).saturating_sub(3),
            });
        }
        (Kind::Dir, true) => {
            ino.nlink = c.u32()?;
            let size = c.u32()?;
            let start_block = c.u32()?;
            let _parent = c.u32()?;
            let _index_count = c.u16()?;
            let offset = c.u16()?;
            ino.xattr = c.u32()?;
            ino.size = u64::from(size);
            ino.body = Body::Dir(DirRef {
                start_block,
                offset,
                listing_size: u64::from(size).saturating_sub(3),
            });
        }
        (Kind::File, false) => {
            let blocks_start = c.u32()?;
            let fragment = c.u32()?;
            let frag_offset = c.u32()?;
            let size = c.u32()?;
            ino.size = u64::from(size);
            let layout = FileLayout::parse(
                &mut c,
                reader,
                u64::from(blocks_start),
                ino.size,
                fragment,
                frag_offset,
                fragment_count,
            );
            ino.body = Body::File(layout.map_err(|e| in_inode(node, e))?);
        }
        (Kind::File, true) => {
            let blocks_start = c.u64()?;
            ino.size = c.u64()?;
            let _sparse = c.u64()?;
            ino.nlink = c.u32()?;
            let fragment = c.u32()?;
            let frag_offset = c.u32()?;
            ino.xattr = c.u32()?;
            let layout = FileLayout::parse(
                &mut c,
                reader,
                blocks_start,
                ino.size,
                fragment,
                frag_offset,
                fragment_count,
            );
            ino.body = Body::File(layout.map_err(|e| in_inode(node, e))?);
        }
        (Kind::Symlink, _) => {
            ino.nlink = c.u32()?;
            let len = c.u32()?;
            if len > MAX_SYMLINK {
                return Err(Error::corrupt(format!(
                    "symlink inode {node:#x} has a {len}-byte target (limit {MAX_SYMLINK})"
                )));
            }
            let target = c.read_vec(len as usize)?;
            if extended {
                ino.xattr = c.u32()?;
            }
            ino.size = u64::from(len);
            ino.body = Body::Symlink(target);
        }
        (Kind::BlockDev | Kind::CharDev, _) => {
            ino.nlink = c.u32()?;
            ino.rdev = c.u32()?;
            if extended {
                ino.xattr = c.u32()?;
            }
        }
        (Kind::Fifo | Kind::Socket, _) => {
            ino.nlink = c.u32()?;
            if extended {
                ino.xattr = c.u32()?;
            }
        }
    }
    Ok(ino)
}

/// Adds the inode reference to a corruption message.
fn in_inode(node: NodeId, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("inode {node:#x}: {m}")),
        other => other,
    }
}
