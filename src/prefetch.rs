//! A small pool of background threads that decompresses blocks ahead of the
//! reader, so a file read sequentially keeps every core busy.
//!
//! Threads start on first use (never before the daemon forks), the queue is
//! bounded, and a job that does not fit is dropped: read-ahead is a hint,
//! never a reason to block or to grow memory. [`Sequential`] is how a file
//! reader decides whether a read deserves read-ahead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where the last read of one file ended, to tell sequential reads (worth
/// reading ahead for) from random ones.
#[derive(Debug, Default)]
pub struct Sequential {
    last_end: AtomicU64,
}

impl Sequential {
    /// Records a read of `[offset, end)` of a file stored in `block`-byte
    /// blocks; true when it starts the file or starts within two blocks of
    /// where the previous read ended. The kernel sends the pieces of one
    /// sequential read from several threads, so "near", not "exactly".
    pub fn follows(&self, offset: u64, end: u64, block: u64) -> bool {
        let previous_end = self.last_end.swap(end, Ordering::Relaxed);
        offset == 0 || offset.abs_diff(previous_end) <= 2 * block
    }
}

/// The CPUs this process may run on (2 when that cannot be told): the size
/// of the background pools and the base of the request-thread default.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Jobs waiting at most; beyond this, new read-ahead requests are dropped.
const QUEUE: usize = 64;

/// A lazily started, bounded worker pool.
pub struct Prefetcher {
    threads: usize,
    tx: OnceLock<SyncSender<Job>>,
}

impl Prefetcher {
    /// A pool of `threads` workers (started on the first [`submit`](Self::submit)).
    pub fn new(threads: usize) -> Prefetcher {
        Prefetcher {
            threads: threads.max(1),
            tx: OnceLock::new(),
        }
    }

    /// Queues `job`; returns false (and drops it) when the queue is full or
    /// the workers could not be started.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("prefetch-{i}"))
                    .spawn(move || worker(&rx));
                if let Err(e) = spawned {
                    crate::log::warn(format_args!("cannot start read-ahead thread: {e}"));
                }
            }
            tx
        });
        match tx.try_send(Box::new(job)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    crate::disk_cache::background_thread();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn sequential_reads_are_told_from_random_ones() {
        let s = Sequential::default();
        let block = 128 << 10;
        assert!(s.follows(0, block, block), "the start of the file");
        assert!(s.follows(block, 2 * block, block), "right after");
        assert!(s.follows(4 * block, 5 * block, block), "two blocks on");
        assert!(!s.follows(20 * block, 21 * block, block), "far away");
        assert!(!s.follows(3 * block, 4 * block, block), "far back");
    }

    #[test]
    fn runs_jobs_and_drops_overflow() {
        let p = Prefetcher::new(2);
        let done = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Mutex::new(()));
        let hold = gate.lock().unwrap();
        let mut accepted = 0;
        for _ in 0..(QUEUE * 2 + 10) {
            let (done, gate) = (done.clone(), gate.clone());
            if p.submit(move || {
                drop(gate.lock());
                done.fetch_add(1, Ordering::SeqCst);
            }) {
                accepted += 1;
            }
        }
        assert!(accepted < QUEUE * 2 + 10, "a full queue must drop jobs");
        drop(hold);
        let start = Instant::now();
        while done.load(Ordering::SeqCst) < accepted && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(done.load(Ordering::SeqCst), accepted);
    }
}
