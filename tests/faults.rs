//! The source folder on a failing or slow device. A tiny FUSE file system
//! (below) serves a real folder but answers EIO for a chosen byte range of
//! one file, and can delay every read; appimagefs runs on top of it.
//! An I/O error in the backing file must give EIO for the reads that need
//! those bytes only: the rest of that app, the other apps and the mount keep
//! working. A slow device only makes reads slow.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

use crate::common::*;

/// A flat, read-only view of `dir` whose file `faulty` fails reads that
/// touch `[bad_start, bad_end)`, and whose every read waits `delay_ms`.
struct FaultyFs {
    files: Vec<(Vec<u8>, PathBuf)>,
    faulty: Vec<u8>,
    bad: (u64, u64),
    delay_ms: Arc<AtomicU64>,
}

fn attr_of(ino: u64, path: Option<&Path>) -> FileAttr {
    let (size, kind, perm) = match path {
        Some(p) => {
            let m = std::fs::metadata(p).unwrap();
            (m.size(), FileType::RegularFile, (m.mode() & 0o777) as u16)
        }
        None => (0, FileType::Directory, 0o755),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl FaultyFs {
    fn file(&self, ino: INodeNo) -> Option<&(Vec<u8>, PathBuf)> {
        self.files.get((ino.0 as usize).checked_sub(2)?)
    }
}

impl Filesystem for FaultyFs {
    fn lookup(&self, _r: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (parent == INodeNo::ROOT)
            .then(|| {
                self.files
                    .iter()
                    .position(|(n, _)| n.as_slice() == name.as_bytes())
            })
            .flatten();
        match found {
            Some(i) => reply.entry(
                &Duration::ZERO,
                &attr_of(i as u64 + 2, Some(&self.files[i].1)),
                Generation(0),
            ),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _r: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT {
            return reply.attr(&Duration::ZERO, &attr_of(1, None));
        }
        match self.file(ino) {
            Some((_, p)) => reply.attr(&Duration::ZERO, &attr_of(ino.0, Some(p))),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _r: &Request, ino: INodeNo, _f: OpenFlags, reply: ReplyOpen) {
        match self.file(ino) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _r: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _f: OpenFlags,
        _l: Option<LockOwner>,
        reply: ReplyData,
    ) {
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::Relaxed)));
        let Some((name, path)) = self.file(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let end = offset + u64::from(size);
        if *name == self.faulty && offset < self.bad.1 && end > self.bad.0 {
            return reply.error(Errno::EIO);
        }
        let f = std::fs::File::open(path).unwrap();
        let mut buf = vec![0u8; size as usize];
        let n = f.read_at(&mut buf, offset).unwrap_or(0);
        reply.data(&buf[..n]);
    }

    fn readdir(
        &self,
        _r: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        for (i, (name, _)) in self.files.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(i as u64 + 2),
                i as u64 + 1,
                FileType::RegularFile,
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }
}

/// An AppImage holding a 4 MiB incompressible `big.bin` (its data blocks
/// come first in the image) and a small `small.txt`.
fn build_app(tmp: &TempDir) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let tree = tmp.subdir("tree");
    let big = pseudo_random(7, 4 << 20);
    let small = b"small file, read from a fragment\n".to_vec();
    std::fs::write(tree.join("big.bin"), &big).unwrap();
    std::fs::write(tree.join("small.txt"), &small).unwrap();
    std::fs::write(tree.join("AppRun"), "#!/bin/sh\necho ok\n").unwrap();
    std::fs::set_permissions(tree.join("AppRun"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sqfs = tmp.join("faulty.sqfs");
    mksquashfs(&tree, &sqfs, &["-comp", "zstd"]);
    let image = tmp.join("faulty.AppImage");
    wrap_squashfs_as_appimage(&sqfs, &image);
    (image, big, small)
}

#[test]
fn io_errors_in_the_backing_file_fail_only_the_reads_that_need_them() {
    let tmp = TempDir::new("faults");
    let (image, big, small) = build_app(&tmp);
    let real = tmp.subdir("real");
    std::fs::copy(&image, real.join("faulty.AppImage")).unwrap();
    copy_sample_app("echo", &real, "Echo.AppImage");
    let offset = type2_runtime().len() as u64;
    // 1..2 MiB into big.bin's data: the first block of it starts right after
    // the superblock.
    let bad = (offset + (1 << 20), offset + (2 << 20));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let files = ["Echo.AppImage", "faulty.AppImage"]
        .iter()
        .map(|n| (n.as_bytes().to_vec(), real.join(n)))
        .collect();
    let fs = FaultyFs {
        files,
        faulty: b"faulty.AppImage".to_vec(),
        bad,
        delay_ms: delay_ms.clone(),
    };
    let device = tmp.subdir("device");
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("faulty".into()),
    ];
    config.n_threads = Some(4);
    let session = fuser::spawn_mount(fs, &device, &config).expect("mount the faulty test fs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&device).map(|d| d.count()).unwrap_or(0) < 2
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }

    let mnt = tmp.subdir("mnt");
    let mut mount = Mount::start(&device, &mnt, &["-o", "cache_size=1M"]);
    let app = mnt.join("faulty");
    let f = std::fs::File::open(app.join("big.bin")).expect("open big.bin");
    let mut head = vec![0u8; 256 * 1024];
    f.read_exact_at(&mut head, 0)
        .expect("bytes before the bad range read fine");
    assert_eq!(head, big[..head.len()]);
    let mut mid = vec![0u8; 64 * 1024];
    let err = f
        .read_exact_at(&mut mid, 3 << 19)
        .expect_err("bytes stored in the bad range");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let mut tail = vec![0u8; 64 * 1024];
    let tail_at = (big.len() - tail.len()) as u64;
    f.read_exact_at(&mut tail, tail_at)
        .expect("bytes after the bad range read fine");
    assert_eq!(tail, big[big.len() - tail.len()..]);
    assert_eq!(std::fs::read(app.join("small.txt")).unwrap(), small);
    let echo = run_timeout(
        std::process::Command::new(mnt.join("Echo/AppRun")).arg("still"),
        Duration::from_secs(30),
    );
    assert_eq!(echo.stdout_text().trim(), "still", "{}", echo.describe());

    // A slow device: every read of the source waits 200 ms; reads are slow
    // but correct, and nothing times out.
    delay_ms.store(200, Ordering::Relaxed);
    let started = Instant::now();
    let mut late = vec![0u8; 128 * 1024];
    f.read_exact_at(&mut late, (3 << 20) + 4096)
        .expect("slow read");
    assert_eq!(late, big[(3 << 20) + 4096..(3 << 20) + 4096 + late.len()]);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the read did not go to the slow device"
    );
    delay_ms.store(0, Ordering::Relaxed);

    assert!(mount.is_alive(), "the daemon died:\n{}", mount.log_text());
    drop(f);
    drop(mount);
    drop(session);
}
