//! How FUSE inode numbers map to image nodes, in one place.
//!
//! A FUSE inode number is 64 bits: `slot << 48 | node`.
//!
//! - `slot` (16 bits) names a mounted image; slot 0 is reserved for the
//!   nodes appimagefs synthesizes itself (the root, `bin/`, `share/`...).
//!   A slot is never reused for a different image while the daemon runs
//!   with fewer than 65535 images ever mounted; beyond that, a slot is
//!   reused only once it is free (its image retired and every lookup of its
//!   inodes forgotten by the kernel, see [`super::lookups`]), with a new
//!   FUSE generation number. An inode number of a slot that holds no image
//!   answers ESTALE, never a node of another image.
//! - `node` (48 bits) is the image reader's own node id
//!   ([`crate::tree::NodeId`]): for SquashFS the inode reference, so hard
//!   links share an inode number; for ISO 9660 an index.
//!
//! The FUSE root (inode 1) is synthesized node 1 in slot 0. An app folder
//! (an image's root directory) is node [`IMAGE_ROOT`] of its slot, whatever
//! the reader calls its root, so listing the top of the tree never has to
//! open an image. No reader uses that id for a real node: SquashFS inode
//! references have an in-block offset below 8192, ISO 9660 ids are indexes.

use crate::tree::{NodeId, NODE_ID_BITS};

/// Index of a mounted image; 0 means "synthesized by appimagefs".
pub type Slot = u16;

/// The slot of synthesized nodes.
pub const SYNTH_SLOT: Slot = 0;

/// Bits of a FUSE inode number that hold the node id.
pub const NODE_BITS: u32 = NODE_ID_BITS;

const NODE_MASK: u64 = (1 << NODE_ID_BITS) - 1;

/// The node id that stands for an image's root directory in every slot.
pub const IMAGE_ROOT: NodeId = NODE_MASK;

/// Builds the FUSE inode number of `node` in `slot`.
pub fn encode(slot: Slot, node: NodeId) -> u64 {
    (u64::from(slot) << NODE_ID_BITS) | (node & NODE_MASK)
}

/// Splits a FUSE inode number into slot and node.
pub fn decode(ino: u64) -> (Slot, NodeId) {
    ((ino >> NODE_ID_BITS) as Slot, ino & NODE_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (slot, node) in [(0, 1), (1, 0), (65535, NODE_MASK), (7, 0x1234_5678_9abc)] {
            assert_eq!(decode(encode(slot, node)), (slot, node));
        }
        assert_eq!(encode(SYNTH_SLOT, 1), 1);
    }
}
