//! A small pool of background threads that decompresses blocks ahead of the
//! reader, so a file read sequentially keeps every core busy.
//!
//! Threads start on first use (never before the daemon forks), the queue is
//! bounded, and a job that does not fit is dropped: read-ahead is a hint,
//! never a reason to block or to grow memory.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send + 'static>;

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
