//! Reading one 64 MiB file of semi-compressible data through
//! `ImageTree::read`, from an xz image with 1 MiB blocks and a zstd image
//! with 128 KiB blocks: sequentially in 128 KiB requests (what the kernel
//! sends a FUSE filesystem) and at 16 random 4 KiB pages, each with a cold
//! cache (a fresh cache and a fresh opening of the image per iteration; the
//! image file itself stays in the page cache) and a warm one.
//!
//! `BENCH_READ_MIB=N` shrinks the file for a quick run.

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use appimagefs::cache::BlockCache;
use appimagefs::tree::ImageTree;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};

const REQUEST: u32 = 128 << 10;
/// Random reads per iteration.
const RANDOM_READS: u64 = 16;
/// Random reads in the one-off read-ahead diagnostic printed at start.
const DIAG_READS: u64 = 64;
const PAGE: u64 = 4096;
const CACHE: usize = 512 << 20;

fn read_all(tree: &dyn ImageTree, node: u64, size: u64) {
    let mut at = 0;
    while at < size {
        let got = tree.read(node, at, REQUEST).unwrap();
        assert!(!got.is_empty());
        at += got.len() as u64;
        black_box(got);
    }
}

fn read_random(tree: &dyn ImageTree, node: u64, size: u64, seed: u64, count: u64) {
    let mut rng = common::Rng::new(seed);
    for _ in 0..count {
        let at = rng.below(size / PAGE) * PAGE;
        black_box(tree.read(node, at, PAGE as u32).unwrap());
    }
}

fn bench_image(c: &mut Criterion, label: &str, image: &Path, size: u64) {
    let mut g = c.benchmark_group(format!("read_{label}"));
    // Cold iterations take up to seconds: the same number of iterations in
    // every sample, not criterion's 1, 2, ... 10 ramp.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    // Cold: each iteration gets a new cache and a new opening of the image.
    // Before building the next one, wait until the previous cache is gone
    // (its read-ahead jobs hold it), so no background decompression of one
    // iteration runs into the next.
    let last: RefCell<Option<Arc<BlockCache>>> = RefCell::new(None);
    let fresh = || {
        if let Some(old) = last.borrow_mut().take() {
            while Arc::strong_count(&old) > 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let cache = Arc::new(BlockCache::new(CACHE));
        *last.borrow_mut() = Some(cache.clone());
        let tree = common::open_squashfs(image, cache);
        let node = common::resolve(&*tree, "data.bin");
        (tree, node)
    };

    g.throughput(Throughput::Bytes(size));
    g.bench_function("sequential_cold", |b| {
        b.iter_batched(
            &fresh,
            |(tree, node)| {
                read_all(&*tree, node, size);
                tree
            },
            BatchSize::PerIteration,
        )
    });

    let cache = Arc::new(BlockCache::new(CACHE));
    let hot = common::open_squashfs(image, cache.clone());
    let node = common::resolve(&*hot, "data.bin");
    read_all(&*hot, node, size);
    g.bench_function("sequential_hot", |b| b.iter(|| read_all(&*hot, node, size)));

    g.throughput(Throughput::Elements(RANDOM_READS));
    let mut seed = 0;
    g.bench_function("random_4k_x16_cold", |b| {
        b.iter_batched(
            &fresh,
            |(tree, node)| {
                seed += 1;
                read_random(&*tree, node, size, seed, RANDOM_READS);
                tree
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("random_4k_x16_hot", |b| {
        b.iter(|| {
            seed += 1;
            read_random(&*hot, node, size, seed, RANDOM_READS)
        })
    });
    g.finish();
    let s = cache.stats();
    assert_eq!(s.evictions, 0, "the warm cache must hold the whole file");
}

fn main() {
    let mib: u64 = std::env::var("BENCH_READ_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let size = mib << 20;
    let tmp = common::TempDir::new("read");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("data.bin"),
        common::semi_compressible(size as usize, 64),
    )
    .unwrap();
    let xz = tmp.path().join("xz-1M.sqfs");
    let zstd = tmp.path().join("zstd-128K.sqfs");
    common::mksquashfs(&src, &xz, "xz", "1M");
    common::mksquashfs(&src, &zstd, "zstd", "128K");
    std::fs::remove_dir_all(&src).unwrap();
    for (img, what) in [(&xz, "xz 1M"), (&zstd, "zstd 128K")] {
        let len = std::fs::metadata(img).unwrap().len();
        println!(
            "{what}: {size} bytes stored in {len} ({:.0}%)",
            100.0 * len as f64 / size as f64
        );
    }

    // What the cache does on one cold pass of each pattern: blocks the
    // reads needed versus blocks decompressed (read-ahead included).
    for (img, what, block) in [(&xz, "xz 1M", 1u64 << 20), (&zstd, "zstd 128K", 128 << 10)] {
        for pattern in ["sequential", "random_4k_x64"] {
            let cache = Arc::new(BlockCache::new(CACHE));
            let tree = common::open_squashfs(img, cache.clone());
            let node = common::resolve(&*tree, "data.bin");
            let metadata = cache.stats().misses;
            let needed = if pattern == "sequential" {
                read_all(&*tree, node, size);
                size.div_ceil(block)
            } else {
                read_random(&*tree, node, size, 1, DIAG_READS);
                let mut rng = common::Rng::new(1);
                let blocks: std::collections::HashSet<u64> = (0..DIAG_READS)
                    .map(|_| rng.below(size / PAGE) * PAGE / block)
                    .collect();
                blocks.len() as u64
            };
            drop(tree);
            while Arc::strong_count(&cache) > 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let s = cache.stats();
            println!(
                "{what} {pattern} cold: {needed} data blocks needed, {} decompressed \
                 ({} hits, {} waits for a read-ahead in flight)",
                s.misses - metadata,
                s.hits,
                s.waits
            );
        }
    }

    let mut c = common::criterion();
    bench_image(&mut c, "xz_1M", &xz, size);
    bench_image(&mut c, "zstd_128K", &zstd, size);
    c.final_summary();
    drop(tmp);
}
