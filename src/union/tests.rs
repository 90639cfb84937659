//! The union without FUSE: a source folder of test AppImages, looked at
//! through the same methods the FUSE adapter calls.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::cache::BlockCache;
use crate::test_support::apps;

/// A temporary source folder linking to the given images under their own
/// file names.
struct Source(PathBuf);

impl Source {
    fn new(tag: &str, files: &[PathBuf]) -> Source {
        let dir =
            std::env::temp_dir().join(format!("appimagefs-union-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            symlink(f, dir.join(f.file_name().unwrap())).unwrap();
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
            .unwrap_or_else(|err| panic!("{path}: {part}: {err}"))
            .sent();
    }
    e
}

#[test]
fn apps_appear_as_folders_and_junk_is_skipped() {
    let src = Source::new("basic", &[apps::echo(), apps::no_type(), apps::elf_only()]);
    std::fs::write(src.0.join("NOTES.tsv"), "file\tkind\n").unwrap();
    let u = union(&src);
    assert_eq!(
        names(&u, 1),
        ["Echo-x86_64", "bin", "notype__tool", "share"]
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
    let src = Source::new("lazy", &[apps::echo(), apps::hello()]);
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
        &[apps::hello_world("gzip"), apps::hello_world("xz")],
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
    let src = Source::new("synth", &[apps::echo()]);
    let u = union(&src);
    assert_eq!(u.read(1, 0, 10).unwrap_err().errno(), libc::EISDIR);
    assert_eq!(u.readlink(1).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(
        u.getattr(inode::encode(0, 999)).unwrap_err().errno(),
        libc::ENOENT
    );
    // A slot that holds no image names nothing the kernel can hold.
    assert_eq!(
        u.getattr(inode::encode(77, 0)).unwrap_err().errno(),
        libc::ESTALE
    );
}

#[test]
fn bin_and_share_are_built_on_first_use() {
    let src = Source::new(
        "integrate",
        &[
            apps::echo(),
            apps::echo_versioned(),
            apps::scribble(),
            apps::elf_only(),
        ],
    );
    let u = union(&src);
    names(&u, 1);
    assert!(
        u.apps().iter().all(|a| a.opened_tree().is_none()),
        "listing / must not integrate"
    );
    let bin = resolve(&u, "bin");
    // echo_versioned (Echo with X-AppImage-Version=test1234) is the only app
    // with a version: bin/echo runs the newest Echo, echo-test1234 that one.
    assert_eq!(names(&u, bin.ino), ["echo", "echo-test1234", "scribble"]);
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
        [
            "appimagefs-echo.desktop",
            "appimagefs-scribble.desktop",
            // Scribble's entry claims text/plain.
            "mimeinfo.cache"
        ]
    );
    let entry = resolve(&u, "share/applications/appimagefs-scribble.desktop");
    let entry = String::from_utf8(u.read(entry.ino, 0, 1 << 20).unwrap()).unwrap();
    assert!(
        entry.contains("\nExec=/opt/apps/bin/scribble %f\n"),
        "{entry}"
    );
    assert!(entry.contains("\nIcon=appimagefs-scribble\n"), "{entry}");
    let icon = resolve(&u, "share/icons/hicolor/48x48/apps/appimagefs-scribble.png");
    let target = u.readlink(icon.ino).unwrap();
    assert!(target.starts_with(b"../../../../../Scribble-1.0-x86_64/"));
    let in_app = std::str::from_utf8(&target[15..]).unwrap();
    let file = resolve(&u, in_app);
    assert!(u.read(file.ino, 0, 8).unwrap().starts_with(b"\x89PNG"));
}

/// A source folder of real copies (not links), so tests can rename,
/// overwrite and delete them.
fn copy_in(src: &Source, image: &Path, as_name: &str) {
    std::fs::copy(image, src.0.join(as_name)).unwrap();
}

#[test]
fn rescan_follows_additions_removals_renames_and_changes() {
    let src = Source::new("live", &[]);
    copy_in(&src, &apps::echo(), "Echo.AppImage");
    let u = union(&src);
    assert_eq!(names(&u, 1), ["Echo", "bin", "share"]);
    let old_root = resolve(&u, "Echo").ino;
    let old_apprun = resolve(&u, "Echo/AppRun");

    copy_in(&src, &apps::hello(), "hello.AppImage");
    let settle = std::time::Duration::from_millis(200);
    let first = u.rescan(settle);
    assert!(
        first.names.is_empty(),
        "a new file waits for the settle time"
    );
    assert!(first.recheck_in.is_some());
    std::thread::sleep(settle);
    let second = u.rescan(settle);
    assert_eq!(second.names, [b"hello".to_vec()]);
    assert!(second.old_synth.is_some());
    assert_eq!(names(&u, 1), ["Echo", "bin", "hello", "share"]);

    std::fs::rename(
        src.0.join("Echo.AppImage"),
        src.0.join("Echo-renamed.AppImage"),
    )
    .unwrap();
    u.rescan(settle);
    std::thread::sleep(settle);
    u.rescan(settle);
    assert_eq!(names(&u, 1), ["Echo-renamed", "bin", "hello", "share"]);
    assert_ne!(
        resolve(&u, "Echo-renamed").ino,
        old_root,
        "a renamed file is a new app"
    );
    assert_eq!(
        u.read(old_apprun.ino, 0, 1 << 20).unwrap().len() as u64,
        old_apprun.attr.size,
        "inodes the kernel holds keep working after a rename"
    );

    let renamed_folder = resolve(&u, "Echo-renamed").ino;
    let renamed = resolve(&u, "Echo-renamed/AppRun");
    std::fs::remove_file(src.0.join("Echo-renamed.AppImage")).unwrap();
    let gone = u.rescan(settle);
    assert_eq!(gone.names, [b"Echo-renamed".to_vec()]);
    assert_eq!(names(&u, 1), ["bin", "hello", "share"]);
    assert!(
        u.read(renamed.ino, 0, 16).is_ok(),
        "a removed file's app stays readable while held"
    );
    u.forget(renamed.ino, 1);
    assert!(
        u.read(renamed.ino, 0, 16).is_ok(),
        "its folder is still held"
    );
    u.forget(renamed_folder, 3);
    assert_eq!(
        u.read(renamed.ino, 0, 16).unwrap_err().errno(),
        libc::ESTALE,
        "once the kernel forgets it, a retired app is released"
    );
}

#[test]
fn files_that_never_become_valid_are_reported_once_and_not_shown() {
    let src = Source::new("junk", &[]);
    let u = union(&src);
    let full = std::fs::read(apps::hello()).unwrap();
    std::fs::write(src.0.join("partial.AppImage"), &full[..full.len() / 2]).unwrap();
    let settle = std::time::Duration::from_millis(50);
    for _ in 0..3 {
        u.rescan(settle);
        std::thread::sleep(settle);
    }
    assert_eq!(
        names(&u, 1),
        ["bin", "share"],
        "a truncated copy is not shown"
    );
    std::fs::write(src.0.join("partial.AppImage"), &full).unwrap();
    u.rescan(settle);
    std::thread::sleep(settle);
    u.rescan(settle);
    assert_eq!(
        names(&u, 1),
        ["bin", "partial", "share"],
        "once complete it appears"
    );
}

#[test]
fn an_overwritten_file_is_never_served_with_the_wrong_bytes() {
    let src = Source::new("overwrite", &[]);
    copy_in(&src, &apps::hello_world("gzip"), "app.AppImage");
    let no_cache = Arc::new(BlockCache::new(0));
    let u = Union::new(&src.0, Path::new("/opt/apps"), no_cache).unwrap();
    let old = resolve(&u, "app/AppRun");
    let before = u.read(old.ino, 0, 1 << 20).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(apps::hello_world("xz"), src.0.join("app.AppImage")).unwrap();
    assert_eq!(
        u.read(old.ino, 0, 1 << 20).unwrap_err().errno(),
        libc::EIO,
        "with nothing cached, the old version cannot be served and must not be mixed with the new"
    );
    let settle = std::time::Duration::from_millis(50);
    u.rescan(settle);
    std::thread::sleep(settle);
    u.rescan(settle);
    let new = resolve(&u, "app/AppRun");
    assert_ne!(new.ino, old.ino, "new opens see a new inode");
    assert_eq!(
        u.read(new.ino, 0, 1 << 20).unwrap(),
        before,
        "both builds carry the same AppRun"
    );
}

#[test]
fn a_directory_read_in_pages_is_listed_once() {
    use std::sync::atomic::Ordering;
    let src = Source::new("wide", &[apps::wide()]);
    let u = union(&src);
    let dir = resolve(&u, "Wide-x86_64/many").ino;
    let built = || u.listings_built.load(Ordering::Relaxed);
    let before = built();
    let mut seen = 0;
    while seen < apps::WIDE_ENTRIES {
        let page = u.dir_listing(dir).unwrap();
        let names = &page[seen..(seen + 100).min(page.len())];
        assert_eq!(names[0].name, format!("file-{seen:05}").into_bytes());
        seen += names.len();
    }
    assert_eq!(built() - before, 1, "one listing for the whole read");
    let root = u.dir_listing(synth::ROOT).unwrap();
    assert!(root.iter().any(|l| l.name == b"Wide-x86_64"));
    u.dir_listing(synth::ROOT).unwrap();
    assert_eq!(
        built() - before,
        3,
        "the root is listed afresh for every page"
    );
}

#[test]
fn a_slow_image_does_not_hold_up_a_later_integration() {
    use std::sync::mpsc;
    use std::time::Duration;
    let src = Source::new("slow-open", &[apps::echo(), apps::hello()]);
    let u = Arc::new(union(&src));
    let bin = u
        .readdir(1)
        .unwrap()
        .iter()
        .find(|l| l.name == b"bin")
        .unwrap()
        .ino;
    let slow = src.0.join(apps::hello().file_name().unwrap());
    let gate = Arc::new(std::sync::Mutex::new(()));
    let held = gate.lock().unwrap();
    *app::open_gate::GATE.lock().unwrap() = Some((slow.clone(), gate.clone()));
    let first = {
        let u = u.clone();
        std::thread::spawn(move || u.readdir(bin).map(|l| l.len()))
    };
    // The first build is now waiting for hello's image; hello goes away.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!first.is_finished());
    std::fs::remove_file(&slow).unwrap();
    u.rescan(Duration::ZERO);
    let (tx, rx) = mpsc::channel();
    {
        let u = u.clone();
        std::thread::spawn(move || tx.send(u.readdir(bin).map(|l| l.len())));
    }
    let later = rx.recv_timeout(Duration::from_secs(10));
    drop(held);
    *app::open_gate::GATE.lock().unwrap() = None;
    first.join().unwrap().unwrap();
    let later = later.expect("bin/ of the new generation waited for the slow image");
    assert!(later.unwrap() >= 1, "echo's launcher is in bin/");
}

/// A lookup resolved just before a rescan retires its app, answered just
/// after: the kernel then holds the app's folder, which must keep working
/// until the kernel forgets it.
#[test]
fn a_lookup_answered_across_a_retire_keeps_the_app_until_forgotten() {
    let src = Source::new("lookup-retire", &[]);
    copy_in(&src, &apps::echo(), "Echo.AppImage");
    let u = union(&src);
    let folder = u.lookup(1, b"Echo").unwrap();
    std::fs::remove_file(src.0.join("Echo.AppImage")).unwrap();
    assert_eq!(u.rescan(Duration::ZERO).names, [b"Echo".to_vec()]);
    let folder = folder.sent();
    let apprun = u
        .lookup(folder.ino, b"AppRun")
        .expect("a folder the kernel holds still answers")
        .sent();
    assert!(u.read(apprun.ino, 0, 16).is_ok());
    u.forget(apprun.ino, 1);
    assert!(u.getattr(folder.ino).is_ok(), "the folder is still held");
    u.forget(folder.ino, 1);
    assert_eq!(u.getattr(folder.ino).unwrap_err().errno(), libc::ESTALE);
    assert_eq!(u.getattr(apprun.ino).unwrap_err().errno(), libc::ESTALE);
}

/// With every slot taken, a new app waits for a slot whose inodes the
/// kernel has all forgotten; an inode of a freed slot is stale, never a
/// node of the next image, and the reused slot has a new generation.
#[test]
fn a_slot_is_reused_only_once_forgotten_and_with_a_new_generation() {
    let src = Source::new("slot-reuse", &[]);
    copy_in(&src, &apps::echo(), "Echo.AppImage");
    let u = Union::with_slots(
        &src.0,
        Path::new("/opt/apps"),
        Arc::new(BlockCache::new(16 << 20)),
        1,
    )
    .unwrap();
    let folder = u.lookup(1, b"Echo").unwrap();
    let generation = folder.generation();
    std::fs::remove_file(src.0.join("Echo.AppImage")).unwrap();
    u.rescan(Duration::ZERO);
    let folder = folder.sent();
    copy_in(&src, &apps::hello(), "hello.AppImage");
    u.rescan(Duration::ZERO);
    assert_eq!(names(&u, 1), ["bin", "share"], "no slot is free yet");
    assert!(u.lookup(folder.ino, b"AppRun").is_ok());
    u.forget(folder.ino, 1);
    assert_eq!(u.getattr(folder.ino).unwrap_err().errno(), libc::ESTALE);
    u.rescan(Duration::ZERO);
    assert_eq!(names(&u, 1), ["bin", "hello", "share"]);
    let hello = u.lookup(1, b"hello").unwrap();
    assert_eq!(inode::decode(hello.ino).0, inode::decode(folder.ino).0);
    assert_ne!(hello.generation(), generation);
}

/// Every file of the tree under `ino`, by path: inode number and bytes.
fn walk(u: &Union, ino: u64, path: &str, out: &mut Vec<(String, u64, Vec<u8>)>) {
    for l in u.readdir(ino).unwrap().iter() {
        let child = format!("{path}/{}", String::from_utf8_lossy(&l.name));
        let e = u.lookup(ino, &l.name).unwrap().sent();
        assert_eq!(e.ino, l.ino, "{child}: lookup and listing agree");
        match e.attr.kind {
            Kind::Dir => walk(u, e.ino, &child, out),
            Kind::File => out.push((child, e.ino, u.read(e.ino, 0, 1 << 24).unwrap())),
            _ => out.push((
                child,
                e.ino,
                u.getattr(e.ino).unwrap().size.to_le_bytes().into(),
            )),
        }
    }
}

/// Bytes the apps' open trees hold now.
fn open_tree_bytes(u: &Union) -> usize {
    u.apps()
        .iter()
        .filter_map(|a| a.opened_tree())
        .map(|t| t.memory_bytes())
        .sum()
}

/// With a budget a third of what the opened trees take, using more images
/// than fit closes the least recently used trees: memory stays bounded by
/// the budget, not by the number of images, and every image still reads
/// the same bytes under the same inode numbers after being reopened
/// (SquashFS and ISO 9660 here; DwarFS in its own tests).
#[test]
fn opened_trees_stay_within_one_budget_and_reopen_the_same() {
    let images = [
        apps::echo(),
        apps::hello(),
        apps::tool(),
        apps::scribble(),
        apps::extract(),
        apps::assistant(),
    ];
    let src = Source::new("tree-budget", &images);
    let u = union(&src);
    let folders: Vec<(Vec<u8>, u64)> = u
        .readdir(1)
        .unwrap()
        .iter()
        .filter(|l| inode::decode(l.ino).0 != SYNTH_SLOT)
        .map(|l| (l.name.clone(), l.ino))
        .collect();
    assert_eq!(folders.len(), images.len());
    // Each image's tree alone, walked whole: what it may grow to.
    let mut first = Vec::new();
    let (mut largest, mut total) = (0, 0);
    for (name, ino) in &folders {
        let mut files = Vec::new();
        walk(&u, *ino, &String::from_utf8_lossy(name), &mut files);
        assert!(!files.is_empty());
        let app = u.app(inode::decode(*ino).0).unwrap();
        let bytes = app.opened_tree().unwrap().memory_bytes();
        largest = largest.max(bytes);
        total += bytes;
        first.push(files);
    }
    assert_eq!(open_tree_bytes(&u), total);
    let budget = total / 3;
    let u = u.with_tree_budget(budget);
    for round in 0..2 {
        for ((name, ino), want) in folders.iter().zip(&first) {
            let mut files = Vec::new();
            walk(&u, *ino, &String::from_utf8_lossy(name), &mut files);
            assert!(
                files == *want,
                "round {round}: {name:?} changed on reopening"
            );
            // One tree may have grown since the last open; the others fit.
            assert!(
                open_tree_bytes(&u) <= budget + largest,
                "round {round}: {} bytes open, budget {budget}",
                open_tree_bytes(&u)
            );
        }
    }
    let (kept_within, closed) = u.opened_trees();
    assert_eq!(kept_within, budget);
    assert!(closed >= images.len() as u64, "{closed} trees closed");
    assert!(
        u.apps()
            .iter()
            .filter(|a| a.opened_tree().is_some())
            .count()
            < images.len()
    );
}

/// A lookup whose reply is not sent (an EACCES answer instead) gives its
/// count back when dropped, and then frees a retired app; a name that is
/// not there (a negative reply) counts nothing.
#[test]
fn an_unsent_lookup_gives_its_count_back() {
    let src = Source::new("lookup-unsent", &[]);
    copy_in(&src, &apps::echo(), "Echo.AppImage");
    let u = union(&src);
    let folder = u.lookup(1, b"Echo").unwrap();
    let ino = folder.ino;
    assert_eq!(u.lookups_held(ino), 1);
    assert_eq!(u.lookup(ino, b"missing").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(u.lookups_held(ino), 1);
    std::fs::remove_file(src.0.join("Echo.AppImage")).unwrap();
    u.rescan(Duration::ZERO);
    assert!(
        u.getattr(ino).is_ok(),
        "counted, so not freed by the retire"
    );
    drop(folder);
    assert_eq!(u.getattr(ino).unwrap_err().errno(), libc::ESTALE);
}
