//! One AppImage in the source folder, as the union sees it: where it is,
//! what detection found, and its image tree, opened on first use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::lookups::{Left, LookupCounts};
use super::opened::{self, OpenedTrees, TreeSlot};
use super::scan::{Access, Found};
use super::State;
use crate::backing::Descriptor;
use crate::cache::BlockCache;
use crate::detect::AppImage;
use crate::error::{Error, Result};
use crate::fd_pool::{FdPool, PooledFile};
use crate::image::open_tree;
use crate::tree::{ImageTree, NodeId};

/// A detected AppImage whose tree is opened lazily.
pub struct App {
    /// Folder name under the mount point.
    pub name: Vec<u8>,
    /// Absolute path of the AppImage file.
    pub source: PathBuf,
    /// What detection found.
    pub detected: AppImage,
    /// Modification time of the file when it was detected (seconds).
    pub file_mtime: i64,
    /// Who may read the AppImage file, and so this app (updated by rescans
    /// when the file's owner, mode or ACL changes).
    access: RwLock<Access>,
    file: Arc<PooledFile>,
    /// The image tree, opened on demand and closed when the daemon-wide
    /// budget of opened trees needs room ([`opened`]).
    tree: Arc<TreeSlot>,
    opened: Arc<OpenedTrees>,
    /// Set when the file was removed, renamed or changed: the folder is no
    /// longer listed, but inodes the kernel still holds keep working.
    retired: AtomicBool,
    /// Lookups of this app's inodes the kernel has not forgotten yet.
    lookups: LookupCounts,
    /// Set once a transient failure to open the image was logged.
    transient_logged: AtomicBool,
}

/// The outcome of opening an image as it is remembered.
fn remembered(found: opened::Found) -> Option<Result<Arc<dyn ImageTree>>> {
    match found {
        opened::Found::Open(tree) => Some(Ok(tree)),
        opened::Found::Failed(msg) => Some(Err(Error::Corrupt(msg))),
        opened::Found::Closed => None,
    }
}

impl App {
    /// Wraps a detected AppImage, shown as folder `name`; nothing beyond
    /// detection is read yet. Its tree, once opened, counts against the
    /// budget of `opened`.
    pub fn new(name: Vec<u8>, found: Found, opened: Arc<OpenedTrees>) -> App {
        let file = PooledFile::new(FdPool::global(), &found.path, found.detected.version);
        App {
            name,
            source: found.path,
            detected: found.detected,
            file_mtime: found.mtime,
            access: RwLock::new(found.access),
            file,
            tree: opened.slot(),
            opened,
            retired: AtomicBool::new(false),
            lookups: LookupCounts::default(),
            transient_logged: AtomicBool::new(false),
        }
    }

    /// Who may read the AppImage file now.
    pub fn access(&self) -> Access {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes a new owner, mode or ACL of the file into account; true when
    /// it differs from the one known so far.
    pub fn update_access(&self, access: &Access) -> bool {
        let mut current = self.access.write().unwrap_or_else(|p| p.into_inner());
        if *current == *access {
            return false;
        }
        *current = access.clone();
        true
    }

    /// Marks the app as gone from the folder; returns true when the kernel
    /// holds none of its inodes, so its slot can be freed now. Takes the
    /// state, write-locked by the caller, so no lookup is counted between
    /// this answer and the slot being freed.
    pub(super) fn retire(&self, _locked: &mut State) -> bool {
        self.retired.store(true, Ordering::SeqCst);
        self.file.keep_open();
        self.lookups.none_held()
    }

    /// Whether the app left the listing.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Counts one lookup of `node` that the kernel will hold. Takes the
    /// state, locked by the caller (the read side is enough), so a count
    /// never races [`retire`](Self::retire): a lookup that found this app
    /// before a retire keeps it until the kernel forgets it.
    pub(super) fn count(&self, locked: &State, node: NodeId) {
        self.count_all(locked, &[node]);
    }

    /// [`count`](Self::count) for each of `nodes`, under one lock.
    pub(super) fn count_all(&self, _locked: &State, nodes: &[NodeId]) {
        self.lookups.count_all(nodes);
    }

    /// Uncounts `n` lookups of `node`; returns true when the app is retired
    /// and the kernel now holds none of its inodes.
    pub(super) fn forget(&self, node: NodeId, n: u64) -> bool {
        self.lookups.uncount(node, n) == Left::Nothing && self.is_retired()
    }

    /// True when the kernel holds none of this app's inodes.
    pub(super) fn none_held(&self) -> bool {
        self.lookups.none_held()
    }

    /// Lookups of `node` the kernel holds.
    #[cfg(test)]
    pub fn lookups_held(&self, node: NodeId) -> u64 {
        self.lookups.of(node)
    }

    /// The image tree, opened on first call. A failure the image itself
    /// causes (corrupt, unsupported) is remembered and logged once, so a
    /// broken image is not re-parsed on every access; an I/O failure (a
    /// flaky disk, no descriptor free) is not, and the next call tries
    /// again.
    pub fn tree(&self, cache: &Arc<BlockCache>) -> Result<Arc<dyn ImageTree>> {
        if let Some(known) = remembered(self.opened.get(&self.tree)) {
            return known;
        }
        #[cfg(test)]
        open_gate::wait(&self.source);
        let file = Descriptor::Pooled(self.file.clone());
        match open_tree(&file, &self.detected, cache.clone()) {
            Ok(tree) => Ok(self.opened.admit(&self.tree, tree)),
            Err(e @ (Error::Io(_) | Error::Stale)) => {
                if !self.transient_logged.swap(true, Ordering::Relaxed) {
                    crate::log::warn(format_args!(
                        "{}: cannot open image (will retry): {e}",
                        self.source.display()
                    ));
                }
                Err(e)
            }
            Err(e) => {
                let why = e.to_string();
                let found = self.opened.fail(&self.tree, why.clone());
                if matches!(&found, opened::Found::Failed(w) if *w == why) {
                    crate::log::warn(format_args!(
                        "{}: cannot open image: {e}",
                        self.source.display()
                    ));
                }
                remembered(found).unwrap_or(Err(e))
            }
        }
    }

    /// The tree if it is open now (it may be closed again at any time to
    /// stay within the budget; see [`opened`]).
    pub fn opened_tree(&self) -> Option<Arc<dyn ImageTree>> {
        self.tree.peek()
    }
}

/// A test hook: opening the image of a chosen file waits until the test
/// lets it go, standing in for an image whose open is slow.
#[cfg(test)]
pub mod open_gate {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    /// The gated file and the lock its open waits for.
    pub static GATE: Mutex<Option<(PathBuf, Arc<Mutex<()>>)>> = Mutex::new(None);

    /// Waits while the test holds the gate of `source`.
    pub fn wait(source: &Path) {
        let gate = GATE.lock().unwrap().clone();
        if let Some((path, lock)) = gate {
            if path == source {
                drop(lock.lock());
            }
        }
    }
}
