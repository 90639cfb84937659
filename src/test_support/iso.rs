//! ISO 9660 images made with `xorriso` (Rock Ridge, Joliet, zisofs, hard
//! links, long names in continuation areas, an empty root, plain ISO 9660)
//! and hostile ones patched here byte by byte: one file in three extents,
//! a continuation-area loop, zisofs headers with overflowing sizes, and a
//! file holding only volume descriptors.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tree::{self, png, Node};
use super::{cached, run, text, TempDir};

const SECTOR: usize = 2048;

/// Runs `xorriso -outdev out -padding 0 <before> -map src / <after>
/// -commit` (no padding: the image ends where its volume does).
fn xorriso(out: &Path, src: &Path, before: &[&str], after: &[&str]) {
    run(Command::new("xorriso")
        .arg("-outdev")
        .arg(out)
        .args(["-padding", "0"])
        .args(before)
        .arg("-map")
        .arg(src)
        .arg("/")
        .args(after)
        .arg("-commit"));
}

/// The image `name` of the tree `nodes`, made with the xorriso options
/// `before` and `after` the tree is mapped in.
fn image<P: AsRef<str>>(
    name: &str,
    nodes: &[(P, Node)],
    before: &[&str],
    after: &[&str],
) -> PathBuf {
    cached(name, |out| {
        let src = TempDir::new("isosrc");
        tree::write(src.path(), nodes);
        xorriso(out, src.path(), before, after);
    })
}

/// `minimal.iso`: Rock Ridge, an empty root.
pub fn minimal() -> PathBuf {
    image::<&str>("minimal.iso", &[], &["-volid", "CDROM"], &[])
}

/// `joliet_rockridge.iso`: Rock Ridge 1.12 and Joliet; `hardlink` and
/// `long-joliet-file-name.textfile` are one inode (RRIP 1.12 serial
/// numbers), `symlink` points at it, `dir` is empty.
pub fn joliet_rockridge() -> PathBuf {
    image(
        "joliet_rockridge.iso",
        &[
            ("dir", Node::Dir(0o755)),
            (
                "long-joliet-file-name.textfile",
                Node::File(b"hello\n".to_vec(), 0o644),
            ),
            ("hardlink", Node::HardLink("long-joliet-file-name.textfile")),
            (
                "symlink",
                Node::Link("long-joliet-file-name.textfile".into()),
            ),
        ],
        &[
            "-volid",
            "CDROM",
            "-joliet",
            "on",
            "-compliance",
            "new_rr",
            "-hardlinks",
            "on",
        ],
        &[],
    )
}

/// `plain.iso`: ISO 9660 only (no Rock Ridge, no Joliet): `GPL_3_0.TXT`
/// and 200 files in `A`, all upper case 8.3 names.
pub fn plain() -> PathBuf {
    let mut nodes = vec![(
        "GPL_3_0.TXT".to_string(),
        Node::File(text(35_000, 70), 0o644),
    )];
    for i in 0..200 {
        nodes.push((
            format!("A/F{i:03}.TXT"),
            Node::File(text(100 + i * 13, 71 + i as u64), 0o644),
        ));
    }
    image(
        "plain.iso",
        &nodes,
        &["-volid", "CDROM", "-rockridge", "off", "-joliet", "off"],
        &[],
    )
}

/// `xorriso.iso`: Rock Ridge; `file` (`hello\n`) with a hard link and a
/// symlink to it, an empty file, two folders with small files.
pub fn xorriso_tree() -> PathBuf {
    image(
        "xorriso.iso",
        &[
            ("dir/file2", Node::File(b"file2!\n".to_vec(), 0o644)),
            ("dir/file3", Node::File(b"file3!\n".to_vec(), 0o644)),
            ("dir2/file4", Node::File(b"file4!\n".to_vec(), 0o644)),
            ("empty", Node::File(Vec::new(), 0o644)),
            ("file", Node::File(b"hello\n".to_vec(), 0o644)),
            ("hardlink", Node::HardLink("file")),
            ("symlink", Node::Link("file".into())),
        ],
        &["-volid", "ISOIMAGE", "-hardlinks", "on"],
        &[],
    )
}

/// `zisofs.iso`: Rock Ridge with zisofs at 32 KiB blocks: a 1 MiB file and
/// its hard link, symlinks relative, absolute and through `..`.
pub fn zisofs() -> PathBuf {
    image(
        "zisofs.iso",
        &[
            ("dir", Node::Dir(0o755)),
            ("file", Node::File(text(1 << 20, 80), 0o644)),
            ("hardlink", Node::HardLink("file")),
            ("symlink", Node::Link("file".into())),
            ("symlink2", Node::Link("/tmp".into())),
            ("symlink3", Node::Link("/tmp/..".into())),
            ("symlink4", Node::Link(".././../tmp".into())),
        ],
        &[
            "-volid",
            "CDROM",
            "-hardlinks",
            "on",
            "-zisofs",
            "level=6:block_size=32k",
        ],
        &["-set_filter_r", "--zisofs", "/", "--"],
    )
}

/// `rockridge_ce.iso`: names of 151-153 bytes and symlinks to them, whose
/// Rock Ridge entries do not fit their directory records and continue in
/// continuation areas (`CE`).
pub fn rockridge_ce() -> PathBuf {
    let names: Vec<String> = (151..=153).map(|n| "a".repeat(n)).collect();
    let mut nodes: Vec<(String, Node)> = vec![("dir".into(), Node::Dir(0o755))];
    for (i, name) in names.iter().enumerate() {
        nodes.push((name.clone(), Node::File(text(4090, 90 + i as u64), 0o644)));
    }
    for (i, target) in names.into_iter().enumerate() {
        nodes.push((format!("sym{}", i + 1), Node::Link(target)));
    }
    image("rockridge_ce.iso", &nodes, &["-volid", "CDROM"], &[])
}

/// `single-file.iso`: Rock Ridge and Joliet, volume `volume-foo`, one file
/// `bar` of mode 700 owned by 1000:1000.
pub fn single_file() -> PathBuf {
    cached("single-file.iso", |out| {
        let src = TempDir::new("single");
        tree::write(src.path(), &[("bar", Node::File(b"bar\n".to_vec(), 0o700))]);
        std::os::unix::fs::lchown(src.path().join("bar"), Some(1000), Some(1000)).unwrap();
        xorriso(
            out,
            src.path(),
            &["-volid", "volume-foo", "-joliet", "on"],
            &[],
        );
    })
}

/// `archive.iso`: Rock Ridge and Joliet, read-only modes, an empty file, a
/// non-ASCII name, a PNG and a gzip file.
pub fn archive() -> PathBuf {
    image(
        "archive.iso",
        &[
            ("artificial/0.bytes", Node::File(Vec::new(), 0o444)),
            ("github-tags.json", Node::File(text(853, 100), 0o444)),
            (
                "hello.sh",
                Node::File(b"#!/bin/sh\necho hello\n".to_vec(), 0o555),
            ),
            ("non-ascii/αβ.txt", Node::File(text(104, 101), 0o444)),
            ("pjw-thumbnail.png", Node::File(png(32, 208), 0o444)),
            ("romeo.txt", Node::File(text(942, 102), 0o444)),
            (
                "romeo.txt.gz",
                Node::File(b"\x1f\x8b\x08\0\0\0\0\0\0\x03".to_vec(), 0o444),
            ),
            ("artificial", Node::Dir(0o555)),
            ("non-ascii", Node::Dir(0o555)),
        ],
        &["-volid", "ARCHIVE", "-joliet", "on"],
        &[],
    )
}

/// The byte position of the directory record named `name` (its ISO 9660
/// name before `;`) in the directory at sector `lba`, `len` bytes long.
fn find_record(bytes: &[u8], lba: u32, len: u32, name: &[u8]) -> usize {
    let start = lba as usize * SECTOR;
    let mut pos = start;
    while pos < start + len as usize {
        let rec_len = bytes[pos] as usize;
        if rec_len == 0 {
            pos = (pos / SECTOR + 1) * SECTOR;
            continue;
        }
        let name_len = bytes[pos + 32] as usize;
        let rec_name = &bytes[pos + 33..pos + 33 + name_len];
        let base = rec_name.split(|&b| b == b';').next().unwrap();
        let base = base.strip_suffix(b".").unwrap_or(base);
        if base.eq_ignore_ascii_case(name) {
            return pos;
        }
        pos += rec_len;
    }
    panic!("no record {:?}", String::from_utf8_lossy(name))
}

/// The root directory's sector and length, from the primary descriptor.
fn root_dir(bytes: &[u8]) -> (u32, u32) {
    let root = &bytes[16 * SECTOR + 156..16 * SECTOR + 190];
    (le32(&root[2..6]), le32(&root[10..14]))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes `v` as both-endian 32-bit at `at` (ISO 9660 7.3.3).
fn put_both32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Appends `sector` (padded to 2048 bytes) and makes every volume
/// descriptor's volume size include it; returns its sector number.
fn append_sector(bytes: &mut Vec<u8>, sector: &[u8]) -> u32 {
    bytes.resize(bytes.len().div_ceil(SECTOR) * SECTOR, 0);
    let lba = (bytes.len() / SECTOR) as u32;
    bytes.extend_from_slice(sector);
    bytes.resize((lba as usize + 1) * SECTOR, 0);
    let mut d = 16;
    while bytes[d * SECTOR] != 255 && d < 32 {
        if matches!(bytes[d * SECTOR], 1 | 2) {
            put_both32(bytes, d * SECTOR + 80, lba + 1);
        }
        d += 1;
    }
    lba
}

/// A SUSP `CE` entry pointing at `len` bytes at `offset` in sector `lba`.
fn ce(lba: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut e = vec![0u8; 28];
    e[..4].copy_from_slice(b"CE\x1c\x01");
    put_both32(&mut e, 4, lba);
    put_both32(&mut e, 12, offset);
    put_both32(&mut e, 20, len);
    e
}

/// The position of the System Use area of the record at `pos`.
fn system_use(bytes: &[u8], pos: usize) -> usize {
    let name_len = bytes[pos + 32] as usize;
    pos + 33 + name_len + (1 - name_len % 2)
}

/// Replaces the System Use entries of the record at `pos` with `entries`
/// and a terminator (`ST`).
fn replace_system_use(bytes: &mut [u8], pos: usize, entries: &[u8]) {
    let su = system_use(bytes, pos);
    let end = pos + bytes[pos] as usize;
    assert!(su + entries.len() + 4 <= end, "no room in the record");
    bytes[su..su + entries.len()].copy_from_slice(entries);
    bytes[su + entries.len()..su + entries.len() + 4].copy_from_slice(b"ST\x04\x01");
    bytes[su + entries.len() + 4..end].fill(0);
}

/// `multi_extent.iso`: Rock Ridge; `file` (5000 bytes) stored as three
/// directory records of one extent each, all but the last flagged
/// multi-extent. Made from a one-extent file whose record is tripled.
pub fn multi_extent() -> PathBuf {
    cached("multi_extent.iso", |out| {
        let src = TempDir::new("multi");
        tree::write(src.path(), &[("file", Node::File(text(5000, 110), 0o644))]);
        let plain = src.path().with_extension("iso");
        xorriso(&plain, src.path(), &["-volid", "CDROM"], &[]);
        let mut bytes = fs::read(&plain).unwrap();
        fs::remove_file(&plain).unwrap();
        let (lba, len) = root_dir(&bytes);
        let pos = find_record(&bytes, lba, len, b"file");
        let rec_len = bytes[pos] as usize;
        let record = bytes[pos..pos + rec_len].to_vec();
        let extent = le32(&record[2..6]);
        let mut three = Vec::new();
        for (i, size) in [2048u32, 2048, 904].into_iter().enumerate() {
            let mut r = record.clone();
            put_both32(&mut r, 2, extent + i as u32);
            put_both32(&mut r, 10, size);
            if i < 2 {
                r[25] |= 0x80;
            }
            three.extend_from_slice(&r);
        }
        let sector_end = (pos / SECTOR + 1) * SECTOR;
        let tail: Vec<u8> = bytes[pos + rec_len..sector_end].to_vec();
        let mut rest = three;
        rest.extend_from_slice(&tail);
        rest.truncate(sector_end - pos);
        assert!(
            tail[tail.len() - 2 * rec_len..].iter().all(|&b| b == 0),
            "no room for two more records"
        );
        bytes[pos..sector_end].copy_from_slice(&rest);
        fs::write(out, bytes).unwrap();
    })
}

/// `rockridge_ce_loop.iso`: [`rockridge_ce`] where the Rock Ridge entries
/// of `dir` continue in an appended sector whose two `CE` entries point at
/// each other, a continuation loop (xorriso itself hangs on such a loop).
pub fn ce_loop() -> PathBuf {
    cached("rockridge_ce_loop.iso", |out| {
        let mut bytes = fs::read(rockridge_ce()).unwrap();
        let next = (bytes.len().div_ceil(SECTOR)) as u32;
        let mut area = ce(next, 28, 28);
        area.extend(ce(next, 0, 28));
        assert_eq!(append_sector(&mut bytes, &area), next);
        let (lba, len) = root_dir(&bytes);
        let pos = find_record(&bytes, lba, len, b"dir");
        replace_system_use(&mut bytes, pos, &ce(next, 0, 28));
        fs::write(out, bytes).unwrap();
    })
}

/// `zisofs_overflow.iso`: two zisofs files whose `ZF` entries and file
/// headers claim an uncompressed size near 4 GiB: `OVERFLOW.BIN` with
/// 4-byte blocks (a block pointer table a billion entries long) and
/// `BIGSIZE.BIN` with its real 32 KiB blocks (a table far past its data).
pub fn zisofs_overflow() -> PathBuf {
    cached("zisofs_overflow.iso", |out| {
        let src = TempDir::new("zfover");
        tree::write(
            src.path(),
            &[
                ("BIGSIZE.BIN", Node::File(text(64 << 10, 121), 0o644)),
                ("OVERFLOW.BIN", Node::File(text(64 << 10, 120), 0o644)),
            ],
        );
        let plain = src.path().with_extension("iso");
        xorriso(
            &plain,
            src.path(),
            &["-volid", "POC", "-zisofs", "level=6:block_size=32k"],
            &["-set_filter_r", "--zisofs", "/", "--"],
        );
        let mut bytes = fs::read(&plain).unwrap();
        fs::remove_file(&plain).unwrap();
        const HUGE: u32 = 0xffff_fbf9;
        let (lba, len) = root_dir(&bytes);
        for (name, log2_block) in [(&b"OVERFLOW.BIN"[..], 2u8), (b"BIGSIZE.BIN", 15)] {
            let pos = find_record(&bytes, lba, len, name);
            let extent = le32(&bytes[pos + 2..pos + 6]) as usize * SECTOR;
            let su = system_use(&bytes, pos);
            let zf = su
                + bytes[su..pos + bytes[pos] as usize]
                    .windows(4)
                    .position(|w| w == b"ZF\x10\x01")
                    .expect("a ZF entry");
            assert_eq!(bytes[zf + 7], 15);
            bytes[zf + 7] = log2_block;
            put_both32(&mut bytes, zf + 8, HUGE);
            assert_eq!(
                &bytes[extent..extent + 8],
                b"\x37\xe4\x53\x96\xc9\xdb\xd6\x07"
            );
            bytes[extent + 8..extent + 12].copy_from_slice(&HUGE.to_le_bytes());
            bytes[extent + 13] = log2_block;
        }
        fs::write(out, bytes).unwrap();
    })
}

/// `rockridge_zf_overflow.iso`: a folder `A` whose Rock Ridge entries
/// continue in a whole appended sector of `PD` padding that ends with a
/// `ZF` entry cut off by the end of the file (it claims 5 bytes; a full
/// `ZF` entry has 16).
pub fn zf_overflow() -> PathBuf {
    cached("rockridge_zf_overflow.iso", |out| {
        let src = TempDir::new("zfcut");
        tree::write::<&str>(src.path(), &[("A", Node::Dir(0o755))]);
        let plain = src.path().with_extension("iso");
        xorriso(&plain, src.path(), &[], &[]);
        let mut bytes = fs::read(&plain).unwrap();
        fs::remove_file(&plain).unwrap();
        let mut area = Vec::new();
        for len in [255u8, 255, 255, 255, 255, 255, 255, 254, 4] {
            area.extend_from_slice(&[b'P', b'D', len, 1]);
            area.resize(area.len() + len as usize - 4, 0);
        }
        area.extend_from_slice(b"ZF\x05\x01p");
        assert_eq!(area.len(), SECTOR);
        let next = bytes.len().div_ceil(SECTOR) as u32;
        assert_eq!(append_sector(&mut bytes, &area), next);
        let (lba, len) = root_dir(&bytes);
        let pos = find_record(&bytes, lba, len, b"A");
        replace_system_use(&mut bytes, pos, &ce(next, 0, SECTOR as u32));
        fs::write(out, bytes).unwrap();
    })
}

/// `volrecords.iso`: the four sectors after the system area of
/// [`joliet_rockridge`] (primary, Joliet and terminator descriptors) and
/// nothing else: no system area, no directories.
pub fn volume_descriptors_only() -> PathBuf {
    cached("volrecords.iso", |out| {
        let bytes = fs::read(joliet_rockridge()).unwrap();
        fs::write(out, &bytes[16 * SECTOR..20 * SECTOR]).unwrap();
    })
}

/// Every image of this module by name, the hostile ones included.
pub fn all() -> Vec<PathBuf> {
    vec![
        minimal(),
        joliet_rockridge(),
        plain(),
        xorriso_tree(),
        zisofs(),
        rockridge_ce(),
        single_file(),
        archive(),
        multi_extent(),
        ce_loop(),
        zisofs_overflow(),
        zf_overflow(),
        volume_descriptors_only(),
    ]
}
