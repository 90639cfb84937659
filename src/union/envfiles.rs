//! Following the apps' settings files (`<AppImage file name>.env`, see
//! [`crate::desktop::envfile`]) in the source folder: each rescan re-reads
//! the ones that are new or changed, logs their broken lines once per
//! version of the file, and says whether the launchers must be rebuilt.
//!
//! A settings file is used only when every user may read it: the launcher
//! that embeds its values is readable by every user of the mount.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::scan::Listed;
use crate::backing::FileVersion;
use crate::desktop::envfile::{self, Setting};

/// The settings of each AppImage that has a settings file, by the
/// AppImage's path.
pub type Snapshot = Arc<HashMap<PathBuf, Arc<Vec<Setting>>>>;

/// What tells that a settings file changed: its version, and its status
/// change time (a `chmod` that makes it usable changes only that).
type Stamp = (FileVersion, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    Some((
        FileVersion::from_metadata(&meta),
        meta.ctime(),
        meta.ctime_nsec(),
    ))
}

/// A settings file as last read: when, and what it set.
type Known = (Stamp, Arc<Vec<Setting>>);

/// The settings files last read, with the version each was read at.
#[derive(Default)]
pub struct EnvFiles {
    known: Mutex<HashMap<PathBuf, Known>>,
    snapshot: Mutex<Snapshot>,
}

/// The settings files in a listing: `<name>.env` where `<name>` is also
/// listed, mapped to the AppImage path `<name>` they belong to.
pub fn settings_files(listing: &[Listed]) -> HashMap<PathBuf, PathBuf> {
    let names: HashSet<&[u8]> = listing.iter().map(|l| &l.file_name[..]).collect();
    listing
        .iter()
        .filter(|l| l.stat.version().is_some())
        .filter_map(|l| {
            let stem = l.file_name.strip_suffix(envfile::SUFFIX.as_bytes())?;
            names.contains(stem).then(|| {
                let app = l.path.with_file_name(std::ffi::OsStr::from_bytes(stem));
                (l.path.clone(), app)
            })
        })
        .collect()
}

impl EnvFiles {
    /// Brings the known settings in line with `listing`, reading new and
    /// changed files; true when any app's settings changed. Called by the
    /// rescan only (one at a time), with no other lock held.
    pub fn refresh(&self, listing: &[Listed]) -> bool {
        let files = settings_files(listing);
        let mut changed = false;
        let mut next = HashMap::new();
        let mut known = std::mem::take(&mut *self.known.lock().unwrap_or_else(|p| p.into_inner()));
        for (file, app) in &files {
            let Some(version) = stamp(file) else {
                continue;
            };
            let entry = match known.remove(app) {
                Some((v, settings)) if v == version => (v, settings),
                _ => {
                    changed = true;
                    (version, Arc::new(read(file)))
                }
            };
            next.insert(app.clone(), entry);
        }
        changed |= !known.is_empty();
        for app in known.keys() {
            crate::log::info(format_args!(
                "{}{}: gone; the launcher no longer applies it",
                app.display(),
                envfile::SUFFIX
            ));
        }
        let snapshot: HashMap<PathBuf, Arc<Vec<Setting>>> = next
            .iter()
            .map(|(app, (_, settings))| (app.clone(), settings.clone()))
            .collect();
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = next;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        changed
    }

    /// The settings as of the last [`EnvFiles::refresh`].
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Reads and parses one settings file, logging what is wrong with it; an
/// unusable file gives no settings.
fn read(path: &Path) -> Vec<Setting> {
    match read_bounded(path) {
        Err(why) => {
            crate::log::warn(format_args!("{}: ignored: {why}", path.display()));
            Vec::new()
        }
        Ok(bytes) => {
            let parsed = envfile::parse(&bytes);
            for problem in &parsed.problems {
                crate::log::warn(format_args!("{}: {problem}; skipped", path.display()));
            }
            crate::log::info(format_args!(
                "{}: {} setting(s) for the launcher",
                path.display(),
                parsed.settings.len()
            ));
            parsed.settings
        }
    }
}

/// The file's bytes (one more than [`envfile::MAX_BYTES`] at most, so the
/// parser sees it is too large), opened without blocking on a fifo.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.mode() & 0o004 == 0 {
        return Err(
            "not readable by every user, and every user of the mount can read the launcher \
             that would hold its values (chmod o+r to use it)"
                .into(),
        );
    }
    let mut bytes = Vec::new();
    file.take(envfile::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::union::scan::Stat;

    fn listed(dir: &Path, name: &str) -> Listed {
        let path = dir.join(name);
        Listed {
            stat: Stat::of(&path),
            file_name: name.as_bytes().to_vec(),
            path,
        }
    }

    #[test]
    fn settings_files_are_read_again_only_when_they_change() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = crate::test_support::TempDir::new("envfiles");
        let dir = tmp.path();
        for name in ["a.AppImage", "b.AppImage", "orphan.AppImage.env.env"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        std::fs::write(dir.join("a.AppImage.env"), b"X=1\n").unwrap();
        std::fs::write(dir.join("b.AppImage.env"), b"Y=2\n").unwrap();
        std::fs::set_permissions(
            dir.join("b.AppImage.env"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let names = [
            "a.AppImage",
            "a.AppImage.env",
            "b.AppImage",
            "b.AppImage.env",
            "orphan.AppImage.env.env",
        ];
        let list = |names: &[&str]| names.iter().map(|n| listed(dir, n)).collect::<Vec<_>>();
        let files = settings_files(&list(&names));
        assert_eq!(files.len(), 2, "{files:?}");
        let env = EnvFiles::default();
        assert!(env.refresh(&list(&names)));
        let snap = env.snapshot();
        assert_eq!(
            *snap[&dir.join("a.AppImage")],
            vec![Setting::Set("X".into(), b"1".to_vec())]
        );
        assert!(
            snap[&dir.join("b.AppImage")].is_empty(),
            "a file not everyone may read is not used"
        );
        assert!(!env.refresh(&list(&names)), "nothing changed");
        std::fs::write(dir.join("a.AppImage.env"), b"X=22\n").unwrap();
        assert!(env.refresh(&list(&names)));
        assert_eq!(
            *env.snapshot()[&dir.join("a.AppImage")],
            vec![Setting::Set("X".into(), b"22".to_vec())]
        );
        assert!(env.refresh(&list(&names[..3])), "b's file is gone");
        assert!(!env.snapshot().contains_key(&dir.join("b.AppImage")));
    }
}
