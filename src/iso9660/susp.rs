//! System Use Sharing Protocol entries (SUSP 1.12) with the Rock Ridge
//! (RRIP 1.10/1.12) and zisofs (ZF) entries this reader needs.
//!
//! The System Use area of a directory record holds entries of the form
//! `sig[2] len ver data[len - 4]`; a `CE` entry continues the area in
//! another sector. Continuation chains are bounded ([`MAX_CONTINUATIONS`],
//! one sector each), so a chain that loops (the test image
//! `rockridge_ce_loop.iso`) ends in an error instead of a hang. A malformed entry ends the area, as in Linux.

use crate::error::{Error, Result};

use super::record::{le32, long_time, short_time, SECTOR};

/// Continuation areas followed at most per directory record (Linux allows 32).
pub(crate) const MAX_CONTINUATIONS: usize = 32;

/// Reads `len` bytes at byte offset `pos` of the image, for continuation
/// areas (the caller charges them to its read budget).
pub(crate) type AreaReader<'r> = dyn FnMut(u64, usize) -> Result<Vec<u8>> + 'r;

/// Rock Ridge `PX`: POSIX attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Px {
    /// `st_mode`, including the file type bits.
    pub mode: u32,
    /// `st_nlink`.
    pub nlink: u32,
    /// `st_uid`.
    pub uid: u32,
    /// `st_gid`.
    pub gid: u32,
    /// File serial number (RRIP 1.12 only).
    pub ino: Option<u32>,
}

/// zisofs `ZF` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Zf {
    /// Algorithm, `pz` for zisofs version 1.
    pub algorithm: [u8; 2],
    /// Header size in 4-byte units (4 for version 1).
    pub header_div4: u8,
    /// log2 of the block size.
    pub log2_block: u8,
    /// Uncompressed file size.
    pub size: u32,
}

/// Everything this reader takes from one record's System Use area.
#[derive(Clone, Debug, Default)]
pub(crate) struct SystemUse {
    /// `SP` skip length, if the area starts with an `SP` entry (root "." only).
    pub sp_skip: Option<u8>,
    /// An `ER` entry names Rock Ridge, or a Rock Ridge entry was seen.
    pub rock_ridge: bool,
    /// `PX`.
    pub px: Option<Px>,
    /// `PN` (high, low).
    pub pn: Option<(u32, u32)>,
    /// `NM` name (all entries concatenated), unless only "." / ".." flags.
    pub name: Option<Vec<u8>>,
    /// `SL` symlink target.
    pub symlink: Option<Vec<u8>>,
    /// `TF` modification time (seconds, nanoseconds).
    pub mtime: Option<(i64, u32)>,
    /// `RE`: this directory was relocated; its real place has a `CL` stub.
    pub relocated: bool,
    /// `CL`: this record stands for the directory at that logical block.
    pub child_link: Option<u32>,
    /// `ZF`.
    pub zf: Option<Zf>,
}

/// Parses the System Use area `area` of one record and its continuation
/// chain. `is_root_dot` says whether this is the root "." record, the only
/// place an `SP` entry counts.
pub(crate) fn parse(
    area: &[u8],
    is_root_dot: bool,
    read: &mut AreaReader<'_>,
) -> Result<SystemUse> {
    let mut out = SystemUse::default();
    let mut symlink = SymlinkBuilder::default();
    let mut owned;
    let mut area = area;
    let mut first = true;
    let mut continuations = 0;
    loop {
        let next = parse_area(area, first && is_root_dot, &mut out, &mut symlink)?;
        first = false;
        let Some((block, offset, len)) = next else {
            break;
        };
        continuations += 1;
        if continuations > MAX_CONTINUATIONS {
            return Err(Error::corrupt(format!(
                "more than {MAX_CONTINUATIONS} SUSP continuation areas for one record (loop?)"
            )));
        }
        if u64::from(offset) + u64::from(len) > SECTOR {
            return Err(Error::corrupt("SUSP continuation area crosses its sector"));
        }
        owned = read(u64::from(block) * SECTOR + u64::from(offset), len as usize)?;
        area = &owned;
    }
    out.symlink = symlink.finish();
    Ok(out)
}

/// Parses the entries of one area into `out`; returns the continuation
/// (block, offset, length) if the area has a `CE` entry.
fn parse_area(
    area: &[u8],
    sp_allowed: bool,
    out: &mut SystemUse,
    symlink: &mut SymlinkBuilder,
) -> Result<Option<(u32, u32, u32)>> {
    let mut next = None;
    let mut pos = 0usize;
    while pos + 4 <= area.len() {
        let sig = [area[pos], area[pos + 1]];
        let len = area[pos + 2] as usize;
        if len < 4 || pos + len > area.len() {
            break;
        }
        let data = &area[pos + 4..pos + len];
        match &sig {
            b"SP" if sp_allowed && pos == 0 && data.len() >= 3 && data[..2] == [0xBE, 0xEF] => {
                out.sp_skip = Some(data[2]);
            }
            b"ST" => break,
            b"CE" if data.len() >= 24 => {
                next = Some((le32(&data[0..]), le32(&data[8..]), le32(&data[16..])));
            }
            b"ER" if data.len() >= 4 => {
                let id_len = data[0] as usize;
                let id = data.get(4..4 + id_len).unwrap_or_default();
                if matches!(id, b"RRIP_1991A" | b"IEEE_P1282" | b"IEEE_1282") {
                    out.rock_ridge = true;
                }
            }
            b"RR" => out.rock_ridge = true,
            b"PX" if data.len() >= 32 => {
                out.rock_ridge = true;
                out.px = Some(Px {
                    mode: le32(&data[0..]),
                    nlink: le32(&data[8..]),
                    uid: le32(&data[16..]),
                    gid: le32(&data[24..]),
                    ino: (data.len() >= 40).then(|| le32(&data[32..])),
                });
            }
            b"PN" if data.len() >= 16 => {
                out.rock_ridge = true;
                out.pn = Some((le32(&data[0..]), le32(&data[8..])));
            }
            b"NM" if !data.is_empty() => {
                out.rock_ridge = true;
                // CURRENT (2), PARENT (4) and HOST (32) entries carry no name.
                if data[0] & (2 | 4 | 32) == 0 {
                    out.name
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&data[1..]);
                }
            }
            b"SL" if !data.is_empty() => {
                out.rock_ridge = true;
                symlink.add_entry(data);
            }
            b"TF" if !data.is_empty() => {
                out.rock_ridge = true;
                if let Some(t) = tf_mtime(data) {
                    out.mtime = Some(t);
                }
            }
            b"RE" => {
                out.rock_ridge = true;
                out.relocated = true;
            }
            b"CL" if data.len() >= 8 => {
                out.rock_ridge = true;
                out.child_link = Some(le32(data));
            }
            b"PL" => out.rock_ridge = true,
            b"ZF" if data.len() >= 12 => {
                out.zf = Some(Zf {
                    algorithm: [data[0], data[1]],
                    header_div4: data[2],
                    log2_block: data[3],
                    size: le32(&data[4..]),
                });
            }
            _ => {}
        }
        pos += len;
    }
    Ok(next)
}

/// The modification time of a `TF` entry, if it records one. Timestamps
/// appear in the order creation, modify, access, attributes, backup,
/// expiration, effective, each present when its flag bit is set; bit 7
/// selects the 17-byte long form.
fn tf_mtime(data: &[u8]) -> Option<(i64, u32)> {
    let flags = data[0];
    let size = if flags & 0x80 != 0 { 17 } else { 7 };
    if flags & 0x02 == 0 {
        return None;
    }
    // The creation time comes first when present.
    let start = 1 + if flags & 0x01 != 0 { size } else { 0 };
    let stamp = data.get(start..start + size)?;
    Some(if size == 17 {
        long_time(stamp)
    } else {
        (short_time(stamp), 0)
    })
}

/// Linux `new_encode_dev` of a Rock Ridge `PN` (high, low) pair. mkisofs
/// records (major, minor); libisofs records the 64-bit `dev_t` split in two,
/// which for every real device leaves `high` 0 and the glibc encoding in
/// `low`. Like Linux, `high == 0` with `low > 255` is read as an encoded
/// `dev_t`.
pub(crate) fn rdev((high, low): (u32, u32)) -> u32 {
    let (major, minor) = if high == 0 && low > 0xff {
        ((low >> 8) & 0xfff, (low & 0xff) | ((low >> 12) & 0xfff00))
    } else {
        (high, low)
    };
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// Joins the components of all `SL` entries of a record into one target,
/// the way Linux does: a separator after every component that is not
/// continued, except after the root component and at the very end.
#[derive(Default)]
struct SymlinkBuilder {
    target: Option<Vec<u8>>,
}

impl SymlinkBuilder {
    fn add_entry(&mut self, data: &[u8]) {
        let entry_continues = data[0] & 1 != 0;
        let target = self.target.get_or_insert_with(Vec::new);
        let comps = &data[1..];
        let mut i = 0usize;
        while i + 2 <= comps.len() {
            let flags = comps[i];
            let len = comps[i + 1] as usize;
            let Some(text) = comps.get(i + 2..i + 2 + len) else {
                break;
            };
            let mut root = false;
            match flags & !1 {
                0 => target.extend_from_slice(text),
                2 => target.push(b'.'),
                4 => target.extend_from_slice(b".."),
                8 => {
                    root = true;
                    target.push(b'/');
                }
                // Volume root and host name components have no meaning here.
                _ => {}
            }
            i += 2 + len;
            let component_continues = flags & 1 != 0;
            if i + 2 > comps.len() {
                if !root && entry_continues && !component_continues {
                    target.push(b'/');
                }
                break;
            }
            if !root && !component_continues {
                target.push(b'/');
            }
        }
    }

    fn finish(self) -> Option<Vec<u8>> {
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sig: &[u8; 2], data: &[u8]) -> Vec<u8> {
        let mut v = vec![sig[0], sig[1], (data.len() + 4) as u8, 1];
        v.extend_from_slice(data);
        v
    }

    fn no_reads() -> impl FnMut(u64, usize) -> Result<Vec<u8>> {
        |_, _| panic!("no continuation expected")
    }

    #[test]
    fn symlink_components_join_like_linux() {
        // "/tmp/.." : root, "tmp", parent.
        let sl = entry(b"SL", &[0, 8, 0, 0, 3, b't', b'm', b'p', 4, 0]);
        let su = parse(&sl, false, &mut no_reads()).unwrap();
        assert_eq!(su.symlink.as_deref(), Some(&b"/tmp/.."[..]));
        // "ab" split over two components with the continue flag, then "c"
        // in a second SL entry.
        let mut area = entry(b"SL", &[1, 1, 1, b'a', 0, 1, b'b']);
        area.extend(entry(b"SL", &[0, 0, 1, b'c']));
        let su = parse(&area, false, &mut no_reads()).unwrap();
        assert_eq!(su.symlink.as_deref(), Some(&b"ab/c"[..]));
    }

    #[test]
    fn names_times_and_malformed_tails() {
        let mut area = entry(b"NM", &[1, b'l', b'o', b'n', b'g']);
        area.extend(entry(b"NM", &[0, b'-', b'n', b'a', b'm', b'e']));
        area.extend(entry(b"NM", &[2])); // "." carries no name
        let mut tf = vec![0x06]; // modify + access, short form
        tf.extend([118, 3, 20, 0, 0, 0, 0]);
        tf.extend([0; 7]);
        area.extend(entry(b"TF", &tf));
        area.extend([b'X', b'X', 200, 1]); // length past the end: ignored
        let su = parse(&area, false, &mut no_reads()).unwrap();
        assert_eq!(su.name.as_deref(), Some(&b"long-name"[..]));
        assert_eq!(su.mtime, Some((1_521_504_000, 0)));
        assert!(su.rock_ridge);
    }

    #[test]
    fn device_numbers() {
        assert_eq!(rdev((0, 0x0103)), 0x0103); // libisofs, 1:3
        assert_eq!(rdev((1, 3)), 0x0103); // mkisofs, 1:3
        assert_eq!(rdev((0, 7)), 7); // 0:7
        assert_eq!(
            rdev((259, 70_000)),
            (70_000 & 0xff) | (259 << 8) | ((70_000 & !0xff) << 12)
        );
    }

    #[test]
    fn continuation_loops_are_cut() {
        let mut ce = vec![];
        for v in [20u32, 0, 0x1c] {
            ce.extend(v.to_le_bytes());
            ce.extend(v.to_be_bytes());
        }
        let area = entry(b"CE", &ce);
        let again = area.clone();
        let mut reads = 0;
        let mut reader = |pos: u64, len: usize| {
            assert_eq!((pos, len), (20 * 2048, 0x1c));
            reads += 1;
            Ok(again.clone())
        };
        assert!(parse(&area, false, &mut reader).is_err());
        assert_eq!(reads, MAX_CONTINUATIONS);
    }
}
