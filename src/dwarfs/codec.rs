//! Decoding DwarFS section payloads, whole or as a prefix.
//!
//! DwarFS blocks are large (16-64 MiB is common) and one block is one
//! compressed stream, so its bytes cannot be decoded from the middle. zstd
//! and xz streams are decoded incrementally: [`decode_pages`] hands out the
//! decoded bytes page by page and stops as soon as the caller has what it
//! needs, reading the compressed input a piece at a time. An LZ4 block can
//! only be decoded whole, so it is, and handed out in the same pages.

use std::io;

use zstd::stream::raw::{Decoder as ZstdDecoder, Operation};

use super::section::Codec;
use crate::backing::Backing;
use crate::error::{Error, Result};

/// Compressed bytes read from the image per step of a streaming decode.
const INPUT_PIECE: usize = 256 << 10;

/// Most memory an xz decoder may take (its dictionary): mkdwarfs' largest
/// preset uses 64 MiB.
const LZMA_MEMLIMIT: u64 = 256 << 20;

/// A streaming decoder of one compressed payload.
enum Streaming {
    Zstd(ZstdDecoder<'static>),
    Lzma(liblzma::stream::Stream),
}

/// What one decoding step did.
struct Step {
    read: usize,
    written: usize,
    done: bool,
}

impl Streaming {
    fn new(codec: Codec) -> Result<Option<Streaming>> {
        Ok(match codec {
            Codec::Zstd => Some(Streaming::Zstd(ZstdDecoder::new().map_err(zstd_err)?)),
            Codec::Lzma => Some(Streaming::Lzma(
                liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, 0)
                    .map_err(|e| Error::corrupt(format!("lzma: {e}")))?,
            )),
            Codec::None | Codec::Lz4 => None,
        })
    }

    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step> {
        match self {
            Streaming::Zstd(d) => {
                let s = d.run_on_buffers(input, out).map_err(zstd_err)?;
                Ok(Step {
                    read: s.bytes_read,
                    written: s.bytes_written,
                    // 0: the frame is decoded and flushed completely.
                    done: s.remaining == 0,
                })
            }
            Streaming::Lzma(s) => {
                let (in0, out0) = (s.total_in(), s.total_out());
                let status = s
                    .process(input, out, liblzma::stream::Action::Run)
                    .map_err(|e| Error::corrupt(format!("lzma block: {e}")))?;
                Ok(Step {
                    read: (s.total_in() - in0) as usize,
                    written: (s.total_out() - out0) as usize,
                    done: status == liblzma::stream::Status::StreamEnd,
                })
            }
        }
    }
}

fn zstd_err(e: io::Error) -> Error {
    Error::corrupt(format!("zstd block: {e}"))
}

/// Decodes a whole payload held in memory to at most `limit` bytes.
pub fn decode_all(codec: Codec, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decode_slice_pages(codec, input, limit.max(1), limit, |_, page| {
        out.extend_from_slice(&page);
        true
    })?;
    Ok(out)
}

/// Decodes the payload of `size` bytes at `pos` in `backing`, passing each
/// page of `page_size` decoded bytes (the last one may be shorter) to
/// `sink` with its number; stops when `sink` returns false or the stream
/// ends. More than `limit` decoded bytes is corruption.
pub fn decode_pages(
    backing: &Backing,
    pos: u64,
    size: u64,
    codec: Codec,
    page_size: usize,
    limit: usize,
    mut sink: impl FnMut(usize, Vec<u8>) -> bool,
) -> Result<()> {
    let Some(mut decoder) = Streaming::new(codec)? else {
        if size > limit as u64 + 4 {
            return Err(Error::corrupt(format!(
                "{} block of {size} bytes is larger than the block size",
                codec.name()
            )));
        }
        let raw = backing.read_vec(pos, size as usize)?;
        return decode_slice_pages(codec, &raw, page_size, limit, sink);
    };
    let mut input = vec![0u8; INPUT_PIECE.min(size as usize)];
    let (mut in_at, mut in_len, mut in_used) = (0u64, 0usize, 0usize);
    let mut page = vec![0u8; page_size];
    let (mut filled, mut number, mut total) = (0usize, 0usize, 0usize);
    let mut stalls = 0u32;
    loop {
        if in_used == in_len && in_at < size {
            in_len = ((size - in_at) as usize).min(input.len());
            backing.read_exact_at(&mut input[..in_len], pos + in_at)?;
            in_at += in_len as u64;
            in_used = 0;
        }
        let step = decoder.step(&input[in_used..in_len], &mut page[filled..])?;
        in_used += step.read;
        filled += step.written;
        total += step.written;
        if total > limit {
            return Err(Error::corrupt(format!(
                "{} block decodes to more than the block size ({limit} bytes)",
                codec.name()
            )));
        }
        let starved = in_used == in_len && in_at == size;
        if filled == page_size || (step.done && filled > 0) {
            let full = std::mem::replace(&mut page, vec![0u8; page_size]);
            let mut full = full;
            full.truncate(filled);
            filled = 0;
            if !sink(number, full) {
                return Ok(());
            }
            number += 1;
        }
        if step.done {
            return Ok(());
        }
        // With output space left, a decoder that neither reads nor writes
        // is stuck: at the end of its input the block is truncated,
        // otherwise the stream is corrupt. Either way the loop ends here.
        if step.read == 0 && step.written == 0 {
            stalls += 1;
            if starved || stalls > 2 {
                return Err(Error::corrupt(format!(
                    "{} block ends before its stream does",
                    codec.name()
                )));
            }
        } else {
            stalls = 0;
        }
    }
}

/// [`decode_pages`] for a payload already in memory.
fn decode_slice_pages(
    codec: Codec,
    input: &[u8],
    page_size: usize,
    limit: usize,
    mut sink: impl FnMut(usize, Vec<u8>) -> bool,
) -> Result<()> {
    let whole: Vec<u8> = match codec {
        Codec::None => {
            if input.len() > limit {
                return Err(Error::corrupt("uncompressed block larger than its limit"));
            }
            input.to_vec()
        }
        Codec::Lz4 => lz4_block(input, limit)?,
        Codec::Zstd | Codec::Lzma => {
            let mut decoder =
                Streaming::new(codec)?.ok_or_else(|| Error::corrupt("no streaming decoder"))?;
            // One byte more than the limit: a stream that fills it is too long.
            let mut out = vec![0u8; limit.saturating_add(1)];
            let (mut used, mut filled) = (0usize, 0usize);
            loop {
                let step = decoder.step(&input[used..], &mut out[filled..])?;
                used += step.read;
                filled += step.written;
                if filled > limit {
                    return Err(Error::corrupt(format!(
                        "{} payload decodes to more than {limit} bytes",
                        codec.name()
                    )));
                }
                if step.done {
                    break;
                }
                if step.read == 0 && step.written == 0 {
                    return Err(Error::corrupt(format!(
                        "{} payload ends before its stream does",
                        codec.name()
                    )));
                }
            }
            out.truncate(filled);
            out
        }
    };
    for (number, piece) in whole.chunks(page_size.max(1)).enumerate() {
        if !sink(number, piece.to_vec()) {
            break;
        }
    }
    Ok(())
}

/// Decodes an LZ4 block as mkdwarfs writes it: the decoded size as 4 bytes
/// little endian, then the block.
fn lz4_block(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let (head, body) = input
        .split_first_chunk::<4>()
        .ok_or_else(|| Error::corrupt("lz4 block shorter than its size prefix"))?;
    let size = u32::from_le_bytes(*head) as usize;
    if size > limit {
        return Err(Error::corrupt(format!(
            "lz4 block claims {size} bytes, more than its limit of {limit}"
        )));
    }
    let mut out = vec![0u8; size];
    let n = lz4_flex::block::decompress_into(body, &mut out)
        .map_err(|e| Error::corrupt(format!("lz4 block: {e}")))?;
    if n != size {
        return Err(Error::corrupt(format!(
            "lz4 block decodes to {n} bytes, its prefix says {size}"
        )));
    }
    Ok(out)
}
