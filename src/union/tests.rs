//! The union without FUSE: a source folder of fixture AppImages, looked at
//! through the same methods the FUSE adapter calls.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::cache::BlockCache;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// A temporary source folder linking to the given fixtures.
struct Source(PathBuf);

impl Source {
    fn new(tag: &str, files: &[&str]) -> Source {
        let dir =
            std::env::temp_dir().join(format!("appimagefs-union-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            symlink(fixtures().join(f), dir.join(f)).unwrap();
        }
        Source(dir)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn union(src: &Source) -> Union {
    Union::new(
        &src.0,
        Path::new("/opt/apps"),
        Arc::new(BlockCache::new(64 << 20)),
    )
    .unwrap()
}

fn names(u: &Union, ino: u64) -> Vec<String> {
    u.readdir(ino)
        .unwrap()
        .iter()
        .map(|l| String::from_utf8_lossy(&l.name).into_owned())
        .collect()
}

fn resolve(u: &Union, path: &str) -> Entry {
    let mut e = Entry {
        ino: 1,
        attr: u.getattr(1).unwrap(),
    };
    for part in path.split('/').filter(|p| !p.is_empty()) {
        e = u
            .lookup(e.ino, part.as_bytes())
            .unwrap_or_else(|err| panic!("{path}: {part}: {err}"));
    }
    e
}

#[test]
fn apps_appear_as_folders_and_junk_is_skipped() {
    let src = Source::new(
        "basic",
        &[
            "Echo-x86_64.AppImage",
            "brotenet__appimagetool",
            "elffile",
            "MANIFEST.tsv",
        ],
    );
    let u = union(&src);
    assert_eq!(
        names(&u, 1),
        ["Echo-x86_64", "bin", "brotenet__appimagetool", "share"]
    );
    assert_eq!(u.lookup(1, b"elffile").unwrap_err().errno(), libc::ENOENT);
    let apprun = resolve(&u, "Echo-x86_64/AppRun");
    assert_eq!(apprun.attr.kind, Kind::File);
    let data = u
        .read(apprun.ino, 0, apprun.attr.size as u32 + 100)
        .unwrap();
    assert_eq!(data.len() as u64, apprun.attr.size);
    assert!(data.starts_with(b"#!") || data.starts_with(b"\x7fELF"));
    let link = resolve(&u, "Echo-x86_64/echo.desktop");
    assert_eq!(
        u.readlink(link.ino).unwrap(),
        b"usr/share/applications/echo.desktop"
    );
}

#[test]
fn listing_the_root_opens_no_image() {
    let src = Source::new("lazy", &["Echo-x86_64.AppImage", "hello-x86_64.AppImage"]);
    let u = union(&src);
    names(&u, 1);
    assert_eq!(
        u.cache().stats().misses,
        0,
        "readdir of the root must not read image tables"
    );
    assert!(u.apps().iter().all(|a| a.opened_tree().is_none()));
}

#[test]
fn inode_numbers_do_not_collide_across_images() {
    let src = Source::new(
        "inos",
        &[
            "Hello_World-x86_64.gzip.AppImage",
            "Hello_World-x86_64.xz.AppImage",
        ],
    );
    let u = union(&src);
    let a = resolve(&u, "Hello_World-x86_64.gzip/AppRun");
    let b = resolve(&u, "Hello_World-x86_64.xz/AppRun");
    assert_ne!(a.ino, b.ino);
    assert_eq!(
        u.read(a.ino, 0, 1 << 20).unwrap(),
        u.read(b.ino, 0, 1 << 20).unwrap()
    );
}

#[test]
fn synthesized_root_rejects_file_operations() {
    let src = Source::new("synth", &["Echo-x86_64.AppImage"]);
    let u = union(&src);
    assert_eq!(u.read(1, 0, 10).unwrap_err().errno(), libc::EISDIR);
    assert_eq!(u.readlink(1).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(
        u.getattr(inode::encode(0, 999)).unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        u.getattr(inode::encode(77, 0)).unwrap_err().errno(),
        libc::ENOENT
    );
}

#[test]
fn bin_and_share_are_built_on_first_use() {
    let src = Source::new(
        "integrate",
        &[
            "Echo-x86_64.AppImage",
            "Echo-test1234-x86_64.AppImage",
            "Leafpad-0.8.18.1.glibc2.4-x86_64.AppImage",
            "elffile",
        ],
    );
    let u = union(&src);
    names(&u, 1);
    assert!(
        u.apps().iter().all(|a| a.opened_tree().is_none()),
        "listing / must not integrate"
    );
    let bin = resolve(&u, "bin");
    assert_eq!(names(&u, bin.ino), ["echo", "leafpad"]);
    let script = resolve(&u, "bin/echo");
    assert_eq!(script.attr.perm, 0o555);
    let text = u.read(script.ino, 0, 1 << 16).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("APPDIR='/opt/apps/Echo-test1234-x86_64'"),
        "bin/echo must run the newest version (X-AppImage-Version=test1234):\n{text}"
    );
    let apps = resolve(&u, "share/applications");
    assert_eq!(
        names(&u, apps.ino),
        ["appimagefs-echo.desktop", "appimagefs-leafpad.desktop"]
    );
    let entry = resolve(&u, "share/applications/appimagefs-leafpad.desktop");
    let entry = String::from_utf8(u.read(entry.ino, 0, 1 << 20).unwrap()).unwrap();
    assert!(
        entry.contains("\nExec=/opt/apps/bin/leafpad %f\n"),
        "{entry}"
    );
    assert!(entry.contains("\nIcon=appimagefs-leafpad\n"), "{entry}");
    let icon = resolve(&u, "share/icons/hicolor/48x48/apps/appimagefs-leafpad.png");
    let target = u.readlink(icon.ino).unwrap();
    assert!(target.starts_with(b"../../../../../Leafpad-0.8.18.1.glibc2.4-x86_64/"));
    let in_app = std::str::from_utf8(&target[15..]).unwrap();
    let file = resolve(&u, in_app);
    assert!(u.read(file.ino, 0, 8).unwrap().starts_with(b"\x89PNG"));
}
