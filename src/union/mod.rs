//! The namespace across images: one root holding a folder per AppImage
//! (and the synthesized folders), with inode numbers that never collide
//! between images (see [`inode`]).
//!
//! Every operation is a plain method returning [`Result`], so the whole
//! filesystem can be exercised without FUSE; the adapter in
//! [`crate::fuse_adapter`] only translates.

pub mod access;
pub mod app;
pub mod dirlistings;
pub mod envfiles;
pub mod inode;
pub mod integrate;
pub mod live;
pub mod lookups;
pub mod naming;
pub mod opened;
pub mod scan;
pub mod synth;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::BlockCache;
use crate::desktop::sandbox::Policy;
use crate::error::{Error, Result};
use crate::tree::{Attr, ImageTree, Kind, ReadIntent};
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

/// A lookup the kernel will hold once the reply naming it is sent (a
/// LOOKUP reply or a READDIRPLUS entry), counted already, under the state
/// lock, so a rescan cannot free its app between the answer and the reply.
/// The adapter hands it back with [`Counted::sent`] once the reply is
/// sent; dropped unsent (an error reply instead, an entry that did not fit)
/// it gives the count back.
#[must_use = "send the reply and call sent(), or drop it to give the lookup back"]
pub struct Counted<'u> {
    union: &'u Union,
    entry: Entry,
    generation: u64,
    pending: bool,
}

impl Counted<'_> {
    /// The FUSE generation to send with the entry.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The reply naming this entry was sent: the kernel holds the lookup
    /// until it forgets it ([`Union::forget`]).
    pub fn sent(mut self) -> Entry {
        self.pending = false;
        self.entry
    }
}

impl std::fmt::Debug for Counted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("entry", &self.entry)
            .field("generation", &self.generation)
            .finish()
    }
}

impl std::ops::Deref for Counted<'_> {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.entry
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if self.pending {
            self.union.forget(self.entry.ino, 1);
        }
    }
}

/// Why a file in the source folder is not (yet) shown.
enum Waiting {
    /// New or changed; shown once it has kept this version for the settle time.
    Settling {
        version: crate::backing::FileVersion,
        since: Instant,
    },
    /// Not a usable AppImage in this version (reported once).
    Rejected {
        version: crate::backing::FileVersion,
        access: scan::Access,
        reason: String,
    },
}

struct State {
    /// Slot → app. Retired apps stay until the kernel forgets their inodes.
    apps: Vec<Option<Arc<App>>>,
    /// FUSE generation of each slot, bumped when a slot is reused.
    slot_generations: Vec<u64>,
    /// The highest slot number an app may take ([`Slot::MAX`], lower in
    /// tests so that running out of slots is cheap to reach).
    max_slot: Slot,
    /// The shown apps, by folder name.
    listed: BTreeMap<Vec<u8>, Slot>,
    /// Files in the source folder that are not shown, and why.
    waiting: HashMap<PathBuf, Waiting>,
    generation: u64,
    synth: Arc<SynthTree>,
    integrated: bool,
    /// When the set of apps last changed (seconds, nanoseconds since the
    /// epoch): the mtime of the synthesized directories, so the kernel's
    /// readdir cache can tell a stale listing.
    changed_at: (i64, u32),
}

impl State {
    /// The shown apps, in folder-name order.
    fn live_apps(&self) -> Vec<(Slot, Arc<App>)> {
        self.listed
            .values()
            .filter_map(|&slot| Some((slot, self.apps.get(usize::from(slot))?.clone()?)))
            .collect()
    }

    /// A slot for a new app: a never-used one while there are any, then the
    /// lowest free one with its generation bumped.
    fn free_slot(&mut self) -> Option<Slot> {
        if self.apps.len() <= usize::from(self.max_slot) {
            self.apps.push(None);
            self.slot_generations.push(0);
            return Slot::try_from(self.apps.len() - 1).ok();
        }
        let free = (1..self.apps.len()).find(|&i| self.apps[i].is_none())?;
        self.slot_generations[free] += 1;
        Slot::try_from(free).ok()
    }
}

/// The time now as (seconds, nanoseconds) since the epoch.
fn now() -> (i64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() as i64, d.subsec_nanos()))
        .unwrap_or((0, 0))
}

/// The mounted union of every AppImage in a source folder.
pub struct Union {
    source: PathBuf,
    mountpoint: PathBuf,
    cache: Arc<BlockCache>,
    /// Every app's opened tree, under one budget.
    opened: Arc<opened::OpenedTrees>,
    state: RwLock<State>,
    integration: Mutex<()>,
    rescanning: Mutex<()>,
    /// The last failure to list the source folder, if it still fails.
    listing_error: Mutex<Option<String>>,
    env_files: envfiles::EnvFiles,
    owner: (u32, u32),
    sandbox: Policy,
    dirs: dirlistings::DirListings,
    /// How many directory listings were built (tests check that paging
    /// through an open directory builds one).
    #[cfg(test)]
    listings_built: std::sync::atomic::AtomicUsize,
}

impl Union {
    /// Scans `source` and builds the union that will be mounted at
    /// `mountpoint` (launchers and menu entries name paths under it); no
    /// image is opened yet.
    pub fn new(source: &Path, mountpoint: &Path, cache: Arc<BlockCache>) -> std::io::Result<Union> {
        Union::with_slots(source, mountpoint, cache, Slot::MAX)
    }

    /// [`Union::new`] with at most `max_slot` images mounted at once.
    fn with_slots(
        source: &Path,
        mountpoint: &Path,
        cache: Arc<BlockCache>,
        max_slot: Slot,
    ) -> std::io::Result<Union> {
        let source = std::fs::canonicalize(source)?;
        std::fs::read_dir(&source)?;
        let state = State {
            apps: vec![None],
            slot_generations: vec![0],
            max_slot,
            listed: BTreeMap::new(),
            waiting: HashMap::new(),
            generation: 1,
            synth: Arc::new(SynthTree::new(1)),
            integrated: false,
            changed_at: now(),
        };
        // SAFETY: geteuid/getegid cannot fail.
        let owner = unsafe { (libc::geteuid(), libc::getegid()) };
        let union = Union {
            source,
            mountpoint: mountpoint.to_path_buf(),
            cache,
            opened: Arc::new(opened::OpenedTrees::new(opened::default_budget(0))),
            state: RwLock::new(state),
            integration: Mutex::new(()),
            rescanning: Mutex::new(()),
            listing_error: Mutex::new(None),
            env_files: envfiles::EnvFiles::default(),
            owner,
            sandbox: Policy::default(),
            dirs: dirlistings::DirListings::default(),
            #[cfg(test)]
            listings_built: Default::default(),
        };
        union.rescan(Duration::ZERO);
        Ok(union)
    }

    /// Sets what Chromium and Electron apps' launchers do about
    /// `--no-sandbox` (`-o sandbox=`; [`Policy::Auto`] unless set).
    pub fn with_sandbox(mut self, policy: Policy) -> Union {
        self.sandbox = policy;
        self
    }

    /// Keeps the opened image trees within `bytes` together (see
    /// [`opened`]; [`opened::default_budget`] of a zero cache, 16 MiB,
    /// unless set).
    pub fn with_tree_budget(self, bytes: usize) -> Union {
        self.opened.set_budget(bytes);
        self
    }

    /// The budget of opened trees, and how many trees were closed to stay
    /// within it so far.
    pub fn opened_trees(&self) -> (usize, u64) {
        (self.opened.budget(), self.opened.closed())
    }

    /// The source folder (absolute).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The shared decompression cache.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// The shown apps, in folder-name order.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.read_state()
            .live_apps()
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    /// How many files in the source folder are not shown because they are
    /// not usable AppImages (each one was logged once, with the reason).
    pub fn skipped(&self) -> usize {
        self.read_state()
            .waiting
            .values()
            .filter(|w| matches!(w, Waiting::Rejected { .. }))
            .count()
    }

    /// The FUSE generation of `ino` (changes when a slot is reused).
    pub fn generation(&self, ino: u64) -> u64 {
        let slot = usize::from(inode::decode(ino).0);
        self.read_state()
            .slot_generations
            .get(slot)
            .copied()
            .unwrap_or(0)
    }

    /// How many lookups of `ino` are counted as held by the kernel.
    #[cfg(test)]
    pub(crate) fn lookups_held(&self, ino: u64) -> u64 {
        let (slot, node) = inode::decode(ino);
        self.app(slot).map_or(0, |a| a.lookups_held(node))
    }

    /// Counts a lookup of `entry` the kernel will hold, under the state
    /// lock. `app` is the app the entry was found in, for a name found
    /// inside an image; a folder found in the root must still be listed
    /// under `name`. Fails with [`Error::Forgotten`] when the slot no
    /// longer holds that app (a rescan retired it meanwhile and the kernel
    /// held none of its inodes).
    fn hold(
        &self,
        parent: u64,
        name: &[u8],
        entry: Entry,
        app: Option<&Arc<App>>,
    ) -> Result<Counted<'_>> {
        let s = self.read_state();
        let current = self.holder(&s, parent, name, entry.ino, app)?;
        if let Some(current) = current {
            current.count(&s, inode::decode(entry.ino).1);
        }
        Ok(self.counted(&s, entry))
    }

    /// The app whose lookup counts hold `ino` (none for a synthesized
    /// node), checked as [`hold`](Self::hold) says, under the state lock
    /// `s`.
    fn holder<'s>(
        &self,
        s: &'s State,
        parent: u64,
        name: &[u8],
        ino: u64,
        app: Option<&Arc<App>>,
    ) -> Result<Option<&'s Arc<App>>> {
        let slot = inode::decode(ino).0;
        if slot == SYNTH_SLOT {
            return Ok(None);
        }
        let current = s
            .apps
            .get(usize::from(slot))
            .and_then(|a| a.as_ref())
            .ok_or(Error::Forgotten)?;
        let same = match app {
            Some(app) => Arc::ptr_eq(app, current),
            None => {
                parent != inode::encode(SYNTH_SLOT, synth::ROOT)
                    || s.listed.get(name) == Some(&slot)
            }
        };
        if same {
            Ok(Some(current))
        } else {
            Err(Error::Forgotten)
        }
    }

    /// A lookup of `entry` just counted under the state lock `s`.
    fn counted(&self, s: &State, entry: Entry) -> Counted<'_> {
        let slot = usize::from(inode::decode(entry.ino).0);
        Counted {
            union: self,
            entry,
            generation: s.slot_generations.get(slot).copied().unwrap_or(0),
            pending: true,
        }
    }

    /// Counts the lookups the kernel takes for READDIRPLUS entries of
    /// directory `dir` (never for `.` and `..`), each a name and the entry
    /// it points at, as [`hold`](Self::hold) would one by one, but under
    /// one state lock and one lock of each app's counts per run of entries
    /// of that app (a page of an image directory: one).
    pub fn plus_entries(&self, dir: u64, entries: &[(&[u8], Entry)]) -> Vec<Result<Counted<'_>>> {
        let s = self.read_state();
        let mut out = Vec::with_capacity(entries.len());
        let mut run: Option<&Arc<App>> = None;
        let mut nodes = Vec::with_capacity(entries.len());
        for &(name, entry) in entries {
            let current = match self.holder(&s, dir, name, entry.ino, None) {
                Ok(current) => current,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            if let Some(app) = current {
                if run.is_some_and(|r| !Arc::ptr_eq(r, app)) {
                    if let Some(r) = run {
                        r.count_all(&s, &nodes);
                    }
                    nodes.clear();
                }
                run = Some(app);
                nodes.push(inode::decode(entry.ino).1);
            }
            out.push(Ok(self.counted(&s, entry)));
        }
        if let Some(r) = run {
            r.count_all(&s, &nodes);
        }
        out
    }

    /// The kernel dropped `n` lookups of `ino` (FORGET, BATCH_FORGET); a
    /// retired app whose inodes are all forgotten is released (closing its
    /// file) and its slot freed for reuse.
    pub fn forget(&self, ino: u64, n: u64) {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            return;
        }
        let Ok(app) = self.app(slot) else { return };
        if app.forget(node, n) {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            if let Some(Some(current)) = s.apps.get(usize::from(slot)) {
                if Arc::ptr_eq(current, &app) && app.none_held() {
                    s.apps[usize::from(slot)] = None;
                }
            }
            drop(s);
        }
        // The last reference to a released app goes here, outside the lock.
        drop(app);
    }

    /// True when `ino` is the folder of an app whose AppImage file not
    /// everyone may read: the kernel must then ask again on every path walk
    /// (no cached entry), so [`Union::may_enter`] is checked each time.
    pub fn is_restricted(&self, ino: u64) -> bool {
        let (slot, node) = inode::decode(ino);
        slot != SYNTH_SLOT
            && node == inode::IMAGE_ROOT
            && self.app(slot).is_ok_and(|a| !a.access().is_public())
    }

    /// Whether a caller (uid and groups, primary first) may enter the app
    /// folder `ino`: only if it may read the AppImage file itself. Other
    /// inodes are always allowed (they are reached through the folder).
    pub fn may_enter(&self, ino: u64, uid: u32, groups: &[u32]) -> bool {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT || node != inode::IMAGE_ROOT {
            return true;
        }
        self.app(slot)
            .map_or(true, |a| a.access().allows(uid, groups))
    }

    /// Attributes that can be given without work for a node whose real
    /// attributes would need work: an app folder whose image is not opened
    /// yet (a read-only folder with the file's mtime), and `bin/` or
    /// `share/` before they are built. Listing the top of the tree with
    /// readdirplus thus opens no image. The adapter gives them a zero
    /// timeout, so a real `stat` still gets the real attributes.
    pub fn placeholder_attr(&self, ino: u64) -> Option<Attr> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            let s = self.read_state();
            if s.integrated || node == synth::ROOT {
                return None;
            }
            let unbuilt = s.synth.clone();
            drop(s);
            return self.synth_attr(&unbuilt, node).ok();
        }
        if node != inode::IMAGE_ROOT {
            return None;
        }
        let app = self.app(slot).ok()?;
        app.opened_tree().is_none().then(|| self.folder_attr(&app))
    }

    /// Attributes of an app folder that need nothing from the image: a
    /// read-only directory with the AppImage file's mtime. Also what a
    /// folder whose image cannot be opened shows, so `ls -l` of the top
    /// level works and only looking inside the broken app fails (EIO).
    fn folder_attr(&self, app: &App) -> Attr {
        Attr {
            kind: Kind::Dir,
            perm: 0o555,
            uid: self.owner.0,
            gid: self.owner.1,
            size: 0,
            mtime: app.file_mtime,
            mtime_nsec: 0,
            nlink: 2,
            rdev: 0,
        }
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
        // Every image is opened before the lock is taken (opening reads
        // its superblock and tables: I/O that may stall), so a slow image
        // holds up only the calls that need it, never a build for a later
        // generation that no longer has it.
        let apps = self.read_state().live_apps();
        for (_, app) in apps {
            let _ = app.tree(&self.cache);
        }
        let _building = self.integration.lock().unwrap_or_else(|p| p.into_inner());
        let (apps, generation) = {
            let s = self.read_state();
            if s.integrated {
                return s.synth.clone();
            }
            (s.live_apps(), s.generation)
        };
        // Read after the generation: settings newer than it come with a
        // newer generation, and this tree is then not kept.
        let env = self.env_files.snapshot();
        let tree = Arc::new(integrate::build(
            &apps,
            generation,
            &self.cache,
            &self.mountpoint,
            &env,
            self.sandbox,
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

    /// The folder the union is mounted on (start-up profiles are replayed
    /// through it).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The app in `slot` (start-up profiles name their image by it);
    /// [`Error::Forgotten`] when the slot holds none.
    pub fn app(&self, slot: Slot) -> Result<Arc<App>> {
        self.read_state()
            .apps
            .get(usize::from(slot))
            .and_then(|a| a.clone())
            .ok_or(Error::Forgotten)
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

    /// Runs `f` on the children of synthesized directory `node`
    /// (ENOENT when there is no such node, ENOTDIR when it is no directory).
    fn with_synth_dir<R>(
        &self,
        node: u64,
        f: impl FnOnce(&std::collections::BTreeMap<Vec<u8>, (u64, Kind)>) -> R,
    ) -> Result<R> {
        let synth = self.synth_for(node);
        match &synth.get(node).ok_or(Error::NotFound)?.content {
            SynthContent::Dir(children) => Ok(f(children)),
            _ => Err(Error::NotDir),
        }
    }

    fn synth_attr(&self, synth: &SynthTree, node: u64) -> Result<Attr> {
        let changed_at = self.read_state().changed_at;
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
            mtime: changed_at.0,
            mtime_nsec: changed_at.1,
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
        if node == inode::IMAGE_ROOT {
            let app = self.app(slot)?;
            return Ok(app
                .tree(&self.cache)
                .and_then(|t| t.attr(t.root()))
                .ok()
                .filter(|a| a.kind == Kind::Dir)
                .unwrap_or_else(|| self.folder_attr(&app)));
        }
        let (tree, node) = self.tree(slot, node)?;
        tree.attr(node)
    }

    /// Attributes of each of `inos` (as [`getattr`](Self::getattr)), for
    /// a READDIRPLUS page: a run of nodes inside one image is handed to
    /// its tree at once ([`ImageTree::attrs`]), found once for the run.
    pub fn getattrs(&self, inos: &[u64]) -> Vec<Result<Attr>> {
        let mut out = Vec::with_capacity(inos.len());
        let mut rest = inos;
        while let Some(&first) = rest.first() {
            let (slot, node) = inode::decode(first);
            if slot == SYNTH_SLOT || node == inode::IMAGE_ROOT {
                out.push(self.getattr(first));
                rest = &rest[1..];
                continue;
            }
            let run = rest
                .iter()
                .take_while(|&&ino| {
                    let (s, n) = inode::decode(ino);
                    s == slot && n != inode::IMAGE_ROOT
                })
                .count();
            let (now, later) = rest.split_at(run);
            rest = later;
            match self.tree(slot, node) {
                Ok((tree, _)) => {
                    let nodes: Vec<u64> = now.iter().map(|&ino| inode::decode(ino).1).collect();
                    out.extend(tree.attrs(&nodes));
                }
                Err(_) => out.extend(now.iter().map(|&ino| self.getattr(ino))),
            }
        }
        out
    }

    /// Finds `name` in directory `parent`, counting the lookup the kernel
    /// holds once the reply is sent (see [`Counted`]).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Counted<'_>> {
        let (slot, node) = inode::decode(parent);
        if slot == SYNTH_SLOT {
            let ino = self.with_synth_dir(node, |children| children.get(name).map(|c| c.0))?;
            let ino = ino.ok_or(Error::NotFound)?;
            let entry = Entry {
                ino,
                attr: self.getattr(ino)?,
            };
            return self.hold(parent, name, entry, None);
        }
        let app = self.app(slot)?;
        let tree = app.tree(&self.cache)?;
        let node = if node == inode::IMAGE_ROOT {
            tree.root()
        } else {
            node
        };
        let child = tree.lookup(node, name)?.ok_or(Error::NotFound)?;
        let entry = Entry {
            ino: inode::encode(slot, child),
            attr: tree.attr(child)?,
        };
        drop(tree);
        self.hold(parent, name, entry, Some(&app))
    }

    /// The listing of directory `ino` for one READDIR page: image
    /// directories come from the listings kept in [`dirlistings`] (built
    /// once however many pages are read). The root, `bin/` and `share/`
    /// are always listed afresh: they change with the source folder, and a
    /// listing taken before a rescan but served after its invalidation
    /// would stay in the kernel's directory cache (their size is the
    /// admin's number of apps, not an image's, so listing them per page
    /// stays cheap).
    pub fn dir_listing(&self, ino: u64) -> Result<Arc<Vec<Listing>>> {
        if inode::decode(ino).0 == SYNTH_SLOT {
            return self.readdir(ino);
        }
        let generation = self.generation(ino);
        if let Some(listing) = self.dirs.get(ino, generation) {
            return Ok(listing);
        }
        let listing = self.readdir(ino)?;
        drop(self.dirs.insert(ino, generation, listing.clone()));
        Ok(listing)
    }

    /// The listing of directory `ino`, without `.` and `..`.
    pub fn readdir(&self, ino: u64) -> Result<Arc<Vec<Listing>>> {
        #[cfg(test)]
        self.listings_built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT {
            return self.with_synth_dir(node, |children| {
                Arc::new(
                    children
                        .iter()
                        .map(|(name, &(ino, kind))| Listing {
                            name: name.clone(),
                            ino,
                            kind,
                        })
                        .collect(),
                )
            });
        }
        let (tree, node) = self.tree(slot, node)?;
        let entries = tree.read_dir(node)?;
        // The names of a listing the tree does not share are moved, not
        // copied.
        Ok(Arc::new(match Arc::try_unwrap(entries) {
            Ok(owned) => owned
                .into_iter()
                .map(|e| Listing {
                    name: e.name,
                    ino: inode::encode(slot, e.node),
                    kind: e.kind,
                })
                .collect(),
            Err(shared) => shared
                .iter()
                .map(|e| Listing {
                    name: e.name.clone(),
                    ino: inode::encode(slot, e.node),
                    kind: e.kind,
                })
                .collect(),
        }))
    }

    /// Reads file data for a program.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_with(ino, offset, size, ReadIntent::Demand)
    }

    /// Reads file data for the purpose `intent` (see [`ReadIntent`]).
    pub fn read_with(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>> {
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
        tree.read_with(node, offset, size, intent)
    }

    /// Size and image block size of `ino` when it is a regular file inside
    /// an image, for page-cache warming; `None` for anything else.
    pub fn file_extent(&self, ino: u64) -> Option<(u64, u32)> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT || node == inode::IMAGE_ROOT {
            return None;
        }
        let (tree, node) = self.tree(slot, node).ok()?;
        let attr = tree.attr(node).ok()?;
        (attr.kind == Kind::File).then(|| (attr.size, tree.block_size()))
    }

    /// The content key of regular file `ino` inside an image (see
    /// [`crate::tree::ImageTree::content_key`]), for whole decoded copies
    /// kept in the cache folder; `None` for anything else, or where the
    /// image's format has none.
    pub fn file_content_key(&self, ino: u64) -> Option<[u8; 32]> {
        let (slot, node) = inode::decode(ino);
        if slot == SYNTH_SLOT || node == inode::IMAGE_ROOT {
            return None;
        }
        let (tree, node) = self.tree(slot, node).ok()?;
        tree.content_key(node).ok().flatten()
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

    /// Total bytes of all mounted images, for `statfs`.
    pub fn total_bytes(&self) -> u64 {
        self.apps()
            .iter()
            .map(|a| match &a.detected.payload {
                crate::detect::Payload::SquashFs { superblock, .. } => superblock.bytes_used,
                crate::detect::Payload::Iso9660 { len } => *len,
                crate::detect::Payload::Dwarfs { len, .. } => *len,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
