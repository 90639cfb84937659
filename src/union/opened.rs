//! Every opened image tree under one daemon-wide memory budget.
//!
//! An opened image holds parsed state outside the block cache (SquashFS
//! tables and memos, an ISO 9660 image's whole tree, DwarFS metadata), so
//! with thousands of AppImages the trees opened so far would grow with the
//! number of images ever used. Here they share one budget: when an image is
//! opened (and every [`CHECK_EVERY`] uses) the trees' sizes
//! ([`ImageTree::memory_bytes`]) are added up, and while they exceed the
//! budget the least recently used tree is closed. Its app reopens it on
//! the next use; node ids are a function of the image's bytes in every
//! reader, so the reopened tree answers the same inode numbers. A request
//! that is using a tree keeps it alive (it holds the `Arc`) until it is
//! done; a closed tree is freed outside every lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::tree::ImageTree;

/// How often (in tree uses) the budget is checked between opens, since
/// an opened SquashFS tree's memos grow as it is used.
pub const CHECK_EVERY: u64 = 4096;

/// The budget that goes with a block cache of `cache_budget` bytes: an
/// eighth of it, at least 16 MiB and at most 128 MiB.
pub fn default_budget(cache_budget: u64) -> usize {
    usize::try_from((cache_budget / 8).clamp(16 << 20, 128 << 20)).unwrap_or(128 << 20)
}

/// What one app's tree slot holds.
enum Held {
    /// Not opened, or closed to stay within the budget.
    Closed,
    /// Opened.
    Open(Arc<dyn ImageTree>),
    /// Cannot be opened (the image itself is at fault): the reason, kept
    /// for good so a broken image is not parsed again on every access.
    Failed(String),
}

/// One app's tree: opened on demand, closed when the budget needs room.
pub struct TreeSlot {
    id: u64,
    held: Mutex<Held>,
    /// The [`OpenedTrees`] tick of the last use.
    last_used: AtomicU64,
}

/// What [`TreeSlot::get`] found.
pub enum Found {
    /// The opened tree.
    Open(Arc<dyn ImageTree>),
    /// The remembered reason the image cannot be opened.
    Failed(String),
    /// Nothing: the tree must be opened.
    Closed,
}

impl TreeSlot {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tree if open (without counting a use).
    pub fn peek(&self) -> Option<Arc<dyn ImageTree>> {
        match &*self.lock() {
            Held::Open(tree) => Some(tree.clone()),
            _ => None,
        }
    }

    /// Closes the tree (if open) and hands it back, to be dropped by the
    /// caller outside its locks.
    fn close(&self) -> Option<Arc<dyn ImageTree>> {
        let mut held = self.lock();
        match std::mem::replace(&mut *held, Held::Closed) {
            Held::Open(tree) => Some(tree),
            other => {
                *held = other;
                None
            }
        }
    }

    /// Bytes the open tree holds (0 when not open).
    fn memory_bytes(&self) -> usize {
        self.peek().map_or(0, |t| t.memory_bytes())
    }
}

/// The opened trees of one daemon and their budget.
pub struct OpenedTrees {
    budget: AtomicUsize,
    /// Counts uses; a slot's `last_used` is the tick of its last use.
    tick: AtomicU64,
    next_id: AtomicU64,
    /// Every slot that may hold an open tree (apps dropped since leave a
    /// dead entry, pruned at the next check).
    open: Mutex<HashMap<u64, Weak<TreeSlot>>>,
    /// How many trees were closed to stay within the budget.
    closed: AtomicU64,
}

impl OpenedTrees {
    /// Trees within `budget` bytes together.
    pub fn new(budget: usize) -> OpenedTrees {
        OpenedTrees {
            budget: AtomicUsize::new(budget),
            tick: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            closed: AtomicU64::new(0),
        }
    }

    /// Changes the budget, closing trees now if they exceed it.
    pub fn set_budget(&self, budget: usize) {
        self.budget.store(budget, Ordering::Relaxed);
        self.enforce(None);
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// How many trees were closed to stay within the budget so far.
    pub fn closed(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    /// An empty slot for a new app.
    pub fn slot(&self) -> Arc<TreeSlot> {
        Arc::new(TreeSlot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            held: Mutex::new(Held::Closed),
            last_used: AtomicU64::new(0),
        })
    }

    fn registry(&self) -> MutexGuard<'_, HashMap<u64, Weak<TreeSlot>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `slot` holds, counting a use of its tree.
    pub fn get(&self, slot: &Arc<TreeSlot>) -> Found {
        let found = match &*slot.lock() {
            Held::Open(tree) => Found::Open(tree.clone()),
            Held::Failed(why) => Found::Failed(why.clone()),
            Held::Closed => Found::Closed,
        };
        if let Found::Open(_) = found {
            let tick = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
            slot.last_used.store(tick, Ordering::Relaxed);
            if tick.is_multiple_of(CHECK_EVERY) {
                self.enforce(None);
            }
        }
        found
    }

    /// Keeps `tree`, just opened, in `slot` (unless another thread opened
    /// it meanwhile: that one is kept and returned), then closes the least
    /// recently used other trees while the total exceeds the budget.
    pub fn admit(&self, slot: &Arc<TreeSlot>, tree: Arc<dyn ImageTree>) -> Arc<dyn ImageTree> {
        let kept = {
            let mut held = slot.lock();
            match &*held {
                Held::Open(existing) => existing.clone(),
                _ => {
                    *held = Held::Open(tree.clone());
                    tree.clone()
                }
            }
        };
        drop(tree);
        let tick = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        slot.last_used.store(tick, Ordering::Relaxed);
        self.registry().insert(slot.id, Arc::downgrade(slot));
        self.enforce(Some(slot.id));
        kept
    }

    /// Remembers for good that `slot`'s image cannot be opened; returns
    /// what is remembered (an earlier outcome wins).
    pub fn fail(&self, slot: &TreeSlot, why: String) -> Found {
        let mut held = slot.lock();
        match &*held {
            Held::Open(tree) => Found::Open(tree.clone()),
            Held::Failed(earlier) => Found::Failed(earlier.clone()),
            Held::Closed => {
                *held = Held::Failed(why.clone());
                Found::Failed(why)
            }
        }
    }

    /// Closes least recently used trees (never `keep`) until the open ones
    /// fit the budget; the closed trees are freed after every lock here is
    /// released.
    fn enforce(&self, keep: Option<u64>) {
        let budget = self.budget();
        let mut doomed = Vec::new();
        let mut closed = 0;
        {
            let mut registry = self.registry();
            registry.retain(|_, w| w.strong_count() > 0);
            let mut sized: Vec<(u64, Arc<TreeSlot>, usize)> = registry
                .values()
                .filter_map(Weak::upgrade)
                .map(|s| {
                    let bytes = s.memory_bytes();
                    (s.last_used.load(Ordering::Relaxed), s, bytes)
                })
                .collect();
            let mut total: usize = sized.iter().map(|(_, _, b)| *b).sum();
            if total > budget {
                sized.sort_by_key(|(used, _, _)| *used);
                for (_, slot, bytes) in &sized {
                    if total <= budget {
                        break;
                    }
                    if Some(slot.id) == keep {
                        continue;
                    }
                    if let Some(tree) = slot.close() {
                        doomed.push(tree);
                        closed += 1;
                        total = total.saturating_sub(*bytes);
                    }
                    registry.remove(&slot.id);
                }
            }
            // The slots (upgraded above) are released here too; an app
            // dropped meanwhile must not free its tree under the lock.
            doomed.extend(sized.into_iter().filter_map(|(_, s, _)| {
                Arc::into_inner(s).and_then(|s| match s.held.into_inner() {
                    Ok(Held::Open(tree)) => Some(tree),
                    _ => None,
                })
            }));
        }
        self.closed.fetch_add(closed, Ordering::Relaxed);
        drop(doomed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::testtree::MemTree;

    fn tree(bytes: usize) -> Arc<dyn ImageTree> {
        Arc::new(MemTree::new().file("f", &vec![0u8; bytes]))
    }

    #[test]
    fn the_least_recently_used_tree_is_closed_first() {
        let trees = OpenedTrees::new(2500);
        let slots: Vec<_> = (0..3).map(|_| trees.slot()).collect();
        trees.admit(&slots[0], tree(1000));
        trees.admit(&slots[1], tree(1000));
        assert!(matches!(trees.get(&slots[0]), Found::Open(_)));
        trees.admit(&slots[2], tree(1000));
        assert!(slots[0].peek().is_some(), "used last but one");
        assert!(slots[1].peek().is_none(), "least recently used");
        assert!(slots[2].peek().is_some(), "just opened");
        assert_eq!(trees.closed(), 1);
        // A failure is remembered and costs nothing.
        assert!(matches!(
            trees.fail(&slots[1], "bad".into()),
            Found::Failed(_)
        ));
        assert!(matches!(trees.get(&slots[1]), Found::Failed(w) if w == "bad"));
    }
}
