//! Reads the whole directory tree once into plain nodes ([`Tree`]).
//!
//! Which tree is read:
//! - Rock Ridge, when the root "." record starts with an `SP` entry and has
//!   an `ER` entry naming RRIP or Rock Ridge entries: the primary tree with
//!   Rock Ridge names, modes, owners, times, symlinks, device numbers, hard
//!   links (`PX` serial numbers) and relocated directories put back where
//!   they belong (`CL` followed, `RE` hidden, an emptied relocation
//!   directory in the root hidden);
//! - else Joliet, if present: UCS-2 names, mode 0555;
//! - else plain ISO 9660, mode 0555.
//!
//! `ZF` entries are honoured whenever the primary tree carries SUSP entries.
//!
//! The walk is iterative and bounded: every directory extent is listed once
//! (a second reference to an extent is a loop: the image is corrupt), the
//! directory and continuation bytes read are charged to a budget of twice
//! the image size, and depth, node count, name and symlink lengths are
//! capped. Entries whose name cannot be a file name are left out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::backing::Backing;
use crate::error::{Error, Result};
use crate::tree::{Attr, DirEntry, Kind, NodeId};

use super::names;
use super::node::{id_of, index_of, Content, Extent, FileData, Node, Tree};
use super::record::{self, FLAG_ASSOCIATED, FLAG_DIR, FLAG_MULTI_EXTENT, SECTOR};
use super::susp::{self, SystemUse};
use super::volume::{self, RootDir};
use super::zisofs::ZisofsFile;

/// Deepest directory nesting accepted.
pub(crate) const MAX_DEPTH: usize = 1024;
/// Most nodes accepted in one image.
pub(crate) const MAX_NODES: usize = 2_000_000;
/// Longest symlink target accepted; longer symlinks are left out.
pub(crate) const MAX_SYMLINK: usize = 4095;
/// Permissions of files and directories without Rock Ridge (as Linux and
/// xorriso show them).
const DEFAULT_PERM: u16 = 0o555;

/// Reads the volume descriptors and the whole tree of the image.
pub(crate) fn read_tree(backing: &Backing) -> Result<Tree> {
    let volume = volume::read(backing)?;
    let mut w = Walker {
        backing,
        mode: Mode::PLAIN,
        budget: backing.len().saturating_mul(2).saturating_add(1 << 20),
        nodes: Vec::new(),
        visited: HashSet::new(),
        links: HashMap::new(),
        relocation_parents: HashSet::new(),
        zisofs: false,
    };
    // The root "." record says whether SUSP (an SP entry) and Rock Ridge
    // are in use.
    let dot = w.dot_of(volume.primary.extent)?;
    let su = w.parse_system_use(&dot.system_use, Some(0), true)?;
    let (root, dot, su) = match (su.sp_skip, su.rock_ridge, volume.joliet) {
        (Some(skip), true, _) => {
            w.mode = Mode {
                susp: Some(skip),
                rock_ridge: true,
                joliet: false,
            };
            (volume.primary, dot, su)
        }
        (_, _, Some(joliet)) => {
            w.mode = Mode {
                susp: None,
                rock_ridge: false,
                joliet: true,
            };
            (joliet, w.dot_of(joliet.extent)?, SystemUse::default())
        }
        (skip, _, None) => {
            w.mode = Mode {
                susp: skip,
                rock_ridge: false,
                joliet: false,
            };
            (volume.primary, dot, su)
        }
    };
    w.walk(root, &dot, &su)?;
    Ok(Tree {
        nodes: w.nodes,
        zisofs: w.zisofs,
    })
}

/// How names and attributes are read.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// SUSP entries are parsed, after skipping this many bytes of each
    /// System Use area (the `SP` entry's skip length).
    susp: Option<u8>,
    /// Rock Ridge semantics (relocation, hard links).
    rock_ridge: bool,
    /// Names are Joliet UCS-2.
    joliet: bool,
}

impl Mode {
    const PLAIN: Mode = Mode {
        susp: None,
        rock_ridge: false,
        joliet: false,
    };
}

/// The "." record of a directory, owned.
struct Dot {
    time: i64,
    size: u32,
    extent: u32,
    system_use: Vec<u8>,
}

/// A directory whose listing is still to be read.
struct Pending {
    index: usize,
    extent: u32,
    size: u32,
    depth: usize,
    /// nlink is to be counted from the subdirectories (no `PX`).
    count_links: bool,
}

/// One record (or multi-extent run of records) of a directory, owned.
struct Raw {
    iso_name: Vec<u8>,
    extent: u32,
    size: u32,
    time: i64,
    is_dir: bool,
    interleaved: bool,
    su: SystemUse,
    /// Data extents (more than one for a multi-extent file).
    extents: Vec<Extent>,
}

/// What makes two directory entries one hard-linked inode: the same Rock
/// Ridge serial number, a link count above one, and the same content.
#[derive(Hash, PartialEq, Eq)]
struct LinkKey {
    ino: u32,
    kind: Kind,
    /// Data position, or device number.
    data: u64,
    size: u64,
    target: Vec<u8>,
}

struct Walker<'a> {
    backing: &'a Backing,
    mode: Mode,
    /// Directory and continuation bytes that may still be read.
    budget: u64,
    nodes: Vec<Node>,
    /// Directory extents already listed.
    visited: HashSet<u32>,
    /// Hard-linked nodes seen so far.
    links: HashMap<LinkKey, usize>,
    /// Directories that held relocated (`RE`) directories.
    relocation_parents: HashSet<usize>,
    zisofs: bool,
}

/// Takes `len` bytes from the read budget.
fn charge(budget: &mut u64, len: u64) -> Result<()> {
    *budget = budget
        .checked_sub(len)
        .ok_or_else(|| Error::corrupt("directory data read exceeds twice the image size"))?;
    Ok(())
}

impl Walker<'_> {
    /// Reads a directory extent, checked against the image and the budget.
    fn read_extent(&mut self, extent: u32, size: u32) -> Result<Vec<u8>> {
        let pos = u64::from(extent) * SECTOR;
        if pos + u64::from(size) > self.backing.len() {
            return Err(Error::corrupt(format!(
                "directory at block {extent} ({size} bytes) passes the end of the image"
            )));
        }
        charge(&mut self.budget, u64::from(size))?;
        self.backing.read_vec(pos, size as usize)
    }

    /// The "." record of the directory whose extent starts at `extent`.
    fn dot_of(&mut self, extent: u32) -> Result<Dot> {
        let sector = self.read_extent(extent, SECTOR as u32)?;
        let rec = record::parse(&sector)?;
        if rec.name != [0] || !rec.is_dir() {
            return Err(Error::corrupt(format!(
                "directory at block {extent} does not start with a \".\" record"
            )));
        }
        Ok(Dot {
            time: rec.time,
            size: rec.size,
            extent: rec.extent,
            system_use: rec.system_use.to_vec(),
        })
    }

    /// Parses a record's System Use area if SUSP is in use.
    fn system_use(&mut self, area: &[u8]) -> Result<SystemUse> {
        self.parse_system_use(area, self.mode.susp, false)
    }

    /// Parses a System Use area, skipping `skip` bytes (except in the root
    /// "." record, where `SP` itself sits at offset 0).
    fn parse_system_use(
        &mut self,
        area: &[u8],
        skip: Option<u8>,
        root_dot: bool,
    ) -> Result<SystemUse> {
        let Some(skip) = skip else {
            return Ok(SystemUse::default());
        };
        let area = if root_dot {
            area
        } else {
            &area[usize::from(skip).min(area.len())..]
        };
        let backing = self.backing;
        let budget = &mut self.budget;
        susp::parse(area, root_dot, &mut |pos, len| {
            charge(budget, len as u64)?;
            backing.read_vec(pos, len)
        })
    }

    fn push(&mut self, node: Node) -> Result<usize> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::corrupt(format!("more than {MAX_NODES} inodes")));
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn walk(&mut self, root: RootDir, dot: &Dot, su: &SystemUse) -> Result<()> {
        let (attr, count_links) = self.dir_attr(dot.time, root.size, su);
        let index = self.push(Node {
            attr,
            content: Content::Dir(Arc::default()),
        })?;
        self.visited.insert(root.extent);
        let mut stack = vec![Pending {
            index,
            extent: root.extent,
            size: root.size,
            depth: 0,
            count_links,
        }];
        while let Some(dir) = stack.pop() {
            let entries = self.list(&dir, &mut stack)?;
            if dir.count_links {
                let subdirs = entries.iter().filter(|e| e.kind == Kind::Dir).count();
                self.nodes[dir.index].attr.nlink = 2u32.saturating_add(subdirs as u32);
            }
            self.nodes[dir.index].content = Content::Dir(Arc::new(entries));
        }
        self.hide_relocation_dirs();
        Ok(())
    }

    /// A relocation directory ("rr_moved") in the root that held only
    /// relocated directories is an artefact of the format: hide it. (xorriso
    /// marks the one it creates `RE`, so it is already hidden; mkisofs does
    /// not mark its rr_moved.)
    fn hide_relocation_dirs(&mut self) {
        let Content::Dir(root) = &self.nodes[0].content else {
            return;
        };
        // A set: a root of n entries can hold n such folders, and a search
        // of a list for each entry would make this n².
        let hidden: HashSet<NodeId> = root
            .iter()
            .filter(|e| {
                index_of(e.node).is_some_and(|i| {
                    self.relocation_parents.contains(&i)
                        && matches!(&self.nodes[i].content, Content::Dir(l) if l.is_empty())
                })
            })
            .map(|e| e.node)
            .collect();
        if !hidden.is_empty() {
            let kept = root
                .iter()
                .filter(|e| !hidden.contains(&e.node))
                .cloned()
                .collect();
            self.nodes[0].content = Content::Dir(Arc::new(kept));
        }
    }

    /// Reads the records of one directory, joining the records of
    /// multi-extent files (same name, all but the last flagged).
    fn records(&mut self, dir: &Pending) -> Result<Vec<Raw>> {
        let buf = self.read_extent(dir.extent, dir.size)?;
        let sector = SECTOR as usize;
        let mut raws: Vec<Raw> = Vec::new();
        let mut continues = false;
        let mut pos = 0usize;
        while pos < buf.len() {
            let sector_end = ((pos / sector + 1) * sector).min(buf.len());
            if buf[pos] == 0 {
                pos = sector_end; // padding up to the next sector
                continue;
            }
            let rec = record::parse(&buf[pos..sector_end])?;
            pos += rec.len;
            if rec.is_self_or_parent() || rec.flags & FLAG_ASSOCIATED != 0 {
                continue;
            }
            let data = Extent {
                pos: (u64::from(rec.extent) + u64::from(rec.xattr_blocks)) * SECTOR,
                len: u64::from(rec.size),
            };
            let is_dir = rec.flags & FLAG_DIR != 0;
            let multi = rec.flags & FLAG_MULTI_EXTENT != 0 && !is_dir;
            if continues && !is_dir {
                if let Some(prev) = raws.last_mut().filter(|p| p.iso_name == rec.name) {
                    prev.extents.push(data);
                    continues = multi;
                    continue;
                }
            }
            continues = multi;
            let su = self.system_use(rec.system_use)?;
            raws.push(Raw {
                iso_name: rec.name.to_vec(),
                extent: rec.extent,
                size: rec.size,
                time: rec.time,
                is_dir,
                interleaved: rec.unit_size != 0 || rec.gap_size != 0,
                su,
                extents: vec![data],
            });
        }
        Ok(raws)
    }

    /// Lists one directory: creates a node per entry (or finds its hard-link
    /// twin) and queues the subdirectories.
    fn list(&mut self, dir: &Pending, stack: &mut Vec<Pending>) -> Result<Vec<DirEntry>> {
        let raws = self.records(dir)?;
        let mut entries = Vec::with_capacity(raws.len());
        for raw in raws {
            if self.mode.rock_ridge && raw.su.relocated && raw.is_dir {
                self.relocation_parents.insert(dir.index);
                continue;
            }
            let Some(name) = self.name_of(&raw) else {
                continue;
            };
            let child_link = raw
                .su
                .child_link
                .filter(|_| self.mode.rock_ridge && !raw.is_dir);
            let entry = if raw.is_dir || child_link.is_some() {
                Some(self.dir_entry(dir, &raw, child_link, stack)?)
            } else {
                self.leaf_entry(&raw)?
            };
            if let Some((index, kind)) = entry {
                entries.push(DirEntry {
                    name,
                    node: id_of(index),
                    kind,
                });
            }
        }
        // Stable sort: of two equal names the first recorded one stays.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        Ok(entries)
    }

    /// The entry's name in the tree being read, or `None` when it cannot be
    /// a file name.
    fn name_of(&self, raw: &Raw) -> Option<Vec<u8>> {
        let name = match &raw.su.name {
            Some(nm) => nm.clone(),
            None if self.mode.joliet => names::joliet(&raw.iso_name),
            None => names::iso(&raw.iso_name, raw.is_dir),
        };
        names::is_valid(&name).then_some(name)
    }

    /// Creates a directory node and queues its listing.
    fn dir_entry(
        &mut self,
        parent: &Pending,
        raw: &Raw,
        child_link: Option<u32>,
        stack: &mut Vec<Pending>,
    ) -> Result<(usize, Kind)> {
        let (extent, size, time, su) = match child_link {
            Some(target) => {
                // The stub stands for the directory relocated to `target`,
                // whose "." record holds the real size (and usually PX/TF).
                let dot = self.dot_of(target)?;
                if dot.extent != target {
                    return Err(Error::corrupt(format!(
                        "Rock Ridge CL to block {target} finds a \".\" record for block {}",
                        dot.extent
                    )));
                }
                let mut su = self.system_use(&dot.system_use)?;
                su.px = su.px.or(raw.su.px);
                su.mtime = su.mtime.or(raw.su.mtime);
                (target, dot.size, dot.time, su)
            }
            None => (raw.extent, raw.size, raw.time, raw.su.clone()),
        };
        if !self.visited.insert(extent) {
            return Err(Error::corrupt(format!(
                "directory at block {extent} is reachable twice (directory loop)"
            )));
        }
        if parent.depth >= MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "directories nested deeper than {MAX_DEPTH}"
            )));
        }
        let (attr, count_links) = self.dir_attr(time, size, &su);
        let index = self.push(Node {
            attr,
            content: Content::Dir(Arc::default()),
        })?;
        stack.push(Pending {
            index,
            extent,
            size,
            depth: parent.depth + 1,
            count_links,
        });
        Ok((index, Kind::Dir))
    }

    /// Attributes of a directory; the flag says nlink is still to be counted.
    fn dir_attr(&self, time: i64, size: u32, su: &SystemUse) -> (Attr, bool) {
        let mut attr = base_attr(Kind::Dir, time, su);
        attr.size = u64::from(size);
        (attr, su.px.is_none_or(|px| px.nlink == 0))
    }

    /// Creates (or finds, for a hard link) the node of a non-directory;
    /// `None` leaves the entry out.
    fn leaf_entry(&mut self, raw: &Raw) -> Result<Option<(usize, Kind)>> {
        let kind = match raw.su.px.map(|px| px.mode & 0o170000) {
            Some(0o120000) => Kind::Symlink,
            Some(0o020000) => Kind::CharDev,
            Some(0o060000) => Kind::BlockDev,
            Some(0o010000) => Kind::Fifo,
            Some(0o140000) => Kind::Socket,
            None if raw.su.symlink.is_some() => Kind::Symlink,
            _ => Kind::File,
        };
        let mut attr = base_attr(kind, raw.time, &raw.su);
        let content = match kind {
            Kind::Symlink => {
                let target = raw.su.symlink.clone().unwrap_or_default();
                if target.len() > MAX_SYMLINK {
                    return Ok(None);
                }
                attr.size = target.len() as u64;
                Content::Symlink(target)
            }
            Kind::CharDev | Kind::BlockDev => {
                attr.rdev = raw.su.pn.map_or(0, susp::rdev);
                Content::Special
            }
            Kind::Fifo | Kind::Socket => Content::Special,
            Kind::File | Kind::Dir => {
                let (data, size) = self.file_data(raw);
                attr.size = size;
                Content::File(data)
            }
        };
        let key = raw
            .su
            .px
            .filter(|px| self.mode.rock_ridge && px.nlink > 1)
            .and_then(|px| {
                Some(LinkKey {
                    ino: px.ino?,
                    kind,
                    data: match kind {
                        Kind::CharDev | Kind::BlockDev => u64::from(attr.rdev),
                        _ => raw.extents.first().map_or(0, |e| e.pos),
                    },
                    size: attr.size,
                    target: match &content {
                        Content::Symlink(t) => t.clone(),
                        _ => Vec::new(),
                    },
                })
            });
        if let Some(&index) = key.as_ref().and_then(|k| self.links.get(k)) {
            return Ok(Some((index, kind)));
        }
        let index = self.push(Node { attr, content })?;
        if let Some(key) = key {
            self.links.insert(key, index);
        }
        Ok(Some((index, kind)))
    }

    /// Where a regular file's data is, and its size.
    fn file_data(&mut self, raw: &Raw) -> (FileData, u64) {
        let stored: u64 = raw.extents.iter().map(|e| e.len).sum();
        if raw.interleaved {
            return (FileData::Unsupported("interleaved file".into()), stored);
        }
        let image_len = self.backing.len();
        if let Some(e) = raw
            .extents
            .iter()
            .find(|e| e.len > 0 && e.pos + e.len > image_len)
        {
            let msg = format!(
                "file data at byte {} ({} bytes) passes the end of the image",
                e.pos, e.len
            );
            return (FileData::Broken(msg), stored);
        }
        let extents: Vec<Extent> = raw.extents.iter().copied().filter(|e| e.len > 0).collect();
        let Some(zf) = raw.su.zf else {
            return (FileData::Extents(extents), stored);
        };
        if raw.extents.len() != 1 {
            return (
                FileData::Unsupported("zisofs file in several extents".into()),
                stored,
            );
        }
        let data = raw.extents[0];
        match ZisofsFile::new(&zf, data.pos, data.len) {
            Ok(z) => {
                self.zisofs = true;
                let size = z.size();
                (FileData::Zisofs(z), size)
            }
            Err(msg) if &zf.algorithm != b"pz" => (FileData::Unsupported(msg), stored),
            Err(msg) => (FileData::Broken(msg), stored),
        }
    }
}

/// Attributes common to every kind (size and rdev are filled in later).
fn base_attr(kind: Kind, time: i64, su: &SystemUse) -> Attr {
    let (mtime, mtime_nsec) = su.mtime.unwrap_or((time, 0));
    let px = su.px.unwrap_or_default();
    Attr {
        kind,
        perm: if su.px.is_some() {
            (px.mode & 0o7777) as u16
        } else {
            DEFAULT_PERM
        },
        uid: px.uid,
        gid: px.gid,
        size: 0,
        mtime,
        mtime_nsec,
        nlink: px.nlink.max(1),
        rdev: 0,
    }
}
