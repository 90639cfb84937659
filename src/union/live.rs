//! Following the source folder: a rescan compares the folder with what is
//! mounted and applies the difference.
//!
//! Rules:
//! - A new or changed file is shown once detection accepts it (its payload
//!   fits in the file) and its size and times have not changed for the
//!   settle time, so a file still being copied is not shown early.
//! - A file that is not a usable AppImage is reported once per version, and
//!   examined again only when it changes.
//! - `<file>.env` beside an AppImage `<file>` is its settings file
//!   ([`envfiles`]), never examined as an AppImage; a new, changed or
//!   removed one rebuilds the launchers.
//! - A removed, renamed or changed file's folder leaves the listing at once;
//!   the app stays reachable through inodes the kernel already holds (so a
//!   running app keeps working from the version it started with) until the
//!   kernel forgets them. A renamed file reappears under its new name as a
//!   new app; a changed file reappears with new inode numbers.
//! - What cannot be seen is not taken as gone: when listing the folder
//!   fails (other than because the folder itself is gone) or one file's
//!   `stat` fails, what is mounted stays as it is and the rescan is tried
//!   again a second later.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::app::App;
use super::inode::Slot;
use super::opened::OpenedTrees;
use super::scan::{self, Access, Found, Listed, Stat};
use super::synth::SynthTree;
use super::{envfiles, integrate, naming, State, Union, Waiting};
use crate::backing::FileVersion;

/// How soon a rescan that could not see everything (a failed listing, a
/// failed `stat`) is tried again.
pub const RETRY: Duration = Duration::from_secs(1);

/// What a rescan changed, so the kernel's caches can be told.
#[derive(Default)]
pub struct Changes {
    /// Names added to or removed from the top of the tree.
    pub names: Vec<Vec<u8>>,
    /// App folders whose AppImage's owner, mode or ACL changed: the kernel
    /// must ask again who may enter them.
    pub revalidate: Vec<Vec<u8>>,
    /// The synthesized tree before the change, when it changed.
    pub old_synth: Option<Arc<SynthTree>>,
    /// When files are waiting to settle, rescan again after this long.
    pub recheck_in: Option<Duration>,
}

impl Union {
    /// Brings the mounted set in line with the source folder. With a zero
    /// `settle`, files are accepted as soon as detection does (used at
    /// start-up, when nothing is being copied as far as we can know).
    pub fn rescan(&self, settle: Duration) -> Changes {
        let _one_at_a_time = self.rescanning.lock().unwrap_or_else(|p| p.into_inner());
        self.rescan_from(scan::list(&self.source), settle)
    }

    /// [`rescan`](Self::rescan) with the folder's listing given: a listing
    /// that failed because the folder is gone empties the tree; any other
    /// failure (an I/O error, no descriptor free, a network filesystem's
    /// hiccup) keeps what is mounted and asks to be called again in
    /// [`RETRY`]. So does a file whose `stat` failed, for that file.
    fn rescan_from(&self, listing: std::io::Result<Vec<Listed>>, settle: Duration) -> Changes {
        let listing = match listing {
            Ok(l) => {
                self.note_listing_error(None);
                l
            }
            Err(e) if scan::is_absent(&e) => {
                self.note_listing_error(Some(format!(
                    "cannot list {}: {e}",
                    self.source.display()
                )));
                Vec::new()
            }
            Err(e) => {
                self.note_listing_error(Some(format!(
                    "cannot list {}: {e}; keeping the mounted apps and trying again",
                    self.source.display()
                )));
                return Changes {
                    recheck_in: Some(RETRY),
                    ..Changes::default()
                };
            }
        };
        // Settings files are read before the generation can change, so a
        // build that sees the new generation also sees the new settings.
        let settings_changed = self.env_files.refresh(&listing);
        let settings_files = envfiles::settings_files(&listing);
        let mut changes = Changes::default();
        let mut to_examine = Vec::new();
        let mut later = Deferred::default();
        {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            let present: HashMap<&PathBuf, FileVersion> = listing
                .iter()
                .filter_map(|l| Some((&l.path, l.stat.version()?)))
                .collect();
            let unsure: HashSet<&PathBuf> = listing
                .iter()
                .filter(|l| matches!(l.stat, Stat::Failed(_)))
                .map(|l| &l.path)
                .collect();
            for l in &listing {
                if let Stat::Failed(why) = &l.stat {
                    crate::log::debug(format_args!(
                        "cannot stat {} ({why}); keeping it as it was",
                        l.path.display()
                    ));
                    soonest(&mut changes.recheck_in, RETRY);
                }
            }
            let gone: Vec<Slot> = s
                .listed
                .values()
                .copied()
                .filter(
                    |&slot| match s.apps.get(usize::from(slot)).and_then(|a| a.as_ref()) {
                        Some(app) => {
                            !unsure.contains(&app.source)
                                && present.get(&app.source) != Some(&app.detected.version)
                        }
                        None => true,
                    },
                )
                .collect();
            for slot in gone {
                changes.names.extend(retire(&mut s, slot, &mut later));
            }
            let access: HashMap<&PathBuf, &Access> = listing
                .iter()
                .filter_map(|l| match &l.stat {
                    Stat::File(_, a) => Some((&l.path, a)),
                    _ => None,
                })
                .collect();
            for (_, app) in s.live_apps() {
                if let Some(now) = access.get(&app.source) {
                    if app.update_access(now) {
                        later.info(format!(
                            "{}: owner, mode or ACL changed; who may enter {} follows",
                            app.source.display(),
                            String::from_utf8_lossy(&app.name)
                        ));
                        changes.revalidate.push(app.name.clone());
                    }
                }
            }
            let shown: HashSet<PathBuf> = s
                .live_apps()
                .iter()
                .map(|(_, a)| a.source.clone())
                .collect();
            let now = Instant::now();
            for l in &listing {
                let Stat::File(version, access) = &l.stat else {
                    continue;
                };
                let version = *version;
                if shown.contains(&l.path) || settings_files.contains_key(&l.path) {
                    continue;
                }
                match s.waiting.get(&l.path) {
                    // A rejected file is examined again when it changes, or
                    // when who may read it does (it may have been rejected
                    // because the daemon could not open it).
                    Some(Waiting::Rejected {
                        version: v,
                        access: a,
                        ..
                    }) if *v == version && a == access => {}
                    Some(Waiting::Settling { version: v, since }) if *v == version => {
                        let waited = now.saturating_duration_since(*since);
                        if waited >= settle {
                            to_examine.push((l.path.clone(), version, access.clone()));
                        } else {
                            soonest(&mut changes.recheck_in, settle - waited);
                        }
                    }
                    _ if settle.is_zero() => {
                        to_examine.push((l.path.clone(), version, access.clone()))
                    }
                    _ => {
                        s.waiting.insert(
                            l.path.clone(),
                            Waiting::Settling {
                                version,
                                since: now,
                            },
                        );
                        soonest(&mut changes.recheck_in, settle);
                    }
                }
            }
            s.waiting
                .retain(|p, _| present.contains_key(p) || unsure.contains(p));
        }
        let examined: Vec<_> = to_examine
            .into_iter()
            .map(|(path, version, access)| {
                let result = scan::examine(&path);
                (path, version, access, result)
            })
            .collect();
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        for (path, version, access, result) in examined {
            match result {
                Ok(found) if found.detected.version == version => {
                    s.waiting.remove(&path);
                    changes
                        .names
                        .extend(add(&mut s, found, &self.opened, &mut later));
                }
                Ok(_) => {
                    s.waiting.insert(
                        path,
                        Waiting::Settling {
                            version,
                            since: Instant::now(),
                        },
                    );
                    soonest(
                        &mut changes.recheck_in,
                        settle.max(Duration::from_millis(100)),
                    );
                }
                Err(reason) => {
                    let repeated = matches!(s.waiting.get(&path),
                        Some(Waiting::Rejected { reason: r, .. }) if *r == reason);
                    if !repeated {
                        later.info(format!("skipping {}: {reason}", path.display()));
                    }
                    s.waiting.insert(
                        path,
                        Waiting::Rejected {
                            version,
                            access,
                            reason,
                        },
                    );
                }
            }
        }
        if !changes.names.is_empty() || settings_changed {
            changes.old_synth = Some(s.synth.clone());
            s.generation += 1;
            s.changed_at = super::now();
            s.integrated = false;
            s.synth = Arc::new(integrate::folders_only(&s.live_apps(), s.generation));
        }
        drop(s);
        later.run();
        changes
    }
}

/// What a rescan does once the state lock is released: its log lines (a
/// stalled log file must not freeze every request) and dropping retired
/// apps (the last reference frees an image's tree and cache entries).
#[derive(Default)]
struct Deferred {
    /// Log lines with their level.
    lines: Vec<(Level, String)>,
    /// Apps to drop.
    released: Vec<Arc<App>>,
}

/// How loud a deferred log line is.
enum Level {
    /// Only with `-v`.
    Debug,
    Info,
    Warn,
}

impl Deferred {
    fn debug(&mut self, line: String) {
        self.lines.push((Level::Debug, line));
    }

    fn info(&mut self, line: String) {
        self.lines.push((Level::Info, line));
    }

    fn warn(&mut self, line: String) {
        self.lines.push((Level::Warn, line));
    }

    fn run(self) {
        for (level, line) in &self.lines {
            match level {
                Level::Debug => crate::log::debug(format_args!("{line}")),
                Level::Info => crate::log::info(format_args!("{line}")),
                Level::Warn => crate::log::warn(format_args!("{line}")),
            }
        }
        drop(self.released);
    }
}

impl Union {
    /// Logs a failure to list the source folder when it starts or changes,
    /// and its end, not every retry.
    fn note_listing_error(&self, error: Option<String>) {
        let mut last = self.listing_error.lock().unwrap_or_else(|p| p.into_inner());
        if *last == error {
            return;
        }
        match &error {
            Some(e) => crate::log::warn(format_args!("{e}")),
            None => crate::log::info(format_args!(
                "{} can be listed again",
                self.source.display()
            )),
        }
        *last = error;
    }
}

/// Keeps the earlier of two recheck times.
fn soonest(current: &mut Option<Duration>, candidate: Duration) {
    *current = Some(current.map_or(candidate, |c| c.min(candidate)));
}

/// Removes `slot`'s folder from the listing; returns its name.
fn retire(s: &mut State, slot: Slot, later: &mut Deferred) -> Option<Vec<u8>> {
    let app = s.apps.get(usize::from(slot))?.clone()?;
    s.listed.remove(&app.name);
    later.info(format!(
        "{} is gone or changed; {} leaves the tree",
        app.source.display(),
        String::from_utf8_lossy(&app.name)
    ));
    if app.retire(s) {
        s.apps[usize::from(slot)] = None;
    }
    let name = app.name.clone();
    later.released.push(app);
    Some(name)
}

/// Mounts a detected AppImage under a fresh slot; returns its folder name.
fn add(
    s: &mut State,
    f: Found,
    opened: &Arc<OpenedTrees>,
    later: &mut Deferred,
) -> Option<Vec<u8>> {
    let slot = match s.free_slot() {
        Some(slot) => slot,
        None => {
            later.warn(format!(
                "{}: more than {} AppImages at once; not mounted",
                f.path.display(),
                Slot::MAX
            ));
            return None;
        }
    };
    let name = naming::assign_with(&f.file_name, |n| s.listed.contains_key(n));
    later.debug(format!(
        "mounting {} as {} (type {})",
        f.path.display(),
        String::from_utf8_lossy(&name),
        f.detected.kind()
    ));
    let app = Arc::new(App::new(name.clone(), f, opened.clone()));
    s.apps[usize::from(slot)] = Some(app);
    s.listed.insert(name.clone(), slot);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::BlockCache;
    use crate::test_support::runtime_stub::StubRuntime;
    use crate::test_support::TempDir;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Builds `dir/name`: the stand-in runtime and a SquashFS holding
    /// `hello.txt`.
    fn tiny_appimage(dir: &Path, name: &str) -> PathBuf {
        let tree = dir.join(format!("{name}.tree"));
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("hello.txt"), b"hello\n").unwrap();
        let sqfs = dir.join(format!("{name}.sqfs"));
        let status = std::process::Command::new("mksquashfs")
            .arg(&tree)
            .arg(&sqfs)
            .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
            .status()
            .unwrap();
        assert!(status.success());
        let mut bytes = StubRuntime::type2().bytes();
        bytes.extend_from_slice(&std::fs::read(&sqfs).unwrap());
        let out = dir.join(name);
        std::fs::write(&out, bytes).unwrap();
        out
    }

    fn union(src: &Path) -> Union {
        Union::new(
            src,
            Path::new("/opt/apps"),
            Arc::new(BlockCache::new(16 << 20)),
        )
        .unwrap()
    }

    /// Retiring an app logs; with the log blocked (a stalled log file,
    /// here: stderr's lock held), other threads must still get at the
    /// state.
    #[test]
    fn a_rescan_does_not_log_under_the_state_lock() {
        let dir = TempDir::new("live-log-lock");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let app = tiny_appimage(&src, "a.AppImage");
        let u = Arc::new(union(&src));
        std::fs::remove_file(&app).unwrap();
        let stalled = std::io::stderr().lock();
        let rescanner = u.clone();
        let rescan = std::thread::spawn(move || rescanner.rescan(Duration::ZERO).names);
        std::thread::sleep(Duration::from_millis(300));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = u.clone();
        std::thread::spawn(move || {
            let _ = tx.send(reader.apps().len());
        });
        let answered = rx.recv_timeout(Duration::from_secs(3));
        drop(stalled);
        assert_eq!(rescan.join().unwrap(), [b"a".to_vec()]);
        assert!(
            answered.is_ok(),
            "the state stayed locked while the rescan waited for the log"
        );
    }

    #[test]
    fn a_failed_listing_keeps_the_apps_until_the_folder_is_gone() {
        let dir = TempDir::new("live-listing-error");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        tiny_appimage(&src, "a.AppImage");
        let u = union(&src);
        let before = u.lookup(1, b"a").unwrap().ino;
        let eio = std::io::Error::from_raw_os_error(libc::EIO);
        let changes = u.rescan_from(Err(eio), Duration::ZERO);
        assert!(changes.names.is_empty(), "an I/O error retired apps");
        assert_eq!(changes.recheck_in, Some(RETRY));
        assert_eq!(u.lookup(1, b"a").unwrap().ino, before);
        let gone = std::io::Error::from_raw_os_error(libc::ENOENT);
        let changes = u.rescan_from(Err(gone), Duration::ZERO);
        assert_eq!(changes.names, [b"a".to_vec()]);
        assert_eq!(u.lookup(1, b"a").unwrap_err().errno(), libc::ENOENT);
    }

    #[test]
    fn a_failed_stat_or_open_keeps_the_app_and_is_retried() {
        let dir = TempDir::new("live-stat-error");
        let store = dir.path().join("store");
        let src = dir.path().join("src");
        std::fs::create_dir(&store).unwrap();
        std::fs::create_dir(&src).unwrap();
        tiny_appimage(&store, "real.AppImage");
        // src/a.AppImage -> .d/real.AppImage, src/.d -> ../store; turning
        // .d into a loop makes stat and open of a.AppImage fail (ELOOP).
        symlink(".d/real.AppImage", src.join("a.AppImage")).unwrap();
        symlink("../store", src.join(".d")).unwrap();
        let swap = |target: &str| {
            std::fs::remove_file(src.join(".d")).unwrap();
            symlink(target, src.join(".d")).unwrap();
        };
        let u = union(&src);
        // The folder's inode from the listing, which opens no image.
        let folder_of = |u: &Union| {
            let listing = u.readdir(1).unwrap();
            listing.iter().find(|l| l.name == b"a").map(|l| l.ino)
        };
        let folder = folder_of(&u).unwrap();
        swap(".d");
        let changes = u.rescan(Duration::ZERO);
        assert!(changes.names.is_empty(), "a failed stat retired the app");
        assert_eq!(changes.recheck_in, Some(RETRY));
        assert_eq!(folder_of(&u), Some(folder));
        // Opening the image fails now too, and is not remembered.
        assert_eq!(
            u.lookup(folder, b"hello.txt").unwrap_err().errno(),
            libc::EIO
        );
        swap("../store");
        assert!(u.rescan(Duration::ZERO).names.is_empty());
        assert_eq!(folder_of(&u), Some(folder));
        let hello = u.lookup(folder, b"hello.txt").unwrap();
        assert_eq!(u.read(hello.ino, 0, 100).unwrap(), b"hello\n");
        // Really gone: the app leaves.
        std::fs::remove_file(src.join(".d")).unwrap();
        assert_eq!(u.rescan(Duration::ZERO).names, [b"a".to_vec()]);
    }
}
