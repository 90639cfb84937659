//! Directory listings.
//!
//! A listing is a run of headers (entry count - 1, inode block relative to
//! the inode table, base inode number), each followed by up to 256 entries
//! (inode offset in block, inode number delta, type, name size - 1, name).
//! squashfs-tools writes names sorted by byte order, which lets [`Listing`]
//! binary-search them; a listing that is not sorted is searched linearly.
//!
//! Names are raw bytes. An entry whose name is empty, `.`, `..`, or contains
//! `/` or NUL would let a consumer escape the tree, and two entries with the
//! same name (the `pathtraversal.sqfs` attack: a symlink `DIR` pointing
//! outside, then a directory `DIR` whose files an extractor writes through
//! the symlink) make the tree ambiguous. Either makes the whole directory
//! unreadable ([`Error::Corrupt`]) rather than being silently dropped: the
//! image is malicious or broken, and a partial listing would hide that.

use std::sync::Arc;

use super::inode::{kind_of_type, valid_ref, DirRef};
use super::metadata::{le_u32, Cursor, Reader, Table};
use crate::error::{Error, Result};
use crate::tree::{DirEntry, NodeId};

/// Most entries one header may carry.
const MAX_HEADER_ENTRIES: u32 = 256;

/// Most entries accepted in one directory: the parsed listing is held in
/// memory, and a hostile directory must not grow it without bound.
pub const MAX_DIR_ENTRIES: usize = 1 << 20;

/// A parsed directory listing.
#[derive(Debug)]
pub struct Listing {
    /// Entries in on-disk order.
    pub entries: Arc<Vec<DirEntry>>,
    sorted: bool,
    cost: usize,
}

/// True when `name` is acceptable as one path component.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

impl Listing {
    /// Builds a listing from entries in on-disk order; a name that occurs
    /// twice is an error (one of the two would be unreachable, and which one
    /// a consumer sees would depend on how it searches).
    pub fn new(entries: Vec<DirEntry>) -> Result<Listing> {
        let sorted = entries.windows(2).all(|w| w[0].name < w[1].name);
        if !sorted {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            if let Some(dup) = entries.iter().find(|e| !seen.insert(e.name.as_slice())) {
                return Err(Error::corrupt(format!(
                    "directory has two entries named {:?}",
                    String::from_utf8_lossy(&dup.name)
                )));
            }
        }
        let cost = entries
            .iter()
            .map(|e| std::mem::size_of::<DirEntry>() + e.name.capacity())
            .sum::<usize>()
            + std::mem::size_of::<Listing>();
        Ok(Listing {
            entries: Arc::new(entries),
            sorted,
            cost,
        })
    }

    /// Approximate heap bytes held.
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// The node named `name`, if present: a binary search when the listing
    /// is sorted by bytes (as squashfs-tools writes it), else a scan.
    pub fn lookup(&self, name: &[u8]) -> Option<NodeId> {
        if self.sorted {
            let i = self
                .entries
                .binary_search_by(|e| e.name.as_slice().cmp(name))
                .ok()?;
            self.entries.get(i).map(|e| e.node)
        } else {
            self.entries.iter().find(|e| e.name == name).map(|e| e.node)
        }
    }
}

/// Parses the listing `d` from the directory table; entries must point into
/// an inode table of `inode_table_len` bytes.
pub fn parse(
    reader: &Reader,
    dir_table: Table,
    inode_table_len: u64,
    d: &DirRef,
) -> Result<Listing> {
    // An entry takes at least 9 bytes, and usually twice that: reserve for
    // entries of 24 bytes, believing a hostile size only up to a bound.
    let mut entries = Vec::with_capacity(((d.listing_size / 24) as usize).min(4096));
    if d.listing_size == 0 {
        return Listing::new(entries);
    }
    let mut c = Cursor::new(
        reader,
        dir_table,
        u64::from(d.start_block),
        usize::from(d.offset),
    )?;
    let mut consumed: u64 = 0;
    while consumed < d.listing_size {
        let header: [u8; 12] = c.array()?;
        let (count, inode_block) = match (le_u32(&header, 0), le_u32(&header, 4)) {
            (Some(count), Some(block)) => (count, block),
            _ => return Err(Error::corrupt("short directory header")),
        };
        consumed += 12;
        if count >= MAX_HEADER_ENTRIES {
            return Err(Error::corrupt(format!(
                "directory header claims {} entries (at most {MAX_HEADER_ENTRIES})",
                u64::from(count) + 1
            )));
        }
        for _ in 0..=count {
            let e: [u8; 8] = c.array()?;
            let offset = u16::from_le_bytes([e[0], e[1]]);
            let etype = u16::from_le_bytes([e[4], e[5]]);
            let name_len = usize::from(u16::from_le_bytes([e[6], e[7]])) + 1;
            if name_len > 256 {
                return Err(Error::corrupt(format!(
                    "directory entry name of {name_len} bytes"
                )));
            }
            let name = c.read_vec(name_len)?;
            consumed += 8 + name_len as u64;
            if !valid_name(&name) {
                return Err(Error::corrupt(format!(
                    "directory entry with forbidden name {:?}",
                    String::from_utf8_lossy(&name)
                )));
            }
            let kind = kind_of_type(etype).ok_or_else(|| {
                Error::corrupt(format!("directory entry has unknown type {etype}"))
            })?;
            let node = (u64::from(inode_block) << 16) | u64::from(offset);
            if !valid_ref(node, inode_table_len) {
                return Err(Error::corrupt(format!(
                    "directory entry points outside the inode table ({node:#x})"
                )));
            }
            if entries.len() >= MAX_DIR_ENTRIES {
                return Err(Error::Unsupported(format!(
                    "directory with more than {MAX_DIR_ENTRIES} entries"
                )));
            }
            entries.push(DirEntry { name, node, kind });
        }
    }
    // Like the Linux kernel, a header whose entries run past the stated
    // size is read whole; only the start of each header is bounded by it.
    Listing::new(entries)
}
