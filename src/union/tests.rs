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
    Union::new(&src.0, Arc::new(BlockCache::new(64 << 20))).unwrap()
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
    assert_eq!(names(&u, 1), ["Echo-x86_64", "brotenet__appimagetool"]);
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
