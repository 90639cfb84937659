//! The volume descriptor set (ECMA-119 § 8): where the primary and the
//! Joliet directory trees start.
//!
//! The set starts at sector 16, after the system area (where a type 1
//! AppImage keeps its ELF runtime), and ends with a terminator. Only the
//! first primary descriptor and the first Joliet supplementary descriptor
//! are used; boot records, partition descriptors and ISO 9660:1999 enhanced
//! descriptors are skipped. An image shorter than the volume size its
//! primary descriptor declares is a partial copy (an interrupted download)
//! and is rejected.

use crate::backing::Backing;
use crate::error::{Error, Result};

use super::record::{self, SECTOR};

/// First sector of the volume descriptor set.
const FIRST_DESCRIPTOR: u64 = 16;
/// Descriptors read at most before giving up on finding a terminator.
const MAX_DESCRIPTORS: u64 = 64;

/// Where one directory tree starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RootDir {
    /// First logical block of the root directory.
    pub extent: u32,
    /// Length of the root directory in bytes.
    pub size: u32,
}

/// What the volume descriptors say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Volume {
    /// Root of the primary (ISO 9660 / Rock Ridge) tree.
    pub primary: RootDir,
    /// Root of the Joliet tree, if there is one.
    pub joliet: Option<RootDir>,
}

/// Reads the volume descriptor set of the ISO image at offset 0 of `backing`.
pub(crate) fn read(backing: &Backing) -> Result<Volume> {
    let mut primary = None;
    let mut joliet = None;
    let mut sector = [0u8; SECTOR as usize];
    for lba in FIRST_DESCRIPTOR..FIRST_DESCRIPTOR + MAX_DESCRIPTORS {
        let pos = lba * SECTOR;
        if pos + SECTOR > backing.len() {
            break;
        }
        backing.read_exact_at(&mut sector, pos)?;
        if &sector[1..6] != b"CD001" {
            break;
        }
        match sector[0] {
            1 if primary.is_none() => {
                let blocks = u64::from(record::le32(&sector[80..84]));
                if blocks * SECTOR > backing.len() {
                    return Err(Error::corrupt(format!(
                        "ISO image is truncated: its volume has {} bytes, the file {}",
                        blocks * SECTOR,
                        backing.len()
                    )));
                }
                primary = Some(root_of(&sector, "primary")?);
            }
            2 if joliet.is_none() && sector[6] == 1 && is_joliet(&sector) => {
                // A broken Joliet descriptor only loses the Joliet tree.
                joliet = root_of(&sector, "Joliet").ok();
            }
            255 => break,
            _ => {}
        }
    }
    let primary = primary.ok_or_else(|| Error::corrupt("no ISO 9660 primary volume descriptor"))?;
    Ok(Volume { primary, joliet })
}

/// Joliet is a supplementary descriptor whose escape sequences (offset 88)
/// name UCS-2 level 1, 2 or 3.
fn is_joliet(sector: &[u8]) -> bool {
    sector[88] == b'%' && sector[89] == b'/' && matches!(sector[90], b'@' | b'C' | b'E')
}

/// The root directory record of a primary or supplementary descriptor.
fn root_of(sector: &[u8], what: &str) -> Result<RootDir> {
    let block_size = u16::from_le_bytes([sector[128], sector[129]]);
    if u64::from(block_size) != SECTOR {
        return Err(Error::Unsupported(format!(
            "{what} volume descriptor: logical block size {block_size}"
        )));
    }
    let rec = record::parse(&sector[156..190])?;
    if !rec.is_dir() {
        return Err(Error::corrupt(format!(
            "{what} root directory record is not a directory"
        )));
    }
    if rec.size == 0 {
        return Err(Error::corrupt(format!("{what} root directory is empty")));
    }
    Ok(RootDir {
        extent: rec.extent,
        size: rec.size,
    })
}
