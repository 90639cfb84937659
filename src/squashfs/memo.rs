//! A small LRU of parsed objects (inodes, directory listings), bounded both
//! by entry count and by an estimate of the bytes they hold.

use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use crate::tree::NodeId;

/// Bytes one kept object costs beyond its own estimate: the LRU's node
/// (key, value, links) and hash table slot.
const MEMO_ENTRY_OVERHEAD: usize = 80;

struct State<V> {
    lru: LruCache<NodeId, (Arc<V>, usize)>,
    bytes: usize,
}

/// An LRU keyed by node id. The most recently inserted object is always
/// kept, even when it alone exceeds the byte budget, so one huge directory
/// that is being listed is not parsed again on every call.
pub struct Memo<V> {
    state: Mutex<State<V>>,
    max_entries: usize,
    max_bytes: usize,
}

impl<V> Memo<V> {
    /// A memo holding at most `max_entries` objects and about `max_bytes`.
    pub fn new(max_entries: usize, max_bytes: usize) -> Memo<V> {
        Memo {
            state: Mutex::new(State {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<V>> {
        // Every critical section below only performs infallible map
        // operations, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// About how many bytes the kept objects and their entries hold.
    pub fn memory_bytes(&self) -> usize {
        let s = self.lock();
        s.bytes
            .saturating_add(s.lru.len().saturating_mul(MEMO_ENTRY_OVERHEAD))
    }

    /// The cached object for `key`, marking it recently used.
    pub fn get(&self, key: NodeId) -> Option<Arc<V>> {
        self.lock().lru.get(&key).map(|(v, _)| v.clone())
    }

    /// Caches `value`, which holds about `cost` bytes.
    pub fn insert(&self, key: NodeId, value: Arc<V>, cost: usize) {
        let mut s = self.lock();
        if let Some((_, old)) = s.lru.put(key, (value, cost)) {
            s.bytes = s.bytes.saturating_sub(old);
        }
        s.bytes = s.bytes.saturating_add(cost);
        while s.lru.len() > 1 && (s.lru.len() > self.max_entries || s.bytes > self.max_bytes) {
            match s.lru.pop_lru() {
                Some((_, (_, c))) => s.bytes = s.bytes.saturating_sub(c),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_entries_and_bytes_but_keeps_the_newest() {
        let m: Memo<u32> = Memo::new(3, 100);
        for k in 0..5 {
            m.insert(k, Arc::new(k as u32), 10);
        }
        assert!(m.get(0).is_none() && m.get(1).is_none());
        assert_eq!(m.get(4).as_deref(), Some(&4));
        m.insert(9, Arc::new(9), 1000);
        assert_eq!(
            m.get(9).as_deref(),
            Some(&9),
            "an oversized newest entry stays"
        );
        assert!(m.get(4).is_none());
        m.insert(10, Arc::new(10), 10);
        assert!(m.get(9).is_none(), "and goes once something else arrives");
    }
}
