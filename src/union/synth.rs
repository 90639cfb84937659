//! The nodes appimagefs makes up itself (slot 0): the root and, later, the
//! launcher and menu folders. They are rebuilt as a whole whenever the set
//! of apps changes, and are immutable between rebuilds.

use crate::tree::Kind;

/// Node id of the root in the synthesized slot (FUSE inode 1).
pub const ROOT: u64 = 1;

/// Content of a synthesized node.
#[derive(Clone, Debug)]
pub enum SynthContent {
    /// A directory; its children are listed by name and FUSE inode.
    Dir(Vec<(Vec<u8>, u64, Kind)>),
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

/// All synthesized nodes; index = node id (index 0 is unused, 1 is the root).
#[derive(Clone, Debug, Default)]
pub struct SynthTree {
    /// The nodes.
    pub nodes: Vec<Option<SynthNode>>,
}

impl SynthTree {
    /// A tree with only a root directory listing `root_children`.
    pub fn with_root(root_children: Vec<(Vec<u8>, u64, Kind)>) -> SynthTree {
        SynthTree {
            nodes: vec![
                None,
                Some(SynthNode {
                    perm: 0o555,
                    content: SynthContent::Dir(root_children),
                }),
            ],
        }
    }

    /// The node with this id.
    pub fn get(&self, node: u64) -> Option<&SynthNode> {
        self.nodes.get(usize::try_from(node).ok()?)?.as_ref()
    }
}
