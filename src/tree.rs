//! What every image format offers: one image as a read-only tree.
//!
//! The union namespace and the FUSE adapter only see this trait, so SquashFS
//! (type 2) and ISO 9660 (type 1) images are served the same way. Node ids
//! are chosen by each reader, must fit in [`NODE_ID_BITS`] bits, and must be
//! stable for the life of the opened image; two names for the same inode
//! (hard links) return the same node id.

use std::sync::Arc;

use crate::error::Result;

/// Node ids fit in this many bits; the union namespace uses the bits above
/// them for the image slot.
pub const NODE_ID_BITS: u32 = 48;

/// An image-local node id.
pub type NodeId = u64;

/// File types an image can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file.
    File,
    /// Symbolic link.
    Symlink,
    /// Block device node (never openable through the mount: `nodev`).
    BlockDev,
    /// Character device node (never openable through the mount: `nodev`).
    CharDev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// Metadata of one node, as stored in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// File type.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (for symlinks, the target length).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Hard link count.
    pub nlink: u32,
    /// Device number for device nodes (Linux `makedev` encoding), else 0.
    pub rdev: u32,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, raw bytes (never contains `/` or NUL, never `.` or `..`).
    pub name: Vec<u8>,
    /// The node the name points to.
    pub node: NodeId,
    /// Its type, so `readdir` needs no extra inode reads.
    pub kind: Kind,
}

/// Facts about an opened image, for `inspect` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Format name, e.g. "squashfs" or "iso9660".
    pub format: &'static str,
    /// Compression, e.g. "zstd", "zisofs", "none".
    pub compression: String,
    /// Block size in bytes.
    pub block_size: u32,
    /// Number of inodes (files, directories, links, ...), if known cheaply.
    pub inode_count: Option<u64>,
}

/// Why file bytes are read: decides what the decompression cache keeps and
/// whether read-ahead starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadIntent {
    /// A program asked for the bytes: decompressed blocks are kept, and a
    /// sequential reader has the next blocks decompressed ahead.
    Demand,
    /// The daemon is copying the file into the kernel's page cache, which
    /// holds it from then on: cached blocks are used, data blocks that are
    /// not are decompressed without being kept (unless decompressing them
    /// again costs far more than memory, as for xz), and nothing is read
    /// ahead. Keeping them would hold every byte twice and, on a cold
    /// start, fault in as much fresh memory again as the page cache takes.
    Warm,
    /// Warming a file again after the kernel dropped pages stored before:
    /// what is decompressed now is kept, so later drops cost no decompression.
    Rewarm,
    /// Storing a replayed start-up profile into the page cache (there is
    /// one only with `--cache-dir`): as `Warm`, but no data block is kept
    /// whatever the codec, since the cache folder gives it back without
    /// decoding. Keeping a replayed app's blocks (a few hundred MiB for a
    /// browser) cost more in fresh memory than reading them back.
    Replay,
}

impl ReadIntent {
    /// Whether a data block decompressed for this read is kept in the
    /// cache; `slow_codec` tells that decompressing it again would be
    /// costly (see [`crate::decompress::Codec::decodes_slowly`]).
    pub fn keeps(self, slow_codec: bool) -> bool {
        match self {
            ReadIntent::Demand | ReadIntent::Rewarm => true,
            ReadIntent::Warm => slow_codec,
            ReadIntent::Replay => false,
        }
    }
}

/// One image, read-only. Implementations must be safe to call from many
/// threads at once and must never panic on any image content.
pub trait ImageTree: Send + Sync {
    /// The root directory's node id.
    fn root(&self) -> NodeId;

    /// Metadata of a node.
    fn attr(&self, node: NodeId) -> Result<Attr>;

    /// Metadata of each of `nodes` (a READDIRPLUS page's entries), as
    /// [`attr`](Self::attr) gives them one by one; a reader may share
    /// work between neighbours.
    fn attrs(&self, nodes: &[NodeId]) -> Vec<Result<Attr>> {
        nodes.iter().map(|&n| self.attr(n)).collect()
    }

    /// Finds `name` in directory `dir`: `Ok(None)` when absent,
    /// `Err(Error::NotDir)` when `dir` is not a directory.
    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>>;

    /// The whole listing of directory `dir`, without `.` and `..`, in a
    /// stable order.
    fn read_dir(&self, dir: NodeId) -> Result<Arc<Vec<DirEntry>>>;

    /// Reads up to `size` bytes of file `node` at `offset`, for a program;
    /// short only at the end of the file.
    fn read(&self, node: NodeId, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_with(node, offset, size, ReadIntent::Demand)
    }

    /// As [`read`](Self::read), for the purpose `intent`.
    fn read_with(
        &self,
        node: NodeId,
        offset: u64,
        size: u32,
        intent: ReadIntent,
    ) -> Result<Vec<u8>>;

    /// The target of symlink `node`.
    fn read_link(&self, node: NodeId) -> Result<Vec<u8>>;

    /// Extended attributes of `node` as (full name, value) pairs.
    fn xattrs(&self, node: NodeId) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Facts about the image.
    fn info(&self) -> ImageInfo;

    /// About how many bytes of memory this opened image holds outside the
    /// shared block cache (parsed tables, directory trees, memos of parsed
    /// inodes and listings): what dropping it frees. The union keeps every
    /// opened image within one daemon-wide budget by it.
    fn memory_bytes(&self) -> usize;

    /// The content address of regular file `node` (see
    /// [`crate::disk_cache::files`]): a hash over exactly the stored bytes
    /// its contents are decoded from, so that a decoded copy kept on disk
    /// under it is served for no other content. `Ok(None)` where the format
    /// does not provide one (ISO 9660 and DwarFS images keep their blocks
    /// in the block cache only).
    fn content_key(&self, _node: NodeId) -> Result<Option<[u8; 32]>> {
        Ok(None)
    }

    /// The image's block size ([`ImageInfo::block_size`]), without building
    /// the rest of [`ImageInfo`]: asked once per file read by the warmer.
    fn block_size(&self) -> u32 {
        self.info().block_size
    }
}
