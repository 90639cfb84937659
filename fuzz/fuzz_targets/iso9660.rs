//! A bare ISO 9660 image (a type 1 AppImage is one, with the runtime in its
//! system area): volume descriptors, the directory walk with Rock Ridge,
//! Joliet, SUSP continuation areas, relocated directories and zisofs, then
//! a bounded walk reading every file, then desktop integration.
#![no_main]

use std::sync::Arc;

use appimagefs::backing::Backing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Zero padding up to the declared volume size is added back here, so
    // the corpus can hold images cut after their metadata.
    let file = appimagefs_fuzz::as_iso_file(data, 64 << 20);
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let backing = Backing::new(Arc::new(file), 0, len);
    let Ok(image) = appimagefs::iso9660::open(backing, appimagefs_fuzz::cache()) else {
        return;
    };
    appimagefs_fuzz::walk(&image);
    appimagefs_fuzz::integrate(&image);
});
