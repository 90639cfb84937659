//! A bare SquashFS image (what follows the runtime in a type 2 AppImage):
//! superblock parsing, then every metadata and data path of the reader
//! (inodes, directory listings, block lists, fragments, id and xattr
//! tables, every codec) through a bounded walk, then desktop integration.
#![no_main]

use std::sync::Arc;

use appimagefs::backing::Backing;
use appimagefs::squashfs::{
    self,
    superblock::{Superblock, SUPERBLOCK_SIZE},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < SUPERBLOCK_SIZE {
        return;
    }
    let len = data.len() as u64;
    let Ok(sb) = Superblock::parse(&data[..SUPERBLOCK_SIZE], len) else {
        return;
    };
    let file = Arc::new(appimagefs_fuzz::as_file(data));
    let backing = Backing::new(file, 0, sb.bytes_used);
    let Ok(image) = squashfs::open(backing, sb, appimagefs_fuzz::cache()) else {
        return;
    };
    appimagefs_fuzz::walk(&image);
    appimagefs_fuzz::integrate(&image);
});
