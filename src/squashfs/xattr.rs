//! Extended attributes.
//!
//! The superblock points at a 16-byte header (u64 start of the key/value
//! area, u32 number of xattr ids, u32 unused) followed by the positions of
//! the metadata blocks holding the xattr ids. An inode's xattr index picks
//! an id (u64 reference into the key/value area, u32 pair count, u32 total
//! size). Each pair is a key (u16 type, u16 name size, name without its
//! prefix) and a value (u32 size, bytes). A type with bit 0x100 set stores,
//! instead of the value, an 8-byte reference to a value elsewhere in the
//! area (values shared by several inodes are stored once).

use std::sync::OnceLock;

use super::metadata::{le_u32, le_u64, Cursor, Reader, Table};
use super::superblock::NO_TABLE;
use super::table::LookupTable;
use crate::error::{Error, Result};

/// Key type bit: the value is stored out of line.
const VALUE_OOL: u16 = 0x100;

/// Largest value accepted (Linux's XATTR_SIZE_MAX).
const MAX_VALUE: u32 = 65536;

/// Largest name accepted (Linux's XATTR_NAME_MAX).
const MAX_NAME: u16 = 255;

/// Most pairs accepted for one inode.
const MAX_PAIRS: u32 = 65536;

/// Most bytes of names and values returned for one inode. Values stored out
/// of line can be shared, so a small image could otherwise make one call
/// materialize 65536 copies of a 64 KiB value (4 GiB).
const MAX_TOTAL: usize = 4 << 20;

struct Parsed {
    kv: Table,
    ids: LookupTable,
}

/// The xattr tables of one image, read on first use.
pub struct XattrTable {
    pos: u64,
    parsed: OnceLock<Parsed>,
}

impl XattrTable {
    /// Bytes of what was read of the tables so far.
    pub fn memory_bytes(&self) -> usize {
        self.parsed.get().map_or(0, |p| p.ids.memory_bytes())
    }

    /// The table whose header is at `pos` ([`NO_TABLE`] when absent).
    pub fn new(pos: u64) -> XattrTable {
        XattrTable {
            pos,
            parsed: OnceLock::new(),
        }
    }

    fn parsed(&self, reader: &Reader) -> Result<&Parsed> {
        if let Some(p) = self.parsed.get() {
            return Ok(p);
        }
        let header = reader.backing.read_vec(self.pos, 16)?;
        let (kv_start, count) = match (le_u64(&header, 0), le_u32(&header, 8)) {
            (Some(s), Some(c)) => (s, c),
            _ => return Err(Error::corrupt("short xattr table header")),
        };
        if kv_start >= self.pos {
            return Err(Error::corrupt(format!(
                "xattr key/value area at {kv_start} does not precede its index at {}",
                self.pos
            )));
        }
        let parsed = Parsed {
            kv: Table {
                start: kv_start,
                end: self.pos,
            },
            ids: LookupTable::new("xattr id", self.pos + 16, self.pos, u64::from(count), 16),
        };
        let _ = self.parsed.set(parsed);
        self.parsed
            .get()
            .ok_or_else(|| Error::corrupt("xattr table"))
    }

    /// The (full name, value) pairs of xattr id `index` ([`super::inode::NO_XATTR`]
    /// and an image without an xattr table give none).
    pub fn get(&self, reader: &Reader, index: u32) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if index == super::inode::NO_XATTR || self.pos == NO_TABLE {
            return Ok(Vec::new());
        }
        let t = self.parsed(reader)?;
        let id = t.ids.entry(reader, u64::from(index))?;
        let (reference, count) = match (le_u64(&id, 0), le_u32(&id, 8)) {
            (Some(r), Some(c)) => (r, c),
            _ => return Err(Error::corrupt("short xattr id entry")),
        };
        if count > MAX_PAIRS {
            return Err(Error::corrupt(format!(
                "xattr id {index} claims {count} pairs"
            )));
        }
        let mut c = Cursor::at_ref(reader, t.kv, reference)?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for _ in 0..count {
            let ktype = c.u16()?;
            let name_len = c.u16()?;
            if name_len > MAX_NAME {
                return Err(Error::corrupt(format!("xattr name of {name_len} bytes")));
            }
            let name = c.read_vec(usize::from(name_len))?;
            let vsize = c.u32()?;
            let value = if ktype & VALUE_OOL != 0 {
                if vsize != 8 {
                    return Err(Error::corrupt("out-of-line xattr reference is not 8 bytes"));
                }
                let at = c.u64()?;
                let mut v = Cursor::at_ref(reader, t.kv, at)?;
                let vsize = v.u32()?;
                read_value(&mut v, vsize)?
            } else {
                read_value(&mut c, vsize)?
            };
            total = total.saturating_add(name.len() + value.len());
            if total > MAX_TOTAL {
                return Err(Error::corrupt(format!(
                    "xattrs of id {index} hold more than {MAX_TOTAL} bytes"
                )));
            }
            let prefix: &[u8] = match ktype & 0xff {
                0 => b"user.",
                1 => b"trusted.",
                2 => b"security.",
                // Unknown namespaces are skipped, as the Linux kernel does.
                _ => continue,
            };
            let mut full = Vec::with_capacity(prefix.len() + name.len());
            full.extend_from_slice(prefix);
            full.extend_from_slice(&name);
            out.push((full, value));
        }
        Ok(out)
    }
}

fn read_value(c: &mut Cursor<'_>, vsize: u32) -> Result<Vec<u8>> {
    if vsize > MAX_VALUE {
        return Err(Error::corrupt(format!("xattr value of {vsize} bytes")));
    }
    c.read_vec(vsize as usize)
}
