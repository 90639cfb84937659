//! Which AppImage gets which launcher when several are mounted together.
//! The mount's `bin/` and menu (`union::integrate`) and `inspect` both
//! follow this one plan, so they cannot disagree.
//!
//! Apps with equal [`AppFacts::base_name`] are versions of one app: the
//! newest ([`version::newest`]) gets `bin/<app>` and the menu entry, and
//! every version with an `X-AppImage-Version` also gets
//! `bin/<app>-<version>` ([`names::versioned`]). Names clashing with an
//! earlier one get a counter ([`names::assign_unique`]): first every app's
//! launcher, by base name, then the versioned names.

use std::collections::{BTreeMap, HashSet};

use super::version::{self, VersionKey};
use super::{names, AppFacts};

/// One app with all its versions present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The base name its versions share.
    pub base: String,
    /// The launcher name under `bin/` (the menu entry is named after it).
    pub launcher: String,
    /// Index (into the plan's input) of the newest version, which the
    /// launcher and the menu entry run.
    pub newest: usize,
    /// Every version's index, in input order, with its versioned launcher
    /// name if it has one.
    pub members: Vec<(usize, Option<String>)>,
}

/// Plans the launchers of `apps`: each app's facts (`None` for an image
/// that cannot be opened, which gets nothing) and the modification time of
/// its AppImage file (the tie-breaker between versions). Groups come in
/// base-name order.
pub fn plan(apps: &[(Option<&AppFacts>, i64)]) -> Vec<Group> {
    let mut by_base: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (facts, _)) in apps.iter().enumerate() {
        if let Some(f) = facts {
            by_base.entry(&f.base_name).or_default().push(i);
        }
    }
    let version_of = |i: usize| apps[i].0.and_then(|f| f.version.clone());
    let mut taken = HashSet::new();
    let mut groups = Vec::new();
    for (base, members) in by_base {
        let keys: Vec<VersionKey> = members
            .iter()
            .map(|&i| VersionKey {
                version: version_of(i),
                mtime: apps[i].1,
            })
            .collect();
        let Some(newest) = version::newest(&keys).map(|k| members[k]) else {
            continue;
        };
        let launcher = names::assign_unique(base, &taken);
        taken.insert(launcher.clone());
        groups.push(Group {
            base: base.to_string(),
            launcher,
            newest,
            members: members.into_iter().map(|i| (i, None)).collect(),
        });
    }
    for group in &mut groups {
        for (i, versioned) in &mut group.members {
            let name = version_of(*i)
                .and_then(|v| names::versioned(&group.launcher, &v))
                .map(|name| names::assign_unique(&name, &taken));
            if let Some(name) = &name {
                taken.insert(name.clone());
            }
            *versioned = name;
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(base: &str, version: Option<&str>) -> AppFacts {
        AppFacts {
            base_name: base.to_string(),
            desktop_file: None,
            desktop_choice: None,
            other_desktop_files: Vec::new(),
            name: None,
            version: version.map(str::to_string),
            menu: Err("none".to_string()),
            icons: Vec::new(),
            mime: Vec::new(),
            mime_problems: Vec::new(),
            browser: false,
        }
    }

    #[test]
    fn the_newest_version_gets_the_launcher_and_every_version_its_own() {
        let old = facts("tool", Some("1.9"));
        let new = facts("tool", Some("1.10"));
        let bare = facts("tool", None);
        let clash = facts("tool-1.10", None);
        let other = facts("other", Some("1.0"));
        let apps = [
            (Some(&old), 5),
            (Some(&new), 1),
            (None, 9),
            (Some(&bare), 3),
            (Some(&clash), 0),
            (Some(&other), 0),
        ];
        let groups = plan(&apps);
        let names: Vec<_> = groups
            .iter()
            .map(|g| (g.launcher.as_str(), g.newest, g.members.clone()))
            .collect();
        let v = |s: &str| Some(s.to_string());
        assert_eq!(
            names,
            [
                ("other", 5, vec![(5, v("other-1.0"))]),
                (
                    "tool",
                    1,
                    vec![(0, v("tool-1.9")), (1, v("tool-1.10-2")), (3, None)]
                ),
                ("tool-1.10", 4, vec![(4, None)]),
            ]
        );
    }
}
