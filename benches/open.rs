//! Opening an image: detecting a type 2 AppImage (the tests' stand-in runtime in front
//! of a SquashFS built here) and `image::open_tree` on it, then what the
//! first launch needs (root listing, `AppRun` looked up and read), and
//! `Union::new` over a folder of 100 AppImages (what the mount does before
//! it is ready, minus the FUSE handshake).

mod common;

use std::fs::File;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use appimagefs::cache::BlockCache;
use appimagefs::detect::detect;
use appimagefs::image::open_tree;
use appimagefs::union::Union;
use criterion::BatchSize;

/// A small app: AppRun, desktop file, icon, a 2 MiB "binary" and 400
/// library-like files in 20 folders.
fn make_appdir(dir: &Path) {
    let write = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    write(
        "AppRun",
        b"#!/bin/sh\nexec \"$APPDIR/usr/bin/bench\" \"$@\"\n",
    );
    write(
        "usr/share/applications/bench.desktop",
        b"[Desktop Entry]\nType=Application\nName=Bench\nExec=bench\nIcon=bench\n",
    );
    std::os::unix::fs::symlink(
        "usr/share/applications/bench.desktop",
        dir.join("bench.desktop"),
    )
    .unwrap();
    write("bench.png", &common::semi_compressible(8 << 10, 3));
    write("usr/bin/bench", &common::semi_compressible(2 << 20, 4));
    for d in 0..20 {
        for f in 0..20 {
            write(
                &format!("usr/lib/mod{d:02}/part{f:02}.so"),
                &common::semi_compressible(1000 + 997 * f, (d * 100 + f) as u64),
            );
        }
    }
}

fn main() {
    let tmp = common::TempDir::new("open");
    let appdir = tmp.path().join("Bench.AppDir");
    make_appdir(&appdir);
    let sqfs = tmp.path().join("bench.sqfs");
    common::mksquashfs(&appdir, &sqfs, "zstd", "128K");
    let folder = tmp.path().join("apps");
    std::fs::create_dir(&folder).unwrap();
    let first = folder.join("Bench-000.AppImage");
    common::wrap_appimage(&sqfs, &first);
    for i in 1..100 {
        std::fs::hard_link(&first, folder.join(format!("Bench-{i:03}.AppImage"))).unwrap();
    }

    let mut c = common::criterion();
    let mut g = c.benchmark_group("open");
    let file = Arc::new(File::open(&first).unwrap());

    g.bench_function("detect", |b| b.iter(|| black_box(detect(&file).unwrap())));
    g.bench_function("detect_open_tree", |b| {
        let cache = Arc::new(BlockCache::new(64 << 20));
        b.iter(|| {
            let d = detect(&file).unwrap();
            black_box(open_tree(&file, &d, cache.clone()).unwrap())
        })
    });
    g.bench_function("open_to_first_launch_cold", |b| {
        b.iter_batched(
            || Arc::new(BlockCache::new(64 << 20)),
            |cache| {
                let file = Arc::new(File::open(&first).unwrap());
                let d = detect(&file).unwrap();
                let tree = open_tree(&file, &d, cache).unwrap();
                black_box(tree.read_dir(tree.root()).unwrap());
                let apprun = common::resolve(&*tree, "AppRun");
                let size = tree.attr(apprun).unwrap().size;
                black_box(tree.read(apprun, 0, size as u32).unwrap());
                let bin = common::resolve(&*tree, "usr/bin/bench");
                black_box(tree.read(bin, 0, 128 << 10).unwrap());
                tree
            },
            BatchSize::PerIteration,
        )
    });
    let mnt = tmp.path().join("mnt");
    // Union::new logs one line per AppImage on standard error.
    let quiet = common::SilenceStderr::new();
    g.bench_function("union_new_100_appimages", |b| {
        b.iter(|| {
            let u = Union::new(&folder, &mnt, Arc::new(BlockCache::new(64 << 20))).unwrap();
            assert_eq!(u.apps().len(), 100);
            u
        })
    });
    drop(quiet);
    g.finish();
    c.final_summary();
    drop(tmp);
}
