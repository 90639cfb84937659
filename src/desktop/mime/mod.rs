//! File types: the shared-mime-info packages AppImages ship in
//! `usr/share/mime/packages/*.xml`, found ([`find_packages`]), parsed
//! ([`package`]) and merged into the database files of
//! `<mountpoint>/share/mime/` ([`database`]), so that desktop programs know
//! the types only an AppImage defines.

pub mod cache;
pub mod database;
pub mod package;

use super::paths;
use crate::tree::{ImageTree, Kind, NodeId};

/// Where an AppDir keeps its MIME packages.
pub const PACKAGES_DIR: &[u8] = b"usr/share/mime/packages";

/// Most packages taken from one app.
pub const MAX_PACKAGES: usize = 32;

/// One package file of an app.
#[derive(Clone, Debug)]
pub struct PackageFile {
    /// File name (ends in `.xml`, shell-friendly).
    pub name: String,
    /// Symlink-free path of the file inside the AppDir.
    pub source: Vec<u8>,
    /// The file's node.
    pub node: NodeId,
    /// What it defines.
    pub types: Vec<package::MimeType>,
}

impl PackageFile {
    /// Its name under `<mountpoint>/share/mime/packages/` for the app whose
    /// launcher is `launcher`: `appimagefs-<launcher>-<name>`.
    pub fn link_name(&self, launcher: &str) -> String {
        format!("{}{launcher}-{}", super::PREFIX, self.name)
    }
}

/// The app's packages and the problems met reading them (one line each).
pub fn find_packages(tree: &dyn ImageTree) -> (Vec<PackageFile>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let Ok(Some(dir)) = paths::resolve(tree, PACKAGES_DIR) else {
        return (found, problems);
    };
    if dir.attr.kind != Kind::Dir {
        return (found, problems);
    }
    let Ok(listing) = tree.read_dir(dir.node) else {
        return (found, problems);
    };
    let mut names: Vec<&[u8]> = listing
        .iter()
        .map(|e| &e.name[..])
        .filter(|n| n.ends_with(b".xml"))
        .collect();
    names.sort();
    for name in names.into_iter().take(MAX_PACKAGES) {
        let shown = String::from_utf8_lossy(name).into_owned();
        let Some(clean) = std::str::from_utf8(name)
            .ok()
            .filter(|n| package::valid_word(n))
        else {
            problems.push(format!("MIME package {shown:?}: unusable file name"));
            continue;
        };
        let path = [PACKAGES_DIR, b"/", name].concat();
        let Ok(Some(file)) = paths::resolve_file(tree, &path) else {
            continue;
        };
        let parsed = paths::read_capped(tree, file.node, package::MAX_BYTES)
            .and_then(|bytes| package::parse(&bytes));
        match parsed {
            Ok(p) => {
                problems.extend(
                    p.problems
                        .iter()
                        .map(|why| format!("MIME package {clean}: {why}")),
                );
                found.push(PackageFile {
                    name: clean.to_string(),
                    source: file.path,
                    node: file.node,
                    types: p.types,
                });
            }
            Err(why) => problems.push(format!("MIME package {clean} ignored: {why}")),
        }
    }
    (found, problems)
}
