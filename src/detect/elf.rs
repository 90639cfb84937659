//! Just enough ELF to find where an AppImage's runtime ends and to read the
//! AppImage-specific sections (update information, signature).
//!
//! Works on 32- and 64-bit, little- and big-endian files. Everything is
//! bounds-checked: a section header table or string table that points past
//! the file is an error, never a panic.

use crate::error::{Error, Result};

/// Upper bound on the section header table we are willing to read.
const MAX_SECTION_TABLE: u64 = 4 << 20;

/// Longest section name kept. Every section may name itself at the same
/// offset of a string table without a NUL, so without this bound 65535
/// sections of a 4 MiB table would make 256 GiB of names.
const MAX_SECTION_NAME: usize = 255;

/// Facts read from an ELF file header and its section headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elf {
    /// 32 or 64.
    pub bits: u8,
    /// True for little endian.
    pub little_endian: bool,
    /// `e_machine`.
    pub machine: u16,
    /// The first byte after the ELF: the end of the section header table or
    /// of the last section's data, whichever is later.
    pub end: u64,
    /// The sections, in table order.
    pub sections: Vec<Section>,
}

/// One section header, with its name resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name from the section header string table (lossy UTF-8).
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// File offset of the section data.
    pub offset: u64,
    /// Size of the section data.
    pub size: u64,
}

const SHT_NOBITS: u32 = 8;

struct Fields<'a> {
    b: &'a [u8],
    le: bool,
}

impl Fields<'_> {
    fn u16(&self, at: usize) -> Result<u16> {
        let s = self.b.get(at..at + 2).ok_or_else(short)?;
        let a = [s[0], s[1]];
        Ok(if self.le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }
    fn u32(&self, at: usize) -> Result<u32> {
        let s = self.b.get(at..at + 4).ok_or_else(short)?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if self.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }
    fn u64(&self, at: usize) -> Result<u64> {
        let s = self.b.get(at..at + 8).ok_or_else(short)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(if self.le {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }
    /// A word: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, bits: u8, at: usize) -> Result<u64> {
        if bits == 64 {
            self.u64(at)
        } else {
            self.u32(at).map(u64::from)
        }
    }
}

fn short() -> Error {
    Error::corrupt("ELF header is cut short")
}

/// True when `head` starts with the ELF magic.
pub fn has_magic(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Parses the ELF header in `head` (at least 64 bytes) and the section
/// headers, fetched with `read_at(offset, len)`; `file_len` bounds them.
pub fn parse(
    head: &[u8],
    file_len: u64,
    read_at: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>>,
) -> Result<Elf> {
    if !has_magic(head) {
        return Err(Error::corrupt("not an ELF file"));
    }
    let bits = match head.get(4) {
        Some(1) => 32,
        Some(2) => 64,
        _ => return Err(Error::corrupt("ELF class is neither 32- nor 64-bit")),
    };
    let le = match head.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(Error::corrupt("ELF data encoding is invalid")),
    };
    let h = Fields { b: head, le };
    let machine = h.u16(18)?;
    let (shoff, shentsize, shnum, shstrndx) = if bits == 64 {
        (h.u64(0x28)?, h.u16(0x3A)?, h.u16(0x3C)?, h.u16(0x3E)?)
    } else {
        (
            u64::from(h.u32(0x20)?),
            h.u16(0x2E)?,
            h.u16(0x30)?,
            h.u16(0x32)?,
        )
    };
    let min_entry = if bits == 64 { 64 } else { 40 };
    if shnum == 0 {
        return Err(Error::corrupt(
            "ELF has no section headers, so the payload offset is unknown",
        ));
    }
    if usize::from(shentsize) < min_entry {
        return Err(Error::corrupt(format!(
            "ELF section header size {shentsize} is too small"
        )));
    }
    let table_len = u64::from(shentsize) * u64::from(shnum);
    let table_end = shoff
        .checked_add(table_len)
        .filter(|&e| e <= file_len && table_len <= MAX_SECTION_TABLE)
        .ok_or_else(|| Error::corrupt("ELF section header table lies outside the file"))?;
    let table = read_at(shoff, table_len as usize)?;
    let t = Fields { b: &table, le };
    let mut raw = Vec::with_capacity(usize::from(shnum));
    let mut end = table_end;
    for i in 0..usize::from(shnum) {
        let at = i * usize::from(shentsize);
        let name_off = t.u32(at)?;
        let kind = t.u32(at + 4)?;
        let (offset, size) = if bits == 64 {
            (t.u64(at + 0x18)?, t.u64(at + 0x20)?)
        } else {
            (t.word(bits, at + 0x10)?, t.word(bits, at + 0x14)?)
        };
        if kind != SHT_NOBITS && kind != 0 {
            let sec_end = offset
                .checked_add(size)
                .filter(|&e| e <= file_len)
                .ok_or_else(|| Error::corrupt(format!("ELF section {i} lies outside the file")))?;
            end = end.max(sec_end);
        }
        raw.push((name_off, kind, offset, size));
    }
    let names = match raw.get(usize::from(shstrndx)) {
        Some(&(_, kind, off, size)) if kind != SHT_NOBITS && size <= MAX_SECTION_TABLE => {
            read_at(off, size as usize)?
        }
        _ => Vec::new(),
    };
    let sections = raw
        .into_iter()
        .map(|(name_off, kind, offset, size)| Section {
            name: c_string_at(&names, name_off as usize),
            kind,
            offset,
            size,
        })
        .collect();
    Ok(Elf {
        bits,
        little_endian: le,
        machine,
        end,
        sections,
    })
}

fn c_string_at(table: &[u8], at: usize) -> String {
    let rest = table.get(at..).unwrap_or(&[]);
    let rest = &rest[..rest.len().min(MAX_SECTION_NAME)];
    let len = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..len]).into_owned()
}

/// A human name for `e_machine`.
pub fn machine_name(machine: u16) -> &'static str {
    match machine {
        3 => "i386",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv64",
        _ => "unknown",
    }
}

impl Elf {
    /// Finds a section by name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_garbage_without_panicking() {
        let mut none = |_: u64, _: usize| -> Result<Vec<u8>> { Err(Error::corrupt("no")) };
        assert!(parse(b"hello", 5, &mut none).is_err());
        let mut head = vec![0u8; 64];
        head[..4].copy_from_slice(b"\x7fELF");
        head[4] = 2;
        head[5] = 1;
        assert!(parse(&head, 64, &mut none).is_err());
        for cut in 0..64 {
            let _ = parse(&head[..cut], 64, &mut none);
        }
        head[0x3C] = 0xff;
        head[0x3D] = 0xff;
        head[0x3A] = 64;
        head[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&head, 1 << 20, &mut none).is_err());
    }
}
