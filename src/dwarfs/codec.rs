//! Decoding DwarFS section payloads, whole or as a prefix.
//!
//! DwarFS blocks are large (16-64 MiB is common) and one block is one
//! compressed stream, so its bytes cannot be decoded from the middle. zstd
//! and xz streams are decoded incrementally: [`decode_pages`] hands out the
//! decoded bytes page by page and stops as soon as the caller has what it
//! needs, reading the compressed input a piece at a time. An LZ4 block can
//! only be decoded whole, so it is, and handed out in the same pages.

use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer};

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
    Zstd(DCtx<'static>),
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
            Codec::Zstd => Some(Streaming::Zstd(
                DCtx::try_create().ok_or_else(|| Error::corrupt("zstd: no decoder"))?,
            )),
            Codec::Lzma => Some(Streaming::Lzma(
                liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, 0)
                    .map_err(|e| Error::corrupt(format!("lzma: {e}")))?,
            )),
            Codec::None | Codec::Lz4 => None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Streaming::Zstd(_) => Codec::Zstd.name(),
            Streaming::Lzma(_) => Codec::Lzma.name(),
        }
    }

    /// Bytes the decoder holds (its window or dictionary): zstd's as it
    /// reports it; for xz, whose binding does not report it, `limit`, the
    /// most a dictionary fills on a stream of at most that many bytes.
    fn memory(&self, limit: usize) -> usize {
        match self {
            Streaming::Zstd(d) => d.sizeof(),
            Streaming::Lzma(_) => limit,
        }
    }

    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step> {
        match self {
            Streaming::Zstd(d) => {
                let mut input = InBuffer::around(input);
                let mut output = OutBuffer::around(out);
                let remaining = d
                    .decompress_stream(&mut output, &mut input)
                    .map_err(|code| {
                        Error::corrupt(format!("zstd block: {}", zstd_safe::get_error_name(code)))
                    })?;
                Ok(Step {
                    read: input.pos(),
                    written: output.pos(),
                    // 0: the frame is decoded and flushed completely.
                    done: remaining == 0,
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

/// Decodes a whole payload held in memory to at most `limit` bytes.
pub fn decode_all(codec: Codec, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decode_slice_pages(codec, input, limit.max(1), limit, |_, page| {
        out.extend_from_slice(&page);
        true
    })?;
    Ok(out)
}

/// A block's stream decoded a page at a time, which can stop after any
/// page and go on later where it stopped (zstd and xz only: an LZ4 block
/// decodes whole). The blocks layer parks one in the shared cache between
/// reads, so that a reader walking through a block decodes it once.
pub struct PageStream {
    decoder: Streaming,
    pos: u64,
    size: u64,
    input: Vec<u8>,
    in_at: u64,
    in_len: usize,
    in_used: usize,
    page_size: usize,
    limit: usize,
    next: usize,
    total: usize,
    ended: bool,
}

impl PageStream {
    /// The stream of the payload of `size` bytes at `pos`, in pages of
    /// `page_size` bytes, more than `limit` decoded bytes being corruption;
    /// `None` for codecs that cannot be decoded piecewise.
    pub fn new(
        codec: Codec,
        pos: u64,
        size: u64,
        page_size: usize,
        limit: usize,
    ) -> Result<Option<PageStream>> {
        let Some(decoder) = Streaming::new(codec)? else {
            return Ok(None);
        };
        Ok(Some(PageStream {
            decoder,
            pos,
            size,
            input: vec![0u8; INPUT_PIECE.min(size as usize)],
            in_at: 0,
            in_len: 0,
            in_used: 0,
            page_size: page_size.max(1),
            limit,
            next: 0,
            total: 0,
            ended: false,
        }))
    }

    /// Number of the page [`next_page`](Self::next_page) decodes next.
    pub fn next(&self) -> usize {
        self.next
    }

    /// Whether the stream has ended (no page follows).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes this stream holds: its decoder (the window or dictionary it
    /// allocated) and its input buffer.
    pub fn memory(&self) -> usize {
        self.decoder.memory(self.limit) + self.input.capacity() + std::mem::size_of::<Self>()
    }

    /// Decodes the next page (the last one may be shorter); `None` once
    /// the stream has ended.
    pub fn next_page(&mut self, backing: &Backing) -> Result<Option<Vec<u8>>> {
        if self.ended {
            return Ok(None);
        }
        let name = self.decoder.name();
        let mut page = vec![0u8; self.page_size];
        let mut filled = 0usize;
        let mut stalls = 0u32;
        loop {
            if self.in_used == self.in_len && self.in_at < self.size {
                self.in_len = ((self.size - self.in_at) as usize).min(self.input.len());
                backing.read_exact_at(&mut self.input[..self.in_len], self.pos + self.in_at)?;
                self.in_at += self.in_len as u64;
                self.in_used = 0;
            }
            let step = self
                .decoder
                .step(&self.input[self.in_used..self.in_len], &mut page[filled..])?;
            self.in_used += step.read;
            filled += step.written;
            self.total += step.written;
            if self.total > self.limit {
                return Err(Error::corrupt(format!(
                    "{name} block decodes to more than the block size ({} bytes)",
                    self.limit
                )));
            }
            self.ended = step.done;
            if filled == self.page_size || (step.done && filled > 0) {
                page.truncate(filled);
                self.next += 1;
                return Ok(Some(page));
            }
            if step.done {
                return Ok(None);
            }
            // With output space left, a decoder that neither reads nor
            // writes is stuck: at the end of its input the block is
            // truncated, otherwise the stream is corrupt. Either way the
            // loop ends here.
            let starved = self.in_used == self.in_len && self.in_at == self.size;
            if step.read == 0 && step.written == 0 {
                stalls += 1;
                if starved || stalls > 2 {
                    return Err(Error::corrupt(format!(
                        "{name} block ends before its stream does"
                    )));
                }
            } else {
                stalls = 0;
            }
        }
    }
}

/// Decodes the payload of `size` bytes at `pos` in `backing` whole (codecs
/// that cannot be decoded piecewise: none and LZ4), passing each page of
/// `page_size` decoded bytes (the last one may be shorter) to `sink` with
/// its number. More than `limit` decoded bytes is corruption.
pub fn decode_whole_pages(
    backing: &Backing,
    pos: u64,
    size: u64,
    codec: Codec,
    page_size: usize,
    limit: usize,
    sink: impl FnMut(usize, Vec<u8>) -> bool,
) -> Result<()> {
    if size > limit as u64 + 4 {
        return Err(Error::corrupt(format!(
            "{} block of {size} bytes is larger than the block size",
            codec.name()
        )));
    }
    let raw = backing.read_vec(pos, size as usize)?;
    decode_slice_pages(codec, &raw, page_size, limit, sink)
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
