//! appimagefs: mount a directory of AppImages as one read-only tree.
//!
//! The crate is layered; each layer is usable and testable without the ones
//! above it:
//!
//! - [`detect`], [`squashfs`], [`iso9660`], [`desktop`]: pure format parsing
//!   (ELF and AppImage detection, SquashFS, ISO 9660 / Rock Ridge / zisofs,
//!   desktop entries); no FUSE, no global state.
//! - [`tree`]: the trait every image format implements, one image as a
//!   read-only tree; [`backing`] (bounded, version-pinned reads) and
//!   [`decompress`] (bounded codecs) are its building blocks, [`image`]
//!   picks the reader for a detected payload.
//! - [`cache`], [`prefetch`] and [`disk_cache`]: the decompression cache
//!   shared by every image, its read-ahead pool, and the blocks it keeps on
//!   disk across daemons (`--cache-dir`); [`profile`]: start-up profiles
//!   kept there and replayed through [`warm`]; [`passthrough`]: apps'
//!   start-up files kept whole there and handed to the kernel as backing
//!   files.
//! - [`union`]: the namespace across images (inode numbers, app folders,
//!   synthesized `bin/` and `share/`, rescans of the source folder).
//! - [`fuse_adapter`]: a thin `fuser::Filesystem` over [`union`] ([`caller`]
//!   finds the groups of the process behind a request); [`watch`]
//!   follows the source folder and tells the kernel what changed; [`warm`]
//!   stores files being read into the kernel's page cache.
//! - [`cli`], [`daemon`], [`inspect`], [`log`]: the command line, the mount
//!   lifecycle, `appimagefs inspect`, log lines.
#![deny(missing_docs)]

pub mod backing;
pub mod cache;
pub mod caller;
pub mod cli;
pub mod daemon;
pub mod decompress;
pub mod desktop;
pub mod detect;
pub mod disk_cache;
pub mod dwarfs;
pub mod error;
pub mod fd_pool;
pub mod fuse_adapter;
pub mod image;
pub mod inspect;
pub mod iso9660;
pub mod kernel_mount;
pub mod log;
pub mod passthrough;
pub mod prefetch;
pub mod profile;
pub mod request_counts;
pub mod squashfs;
pub mod tree;
pub mod union;
pub mod warm;
pub mod watch;

#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod test_support;
