//! `BlockCache` on its own: the cost of a hit, of a miss (the loader is a
//! plain allocation, so this is the cache's own bookkeeping plus eviction),
//! and of hits from two threads at once.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use appimagefs::cache::{BlockCache, BlockKey};
use criterion::{BenchmarkId, Criterion, Throughput};

fn key(pos: u64) -> BlockKey {
    BlockKey { image: 1, pos }
}

fn hits(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(1));
    for blocks in [16u64, 4096] {
        let cache = BlockCache::new(1 << 30);
        for pos in 0..blocks {
            cache.get_or_load(key(pos), || Ok(vec![0; 4096])).unwrap();
        }
        let mut rng = common::Rng::new(7);
        g.bench_with_input(BenchmarkId::new("hit", blocks), &blocks, |b, &n| {
            b.iter(|| {
                let k = key(rng.below(n));
                black_box(cache.get_or_load(k, || unreachable!("cached")).unwrap())
            })
        });
    }

    for size in [4096usize, 128 << 10] {
        // A budget of 64 blocks: every request misses, and once the cache
        // is full every insertion evicts.
        let cache = BlockCache::new(64 * (size + 96) + 16 * size);
        let mut next = 0u64;
        g.bench_with_input(BenchmarkId::new("miss_evict", size), &size, |b, &size| {
            b.iter(|| {
                next += 1;
                black_box(cache.get_or_load(key(next), || Ok(vec![0; size])).unwrap())
            })
        });
        let s = cache.stats();
        assert_eq!(s.hits, 0, "{s:?}");
    }

    // Two threads hitting the same 4096 blocks (the shards' mutexes).
    let cache = Arc::new(BlockCache::new(1 << 30));
    for pos in 0..4096 {
        cache.get_or_load(key(pos), || Ok(vec![0; 4096])).unwrap();
    }
    g.throughput(Throughput::Elements(2 * 10_000));
    g.bench_function("hit_2_threads_x10000", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let cache = &cache;
                    s.spawn(move || {
                        let mut rng = common::Rng::new(t + 1);
                        for _ in 0..10_000 {
                            let k = key(rng.below(4096));
                            black_box(cache.get_or_load(k, || unreachable!()).unwrap());
                        }
                    });
                }
            })
        })
    });
    g.finish();
}

fn main() {
    let mut c = common::criterion();
    hits(&mut c);
    c.final_summary();
}
