//! The lookups the kernel holds on one app's inodes, counted per inode as
//! the kernel counts them (its `nlookup`): one for every LOOKUP reply and
//! every READDIRPLUS entry it is sent, minus what FORGET and BATCH_FORGET
//! give back. An app retired from the listing is freed, and its slot may
//! be reused, only when every count is back to zero: the kernel then holds
//! no inode of it, so no inode number of the old image can reach the new
//! one.
//!
//! A walk counts every node of an image here, so the table is hashed with
//! the hasher of [`lru`] (foldhash, seeded per process: a few instructions
//! per node id, where the standard SipHash was a measurable share of a
//! walk's CPU), and a READDIRPLUS page counts its entries under one lock
//! ([`LookupCounts::count_all`]).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::tree::NodeId;

/// The table: node → lookups held.
type Table = HashMap<NodeId, u64, lru::DefaultHasher>;

/// Node → lookups the kernel holds; a node it holds none of has no entry.
#[derive(Default)]
pub struct LookupCounts(Mutex<Table>);

/// What is left after [`LookupCounts::uncount`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    /// The kernel still holds some inode of the app.
    Held,
    /// The kernel holds no inode of the app.
    Nothing,
}

impl LookupCounts {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more lookup of `node`.
    pub fn count(&self, node: NodeId) {
        self.count_all(&[node]);
    }

    /// One more lookup of each of `nodes` (a node named twice counts
    /// twice), under one lock.
    pub fn count_all(&self, nodes: &[NodeId]) {
        let mut t = self.table();
        for &node in nodes {
            let n = t.entry(node).or_insert(0);
            *n = n.saturating_add(1);
        }
    }

    /// `n` lookups of `node` fewer. Giving back more than was counted (a
    /// kernel never does) drops the node's count to zero and is logged.
    pub fn uncount(&self, node: NodeId, n: u64) -> Left {
        let (counted, left) = {
            let mut t = self.table();
            let counted = t.get(&node).copied();
            match counted {
                Some(held) if held > n => {
                    t.insert(node, held - n);
                }
                Some(_) => {
                    t.remove(&node);
                }
                None => {}
            }
            let left = if t.is_empty() {
                Left::Nothing
            } else {
                Left::Held
            };
            (counted, left)
        };
        // Logged after the table's lock is released.
        match counted {
            Some(held) if held < n => crate::log::debug(format_args!(
                "forget of node {node:#x}: {n} given back, {held} counted"
            )),
            None => crate::log::debug(format_args!(
                "forget of node {node:#x}, which was never counted"
            )),
            Some(_) => {}
        }
        left
    }

    /// True when the kernel holds no inode of the app.
    pub fn none_held(&self) -> bool {
        self.table().is_empty()
    }

    /// Lookups of `node` held.
    #[cfg(test)]
    pub fn of(&self, node: NodeId) -> u64 {
        self.table().get(&node).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_node() {
        let c = LookupCounts::default();
        assert!(c.none_held());
        c.count(5);
        c.count_all(&[5, 9]);
        assert_eq!(c.uncount(5, 2), Left::Held);
        assert_eq!(c.of(5), 0);
        assert_eq!(
            c.uncount(7, 1),
            Left::Held,
            "an unknown node changes nothing"
        );
        assert_eq!(c.uncount(9, 3), Left::Nothing);
        assert!(c.none_held());
    }
}
