//! One AppImage in the source folder, as the union sees it: where it is,
//! what detection found, and its image tree, opened on first use.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::scan::{Access, Found};
use crate::cache::BlockCache;
use crate::detect::AppImage;
use crate::error::{Error, Result};
use crate::image::open_tree;
use crate::tree::ImageTree;

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
    /// Who may read the AppImage file, and so this app.
    pub access: Access,
    file: Arc<File>,
    tree: OnceLock<std::result::Result<Arc<dyn ImageTree>, String>>,
    /// Set when the file was removed, renamed or changed: the folder is no
    /// longer listed, but inodes the kernel still holds keep working.
    retired: AtomicBool,
    /// Lookups of this app's inodes the kernel has not forgotten yet.
    lookups: AtomicU64,
}

impl App {
    /// Wraps a detected AppImage, shown as folder `name`; nothing beyond
    /// detection is read yet.
    pub fn new(name: Vec<u8>, found: Found) -> App {
        App {
            name,
            source: found.path,
            detected: found.detected,
            file_mtime: found.mtime,
            access: found.access,
            file: Arc::new(found.file),
            tree: OnceLock::new(),
            retired: AtomicBool::new(false),
            lookups: AtomicU64::new(0),
        }
    }

    /// Marks the app as gone from the folder; returns true when the kernel
    /// holds none of its inodes, so it can be dropped now.
    pub fn retire(&self) -> bool {
        self.retired.store(true, Ordering::SeqCst);
        self.lookups.load(Ordering::SeqCst) == 0
    }

    /// Counts one kernel lookup of one of this app's inodes.
    pub fn remember(&self) {
        self.lookups.fetch_add(1, Ordering::SeqCst);
    }

    /// Uncounts `n` lookups; returns true when the app is retired and the
    /// kernel now holds none of its inodes.
    pub fn forget(&self, n: u64) -> bool {
        let before = self
            .lookups
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
                Some(l.saturating_sub(n))
            })
            .unwrap_or(0);
        before <= n && self.retired.load(Ordering::SeqCst)
    }

    /// The image tree, opened on first call. A failure is remembered (and
    /// logged once by the caller through the returned message), so a broken
    /// image is not re-parsed on every access.
    pub fn tree(&self, cache: &Arc<BlockCache>) -> Result<Arc<dyn ImageTree>> {
        let opened = self.tree.get_or_init(|| {
            let result = open_tree(&self.file, &self.detected, cache.clone());
            if let Err(e) = &result {
                crate::log::warn(format_args!(
                    "{}: cannot open image: {e}",
                    self.source.display()
                ));
            }
            result.map_err(|e| e.to_string())
        });
        match opened {
            Ok(tree) => Ok(tree.clone()),
            Err(msg) => Err(Error::Corrupt(msg.clone())),
        }
    }

    /// The tree if it has been opened successfully already.
    pub fn opened_tree(&self) -> Option<Arc<dyn ImageTree>> {
        self.tree.get().and_then(|t| t.as_ref().ok().cloned())
    }
}
