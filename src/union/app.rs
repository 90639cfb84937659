//! One AppImage in the source folder, as the union sees it: where it is,
//! what detection found, and its image tree, opened on first use.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

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
    file: Arc<File>,
    tree: OnceLock<std::result::Result<Arc<dyn ImageTree>, String>>,
}

impl App {
    /// Wraps a detected AppImage; nothing beyond detection is read yet.
    pub fn new(
        name: Vec<u8>,
        source: PathBuf,
        file: File,
        detected: AppImage,
        file_mtime: i64,
    ) -> App {
        App {
            name,
            source,
            detected,
            file_mtime,
            file: Arc::new(file),
            tree: OnceLock::new(),
        }
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
