//! Following the source folder while mounted: inotify events (and a
//! periodic rescan, for network filesystems where another host's changes
//! raise no event) trigger [`Union::rescan`], and the kernel is told which
//! cached names and directories to forget.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{INodeNo, Notifier};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::union::live::Changes;
use crate::union::synth::{SynthContent, SynthTree, BIN, SHARE};
use crate::union::{inode, Union};

/// Quiet time after the last event before rescanning, so a burst of events
/// (thousands of files arriving at once) costs one rescan.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// How long a new or changed file must keep its size and times before it
/// is shown, so a file still being copied is not shown early.
pub const SETTLE: Duration = Duration::from_millis(500);

/// How often to retry watching a source folder that disappeared.
const REWATCH: Duration = Duration::from_secs(1);

fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// Starts the watcher thread. `rescan_every` is the periodic full rescan
/// (`None`: only on events).
pub fn spawn(
    union: Arc<Union>,
    notifier: Notifier,
    rescan_every: Option<Duration>,
) -> std::io::Result<()> {
    let inotify = Inotify::init()?;
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || run(union, notifier, inotify, rescan_every))?;
    Ok(())
}

fn run(
    union: Arc<Union>,
    notifier: Notifier,
    mut inotify: Inotify,
    rescan_every: Option<Duration>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut watch: Option<WatchDescriptor> = None;
    let mut dirty_since: Option<Instant> = None;
    let mut next_check: Option<Instant> = None;
    let mut last_rescan = Instant::now();
    let mut last_rewatch: Option<Instant> = None;
    loop {
        if watch.is_none() && last_rewatch.is_none_or(|t| t.elapsed() >= REWATCH) {
            last_rewatch = Some(Instant::now());
            match inotify.watches().add(union.source(), mask()) {
                Ok(wd) => {
                    watch = Some(wd);
                    dirty_since = Some(Instant::now() - DEBOUNCE);
                }
                Err(e) => crate::log::debug(format_args!(
                    "cannot watch {}: {e}",
                    union.source().display()
                )),
            }
        }
        let now = Instant::now();
        let mut deadlines = vec![now + REWATCH];
        deadlines.extend(dirty_since.map(|t| t + DEBOUNCE));
        deadlines.extend(next_check);
        deadlines.extend(rescan_every.map(|every| last_rescan + every));
        let wake = deadlines.into_iter().min().unwrap_or(now);
        wait_readable(&inotify, wake.saturating_duration_since(now));
        match inotify.read_events(&mut buffer) {
            Ok(events) => {
                for event in events {
                    if event.mask.intersects(
                        EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF,
                    ) {
                        if let Some(wd) = watch.take() {
                            let _ = inotify.watches().remove(wd);
                        }
                    }
                    dirty_since = Some(Instant::now());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                crate::log::warn(format_args!("reading inotify events: {e}"));
                std::thread::sleep(REWATCH);
            }
        }
        let now = Instant::now();
        let due = dirty_since.is_some_and(|t| now >= t + DEBOUNCE)
            || next_check.is_some_and(|t| now >= t)
            || rescan_every.is_some_and(|every| now >= last_rescan + every);
        if due {
            dirty_since = None;
            last_rescan = now;
            let changes = union.rescan(SETTLE);
            next_check = changes.recheck_in.map(|d| Instant::now() + d);
            invalidate(&notifier, &changes);
        }
    }
}

/// Sleeps until the inotify descriptor is readable or `timeout` passes.
fn wait_readable(inotify: &Inotify, timeout: Duration) {
    let mut fds = libc::pollfd {
        fd: inotify.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fds, 1, ms) };
}

/// Tells the kernel to drop what it cached about changed names: top-level
/// folders (also those whose AppImage's owner, mode or ACL changed, so the
/// next path walk asks who may enter), and every launcher and menu entry of the previous synthesized
/// tree (deeper icon folders expire by their one-second timeout).
fn invalidate(notifier: &Notifier, changes: &Changes) {
    let root = INodeNo::ROOT;
    for name in changes.names.iter().chain(&changes.revalidate) {
        let _ = notifier.inval_entry(root, OsStr::from_bytes(name));
    }
    let Some(old) = &changes.old_synth else {
        return;
    };
    let _ = notifier.inval_inode(root, 0, 0);
    for dir in [BIN, SHARE] {
        forget_children(notifier, old, dir, 2);
    }
}

fn forget_children(notifier: &Notifier, tree: &SynthTree, dir: u64, depth: u32) {
    let Some(SynthContent::Dir(children)) = tree.get(dir).map(|n| &n.content) else {
        return;
    };
    let dir_ino = INodeNo(inode::encode(inode::SYNTH_SLOT, dir));
    for (name, (ino, kind)) in children {
        if depth > 1 && *kind == crate::tree::Kind::Dir {
            forget_children(notifier, tree, inode::decode(*ino).1, depth - 1);
        }
        let _ = notifier.inval_entry(dir_ino, OsStr::from_bytes(name));
    }
    let _ = notifier.inval_inode(dir_ino, 0, 0);
}
