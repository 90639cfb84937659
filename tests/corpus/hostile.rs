//! The corpus's hostile files (malicious ISO and SquashFS images, a plain
//! ELF, a bare volume-descriptor fragment) and truncated copies of its real
//! AppImages, all in one source folder next to good real apps: each bad one
//! is rejected or fails with EIO/ENOENT within a bounded time, nothing
//! under the mount reaches outside it, the daemon lives, and the good apps
//! still read back identical to unsquashfs.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::manifest::Corpus;

/// Errnos a bad app may answer with (ENODATA/EOPNOTSUPP: xattr calls).
const ALLOWED_ERRNOS: &[i32] = &[libc::EIO, libc::ENOENT, libc::ENODATA, libc::EOPNOTSUPP];

/// A bad file put into the source folder.
struct Bad {
    file: String,
    what: String,
}

/// Good type 2 apps of the corpus kept next to the bad ones (when listed).
const GOOD: &[&str] = &["Echo-x86_64.AppImage", "hello-x86_64.AppImage"];

fn add_truncations(corpus: &Corpus, src: &Path, bad: &mut Vec<Bad>) {
    let mut cut = |file: &str, len: u64, what: &str| {
        if !corpus.has(file) {
            return;
        }
        let data = std::fs::read(corpus.path(file)).unwrap();
        if len as usize >= data.len() {
            return;
        }
        let out = format!("trunc-{len}-{file}");
        std::fs::write(src.join(&out), &data[..len as usize]).unwrap();
        set_mode(&src.join(&out), 0o755);
        bad.push(Bad {
            file: out,
            what: format!("{file} cut at {len}: {what}"),
        });
    };
    for file in ["Echo-x86_64.AppImage", "hello-x86_64.AppImage"] {
        if !corpus.has(file) {
            continue;
        }
        let Some(off) = corpus.row(file).sqfs_offset() else {
            continue;
        };
        cut(file, 64, "ELF header only");
        cut(file, off + 50, "half a superblock");
        cut(file, off + 96, "superblock only");
        cut(file, off + 1000, "early in the data");
        let used: u64 = corpus
            .row(file)
            .detail("bytes_used")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if used > 100 {
            cut(file, off + used / 2, "middle of the image");
            cut(file, off + used - 100, "inside the index tables");
            cut(file, off + used - 1, "last SquashFS byte missing");
        }
    }
    let t1 = "AppImageExtract_6-x86_64.AppImage";
    cut(t1, 32768 + 1024, "half a PVD");
    cut(t1, 40_000, "type 1, tree cut");
    cut(t1, 300_000, "type 1, data cut");
}

/// Hostile rows and truncations next to good apps.
pub fn each_bad_file_fails_alone(corpus: &Corpus) {
    let tmp = TempDir::new("corpus-hostile");
    let (src, mnt) = (tmp.subdir("src"), tmp.subdir("mnt"));
    let mut fails = Failures::new();
    let mut bad = Vec::new();
    let mut not_apps = Vec::new();
    for row in corpus.rows.iter().filter(|r| r.is_hostile()) {
        let name = match row.kind.as_str() {
            "squashfs" => {
                let out = format!("evil-{}.AppImage", row.file);
                wrap_squashfs_as_appimage(&corpus.path(&row.file), &src.join(&out));
                out
            }
            "iso9660" => {
                let out = format!("evil-{}.AppImage", row.file.trim_end_matches(".iso"));
                wrap_iso_as_appimage(&corpus.path(&row.file), &src.join(&out));
                out
            }
            _ => {
                // Not an AppImage at all: must not show up; also behind a
                // type 1 system area when it is a bare ISO fragment.
                std::fs::copy(corpus.path(&row.file), src.join(&row.file)).unwrap();
                set_mode(&src.join(&row.file), 0o755);
                not_apps.push(app_name(&row.file));
                if row.file.ends_with(".iso") {
                    let mut data = type1_system_area().to_vec();
                    data.extend_from_slice(&std::fs::read(corpus.path(&row.file)).unwrap());
                    let out = format!("wrapped-{}.AppImage", row.file);
                    std::fs::write(src.join(&out), data).unwrap();
                    bad.push(Bad {
                        file: out,
                        what: format!("{} behind a type 1 system area", row.file),
                    });
                }
                continue;
            }
        };
        bad.push(Bad {
            file: name,
            what: row.file.clone(),
        });
    }
    add_truncations(corpus, &src, &mut bad);
    let good: Vec<&str> = GOOD.iter().copied().filter(|f| corpus.has(f)).collect();
    for g in &good {
        std::fs::copy(corpus.path(g), src.join(g)).unwrap();
        set_mode(&src.join(g), 0o755);
    }
    assert!(!bad.is_empty(), "the corpus has no hostile file");

    let mut mount = Mount::start(&src, &mnt, &[]);
    let root = mount.root_names();
    for n in &not_apps {
        fails.check(!root.contains(n), || {
            format!("{n:?} is not an AppImage but appears at the mount root")
        });
    }
    let passwd = hash_file(Path::new("/etc/passwd")).ok();
    let mut summary = Vec::new();
    for b in &bad {
        let name = app_name(&b.file);
        if !root.contains(&name) {
            summary.push(format!("{name}: rejected at scan ({})", b.what));
            continue;
        }
        let dir = mnt.join(&name);
        match with_timeout(
            &format!("walk {name}"),
            Duration::from_secs(30),
            move || snapshot(&dir),
        ) {
            Err(e) => {
                fails.push(format!("{name} ({}): {e}", b.what));
                if !mount_responsive(&mnt) {
                    fails.push("the mount stopped answering; remaining files skipped");
                    break;
                }
            }
            Ok(s) => {
                summary.push(format!(
                    "{name}: {} entries, {} errors ({})",
                    s.entries.len(),
                    s.errors().len(),
                    b.what
                ));
                for (p, err) in s.errors() {
                    let ok = matches!(err.errno, Some(e) if ALLOWED_ERRNOS.contains(&e))
                        || (err.errno.is_none() && err.msg.contains("listed twice"));
                    fails.check(ok, || format!("{name} ({}): {}: {err}", b.what, show(&p)));
                }
                let foreign = s.foreign_devices();
                fails.check(foreign.is_empty(), || {
                    format!("{name}: entries outside the mount: {foreign:?}")
                });
                for (p, e) in &s.entries {
                    if let (Some(Ok(h)), Some(pw)) = (&e.content, &passwd) {
                        fails.check(h != pw, || {
                            format!("{name}/{}: reads back /etc/passwd", show(p))
                        });
                    }
                }
            }
        }
    }
    eprintln!("corpus hostile:\n  {}", summary.join("\n  "));
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    if mount.is_alive() && mount_responsive(&mnt) {
        for g in &good {
            let truth = tmp.join(format!("truth-{g}"));
            let off = corpus.row(g).sqfs_offset().expect("type 2 row");
            unsquashfs_extract(&corpus.path(g), off, &truth).unwrap_or_else(|e| panic!("{e}"));
            let expected = snapshot(&truth);
            let dir = mnt.join(app_name(g));
            match with_timeout("walk good app", Duration::from_secs(60), move || {
                snapshot(&dir)
            }) {
                Ok(actual) => {
                    if let Some(r) = compare_trees(&expected, &actual, &Compare::squashfs()) {
                        fails.push(format!("good app {g}: {r}"));
                    }
                }
                Err(e) => fails.push(format!("good app {g}: {e}")),
            }
        }
    }
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("corpus hostile");
}
