//! appimagefs: mount a directory of AppImages as one read-only tree.
//!
//! The crate is layered; each layer is usable and testable without the ones
//! above it:
//!
//! - [`detect`], [`squashfs`], [`iso9660`]: pure format parsing (no FUSE,
//!   no global state).
//! - [`tree`]: the trait every image format implements, one image as a
//!   read-only tree; [`backing`] and [`decompress`] are its building blocks.
//! - [`cache`]: the decompression cache shared by every image.
//! - [`union`]: the namespace across images (inode numbers, app folders,
//!   synthesized `bin/` and `share/`).
//! - [`fuse_adapter`]: a thin `fuser::Filesystem` over [`union`].
//! - [`cli`], [`daemon`]: the command line and the mount lifecycle.
#![deny(missing_docs)]

pub mod backing;
pub mod cache;
pub mod cli;
pub mod daemon;
pub mod decompress;
pub mod desktop;
pub mod detect;
pub mod error;
pub mod fuse_adapter;
pub mod image;
pub mod inspect;
pub mod iso9660;
pub mod log;
pub mod prefetch;
pub mod squashfs;
pub mod tree;
pub mod union;
pub mod watch;
