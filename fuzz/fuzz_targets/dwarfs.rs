//! A bare DwarFS image (what follows the runtime in a uruntime AppImage):
//! the section list, the metadata decoder and the checked index, then
//! every data path (each codec, pages of blocks) through a bounded walk,
//! then desktop integration. Section checksums are recomputed first, so
//! mutations reach the parsers behind them instead of stopping at the
//! XXH3 check.
#![no_main]

use std::sync::Arc;

use appimagefs::backing::Backing;
use appimagefs::dwarfs;
use libfuzzer_sys::fuzz_target;

/// Recomputes the fast (XXH3-64) checksum of every section header.
fn reseal(data: &mut [u8]) {
    use ::dwarfs::section::Header;
    use ::dwarfs::zerocopy::FromBytes;
    let mut at = 0usize;
    for _ in 0..4096 {
        let Some(raw) = data.get(at..at + 64) else { return };
        let Ok(header) = Header::read_from_bytes(raw) else { return };
        let size = header.payload_size.get() as usize;
        let Some(payload) = data.get(at + 64..(at + 64).saturating_add(size)) else {
            return;
        };
        let Ok(hash) = header.calculate_fast_checksum(payload) else { return };
        data[at + 40..at + 48].copy_from_slice(&hash);
        at += 64 + size;
    }
}

fuzz_target!(|input: &[u8]| {
    let mut data = input.to_vec();
    reseal(&mut data);
    let file = Arc::new(appimagefs_fuzz::as_file(&data));
    let backing = Backing::new(file, 0, data.len() as u64);
    let Ok(image) = dwarfs::open(backing, appimagefs_fuzz::cache()) else {
        return;
    };
    appimagefs_fuzz::walk(&image);
    appimagefs_fuzz::integrate(&image);
});
