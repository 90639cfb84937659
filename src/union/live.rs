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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::app::App;
use super::inode::Slot;
use super::scan::{self, Found};
use super::synth::SynthTree;
use super::{envfiles, integrate, naming, State, Union, Waiting};
use crate::backing::FileVersion;

/// What a rescan changed, so the kernel's caches can be told.
#[derive(Default)]
pub struct Changes {
    /// Names added to or removed from the top of the tree.
    pub names: Vec<Vec<u8>>,
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
        let listing = match scan::list(&self.source) {
            Ok(l) => l,
            Err(e) => {
                crate::log::warn(format_args!("cannot list {}: {e}", self.source.display()));
                Vec::new()
            }
        };
        // Settings files are read before the generation can change, so a
        // build that sees the new generation also sees the new settings.
        let settings_changed = self.env_files.refresh(&listing);
        let settings_files = envfiles::settings_files(&listing);
        let mut changes = Changes::default();
        let mut to_examine = Vec::new();
        {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            let present: HashMap<&PathBuf, FileVersion> = listing
                .iter()
                .filter_map(|l| Some((&l.path, l.version?)))
                .collect();
            let gone: Vec<Slot> = s
                .listed
                .values()
                .copied()
                .filter(
                    |&slot| match s.apps.get(usize::from(slot)).and_then(|a| a.as_ref()) {
                        Some(app) => present.get(&app.source) != Some(&app.detected.version),
                        None => true,
                    },
                )
                .collect();
            for slot in gone {
                changes.names.extend(retire(&mut s, slot));
            }
            let shown: HashSet<PathBuf> = s
                .live_apps()
                .iter()
                .map(|(_, a)| a.source.clone())
                .collect();
            let now = Instant::now();
            for l in &listing {
                let Some(version) = l.version else { continue };
                if shown.contains(&l.path) || settings_files.contains_key(&l.path) {
                    continue;
                }
                match s.waiting.get(&l.path) {
                    Some(Waiting::Rejected { version: v, .. }) if *v == version => {}
                    Some(Waiting::Settling { version: v, since }) if *v == version => {
                        let waited = now.saturating_duration_since(*since);
                        if waited >= settle {
                            to_examine.push((l.path.clone(), version));
                        } else {
                            soonest(&mut changes.recheck_in, settle - waited);
                        }
                    }
                    _ if settle.is_zero() => to_examine.push((l.path.clone(), version)),
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
            s.waiting.retain(|p, _| present.contains_key(p));
        }
        let examined: Vec<_> = to_examine
            .into_iter()
            .map(|(path, version)| {
                let result = scan::examine(&path);
                (path, version, result)
            })
            .collect();
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        for (path, version, result) in examined {
            match result {
                Ok(found) if found.detected.version == version => {
                    s.waiting.remove(&path);
                    changes.names.extend(add(&mut s, found));
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
                        crate::log::info(format_args!("skipping {}: {reason}", path.display()));
                    }
                    s.waiting
                        .insert(path, Waiting::Rejected { version, reason });
                }
            }
        }
        if !changes.names.is_empty() || settings_changed {
            changes.old_synth = Some(s.synth.clone());
            s.generation += 1;
            s.integrated = false;
            s.synth = Arc::new(integrate::folders_only(&s.live_apps(), s.generation));
        }
        changes
    }
}

/// Keeps the earlier of two recheck times.
fn soonest(current: &mut Option<Duration>, candidate: Duration) {
    *current = Some(current.map_or(candidate, |c| c.min(candidate)));
}

/// Removes `slot`'s folder from the listing; returns its name.
fn retire(s: &mut State, slot: Slot) -> Option<Vec<u8>> {
    let app = s.apps.get(usize::from(slot))?.clone()?;
    s.listed.remove(&app.name);
    crate::log::info(format_args!(
        "{} is gone or changed; {} leaves the tree",
        app.source.display(),
        String::from_utf8_lossy(&app.name)
    ));
    if app.retire() {
        s.apps[usize::from(slot)] = None;
    }
    Some(app.name.clone())
}

/// Mounts a detected AppImage under a fresh slot; returns its folder name.
fn add(s: &mut State, f: Found) -> Option<Vec<u8>> {
    let slot = match s.free_slot() {
        Some(slot) => slot,
        None => {
            crate::log::warn(format_args!(
                "{}: more than {} AppImages at once; not mounted",
                f.path.display(),
                Slot::MAX
            ));
            return None;
        }
    };
    let taken = s.listed.keys().cloned().collect();
    let name = naming::assign(&f.file_name, &taken);
    crate::log::info(format_args!(
        "mounting {} as {} (type {})",
        f.path.display(),
        String::from_utf8_lossy(&name),
        f.detected.kind()
    ));
    let app = Arc::new(App::new(name.clone(), f));
    s.apps[usize::from(slot)] = Some(app);
    s.listed.insert(name.clone(), slot);
    Some(name)
}
