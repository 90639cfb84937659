//! The one integration-test binary of appimagefs (`cargo test --test tests`).
//!
//! Everything runs as root (FUSE, loop mounts, unsquashfs restoring owners).
//! Where new tests belong:
//!
//! - `common`: shared helpers only (no tests): fixtures + MANIFEST.tsv, temp
//!   dirs, `Mount` guard, snapshots and tree diffs, image builders, wrapping,
//!   ground-truth extractors.
//! - `comparator`: self-tests of the snapshot/diff machinery against the
//!   kernel's own squashfs driver; they do not need the binary, so a
//!   comparator bug cannot hide a filesystem bug.
//! - `squashfs_tree`: type 2 payloads (fixtures + built edge-case images),
//!   one mount, every app folder vs unsquashfs; hard links, xattrs, reads.
//! - `iso_tree`: type 1 payloads (fixtures + wrapped ISOs) vs xorriso.
//! - `dwarfs_tree`: DwarFS payloads (uruntime) packed at test time vs the
//!   folders they were packed from.
//! - `run_app`: executing `AppRun` through the mount vs
//!   `--appimage-extract-and-run`.
//! - `hostile`: malicious/broken inputs next to good ones: no crash, no hang,
//!   no escape.
//! - `cli`: command line, mount lifecycle, mount options, read-only-ness.
//! - `live`: the source folder changing under a mount (add/rm/mv/overwrite
//!   under concurrent readers, slow copies, running apps, bursts).
//! - `menu`: bin/ launchers and share/ menu entries vs the AppImage runtime,
//!   hostile names, versions, opt-outs, and a GUI app under Xvfb.
//! - `faults`: the source folder on a failing or slow device (a test FUSE
//!   file system injecting EIO and delays under appimagefs).
//! - `security`: setuid bits and device nodes in images never take effect;
//!   a normal user's mount is private.
//! - `stress`: many parallel readers, walks and launches checked byte for
//!   byte with memory measured; SIGTERM during heavy reads.
//! - `warm`: files being read are stored into the kernel's page cache whole,
//!   with their own bytes.

mod common;

mod cli;
mod comparator;
mod dwarfs_tree; // issue 16: DwarFS payloads vs the folders they were packed from
mod faults; // issue 7: I/O errors and slow reads in the backing file
mod hostile;
mod iso_tree;
mod live; // issue 6: live source folder
mod menu; // issue 5: launchers, menu entries, GUI smoke test
mod run_app;
mod security; // issue 7: nosuid, nodev, private user mounts
mod squashfs_tree;
mod stress; // issue 7: load and signals under load
mod warm; // issue 3: files pushed into the page cache
