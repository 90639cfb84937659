//! Chromium and Electron apps whose sandbox cannot start.
//!
//! Electron AppImages ship a setuid `chrome-sandbox`, which never works
//! from the `nosuid` mount, and Chromium's namespace sandbox fails where
//! unprivileged user namespaces are refused (Docker's default seccomp
//! profile): the app exits with "No usable sandbox!". The launcher of such
//! an app ([`is_browser_app`]) tries to create a user namespace at launch
//! and, only when it cannot, passes `--no-sandbox` ([`Policy`] lets an
//! admin force either way).

use std::collections::VecDeque;

use crate::tree::{ImageTree, Kind};

/// What launchers of sandboxed browser apps do about `--no-sandbox`
/// (`-o sandbox=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Add `--no-sandbox` only when a user namespace cannot be created.
    #[default]
    Auto,
    /// Never add it: the app's sandbox is used or the app fails.
    Keep,
    /// Always add it.
    Off,
}

impl Policy {
    /// Parses `auto`, `keep` or `off`.
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "auto" => Ok(Policy::Auto),
            "keep" => Ok(Policy::Keep),
            "off" => Ok(Policy::Off),
            _ => Err(format!("sandbox={s}: expected auto, keep or off")),
        }
    }
}

/// Directory levels below the AppDir root searched for the browser's files
/// (`usr/lib/<app>/chrome-sandbox` is at level 3, `opt/<vendor>/<app>/` 4).
const MAX_DEPTH: usize = 4;
/// Directory entries looked at in all, so a huge tree costs a bounded scan.
const MAX_ENTRIES: usize = 4096;

/// Names of Chromium and Electron main binaries.
const BROWSER_BINARIES: &[&[u8]] = &[b"chrome", b"chromium", b"chromium-browser", b"electron"];

/// True when the app is a Chromium or Electron app: a `chrome-sandbox`
/// (the helper both ship beside their main binary) or a file named like
/// their main binary (`chrome`, `chromium`, `chromium-browser`, `electron`)
/// within [`MAX_DEPTH`] levels of the AppDir root, or a desktop entry whose
/// `Exec` program (`exec_program`, as written) is so named. Only names are
/// looked at, at most [`MAX_ENTRIES`] of them; no file is read.
pub fn is_browser_app(tree: &dyn ImageTree, exec_program: Option<&str>) -> bool {
    if let Some(program) = exec_program {
        let base = program.rsplit('/').next().unwrap_or(program);
        if BROWSER_BINARIES.contains(&base.as_bytes()) {
            return true;
        }
    }
    let mut queue = VecDeque::from([(tree.root(), 0usize)]);
    let mut seen = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        let Ok(entries) = tree.read_dir(dir) else {
            continue;
        };
        for e in entries.iter() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return false;
            }
            match e.kind {
                Kind::Dir if depth + 1 < MAX_DEPTH => queue.push_back((e.node, depth + 1)),
                Kind::File if e.name == b"chrome-sandbox" => return true,
                Kind::File if BROWSER_BINARIES.contains(&e.name.as_slice()) => return true,
                _ => {}
            }
        }
    }
    false
}

/// The launcher lines that decide on `--no-sandbox` for a browser app
/// under `policy`. The message names the launcher as invoked (`$0`).
pub fn script_lines(policy: Policy) -> Vec<u8> {
    let mut out = Vec::new();
    match policy {
        Policy::Keep => {}
        Policy::Off => out.extend_from_slice(
            b"# A Chromium/Electron app; the admin chose -o sandbox=off.\n\
set -- --no-sandbox \"$@\"\n",
        ),
        Policy::Auto => {
            out.extend_from_slice(
                b"# A Chromium/Electron app: its sandbox needs a user namespace (the setuid\n\
# chrome-sandbox cannot work from the nosuid mount). Where none can be made,\n\
# run it with --no-sandbox rather than have it exit. First, so a \"--\" among\n\
# the arguments cannot turn the flag into a file name.\n\
unshare --user true >/dev/null 2>&1\n\
case $? in\n\
0|127) ;;\n\
*)\n\
\tprintf 'appimagefs: %s: user namespaces are not available here, so Chromium'\\''s sandbox cannot start; running with --no-sandbox (less isolation; see appimagefs -o sandbox)\\n' \"${0##*/}\" >&2\n\
\tset -- --no-sandbox \"$@\" ;;\n\
esac\n",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::testtree::MemTree;

    #[test]
    fn policy_parses() {
        assert_eq!(Policy::parse("auto"), Ok(Policy::Auto));
        assert_eq!(Policy::parse("keep"), Ok(Policy::Keep));
        assert_eq!(Policy::parse("off"), Ok(Policy::Off));
        assert!(Policy::parse("on").is_err());
        assert_eq!(Policy::default(), Policy::Auto);
    }

    #[test]
    fn detects_chrome_sandbox_and_browser_binaries() {
        let electron = MemTree::new()
            .file("AppRun", b"x")
            .file("signal-desktop", b"elf")
            .file("chrome-sandbox", b"elf");
        assert!(is_browser_app(&electron, Some("AppRun")));
        let nested = MemTree::new().file("usr/lib/chromium/chrome-sandbox", b"elf");
        assert!(is_browser_app(&nested, None));
        let chromium = MemTree::new().file("usr/lib/chromium/chromium", b"elf");
        assert!(is_browser_app(&chromium, None));
        let plain = MemTree::new()
            .file("AppRun", b"x")
            .file("usr/bin/leafpad", b"elf");
        assert!(!is_browser_app(&plain, Some("leafpad")));
        assert!(is_browser_app(&plain, Some("/usr/bin/chromium")));
        // A directory named chrome-sandbox, or a name that only contains
        // "chrome", is not a browser.
        let dir = MemTree::new().file("chrome-sandbox/readme", b"x");
        assert!(!is_browser_app(&dir, None));
        let similar = MemTree::new().file("usr/bin/chrome-theme-tool", b"x");
        assert!(!is_browser_app(&similar, None));
    }

    #[test]
    fn analysis_marks_browser_apps_by_exec_or_files() {
        let entry = |exec: &str| {
            format!("[Desktop Entry]\nType=Application\nName=A\nExec={exec}\nIcon=a\n")
        };
        let by_exec = MemTree::new()
            .file("a.desktop", entry("\"chromium\" %U").as_bytes())
            .file("AppRun", b"x");
        assert!(crate::desktop::analyze(&by_exec, b"A").browser);
        let by_file = MemTree::new()
            .file("a.desktop", entry("AppRun %U").as_bytes())
            .file("AppRun", b"x")
            .file("opt/A/chrome-sandbox", b"elf");
        assert!(crate::desktop::analyze(&by_file, b"A").browser);
        let neither = MemTree::new()
            .file("a.desktop", entry("a %U").as_bytes())
            .file("AppRun", b"x");
        assert!(!crate::desktop::analyze(&neither, b"A").browser);
        assert_eq!(crate::desktop::exec_program(Some("  /x/y z")), Some("/x/y"));
        assert_eq!(crate::desktop::exec_program(Some(" ")), None);
    }

    #[test]
    fn detection_is_bounded() {
        // Too deep to be the app's own binary.
        let deep = MemTree::new().file("a/b/c/d/e/chrome-sandbox", b"elf");
        assert!(!is_browser_app(&deep, None));
        let mut wide = MemTree::new();
        for i in 0..MAX_ENTRIES {
            wide = wide.file(&format!("f{i:05}"), b"");
        }
        let wide = wide.file("zz/chrome-sandbox", b"elf");
        assert!(!is_browser_app(&wide, None));
    }

    #[test]
    fn keep_adds_nothing_off_always_auto_checks() {
        assert!(script_lines(Policy::Keep).is_empty());
        let off = String::from_utf8(script_lines(Policy::Off)).unwrap();
        assert!(off.contains("set -- --no-sandbox \"$@\"") && !off.contains("unshare"));
        let auto = String::from_utf8(script_lines(Policy::Auto)).unwrap();
        assert!(auto.contains("unshare --user true"));
    }
}
