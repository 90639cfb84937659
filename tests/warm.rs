//! Page-cache warming (issue 3): once a program has read a big file twice,
//! the daemon stores the rest of it into the kernel's page cache, so later
//! page faults never reach the daemon. What it stores must be the file's own
//! bytes, for every block size and codec.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::images::{mksquashfs, pseudo_random, wrap_squashfs_as_appimage};
use crate::common::mount::Mount;
use crate::common::{residency, Failures, TempDir};

/// The packings every test here runs on: the largest and a small block
/// size, and the three codecs.
const PACKINGS: [(&str, &[&str]); 3] = [
    ("xz-1m", &["-comp", "xz", "-b", "1M"]),
    ("zstd-128k", &["-comp", "zstd", "-b", "128K"]),
    ("gzip-4k", &["-comp", "gzip", "-b", "4K"]),
];

/// `tree` packed as each of [`PACKINGS`] into an AppImage named after it,
/// all mounted together.
fn mount_packings(tmp: &TempDir, tree: &Path) -> Mount {
    let src = tmp.subdir("src");
    for (name, args) in PACKINGS {
        let sqfs = tmp.join(format!("{name}.sqfs"));
        mksquashfs(tree, &sqfs, args);
        wrap_squashfs_as_appimage(&sqfs, &src.join(format!("{name}.AppImage")));
    }
    Mount::start(&src, &tmp.subdir("mnt"), &[])
}

/// Two small reads of an 8 MiB file make the daemon put the whole file
/// into the page cache (the kernel's own read-ahead would bring in a few
/// hundred KiB), and the cached bytes are the file's. The highest
/// residency seen is what counts: this machine kind reclaims idle page
/// cache on its own within seconds.
#[test]
fn two_reads_bring_a_whole_file_into_the_page_cache() {
    let tmp = TempDir::new("warm");
    let tree = tmp.subdir("tree");
    let data = pseudo_random(33, (8 << 20) + 1234);
    std::fs::write(tree.join("big.bin"), &data).expect("write big.bin");
    let m = mount_packings(&tmp, &tree);
    let mut fails = Failures::new();
    for (name, _) in PACKINGS {
        let path = m.mountpoint.join(name).join("big.bin");
        let f = std::fs::File::open(&path).expect("open big.bin");
        let mut buf = [0u8; 4096];
        for offset in [0u64, (3 << 20) + 5] {
            f.read_exact_at(&mut buf, offset).expect("read big.bin");
            let at = offset as usize;
            fails.check(buf[..] == data[at..at + 4096], || {
                format!("{name}: wrong bytes at {offset}")
            });
        }
        let start = Instant::now();
        let mut best = 0.0f64;
        while best < 0.99 && start.elapsed() < Duration::from_secs(30) {
            let (resident, all) = residency(&path);
            best = best.max(resident as f64 / all as f64);
            std::thread::sleep(Duration::from_millis(2));
        }
        fails.check(best >= 0.9, || {
            format!(
                "{name}: at most {:.0}% of the file reached the page cache",
                best * 100.0
            )
        });
        let whole = std::fs::read(&path).expect("read whole big.bin");
        fails.check(whole == data, || {
            let at = whole.iter().zip(&data).position(|(a, b)| a != b);
            format!(
                "{name}: contents differ (length {}, first difference at {at:?})",
                whole.len()
            )
        });
    }
    fails.finish("page-cache warming");
}

/// `isatty()` right after an open (what stdio and Python do) has a small
/// file stored whole into the page cache by a warming thread, so the read
/// that follows usually costs no round trip; a file over the limit is left to
/// its reads. Either way the bytes read are the file's.
#[test]
fn an_isatty_after_open_brings_a_small_file_into_the_page_cache() {
    use std::os::fd::AsRawFd;
    let tmp = TempDir::new("warm-open");
    let tree = tmp.subdir("tree");
    let small = pseudo_random(7, (100 << 10) + 3);
    let large = pseudo_random(8, 300 << 10);
    std::fs::write(tree.join("small.pyc"), &small).expect("write small.pyc");
    std::fs::write(tree.join("large.bin"), &large).expect("write large.bin");
    let m = mount_packings(&tmp, &tree);
    let mut fails = Failures::new();
    for (name, _) in PACKINGS {
        for (file, data, stored) in [("small.pyc", &small, true), ("large.bin", &large, false)] {
            let path = m.mountpoint.join(name).join(file);
            let f = std::fs::File::open(&path).expect("open");
            let mut tio = std::mem::MaybeUninit::<libc::termios>::uninit();
            // SAFETY: TCGETS writes at most one termios into `tio`.
            let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, tio.as_mut_ptr()) };
            let err = std::io::Error::last_os_error();
            fails.check(rc == -1 && err.raw_os_error() == Some(libc::ENOTTY), || {
                format!("{name}/{file}: isatty gave {rc}, {err}")
            });
            // A warming thread stores the file (never the request thread
            // answering the ioctl): give it a moment.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let (mut resident, all) = residency(&path);
            while stored && resident < all && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
                resident = residency(&path).0;
            }
            let want = if stored { all } else { 0 };
            fails.check(resident == want, || {
                format!(
                    "{name}/{file}: {resident} of {all} pages cached after isatty, expected {want}"
                )
            });
            let read = std::fs::read(&path).expect("read");
            fails.check(read == *data, || format!("{name}/{file}: contents differ"));
        }
    }
    fails.finish("stores at open");
}
