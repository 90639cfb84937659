//! Type 1 payloads: the type 1 AppImage fixtures and every well-formed ISO
//! fixture (wrapped as a type 1 AppImage), all in ONE source folder, mounted
//! once; each app folder must equal xorriso's extraction in the fields
//! xorriso preserves (see `Compare::iso`).
//!
//! The malicious ISOs (CE loop, ZF overflow, zisofs overflow) belong to
//! `hostile`; xorriso is never run on the CE-loop image (it hangs).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

struct Case {
    app: String,
    origin: String,
    truth: PathBuf,
    rockridge: bool,
}

fn prepare(src: &Path, tmp: &TempDir, fails: &mut Failures) -> Vec<Case> {
    let truth_dir = tmp.subdir("truth");
    let mut cases = Vec::new();
    for row in manifest() {
        if row.is_hostile() || row.file.contains("ce_loop") {
            continue;
        }
        let (file, image) = match row.kind.as_str() {
            "appimage-type1" => {
                copy_fixture(&row.file, src, &row.file);
                (row.file.clone(), src.join(&row.file))
            }
            "iso9660" => {
                let file = format!("iso-{}.AppImage", row.file.trim_end_matches(".iso"));
                wrap_iso_as_appimage(&row.path(), &src.join(&file));
                (file.clone(), src.join(&file))
            }
            _ => continue,
        };
        let truth = truth_dir.join(&file);
        if let Err(e) = xorriso_extract(&image, &truth) {
            fails.push(format!("ground truth for {}: {e}", row.file));
            continue;
        }
        cases.push(Case {
            app: app_name(&file),
            origin: if row.kind == "iso9660" {
                format!("{} (wrapped)", row.file)
            } else {
                row.file.clone()
            },
            truth,
            rockridge: row.rockridge(),
        });
    }
    for b in built_isos() {
        let file = format!("{}.AppImage", b.name);
        wrap_iso_as_appimage(&b.iso, &src.join(&file));
        let truth = truth_dir.join(&file);
        if let Err(e) = xorriso_extract(&src.join(&file), &truth) {
            fails.push(format!("ground truth for built {}: {e}", b.name));
            continue;
        }
        cases.push(Case {
            app: app_name(&file),
            origin: format!("built {}", b.name),
            truth,
            rockridge: b.rockridge,
        });
    }
    cases
}

#[test]
fn iso_payloads_match_xorriso() {
    let t0 = Instant::now();
    let tmp = TempDir::new("iso-tree");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut fails = Failures::new();
    let cases = prepare(&src, &tmp, &mut fails);
    assert!(cases.len() >= 14, "too few ISO cases: {}", cases.len());
    // Ground truth sanity: zisofs content is decompressed by xorriso.
    if let Some(c) = cases
        .iter()
        .find(|c| c.origin.starts_with("test_read_format_iso_zisofs"))
    {
        let len = std::fs::metadata(c.truth.join("file"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(
            len, 12_345_684,
            "xorriso did not decompress the zisofs file"
        );
    }

    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut compared = (0usize, 0usize);
    let root_names = mount.root_names();

    for case in &cases {
        if !root_names.contains(&case.app) {
            fails.push(format!(
                "app folder {:?} (from {}) missing from the mount root; root has {:?}",
                case.app, case.origin, root_names
            ));
            continue;
        }
        let expected = snapshot(&case.truth);
        let dir = mnt.join(&case.app);
        let actual = match with_timeout(
            &format!("snapshot {}", case.app),
            Duration::from_secs(120),
            move || snapshot(&dir),
        ) {
            Ok(s) => s,
            Err(e) => {
                fails.push(format!("{} ({}): {e}", case.app, case.origin));
                if !crate::squashfs_tree::mount_responsive(&mnt) {
                    fails.push("the mount stopped answering; remaining apps skipped");
                    break;
                }
                continue;
            }
        };
        compared.0 += 1;
        compared.1 += actual.entries.len();
        if let Some(report) = compare_trees(&expected, &actual, &Compare::iso(case.rockridge)) {
            fails.push(format!(
                "{} ({}, rockridge={}): {report}",
                case.app, case.origin, case.rockridge
            ));
        }
        let foreign = actual.foreign_devices();
        if !foreign.is_empty() {
            fails.push(format!(
                "{}: entries on another device: {:?}",
                case.app, foreign
            ));
        }
        // Hard links in ISO images (same extent) are not checked: xorriso
        // does not restore them, so there is no independent ground truth.
        // Every non-directory must at least report nlink >= 1.
        for (rel, e) in &actual.entries {
            if e.kind != Kind::Dir && e.kind != Kind::Unreadable && e.nlink == 0 {
                fails.push(format!("{}/{}: nlink 0", case.app, show(rel)));
            }
        }
    }

    // Type 1 and type 2 app folders must not share inode numbers either:
    // directory inode numbers are unique within the mount.
    let mut seen = std::collections::BTreeMap::new();
    for case in &cases {
        if let Ok(m) = std::fs::symlink_metadata(mnt.join(&case.app)) {
            if let Some(other) = seen.insert(m.ino(), case.app.clone()) {
                fails.push(format!(
                    "app folders {other} and {} share inode {}",
                    case.app,
                    m.ino()
                ));
            }
        }
    }

    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    eprintln!(
        "iso_tree: compared {} app folders ({} entries) in {:.1}s",
        compared.0,
        compared.1,
        t0.elapsed().as_secs_f64()
    );
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("iso_tree");
}
