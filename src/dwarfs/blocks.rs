//! File bytes out of DwarFS blocks, through the shared cache, a page at a
//! time.
//!
//! A DwarFS block (16-64 MiB is common) is one compressed stream. Caching
//! it whole would hold tens of MiB per block, more than one shard of the
//! shared cache takes, and decoding it whole for a 4 KiB read wastes most
//! of the work. So a block is cached as pages of [`page_size`] bytes, each
//! its own cache entry. A miss on page `k` decodes the stream up to page
//! `k` and no further, keeping every page decoded on the way, and parks the
//! decoder in the cache ([`BlockCache::park`]): the next miss in that block
//! (the reader going on, or its read-ahead) resumes from there. A reader
//! walking through a block thus decodes it once, and a random read decodes
//! no more than the stream up to the page it needs. When the parked
//! decoder is gone (the cache dropped it) or is past the page asked for
//! (that page was evicted), the stream starts again from the block's
//! start. LZ4 blocks, which can only be decoded whole, are split into the
//! same pages; uncompressed blocks are read straight from the image.

use std::sync::{Arc, Mutex};

use super::codec::{decode_whole_pages, PageStream};
use super::section::{Codec, Section};
use crate::backing::Backing;
use crate::cache::{Block, BlockCache, BlockKey};
use crate::error::{Error, Result};

/// Smallest page: large enough that a page costs little per cache entry.
const MIN_PAGE: usize = 1 << 20;

/// Locks that serialize decoding within one block (a block's stream is
/// decoded by one thread at a time; see [`Blocks::decode`]).
const STREAM_LOCKS: usize = 64;

/// Pages per block at most; also the factor that makes cache keys unique
/// (key = payload position * this + page).
const MAX_PAGES: usize = 64;

/// The page size for a block size: at least [`MIN_PAGE`], at most
/// [`MAX_PAGES`] pages per block, never more than the block.
pub fn page_size(block_size: u32) -> usize {
    let bs = block_size as usize;
    MIN_PAGE.max(bs / MAX_PAGES).min(bs.max(1))
}

/// One block section: where its payload is and how it is compressed (or
/// why it cannot be decoded).
#[derive(Clone, Debug)]
struct BlockSection {
    pos: u64,
    size: u64,
    codec: std::result::Result<Codec, String>,
}

/// The data blocks of one opened image.
pub struct Blocks {
    backing: Backing,
    cache: Arc<BlockCache>,
    image: u64,
    sections: Vec<BlockSection>,
    block_size: usize,
    page: usize,
    streams: Vec<Mutex<()>>,
    /// Pages decoded so far, for tests of how much a read decodes.
    #[cfg(test)]
    pub decoded: std::sync::atomic::AtomicUsize,
}

impl Blocks {
    /// The blocks among `sections` (in order: chunk block numbers count
    /// block sections only).
    pub fn new(
        backing: Backing,
        cache: Arc<BlockCache>,
        image: u64,
        sections: &[Section],
        block_size: u32,
    ) -> Blocks {
        let sections = sections
            .iter()
            .filter(|s| s.kind == dwarfs::section::SectionType::BLOCK)
            .map(|s| BlockSection {
                pos: s.payload(),
                size: s.size,
                codec: Codec::from_algo(s.algo).map_err(|e| e.to_string()),
            })
            .collect();
        Blocks {
            backing,
            cache,
            image,
            sections,
            block_size: block_size as usize,
            page: page_size(block_size),
            streams: (0..STREAM_LOCKS).map(|_| Mutex::new(())).collect(),
            #[cfg(test)]
            decoded: Default::default(),
        }
    }

    /// Codec of the first block, for `inspect`.
    pub fn first_codec(&self) -> Option<&'static str> {
        match &self.sections.first()?.codec {
            Ok(c) => Some(c.name()),
            Err(_) => Some("unsupported"),
        }
    }

    fn section(&self, block: u32) -> Result<(&BlockSection, Codec)> {
        let s = self.sections.get(block as usize).ok_or_else(|| {
            Error::corrupt(format!(
                "DwarFS chunk refers to block {block} of {}",
                self.sections.len()
            ))
        })?;
        match &s.codec {
            Ok(c) => Ok((s, *c)),
            Err(e) => Err(Error::Unsupported(e.clone())),
        }
    }

    fn key(&self, s: &BlockSection, page: usize) -> BlockKey {
        BlockKey {
            image: self.image,
            pos: s.pos * MAX_PAGES as u64 + page as u64,
        }
    }

    /// Appends `len` bytes at `offset` of block `block` to `out`.
    pub fn read(&self, block: u32, offset: usize, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let (s, codec) = self.section(block)?;
        if codec == Codec::None {
            if (offset + len) as u64 > s.size {
                return Err(Error::corrupt("DwarFS chunk passes the end of its block"));
            }
            let at = out.len();
            out.resize(at + len, 0);
            return self
                .backing
                .read_exact_at(&mut out[at..], s.pos + offset as u64);
        }
        let mut at = offset;
        let end = offset + len;
        while at < end {
            let number = at / self.page;
            let page = self.page(s, codec, number)?;
            let within = at - number * self.page;
            let take = (end - at).min(self.page - within);
            let piece = page
                .get(within..within + take)
                .ok_or_else(|| Error::corrupt("DwarFS chunk passes the end of its block"))?;
            out.extend_from_slice(piece);
            at += take;
        }
        Ok(())
    }

    /// Starts decoding the page holding `offset` of `block` in the
    /// background (read-ahead), unless it is cached or under way.
    pub fn prefetch(self: &Arc<Self>, block: u32, offset: usize) {
        let Ok((s, codec)) = self.section(block) else {
            return;
        };
        if codec == Codec::None || offset >= self.block_size {
            return;
        }
        let number = offset / self.page;
        let key = self.key(s, number);
        let (me, s) = (self.clone(), s.clone());
        self.cache
            .prefetch(key, move || me.decode(&s, codec, number).map(unwrap_block));
    }

    fn page(&self, s: &BlockSection, codec: Codec, number: usize) -> Result<Block> {
        // Every page is kept, whatever the read's intent: pages of a
        // stream cannot be decoded alone, so dropping one makes the next
        // reader of it decode everything before it again.
        self.cache.get_or_load(self.key(s, number), || {
            self.decode(s, codec, number).map(unwrap_block)
        })
    }

    /// Page `want` of block `s`, for a cache loader. One thread at a time
    /// decodes a given block (its lock is held while it decodes): readers
    /// of other pages of the block, which the kernel sends in parallel,
    /// wait for it and then find their page among those it kept, instead
    /// of each decoding the stream at once. The lock is taken only inside
    /// cache loaders and nothing waits while holding it
    /// ([`BlockCache::offer`] and [`BlockCache::park`] never wait), so it
    /// cannot deadlock.
    fn decode(&self, s: &BlockSection, codec: Codec, want: usize) -> Result<Block> {
        let stripe = (s.pos >> 6) as usize % STREAM_LOCKS;
        let _decoding = self.streams[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(page) = self.cache.peek(self.key(s, want)) {
            return Ok(page);
        }
        match codec {
            Codec::Zstd | Codec::Lzma => self.decode_streaming(s, codec, want),
            Codec::None | Codec::Lz4 => self.decode_whole(s, codec, want),
        }
    }

    /// Decodes block `s` up to page `want`, resuming its parked decoder
    /// when that has not passed `want`, caching every page decoded on the
    /// way and parking the decoder again after `want`, which is returned.
    fn decode_streaming(&self, s: &BlockSection, codec: Codec, want: usize) -> Result<Block> {
        let park_key = self.key(s, 0);
        let parked = self
            .cache
            .unpark(park_key)
            .and_then(|state| state.downcast::<PageStream>().ok());
        let (mut stream, ahead) = match parked {
            Some(parked) if parked.next() <= want => (*parked, None),
            other => (self.fresh_stream(s, codec)?, other),
        };
        let mut wanted = None;
        loop {
            let number = stream.next();
            let Some(bytes) = stream.next_page(&self.backing)? else {
                break;
            };
            #[cfg(test)]
            self.decoded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if number == want {
                wanted = Some(Arc::new(bytes));
                // Of this stream and one parked further on (its page
                // `want` was evicted), the one further on is kept.
                if let Some(ahead) = ahead {
                    let bytes = ahead.memory();
                    self.cache.park(park_key, ahead, bytes);
                    break;
                }
                if self.cache.can_park(stream.memory()) {
                    if !stream.ended() {
                        let bytes = stream.memory();
                        self.cache.park(park_key, Box::new(stream), bytes);
                    }
                    break;
                }
            } else {
                self.cache.offer(self.key(s, number), bytes);
            }
            // A decoder too large to park (a small cache) goes on to page
            // `2 * want + 1`, so that a reader walking through the block
            // decodes it about twice rather than once per page.
            if wanted.is_some() && number >= want.saturating_mul(2).saturating_add(1) {
                break;
            }
        }
        wanted.ok_or_else(|| Error::corrupt("DwarFS chunk passes the end of its block"))
    }

    fn fresh_stream(&self, s: &BlockSection, codec: Codec) -> Result<PageStream> {
        PageStream::new(codec, s.pos, s.size, self.page, self.block_size)?
            .ok_or_else(|| Error::corrupt(format!("{} blocks do not stream", codec.name())))
    }

    /// Decodes block `s` whole (LZ4), caching every page but `want`, which
    /// is returned.
    fn decode_whole(&self, s: &BlockSection, codec: Codec, want: usize) -> Result<Block> {
        let mut wanted = None;
        decode_whole_pages(
            &self.backing,
            s.pos,
            s.size,
            codec,
            self.page,
            self.block_size,
            |number, bytes| {
                #[cfg(test)]
                self.decoded
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if number == want {
                    wanted = Some(Arc::new(bytes));
                } else {
                    self.cache.offer(self.key(s, number), bytes);
                }
                true
            },
        )?;
        wanted.ok_or_else(|| Error::corrupt("DwarFS chunk passes the end of its block"))
    }
}

/// The bytes of a block the caller holds alone (a fresh decode), else a
/// copy: the cache's loaders return owned vectors.
fn unwrap_block(block: Block) -> Vec<u8> {
    Arc::try_unwrap(block).unwrap_or_else(|shared| shared.as_ref().clone())
}
