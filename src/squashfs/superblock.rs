//! The SquashFS 4.0 superblock: the 96 bytes at the start of every image.

use crate::decompress::Codec;
use crate::error::{Error, Result};

/// Size of the superblock on disk.
pub const SUPERBLOCK_SIZE: usize = 96;

/// "hsqs", little endian.
pub const MAGIC: u32 = 0x7371_7368;

/// Superblock flag: inodes are stored uncompressed.
pub const FLAG_UNCOMPRESSED_INODES: u16 = 0x0001;
/// Superblock flag: a compressor options block follows the superblock.
pub const FLAG_COMPRESSOR_OPTIONS: u16 = 0x0400;
/// Superblock flag: there are no extended attributes.
pub const FLAG_NO_XATTRS: u16 = 0x0200;

/// Table positions of 0xffff_ffff_ffff_ffff mean "no such table".
pub const NO_TABLE: u64 = u64::MAX;

/// The parsed superblock, validated so later code can trust its ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Number of inodes in the image.
    pub inode_count: u32,
    /// Image creation time (seconds).
    pub mod_time: u32,
    /// Data block size in bytes (4 KiB to 1 MiB, a power of two).
    pub block_size: u32,
    /// Number of fragment table entries.
    pub fragment_count: u32,
    /// Compression of data and metadata.
    pub codec: Codec,
    /// Superblock flags.
    pub flags: u16,
    /// Number of uid/gid table entries.
    pub id_count: u16,
    /// Reference (block << 16 | offset) of the root directory inode.
    pub root_inode: u64,
    /// Bytes of the image that are used; the image must be at least this long.
    pub bytes_used: u64,
    /// Start of the id lookup table.
    pub id_table: u64,
    /// Start of the xattr id table, or [`NO_TABLE`].
    pub xattr_table: u64,
    /// Start of the inode table.
    pub inode_table: u64,
    /// Start of the directory table.
    pub dir_table: u64,
    /// Start of the fragment lookup table, or [`NO_TABLE`].
    pub fragment_table: u64,
    /// Start of the export table, or [`NO_TABLE`].
    pub export_table: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Superblock {
    /// True when `bytes` starts with the SquashFS magic.
    pub fn has_magic(bytes: &[u8]) -> bool {
        bytes.len() >= 4 && u32_at(bytes, 0) == MAGIC
    }

    /// Parses and validates a superblock. `available` is the number of bytes
    /// from the superblock's start to the end of the file.
    pub fn parse(bytes: &[u8], available: u64) -> Result<Superblock> {
        if bytes.len() < SUPERBLOCK_SIZE {
            return Err(Error::corrupt("SquashFS superblock is cut short"));
        }
        if !Self::has_magic(bytes) {
            return Err(Error::corrupt("no SquashFS magic (hsqs)"));
        }
        let (major, minor) = (u16_at(bytes, 28), u16_at(bytes, 30));
        if (major, minor) != (4, 0) {
            return Err(Error::Unsupported(format!(
                "SquashFS version {major}.{minor} (only 4.0 is used by AppImages)"
            )));
        }
        let compressor = u16_at(bytes, 20);
        let codec = Codec::from_squashfs_id(compressor)
            .ok_or_else(|| Error::Unsupported(format!("SquashFS compressor id {compressor}")))?;
        let block_size = u32_at(bytes, 12);
        let block_log = u16_at(bytes, 22);
        if !(4096..=1 << 20).contains(&block_size)
            || !block_size.is_power_of_two()
            || u32::from(block_log) != block_size.trailing_zeros()
        {
            return Err(Error::corrupt(format!(
                "SquashFS block size {block_size} (log {block_log}) is not a power of two from 4 KiB to 1 MiB"
            )));
        }
        let sb = Superblock {
            inode_count: u32_at(bytes, 4),
            mod_time: u32_at(bytes, 8),
            block_size,
            fragment_count: u32_at(bytes, 16),
            codec,
            flags: u16_at(bytes, 24),
            id_count: u16_at(bytes, 26),
            root_inode: u64_at(bytes, 32),
            bytes_used: u64_at(bytes, 40),
            id_table: u64_at(bytes, 48),
            xattr_table: u64_at(bytes, 56),
            inode_table: u64_at(bytes, 64),
            dir_table: u64_at(bytes, 72),
            fragment_table: u64_at(bytes, 80),
            export_table: u64_at(bytes, 88),
        };
        if sb.bytes_used > available {
            return Err(Error::corrupt(format!(
                "SquashFS says it uses {} bytes but only {available} are present (truncated or still being copied)",
                sb.bytes_used
            )));
        }
        let within = |pos: u64| pos < sb.bytes_used;
        if !(within(sb.inode_table)
            && within(sb.dir_table)
            && within(sb.id_table)
            && sb.inode_table <= sb.dir_table
            && (sb.root_inode >> 16) < sb.dir_table - sb.inode_table)
        {
            return Err(Error::corrupt(
                "SquashFS table positions lie outside the image",
            ));
        }
        Ok(sb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_SIZE];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[12..16].copy_from_slice(&131072u32.to_le_bytes());
        b[20..22].copy_from_slice(&1u16.to_le_bytes());
        b[22..24].copy_from_slice(&17u16.to_le_bytes());
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&1000u64.to_le_bytes());
        b[48..56].copy_from_slice(&900u64.to_le_bytes());
        b[64..72].copy_from_slice(&96u64.to_le_bytes());
        b[72..80].copy_from_slice(&500u64.to_le_bytes());
        b
    }

    #[test]
    fn parses_valid() {
        let sb = Superblock::parse(&sample(), 1000).unwrap();
        assert_eq!(sb.block_size, 131072);
        assert_eq!(sb.codec, Codec::Zlib);
    }

    #[test]
    fn rejects_truncated_and_bad_fields() {
        assert!(Superblock::parse(&sample(), 999).is_err());
        assert!(Superblock::parse(&sample()[..50], 1000).is_err());
        let mut b = sample();
        b[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Superblock::parse(&b, 1000).is_err());
        let mut b = sample();
        b[20] = 9;
        assert!(Superblock::parse(&b, 1000).is_err());
        let mut b = sample();
        b[64..72].copy_from_slice(&5000u64.to_le_bytes());
        assert!(Superblock::parse(&b, 1000).is_err());
    }
}
