//! The decompression cache shared by every mounted image.
//!
//! Calling contract: a reader asks [`BlockCache::get_or_load`] for a block by
//! [`BlockKey`] and passes the function that would decompress it. If the
//! block is cached it is returned at once; if another thread is already
//! decompressing it, the caller waits for that result instead of doing the
//! work twice; otherwise the caller runs the loader, and a successful result
//! is kept while it fits in the byte budget (least recently used blocks are
//! dropped first). Errors are never cached, so a transient I/O error is
//! retried by the next reader. A caller that only passes a block on to
//! somewhere that will hold it (page-cache warming) can ask for it not to
//! be kept ([`BlockCache::get_or_load_with`]); it is kept anyway when a
//! caller that wants it kept waited for the same load.
//!
//! Blocks are decoded through [`BlockCache::decompress`], which consults
//! the on-disk cache of `--cache-dir` (when there is one) before decoding
//! and hands it what it decoded.
//!
//! A loader that decodes a stream piecewise (a DwarFS block) can park its
//! decoder between loads ([`BlockCache::park`]) so that the next load
//! resumes where it stopped instead of decoding from the start again.
//! Parked decoders are few and bounded daemon-wide, in number and in
//! bytes; the least recently parked is dropped first.
//!
//! The cache is split into shards, each behind its own mutex, so readers of
//! different blocks rarely contend; the lock is never held while a block is
//! decompressed.

use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

use crate::decompress::Codec;
use crate::disk_cache::{DiskCache, Key};
use crate::error::{Error, Result};
use crate::prefetch::Prefetcher;

/// Names one decompressed block: the opened image it belongs to and the byte
/// position of its compressed form inside that image. Positions are unique
/// within an image, whatever kind of block (metadata, data, fragment,
/// zisofs) lives there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// Unique id of the opened image (see [`BlockCache::new_image_id`]).
    pub image: u64,
    /// Byte position of the compressed block in the image.
    pub pos: u64,
}

/// A decompressed block, shared without copying. A `Vec` rather than a
/// slice so that the decoder's output buffer is kept as is (no second copy).
pub type Block = Arc<Vec<u8>>;

/// Fixed cost counted per cached block on top of its bytes (map entries,
/// the `Arc` header), so that many tiny blocks cannot exceed the budget.
const PER_BLOCK_OVERHEAD: usize = 96;

const SHARDS: usize = 16;

/// Most decoders parked at once, daemon-wide: about one per reader of a
/// large block at a time.
const MAX_PARKED: usize = 8;

/// A decoder state parked between loads, and the bytes it holds.
type ParkedState = (Box<dyn Any + Send>, usize);

/// Parked decoder states (see [`BlockCache::park`]).
struct Parked {
    states: LruCache<BlockKey, ParkedState>,
    bytes: usize,
}

type InFlight = Arc<OnceLock<std::result::Result<Block, String>>>;

/// A load under way: its result, and whether anyone asking for the block
/// wants it kept.
struct Loading {
    result: InFlight,
    keep: bool,
}

struct Shard {
    blocks: LruCache<BlockKey, Block>,
    bytes: usize,
    loading: HashMap<BlockKey, Loading, lru::DefaultHasher>,
}

/// Counters that benchmarks and tests read to see what the cache did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that ran a loader.
    pub misses: u64,
    /// Requests that waited for another thread's loader.
    pub waits: u64,
    /// Blocks dropped to stay inside the budget.
    pub evictions: u64,
    /// Bytes currently held (including per-block overhead).
    pub bytes: u64,
}

/// A byte-budgeted, sharded LRU cache of decompressed blocks with
/// single-flight loading.
pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
    /// Picks a key's shard: the hasher of [`lru`] (foldhash, seeded per
    /// process), a few instructions where SipHash took a hundred on every
    /// lookup of a metadata block.
    hasher: lru::DefaultHasher,
    next_image: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    waits: AtomicU64,
    evictions: AtomicU64,
    prefetcher: Prefetcher,
    disk: Option<DiskCache>,
    parked: Mutex<Parked>,
    parked_budget: usize,
}

impl BlockCache {
    /// Creates a cache that holds at most about `budget` bytes.
    pub fn new(budget: usize) -> BlockCache {
        Self::with_disk(budget, None)
    }

    /// As [`new`](Self::new), with decoded blocks also kept in (and read
    /// back from) `disk`.
    pub fn with_disk(budget: usize, disk: Option<DiskCache>) -> BlockCache {
        BlockCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        blocks: LruCache::unbounded(),
                        bytes: 0,
                        loading: HashMap::default(),
                    })
                })
                .collect(),
            shard_budget: budget / SHARDS,
            hasher: Default::default(),
            next_image: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            prefetcher: Prefetcher::new(crate::prefetch::cores()),
            disk,
            parked: Mutex::new(Parked {
                states: LruCache::unbounded(),
                bytes: 0,
            }),
            parked_budget: budget / 4,
        }
    }

    /// The on-disk cache, if `--cache-dir` gave one.
    pub fn disk(&self) -> Option<&DiskCache> {
        self.disk.as_ref()
    }

    /// Decompresses the stored block `stored` (at most `max_out` bytes out):
    /// from the on-disk cache when it holds the block, else by decoding it
    /// and queuing the result to be stored there. Loaders call this instead
    /// of [`crate::decompress::decompress`].
    pub fn decompress(&self, codec: Codec, stored: &[u8], max_out: usize) -> Result<Vec<u8>> {
        let disk = match &self.disk {
            Some(d) if DiskCache::worth(codec, max_out) => d,
            _ => return crate::decompress::decompress(codec, stored, max_out),
        };
        let key = Key::of(codec, max_out, stored);
        if let Some(data) = disk.store().get(&key, max_out) {
            return Ok(data);
        }
        let data = crate::decompress::decompress(codec, stored, max_out)?;
        disk.put(key, &data);
        Ok(data)
    }

    /// Hands out a fresh image id. Each opening of an image gets its own, so
    /// a replaced AppImage can never be served another version's blocks.
    pub fn new_image_id(&self) -> u64 {
        self.next_image.fetch_add(1, Ordering::Relaxed)
    }

    fn shard(&self, key: &BlockKey) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Returns the block for `key`, running `load` only if no cached copy
    /// exists and no other thread is loading it right now.
    pub fn get_or_load(
        &self,
        key: BlockKey,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Block> {
        self.get_or_load_with(key, true, load)
    }

    /// As [`get_or_load`](Self::get_or_load), but a block this call loads
    /// is only kept when `keep` is set or a caller that waited for it
    /// wanted it kept. A cached block is returned (and refreshed) either way.
    pub fn get_or_load_with(
        &self,
        key: BlockKey,
        keep: bool,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Block> {
        let shard = self.shard(&key);
        let cell = {
            let mut s = lock(shard);
            if let Some(block) = s.blocks.get(&key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(block.clone());
            }
            let loading = s.loading.entry(key).or_insert_with(|| Loading {
                result: InFlight::default(),
                keep: false,
            });
            loading.keep |= keep;
            loading.result.clone()
        };
        let mut ran = false;
        let outcome = cell.get_or_init(|| {
            ran = true;
            load().map(into_block).map_err(|e| e.to_string())
        });
        let counter = if ran { &self.misses } else { &self.waits };
        counter.fetch_add(1, Ordering::Relaxed);
        let result = match outcome {
            Ok(block) => Ok(block.clone()),
            Err(msg) => Err(Error::Corrupt(msg.clone())),
        };
        if ran {
            let mut s = lock(shard);
            let wanted = s.loading.remove(&key).is_some_and(|l| l.keep);
            if let (true, Ok(block)) = (wanted, &result) {
                self.insert(&mut s, key, block.clone());
            }
        }
        result
    }

    /// Asks a background thread to load `key` unless it is cached or being
    /// loaded already. Used for read-ahead; silently does nothing when the
    /// read-ahead queue is full.
    pub fn prefetch(
        self: &Arc<Self>,
        key: BlockKey,
        load: impl FnOnce() -> Result<Vec<u8>> + Send + 'static,
    ) {
        {
            let s = lock(self.shard(&key));
            if s.blocks.contains(&key) || s.loading.contains_key(&key) {
                return;
            }
        }
        let cache = self.clone();
        self.prefetcher.submit(move || {
            let _ = cache.get_or_load(key, load);
        });
    }

    /// Keeps `block` under `key` unless that block is cached already (a
    /// loader under way for it may then find it with [`peek`](Self::peek)).
    /// Never waits: for a loader that decoded neighbouring blocks on the
    /// way to its own (a DwarFS block stream), where waiting for another
    /// loader could wait for this one.
    pub fn offer(&self, key: BlockKey, block: Vec<u8>) {
        let mut s = lock(self.shard(&key));
        if s.blocks.contains(&key) {
            return;
        }
        self.insert(&mut s, key, into_block(block));
    }

    /// Returns the block if it is cached, without loading anything.
    pub fn peek(&self, key: BlockKey) -> Option<Block> {
        lock(self.shard(&key)).blocks.peek(&key).cloned()
    }

    /// Keeps a loader's decoder `state` (holding about `bytes` bytes) under
    /// `key` until [`unpark`](Self::unpark) takes it, replacing any state
    /// parked there. At most [`MAX_PARKED`] states and a quarter of the
    /// budget are kept: older ones are dropped (outside the lock), and a
    /// state larger than that share is not kept at all.
    pub fn park(&self, key: BlockKey, state: Box<dyn Any + Send>, bytes: usize) {
        let mut dropped = Vec::new();
        if !self.can_park(bytes) {
            dropped.push(state);
        } else {
            let mut p = lock_parked(&self.parked);
            if let Some((old, size)) = p.states.put(key, (state, bytes)) {
                p.bytes -= size;
                dropped.push(old);
            }
            p.bytes += bytes;
            while p.bytes > self.parked_budget || p.states.len() > MAX_PARKED {
                match p.states.pop_lru() {
                    Some((_, (old, size))) => {
                        p.bytes -= size;
                        dropped.push(old);
                    }
                    None => break,
                }
            }
        }
        drop(dropped);
    }

    /// Whether a state of `bytes` bytes can be parked at all.
    pub fn can_park(&self, bytes: usize) -> bool {
        bytes <= self.parked_budget
    }

    /// Takes the decoder state parked under `key`, if any.
    pub fn unpark(&self, key: BlockKey) -> Option<Box<dyn Any + Send>> {
        let mut p = lock_parked(&self.parked);
        let (state, bytes) = p.states.pop(&key)?;
        p.bytes -= bytes;
        Some(state)
    }

    /// Bytes held by parked decoder states.
    pub fn parked_bytes(&self) -> usize {
        lock_parked(&self.parked).bytes
    }

    fn insert(&self, s: &mut Shard, key: BlockKey, block: Block) {
        let charge = cost(&block);
        if charge > self.shard_budget {
            return;
        }
        if let Some(old) = s.blocks.put(key, block) {
            s.bytes -= cost(&old);
        }
        s.bytes += charge;
        while s.bytes > self.shard_budget {
            match s.blocks.pop_lru() {
                Some((_, old)) => {
                    s.bytes -= cost(&old);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        }
    }

    /// Drops every block and parked state of one image (used when an image
    /// is closed).
    pub fn forget_image(&self, image: u64) {
        let dropped: Vec<ParkedState> = {
            let mut p = lock_parked(&self.parked);
            let doomed: Vec<BlockKey> = p
                .states
                .iter()
                .filter(|(k, _)| k.image == image)
                .map(|(k, _)| *k)
                .collect();
            let states: Vec<ParkedState> = doomed.iter().filter_map(|k| p.states.pop(k)).collect();
            p.bytes -= states.iter().map(|(_, size)| size).sum::<usize>();
            states
        };
        drop(dropped);
        for shard in &self.shards {
            let mut s = lock(shard);
            let doomed: Vec<BlockKey> = s
                .blocks
                .iter()
                .filter(|(k, _)| k.image == image)
                .map(|(k, _)| *k)
                .collect();
            for k in doomed {
                if let Some(old) = s.blocks.pop(&k) {
                    s.bytes -= cost(&old);
                }
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        let bytes = self.shards.iter().map(|s| lock(s).bytes as u64).sum();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes,
        }
    }
}

/// Wraps a loader's output, giving back spare capacity worth keeping: a
/// short block (the end of a file) was decoded into a full-size buffer.
fn into_block(mut data: Vec<u8>) -> Block {
    if data.capacity() - data.len() > data.len() / 4 + 4096 {
        data.shrink_to_fit();
    }
    Arc::new(data)
}

/// Locks the parked states; as for [`lock`], every critical section only
/// performs infallible map operations.
fn lock_parked(m: &Mutex<Parked>) -> std::sync::MutexGuard<'_, Parked> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes a cached block is charged: its buffer and the fixed overhead.
fn cost(block: &Block) -> usize {
    block.capacity() + PER_BLOCK_OVERHEAD
}

/// Locks a shard; a poisoned lock (a panic elsewhere while it was held)
/// still guards consistent data because every critical section above only
/// performs infallible map operations.
fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key(pos: u64) -> BlockKey {
        BlockKey { image: 1, pos }
    }

    #[test]
    fn second_request_is_a_hit() {
        let c = BlockCache::new(1 << 20);
        let a = c.get_or_load(key(0), || Ok(vec![1, 2, 3])).unwrap();
        let b = c.get_or_load(key(0), || panic!("must not reload")).unwrap();
        assert_eq!(&*a, &[1, 2, 3]);
        assert!(Arc::ptr_eq(&a, &b));
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 1));
    }

    #[test]
    fn errors_are_not_cached() {
        let c = BlockCache::new(1 << 20);
        assert!(c
            .get_or_load(key(0), || Err(Error::corrupt("bad")))
            .is_err());
        assert_eq!(&*c.get_or_load(key(0), || Ok(vec![7])).unwrap(), &[7]);
    }

    #[test]
    fn stays_inside_budget() {
        let budget = SHARDS * 10_000;
        let c = BlockCache::new(budget);
        for pos in 0..1000 {
            c.get_or_load(key(pos), || Ok(vec![0; 4096])).unwrap();
        }
        let s = c.stats();
        assert!(s.bytes as usize <= budget, "{s:?}");
        assert!(s.evictions > 0);
    }

    #[test]
    fn concurrent_requests_load_once() {
        let c = Arc::new(BlockCache::new(1 << 20));
        let loads = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                let loads = loads.clone();
                std::thread::spawn(move || {
                    c.get_or_load(key(42), || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok(vec![9; 100])
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().len(), 100);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_unkept_load_is_returned_but_not_cached() {
        let c = BlockCache::new(1 << 20);
        assert_eq!(
            &*c.get_or_load_with(key(3), false, || Ok(vec![3; 8]))
                .unwrap(),
            &[3; 8]
        );
        assert!(c.peek(key(3)).is_none());
        assert_eq!(c.stats().bytes, 0);
        // A cached block is served to an unkept request without a load.
        c.get_or_load(key(4), || Ok(vec![4])).unwrap();
        c.get_or_load_with(key(4), false, || {
            panic!("cached blocks are not loaded again")
        })
        .unwrap();
        assert!(c.peek(key(4)).is_some());
    }

    #[test]
    fn a_waiter_that_wants_the_block_kept_keeps_an_unkept_load() {
        let c = Arc::new(BlockCache::new(1 << 20));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let loader = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.get_or_load_with(key(6), false, || {
                    started_tx.send(()).unwrap();
                    finish_rx.recv().unwrap();
                    Ok(vec![6; 4])
                })
                .unwrap()
            })
        };
        started_rx.recv().unwrap();
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.get_or_load(key(6), || panic!("the load under way is waited for"))
                    .unwrap()
            })
        };
        // The waiter registers under the shard lock before it blocks.
        while !lock(c.shard(&key(6))).loading[&key(6)].keep {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        finish_tx.send(()).unwrap();
        assert_eq!(&*loader.join().unwrap(), &[6; 4]);
        assert_eq!(&*waiter.join().unwrap(), &[6; 4]);
        assert!(c.peek(key(6)).is_some());
    }

    #[test]
    fn prefetch_fills_the_cache() {
        let c = Arc::new(BlockCache::new(1 << 20));
        c.prefetch(key(5), || Ok(vec![5; 10]));
        let start = std::time::Instant::now();
        while c.peek(key(5)).is_none() && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(
            c.peek(key(5)).as_deref().map(Vec::as_slice),
            Some(&[5u8; 10][..])
        );
        c.prefetch(key(5), || panic!("cached blocks are not loaded again"));
    }

    #[test]
    fn parked_states_are_bounded_in_number_and_bytes() {
        let c = BlockCache::new(1 << 20);
        for pos in 0..20 {
            c.park(key(pos), Box::new(pos), 100);
        }
        assert!(c.unpark(key(0)).is_none(), "the oldest is dropped");
        let last = c.unpark(key(19)).expect("the newest is kept");
        assert_eq!(*last.downcast::<u64>().unwrap(), 19);
        assert!(c.unpark(key(19)).is_none(), "unpark takes the state");
        assert_eq!(c.parked_bytes(), (MAX_PARKED - 1) * 100);
        // More than a quarter of the budget is not kept at all.
        assert!(c.can_park(1 << 18) && !c.can_park((1 << 18) + 1));
        c.park(key(30), Box::new(0u8), (1 << 18) + 1);
        assert!(c.unpark(key(30)).is_none());
        // A large one pushes out older ones to stay inside its share.
        c.park(key(31), Box::new(0u8), 1 << 18);
        assert_eq!(c.parked_bytes(), 1 << 18);
        c.forget_image(1);
        assert_eq!(c.parked_bytes(), 0);
        assert!(c.unpark(key(31)).is_none());
    }

    #[test]
    fn forget_image_drops_its_blocks() {
        let c = BlockCache::new(1 << 20);
        c.get_or_load(key(1), || Ok(vec![1])).unwrap();
        c.get_or_load(BlockKey { image: 2, pos: 1 }, || Ok(vec![2]))
            .unwrap();
        c.forget_image(1);
        assert!(c.peek(key(1)).is_none());
        assert!(c.peek(BlockKey { image: 2, pos: 1 }).is_some());
    }
}
