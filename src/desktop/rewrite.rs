//! Turning an app's own desktop entry into the menu entry under
//! `<mountpoint>/share/applications/`.
//!
//! What changes (everything else is kept line by line, comments included):
//!
//! - `Exec` in `[Desktop Entry]` and in every `[Desktop Action *]` group:
//!   the program becomes the launcher's absolute path (quoted by the Exec
//!   rules when it needs it); the arguments and field codes after it are
//!   kept as written when they follow the specification's strict quoting
//!   rules. An original that only lenient parsers accept (`$`, `;`, `|`
//!   unquoted, ...) means different things to different desktops, so such
//!   an app gets no menu entry (its launcher still works). The program named inside an AppImage means nothing
//!   outside it: `AppRun` decides what runs.
//! - `TryExec`, if present, becomes the launcher's path.
//! - `Icon` becomes the per-app icon name when the app ships icons; else it
//!   is dropped (the original could name a host path or a theme icon that
//!   is not there); localized `Icon[xx]`, `Exec[xx]` and `TryExec[xx]` are
//!   dropped.
//! - `DBusActivatable` is dropped: activation would bypass the launcher.
//! - `X-AppImage-Name` is added (the entry's `Name`) unless present, as
//!   AppImage integration tools do, and a first comment line names the
//!   AppImage file it comes from. `X-AppImage-Version` stays as it is.
//!
//! Apps that asked not to be in menus get no entry: see [`menu_exclusion`].

use super::entry::{self, escape, unescape, DesktopEntry, Group};
use super::exec;

/// Why an app with a valid desktop entry gets no menu entry, if it does not:
/// `X-AppImage-Integrate=false` (the AppImage convention for "do not
/// integrate"), `NoDisplay=true`, `Hidden=true` (the entry counts as
/// deleted), or a `Type` other than `Application`. Its launcher still exists.
pub fn menu_exclusion(entry: &DesktopEntry) -> Option<String> {
    let Some(main) = entry.main() else {
        return Some("no [Desktop Entry] group".to_string());
    };
    if main.boolean("X-AppImage-Integrate") == Some(false) {
        return Some("the desktop entry says X-AppImage-Integrate=false".to_string());
    }
    if main.boolean("NoDisplay") == Some(true) {
        return Some("the desktop entry says NoDisplay=true".to_string());
    }
    if main.boolean("Hidden") == Some(true) {
        return Some("the desktop entry says Hidden=true".to_string());
    }
    match main.raw("Type") {
        Some("Application") => None,
        other => Some(format!(
            "Type={} is not an application",
            other.unwrap_or("")
        )),
    }
}

/// Rewrites `original` for the menu (see the module docs): `launcher_path`
/// is the launcher's absolute path, `icon_name` the per-app icon name when
/// icons were found, `source` the AppImage file's path for the comment
/// (control characters in it are shown as `?`). The result is checked to
/// parse again.
pub fn rewrite(
    original: &DesktopEntry,
    launcher_path: &str,
    icon_name: Option<&str>,
    source: &str,
) -> Result<DesktopEntry, String> {
    if let Some(c) = launcher_path.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the launcher path contains control character U+{:04X}",
            c as u32
        ));
    }
    let mut entry = original.clone();
    let shown: String = source
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    entry
        .preamble
        .insert(0, format!("# Menu entry made by appimagefs for {shown}"));
    let main = entry.main_mut().ok_or("no [Desktop Entry] group")?;
    rewrite_exec(main, launcher_path)?;
    main.remove("TryExec", true);
    if main.raw("TryExec").is_some() {
        main.set_raw("TryExec", escape(launcher_path));
    }
    main.remove("Icon", true);
    match icon_name {
        Some(icon) => main.set_raw("Icon", escape(icon)),
        // No icon file in the app: the original name could point anywhere
        // (an absolute path on the host, a theme icon that is not there),
        // so the entry gets none and desktops show their default.
        None => main.remove("Icon", false),
    }
    main.remove("DBusActivatable", false);
    if main.raw("X-AppImage-Name").is_none() {
        let name = main.raw("Name").unwrap_or("").to_string();
        main.set_raw("X-AppImage-Name", name);
    }
    for group in entry.groups.iter_mut().skip(1) {
        if group.name.starts_with("Desktop Action ") {
            rewrite_exec(group, launcher_path)?;
        }
    }
    entry::parse(&entry.to_bytes())
        .map_err(|e| format!("the rewritten entry does not parse: {e}"))?;
    Ok(entry)
}

/// Replaces the program of `group`'s `Exec` (if any) with `launcher_path`.
fn rewrite_exec(group: &mut Group, launcher_path: &str) -> Result<(), String> {
    group.remove("Exec", true);
    let Some(raw) = group.raw("Exec") else {
        return Ok(());
    };
    let value = unescape(raw).map_err(|e| format!("[{}] Exec: {e}", group.name))?;
    let (_, rest) =
        exec::split_program(&value).map_err(|e| format!("[{}] Exec: {e}", group.name))?;
    exec::check_strict(rest).map_err(|e| format!("[{}] Exec: {e}", group.name))?;
    let new = format!("{}{rest}", exec::quote_arg(launcher_path));
    group.set_raw("Exec", escape(&new));
    Ok(())
}
