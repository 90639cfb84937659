//! `appimagefs inspect` against a real mount of the same files (issue 15):
//! what it says each app gets (folder, launchers, menu entry and its
//! `Name`/`Exec`/`Icon`, icons, MIME packages and types) is what the mount
//! synthesizes under its root, `bin/` and `share/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::apps::{app_with, copy_app, copy_built, png_icon, App, Comp, Wrap};
use crate::common::*;
use crate::desktop::{build_appimage, dump_app, mime_package};

/// A string list of one JSON report.
fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array in {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A string or null of one JSON report.
fn opt(v: &serde_json::Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_string)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Every non-directory under `dir`, as paths relative to it.
fn files_below(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for name in names(dir) {
        let path = dir.join(&name);
        let rel = format!("{prefix}{name}");
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            files_below(&path, &format!("{rel}/"), out);
        } else {
            out.insert(rel);
        }
    }
}

/// `key=value` of the `[Desktop Entry]` group of a desktop file.
fn main_key(text: &str, key: &str) -> Option<String> {
    let mut in_main = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_main = line == "[Desktop Entry]";
        } else if in_main {
            if let Some(value) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
                return Some(value.to_string());
            }
        }
    }
    None
}

/// The apps: every built test app, one of them also as type 1, two
/// versions of a tool (one with two desktop files, one with a MIME
/// package and a `MimeType=`), an unusable file. Distinct mtimes, so which
/// version is newest does not depend on the order of equals.
fn make_sources(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for which in [
        App::Echo,
        App::EchoNoIntegrate,
        App::EchoNoDisplay,
        App::EchoBrokenDesktop,
        App::HiddenTool,
        App::Hello,
        App::HelloWorld,
        App::Gui,
    ] {
        files.push(copy_app(which, src, which.file_name()));
    }
    files.push(copy_built(
        app_with(App::HelloWorld, Comp::Gzip, Wrap::Type1),
        src,
        "HelloWorld-type1.appimage",
    ));
    let mut old = dump_app("tool", "old", "X-AppImage-Version=1.9\n");
    old.push((
        "aaa.desktop".into(),
        b"[Desktop Entry]\nType=Application\nName=Other\nExec=other\n".to_vec(),
        0o644,
    ));
    let old_path = src.join("Tool-1.9.AppImage");
    build_appimage(&old_path, &old);
    files.push(old_path);
    let mut new = dump_app(
        "tool",
        "new",
        "X-AppImage-Version=1.10\nMimeType=text/x-tool;text/plain;\n",
    );
    new.push((
        "usr/share/mime/packages/tool.xml".into(),
        mime_package("text/x-tool", "tool", "TOOL"),
        0o644,
    ));
    new.push((
        "usr/share/icons/hicolor/48x48/apps/tool.png".into(),
        png_icon(3),
        0o644,
    ));
    let new_path = src.join("Tool-1.10.AppImage");
    build_appimage(&new_path, &new);
    files.push(new_path);
    let junk = src.join("notes.AppImage");
    std::fs::write(&junk, "not an AppImage\n").unwrap();
    files.push(junk);
    for (i, f) in files.iter().enumerate() {
        set_mtime(f, 1_700_000_000 + 1000 * i as i64);
    }
    files
}

#[test]
fn inspect_reports_what_the_mount_synthesizes() {
    let tmp = TempDir::new("inspect-vs-mount");
    let src = tmp.join("src");
    let mnt = tmp.join("mnt");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    let files = make_sources(&src);
    let mnt = std::fs::canonicalize(&mnt).unwrap();
    let out = run_timeout(
        Command::new(appimagefs_bin())
            .args(["inspect", "--json", "--mountpoint"])
            .arg(&mnt)
            .args(&files),
        Duration::from_secs(60),
    );
    let reports: serde_json::Value = serde_json::from_str(&out.stdout_text())
        .unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    let reports: Vec<&serde_json::Value> = reports
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["usable"] == true)
        .collect();
    assert_eq!(reports.len(), files.len() - 1, "{}", out.describe());

    let mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::default();
    let check =
        |fails: &mut Failures, what: &str, said: BTreeSet<String>, made: BTreeSet<String>| {
            fails.check(said == made, || {
                format!("{what}: inspect says {said:?}, the mount has {made:?}")
            });
        };
    let all =
        |key: &str| -> BTreeSet<String> { reports.iter().flat_map(|r| strings(r, key)).collect() };
    let mut root = names(&mnt);
    root.remove("bin");
    root.remove("share");
    check(
        &mut fails,
        "folders",
        reports.iter().map(|r| opt(r, "folder").unwrap()).collect(),
        root,
    );
    check(
        &mut fails,
        "bin/",
        all("launchers"),
        names(&mnt.join("bin")),
    );
    let mut entries = names(&mnt.join("share/applications"));
    entries.remove("mimeinfo.cache");
    check(
        &mut fails,
        "share/applications/",
        reports
            .iter()
            .filter_map(|r| opt(r, "menu_entry"))
            .collect(),
        entries,
    );
    let mut icons = BTreeSet::new();
    files_below(&mnt.join("share/icons"), "", &mut icons);
    check(&mut fails, "share/icons/", all("icons"), icons);
    check(
        &mut fails,
        "share/mime/packages/",
        all("mime_packages"),
        names(&mnt.join("share/mime/packages")),
    );
    let cache =
        std::fs::read_to_string(mnt.join("share/applications/mimeinfo.cache")).unwrap_or_default();
    check(
        &mut fails,
        "types in mimeinfo.cache",
        all("mime_opens"),
        cache
            .lines()
            .skip(1)
            .filter_map(|l| Some(l.split_once('=')?.0.to_string()))
            .collect(),
    );
    // Each name belongs to the app inspect says it does: a launcher runs
    // that app's folder, an icon links into it, a menu entry names its file.
    for r in &reports {
        let folder = opt(r, "folder").unwrap();
        let appdir = format!("'{}/{folder}'", mnt.display());
        for launcher in strings(r, "launchers") {
            let script =
                std::fs::read_to_string(mnt.join("bin").join(&launcher)).unwrap_or_default();
            fails.check(script.contains(&appdir), || {
                format!("bin/{launcher} does not run {folder}:\n{script}")
            });
        }
        for icon in strings(r, "icons") {
            let target = std::fs::read_link(mnt.join("share/icons").join(&icon))
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            fails.check(target.contains(&format!("/{folder}/")), || {
                format!("share/icons/{icon} -> {target:?} is not {folder}'s")
            });
        }
        let Some(entry) = opt(r, "menu_entry") else {
            continue;
        };
        let text = std::fs::read_to_string(mnt.join("share/applications").join(&entry))
            .unwrap_or_default();
        let file = r["path"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        fails.check(
            text.lines().next().is_some_and(|l| l.ends_with(&file)),
            || format!("{entry} is not {file}'s:\n{text}"),
        );
        for (key, field) in [
            ("Name", "menu_name"),
            ("Exec", "menu_exec"),
            ("Icon", "menu_icon"),
        ] {
            check(
                &mut fails,
                &format!("{entry} {key}"),
                opt(r, field).into_iter().collect(),
                main_key(&text, key).into_iter().collect(),
            );
        }
    }
    drop(mount);
    fails.finish("inspect vs the mount");

    // What the comparison relies on was really exercised: versions grouped,
    // a desktop file passed over, opted-out apps without a menu entry.
    let by_folder = |folder: &str| {
        *reports
            .iter()
            .find(|r| r["folder"] == folder)
            .unwrap_or_else(|| panic!("no {folder}"))
    };
    let old = by_folder("Tool-1.9");
    assert_eq!(strings(old, "launchers"), ["tool-1.9"]);
    assert!(opt(old, "desktop_problem")
        .unwrap()
        .contains("an older version of tool"));
    assert_eq!(strings(old, "other_desktop_files"), ["aaa.desktop"]);
    let new = by_folder("Tool-1.10");
    assert_eq!(strings(new, "launchers"), ["tool", "tool-1.10"]);
    assert_eq!(
        opt(new, "menu_exec"),
        Some(format!("{}/bin/tool %F", mnt.display()))
    );
    assert_eq!(strings(new, "mime_opens"), ["text/plain", "text/x-tool"]);
    assert!(opt(by_folder("hidden-tool-x86_64"), "desktop_problem")
        .unwrap()
        .contains("NoDisplay=true"));
}
