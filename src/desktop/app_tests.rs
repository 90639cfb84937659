//! Integration of the test AppImages (each built to carry one desktop-entry
//! trait), read with the crate's own image readers, cross-checked against
//! the same AppImages extracted by `unsquashfs` (so a reader bug and a bug
//! here cannot hide each other), with every menu entry checked by
//! `desktop-file-validate`.

use crate::test_support::apps;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tests::assert_validates;
use super::testtree::MemTree;
use super::version::{newest, VersionKey};
use super::*;
use crate::cache::BlockCache;
use crate::detect::{detect, Payload};

fn open(path: &Path) -> Arc<dyn ImageTree> {
    let file = Arc::new(File::open(path).unwrap());
    let detected = detect(&file).unwrap();
    crate::image::open_tree(&file, &detected, Arc::new(BlockCache::new(16 << 20))).unwrap()
}

/// The app's folder name in the mount: the file name without `.AppImage`.
fn folder(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.strip_suffix(".AppImage").unwrap_or(name).to_string()
}

fn integrate_image(tree: &dyn ImageTree, path: &Path) -> Integration {
    integrate(tree, folder(path).as_bytes(), path, Path::new("/opt/apps"))
}

struct Expect {
    image: fn() -> PathBuf,
    launcher: &'static str,
    version: Option<&'static str>,
    /// `Ok(Exec line)` or `Err(part of the reason)`.
    menu: Result<&'static str, &'static str>,
    /// (path under share/icons, source inside the AppDir)
    icons: &'static [(&'static str, &'static str)],
}

const EXPECTED: &[Expect] = &[
    Expect {
        // echo.desktop is a symlink into usr/share/applications.
        image: apps::echo,
        launcher: "echo",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/echo %F"),
        icons: &[(
            "hicolor/scalable/apps/appimagefs-echo.svg",
            "utilities-terminal.svg",
        )],
    },
    Expect {
        image: apps::echo_versioned,
        launcher: "echo",
        version: Some("test1234"),
        menu: Ok("Exec=/opt/apps/bin/echo %F"),
        icons: &[(
            "hicolor/scalable/apps/appimagefs-echo.svg",
            "utilities-terminal.svg",
        )],
    },
    Expect {
        image: apps::echo_elf32,
        launcher: "echo",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/echo %F"),
        icons: &[(
            "hicolor/scalable/apps/appimagefs-echo.svg",
            "utilities-terminal.svg",
        )],
    },
    Expect {
        image: apps::echo_no_integrate,
        launcher: "echo",
        version: None,
        menu: Err("X-AppImage-Integrate=false"),
        icons: &[],
    },
    Expect {
        image: apps::echo_no_display,
        launcher: "echo",
        version: None,
        menu: Err("NoDisplay=true"),
        icons: &[],
    },
    Expect {
        image: apps::daemon,
        launcher: "daemon",
        version: None,
        menu: Err("NoDisplay=true"),
        icons: &[],
    },
    Expect {
        image: apps::broken_desktop,
        launcher: "echo",
        version: None,
        menu: Err("broken desktop entry echo.desktop"),
        icons: &[],
    },
    Expect {
        image: apps::no_type,
        launcher: "notype",
        version: None,
        menu: Err("Type is missing"),
        icons: &[],
    },
    Expect {
        image: apps::scribble,
        launcher: "scribble",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/scribble %f"),
        icons: &[
            (
                "hicolor/16x16/apps/appimagefs-scribble.png",
                "usr/share/icons/hicolor/16x16/apps/scribble.png",
            ),
            (
                "hicolor/22x22/apps/appimagefs-scribble.png",
                "usr/share/icons/hicolor/22x22/apps/scribble.png",
            ),
            (
                "hicolor/24x24/apps/appimagefs-scribble.png",
                "usr/share/icons/hicolor/24x24/apps/scribble.png",
            ),
            (
                "hicolor/32x32/apps/appimagefs-scribble.png",
                "usr/share/icons/hicolor/32x32/apps/scribble.png",
            ),
            (
                "hicolor/48x48/apps/appimagefs-scribble.png",
                "usr/share/pixmaps/scribble.png",
            ),
            (
                "hicolor/scalable/apps/appimagefs-scribble.svg",
                "usr/share/icons/hicolor/scalable/apps/scribble.svg",
            ),
        ],
    },
    Expect {
        image: apps::hello,
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
        image: || apps::hello_world("zstd"),
        launcher: "helloworld",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/helloworld"),
        icons: &[],
    },
    Expect {
        image: apps::tool,
        launcher: "tool",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/tool"),
        icons: &[("hicolor/scalable/apps/appimagefs-tool.svg", "tool.svg")],
    },
    Expect {
        image: apps::extract,
        launcher: "extract",
        version: None,
        menu: Ok("Exec=/opt/apps/bin/extract"),
        icons: &[("hicolor/48x48/apps/appimagefs-extract.png", "Extract.png")],
    },
];

fn check(e: &Expect, it: &Integration, tree: &dyn ImageTree) {
    let path = (e.image)();
    let name = folder(&path);
    assert_eq!(it.launcher, e.launcher, "{name}");
    assert_eq!(it.version.as_deref(), e.version, "{name}");
    let script = it.script.as_ref().unwrap();
    let appdir = format!("APPDIR='/opt/apps/{name}'\n");
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
fn apps_integrate_as_expected() {
    for e in EXPECTED {
        let path = (e.image)();
        let tree = open(&path);
        let it = integrate_image(tree.as_ref(), &path);
        check(e, &it, tree.as_ref());
    }
}

/// The same AppImages extracted by `unsquashfs` give the same result, so the
/// expectations above do not merely restate what our readers return.
#[test]
fn apps_agree_with_unsquashfs_extraction() {
    let tmp = std::env::temp_dir().join(format!("appimagefs-app-extract-{}", std::process::id()));
    for e in EXPECTED {
        let path = (e.image)();
        let file = File::open(&path).unwrap();
        let Payload::SquashFs { offset, .. } = detect(&file).unwrap().payload else {
            continue;
        };
        let _ = std::fs::remove_dir_all(&tmp);
        let status = std::process::Command::new("unsquashfs")
            .args(["-no-xattrs", "-q", "-o", &offset.to_string(), "-d"])
            .arg(&tmp)
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("unsquashfs is needed (Debian package squashfs-tools, see scripts/setup.sh)");
        assert!(status.success(), "unsquashfs {}", path.display());
        let tree = MemTree::from_host_dir(&tmp);
        let it = integrate_image(&tree, &path);
        check(e, &it, &tree);
        let ours = integrate_image(open(&path).as_ref(), &path);
        assert_eq!(it.menu, ours.menu, "{}", path.display());
        assert_eq!(it.script, ours.script, "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn the_versioned_echo_wins_over_the_others() {
    let images = [
        apps::echo(),
        apps::echo_versioned(),
        apps::echo_no_integrate(),
    ];
    let facts: Vec<AppFacts> = images
        .iter()
        .map(|p| analyze(open(p).as_ref(), folder(p).as_bytes()))
        .collect();
    assert!(facts.iter().all(|f| f.base_name == "echo"), "same app");
    let keys: Vec<VersionKey> = facts
        .iter()
        .zip(&images)
        .map(|(f, p)| {
            let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
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
