//! Block decompression for every codec the images use, with a hard cap on
//! output size.
//!
//! SquashFS data and metadata blocks and zisofs blocks all decompress to at
//! most a known size (the block size). A block that would inflate past its
//! cap is corrupt, and is rejected without allocating more than the cap plus
//! the decoder's own small growth margin.

use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};

use crate::error::{Error, Result};

/// The compression codecs found in AppImages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// zlib stream (SquashFS "gzip", id 1, and every zisofs block).
    Zlib,
    /// LZMA "alone" format (SquashFS id 2).
    Lzma,
    /// LZO1X (SquashFS id 3).
    Lzo,
    /// xz (SquashFS id 4).
    Xz,
    /// LZ4 block format (SquashFS id 5).
    Lz4,
    /// Zstandard (SquashFS id 6).
    Zstd,
}

impl Codec {
    /// Maps a SquashFS superblock compressor id to a codec.
    pub fn from_squashfs_id(id: u16) -> Option<Codec> {
        match id {
            1 => Some(Codec::Zlib),
            2 => Some(Codec::Lzma),
            3 => Some(Codec::Lzo),
            4 => Some(Codec::Xz),
            5 => Some(Codec::Lz4),
            6 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Whether blocks decode an order of magnitude slower than the others
    /// (tens of MB/s per core against hundreds): worth keeping even when
    /// they were decompressed only to be passed on.
    pub fn decodes_slowly(self) -> bool {
        matches!(self, Codec::Xz | Codec::Lzma)
    }

    /// Short lower-case name, as `mksquashfs -comp` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Zlib => "gzip",
            Codec::Lzma => "lzma",
            Codec::Lzo => "lzo",
            Codec::Xz => "xz",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// Decompresses `input`, which must inflate to at most `max_out` bytes.
pub fn decompress(codec: Codec, input: &[u8], max_out: usize) -> Result<Vec<u8>> {
    if input.is_empty() {
        return Err(Error::corrupt(format!("empty {} block", codec.name())));
    }
    let mut out = Vec::with_capacity(max_out);
    match codec {
        Codec::Lzma => lzma_alone(input, &mut out, max_out)?,
        Codec::Zstd => zstd_frame(input, &mut out)?,
        Codec::Zlib => zlib_block(input, &mut out, max_out)?,
        Codec::Lzo => by_backhand(codec, Compressor::Lzo, input, &mut out)?,
        Codec::Xz => by_backhand(codec, Compressor::Xz, input, &mut out)?,
        Codec::Lz4 => by_backhand(codec, Compressor::Lz4, input, &mut out)?,
    }
    if out.len() > max_out {
        return Err(Error::corrupt(format!(
            "{} block inflates to {} bytes, more than its limit of {max_out}",
            codec.name(),
            out.len()
        )));
    }
    Ok(out)
}

/// Decodes with backhand's decoder for `compressor`.
fn by_backhand(
    codec: Codec,
    compressor: Compressor,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    DefaultCompressor
        .decompress(input, out, compressor)
        .map_err(|e| Error::corrupt(format!("{} block: {e}", codec.name())))
}

/// Decodes a zlib stream of at most `max_out` bytes with libdeflate, which
/// inflates a whole buffer about twice as fast as a streaming zlib.
fn zlib_block(input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<()> {
    use libdeflater::{DecompressionError, Decompressor};
    use std::cell::RefCell;
    thread_local! {
        static DECODER: RefCell<Decompressor> = RefCell::new(Decompressor::new());
    }
    out.resize(max_out, 0);
    let written = DECODER.with(|d| d.borrow_mut().zlib_decompress(input, out));
    match written {
        Ok(n) => {
            out.truncate(n);
            Ok(())
        }
        Err(DecompressionError::InsufficientSpace) => Err(Error::corrupt(format!(
            "gzip block inflates to more than its limit of {max_out} bytes"
        ))),
        Err(DecompressionError::BadData) => Err(Error::corrupt("gzip block: invalid zlib data")),
    }
}

/// Decodes one zstd frame into the spare capacity of `out` (a frame that
/// does not fit is an error) with this thread's decoder context, kept for
/// the next block: creating a context per block cost a few percent of the
/// decompression time.
fn zstd_frame(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    use std::cell::RefCell;
    use zstd::bulk::Decompressor;
    thread_local! {
        static DECODER: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
    }
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decoder = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(
                Decompressor::new().map_err(|e| Error::corrupt(format!("zstd decoder: {e}")))?,
            ),
        };
        decoder
            .decompress_to_buffer(input, out)
            .map(drop)
            .map_err(|e| Error::corrupt(format!("zstd block: {e}")))
    })
}

/// Decodes the LZMA-alone format squashfs-tools writes for compressor id 2
/// (backhand's default compressor does not handle it).
fn lzma_alone(input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<()> {
    use liblzma::stream::{Action, Status, Stream};
    const MEMLIMIT: u64 = 256 << 20;
    let mut stream = Stream::new_lzma_decoder(MEMLIMIT)
        .map_err(|e| Error::corrupt(format!("lzma decoder: {e}")))?;
    // One spare byte tells "exactly max_out" apart from "more than max_out".
    out.reserve(max_out + 1);
    loop {
        let consumed = stream.total_in() as usize;
        let status = stream
            .process_vec(&input[consumed.min(input.len())..], out, Action::Finish)
            .map_err(|e| Error::corrupt(format!("lzma block: {e}")))?;
        if status == Status::StreamEnd {
            return Ok(());
        }
        if out.len() > max_out {
            return Err(Error::corrupt("lzma block inflates past its limit"));
        }
        if stream.total_in() as usize >= input.len() && out.len() < out.capacity() {
            return Err(Error::corrupt("lzma block is truncated"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_codecs() {
        assert_eq!(Codec::from_squashfs_id(1), Some(Codec::Zlib));
        assert_eq!(Codec::from_squashfs_id(6), Some(Codec::Zstd));
        assert_eq!(Codec::from_squashfs_id(0), None);
        assert_eq!(Codec::from_squashfs_id(7), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let junk = [0xffu8; 64];
        for codec in [
            Codec::Zlib,
            Codec::Lzma,
            Codec::Lzo,
            Codec::Xz,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            assert!(decompress(codec, &junk, 4096).is_err(), "{codec:?}");
            assert!(decompress(codec, &[], 4096).is_err(), "{codec:?} empty");
        }
    }
}
