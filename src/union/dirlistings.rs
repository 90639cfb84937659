//! Directory listings kept between READDIR requests. The adapter answers
//! OPENDIR with ENOSYS, so the kernel opens directories without asking
//! (no OPENDIR and RELEASEDIR round trips: two of the four requests a
//! walk spent per directory) and every READDIR comes without a handle.
//! A directory read in pages must still be listed once, not once per page
//! (which made reading a directory of N entries cost O(N²) name copies),
//! so recent listings are kept here by inode and FUSE generation: an
//! image's directories never change under an inode number, and a slot
//! reused by another app has another generation.
//!
//! Memory: at most [`MAX_LISTINGS`] listings of about [`MAX_BYTES`]
//! together, least recently used dropped first. The listing stored last
//! is always kept, even alone over the budget, so one huge directory
//! being read in pages is listed once.

use std::mem::size_of;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::Listing;

/// Most listings kept.
pub const MAX_LISTINGS: usize = 64;

/// About how many bytes (entries and names) the kept listings hold
/// together.
pub const MAX_BYTES: usize = 8 << 20;

/// Recently built listings, by (inode, generation).
pub struct DirListings {
    state: Mutex<Kept>,
}

/// A kept listing and its cost in bytes.
type Entry = (Arc<Vec<Listing>>, usize);

struct Kept {
    lru: LruCache<(u64, u64), Entry>,
    bytes: usize,
}

impl Default for DirListings {
    fn default() -> DirListings {
        DirListings {
            state: Mutex::new(Kept {
                lru: LruCache::new(NonZeroUsize::new(MAX_LISTINGS).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
    }
}

/// Approximate heap bytes of a listing.
fn cost(listing: &[Listing]) -> usize {
    listing
        .iter()
        .map(|l| size_of::<Listing>() + l.name.capacity())
        .sum::<usize>()
        + size_of::<Vec<Listing>>()
}

impl DirListings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Every critical section only performs infallible map operations,
        // so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept listing of directory `ino` in generation `generation`.
    pub fn get(&self, ino: u64, generation: u64) -> Option<Arc<Vec<Listing>>> {
        self.lock()
            .lru
            .get(&(ino, generation))
            .map(|(l, _)| l.clone())
    }

    /// Keeps `listing` for directory `ino` in generation `generation`,
    /// dropping the least recently used listings over the budget. What is
    /// dropped is returned, to be freed after the lock is released.
    pub fn insert(
        &self,
        ino: u64,
        generation: u64,
        listing: Arc<Vec<Listing>>,
    ) -> Vec<Arc<Vec<Listing>>> {
        let bytes = cost(&listing);
        let mut dropped = Vec::new();
        let mut kept = self.lock();
        if let Some(((_, _), (old, old_bytes))) = kept.lru.push((ino, generation), (listing, bytes))
        {
            kept.bytes -= old_bytes;
            dropped.push(old);
        }
        kept.bytes += bytes;
        while kept.bytes > MAX_BYTES && kept.lru.len() > 1 {
            match kept.lru.pop_lru() {
                Some((_, (old, old_bytes))) => {
                    kept.bytes -= old_bytes;
                    dropped.push(old);
                }
                None => break,
            }
        }
        dropped
    }

    /// How many bytes the kept listings hold together.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
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
                    name: format!("{i:08}").into_bytes(),
                    ino: i as u64 + 2,
                    kind: Kind::File,
                })
                .collect(),
        )
    }

    #[test]
    fn listings_are_kept_per_inode_and_generation() {
        let d = DirListings::default();
        d.insert(7, 0, listing(3));
        assert_eq!(d.get(7, 0).unwrap().len(), 3);
        assert!(
            d.get(7, 1).is_none(),
            "a reused slot never sees the old app's listing"
        );
        assert!(d.get(8, 0).is_none());
        d.insert(7, 0, listing(4));
        assert_eq!(d.get(7, 0).unwrap().len(), 4);
        assert_eq!(d.bytes(), cost(&listing(4)));
    }

    #[test]
    fn the_budget_drops_the_least_recently_used_but_keeps_the_last() {
        let d = DirListings::default();
        // n entries cost at most (and about) a quarter of the budget.
        let entry = cost(&listing(2)) - cost(&listing(1));
        let n = (MAX_BYTES / 4 - cost(&listing(0))) / entry;
        for ino in 0..3 {
            d.insert(ino, 0, listing(n));
        }
        d.get(0, 0).unwrap();
        let dropped = d.insert(3, 0, listing(n * 2));
        assert_eq!(dropped.len(), 1);
        assert!(d.get(1, 0).is_none(), "the least recently used went first");
        assert!(d.get(0, 0).is_some());
        assert!(d.bytes() <= MAX_BYTES);
        let huge = d.insert(4, 0, listing(n * 5));
        assert_eq!(huge.len(), 3);
        assert_eq!(d.get(4, 0).unwrap().len(), n * 5, "the last listing stays");
        for ino in 0..(MAX_LISTINGS as u64 + 10) {
            d.insert(100 + ino, 0, listing(1));
        }
        assert!(d.get(100, 0).is_none(), "at most MAX_LISTINGS are kept");
        assert!(d.get(100 + MAX_LISTINGS as u64 + 9, 0).is_some());
    }
}
