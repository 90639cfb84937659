//! The plain, shareable form of an opened tree: a vector of nodes.

use std::sync::Arc;

use crate::tree::{Attr, DirEntry, NodeId};

use super::zisofs::ZisofsFile;

/// A byte range of the image holding file data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    /// Byte position in the image.
    pub pos: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Where a regular file's bytes come from.
#[derive(Debug)]
pub(crate) enum FileData {
    /// Stored as is, in one or more extents (multi-extent files).
    Extents(Vec<Extent>),
    /// zisofs compressed.
    Zisofs(ZisofsFile),
    /// Listed, but reading fails with `Error::Corrupt(reason)`.
    Broken(String),
    /// Listed, but reading fails with `Error::Unsupported(reason)`.
    Unsupported(String),
}

/// What a node holds besides its attributes.
#[derive(Debug)]
pub(crate) enum Content {
    /// A directory listing, sorted by name, names unique.
    Dir(Arc<Vec<DirEntry>>),
    /// A regular file.
    File(FileData),
    /// A symlink target.
    Symlink(Vec<u8>),
    /// A device node, fifo or socket.
    Special,
}

/// One inode of the image.
#[derive(Debug)]
pub(crate) struct Node {
    /// Metadata.
    pub attr: Attr,
    /// Listing, data or target.
    pub content: Content,
}

/// The whole tree; node id `n` is `nodes[n - 1]`, the root is id 1.
#[derive(Debug)]
pub(crate) struct Tree {
    /// All nodes.
    pub nodes: Vec<Node>,
    /// Whether any file is zisofs-compressed.
    pub zisofs: bool,
}

/// Node id of the node at `index`.
/// Bytes `nodes` holds: the nodes themselves, listings with their names,
/// extent lists and symlink targets.
pub(crate) fn memory_bytes(nodes: &[Node]) -> usize {
    let heap: usize = nodes
        .iter()
        .map(|n| match &n.content {
            Content::Dir(entries) => {
                // The Arc's counters, the entries and their names.
                16 + entries.capacity() * std::mem::size_of::<DirEntry>()
                    + entries.iter().map(|e| e.name.capacity()).sum::<usize>()
            }
            Content::File(FileData::Extents(extents)) => {
                extents.capacity() * std::mem::size_of::<Extent>()
            }
            Content::File(FileData::Broken(why) | FileData::Unsupported(why)) => why.capacity(),
            Content::File(FileData::Zisofs(_)) | Content::Special => 0,
            Content::Symlink(target) => target.capacity(),
        })
        .sum();
    std::mem::size_of_val(nodes) + heap
}

pub(crate) fn id_of(index: usize) -> NodeId {
    index as NodeId + 1
}

/// Index of the node with id `id`, if it can be one.
pub(crate) fn index_of(id: NodeId) -> Option<usize> {
    id.checked_sub(1).and_then(|i| usize::try_from(i).ok())
}
