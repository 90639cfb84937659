//! Recognises AppImages by content: which type, and where the payload is.
//!
//! Detection reads only a few headers (ELF header, section headers, the
//! SquashFS superblock or the ISO 9660 volume descriptor), so a folder of
//! hundreds of large AppImages is scanned in milliseconds.

pub mod elf;

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::backing::FileVersion;
use crate::error::{Error, Result};
use crate::squashfs::superblock::{Superblock, SUPERBLOCK_SIZE};

/// Byte position of the ISO 9660 primary volume descriptor's "CD001".
const ISO_PVD_ID: u64 = 32769;

/// What kind of filesystem image an AppImage carries, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Type 2: a SquashFS image starting right after the ELF runtime.
    SquashFs {
        /// Byte offset of the SquashFS superblock in the file.
        offset: u64,
        /// The validated superblock.
        superblock: Superblock,
    },
    /// Type 2 made by uruntime: a DwarFS image starting right after the
    /// ELF runtime and running to the end of the file.
    Dwarfs {
        /// Byte offset of the image's first section in the file.
        offset: u64,
        /// Bytes from there to the end of the file.
        len: u64,
        /// Format version of the first section (major, minor).
        version: (u8, u8),
    },
    /// Type 1: the whole file is an ISO 9660 image; the runtime sits in its
    /// system area.
    Iso9660 {
        /// Length of the file.
        len: u64,
    },
}

/// A file recognised as an AppImage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppImage {
    /// The runtime's ELF facts.
    pub elf: elf::Elf,
    /// The type from the magic at bytes 8..11 ("AI\x01" / "AI\x02"), if present.
    pub magic_type: Option<u8>,
    /// The payload.
    pub payload: Payload,
    /// The version of the file this detection describes; readers opened
    /// from it refuse to serve bytes of any other version.
    pub version: FileVersion,
}

impl AppImage {
    /// The AppImage type (1 or 2) as judged by the payload.
    pub fn kind(&self) -> u8 {
        match self.payload {
            Payload::Iso9660 { .. } => 1,
            Payload::SquashFs { .. } | Payload::Dwarfs { .. } => 2,
        }
    }
}

/// Inspects an open file; `Err` says in one line why it is not a usable
/// AppImage.
pub fn detect(file: &File) -> Result<AppImage> {
    let version = FileVersion::of(file)?;
    let len = version.size;
    let mut read_at = |offset: u64, n: usize| -> Result<Vec<u8>> {
        if offset.checked_add(n as u64).is_none_or(|end| end > len) {
            return Err(Error::corrupt(format!(
                "needs {n} bytes at {offset} but the file has {len}"
            )));
        }
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    };
    if len < 64 {
        return Err(Error::corrupt(format!(
            "too small to be an AppImage ({len} bytes)"
        )));
    }
    let head = read_at(0, 64)?;
    if !elf::has_magic(&head) {
        return Err(Error::corrupt("not an ELF executable"));
    }
    let magic_type = match &head[8..11] {
        [b'A', b'I', t @ (1 | 2)] => Some(*t),
        _ => None,
    };
    let elf = elf::parse(&head, len, &mut read_at)?;
    if magic_type != Some(2) && len > ISO_PVD_ID + 5 && read_at(ISO_PVD_ID, 5)? == b"CD001" {
        return Ok(AppImage {
            elf,
            magic_type,
            payload: Payload::Iso9660 { len },
            version,
        });
    }
    let offset = elf.end;
    if len.saturating_sub(offset) < SUPERBLOCK_SIZE as u64 {
        return Err(Error::corrupt(format!(
            "nothing after the ELF runtime (it ends at {offset}); a plain program, not an AppImage"
        )));
    }
    let sb_bytes = read_at(offset, SUPERBLOCK_SIZE)?;
    if sb_bytes.starts_with(b"DWARFS") {
        let format = (sb_bytes[6], sb_bytes[7]);
        crate::dwarfs::section::check_version(format.0, format.1)?;
        return Ok(AppImage {
            elf,
            magic_type,
            payload: Payload::Dwarfs {
                offset,
                len: len - offset,
                version: format,
            },
            version,
        });
    }
    if !Superblock::has_magic(&sb_bytes) {
        return Err(Error::corrupt(format!(
            "no SquashFS or DwarFS payload at offset {offset} (after the ELF runtime) and no ISO 9660 image"
        )));
    }
    let superblock = Superblock::parse(&sb_bytes, len - offset)?;
    Ok(AppImage {
        elf,
        magic_type,
        payload: Payload::SquashFs { offset, superblock },
        version,
    })
}
