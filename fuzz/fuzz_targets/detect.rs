//! AppImage detection (ELF section headers, payload offset, type 1 or 2) on
//! arbitrary bytes. What `detect` accepts must describe a payload that lies
//! inside the file; nothing may panic.
#![no_main]

use appimagefs::detect::{detect, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = appimagefs_fuzz::as_file(data);
    let len = data.len() as u64;
    let Ok(found) = detect(&file) else {
        return;
    };
    assert!(
        found.elf.end <= len,
        "ELF end {} past the file",
        found.elf.end
    );
    for s in &found.elf.sections {
        let _ = appimagefs::detect::elf::machine_name(found.elf.machine);
        let _ = &s.name;
    }
    match &found.payload {
        Payload::SquashFs { offset, superblock } => {
            assert!(found.kind() == 2);
            let end = offset.checked_add(superblock.bytes_used);
            assert!(
                end.is_some_and(|e| e <= len),
                "squashfs at {offset} using {} bytes passes the end of {len}",
                superblock.bytes_used
            );
        }
        Payload::Dwarfs {
            offset,
            len: l,
            version,
        } => {
            assert!(found.kind() == 2);
            assert_eq!(
                offset.checked_add(*l),
                Some(len),
                "dwarfs at {offset} of {l} bytes does not end with the file ({len})"
            );
            assert!(
                appimagefs::dwarfs::section::check_version(version.0, version.1).is_ok(),
                "dwarfs format {version:?} accepted"
            );
        }
        Payload::Iso9660 { len: l } => {
            assert!(found.kind() == 1);
            assert_eq!(*l, len);
        }
    }
});
