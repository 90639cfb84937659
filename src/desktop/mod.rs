//! Desktop integration: what the mount synthesizes beside the app folders so
//! that `PATH=$PATH:<mountpoint>/bin` and `XDG_DATA_DIRS=<mountpoint>/share:...`
//! integrate every app:
//!
//! ```text
//! <mountpoint>/bin/<app>                         launcher script (launcher)
//! <mountpoint>/bin/<app>-<version>               one per version present
//! <mountpoint>/share/applications/appimagefs-<app>.desktop   menu entry (rewrite)
//! <mountpoint>/share/icons/hicolor/<size>/apps/appimagefs-<app>.<ext>   icons
//! <mountpoint>/share/mime/packages/appimagefs-<app>-<name>.xml   MIME packages
//! <mountpoint>/share/mime/{globs2,magic,...}       their merged database (mime)
//! ```
//!
//! Everything here is pure: it reads an image through [`ImageTree`] and
//! returns bytes and names; the union tree serves them. Nothing here fails
//! the mount: a missing or broken desktop entry, an unreadable image, an app
//! that opts out of menus, each only turns into a reason in
//! [`Integration::menu`] (the launcher is still made).
//!
//! Use [`integrate`] for one app on its own. With several AppImages, use
//! the three steps: [`analyze`] every app, [`plan::plan`] their launcher
//! names (versions of one app grouped, the newest chosen), then [`render`]
//! each group's newest.
//!
//! Menu entries and icons are prefixed `appimagefs-`: a desktop file id or
//! icon name equal to one installed on the host would shadow it (or be
//! shadowed), depending on the order of `XDG_DATA_DIRS`.

pub mod entry;
pub mod envfile;
pub mod exec;
pub mod icons;
pub mod launcher;
pub mod locate;
pub mod mime;
pub mod names;
pub mod paths;
pub mod plan;
pub mod rewrite;
pub mod sandbox;
pub mod version;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testtree;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::tree::{ImageTree, NodeId};

pub use entry::DesktopEntry;
pub use icons::IconSource;

/// Prefix of every synthesized menu entry file name and icon name.
pub const PREFIX: &str = "appimagefs-";

/// What one app's image says about its integration, before names are given.
#[derive(Clone, Debug)]
pub struct AppFacts {
    /// Launcher base name ([`names::base_name`]); equal names mean
    /// versions of the same app.
    pub base_name: String,
    /// Name of the desktop file at the AppDir root, if any.
    pub desktop_file: Option<Vec<u8>>,
    /// Why that one was chosen ([`locate::find_desktop_file`]).
    pub desktop_choice: Option<locate::Choice>,
    /// The other desktop files at the AppDir root, passed over.
    pub other_desktop_files: Vec<Vec<u8>>,
    /// `Name` of the desktop entry (also for apps not in the menu), if the
    /// entry parses and has one.
    pub name: Option<String>,
    /// `X-AppImage-Version` of the desktop entry (also for apps not in the
    /// menu), if the entry parses and has one.
    pub version: Option<String>,
    /// The entry to put in the menu, or why there is none.
    pub menu: Result<DesktopEntry, String>,
    /// The app's icons (only looked up when it gets a menu entry).
    pub icons: Vec<IconSource>,
    /// The app's MIME packages (`usr/share/mime/packages/*.xml`).
    pub mime: Vec<mime::PackageFile>,
    /// What was wrong with them, one line each.
    pub mime_problems: Vec<String>,
    /// A Chromium or Electron app ([`sandbox::is_browser_app`]), whose
    /// launcher decides on `--no-sandbox`.
    pub browser: bool,
}

impl AppFacts {
    /// The types its menu entry's `MimeType=` claims (valid names only, at
    /// most [`mime::package::MAX_PER_TYPE`] of them); none without a menu
    /// entry.
    pub fn mime_types(&self) -> Vec<String> {
        let Ok(entry) = &self.menu else {
            return Vec::new();
        };
        let list = entry
            .main()
            .and_then(|m| m.string("MimeType").ok().flatten())
            .unwrap_or_default();
        let mut types: Vec<String> = list
            .split(';')
            .map(str::trim)
            .filter(|t| mime::package::valid_type(t))
            .map(str::to_string)
            .take(mime::package::MAX_PER_TYPE)
            .collect();
        types.sort();
        types.dedup();
        types
    }
}

/// The integration of one app, ready to be served.
#[derive(Clone, Debug)]
pub struct Integration {
    /// Launcher file name under `<mountpoint>/bin/`.
    pub launcher: String,
    /// `X-AppImage-Version`, for choosing among versions and for display.
    pub version: Option<String>,
    /// The launcher script (`Err` only for a path containing NUL).
    pub script: Result<Vec<u8>, String>,
    /// The menu entry, or why the app has none.
    pub menu: Result<MenuEntry, String>,
    /// Icons for `<mountpoint>/share/icons/` (empty without a menu entry).
    pub icons: Vec<IconFile>,
}

/// A synthesized desktop entry file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MenuEntry {
    /// File name under `<mountpoint>/share/applications/`,
    /// `appimagefs-<launcher>.desktop`.
    pub file_name: String,
    /// The file's bytes.
    pub contents: Vec<u8>,
}

/// An icon file to show under `<mountpoint>/share/icons/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IconFile {
    /// Path under `share/icons/`, e.g. `hicolor/48x48/apps/appimagefs-leafpad.png`.
    pub path: String,
    /// Symlink-free path of the file inside the AppDir.
    pub source: Vec<u8>,
    /// The file's node in the image.
    pub node: NodeId,
}

/// Reads what integration needs from one app's image: its desktop entry
/// (parsed, and whether it belongs in the menu), version, and icons.
/// `folder_name` is the app's folder under the mount point.
pub fn analyze(tree: &dyn ImageTree, folder_name: &[u8]) -> AppFacts {
    let found = locate::find_desktop_file(tree, folder_name);
    let (desktop_file, desktop_choice, other_desktop_files) = match &found {
        Ok(Some(file)) => (
            Some(file.name.clone()),
            Some(file.choice),
            file.others.clone(),
        ),
        _ => (None, None, Vec::new()),
    };
    let base_name = names::base_name(desktop_file.as_deref(), folder_name);
    let parsed = match found {
        Ok(Some(file)) => entry::parse(&file.bytes).map_err(|e| {
            format!(
                "broken desktop entry {}: {e}",
                String::from_utf8_lossy(&file.name)
            )
        }),
        Ok(None) => Err("no .desktop file at the AppDir root".to_string()),
        Err(e) => Err(format!("cannot read the desktop entry: {e}")),
    };
    let main_string = |key: &str| {
        parsed
            .as_ref()
            .ok()
            .and_then(|e| e.main()?.string(key).ok().flatten())
    };
    let version = main_string("X-AppImage-Version")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let name = main_string("Name");
    let parsed_exec = main_string("Exec");
    let menu = parsed.and_then(|e| match rewrite::menu_exclusion(&e) {
        Some(reason) => Err(reason),
        None => Ok(e),
    });
    let icons = match &menu {
        Ok(e) => {
            let icon = e.main().and_then(|m| m.string("Icon").ok().flatten());
            icons::find_icons(tree, icon.as_deref())
        }
        Err(_) => Vec::new(),
    };
    let (mime, mime_problems) = mime::find_packages(tree);
    let browser = sandbox::is_browser_app(tree, exec_program(parsed_exec.as_deref()));
    AppFacts {
        base_name,
        desktop_file,
        desktop_choice,
        other_desktop_files,
        name,
        version,
        menu,
        icons,
        mime,
        mime_problems,
        browser,
    }
}

/// The program an `Exec=` value runs (its first word, quotes removed), if
/// it has one.
pub fn exec_program(exec: Option<&str>) -> Option<&str> {
    let first = exec?.split_whitespace().next()?;
    Some(first.trim_matches('"'))
}

/// Builds the launcher, menu entry and icon list of an analyzed app, under
/// the launcher name `launcher` (normally its base name, or a name from
/// [`names::assign_unique`]). `source` is the AppImage file's absolute path,
/// `mountpoint` the mount's absolute path; the app's folder there is
/// `folder_name`; `extras` go into the launcher.
pub fn render(
    facts: &AppFacts,
    launcher: &str,
    source: &Path,
    mountpoint: &Path,
    folder_name: &[u8],
    extras: &launcher::Extras,
) -> Integration {
    let script = launcher_for(source, mountpoint, folder_name, extras);
    let icon_name = format!("{PREFIX}{launcher}");
    let menu = if names::sanitize(launcher.as_bytes()) != launcher || launcher.is_empty() {
        Err(format!("launcher name {launcher:?} is not shell-friendly"))
    } else {
        facts.menu.clone().and_then(|entry| {
            let bin = mountpoint.join("bin").join(launcher);
            let bin = bin
                .to_str()
                .ok_or("the mount point's path is not UTF-8, which desktop entries require")?;
            let icon = (!facts.icons.is_empty()).then_some(icon_name.as_str());
            let shown = source.to_string_lossy();
            let rewritten = rewrite::rewrite(&entry, bin, icon, &shown)?;
            Ok(MenuEntry {
                file_name: format!("{PREFIX}{launcher}.desktop"),
                contents: rewritten.to_bytes(),
            })
        })
    };
    let icons = match &menu {
        Ok(_) => facts
            .icons
            .iter()
            .map(|i| IconFile {
                path: i.output_path(&icon_name),
                source: i.path.clone(),
                node: i.node,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    Integration {
        launcher: launcher.to_string(),
        version: facts.version.clone(),
        script,
        menu,
        icons,
    }
}

/// The launcher script of the app whose AppImage file is `source`, mounted
/// as folder `folder_name` under `mountpoint`, with `extras` (`Err` only
/// for a NUL byte).
pub fn launcher_for(
    source: &Path,
    mountpoint: &Path,
    folder_name: &[u8],
    extras: &launcher::Extras,
) -> Result<Vec<u8>, String> {
    let appdir = mountpoint.join(std::ffi::OsStr::from_bytes(folder_name));
    launcher::launcher_script(
        source.as_os_str().as_bytes(),
        appdir.as_os_str().as_bytes(),
        extras,
    )
}

/// [`analyze`] and [`render`] under the app's base name, for one app on its
/// own (no other versions to compare, no name clashes to settle).
pub fn integrate(
    tree: &dyn ImageTree,
    folder_name: &[u8],
    source: &Path,
    mountpoint: &Path,
) -> Integration {
    let facts = analyze(tree, folder_name);
    let launcher = facts.base_name.clone();
    render(
        &facts,
        &launcher,
        source,
        mountpoint,
        folder_name,
        &launcher::Extras::default(),
    )
}
