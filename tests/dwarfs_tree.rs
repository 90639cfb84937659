//! DwarFS payloads (uruntime AppImages): a generated folder packed at test
//! time with dwarfs-enc (zstd with 1 MiB blocks, xz with 4 MiB blocks read
//! a page at a time, uncompressed), each wrapped behind the stand-in
//! runtime, all mounted once; each app folder must equal the folder it was
//! packed from, file by file: content, modes, owners, mtimes, symlinks,
//! device numbers, link counts and hard-link groups. A broken and an
//! unsupported DwarFS AppImage beside them give errors for themselves only.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use dwarfs_enc::section::CompressParam;

use crate::common::dwarfs::{pack_dwarfs, wrap_dwarfs_as_appimage};
use crate::common::*;

/// The source tree: nested folders, small and multi-block files, an empty
/// file, hard links across folders, symlinks (relative, absolute,
/// dangling), a fifo, device nodes, owners, modes and mtimes.
fn build_source(root: &Path) {
    let p = |rel: &str| root.join(rel);
    fs::create_dir_all(p("usr/bin")).unwrap();
    fs::create_dir_all(p("usr/share/app/empty-dir")).unwrap();
    fs::create_dir_all(p("usr/lib")).unwrap();
    fs::write(
        p("AppRun"),
        b"#!/bin/sh\nexec \"$APPDIR/usr/bin/app\" \"$@\"\n",
    )
    .unwrap();
    fs::write(p("usr/bin/app"), text(40_000, 1)).unwrap();
    fs::write(p("usr/lib/libbig.so"), pseudo_random(7, (6 << 20) + 4321)).unwrap();
    fs::write(p("usr/lib/libtext.so"), text((9 << 20) + 17, 3)).unwrap();
    fs::write(p("usr/share/app/empty"), b"").unwrap();
    for i in 0..40 {
        fs::write(
            p(&format!("usr/share/app/small-{i:02}")),
            text(100 + i * 97, i),
        )
        .unwrap();
    }
    fs::hard_link(p("usr/bin/app"), p("usr/share/app/app-hardlink")).unwrap();
    fs::hard_link(p("usr/bin/app"), p("app-hardlink-2")).unwrap();
    std::os::unix::fs::symlink("usr/bin/app", p("app-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", p("usr/abs-link")).unwrap();
    std::os::unix::fs::symlink("nothing/here", p("usr/dangling")).unwrap();
    let fifo = CString::new(p("usr/fifo").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0, "mkfifo");
    let null = CString::new(p("usr/null").as_os_str().as_bytes()).unwrap();
    let dev = libc::makedev(1, 3);
    assert_eq!(
        unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, dev) },
        0,
        "mknod"
    );
    let blk = CString::new(p("usr/disk").as_os_str().as_bytes()).unwrap();
    let dev = libc::makedev(8, 1);
    assert_eq!(
        unsafe { libc::mknod(blk.as_ptr(), libc::S_IFBLK | 0o600, dev) },
        0,
        "mknod"
    );
    for (rel, mode, uid, gid) in [
        ("AppRun", 0o755, 0, 0),
        ("usr/bin/app", 0o755, 1000, 100),
        ("usr/lib/libbig.so", 0o644, 33333, 44444),
        ("usr/share/app/empty", 0o600, 65534, 65534),
        ("usr/share/app/empty-dir", 0o700, 12, 34),
        ("usr/lib", 0o751, 0, 5),
    ] {
        std::os::unix::fs::lchown(p(rel), Some(uid), Some(gid)).unwrap();
        set_mode(&p(rel), mode);
    }
    std::os::unix::fs::lchown(p("app-link"), Some(77), Some(88)).unwrap();
    // mtimes last, deepest first, so creating entries does not change them.
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in all.iter().enumerate() {
        set_mtime(path, 1_500_000_000 + (i as i64) * 3601);
    }
    set_mtime(root, 1_600_000_000);
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            collect(&path, out);
        }
        out.push(path);
    }
}

#[test]
fn dwarfs_appimages_mount_like_their_source() {
    let tmp = TempDir::new("dwarfs-tree");
    let tree = tmp.subdir("tree");
    build_source(&tree);
    let src = tmp.subdir("src");
    let packings = [
        ("zstd", 1 << 20, CompressParam::Zstd(3)),
        ("xz", 4 << 20, CompressParam::Lzma(1)),
        ("plain", 1 << 20, CompressParam::None),
    ];
    let mut good = Vec::new();
    for (name, block, compress) in packings {
        let image = pack_dwarfs(&tree, block, compress);
        wrap_dwarfs_as_appimage(&image, &src.join(format!("{name}.AppImage")));
        good.push((name, image));
    }
    // Beside them: a truncated image and a format version from the future.
    let (_, zstd) = &good[0];
    wrap_dwarfs_as_appimage(&zstd[..zstd.len() / 2], &src.join("truncated.AppImage"));
    let mut future = zstd.clone();
    future[7] = 9;
    wrap_dwarfs_as_appimage(&future, &src.join("future.AppImage"));

    let mnt = tmp.subdir("mnt");
    let mount = Mount::start(&src, &mnt, &[]);
    let expected = snapshot(&tree);
    let cmp = Compare {
        xattrs: false,
        ..Compare::squashfs()
    };
    for (name, _) in &good {
        let actual = snapshot(&mnt.join(name));
        if let Some(diff) = compare_trees(&expected, &actual, &cmp) {
            panic!("{name}: the mounted DwarFS tree differs from its source:\n{diff}");
        }
    }
    // A broken image is an error (or an empty folder) for itself alone.
    match fs::read_dir(mnt.join("truncated")) {
        Ok(list) => {
            let names: Vec<_> = list.map(|e| e.map(|e| e.file_name())).collect();
            assert!(
                names.iter().all(|n| n.is_err()),
                "a truncated DwarFS image lists {names:?}"
            );
        }
        Err(e) => assert!(
            matches!(e.raw_os_error(), Some(libc::EIO | libc::ENOENT)),
            "truncated: {e}"
        ),
    }
    assert!(
        !mnt.join("future").exists(),
        "an unsupported format is not mounted"
    );
    let inspect = run_timeout(
        std::process::Command::new(appimagefs_bin())
            .arg("inspect")
            .arg(src.join("zstd.AppImage"))
            .arg(src.join("future.AppImage")),
        std::time::Duration::from_secs(60),
    );
    let out = inspect.stdout_text() + &inspect.stderr_text();
    assert!(out.contains("dwarfs 2.5 at offset"), "{out}");
    assert!(out.contains("zstd, block size 1048576"), "{out}");
    assert!(
        out.contains("DwarFS format 2.9 is not supported"),
        "{}",
        inspect.describe()
    );
    drop(mount);
}
