//! A stand-in AppImage runtime written byte by byte: an ELF header, the
//! sections real runtimes carry (`.upd_info`, `.sha256_sig`, `.sig_key`), a
//! section name table and the section header table last, so the ELF ends
//! where a payload may start.
//!
//! appimagefs recognises AppImages by content and never runs the runtime, so
//! this stands in for one in every test image; the tests then need nothing
//! beside the repository. It depends on `std` alone because the unit tests
//! include it too (`src/test_support.rs`).

/// What the stub looks like.
#[derive(Clone, Debug)]
pub struct StubRuntime {
    /// 32 or 64.
    pub bits: u8,
    /// The AppImage type written at bytes 8..11 (`AI\x01`, `AI\x02`), or
    /// none for a runtime without magic bytes.
    pub magic: Option<u8>,
    /// `e_machine` (62 = x86_64, 3 = i386).
    pub machine: u16,
    /// The start of `.upd_info` (the rest of its 1024 bytes are zero).
    pub update_info: Vec<u8>,
    /// Zero bytes of `.text` before the other sections, to give the runtime
    /// a realistic size.
    pub text_len: usize,
}

impl StubRuntime {
    /// A 64-bit x86_64 type 2 runtime with empty update information.
    pub fn type2() -> StubRuntime {
        StubRuntime {
            bits: 64,
            magic: Some(2),
            machine: 62,
            update_info: Vec::new(),
            text_len: 4096,
        }
    }

    /// A 32-bit i386 type 2 runtime.
    pub fn type2_elf32() -> StubRuntime {
        StubRuntime {
            bits: 32,
            machine: 3,
            ..StubRuntime::type2()
        }
    }

    /// The runtime's bytes; the ELF ends at the last byte.
    pub fn bytes(&self) -> Vec<u8> {
        let sixty_four = self.bits == 64;
        let ehsize: usize = if sixty_four { 64 } else { 52 };
        let shentsize: usize = if sixty_four { 64 } else { 40 };
        let mut upd = self.update_info.clone();
        upd.resize(upd.len().max(1024), 0);
        let names = b"\0.text\0.upd_info\0.sha256_sig\0.sig_key\0.shstrtab\0".to_vec();
        // (name offset in `names`, sh_type, contents)
        let sections: Vec<(u32, u32, Vec<u8>)> = vec![
            (1, 1, vec![0u8; self.text_len]),
            (7, 7, upd),
            (17, 7, vec![0u8; 1024]),
            (29, 7, vec![0u8; 8192]),
            (38, 3, names),
        ];
        let mut out = vec![0u8; ehsize];
        let mut headers: Vec<(u32, u32, u64, u64)> = vec![(0, 0, 0, 0)];
        for (name, kind, data) in &sections {
            while !out.len().is_multiple_of(16) {
                out.push(0);
            }
            headers.push((*name, *kind, out.len() as u64, data.len() as u64));
            out.extend_from_slice(data);
        }
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        for (name, kind, offset, size) in &headers {
            let mut h = vec![0u8; shentsize];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            if sixty_four {
                h[0x18..0x20].copy_from_slice(&offset.to_le_bytes());
                h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
                h[0x30..0x38].copy_from_slice(&1u64.to_le_bytes());
            } else {
                h[0x10..0x14].copy_from_slice(&(*offset as u32).to_le_bytes());
                h[0x14..0x18].copy_from_slice(&(*size as u32).to_le_bytes());
                h[0x20..0x24].copy_from_slice(&1u32.to_le_bytes());
            }
            out.extend_from_slice(&h);
        }
        let shnum = headers.len() as u16;
        let shstrndx = shnum - 1;
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = if sixty_four { 2 } else { 1 };
        out[5] = 1; // little endian
        out[6] = 1; // EV_CURRENT
        if let Some(t) = self.magic {
            out[8..11].copy_from_slice(&[b'A', b'I', t]);
        }
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&self.machine.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        if sixty_four {
            out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
            out[0x34..0x36].copy_from_slice(&(ehsize as u16).to_le_bytes());
            out[0x3A..0x3C].copy_from_slice(&(shentsize as u16).to_le_bytes());
            out[0x3C..0x3E].copy_from_slice(&shnum.to_le_bytes());
            out[0x3E..0x40].copy_from_slice(&shstrndx.to_le_bytes());
        } else {
            out[0x20..0x24].copy_from_slice(&(shoff as u32).to_le_bytes());
            out[0x28..0x2A].copy_from_slice(&(ehsize as u16).to_le_bytes());
            out[0x2E..0x30].copy_from_slice(&(shentsize as u16).to_le_bytes());
            out[0x30..0x32].copy_from_slice(&shnum.to_le_bytes());
            out[0x32..0x34].copy_from_slice(&shstrndx.to_le_bytes());
        }
        out
    }
}

/// The 32 KiB ISO 9660 system area of a type 1 AppImage: a 64-bit runtime
/// with `AI\x01` magic, zero-padded; an ISO's bytes from 32768 on follow it.
pub fn type1_system_area() -> Vec<u8> {
    let mut area = StubRuntime {
        magic: Some(1),
        text_len: 1024,
        ..StubRuntime::type2()
    }
    .bytes();
    assert!(
        area.len() <= 32768,
        "the type 1 stub runtime outgrew the system area"
    );
    area.resize(32768, 0);
    area
}
