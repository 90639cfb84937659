//! Building `bin/` and `share/` from the apps' desktop entries and icons.
//!
//! Apps with equal launcher base names are versions of one app: `bin/<app>`
//! and the menu use the newest, and every version with an
//! `X-AppImage-Version` also gets `bin/<app>-<version>`, so each stays
//! reachable by name ([`desktop::plan`], which `inspect` follows too).
//!
//! This opens every image (a few metadata blocks each), so it runs on first
//! use of `bin/` or `share/`, not at mount time: listing the mount's top
//! level stays free.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::app::App;
use super::envfiles;
use super::inode::{self, Slot, IMAGE_ROOT};
use super::synth::{SynthContent, SynthNode, SynthTree, BIN, ROOT, SHARE};
use crate::cache::BlockCache;
use crate::desktop::mime::database::Database;
use crate::desktop::sandbox::Policy;
use crate::desktop::{self, launcher::Extras, AppFacts};
use crate::tree::Kind;

/// Threads used to read the apps' desktop entries in parallel.
const WORKERS: usize = 4;

/// A synthesized tree for `generation` with only the app folders and empty
/// `bin/` and `share/`.
pub fn folders_only(apps: &[(Slot, Arc<App>)], generation: u64) -> SynthTree {
    let mut tree = SynthTree::new(generation);
    for (slot, app) in apps {
        tree.add_entry(ROOT, &app.name, inode::encode(*slot, IMAGE_ROOT), Kind::Dir);
    }
    tree
}

/// The complete synthesized tree: app folders, launchers, menu entries and
/// icons. Apps whose image cannot be opened get none of them (the reason is
/// logged by the image opener). `sandbox` is the `-o sandbox=` policy for
/// Chromium and Electron apps' launchers.
pub fn build(
    apps: &[(Slot, Arc<App>)],
    generation: u64,
    cache: &Arc<BlockCache>,
    mountpoint: &Path,
    env: &envfiles::Snapshot,
    sandbox: Policy,
) -> SynthTree {
    let facts = analyze_all(apps, cache);
    let mut tree = folders_only(apps, generation);
    let planned: Vec<(Option<&AppFacts>, i64)> = facts
        .iter()
        .zip(apps)
        .map(|(f, (_, app))| (f.as_ref(), app.file_mtime))
        .collect();
    let groups = desktop::plan::plan(&planned);
    let mut types = Database::default();
    let mut handlers = BTreeMap::new();
    for group in &groups {
        let newest = &apps[group.newest].1;
        for &(i, _) in &group.members {
            if i != group.newest {
                crate::log::info(format_args!(
                    "{}: an older version of {}; bin/{} and the menu use {}",
                    apps[i].1.source.display(),
                    group.base,
                    group.base,
                    newest.source.display()
                ));
            }
        }
        let Some(f) = &facts[group.newest] else {
            continue;
        };
        let extras = extras_for(newest, f, env, sandbox);
        add_app(
            &mut tree,
            newest,
            f,
            &group.launcher,
            mountpoint,
            &extras,
            &mut handlers,
        );
        add_mime_packages(&mut tree, newest, f, &group.launcher, &mut types);
    }
    add_mime_database(&mut tree, &types);
    add_mimeinfo_cache(&mut tree, &handlers);
    for group in &groups {
        for (i, name) in &group.members {
            let (Some(name), Some(f)) = (name, &facts[*i]) else {
                continue;
            };
            let app = &apps[*i].1;
            add_launcher(
                &mut tree,
                app,
                name,
                desktop::launcher_for(
                    &app.source,
                    mountpoint,
                    &app.name,
                    &extras_for(app, f, env, sandbox),
                ),
            );
        }
    }
    tree
}

fn analyze_all(apps: &[(Slot, Arc<App>)], cache: &Arc<BlockCache>) -> Vec<Option<AppFacts>> {
    let mut facts: Vec<Option<AppFacts>> = Vec::new();
    facts.resize_with(apps.len(), || None);
    let chunk = apps.len().div_ceil(WORKERS).max(1);
    std::thread::scope(|scope| {
        for (apps, out) in apps.chunks(chunk).zip(facts.chunks_mut(chunk)) {
            scope.spawn(move || {
                for ((_, app), slot) in apps.iter().zip(out.iter_mut()) {
                    *slot = app
                        .tree(cache)
                        .ok()
                        .map(|tree| desktop::analyze(tree.as_ref(), &app.name));
                }
            });
        }
    });
    facts
}

/// Adds `bin/<name>` holding `script`, or logs why the app has none.
fn add_launcher(tree: &mut SynthTree, app: &App, name: &str, script: Result<Vec<u8>, String>) {
    let added = script.and_then(|script| {
        let node = SynthNode {
            perm: 0o555,
            content: SynthContent::File(script),
        };
        tree.add(BIN, name.as_bytes(), node)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    if let Err(e) = added {
        crate::log::warn(format_args!(
            "{}: no launcher {name}: {e}",
            String::from_utf8_lossy(&app.name)
        ));
    }
}

/// Adds `share/<dir>/<name>` as a relative symbolic link to `source` in the
/// folder of `app`, so the link resolves inside the mount wherever it is
/// mounted.
fn link_into_app(
    tree: &mut SynthTree,
    dir: &str,
    name: &str,
    app: &App,
    source: &[u8],
) -> crate::error::Result<()> {
    let mut target = b"../".repeat(1 + dir.split('/').count());
    target.extend_from_slice(&app.name);
    target.push(b'/');
    target.extend_from_slice(source);
    let d = tree.mkdir_p(SHARE, dir)?;
    tree.add(
        d,
        name.as_bytes(),
        SynthNode {
            perm: 0o777,
            content: SynthContent::Symlink(target),
        },
    )
    .map(|_| ())
}

/// Links the app's MIME packages into `share/mime/packages/` and adds
/// their types to `types`.
fn add_mime_packages(
    tree: &mut SynthTree,
    app: &App,
    facts: &AppFacts,
    launcher: &str,
    types: &mut Database,
) {
    let folder = String::from_utf8_lossy(&app.name);
    for problem in &facts.mime_problems {
        crate::log::info(format_args!("{folder}: {problem}"));
    }
    for package in &facts.mime {
        if !types.add(&package.types) {
            crate::log::warn(format_args!(
                "{folder}: MIME package {}: the MIME database is full; types left out",
                package.name
            ));
        }
        let name = package.link_name(launcher);
        if let Err(e) = link_into_app(tree, "mime/packages", &name, app, &package.source) {
            crate::log::warn(format_args!("{folder}: {name} left out: {e}"));
        }
    }
}

/// Writes `share/applications/mimeinfo.cache`, which `update-desktop-database`
/// would make: for each type the menu entries that open it. GLib finds an
/// entry's `MimeType=` through this file only.
fn add_mimeinfo_cache(tree: &mut SynthTree, handlers: &BTreeMap<String, Vec<String>>) {
    if handlers.is_empty() {
        return;
    }
    let mut text = String::from("[MIME Cache]\n");
    for (ty, entries) in handlers {
        text.push_str(ty);
        text.push('=');
        for e in entries {
            text.push_str(e);
            text.push(';');
        }
        text.push('\n');
    }
    let added = tree.mkdir_p(SHARE, "applications").and_then(|dir| {
        let node = SynthNode {
            perm: 0o444,
            content: SynthContent::File(text.into_bytes()),
        };
        tree.add(dir, b"mimeinfo.cache", node)
    });
    if let Err(e) = added {
        crate::log::warn(format_args!("no share/applications/mimeinfo.cache: {e}"));
    }
}

/// Writes the merged MIME database files into `share/mime/`.
fn add_mime_database(tree: &mut SynthTree, types: &Database) {
    if types.is_empty() {
        return;
    }
    let added = tree.mkdir_p(SHARE, "mime").and_then(|dir| {
        for (name, contents) in types.files() {
            let node = SynthNode {
                perm: 0o444,
                content: SynthContent::File(contents),
            };
            tree.add(dir, name.as_bytes(), node)?;
        }
        Ok(())
    });
    if let Err(e) = added {
        crate::log::warn(format_args!("share/mime left incomplete: {e}"));
    }
}

/// What the launcher of `app` adds to the runtime's behaviour: its
/// settings file's variables, and for a browser app the `sandbox` policy.
fn extras_for(app: &App, facts: &AppFacts, env: &envfiles::Snapshot, sandbox: Policy) -> Extras {
    Extras {
        env: env.get(&app.source).map(|s| s.to_vec()).unwrap_or_default(),
        sandbox: facts.browser.then_some(sandbox),
    }
}

fn add_app(
    tree: &mut SynthTree,
    app: &App,
    facts: &AppFacts,
    launcher: &str,
    mountpoint: &Path,
    extras: &Extras,
    handlers: &mut BTreeMap<String, Vec<String>>,
) {
    let out = desktop::render(facts, launcher, &app.source, mountpoint, &app.name, extras);
    let folder = String::from_utf8_lossy(&app.name).into_owned();
    add_launcher(tree, app, launcher, out.script);
    match out.menu {
        Ok(menu) => {
            let file_name = menu.file_name.clone();
            let added = tree.mkdir_p(SHARE, "applications").and_then(|dir| {
                let node = SynthNode {
                    perm: 0o444,
                    content: SynthContent::File(menu.contents),
                };
                tree.add(dir, menu.file_name.as_bytes(), node)
            });
            match added {
                Ok(_) => {
                    for ty in facts.mime_types() {
                        handlers.entry(ty).or_default().push(file_name.clone());
                    }
                }
                Err(e) => crate::log::warn(format_args!("{folder}: no menu entry: {e}")),
            }
        }
        Err(reason) => crate::log::info(format_args!("{folder}: no menu entry: {reason}")),
    }
    for icon in out.icons {
        let path = format!("icons/{}", icon.path);
        let Some((dir, name)) = path.rsplit_once('/') else {
            continue;
        };
        if let Err(e) = link_into_app(tree, dir, name, app, &icon.source) {
            crate::log::warn(format_args!("{folder}: icon {path} left out: {e}"));
        }
    }
}
