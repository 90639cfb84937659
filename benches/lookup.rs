//! Metadata in a large directory: a SquashFS whose root holds 50 000
//! files. `ImageTree::lookup` of random present and absent names,
//! `read_dir` with cold caches (a fresh cache and a fresh opening of the
//! image, so the whole listing is read and parsed) and warm ones, and
//! `attr` of every entry (what `ls -l` or `find -printf %s` costs).

mod common;

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;

use appimagefs::cache::BlockCache;
use criterion::{BatchSize, SamplingMode, Throughput};

const ENTRIES: usize = 50_000;

fn names() -> Vec<String> {
    let mut rng = common::Rng::new(50_000);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ENTRIES);
    while out.len() < ENTRIES {
        let n = format!("lib{:010x}.so", rng.next_u64() >> 24);
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    out
}

fn main() {
    let tmp = common::TempDir::new("lookup");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let names = names();
    for n in &names {
        std::fs::write(src.join(n), b"x").unwrap();
    }
    let image = tmp.path().join("bigdir.sqfs");
    common::mksquashfs(&src, &image, "zstd", "128K");
    std::fs::remove_dir_all(&src).unwrap();

    let mut c = common::criterion();
    let mut g = c.benchmark_group("bigdir_50000");

    let cache = Arc::new(BlockCache::new(256 << 20));
    let tree = common::open_squashfs(&image, cache.clone());
    let root = tree.root();
    assert_eq!(tree.read_dir(root).unwrap().len(), ENTRIES);

    g.throughput(Throughput::Elements(1));
    let mut rng = common::Rng::new(1);
    g.bench_function("lookup_present_hot", |b| {
        b.iter(|| {
            let name = &names[rng.below(ENTRIES as u64) as usize];
            black_box(tree.lookup(root, name.as_bytes()).unwrap().unwrap())
        })
    });
    g.bench_function("lookup_absent_hot", |b| {
        b.iter(|| {
            let name = format!("lib{:010x}.sp", rng.next_u64() >> 24);
            assert!(tree.lookup(root, name.as_bytes()).unwrap().is_none());
        })
    });
    g.bench_function("read_dir_hot", |b| {
        b.iter(|| black_box(tree.read_dir(root).unwrap()))
    });

    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("read_dir_cold", |b| {
        b.iter_batched(
            || common::open_squashfs(&image, Arc::new(BlockCache::new(256 << 20))),
            |t| black_box(t.read_dir(t.root()).unwrap().len()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("first_lookup_cold", |b| {
        b.iter_batched(
            || common::open_squashfs(&image, Arc::new(BlockCache::new(256 << 20))),
            |t| black_box(t.lookup(t.root(), names[123].as_bytes()).unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("read_dir_then_attr_all_cold", |b| {
        b.iter_batched(
            || common::open_squashfs(&image, Arc::new(BlockCache::new(256 << 20))),
            |t| {
                let mut total = 0;
                for e in t.read_dir(t.root()).unwrap().iter() {
                    total += t.attr(e.node).unwrap().size;
                }
                assert_eq!(total, ENTRIES as u64);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("read_dir_then_attr_all_hot", |b| {
        b.iter(|| {
            let mut total = 0;
            for e in tree.read_dir(root).unwrap().iter() {
                total += tree.attr(e.node).unwrap().size;
            }
            assert_eq!(total, ENTRIES as u64);
        })
    });
    g.finish();
    c.final_summary();
    drop(tmp);
}
