//! The DwarFS reader against images written at test time by `dwarfs-enc`
//! (a dev-dependency): every file type, owners, modes, times, hard links,
//! each codec, multi-page and multi-block files, legacy owner encoding,
//! unsupported versions and features, and damaged images.

use std::num::NonZero;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dwarfs::metadata::Metadata;
use dwarfs_enc::chunker::{BasicChunker, Chunker};
use dwarfs_enc::metadata::{Builder, Config, InodeMetadata};
use dwarfs_enc::section::{CompressParam, Writer};

use super::codec::decode_all;
use super::section::{Codec, HEADER_SIZE};
use super::*;

/// Block size of the test images: 4 pages of 1 MiB.
const BLOCK: u32 = 4 << 20;
const MTIME: u64 = 1_600_000_000;

/// Bytes that compress like program data: text with noise.
pub fn sample(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            if i % 7 == 0 {
                (x >> 56) as u8
            } else {
                b"appimage dwarfs "[(x >> 60) as usize]
            }
        })
        .collect()
}

fn meta(mode: u32, uid: u32, gid: u32, secs: u64) -> InodeMetadata {
    // dwarfs-enc takes permission bits only; setuid is put in afterwards.
    let mut m = InodeMetadata::new(mode & 0o777);
    m.uid(uid)
        .gid(gid)
        .mtime(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    m
}

/// One file of the test tree: (path, mode, uid, gid, mtime, contents).
type FileSpec = (&'static str, u32, u32, u32, u64, Vec<u8>);

/// The files of the test tree.
fn files() -> Vec<FileSpec> {
    vec![
        (
            "big",
            0o644,
            1000,
            100,
            MTIME + 1,
            sample(1, 9 << 20 | 12345),
        ),
        ("empty", 0o600, 0, 0, MTIME + 2, Vec::new()),
        (
            "small",
            0o4755,
            0,
            0,
            MTIME + 3,
            b"#!/bin/sh\necho hi\n".to_vec(),
        ),
        ("sub/inner", 0o640, 33, 44, MTIME + 4, sample(2, 70_000)),
    ]
}

/// Writes the test tree with `compress`, letting `edit` change the
/// metadata before it is written.
fn build(compress: CompressParam, edit: impl FnOnce(&mut Metadata)) -> Vec<u8> {
    let mut config = Config::default();
    config.block_size(NonZero::new(BLOCK).unwrap());
    let mut b = Builder::new_with_config(&config, &meta(0o755, 1000, 100, MTIME));
    let mut chunker = BasicChunker::new(Writer::new(Vec::new()).unwrap(), b.block_size(), compress);
    let root = b.root();
    let sub = b
        .put_dir(root, "sub", &meta(0o750, 33, 44, MTIME + 5))
        .unwrap();
    let mut small = None;
    for (path, mode, uid, gid, secs, data) in files() {
        let (dir, name) = match path.split_once('/') {
            Some((_, name)) => (sub, name),
            None => (root, path),
        };
        let chunks = chunker.put_bytes(&data).unwrap();
        let id = b
            .put_file(dir, name, &meta(mode, uid, gid, secs), chunks)
            .unwrap();
        if path == "small" {
            small = Some(id);
        }
    }
    b.put_hard_link(sub, "hardlink", small.unwrap()).unwrap();
    b.put_symlink(root, "sym", &meta(0o777, 0, 0, MTIME), "sub/inner")
        .unwrap();
    b.put_char_device(root, "null", &meta(0o666, 0, 0, MTIME), 0x103)
        .unwrap();
    b.put_block_device(root, "disk", &meta(0o660, 0, 6, MTIME), 0x801)
        .unwrap();
    b.put_fifo(root, "pipe", &meta(0o644, 0, 0, MTIME)).unwrap();
    b.put_socket(root, "sock", &meta(0o755, 0, 0, MTIME))
        .unwrap();
    b.put_dir(sub, "emptydir", &meta(0o700, 0, 0, MTIME))
        .unwrap();
    let mut md = b.finish().unwrap();
    for mode in &mut md.modes {
        if *mode == 0o100755 {
            *mode |= 0o4000;
        }
    }
    edit(&mut md);
    let mut writer = chunker.finish().unwrap();
    writer.write_metadata_sections(&md, compress).unwrap();
    writer.finish().unwrap()
}

/// `data` as an open file without a name (memfd).
fn memfd(data: &[u8]) -> std::fs::File {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: a valid NUL-terminated name; the descriptor is owned by the
    // File from here on.
    let fd = unsafe { libc::memfd_create(c"appimagefs-dwarfs".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(data).expect("write memfd");
    file
}

fn open_bytes(bytes: &[u8]) -> Result<DwarfsImage> {
    let file = Arc::new(memfd(bytes));
    let backing = Backing::new(file, 0, bytes.len() as u64);
    open(backing, Arc::new(BlockCache::new(64 << 20)))
}

fn resolve(img: &DwarfsImage, path: &str) -> NodeId {
    let mut node = img.root();
    for part in path.split('/') {
        node = img.lookup(node, part.as_bytes()).unwrap().unwrap();
    }
    node
}

fn read_all(img: &DwarfsImage, node: NodeId, piece: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let got = img.read(node, out.len() as u64, piece).unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend_from_slice(&got);
    }
}

/// Checks the whole tree of an image built by [`build`].
fn check_tree(img: &DwarfsImage) {
    let names: Vec<Vec<u8>> = img
        .read_dir(img.root())
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let want: Vec<&[u8]> = vec![
        b"big", b"disk", b"empty", b"null", b"pipe", b"small", b"sock", b"sub", b"sym",
    ];
    assert_eq!(names, want);
    for (path, mode, uid, gid, secs, data) in files() {
        let node = resolve(img, path);
        let a = img.attr(node).unwrap();
        assert_eq!(
            (a.kind, u32::from(a.perm), a.uid, a.gid, a.mtime, a.size),
            (Kind::File, mode, uid, gid, secs as i64, data.len() as u64),
            "{path}"
        );
        assert_eq!(read_all(img, node, 128 << 10), data, "{path}");
        for (offset, len) in [
            (0u64, 1u32),
            (4095, 3),
            (1 << 20, 70_000),
            (5 << 20, 1 << 20),
        ] {
            let end = (offset + u64::from(len)).min(data.len() as u64);
            let want = data.get(offset as usize..end as usize).unwrap_or(&[]);
            assert_eq!(
                img.read(node, offset, len).unwrap(),
                want,
                "{path} at {offset}"
            );
        }
    }
    let small = resolve(img, "small");
    assert_eq!(resolve(img, "sub/hardlink"), small);
    assert_eq!(img.attr(small).unwrap().nlink, 2);
    assert_eq!(img.attr(resolve(img, "big")).unwrap().nlink, 1);
    let sub = img.attr(resolve(img, "sub")).unwrap();
    assert_eq!(
        (sub.kind, sub.perm, sub.uid, sub.gid, sub.nlink),
        (Kind::Dir, 0o750, 33, 44, 3)
    );
    assert_eq!(img.attr(img.root()).unwrap().nlink, 3);
    let sym = resolve(img, "sym");
    assert_eq!(img.read_link(sym).unwrap(), b"sub/inner");
    assert_eq!(img.attr(sym).unwrap().size, 9);
    let null = img.attr(resolve(img, "null")).unwrap();
    assert_eq!(
        (null.kind, null.rdev, null.perm),
        (Kind::CharDev, 0x103, 0o666)
    );
    let disk = img.attr(resolve(img, "disk")).unwrap();
    assert_eq!((disk.kind, disk.rdev, disk.gid), (Kind::BlockDev, 0x801, 6));
    assert_eq!(img.attr(resolve(img, "pipe")).unwrap().kind, Kind::Fifo);
    assert_eq!(img.attr(resolve(img, "sock")).unwrap().kind, Kind::Socket);
    assert!(img
        .read_dir(resolve(img, "sub/emptydir"))
        .unwrap()
        .is_empty());
    assert_eq!(img.lookup(img.root(), b"nothere").unwrap(), None);
    assert!(matches!(img.lookup(small, b"x"), Err(Error::NotDir)));
    assert!(matches!(img.read(img.root(), 0, 1), Err(Error::IsDir)));
    assert!(matches!(img.read_link(small), Err(Error::Invalid)));
    assert!(img.attr(0).is_err() && img.attr(1 << 40).is_err());
}

#[test]
fn zstd_tree_matches_its_source() {
    let img = open_bytes(&build(CompressParam::Zstd(3), |_| {})).unwrap();
    check_tree(&img);
    let info = img.info();
    assert_eq!(
        (info.format, info.compression.as_str(), info.block_size),
        ("dwarfs", "zstd", BLOCK)
    );
    assert_eq!(img.version(), (2, 5));
}

/// Pages the blocks layer of `img` has decoded so far.
fn decoded(img: &DwarfsImage) -> usize {
    img.blocks
        .decoded
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Reading a file from start to end decodes each page of its blocks once
/// (the stream is resumed, not restarted, at each page), and a read in the
/// middle of a block decodes the stream only up to the page it needs.
#[test]
fn sequential_reads_decode_each_page_once_and_random_reads_only_up_to_theirs() {
    const MIB: u64 = 1 << 20;
    for compress in [CompressParam::Zstd(3), CompressParam::Lzma(1)] {
        let bytes = build(compress, |_| {});
        // Warm reads: no read-ahead, so the counts are exact.
        let img = open_bytes(&bytes).unwrap();
        let big = resolve(&img, "big");
        let expected = &files()[0].5;
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let piece = img
                .read_with(big, got.len() as u64, 128 << 10, ReadIntent::Warm)
                .unwrap();
            assert!(!piece.is_empty());
            got.extend_from_slice(&piece);
        }
        assert!(got == *expected, "{compress:?}: contents differ");
        // "big" (9 MiB + 12345 bytes) fills blocks 0 and 1 (4 pages each)
        // and 2 pages of block 2.
        assert_eq!(decoded(&img), 10, "{compress:?}: pages decoded");

        let img = open_bytes(&bytes).unwrap();
        let big = resolve(&img, "big");
        let at = |offset: u64| {
            let piece = img.read_with(big, offset, 4096, ReadIntent::Warm).unwrap();
            assert!(piece[..] == expected[offset as usize..offset as usize + 4096]);
        };
        at(4 * MIB + 2 * MIB + 5000);
        assert_eq!(decoded(&img), 3, "{compress:?}: block 1 up to page 2");
        at(4 * MIB + 3 * MIB + 5000);
        assert_eq!(decoded(&img), 4, "{compress:?}: page 3 resumes the stream");
        at(4 * MIB + MIB);
        assert_eq!(decoded(&img), 4, "{compress:?}: page 1 was kept on the way");
        at(MIB + 100);
        assert_eq!(decoded(&img), 6, "{compress:?}: block 0 up to page 1");
    }
}

/// A sequential reader has the start of the file's next block decoded in
/// the background (another core), not only the next page of its own block.
#[test]
fn read_ahead_reaches_the_next_block() {
    let img = open_bytes(&build(CompressParam::Zstd(3), |_| {})).unwrap();
    let big = resolve(&img, "big");
    let first = img
        .read_with(big, 0, 128 << 10, ReadIntent::Demand)
        .unwrap();
    assert!(first[..] == files()[0].5[..128 << 10]);
    // Page 0 of block 0 for the read, page 0 of block 1 ahead.
    let started = std::time::Instant::now();
    while decoded(&img) < 2 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(decoded(&img), 2);
    let at = 4 << 20;
    let piece = img.read_with(big, at, 4096, ReadIntent::Warm).unwrap();
    assert!(piece[..] == files()[0].5[at as usize..at as usize + 4096]);
    assert_eq!(decoded(&img), 2, "block 1's first page was decoded ahead");
}

/// The union closes opened trees to stay within its budget and opens them
/// again on demand: a second opening must answer the same node ids (they
/// come from the image's inode numbers) and hold as much memory.
#[test]
fn a_reopened_image_answers_the_same_nodes() {
    let bytes = build(CompressParam::Zstd(3), |_| {});
    let (a, b) = (open_bytes(&bytes).unwrap(), open_bytes(&bytes).unwrap());
    for (path, ..) in files() {
        let (na, nb) = (resolve(&a, path), resolve(&b, path));
        assert_eq!(na, nb, "{path}");
        assert_eq!(a.attr(na).unwrap(), b.attr(nb).unwrap(), "{path}");
    }
    assert!(a.memory_bytes() > 0);
    assert_eq!(a.memory_bytes(), b.memory_bytes());
}

#[test]
fn lzma_tree_matches_its_source() {
    check_tree(&open_bytes(&build(CompressParam::Lzma(1), |_| {})).unwrap());
}

#[test]
fn uncompressed_tree_matches_its_source() {
    check_tree(&open_bytes(&build(CompressParam::None, |_| {})).unwrap());
}

#[test]
fn lz4_blocks_decode_with_their_size_prefix() {
    let data = sample(3, 300_000);
    let mut payload = (data.len() as u32).to_le_bytes().to_vec();
    payload.extend(lz4_flex::block::compress(&data));
    assert_eq!(decode_all(Codec::Lz4, &payload, 1 << 20).unwrap(), data);
    assert!(decode_all(Codec::Lz4, &payload, 1000).is_err());
    assert!(decode_all(Codec::Lz4, &payload[..payload.len() - 9], 1 << 20).is_err());
    assert!(decode_all(Codec::Lz4, &payload[..3], 1 << 20).is_err());
}

#[test]
fn codecs_refuse_output_past_their_limit() {
    let data = sample(4, 100_000);
    let z = zstd::bulk::compress(&data, 3).unwrap();
    assert_eq!(decode_all(Codec::Zstd, &z, 100_000).unwrap(), data);
    assert!(decode_all(Codec::Zstd, &z, 99_999).is_err());
    assert!(decode_all(Codec::Zstd, &z[..z.len() / 2], 100_000).is_err());
}

#[test]
fn legacy_owner_encoding_reads_ids_in_place() {
    // mkdwarfs 0.5 with one owner: empty uid/gid tables, the ids stored
    // in the index fields (the `dwarfs` crate refuses such images).
    let bytes = build(CompressParam::Zstd(1), |m| {
        m.uids.clear();
        m.gids.clear();
        for ino in &mut m.inodes {
            ino.owner_index = 33333;
            ino.group_index = 44444;
        }
    });
    let img = open_bytes(&bytes).unwrap();
    for path in ["big", "sub", "sub/inner", "sym"] {
        let a = img.attr(resolve(&img, path)).unwrap();
        assert_eq!((a.uid, a.gid), (33333, 44444), "{path}");
    }
}

#[test]
fn unknown_features_are_named_in_the_error() {
    let bytes = build(CompressParam::Zstd(1), |m| {
        m.features = Some(dwarfs::metadata::OrderedSet(vec!["sparse-holes".into()]));
    });
    let err = open_bytes(&bytes).err().unwrap().to_string();
    assert!(
        err.contains("DwarFS feature sparse-holes is not supported"),
        "{err}"
    );
}

#[test]
fn unsupported_versions_are_named_in_the_error() {
    let mut bytes = build(CompressParam::Zstd(1), |_| {});
    bytes[7] = 2;
    let err = open_bytes(&bytes).err().unwrap().to_string();
    assert!(err.contains("DwarFS format 2.2 is not supported"), "{err}");
    bytes[6] = 3;
    bytes[7] = 0;
    let err = open_bytes(&bytes).err().unwrap().to_string();
    assert!(err.contains("DwarFS format 3.0 is not supported"), "{err}");
}

#[test]
fn second_names_of_directories_are_left_out() {
    // A directory entry naming `sub` a second time (a cycle or a second
    // parent) is not served; the first one still is.
    let bytes = build(CompressParam::None, |m| {
        let entries = m.dir_entries.as_mut().unwrap();
        let sub = entries.iter().find(|e| e.inode_num == 1).unwrap().inode_num;
        let last = entries.len() - 1;
        entries[last].inode_num = sub;
    });
    let img = open_bytes(&bytes).unwrap();
    let sub = resolve(&img, "sub");
    assert_eq!(img.attr(sub).unwrap().kind, Kind::Dir);
    let listed = img.read_dir(sub).unwrap();
    assert!(listed.iter().all(|e| e.node != sub), "{listed:?}");
}

/// Recomputes each section's XXH3 so that damage reaches the parsers
/// behind the checksum.
pub fn reseal(bytes: &mut [u8]) {
    let mut at = 0usize;
    while at + HEADER_SIZE as usize <= bytes.len() {
        let Ok(header) = super::section::parse_header(&bytes[at..at + 64]) else {
            return;
        };
        let size = header.payload_size.get() as usize;
        let Some(payload) = bytes.get(at + 64..(at + 64).saturating_add(size)) else {
            return;
        };
        let Ok(hash) = header.calculate_fast_checksum(payload) else {
            return;
        };
        bytes[at + 32 + 8..at + 48].copy_from_slice(&hash);
        at += 64 + size;
    }
}

/// Opens damaged bytes and, if that works, walks and reads everything.
pub fn exercise(bytes: &[u8]) {
    let Ok(img) = open_bytes(bytes) else {
        return;
    };
    let mut queue = vec![img.root()];
    let mut seen = 0;
    while let Some(node) = queue.pop() {
        seen += 1;
        assert!(seen < 10_000, "walk does not end");
        let Ok(attr) = img.attr(node) else { continue };
        match attr.kind {
            Kind::Dir => {
                if let Ok(list) = img.read_dir(node) {
                    for e in list.iter() {
                        let _ = img.lookup(node, &e.name);
                        if e.kind == Kind::Dir {
                            queue.push(e.node);
                        } else {
                            let _ = img.attr(e.node);
                            let _ = img.read(e.node, 0, 1 << 20);
                            let _ = img.read(e.node, 5 << 20, 4096);
                            let _ = img.read_link(e.node);
                        }
                    }
                }
            }
            _ => {
                let _ = img.read(node, 0, 4096);
            }
        }
    }
}

#[test]
fn damaged_images_give_errors_not_panics() {
    let mut good = build(CompressParam::None, |_| {});
    let meta_at = good.len().saturating_sub(8 << 10);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for round in 0..400 {
        let mut bytes = good.clone();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Most flips land in the metadata at the end, where the parsers are.
        let span = if round % 4 == 0 {
            bytes.len()
        } else {
            bytes.len() - meta_at
        };
        let base = if round % 4 == 0 { 0 } else { meta_at };
        let at = base + (x as usize) % span;
        bytes[at] ^= 1 << (x >> 61);
        if round % 2 == 0 {
            reseal(&mut bytes);
        }
        exercise(&bytes);
    }
    for cut in (0..good.len())
        .step_by(good.len() / 97)
        .chain([good.len() - 1, 63, 64, 65])
    {
        exercise(&good[..cut]);
    }
    reseal(&mut good);
    check_tree(&open_bytes(&good).unwrap());
}

#[test]
fn zero_bit_lists_cannot_claim_unbounded_elements() {
    // Three million all-zero entries pack into zero bits each: a few bytes
    // of metadata declare them all. The (patched) decoder refuses instead
    // of allocating for them; 2^32 would be tens of GiB.
    let bytes = build(CompressParam::None, |m| m.devices = Some(vec![0; 3 << 20]));
    let err = open_bytes(&bytes).err().unwrap().to_string();
    assert!(err.contains("more collection elements"), "{err}");
}
