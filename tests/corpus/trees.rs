//! Every well-formed corpus file mounted at once and compared with the
//! independent tools: type 2 AppImages and bare SquashFS images (wrapped
//! with the stand-in runtime) with unsquashfs, type 1 AppImages and ISO
//! 9660 images (wrapped as type 1) with `xorriso -osirrox on ... -extract`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::manifest::Corpus;

/// One app folder and its ground truth.
struct Case {
    app: String,
    origin: String,
    truth: PathBuf,
    compare: Compare,
}

/// Mounts `src` and compares every case's app folder with its truth.
fn compare_all(src: &Path, mnt: &Path, cases: &[Case], mut fails: Failures, what: &str) {
    let mut mount = Mount::start(src, mnt, &[]);
    let root = mount.root_names();
    let mut compared = 0;
    for case in cases {
        if !root.contains(&case.app) {
            fails.push(format!(
                "app folder {:?} (from {}) missing from the mount root; root has {root:?}",
                case.app, case.origin
            ));
            continue;
        }
        let expected = snapshot(&case.truth);
        let dir = mnt.join(&case.app);
        match with_timeout(
            &format!("snapshot {}", case.app),
            Duration::from_secs(120),
            move || snapshot(&dir),
        ) {
            Ok(actual) => {
                compared += 1;
                if let Some(r) = compare_trees(&expected, &actual, &case.compare) {
                    fails.push(format!("{} ({}): {r}", case.app, case.origin));
                }
                let foreign = actual.foreign_devices();
                fails.check(foreign.is_empty(), || {
                    format!("{}: entries on another device: {foreign:?}", case.app)
                });
            }
            Err(e) => {
                fails.push(format!("{} ({}): {e}", case.app, case.origin));
                if !mount_responsive(mnt) {
                    fails.push("the mount stopped answering; remaining apps skipped");
                    break;
                }
            }
        }
    }
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    eprintln!(
        "corpus {what}: compared {compared} of {} app folders",
        cases.len()
    );
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish(what);
}

/// Type 2 AppImages and SquashFS images that unsquashfs extracts.
pub fn squashfs_payloads_match_unsquashfs(corpus: &Corpus) {
    let tmp = TempDir::new("corpus-sqfs");
    let (src, mnt, truth_dir) = (tmp.subdir("src"), tmp.subdir("mnt"), tmp.subdir("truth"));
    let mut fails = Failures::new();
    let mut cases = Vec::new();
    for row in &corpus.rows {
        if row.is_hostile() || row.detail("extract_rc") != Some("0") {
            continue;
        }
        let (offset, file) = match row.kind.as_str() {
            "appimage-type2" => match row.sqfs_offset() {
                Some(o) => (o, row.file.clone()),
                None => {
                    fails.push(format!("{}: no sqfs_offset in MANIFEST.tsv", row.file));
                    continue;
                }
            },
            "squashfs" => (0, format!("{}.AppImage", row.file)),
            _ => continue,
        };
        let truth = truth_dir.join(&row.file);
        if let Err(e) = unsquashfs_extract(&corpus.path(&row.file), offset, &truth) {
            fails.push(format!("ground truth for {}: {e}", row.file));
            continue;
        }
        if row.kind == "squashfs" {
            wrap_squashfs_as_appimage(&corpus.path(&row.file), &src.join(&file));
        } else {
            std::fs::copy(corpus.path(&row.file), src.join(&file)).unwrap();
            set_mode(&src.join(&file), 0o755);
        }
        cases.push(Case {
            app: app_name(&file),
            origin: row.file.clone(),
            truth,
            compare: Compare::squashfs(),
        });
    }
    assert!(!cases.is_empty(), "the corpus lists no SquashFS-based file");
    compare_all(&src, &mnt, &cases, fails, "squashfs");
}

/// Type 1 AppImages and ISO images (not the hostile ones: xorriso hangs on
/// the CE loop).
pub fn iso_payloads_match_xorriso(corpus: &Corpus) {
    let tmp = TempDir::new("corpus-iso");
    let (src, mnt, truth_dir) = (tmp.subdir("src"), tmp.subdir("mnt"), tmp.subdir("truth"));
    let mut fails = Failures::new();
    let mut cases = Vec::new();
    for row in &corpus.rows {
        if row.is_hostile() || row.details.contains("SUSP_CE_LOOP") {
            continue;
        }
        let file = match row.kind.as_str() {
            "appimage-type1" => {
                std::fs::copy(corpus.path(&row.file), src.join(&row.file)).unwrap();
                set_mode(&src.join(&row.file), 0o755);
                row.file.clone()
            }
            "iso9660" => {
                let file = format!("iso-{}.AppImage", row.file.trim_end_matches(".iso"));
                wrap_iso_as_appimage(&corpus.path(&row.file), &src.join(&file));
                file
            }
            _ => continue,
        };
        let truth = truth_dir.join(&file);
        if let Err(e) = xorriso_extract(&src.join(&file), &truth) {
            fails.push(format!("ground truth for {}: {e}", row.file));
            continue;
        }
        cases.push(Case {
            app: app_name(&file),
            origin: row.file.clone(),
            truth,
            compare: Compare::iso(row.rockridge()),
        });
    }
    assert!(!cases.is_empty(), "the corpus lists no ISO-based file");
    compare_all(&src, &mnt, &cases, fails, "iso");
}
