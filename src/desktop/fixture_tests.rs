//! Integration of the real AppImages in the shared fixtures, read with the
//! crate's own image readers, cross-checked against the same AppImages
//! extracted by `unsquashfs` (so a reader bug and a bug here cannot hide
//! each other), with every menu entry checked by `desktop-file-validate`.

use crate::test_support::fixture;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::tests::assert_validates;
use super::testtree::MemTree;
use super::version::{newest, VersionKey};
use super::*;
use crate::cache::BlockCache;
use crate::detect::{detect, Payload};

fn open(name: &str) -> Arc<dyn ImageTree> {
    let file = Arc::new(File::open(fixture(name)).unwrap());
    let detected = detect(&file).unwrap();
    crate::image::open_tree(&file, &detected, Arc::new(BlockCache::new(16 << 20))).unwrap()
}

fn folder(name: &str) -> &str {
    name.strip_suffix(".AppImage").unwrap_or(name)
}

fn integrate_fixture(tree: &dyn ImageTree, name: &str) -> Integration {
    integrate(
        tree,
        folder(name).as_bytes(),
        &fixture(name),
        Path::new("/opt/apps"),
    )
}

struct Expect {
    fixture: &'static str,
    launcher: &'static str,
    version: Option<&'static str>,
    /// `Ok(Exec line)` or `Err(part of the reason)`.
    menu: Result<&'static str, &'static str>,
    /// (path under share/icons, source inside the AppDir)
    icons: &'static [(&'static str, &'static str)],
}

const EXPECTED: &[Expect] = &[
    Expect {
        fixture: "Echo-x86_64.AppImage",
        launcher: "echo",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/echo %F"),
        icons: &[(
            "hicolor/scalable/apps/appimagefs-echo.svg",
            "utilities-terminal.svg",
        )],
    },
    Expect {
        fixture: "Echo-test1234-x86_64.AppImage",
        launcher: "echo",
        version: Some("test1234"),
        menu: Ok("Exec=/opt/apps/bin/echo %F"),
        icons: &[(
            "hicolor/scalable/apps/appimagefs-echo.svg",
            "utilities-terminal.svg",
        )],
    },
    Expect {
        fixture: "Echo-no-integrate-x86_64.AppImage",
        launcher: "echo",
        version: None,
        menu: Err("X-AppImage-Integrate=false"),
        icons: &[],
    },
    Expect {
        fixture: "Echo-x86_64-no_display.AppImage",
        launcher: "echo",
        version: None,
        menu: Err("NoDisplay=true"),
        icons: &[],
    },
    Expect {
        fixture: "appimaged-x86_64.AppImage",
        launcher: "appimaged",
        version: None,
        menu: Err("NoDisplay=true"),
        icons: &[],
    },
    Expect {
        fixture: "broken-desktop-file-x86_64.AppImage",
        launcher: "echo",
        version: None,
        menu: Err("broken desktop entry echo.desktop"),
        icons: &[],
    },
    Expect {
        fixture: "brotenet__appimagetool",
        launcher: "appimagetool",
        version: None,
        menu: Err("Type is missing"),
        icons: &[],
    },
    Expect {
        fixture: "Leafpad-0.8.18.1.glibc2.4-x86_64.AppImage",
        launcher: "leafpad",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/leafpad %f"),
        icons: &[
            (
                "hicolor/16x16/apps/appimagefs-leafpad.png",
                "usr/share/icons/hicolor/16x16/apps/leafpad.png",
            ),
            (
                "hicolor/22x22/apps/appimagefs-leafpad.png",
                "usr/share/icons/hicolor/22x22/apps/leafpad.png",
            ),
            (
                "hicolor/24x24/apps/appimagefs-leafpad.png",
                "usr/share/icons/hicolor/24x24/apps/leafpad.png",
            ),
            (
                "hicolor/32x32/apps/appimagefs-leafpad.png",
                "usr/share/icons/hicolor/32x32/apps/leafpad.png",
            ),
            (
                "hicolor/48x48/apps/appimagefs-leafpad.png",
                "usr/share/pixmaps/leafpad.png",
            ),
            (
                "hicolor/scalable/apps/appimagefs-leafpad.svg",
                "usr/share/icons/hicolor/scalable/apps/leafpad.svg",
            ),
        ],
    },
    Expect {
        fixture: "hello-x86_64.AppImage",
        launcher: "hello-world",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/hello-world"),
        icons: &[(
            "hicolor/256x256/apps/appimagefs-hello-world.png",
            "hello-world.png",
        )],
    },
    Expect {
        // Its icons are all empty files: the entry keeps Icon=helloworld.
        fixture: "Hello_World-x86_64.zstd.AppImage",
        launcher: "helloworld",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/helloworld"),
        icons: &[],
    },
    Expect {
        fixture: "appimagetool-x86_64.AppImage",
        launcher: "appimagetool",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/appimagetool"),
        icons: &[(
            "hicolor/scalable/apps/appimagefs-appimagetool.svg",
            "appimagetool.svg",
        )],
    },
    Expect {
        fixture: "AppImageExtract_6-x86_64.AppImage",
        launcher: "appimageextract",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/appimageextract"),
        icons: &[(
            "hicolor/48x48/apps/appimagefs-appimageextract.png",
            "AppImageExtract.png",
        )],
    },
];

fn check(e: &Expect, it: &Integration, tree: &dyn ImageTree) {
    let name = e.fixture;
    assert_eq!(it.launcher, e.launcher, "{name}");
    assert_eq!(it.version.as_deref(), e.version, "{name}");
    let script = it.script.as_ref().unwrap();
    let appdir = format!("APPDIR='/opt/apps/{}'\n", folder(name));
    assert!(String::from_utf8_lossy(script).contains(&appdir), "{name}");
    match (&it.menu, e.menu) {
        (Ok(menu), Ok(exec)) => {
            assert_eq!(menu.file_name, format!("appimagefs-{}.desktop", e.launcher));
            let text = String::from_utf8(menu.contents.clone()).unwrap();
            assert!(
                text.lines().any(|l| l == exec),
                "{name}: no {exec:?} in\n{text}"
            );
            let icon = if e.icons.is_empty() {
                None
            } else {
                Some(format!("Icon=appimagefs-{}", e.launcher))
            };
            if let Some(icon) = icon {
                assert!(
                    text.lines().any(|l| l == icon),
                    "{name}: no {icon:?} in\n{text}"
                );
            }
            assert!(
                text.starts_with("# Menu entry made by appimagefs for /"),
                "{name}"
            );
            assert_validates(&menu.file_name, &menu.contents);
        }
        (Err(reason), Err(part)) => assert!(reason.contains(part), "{name}: {reason}"),
        (got, want) => panic!("{name}: menu {got:?}, expected {want:?}"),
    }
    let icons: Vec<(String, String)> = it
        .icons
        .iter()
        .map(|i| (i.path.clone(), String::from_utf8(i.source.clone()).unwrap()))
        .collect();
    let want: Vec<(String, String)> = e
        .icons
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(icons, want, "{name}");
    for icon in &it.icons {
        let by_path = paths::resolve(tree, &icon.source).unwrap().unwrap();
        assert_eq!(by_path.node, icon.node, "{name}: node of {}", icon.path);
        assert!(tree.attr(icon.node).unwrap().size > 0);
    }
}

#[test]
fn fixtures_integrate_as_expected() {
    for e in EXPECTED {
        let tree = open(e.fixture);
        let it = integrate_fixture(tree.as_ref(), e.fixture);
        check(e, &it, tree.as_ref());
    }
}

/// The same fixtures extracted by `unsquashfs` give the same result, so the
/// expectations above do not merely restate what our readers return.
#[test]
fn fixtures_agree_with_unsquashfs_extraction() {
    let tmp =
        std::env::temp_dir().join(format!("appimagefs-fixture-extract-{}", std::process::id()));
    for e in EXPECTED {
        let file = File::open(fixture(e.fixture)).unwrap();
        let Payload::SquashFs { offset, .. } = detect(&file).unwrap().payload else {
            continue;
        };
        let _ = std::fs::remove_dir_all(&tmp);
        let status = std::process::Command::new("unsquashfs")
            .args(["-no-xattrs", "-q", "-o", &offset.to_string(), "-d"])
            .arg(&tmp)
            .arg(fixture(e.fixture))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("unsquashfs is needed (Debian package squashfs-tools, see scripts/setup.sh)");
        assert!(status.success(), "unsquashfs {}", e.fixture);
        let tree = MemTree::from_host_dir(&tmp);
        let it = integrate_fixture(&tree, e.fixture);
        check(e, &it, &tree);
        let ours = integrate_fixture(open(e.fixture).as_ref(), e.fixture);
        assert_eq!(it.menu, ours.menu, "{}", e.fixture);
        assert_eq!(it.script, ours.script, "{}", e.fixture);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn the_versioned_echo_wins_over_the_others() {
    let names = [
        "Echo-x86_64.AppImage",
        "Echo-test1234-x86_64.AppImage",
        "Echo-no-integrate-x86_64.AppImage",
    ];
    let facts: Vec<AppFacts> = names
        .iter()
        .map(|n| analyze(open(n).as_ref(), folder(n).as_bytes()))
        .collect();
    assert!(facts.iter().all(|f| f.base_name == "echo"), "same app");
    let keys: Vec<VersionKey> = facts
        .iter()
        .zip(names)
        .map(|(f, n)| {
            let mtime = std::fs::metadata(fixture(n)).unwrap().modified().unwrap();
            let mtime = mtime
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            VersionKey {
                version: f.version.clone(),
                mtime,
            }
        })
        .collect();
    assert_eq!(newest(&keys), Some(1));
}
