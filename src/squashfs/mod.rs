//! SquashFS 4.0 reader (type 2 AppImage payloads).

pub mod superblock;
