//! The namespace across images: one root holding a folder per AppImage
//! (and the synthesized folders), with inode numbers that never collide
//! between images (see [`inode`]).
//!
//! Every operation is a plain method returning [`Result`], so the whole
//! filesystem can be exercised without FUSE; the adapter in
//! [`crate::fuse_adapter`] only translates.

pub mod app;
pub mod inode;
pub mod integrate;
pub mod naming;
pub mod scan;
pub mod synth;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::tree::{Attr, ImageTree, Kind};
use app::App;
use inode::{Slot, SYNTH_SLOT};
use synth::{SynthContent, SynthTree};

/// One name in a directory listing, with the FUSE inode it points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Entry name.
    pub name: Vec<u8>,
    /// FUSE inode number.
    pub ino: u64,
    /// File type.
    pub kind: Kind,
}

/// A looked-up node: its FUSE inode number and attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// FUSE inode number.
    pub ino: u64,
    /// Attributes.
    pub attr: Attr,
}

struct State {
    apps: Vec<Option<Arc<App>>>,
    generation: u64,
    synth: Arc<SynthTree>,
    integrated: bool,
}

impl State {
    fn live_apps(&self) -> Vec<(Slot, Arc<App>)> {
        self.apps
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| Some((slot as Slot, a.clone()?)))
            .collect()
    }
}

/// The mounted union of every AppImage in a source folder.
pub struct Union {
    source: PathBuf,
    mountpoint: PathBuf,
    cache: Arc<BlockCache>,
    state: RwLock<State>,
    integration: Mutex<()>,
    mount_time: i64,
    owner: (u32, u32),
}

impl Union {
    /// Scans `source` and builds the union that will be mounted at
    /// `mountpoint` (launchers and menu entries name paths under it); no
    /// image is opened yet.
    pub fn new(source: &Path, mountpoint: &Path, cache: Arc<BlockCache>) -> std::io::Result<Union> {
        let source = std::fs::canonicalize(source)?;
        let (found, skipped) = scan::scan(&source)?;
        for s in &skipped {
            crate::log::info(format_args!("skipping {}: {}", s.path.display(), s.reason));
        }
        let mut taken = HashSet::new();
        let mut apps = vec![None];
        for f in found {
            if apps.len() > usize::from(Slot::MAX) {
                crate::log::warn(format_args!(
                    "more than {} AppImages; ignoring the rest",
                    Slot::MAX
                ));
                break;
            }
            let name = naming::assign(&f.file_name, &taken);
            taken.insert(name.clone());
            crate::log::info(format_args!(
                "mounting {} as {} (type {})",
                f.path.display(),
                String::from_utf8_lossy(&name),
                f.detected.kind()
            ));
            apps.push(Some(Arc::new(App::new(
                name, f.path, f.file, f.detected, f.mtime,
            ))));
        }
        let mut state = State {
            apps,
            generation: 1,
            synth: Arc::default(),
            integrated: false,
        };
        state.synth = Arc::new(integrate::folders_only(
            &state.live_apps(),
            state.generation,
        ));
        // SAFETY: geteuid/getegid cannot fail.
        let owner = unsafe { (libc::geteuid(), libc::getegid()) };
        Ok(Union {
            source,
            mountpoint: mountpoint.to_path_buf(),
            cache,
            state: RwLock::new(state),
            integration: Mutex::new(()),
            mount_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            owner,
        })
    }

    /// The source folder (absolute).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The shared decompression cache.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// The mounted apps, in slot order.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.read_state().apps.iter().flatten().cloned().collect()
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The synthesized tree; with `integrated`, one that includes the
    /// launchers, menu entries and icons (built now if needed).
    fn synth(&self, integrated: bool) -> Arc<SynthTree> {
        {
            let s = self.read_state();
            if s.integrated || !integrated {
                return s.synth.clone();
            }
        }
        let _building = self.integration.lock().unwrap_or_else(|p| p.into_inner());
        let (apps, generation) = {
            let s = self.read_state();
            if s.integrated {
                return s.synth.clone();
            }
            (s.live_apps(), s.generation)
        };
        let tree = Arc::new(integrate::build(
            &apps,
            generation,
            &self.cache,
            &self.mountpoint,
        ));
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        if s.generation == generation {
            s.synth = tree.clone();
            s.integrated = true;
        }
        tree
    }

    /// The synthesized tree needed to answer about `node`: everything but
    /// the root's own listing needs the integration.
    fn synth_for(&self, node: u64) -> Arc<SynthTree> {
        self.synth(node != synth::ROOT)
    }

    fn app(&self, slot: Slot) -> Result<Arc<App>> {
        self.read_state()
            .apps
            .get(usize::from(slot))
            .and_then(|a| a.clone())
            .ok_or(Error::NotFound)
    }

    /// The opened tree of `slot` and the reader's id for `node` (mapping
    /// [`inode::IMAGE_ROOT`] to the reader's root).
    fn tree(&self, slot: Slot, node: u64) -> Result<(Arc<dyn ImageTree>, u64)> {
        let tree = self.app(slot)?.tree(&self.cache)?;
        let node = if node == inode::IMAGE_ROOT {
            tree.root()
        } else {
            node
        };
        Ok((tree, node))
    }

    fn synth_attr(&self, synth: &SynthTree, node: u64) -> Result<Attr> {
        let n = synth.get(node).ok_or(Error::NotFound)?;
        let nlink = match &n.content {
            SynthContent::Dir(children) => {
                2 + children.values().filter(|c| c.1 == Kind::Dir).count() as u32
            }
            _ => 1,
        };
        Ok(Attr {
            kind: n.kind(),
            perm: n.perm,
            uid: self.owner.0,
            gid: self.owner.1,
            size: n.size(),
            mtime: self.mount_time,
            mtime_nsec: 0,
            nlink,
            rdev: 0,
        })
    }

    /// Attributes of any inode.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            return self.synth_attr(&self.synth_for(node), node);
        }
        let (tree, node) = self.tree(slot, node)?;
        tree.attr(node)
    }

    /// Finds `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Entry> {
        let (slot, node) = inode::decode(parent);
        if slot == SYNTH_SLOT {
            let synth = self.synth_for(node);
            let dir = synth.get(node).ok_or(Error::NotFound)?;
            let SynthContent::Dir(children) = &dir.content else {
                return Err(Error::NotDir);
            };
            let &(ino, _) = children.get(name).ok_or(Error::NotFound)?;
            return Ok(Entry {
                ino,
                attr: self.getattr(ino)?,
            });
        }
        let (tree, node) = self.tree(slot, node)?;
        let child = tree.lookup(node, name)?.ok_or(Error::NotFound)?;
        Ok(Entry {
            ino: inode::encode(slot, child),
            attr: tree.attr(child)?,
        })
    }

    /// The listing of directory `ino`, without `.` and `..`.
    pub fn readdir(&self, ino: u64) -> Result<Arc<Vec<Listing>>> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            let synth = self.synth_for(node);
            let dir = synth.get(node).ok_or(Error::NotFound)?;
            let SynthContent::Dir(children) = &dir.content else {
                return Err(Error::NotDir);
            };
            return Ok(Arc::new(
                children
                    .iter()
                    .map(|(name, &(ino, kind))| Listing {
                        name: name.clone(),
                        ino,
                        kind,
                    })
                    .collect(),
            ));
        }
        let (tree, node) = self.tree(slot, node)?;
        let entries = tree.read_dir(node)?;
        Ok(Arc::new(
            entries
                .iter()
                .map(|e| Listing {
                    name: e.name.clone(),
                    ino: inode::encode(slot, e.node),
                    kind: e.kind,
                })
                .collect(),
        ))
    }

    /// Reads file data.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            let synth = self.synth_for(node);
            return match &synth.get(node).ok_or(Error::NotFound)?.content {
                SynthContent::File(bytes) => {
                    let start = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    let end = start.saturating_add(size as usize).min(bytes.len());
                    Ok(bytes[start..end].to_vec())
                }
                SynthContent::Dir(_) => Err(Error::IsDir),
                SynthContent::Symlink(_) => Err(Error::Invalid),
            };
        }
        let (tree, node) = self.tree(slot, node)?;
        tree.read(node, offset, size)
    }

    /// Target of a symlink.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            let synth = self.synth_for(node);
            return match &synth.get(node).ok_or(Error::NotFound)?.content {
                SynthContent::Symlink(target) => Ok(target.clone()),
                _ => Err(Error::Invalid),
            };
        }
        let (tree, node) = self.tree(slot, node)?;
        tree.read_link(node)
    }

    /// Extended attributes of a node.
    pub fn xattrs(&self, ino: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            return Ok(Vec::new());
        }
        let (tree, node) = self.tree(slot, node)?;
        tree.xattrs(node)
    }

    /// Checks that `ino` can be opened for reading as a regular file.
    pub fn open(&self, ino: u64) -> Result<()> {
        match self.getattr(ino)?.kind {
            Kind::File => Ok(()),
            Kind::Dir => Err(Error::IsDir),
            _ => Err(Error::Invalid),
        }
    }

    /// Total bytes of all mounted images, for `statfs`.
    pub fn total_bytes(&self) -> u64 {
        self.apps()
            .iter()
            .map(|a| match &a.detected.payload {
                crate::detect::Payload::SquashFs { superblock, .. } => superblock.bytes_used,
                crate::detect::Payload::Iso9660 { len } => *len,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
