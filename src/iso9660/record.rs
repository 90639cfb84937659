//! ISO 9660 directory records (ECMA-119 § 9.1) and recorded times.
//!
//! A record is at most 255 bytes and never crosses a logical sector; a zero
//! length byte means "the rest of this sector is padding". Every field is
//! checked against the record length before it is used.

use crate::error::{Error, Result};

/// Logical sector (and logical block) size; other sizes are rejected when the
/// volume descriptors are read.
pub(crate) const SECTOR: u64 = 2048;

/// Record flag: directory.
pub(crate) const FLAG_DIR: u8 = 0x02;
/// Record flag: associated file (e.g. a Macintosh resource fork).
pub(crate) const FLAG_ASSOCIATED: u8 = 0x04;
/// Record flag: the file continues in the next record (multi-extent file).
pub(crate) const FLAG_MULTI_EXTENT: u8 = 0x80;

/// Fixed part of a directory record before the identifier.
const FIXED_LEN: usize = 33;

/// One parsed directory record, borrowing the identifier and the System Use
/// area from the sector buffer.
#[derive(Debug, Clone)]
pub(crate) struct DirRecord<'a> {
    /// Length of the whole record in bytes.
    pub len: usize,
    /// Extended attribute record length, in logical blocks before the data.
    pub xattr_blocks: u8,
    /// First logical block of the extent.
    pub extent: u32,
    /// Data length in bytes.
    pub size: u32,
    /// Recording time (seconds since the epoch, UTC).
    pub time: i64,
    /// File flags.
    pub flags: u8,
    /// File unit size (interleaving; 0 for ordinary files).
    pub unit_size: u8,
    /// Interleave gap size.
    pub gap_size: u8,
    /// Raw identifier bytes (`[0]` is ".", `[1]` is "..").
    pub name: &'a [u8],
    /// System Use area (SUSP entries), possibly empty.
    pub system_use: &'a [u8],
}

impl DirRecord<'_> {
    /// True for the "." and ".." records.
    pub fn is_self_or_parent(&self) -> bool {
        self.name == [0] || self.name == [1]
    }

    /// True when the record describes a directory.
    pub fn is_dir(&self) -> bool {
        self.flags & FLAG_DIR != 0
    }
}

/// Parses the record at the start of `buf`; `buf` must end where the sector
/// (or the directory) ends, so a record crossing it is rejected.
pub(crate) fn parse(buf: &[u8]) -> Result<DirRecord<'_>> {
    let len = *buf
        .first()
        .ok_or_else(|| Error::corrupt("empty directory record"))? as usize;
    if len < FIXED_LEN + 1 {
        return Err(Error::corrupt(format!(
            "directory record of {len} bytes is too short"
        )));
    }
    if len > buf.len() {
        return Err(Error::corrupt("directory record crosses a sector boundary"));
    }
    let rec = &buf[..len];
    let name_len = rec[32] as usize;
    if name_len == 0 || FIXED_LEN + name_len > len {
        return Err(Error::corrupt(format!(
            "directory record identifier of {name_len} bytes does not fit its record of {len}"
        )));
    }
    let name = &rec[FIXED_LEN..FIXED_LEN + name_len];
    // A padding byte follows an identifier of even length.
    let su_start = (FIXED_LEN + name_len + usize::from(name_len.is_multiple_of(2))).min(len);
    Ok(DirRecord {
        len,
        xattr_blocks: rec[1],
        extent: le32(&rec[2..6]),
        size: le32(&rec[10..14]),
        time: short_time(&rec[18..25]),
        flags: rec[25],
        unit_size: rec[26],
        gap_size: rec[27],
        name,
        system_use: &rec[su_start..],
    })
}

/// Little-endian u32 from the first four bytes of `b` (callers check length).
pub(crate) fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch for a calendar time with an offset from GMT in
/// 15-minute units; an impossible date gives 0, an offset outside the
/// allowed -48..=52 range is ignored (as Linux does).
fn to_epoch(year: i64, month: u32, day: u32, h: u32, m: u32, s: u32, gmtoff: i8) -> i64 {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return 0;
    }
    let local = days_from_civil(year, month, day) * 86_400
        + i64::from(h) * 3600
        + i64::from(m) * 60
        + i64::from(s);
    let off = if (-48..=52).contains(&gmtoff) {
        i64::from(gmtoff) * 900
    } else {
        0
    };
    local - off
}

/// The 7-byte binary time of directory records and short-form TF entries.
pub(crate) fn short_time(b: &[u8]) -> i64 {
    if b.len() < 7 {
        return 0;
    }
    to_epoch(
        1900 + i64::from(b[0]),
        u32::from(b[1]),
        u32::from(b[2]),
        u32::from(b[3]),
        u32::from(b[4]),
        u32::from(b[5]),
        b[6] as i8,
    )
}

/// The 17-byte "YYYYMMDDHHMMSScc" + offset time of long-form TF entries, as
/// (seconds, nanoseconds); anything that is not digits gives (0, 0).
pub(crate) fn long_time(b: &[u8]) -> (i64, u32) {
    if b.len() < 17 || !b[..16].iter().all(u8::is_ascii_digit) {
        return (0, 0);
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let secs = to_epoch(
        i64::from(num(0..4)),
        num(4..6),
        num(6..8),
        num(8..10),
        num(10..12),
        num(12..14),
        b[16] as i8,
    );
    if secs == 0 {
        return (0, 0);
    }
    (secs, num(14..16) * 10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_conversions() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // 2018-03-20 00:00:00 at GMT+1 (4 quarter hours).
        assert_eq!(short_time(&[118, 3, 20, 0, 0, 0, 4]), 1_521_500_400);
        assert_eq!(short_time(&[0; 7]), 0);
        assert_eq!(
            long_time(b"2009090212345678\0"),
            (1_251_894_896, 780_000_000)
        );
        assert_eq!(long_time(b"0000000000000000\0"), (0, 0));
    }

    #[test]
    fn short_or_crossing_records_are_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[10; 10]).is_err());
        let mut rec = [0u8; 40];
        rec[0] = 40;
        rec[32] = 8; // 33 + 8 > 40
        assert!(parse(&rec).is_err());
        rec[32] = 7;
        let r = parse(&rec).unwrap();
        assert_eq!(r.name.len(), 7);
        assert!(r.system_use.is_empty());
        assert!(parse(&rec[..39]).is_err());
    }
}
