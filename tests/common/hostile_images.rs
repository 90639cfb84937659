//! Broken and malicious images made from good ones by patching bytes: a
//! SquashFS whose directory names escape (`..`, `.`, `a/b`, a duplicate
//! name that is a symlink to /tmp), ISO 9660 images with a Rock Ridge
//! continuation loop, a ZF/PD entry overflowing its area, zisofs sizes that
//! overflow, the volume descriptors of an image without the rest, and a
//! plain ELF. Also ISO patching helpers (directory records) and a
//! multi-extent file, which xorriso only writes for files over 4 GiB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::runtime_stub::StubRuntime;
use super::{build_dir, mksquashfs, run_timeout, set_mode, text};

fn le32(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap())
}

fn put_both32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
    d[at + 4..at + 8].copy_from_slice(&v.to_be_bytes());
}

// ---------------------------------------------------------------------------
// ISO 9660 directory records

/// One directory record of the primary (ISO 9660 + Rock Ridge) tree.
#[derive(Clone, Debug)]
pub struct IsoRecord {
    /// Byte offset of the record in the image.
    pub at: usize,
    /// Record length.
    pub len: usize,
    /// The ISO 9660 identifier (`FILE.;1`, `\0` for ".", `\1` for "..").
    pub ident: Vec<u8>,
    /// The Rock Ridge NM name, when the record carries one in place.
    pub rr_name: Option<Vec<u8>>,
    /// First logical block of the extent.
    pub extent: u32,
    /// Data length.
    pub size: u32,
    /// File flags (2 = directory, 0x80 = not the final extent).
    pub flags: u8,
    /// Byte offset of the system use area in the image.
    pub su_at: usize,
}

fn parse_record(data: &[u8], at: usize) -> IsoRecord {
    let len = data[at] as usize;
    let id_len = data[at + 32] as usize;
    let ident = data[at + 33..at + 33 + id_len].to_vec();
    let su_at = at + 33 + id_len + (1 - id_len % 2);
    let mut rr_name = None;
    let mut p = su_at;
    while p + 4 <= at + len {
        let l = data[p + 2] as usize;
        if l < 4 || p + l > at + len {
            break;
        }
        if &data[p..p + 2] == b"NM" {
            rr_name = Some(data[p + 5..p + l].to_vec());
        }
        p += l;
    }
    IsoRecord {
        at,
        len,
        ident,
        rr_name,
        extent: le32(data, at + 2),
        size: le32(data, at + 10),
        flags: data[at + 25],
        su_at,
    }
}

/// Every record of the primary tree (depth first, "." and ".." excluded),
/// with its directory path of Rock Ridge names (or identifiers).
pub fn iso_records(data: &[u8]) -> Vec<(Vec<u8>, IsoRecord)> {
    let root = parse_record(data, 16 * 2048 + 156);
    let mut out = Vec::new();
    let mut stack = vec![(Vec::new(), root.extent, root.size, 0usize)];
    while let Some((path, extent, size, depth)) = stack.pop() {
        let start = extent as usize * 2048;
        let end = (start + size as usize).min(data.len());
        let mut at = start;
        while at < end {
            if data[at] == 0 {
                at = (at / 2048 + 1) * 2048;
                continue;
            }
            let r = parse_record(data, at);
            at += r.len;
            if r.ident == [0] || r.ident == [1] {
                continue;
            }
            let name = r.rr_name.clone().unwrap_or_else(|| r.ident.clone());
            let mut p = path.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&name);
            if r.flags & 2 != 0 && depth < 64 {
                stack.push((p.clone(), r.extent, r.size, depth + 1));
            }
            out.push((p, r));
        }
    }
    out
}

/// The `n`th record (0-based, in [`iso_records`] order) that carries SUSP
/// entry `sig` in place.
pub fn nth_record_with(data: &[u8], sig: &[u8; 2], n: usize) -> IsoRecord {
    iso_records(data)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| susp_entry(data, r, sig).is_some())
        .nth(n)
        .unwrap_or_else(|| panic!("fewer than {} records with {sig:?}", n + 1))
}

/// The record whose path (Rock Ridge names) is `path`.
pub fn iso_record(data: &[u8], path: &str) -> IsoRecord {
    iso_records(data)
        .into_iter()
        .find(|(p, _)| p == path.as_bytes())
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no ISO record {path}"))
}

/// The offset of SUSP entry `sig` in a record's system use area.
pub fn susp_entry(data: &[u8], r: &IsoRecord, sig: &[u8; 2]) -> Option<usize> {
    let mut p = r.su_at;
    while p + 4 <= r.at + r.len {
        let l = data[p + 2] as usize;
        if l < 4 {
            return None;
        }
        if &data[p..p + 2] == sig {
            return Some(p);
        }
        p += l;
    }
    None
}

/// `xorriso ARGS` with `OUT` and `TREE` replaced; panics on failure.
fn xorriso(out: &Path, tree: &Path, args: &[&str]) {
    let argv: Vec<std::ffi::OsString> = args
        .iter()
        .map(|a| match *a {
            "OUT" => out.as_os_str().to_owned(),
            "TREE" => tree.as_os_str().to_owned(),
            s => s.into(),
        })
        .collect();
    let o = run_timeout(
        Command::new("xorriso").args(&argv),
        Duration::from_secs(120),
    );
    assert!(
        o.success() && out.exists(),
        "xorriso {args:?} failed: {}",
        o.describe()
    );
}

fn hostile_dir() -> PathBuf {
    let d = build_dir().join("hostile");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small Rock Ridge ISO (no Joliet) whose names need continuation areas:
/// three 150+ byte names, a directory, a file of 2048 `P` bytes (`pad`,
/// whose sector the patches reuse) and `data`.
fn rr_base_iso(tag: &str, zisofs: bool) -> Vec<u8> {
    let dir = hostile_dir().join(tag);
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("dir")).unwrap();
    for n in [153usize, 152, 151] {
        std::fs::write(tree.join("a".repeat(n)), format!("{n}\n")).unwrap();
    }
    std::fs::write(tree.join("dir/inside"), b"inside\n").unwrap();
    std::fs::write(tree.join("pad"), vec![b'P'; 2048]).unwrap();
    std::fs::write(tree.join("data"), text(200_000, 5)).unwrap();
    let iso = dir.join("base.iso");
    let mut args = vec!["-outdev", "OUT", "-joliet", "off"];
    if zisofs {
        args.extend(["-zisofs", "block_size=32k"]);
    }
    args.extend(["-map", "TREE", "/"]);
    if zisofs {
        args.extend(["-set_filter", "--zisofs", "/data", "--"]);
    }
    xorriso(&iso, &tree, &args);
    std::fs::read(&iso).unwrap()
}

fn save(name: &str, data: &[u8]) -> PathBuf {
    let p = hostile_dir().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// An ISO whose first long name's Rock Ridge continuation area starts with
/// a CE entry pointing at itself (an endless CE chain). xorriso 1.5.4
/// hangs on such an image: never run it on this one (the name contains
/// `ce_loop`, which [`super::xorriso_extract`] refuses).
pub fn iso_ce_loop() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let mut d = rr_base_iso("ce-loop", false);
        let r = nth_record_with(&d, b"CE", 0);
        let ce = susp_entry(&d, &r, b"CE").unwrap();
        let lba = le32(&d, ce + 4) as usize;
        let off = le32(&d, ce + 12) as usize;
        let area = lba * 2048 + off;
        // CE: len 28, version 1, block, offset, length (both-endian).
        d[area..area + 4].copy_from_slice(&[b'C', b'E', 28, 1]);
        put_both32(&mut d, area + 4, lba as u32);
        put_both32(&mut d, area + 12, off as u32);
        put_both32(&mut d, area + 20, 28);
        save("hostile_ce_loop.iso", &d)
    })
}

/// An ISO whose continuation area (the 2048-byte sector of `pad`) is
/// filled with PD padding entries, the last of which runs past the end of
/// the area, followed by a ZF entry cut at the sector's end; a directory's
/// CE points there, and the root's "." record gains a PD entry.
pub fn iso_zf_overflow() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let mut d = rr_base_iso("zf-overflow", false);
        let pad = iso_record(&d, "pad");
        let sector = pad.extent as usize * 2048;
        let mut p = sector;
        while p + 9 <= sector + 2048 - 16 {
            d[p..p + 9].copy_from_slice(&[b'P', b'D', 9, 1, 0, 0, 0, 0, 0]);
            p += 9;
        }
        // A ZF entry claiming 16 bytes where fewer remain, then a PD
        // claiming 255 bytes at the very end of the sector.
        let zf_at = sector + 2048 - 12;
        d[p..zf_at].fill(0);
        d[zf_at..zf_at + 4].copy_from_slice(&[b'Z', b'F', 16, 1]);
        d[zf_at + 4..zf_at + 8].copy_from_slice(b"pz\x04\x11");
        d[zf_at + 8..zf_at + 12].copy_from_slice(&[b'P', b'D', 255, 1]);
        let r = nth_record_with(&d, b"CE", 1);
        let ce = susp_entry(&d, &r, b"CE").unwrap();
        put_both32(&mut d, ce + 4, pad.extent);
        put_both32(&mut d, ce + 12, 0);
        put_both32(&mut d, ce + 20, 2048);
        save("hostile_zf_overflow.iso", &d)
    })
}

/// An ISO whose zisofs file claims 0xfffffbf9 bytes in 4-byte blocks
/// (log2 = 2) in both its ZF entry and its zisofs header, with a block
/// pointer table of text: the sizes overflow any 32-bit arithmetic.
pub fn iso_zisofs_overflow() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let mut d = rr_base_iso("zisofs-overflow", true);
        let r = iso_record(&d, "data");
        let zf = susp_entry(&d, &r, b"ZF").expect("data is zisofs-compressed");
        d[zf + 6] = 4; // header size / 4
        d[zf + 7] = 2; // log2 block size
        put_both32(&mut d, zf + 8, 0xffff_fbf9);
        let at = r.extent as usize * 2048;
        assert_eq!(
            &d[at..at + 8],
            &[0x37, 0xe4, 0x53, 0x96, 0xc9, 0xdb, 0xd6, 0x07],
            "zisofs magic"
        );
        d[at + 8..at + 12].copy_from_slice(&0xffff_fbf9u32.to_le_bytes());
        d[at + 12] = 4;
        d[at + 13] = 2;
        for i in 0..256 {
            d[at + 16 + i] = b"ABCD"[i % 4];
        }
        save("hostile_zisofs_overflow.iso", &d)
    })
}

/// The volume descriptors (sector 16 up to and including the terminator)
/// of an image, nothing else: the root directory lies beyond the end.
pub fn iso_descriptors_only(iso: &Path) -> Vec<u8> {
    let d = std::fs::read(iso).expect("read ISO");
    let mut end = 16 * 2048;
    while end + 2048 <= d.len() && end < 64 * 2048 {
        end += 2048;
        if d[end - 2048] == 255 {
            break;
        }
    }
    d[16 * 2048..end].to_vec()
}

/// A plain ELF executable (the stand-in runtime without magic bytes and
/// without any payload): not an AppImage.
pub fn plain_elf() -> Vec<u8> {
    StubRuntime {
        magic: None,
        ..StubRuntime::type2()
    }
    .bytes()
}

// ---------------------------------------------------------------------------
// SquashFS

/// A SquashFS image (gzip, 4K blocks, uncompressed metadata) whose root
/// lists `DIR` twice: a directory holding `gotcha.txt` and a symlink to
/// /tmp (extracting both writes through the link; unsquashfs refuses it).
pub fn squashfs_path_traversal() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| patched_squashfs("pathtraversal", &[(b"DIS", b"DIR")]))
}

/// The same tree with entries renamed to `..`, `.`, `a/b` and `../x`.
pub fn squashfs_forbidden_names() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        patched_squashfs(
            "forbidden-names",
            &[
                (b"zz", b".."),
                (b"\0y", b"\0."),
                (b"aqb", b"a/b"),
                (b"qqqq", b"../x"),
            ],
        )
    })
}

/// Builds the traversal tree and renames entries in place in its
/// (uncompressed) directory table: each `(from, to)` replaces the first
/// occurrence of `from` with `to` (same length).
fn patched_squashfs(tag: &str, renames: &[(&[u8], &[u8])]) -> PathBuf {
    let dir = hostile_dir().join(tag);
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("DIR")).unwrap();
    std::fs::write(
        tree.join("DIR/gotcha.txt"),
        b"This file has been created through a path traversal bug.\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/tmp", tree.join("DIS")).unwrap();
    std::fs::write(tree.join("zz"), b"dotdot\n").unwrap();
    std::fs::write(tree.join("y"), b"dot\n").unwrap();
    std::fs::write(tree.join("aqb"), b"slash\n").unwrap();
    std::fs::create_dir_all(tree.join("qqqq")).unwrap();
    std::fs::write(tree.join("qqqq/escaped"), b"escaped\n").unwrap();
    let sqfs = dir.join("base.sqfs");
    mksquashfs(
        &tree,
        &sqfs,
        &[
            "-comp",
            "gzip",
            "-b",
            "4K",
            "-noI",
            "-no-fragments",
            "-no-xattrs",
        ],
    );
    let mut d = std::fs::read(&sqfs).unwrap();
    let dir_table = u64::from_le_bytes(d[72..80].try_into().unwrap()) as usize;
    let header = u16::from_le_bytes(d[dir_table..dir_table + 2].try_into().unwrap());
    assert!(
        header & 0x8000 != 0,
        "-noI left the directory table compressed"
    );
    let len = (header & 0x7fff) as usize;
    for (from, to) in renames {
        let region = &mut d[dir_table + 2..dir_table + 2 + len];
        let at = region
            .windows(from.len())
            .position(|w| w == *from)
            .unwrap_or_else(|| panic!("name {from:?} not in the directory table"));
        region[at..at + to.len()].copy_from_slice(to);
    }
    let out = dir.join(format!("{tag}.sqfs"));
    std::fs::write(&out, d).unwrap();
    set_mode(&out, 0o644);
    out
}

/// A Rock Ridge ISO (no Joliet) whose file `file` (3 × 2048 + 1000 bytes
/// of text) is described by three directory records with the multi-extent
/// flag on the first two, one per extent, as ISO 9660 stores files over
/// 4 GiB. Built once per process.
pub fn iso_multi_extent() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = hostile_dir().join("multi-extent");
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("dir")).unwrap();
        std::fs::write(tree.join("file"), text(3 * 2048 + 1000, 17)).unwrap();
        std::fs::write(tree.join("after"), b"after\n").unwrap();
        std::fs::write(tree.join("dir/inside"), b"inside\n").unwrap();
        let iso = dir.join("base.iso");
        xorriso(
            &iso,
            &tree,
            &["-outdev", "OUT", "-joliet", "off", "-map", "TREE", "/"],
        );
        let mut d = std::fs::read(&iso).unwrap();
        let r = iso_record(&d, "file");
        let rec = d[r.at..r.at + r.len].to_vec();
        let sizes = [2048u32, 2048, r.size - 4096];
        let mut parts = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let mut p = rec.clone();
            put_both32(&mut p, 2, r.extent + i as u32);
            put_both32(&mut p, 10, *size);
            p[25] = if i < 2 { r.flags | 0x80 } else { r.flags };
            parts.extend_from_slice(&p);
        }
        // Shift the rest of the directory sector to make room.
        let sector_end = (r.at / 2048 + 1) * 2048;
        let tail: Vec<u8> = d[r.at + r.len..sector_end].to_vec();
        let used = tail.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        assert!(
            r.at + parts.len() + used <= sector_end,
            "no room for the extra records"
        );
        let mut new = parts;
        new.extend_from_slice(&tail[..used]);
        new.resize(sector_end - r.at, 0);
        d[r.at..sector_end].copy_from_slice(&new);
        save("multi_extent.iso", &d)
    })
}
