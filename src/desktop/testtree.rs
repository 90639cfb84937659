//! An in-memory [`ImageTree`] for tests: built by hand, or loaded from a
//! folder on the host (e.g. an AppImage extracted with `unsquashfs`), so the
//! integration logic is tested independently of the image readers.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::tree::{Attr, DirEntry, ImageInfo, ImageTree, Kind, NodeId, ReadIntent};

enum Content {
    Dir(BTreeMap<Vec<u8>, NodeId>),
    File(Vec<u8>),
    Link(Vec<u8>),
}

/// The tree; node ids are indexes into `nodes`, the root is 0.
pub struct MemTree {
    nodes: Vec<Content>,
    /// When set, every `read` fails with an I/O error.
    pub fail_reads: bool,
}

impl MemTree {
    pub fn new() -> MemTree {
        MemTree {
            nodes: vec![Content::Dir(BTreeMap::new())],
            fail_reads: false,
        }
    }

    fn add(&mut self, path: &[u8], content: Content) -> NodeId {
        let mut parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .collect();
        let last = parts.pop().expect("a path");
        let mut dir = 0;
        for part in parts {
            dir = match &self.nodes[dir as usize] {
                Content::Dir(children) => children.get(part).copied(),
                _ => panic!("not a dir"),
            }
            .unwrap_or_else(|| self.add_child(dir, part, Content::Dir(BTreeMap::new())));
        }
        self.add_child(dir, last, content)
    }

    fn add_child(&mut self, dir: NodeId, name: &[u8], content: Content) -> NodeId {
        let id = self.nodes.len() as NodeId;
        self.nodes.push(content);
        match &mut self.nodes[dir as usize] {
            Content::Dir(children) => children.insert(name.to_vec(), id),
            _ => panic!("not a dir"),
        };
        id
    }

    pub fn file(mut self, path: &str, bytes: &[u8]) -> MemTree {
        self.add(path.as_bytes(), Content::File(bytes.to_vec()));
        self
    }

    pub fn file_b(mut self, path: &[u8], bytes: &[u8]) -> MemTree {
        self.add(path, Content::File(bytes.to_vec()));
        self
    }

    pub fn link(mut self, path: &str, target: &str) -> MemTree {
        self.add(path.as_bytes(), Content::Link(target.as_bytes().to_vec()));
        self
    }

    pub fn dir(mut self, path: &str) -> MemTree {
        self.add(path.as_bytes(), Content::Dir(BTreeMap::new()));
        self
    }

    /// Loads a host folder (symlinks kept as symlinks).
    pub fn from_host_dir(root: &Path) -> MemTree {
        let mut tree = MemTree::new();
        tree.load(root, b"");
        tree
    }

    fn load(&mut self, dir: &Path, prefix: &[u8]) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            let path = [prefix, name.as_bytes()].concat();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                self.add(&path, Content::Link(target.as_os_str().as_bytes().to_vec()));
            } else if meta.is_dir() {
                self.add(&path, Content::Dir(BTreeMap::new()));
                self.load(&e.path(), &[&path[..], b"/"].concat());
            } else {
                self.add(&path, Content::File(std::fs::read(e.path()).unwrap()));
            }
        }
    }

    fn node(&self, node: NodeId) -> Result<&Content> {
        self.nodes.get(node as usize).ok_or(Error::NotFound)
    }
}

fn kind(c: &Content) -> Kind {
    match c {
        Content::Dir(_) => Kind::Dir,
        Content::File(_) => Kind::File,
        Content::Link(_) => Kind::Symlink,
    }
}

impl ImageTree for MemTree {
    fn memory_bytes(&self) -> usize {
        self.nodes
            .iter()
            .map(|c| match c {
                Content::Dir(children) => children.keys().map(|k| k.len() + 40).sum(),
                Content::File(b) | Content::Link(b) => b.len(),
            })
            .sum()
    }

    fn root(&self) -> NodeId {
        0
    }

    fn attr(&self, node: NodeId) -> Result<Attr> {
        let c = self.node(node)?;
        let size = match c {
            Content::Dir(children) => children.len() as u64,
            Content::File(b) | Content::Link(b) => b.len() as u64,
        };
        Ok(Attr {
            kind: kind(c),
            perm: 0o755,
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            mtime_nsec: 0,
            nlink: 1,
            rdev: 0,
        })
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        match self.node(dir)? {
            Content::Dir(children) => Ok(children.get(name).copied()),
            _ => Err(Error::NotDir),
        }
    }

    fn read_dir(&self, dir: NodeId) -> Result<Arc<Vec<DirEntry>>> {
        match self.node(dir)? {
            Content::Dir(children) => Ok(Arc::new(
                children
                    .iter()
                    .map(|(name, &node)| DirEntry {
                        name: name.clone(),
                        node,
                        kind: kind(&self.nodes[node as usize]),
                    })
                    .collect(),
            )),
            _ => Err(Error::NotDir),
        }
    }

    fn read_with(
        &self,
        node: NodeId,
        offset: u64,
        size: u32,
        _intent: ReadIntent,
    ) -> Result<Vec<u8>> {
        if self.fail_reads {
            return Err(Error::Io(std::io::Error::other("injected read failure")));
        }
        match self.node(node)? {
            Content::File(b) => {
                let start = (offset as usize).min(b.len());
                let end = start.saturating_add(size as usize).min(b.len());
                Ok(b[start..end].to_vec())
            }
            Content::Dir(_) => Err(Error::IsDir),
            Content::Link(_) => Err(Error::Invalid),
        }
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        match self.node(node)? {
            Content::Link(t) => Ok(t.clone()),
            _ => Err(Error::Invalid),
        }
    }

    fn xattrs(&self, _node: NodeId) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(Vec::new())
    }

    fn info(&self) -> ImageInfo {
        ImageInfo {
            format: "memory",
            ..ImageInfo::default()
        }
    }
}
