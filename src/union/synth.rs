//! The nodes appimagefs makes up itself (slot 0): the root, `bin/` and
//! `share/`. They are rebuilt as a whole when the set of apps changes and
//! are immutable between rebuilds.
//!
//! Node ids: the root, `bin` and `share` keep fixed ids (1, 2, 3) for the
//! life of the mount. Every other synthesized node's id carries the
//! generation of the tree it was built in (`generation << 24 | index`), so
//! an inode number the kernel kept from an older tree answers ENOENT
//! instead of showing a different file's content.

use std::collections::BTreeMap;

use super::inode::{self, SYNTH_SLOT};
use crate::error::{Error, Result};
use crate::tree::Kind;

/// Node id of the root (FUSE inode 1).
pub const ROOT: u64 = 1;
/// Node id of `bin/`.
pub const BIN: u64 = 2;
/// Node id of `share/`.
pub const SHARE: u64 = 3;

const FIXED: u64 = 4;
const INDEX_BITS: u32 = 24;
/// Most synthesized nodes one tree may hold.
pub const MAX_NODES: usize = (1 << INDEX_BITS) - 1;

/// Content of a synthesized node.
#[derive(Clone, Debug)]
pub enum SynthContent {
    /// A directory: name → (FUSE inode, type), sorted by name.
    Dir(BTreeMap<Vec<u8>, (u64, Kind)>),
    /// A regular file with these bytes.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
}

/// One synthesized node.
#[derive(Clone, Debug)]
pub struct SynthNode {
    /// Permission bits.
    pub perm: u16,
    /// What it holds.
    pub content: SynthContent,
}

impl SynthNode {
    /// Its file type.
    pub fn kind(&self) -> Kind {
        match self.content {
            SynthContent::Dir(_) => Kind::Dir,
            SynthContent::File(_) => Kind::File,
            SynthContent::Symlink(_) => Kind::Symlink,
        }
    }

    /// Its size as `stat` reports it.
    pub fn size(&self) -> u64 {
        match &self.content {
            SynthContent::Dir(children) => children.len() as u64,
            SynthContent::File(bytes) | SynthContent::Symlink(bytes) => bytes.len() as u64,
        }
    }
}

/// All synthesized nodes of one generation.
#[derive(Clone, Debug, Default)]
pub struct SynthTree {
    generation: u64,
    nodes: Vec<SynthNode>,
}

fn empty_dir() -> SynthNode {
    SynthNode {
        perm: 0o555,
        content: SynthContent::Dir(BTreeMap::new()),
    }
}

impl SynthTree {
    /// A tree of generation `generation` holding the root, `bin/` and
    /// `share/` (both empty).
    pub fn new(generation: u64) -> SynthTree {
        let mut t = SynthTree {
            generation,
            nodes: vec![empty_dir(), empty_dir(), empty_dir(), empty_dir()],
        };
        t.link(ROOT, b"bin", inode::encode(SYNTH_SLOT, BIN), Kind::Dir);
        t.link(ROOT, b"share", inode::encode(SYNTH_SLOT, SHARE), Kind::Dir);
        t
    }

    fn index_of(&self, node: u64) -> Option<usize> {
        if node < FIXED {
            return (node >= ROOT).then_some(node as usize);
        }
        let generation = node >> INDEX_BITS;
        (generation == self.generation & ((1 << (inode::NODE_BITS - INDEX_BITS)) - 1))
            .then_some((node & ((1 << INDEX_BITS) - 1)) as usize)
    }

    fn id_of(&self, index: usize) -> u64 {
        if (index as u64) < FIXED {
            return index as u64;
        }
        let generation = self.generation & ((1 << (inode::NODE_BITS - INDEX_BITS)) - 1);
        (generation << INDEX_BITS) | index as u64
    }

    /// The node with this id, if it belongs to this generation.
    pub fn get(&self, node: u64) -> Option<&SynthNode> {
        self.nodes.get(self.index_of(node)?)
    }

    fn link(&mut self, dir: u64, name: &[u8], ino: u64, kind: Kind) {
        if let Some(i) = self.index_of(dir) {
            if let Some(SynthContent::Dir(children)) = self.nodes.get_mut(i).map(|n| &mut n.content)
            {
                children.insert(name.to_vec(), (ino, kind));
            }
        }
    }

    /// Adds `name` → `ino` to directory `dir` (used for app folders, whose
    /// inodes live in other slots).
    pub fn add_entry(&mut self, dir: u64, name: &[u8], ino: u64, kind: Kind) {
        self.link(dir, name, ino, kind);
    }

    /// Adds a new node as `name` in `dir`, returning its id; an existing
    /// name is replaced.
    pub fn add(&mut self, dir: u64, name: &[u8], node: SynthNode) -> Result<u64> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::Unsupported("too many synthesized files".into()));
        }
        let kind = node.kind();
        self.nodes.push(node);
        let id = self.id_of(self.nodes.len() - 1);
        self.link(dir, name, inode::encode(SYNTH_SLOT, id), kind);
        Ok(id)
    }

    /// The directory at `path` (slash-separated, relative to `dir`),
    /// created as needed.
    pub fn mkdir_p(&mut self, mut dir: u64, path: &str) -> Result<u64> {
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let existing = match self.get(dir).map(|n| &n.content) {
                Some(SynthContent::Dir(children)) => children.get(part.as_bytes()).copied(),
                _ => return Err(Error::NotDir),
            };
            dir = match existing {
                Some((ino, Kind::Dir)) => inode::decode(ino).1,
                Some(_) => return Err(Error::NotDir),
                None => self.add(dir, part.as_bytes(), empty_dir())?,
            };
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(t: &SynthTree, dir: u64, name: &[u8]) -> Option<(u64, Kind)> {
        match &t.get(dir)?.content {
            SynthContent::Dir(c) => c.get(name).copied(),
            _ => None,
        }
    }

    #[test]
    fn fixed_nodes_and_generations() {
        let mut t = SynthTree::new(5);
        assert_eq!(child(&t, ROOT, b"bin"), Some((BIN, Kind::Dir)));
        let d = t.mkdir_p(SHARE, "icons/hicolor/48x48/apps").unwrap();
        assert_eq!(
            t.mkdir_p(SHARE, "icons/hicolor").unwrap(),
            inode::decode(
                child(
                    &t,
                    inode::decode(child(&t, SHARE, b"icons").unwrap().0).1,
                    b"hicolor"
                )
                .unwrap()
                .0
            )
            .1
        );
        let f = t
            .add(
                d,
                b"x.png",
                SynthNode {
                    perm: 0o444,
                    content: SynthContent::File(b"hi".to_vec()),
                },
            )
            .unwrap();
        assert_eq!(t.get(f).unwrap().size(), 2);
        let newer = SynthTree::new(6);
        assert!(
            newer.get(f).is_none(),
            "ids of an older generation must not resolve"
        );
        assert!(newer.get(BIN).is_some());
        assert!(t.get(0).is_none());
    }
}
