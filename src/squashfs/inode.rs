//! Inode parsing. An inode is found by its reference
//! `(block position relative to the inode table << 16) | offset in block`,
//! which this reader also uses as the node id.
//!
//! Every inode starts with a 16-byte header (type, mode, uid index, gid
//! index, mtime, inode number) followed by a type-specific body; types 1..7
//! are the basic forms, 8..14 the extended forms (wider fields, link count,
//! xattr index). Each fixed-size part is read from the table in one piece.
//!
//! [`parse_stat`] reads only what `stat` shows, never a file's block list
//! or a symlink's target: a metadata walk asks for the attributes of every
//! node once and reads no file, so parsing (and keeping) block lists there
//! was most of its work.

use super::data::FileLayout;
use super::metadata::{Cursor, MetaBlock, Reader, Table, METADATA_SIZE};
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

/// What `stat` shows of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
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
}

/// One parsed inode.
#[derive(Debug)]
pub struct Inode {
    /// What `stat` shows.
    pub stat: Stat,
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

/// Little-endian fields taken in order from a fixed-size part of an inode
/// that was read whole (so every field is present).
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some((head, rest)) = self.0.split_at_checked(N) {
            out.copy_from_slice(head);
            self.0 = rest;
        }
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

/// What follows an inode's fixed fields, to build its body from.
enum Rest {
    /// A directory's listing (complete).
    Dir(DirRef),
    /// A file: its block list follows at the cursor.
    File {
        blocks_start: u64,
        fragment: u32,
        frag_offset: u32,
    },
    /// A symlink: its target of this many bytes follows at the cursor
    /// (then, in the extended form, the xattr index).
    Symlink { extended: bool },
    /// Nothing.
    Nothing,
}

/// Reads the fixed fields of inode `node` at `c`: what `stat` shows, the
/// xattr index when it is among them, and what the body needs.
fn fixed(c: &mut Cursor<'_>, node: NodeId) -> Result<(Stat, u32, Rest)> {
    let header: [u8; 16] = c.array()?;
    let mut h = Fields(&header);
    let itype = h.u16();
    let kind = kind_of_type(itype)
        .ok_or_else(|| Error::corrupt(format!("inode {node:#x} has unknown type {itype}")))?;
    let mut stat = Stat {
        kind,
        mode: h.u16(),
        uid_idx: h.u16(),
        gid_idx: h.u16(),
        mtime: h.u32(),
        nlink: 1,
        size: 0,
        rdev: 0,
    };
    let extended = itype >= 8;
    let mut xattr = NO_XATTR;
    let rest = match (kind, extended) {
        (Kind::Dir, false) => {
            let part: [u8; 16] = c.array()?;
            let mut f = Fields(&part);
            let start_block = f.u32();
            stat.nlink = f.u32();
            let size = f.u16();
            let offset = f.u16();
            stat.size = u64::from(size);
            Rest::Dir(DirRef {
                start_block,
                offset,
                listing_size: u64::from(size).saturating_sub(3),
            })
        }
        (Kind::Dir, true) => {
            let part: [u8; 24] = c.array()?;
            let mut f = Fields(&part);
            stat.nlink = f.u32();
            let size = f.u32();
            let start_block = f.u32();
            let _parent = f.u32();
            let _index_count = f.u16();
            let offset = f.u16();
            xattr = f.u32();
            stat.size = u64::from(size);
            Rest::Dir(DirRef {
                start_block,
                offset,
                listing_size: u64::from(size).saturating_sub(3),
            })
        }
        (Kind::File, false) => {
            let part: [u8; 16] = c.array()?;
            let mut f = Fields(&part);
            let blocks_start = u64::from(f.u32());
            let fragment = f.u32();
            let frag_offset = f.u32();
            stat.size = u64::from(f.u32());
            Rest::File {
                blocks_start,
                fragment,
                frag_offset,
            }
        }
        (Kind::File, true) => {
            let part: [u8; 40] = c.array()?;
            let mut f = Fields(&part);
            let blocks_start = f.u64();
            stat.size = f.u64();
            let _sparse = f.u64();
            stat.nlink = f.u32();
            let fragment = f.u32();
            let frag_offset = f.u32();
            xattr = f.u32();
            Rest::File {
                blocks_start,
                fragment,
                frag_offset,
            }
        }
        (Kind::Symlink, _) => {
            let part: [u8; 8] = c.array()?;
            let mut f = Fields(&part);
            stat.nlink = f.u32();
            let len = f.u32();
            if len > MAX_SYMLINK {
                return Err(Error::corrupt(format!(
                    "symlink inode {node:#x} has a {len}-byte target (limit {MAX_SYMLINK})"
                )));
            }
            stat.size = u64::from(len);
            Rest::Symlink { extended }
        }
        (Kind::BlockDev | Kind::CharDev, _) => {
            let part: [u8; 8] = c.array()?;
            let mut f = Fields(&part);
            stat.nlink = f.u32();
            stat.rdev = f.u32();
            if extended {
                xattr = c.u32()?;
            }
            Rest::Nothing
        }
        (Kind::Fifo | Kind::Socket, _) => {
            stat.nlink = c.u32()?;
            if extended {
                xattr = c.u32()?;
            }
            Rest::Nothing
        }
    };
    Ok((stat, xattr, rest))
}

/// A cursor at inode `node` of the inode table `table`.
fn cursor_at<'a>(reader: &'a Reader, table: Table, node: NodeId) -> Result<Cursor<'a>> {
    if !valid_ref(node, table.len()) {
        return Err(Error::corrupt(format!(
            "inode reference {node:#x} is out of range"
        )));
    }
    Cursor::at_ref(reader, table, node)
}

/// Parses what `stat` shows of inode `node` of the inode table `table`,
/// and nothing after it (no block list, no symlink target). Starts from
/// the metadata block in `held` when the inode is in it, and leaves there
/// the block it ended in: the inodes of one directory's entries are
/// written next to each other, so a page of them is read from one or two
/// blocks fetched once.
pub fn parse_stat(
    reader: &Reader,
    table: Table,
    node: NodeId,
    held: &mut Option<(u64, MetaBlock)>,
) -> Result<Stat> {
    let mut c = cursor_at(reader, table, node)?.reusing(held);
    let stat = fixed(&mut c, node).map(|(stat, _, _)| stat);
    *held = c.into_held();
    stat
}

/// Parses the inode `node` of the inode table `table`, whole.
pub fn parse(reader: &Reader, table: Table, node: NodeId, fragment_count: u32) -> Result<Inode> {
    let mut c = cursor_at(reader, table, node)?;
    let (stat, mut xattr, rest) = fixed(&mut c, node)?;
    let body = match rest {
        Rest::Dir(d) => Body::Dir(d),
        Rest::File {
            blocks_start,
            fragment,
            frag_offset,
        } => {
            let layout = FileLayout::parse(
                &mut c,
                reader,
                blocks_start,
                stat.size,
                fragment,
                frag_offset,
                fragment_count,
            );
            Body::File(layout.map_err(|e| in_inode(node, e))?)
        }
        Rest::Symlink { extended } => {
            let target = c.read_vec(stat.size as usize)?;
            if extended {
                xattr = c.u32()?;
            }
            Body::Symlink(target)
        }
        Rest::Nothing => Body::Special,
    };
    Ok(Inode { stat, xattr, body })
}

/// Adds the inode reference to a corruption message.
fn in_inode(node: NodeId, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("inode {node:#x}: {m}")),
        other => other,
    }
}
