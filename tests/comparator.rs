//! The comparator, checked against the kernel's squashfs driver (no
//! appimagefs binary involved): a loop mount of an image must equal
//! unsquashfs's extraction of it, and mutations of an extraction must be
//! detected field by field.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn kernel_vs_unsquashfs(
    image: &Path,
    offset: u64,
    tmp: &TempDir,
    tag: &str,
) -> (Snapshot, Snapshot) {
    let ext = tmp.join(format!("{tag}-extracted"));
    unsquashfs_extract(image, offset, &ext).unwrap_or_else(|e| panic!("{e}"));
    let mnt = tmp.subdir(&format!("{tag}-mnt"));
    let km = KernelMount::new("squashfs", image, offset, &mnt);
    let dir = km.dir.clone();
    let actual = must_finish(
        "snapshot kernel mount",
        Duration::from_secs(120),
        move || snapshot(&dir),
    );
    drop(km);
    (snapshot(&ext), actual)
}

/// A sample AppImage (payload at an offset) and the full edge-case image:
/// the kernel's view equals unsquashfs's extraction in every field.
#[test]
fn kernel_squashfs_equals_unsquashfs_extraction() {
    let tmp = TempDir::new("cmp-kernel");
    let echo = sample_app("echo");
    let (e, a) = kernel_vs_unsquashfs(&echo.image, echo.offset, &tmp, "echo");
    assert!(
        e.entries.len() >= 10,
        "Echo extraction has too few entries: {}",
        e.entries.len()
    );
    assert_trees_equal(&e, &a);

    // The edge image exercises every field: owners, setuid, >i32 mtimes,
    // devices, fifo, socket, xattrs, hard links (incl. a hard-linked symlink).
    let edge = built_image("edge");
    let (e, a) = kernel_vs_unsquashfs(&edge.sqfs, 0, &tmp, "edge");
    // The root directory's metadata is compared too: both sides take it from
    // the image.
    assert_trees_equal(&e, &a);
    // Make sure the features are really present in the expected tree, so the
    // equality above is not vacuous.
    let get = |p: &str| {
        e.get(p)
            .unwrap_or_else(|| panic!("edge extraction lacks {p}"))
    };
    assert_eq!(get("meta/setuid").perm, 0o4755);
    assert_eq!(
        (get("meta/bigid").uid, get("meta/bigid").gid),
        (3_000_000_000, 3_000_000_001)
    );
    assert_eq!(get("meta/future").mtime, 4_102_444_800);
    assert_eq!(get("special/null").kind, Kind::CharDev);
    assert_eq!(get("special/bigdev").rdev, libc::makedev(300, 70000));
    assert_eq!(get("special/fifo").kind, Kind::Fifo);
    assert_eq!(get("special/sock").kind, Kind::Socket);
    assert_eq!(get("links/a").nlink, 3);
    assert_eq!(get("sym/long4000").target.as_ref().unwrap().len(), 4000);
    assert_eq!(get("xattr/multi").xattrs.as_ref().unwrap().len(), 3);
    let mut group: Vec<Vec<u8>> = EDGE_HARDLINKS
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    group.sort();
    assert!(
        e.link_groups.contains(&group),
        "hard-link group missing from the extraction: {:?}",
        e.link_groups
    );
    assert!(
        e.link_groups.len() >= 2,
        "expected file and empty-file link groups: {:?}",
        e.link_groups
    );
}

fn expect_difference(tmp: &TempDir, what: &str, field: &str, mutate: impl FnOnce(&Path)) {
    let src = built_image_extraction("edge");
    let copy = tmp.join(format!("copy-{what}"));
    let out = run_timeout(
        &mut command(
            "cp",
            [
                std::ffi::OsStr::new("-a"),
                src.as_os_str(),
                copy.as_os_str(),
            ],
        ),
        Duration::from_secs(60),
    );
    assert!(out.success(), "cp -a failed: {}", out.describe());
    let expected = snapshot(&src);
    let pristine = snapshot(&copy);
    assert!(
        compare_trees(&expected, &pristine, &Compare::ALL).is_none(),
        "cp -a copy differs before mutation:\n{}",
        compare_trees(&expected, &pristine, &Compare::ALL).unwrap()
    );
    mutate(&copy);
    let actual = snapshot(&copy);
    let diffs = diff_snapshots(&expected, &actual, &Compare::ALL);
    assert!(
        diffs.iter().any(|d| d.fields.contains(&field)),
        "mutation '{what}' was not detected as a '{field}' difference; diffs: {:?}",
        diffs
    );
    // The report is readable and bounded.
    let report = format_differences(&expected, &actual, &diffs, 20);
    assert!(
        report.contains(field),
        "report does not name the field: {report}"
    );
    // assert_trees_equal must panic.
    let r = std::panic::catch_unwind(|| assert_trees_equal(&expected, &actual));
    assert!(r.is_err(), "assert_trees_equal accepted mutation '{what}'");
}

/// Every kind of mutation of a copied extraction is detected and named.
#[test]
fn comparator_detects_differences() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("cmp-mutate");
    expect_difference(&tmp, "content", "content", |c| {
        // Same size and mtime: only the content hash can tell.
        let p = c.join("frag/tail");
        let mtime = std::os::unix::fs::MetadataExt::mtime(&std::fs::metadata(&p).unwrap());
        let mut data = std::fs::read(&p).unwrap();
        data[200_000] ^= 1;
        std::fs::write(&p, data).unwrap();
        set_mtime(&p, mtime);
    });
    expect_difference(&tmp, "perm", "perm", |c| {
        std::fs::set_permissions(
            c.join("meta/setuid"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    });
    expect_difference(&tmp, "owner", "owner", |c| {
        std::os::unix::fs::lchown(c.join("meta/old-symlink"), Some(1), None).unwrap();
    });
    expect_difference(&tmp, "mtime", "mtime", |c| {
        set_mtime(&c.join("meta/future"), 4_102_444_801)
    });
    expect_difference(&tmp, "missing", "missing", |c| {
        std::fs::remove_file(c.join("frag/small-3")).unwrap()
    });
    expect_difference(&tmp, "extra", "extra", |c| {
        std::fs::write(c.join("empty-dir/new"), b"").unwrap()
    });
    expect_difference(&tmp, "target", "target", |c| {
        std::fs::remove_file(c.join("sym/rel")).unwrap();
        std::os::unix::fs::symlink("../frag/tai1", c.join("sym/rel")).unwrap();
    });
    expect_difference(&tmp, "xattr", "xattrs", |c| {
        set_xattr(&c.join("xattr/multi"), "user.b", b"changed")
    });
    expect_difference(&tmp, "kind", "kind", |c| {
        std::fs::remove_file(c.join("special/fifo")).unwrap();
        std::fs::write(c.join("special/fifo"), b"").unwrap();
    });
    expect_difference(&tmp, "hardlink", "link_group", |c| {
        // Break one name out of the hard-link group, same content.
        let p = c.join("links/c");
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"hardlinked\n").unwrap();
    });
    expect_difference(&tmp, "nlink", "nlink", |c| {
        std::fs::hard_link(c.join("frag/small-1"), tmp.join("outside-link")).unwrap();
    });
    expect_difference(&tmp, "rdev", "rdev", |c| {
        let p = c.join("special/null");
        std::fs::remove_file(&p).unwrap();
        let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(cp.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) },
            0
        );
    });
    expect_difference(&tmp, "size", "size", |c| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(c.join("sparse/holes"))
            .unwrap();
        f.set_len((10 << 20) + 1).unwrap();
    });
}

/// The name checks of the walker: a snapshot records no errors for a clean
/// tree, and the Compare presets differ where documented.
#[test]
fn snapshot_of_extraction_is_clean() {
    let ext = built_image_extraction("edge");
    let s = snapshot(&ext);
    assert!(
        s.errors().is_empty(),
        "errors walking a local tree: {:?}",
        s.errors()
    );
    assert!(s.foreign_devices().is_empty());
    assert!(
        s.get(&format!("names/{}", long_name())).is_some(),
        "255-byte name missing"
    );
    assert!(
        s.entries.keys().any(|k| k.ends_with(b"bad\xff\xfename")),
        "non-UTF-8 name missing"
    );
    let iso = Compare::iso(false);
    assert!(!iso.perm && !iso.owner && !iso.nlink && iso.content && iso.mtime);
}

/// App folder names: the file name without a case-insensitive `.AppImage`.
#[test]
fn app_names_drop_the_appimage_suffix() {
    assert_eq!(app_name("Foo.AppImage"), "Foo");
    assert_eq!(app_name("foo.appimage"), "foo");
    assert_eq!(app_name("foo.APPIMAGE"), "foo");
    assert_eq!(app_name("foo"), "foo");
    assert_eq!(app_name(".AppImage"), ".AppImage");
    assert_eq!(app_name("a.AppImage.AppImage"), "a.AppImage");
}
