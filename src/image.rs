//! Opening the right reader for a detected AppImage: the one place that
//! knows which payload format goes with which [`ImageTree`] implementation.

use std::sync::Arc;

use crate::backing::{Backing, Descriptor};
use crate::cache::BlockCache;
use crate::detect::{AppImage, Payload};
use crate::error::Result;
use crate::tree::ImageTree;
use crate::{dwarfs, iso9660, squashfs};

/// Opens the image tree of a detected AppImage (cheap: readers load tables
/// on demand).
pub fn open_tree(
    file: impl Into<Descriptor>,
    detected: &AppImage,
    cache: Arc<BlockCache>,
) -> Result<Arc<dyn ImageTree>> {
    let file: Descriptor = file.into();
    match &detected.payload {
        Payload::SquashFs { offset, superblock } => {
            let backing = Backing::pinned(
                file.clone(),
                *offset,
                superblock.bytes_used,
                detected.version,
            );
            Ok(Arc::new(squashfs::open(
                backing,
                superblock.clone(),
                cache,
            )?))
        }
        Payload::Dwarfs { offset, len, .. } => {
            let backing = Backing::pinned(file.clone(), *offset, *len, detected.version);
            Ok(Arc::new(dwarfs::open(backing, cache)?))
        }
        Payload::Iso9660 { len } => {
            let backing = Backing::pinned(file.clone(), 0, *len, detected.version);
            Ok(Arc::new(iso9660::open(backing, cache)?))
        }
    }
}
