//! Listings held for open directory handles: OPENDIR takes one snapshot of
//! the directory's listing, every READDIR/READDIRPLUS on that handle
//! answers its offset from it, RELEASEDIR drops it. A directory read in
//! pages is thus listed once, not once per page (which made reading a
//! directory of N entries cost O(N²) name copies).
//!
//! Memory: each handle holds at most one directory's listing, and all
//! handles together hold at most [`MAX_HELD_ENTRIES`] entries; a handle
//! opened beyond that holds none and its pages are listed afresh each time
//! (slower, still correct).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Listing;

/// The most listing entries all open directory handles hold together
/// (roughly 100 bytes each with a short name).
pub const MAX_HELD_ENTRIES: usize = 2 << 20;

/// The snapshots of open directory handles, by handle number.
#[derive(Default)]
pub struct DirHandles {
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    next: u64,
    entries: usize,
    open: HashMap<u64, Option<Arc<Vec<Listing>>>>,
}

impl DirHandles {
    /// A new handle for `listing` (kept when it fits under
    /// [`MAX_HELD_ENTRIES`]); never 0.
    pub fn open(&self, listing: Arc<Vec<Listing>>) -> u64 {
        let mut held = self.state.lock().unwrap_or_else(|p| p.into_inner());
        held.next = held.next.wrapping_add(1).max(1);
        while held.open.contains_key(&held.next) {
            held.next = held.next.wrapping_add(1).max(1);
        }
        let fh = held.next;
        let kept = (held.entries + listing.len() <= MAX_HELD_ENTRIES).then(|| {
            held.entries += listing.len();
            listing
        });
        held.open.insert(fh, kept);
        fh
    }

    /// The snapshot of handle `fh`, if it holds one.
    pub fn get(&self, fh: u64) -> Option<Arc<Vec<Listing>>> {
        let held = self.state.lock().unwrap_or_else(|p| p.into_inner());
        held.open.get(&fh).cloned().flatten()
    }

    /// Forgets handle `fh`; its snapshot is returned so the caller frees it
    /// after the lock is released.
    pub fn release(&self, fh: u64) -> Option<Arc<Vec<Listing>>> {
        let mut held = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = held.open.remove(&fh).flatten();
        if let Some(s) = &snapshot {
            held.entries -= s.len();
        }
        snapshot
    }

    /// How many entries the open handles hold together.
    #[cfg(test)]
    pub fn held_entries(&self) -> usize {
        self.state.lock().unwrap().entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Kind;

    fn listing(n: usize) -> Arc<Vec<Listing>> {
        Arc::new(
            (0..n)
                .map(|i| Listing {
                    name: i.to_string().into_bytes(),
                    ino: i as u64 + 2,
                    kind: Kind::File,
                })
                .collect(),
        )
    }

    #[test]
    fn handles_keep_their_snapshot_until_released() {
        let d = DirHandles::default();
        let a = d.open(listing(3));
        let b = d.open(listing(5));
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(d.get(a).unwrap().len(), 3);
        assert_eq!(d.held_entries(), 8);
        assert_eq!(d.release(a).unwrap().len(), 3);
        assert!(d.get(a).is_none());
        assert_eq!(d.held_entries(), 5);
    }

    #[test]
    fn snapshots_beyond_the_bound_are_not_kept() {
        let d = DirHandles::default();
        let big = d.open(listing(MAX_HELD_ENTRIES - 10));
        let over = d.open(listing(11));
        assert!(d.get(over).is_none());
        let fits = d.open(listing(10));
        assert!(d.get(fits).is_some());
        assert_eq!(d.held_entries(), MAX_HELD_ENTRIES);
        assert!(d.release(over).is_none());
        d.release(big);
        assert_eq!(d.held_entries(), 10);
    }
}
