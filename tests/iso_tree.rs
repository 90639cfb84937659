//! Type 1 payloads: a type 1 app (with zisofs 128K, without extension,
//! without magic bytes) and every built ISO (Rock Ridge, Joliet, zisofs
//! 32K-128K, relocated and deep trees, multi-extent, empty; wrapped as type
//! 1 AppImages), all in ONE source folder, mounted once; each app folder
//! must equal xorriso's extraction in the fields xorriso preserves (see
//! `Compare::iso`).
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
    let mut files: Vec<(String, String, bool)> = Vec::new();
    // A type 1 app (Rock Ridge, Joliet, zisofs 128K) as AppImageKit made
    // them, without the .AppImage extension, and with its magic bytes zeroed
    // (recognised by its ELF + ISO 9660 content).
    for (file, magic, origin) in [
        ("Type1App-x86_64.AppImage", true, "type 1 app"),
        ("Type1Tool", true, "type 1 app, no extension"),
        (
            "Type1App_no_magic_bytes-x86_64.AppImage",
            false,
            "type 1 app, magic bytes zeroed",
        ),
    ] {
        write_type1_app(&src.join(file), magic);
        files.push((file.to_string(), origin.to_string(), true));
    }
    for b in built_isos() {
        let file = format!("{}.AppImage", b.name);
        wrap_iso_as_appimage(&b.iso, &src.join(&file));
        files.push((file, format!("built {}", b.name), b.rockridge));
    }
    let mut cases = Vec::new();
    for (file, origin, rockridge) in files {
        let truth = truth_dir.join(&file);
        if let Err(e) = xorriso_extract(&src.join(&file), &truth) {
            fails.push(format!("ground truth for {origin}: {e}"));
            continue;
        }
        cases.push(Case {
            app: app_name(&file),
            origin,
            truth,
            rockridge,
        });
    }
    cases
}

/// The ISO features the cases rely on are really in the images, so the
/// comparisons below are not vacuous.
fn check_features(cases: &[Case]) {
    let raw = |name: &str| std::fs::read(&built_iso(name).iso).unwrap();
    let has = |d: &[u8], pat: &[u8]| d.windows(pat.len()).any(|w| w == pat);
    for (name, log2) in [
        ("iso-rr-zisofs", 15u8),
        ("iso-rr-zisofs-64k", 16),
        ("iso-rr-joliet-zisofs-128k", 17),
    ] {
        assert!(
            has(&raw(name), &[b'Z', b'F', 16, 1, b'p', b'z', 4, log2]),
            "{name}: no zisofs ZF entry with 2^{log2}-byte blocks"
        );
    }
    let t1 = std::fs::read(type1_app_iso()).unwrap();
    assert!(has(&t1, &[b'Z', b'F', 16, 1, b'p', b'z', 4, 17]));
    assert!(
        has(&raw("iso-rr-joliet"), b"CL\x0c\x01"),
        "no relocated directory"
    );
    let me = raw("iso-multi-extent");
    let parts: Vec<_> = iso_records(&me)
        .into_iter()
        .filter(|(p, _)| p == b"file")
        .map(|(_, r)| (r.size, r.flags & 0x80 != 0))
        .collect();
    assert_eq!(
        parts,
        vec![(2048, true), (2048, true), (3048, false)],
        "multi-extent records"
    );
    let zisofs = cases
        .iter()
        .find(|c| c.origin == "built iso-rr-zisofs")
        .expect("zisofs case");
    assert_eq!(
        std::fs::metadata(zisofs.truth.join("text")).unwrap().len(),
        300_001,
        "xorriso did not decompress the zisofs file"
    );
    let multi = cases
        .iter()
        .find(|c| c.origin == "built iso-multi-extent")
        .expect("multi-extent case");
    assert_eq!(
        std::fs::metadata(multi.truth.join("file")).unwrap().len(),
        3 * 2048 + 1000,
        "xorriso did not join the extents"
    );
}

#[test]
fn iso_payloads_match_xorriso() {
    let t0 = Instant::now();
    let tmp = TempDir::new("iso-tree");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut fails = Failures::new();
    let cases = prepare(&src, &tmp, &mut fails);
    assert!(cases.len() >= 11, "too few ISO cases: {}", cases.len());
    check_features(&cases);

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
                if !mount_responsive(&mnt) {
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
