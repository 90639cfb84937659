//! DwarFS sections: the 64-byte header in front of every block, schema,
//! metadata and index section, and the list of sections of an image.
//!
//! An image is a run of sections, each `header + payload`. Format 2.4 and
//! later end with a section index (one `type << 48 | offset` word per
//! section); without one (2.3, or an index that does not check out) the
//! headers are walked from the start, one read each. Offsets are relative
//! to the start of the image.

use dwarfs::section::{CompressAlgo, Header, SectionType};
use dwarfs::zerocopy::FromBytes;

use crate::backing::Backing;
use crate::error::{Error, Result};

/// Bytes of a section header.
pub const HEADER_SIZE: u64 = 64;

/// Oldest and newest format versions this reader reads: 2.3 (mkdwarfs 0.5)
/// introduced the directory entry table it relies on; 2.5 is the newest the
/// metadata decoder knows.
pub const SUPPORTED: std::ops::RangeInclusive<(u8, u8)> = (2, 3)..=(2, 5);

/// Sections an image may have, far more than any real one (a 64 GiB image
/// of 16 MiB blocks has 4096): bounds the index and the header walk.
pub const MAX_SECTIONS: usize = 1 << 20;

/// How a section's payload is compressed (the codecs this reader decodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    None,
    /// xz stream.
    Lzma,
    /// Zstandard frame.
    Zstd,
    /// LZ4 block behind a 4-byte little-endian decoded size (also LZ4HC).
    Lz4,
}

impl Codec {
    /// The codec of a header's compression id; other ids (brotli, flac,
    /// ricepp, unknown) are a clear "not supported" error.
    pub fn from_algo(algo: CompressAlgo) -> Result<Codec> {
        match algo {
            CompressAlgo::NONE => Ok(Codec::None),
            CompressAlgo::LZMA => Ok(Codec::Lzma),
            CompressAlgo::ZSTD => Ok(Codec::Zstd),
            CompressAlgo::LZ4 | CompressAlgo::LZ4HC => Ok(Codec::Lz4),
            CompressAlgo::BROTLI => Err(unsupported_codec("brotli")),
            CompressAlgo::FLAC => Err(unsupported_codec("flac")),
            CompressAlgo::RICEPP => Err(unsupported_codec("ricepp")),
            other => Err(unsupported_codec(&format!("number {}", other.0.get()))),
        }
    }

    /// Lower-case name as `mkdwarfs -C` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lzma => "lzma",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
        }
    }
}

fn unsupported_codec(name: &str) -> Error {
    Error::Unsupported(format!("DwarFS compression {name} is not supported"))
}

/// The error for a format version outside [`SUPPORTED`].
pub fn check_version(major: u8, minor: u8) -> Result<()> {
    if SUPPORTED.contains(&(major, minor)) {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "DwarFS format {major}.{minor} is not supported (this reader reads {}.{} to {}.{})",
        SUPPORTED.start().0,
        SUPPORTED.start().1,
        SUPPORTED.end().0,
        SUPPORTED.end().1
    )))
}

/// How `inspect` names a DwarFS payload of a supported format version.
pub fn format_name(version: (u8, u8)) -> &'static str {
    match version {
        (2, 3) => "dwarfs 2.3",
        (2, 4) => "dwarfs 2.4",
        (2, 5) => "dwarfs 2.5",
        _ => "dwarfs",
    }
}

/// Parses and checks a section header: magic, supported version.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    let header = Header::read_from_bytes(bytes)
        .map_err(|_| Error::corrupt("short DwarFS section header"))?;
    if header.magic_version.magic != *b"DWARFS" {
        return Err(Error::corrupt("DwarFS section header without DWARFS magic"));
    }
    check_version(header.magic_version.major, header.magic_version.minor)?;
    Ok(header)
}

/// One section of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Offset of its header in the image.
    pub offset: u64,
    /// Section type.
    pub kind: SectionType,
    /// Payload compression, as stored (checked when the payload is read).
    pub algo: CompressAlgo,
    /// Payload bytes on disk.
    pub size: u64,
    /// The header's XXH3-64 of header tail and payload.
    pub header: Header,
}

impl Section {
    /// Where the payload starts in the image.
    pub fn payload(&self) -> u64 {
        self.offset + HEADER_SIZE
    }
}

/// Reads the header at `offset` and checks its payload lies in the image.
pub fn read_section(backing: &Backing, offset: u64) -> Result<Section> {
    let mut raw = [0u8; HEADER_SIZE as usize];
    backing.read_exact_at(&mut raw, offset)?;
    let header = parse_header(&raw)?;
    let size = header.payload_size.get();
    let end = offset
        .checked_add(HEADER_SIZE)
        .and_then(|p| p.checked_add(size));
    if end.is_none_or(|e| e > backing.len()) {
        return Err(Error::corrupt(format!(
            "DwarFS section at {offset} ({size} bytes) runs past the end of the image"
        )));
    }
    Ok(Section {
        offset,
        kind: header.section_type,
        algo: header.compress_algo,
        size,
        header,
    })
}

/// Every section of the image, in order: from the section index when the
/// image has a valid one, else by walking the headers.
pub fn sections(backing: &Backing) -> Result<Vec<Section>> {
    let first = read_section(backing, 0)?;
    let indexed = (
        first.header.magic_version.major,
        first.header.magic_version.minor,
    ) >= (2, 4);
    if indexed {
        if let Some(found) = from_index(backing)? {
            return Ok(found);
        }
    }
    walk(backing)
}

/// The sections listed by a trailing section index, or `None` when the
/// image has none (the last word does not name one).
fn from_index(backing: &Backing) -> Result<Option<Vec<Section>>> {
    let len = backing.len();
    if len < HEADER_SIZE + 8 {
        return Ok(None);
    }
    let mut last = [0u8; 8];
    backing.read_exact_at(&mut last, len - 8)?;
    let word = u64::from_le_bytes(last);
    if (word >> 48) as u16 != SectionType::SECTION_INDEX.0.get() {
        return Ok(None);
    }
    let at = word & ((1 << 48) - 1);
    let Ok(index) = read_section(backing, at) else {
        return Ok(None);
    };
    if index.kind != SectionType::SECTION_INDEX
        || index.algo != CompressAlgo::NONE
        || index.payload() + index.size != len
        || index.size % 8 != 0
        || index.size / 8 > MAX_SECTIONS as u64
    {
        return Ok(None);
    }
    let payload = backing.read_vec(index.payload(), index.size as usize)?;
    index
        .header
        .validate_fast_checksum(&payload)
        .map_err(|e| Error::corrupt(format!("DwarFS section index: {e}")))?;
    let mut out = Vec::with_capacity(payload.len() / 8);
    let mut prev = None;
    for raw in payload.chunks_exact(8) {
        let word = u64::from_le_bytes(raw.try_into().unwrap_or([0; 8]));
        let offset = word & ((1 << 48) - 1);
        if prev.is_some_and(|p| p >= offset) {
            return Err(Error::corrupt("DwarFS section index is not sorted"));
        }
        prev = Some(offset);
        let section = read_section(backing, offset)?;
        if section.kind.0.get() != (word >> 48) as u16 {
            return Err(Error::corrupt(format!(
                "DwarFS section index names the wrong type for the section at {offset}"
            )));
        }
        out.push(section);
    }
    Ok(Some(out))
}

/// Walks section headers from the start of the image to its end.
fn walk(backing: &Backing) -> Result<Vec<Section>> {
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < backing.len() {
        if out.len() >= MAX_SECTIONS {
            return Err(Error::Unsupported(format!(
                "DwarFS image with more than {MAX_SECTIONS} sections"
            )));
        }
        let section = read_section(backing, at)?;
        at = section.payload() + section.size;
        out.push(section);
    }
    Ok(out)
}

/// Reads and checks (XXH3-64) a section's whole payload, and decodes it to
/// at most `limit` bytes.
pub fn read_payload(backing: &Backing, section: &Section, limit: usize) -> Result<Vec<u8>> {
    let codec = Codec::from_algo(section.algo)?;
    if section.size > limit as u64 {
        return Err(Error::Unsupported(format!(
            "DwarFS section of {} bytes, more than the {limit} this reader loads",
            section.size
        )));
    }
    let raw = backing.read_vec(section.payload(), section.size as usize)?;
    section
        .header
        .validate_fast_checksum(&raw)
        .map_err(|e| Error::corrupt(format!("DwarFS section at {}: {e}", section.offset)))?;
    super::codec::decode_all(codec, &raw, limit)
}
