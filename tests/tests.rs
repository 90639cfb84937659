//! The one integration-test binary of appimagefs (`cargo test --test tests`).
//!
//! Everything runs as root (FUSE, loop mounts, unsquashfs restoring owners).
//! Where new tests belong:
//!
//! - `common`: shared helpers only (no tests): temp dirs, `Mount` guard,
//!   snapshots and tree diffs, image builders (edge-case SquashFS and ISO
//!   images, sample apps, hostile images), wrapping, ground-truth
//!   extractors. Every image is built at test time; the real-world corpus
//!   is the separate opt-in target `corpus` (tests/corpus).
//! - `comparator`: self-tests of the snapshot/diff machinery against the
//!   kernel's own squashfs driver; they do not need the binary, so a
//!   comparator bug cannot hide a filesystem bug.
//! - `squashfs_tree`: type 2 payloads (built edge-case images + sample
//!   apps), one mount, every app folder vs unsquashfs; hard links, xattrs,
//!   reads.
//! - `iso_tree`: type 1 payloads (a sample type 1 app + built ISOs) vs
//!   xorriso.
//! - `run_app`: executing `AppRun` through the mount vs the payload
//!   extracted by unsquashfs/xorriso, for every way of wrapping an app.
//! - `dwarfs_tree`: DwarFS payloads (uruntime) packed at test time vs the
//!   folders they were packed from.
//! - `hostile`: malicious/broken inputs next to good ones: no crash, no hang,
//!   no escape.
//! - `entry_ttl`: how long the kernel keeps names of the root, counted
//!   with the FUSE tracepoints.
//! - `inspect`: `appimagefs inspect` vs a real mount of the same files.
//! - `admin`: what an admin sees from outside: the mount type in
//!   /proc/mounts, the log lines of a start.
//! - `cache_dir`: `--cache-dir`, blocks decoded by one daemon read back by
//!   the next, never for a replaced AppImage.
//! - `cli`: command line, mount lifecycle, mount options, read-only-ness.
//! - `live`: the source folder changing under a mount (add/rm/mv/overwrite
//!   under concurrent readers, slow copies, running apps, bursts).
//! - `menu`: bin/ launchers and share/ menu entries vs the extracted payload
//!   run as a runtime would, hostile names, versions, opt-outs, actions, and
//!   a GUI app under Xvfb (apps built by `common::apps`).
//! - `desktop`: issue 17: a launcher per version, DESKTOPINTEGRATION,
//!   per-app `.env` settings, file types under share/mime (AppImages built
//!   at test time).
//! - `faults`: the source folder on a failing or slow device (a test FUSE
//!   file system injecting EIO and delays under appimagefs).
//! - `security`: setuid bits and device nodes in images never take effect;
//!   a normal user's mount is private.
//! - `stress`: many parallel readers, walks and launches checked byte for
//!   byte with memory measured; SIGTERM during heavy reads.
//! - `scale`: thousands of AppImages under a low open-file limit, few
//!   request threads, permission changes of an AppImage.
//! - `warm`: files being read are stored into the kernel's page cache whole,
//!   with their own bytes.

mod common;

mod admin; // issue 19: mount type, start-up log lines
mod cache_dir; // issue 18: decoded blocks kept on disk across daemons
mod cli;
mod comparator;
mod desktop; // issue 17: versions, .env, MIME types, browser sandbox
mod dwarfs_tree;
mod entry_ttl; // issue 15 item 6: names in the root expire within a second // issue 16: DwarFS payloads vs the folders they were packed from
mod faults; // issue 7: I/O errors and slow reads in the backing file
mod hostile;
mod inspect; // issue 15: inspect says what a mount of the same files synthesizes
mod iso_tree;
mod live; // issue 6: live source folder
mod menu; // issue 5: launchers, menu entries, GUI smoke test
mod requests; // issue 18: what a second use of an app still asks the daemon
mod run_app;
mod scale; // issue 15: many AppImages, few descriptors, concurrency, permissions
mod security; // issue 7: nosuid, nodev, private user mounts
mod squashfs_tree;
mod stress; // issue 7: load and signals under load
mod warm; // issue 3: files pushed into the page cache
