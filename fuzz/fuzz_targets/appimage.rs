//! A whole AppImage file, as the union serves it: detection, opening the
//! payload's reader (SquashFS or ISO 9660), a bounded walk of every node,
//! and the desktop integration built from it.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = Arc::new(appimagefs_fuzz::as_file(data));
    let Ok(found) = appimagefs::detect::detect(&file) else {
        return;
    };
    let Ok(tree) = appimagefs::image::open_tree(&file, &found, appimagefs_fuzz::cache()) else {
        return;
    };
    appimagefs_fuzz::walk(tree.as_ref());
    appimagefs_fuzz::integrate(tree.as_ref());
});
