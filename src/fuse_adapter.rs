//! The thin layer between the kernel and [`Union`]: each handler calls one
//! union method and sends its result or its errno. Nothing here knows about
//! image formats.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};

use crate::error::Error;
use crate::passthrough::{KernelPassthrough, FH_CACHED, FH_PASSTHROUGH};
use crate::profile::Profiles;
use crate::request_counts::{Op, RequestCounts};
use crate::tree::{Attr, Kind};
use crate::union::{inode, Entry, Listing, Union};
use crate::warm::KernelWarmer;

/// How long the kernel may trust what it learned about an image's nodes:
/// image contents never change under a given inode number.
const IMAGE_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long the kernel may trust synthesized nodes (the root, `bin/`,
/// `share/`), which change when the source folder does.
const SYNTH_TTL: Duration = Duration::from_secs(1);

/// Preferred I/O size reported by `stat`: big enough that `cp` and `cat`
/// read whole compressed blocks per request.
const IO_BLOCK: u32 = 128 * 1024;

/// Read requests the kernel may have in flight at once.
const MAX_BACKGROUND: u16 = 64;

/// The `fuser::Filesystem` implementation.
pub struct FuseAdapter {
    union: Arc<Union>,
    warmer: Arc<KernelWarmer>,
    profiles: Option<Arc<Profiles>>,
    counts: Arc<RequestCounts>,
    passthrough: Option<Arc<KernelPassthrough>>,
    /// The kernel granted passthrough at INIT: opens are answered.
    passthrough_granted: bool,
}

impl FuseAdapter {
    /// Serves `union` to the kernel; `warmer` is told of every file read.
    pub fn new(union: Arc<Union>, warmer: Arc<KernelWarmer>) -> FuseAdapter {
        FuseAdapter {
            union,
            warmer,
            profiles: None,
            counts: Arc::default(),
            passthrough: None,
            passthrough_granted: false,
        }
    }

    /// Also passes opens of start-up files through to their whole copies
    /// in the cache folder, if the kernel offers passthrough (see
    /// [`crate::passthrough`]).
    pub fn with_passthrough(mut self, pt: Option<Arc<KernelPassthrough>>) -> FuseAdapter {
        self.passthrough = pt;
        self
    }

    /// Counts every request into `counts` (logged at exit with `-v`).
    pub fn with_request_counts(mut self, counts: Arc<RequestCounts>) -> FuseAdapter {
        self.counts = counts;
        self
    }

    /// Also records start-up profiles and replays them (`--cache-dir`).
    pub fn with_profiles(mut self, profiles: Option<Arc<Profiles>>) -> FuseAdapter {
        self.profiles = profiles;
        self
    }

    /// Whether the caller behind `req` may enter `ino` (see
    /// [`Union::may_enter`]). The kernel passes only uid, gid and pid; the
    /// supplementary groups are read from /proc only when the primary
    /// group is not enough.
    fn may_enter(&self, req: &Request, ino: u64) -> bool {
        let (uid, gid) = (req.uid(), req.gid());
        self.union.may_enter(ino, uid, &[gid])
            || self
                .union
                .may_enter(ino, uid, &crate::caller::groups(req.pid(), gid))
    }

    /// How long the kernel may keep what it learned about `ino`: zero for
    /// the folder of an app not everyone may read, so every path walk asks
    /// (and is checked) again.
    fn ttl(&self, ino: u64) -> Duration {
        if self.union.is_restricted(ino) {
            Duration::ZERO
        } else {
            ttl(ino)
        }
    }
}

/// How long the kernel may keep the name `child` in directory `parent`
/// when the child's own timeout is `child_ttl`: names in the root, `bin/`
/// and `share/` come and go with the source folder, so they get at most
/// [`SYNTH_TTL`] (a name answered just before a rescan and delivered after
/// its invalidation then lingers a second, not a day).
fn entry_ttl(parent: u64, child_ttl: Duration) -> Duration {
    if inode::decode(parent).0 == inode::SYNTH_SLOT {
        child_ttl.min(SYNTH_TTL)
    } else {
        child_ttl
    }
}

fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

fn ttl(ino: u64) -> Duration {
    if inode::decode(ino).0 == inode::SYNTH_SLOT {
        SYNTH_TTL
    } else {
        IMAGE_TTL
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::BlockDev => FileType::BlockDevice,
        Kind::CharDev => FileType::CharDevice,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
    }
}

/// The attributes of a negative lookup reply: inode 0 tells the kernel the
/// name does not exist, for the reply's entry timeout.
fn negative_entry() -> FileAttr {
    let nothing = Attr {
        kind: Kind::File,
        perm: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        mtime_nsec: 0,
        nlink: 0,
        rdev: 0,
    };
    file_attr(0, &nothing)
}

/// Converts image attributes to what the kernel wants.
pub fn file_attr(ino: u64, a: &Attr) -> FileAttr {
    let time = if a.mtime >= 0 {
        UNIX_EPOCH + Duration::new(a.mtime as u64, a.mtime_nsec.min(999_999_999))
    } else {
        UNIX_EPOCH - Duration::from_secs(a.mtime.unsigned_abs())
    };
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: file_type(a.kind),
        perm: a.perm & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: IO_BLOCK,
        flags: 0,
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let wanted = InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO;
        if let Err(unsupported) = config.add_capabilities(wanted) {
            crate::log::debug(format_args!(
                "kernel lacks FUSE capabilities {unsupported:?}"
            ));
        }
        if self.passthrough.is_some() {
            // Depth 2: the cache folder may itself be on a stacked
            // filesystem (a container's overlay root).
            self.passthrough_granted = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(2).is_ok();
            if let Some(pt) = &self.passthrough {
                pt.set_granted(self.passthrough_granted);
            }
            if !self.passthrough_granted {
                crate::log::info(format_args!(
                    "the kernel offers no FUSE passthrough (Linux 6.9 or later has it): files \
                     kept whole in the cache folder are read through the daemon"
                ));
            }
        }
        let _ = config
            .set_max_readahead(u32::MAX)
            .or_else(|max| config.set_max_readahead(max));
        let _ = config.set_max_background(MAX_BACKGROUND);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.union.lookup(parent.0, name.as_bytes());
        self.counts.count(match found {
            Err(Error::NotFound) => Op::NegativeLookup,
            _ => Op::Lookup,
        });
        match found {
            Ok(e) if !self.may_enter(req, e.ino) => reply.error(Errno::EACCES),
            Ok(e) => {
                let ttl = entry_ttl(parent.0, self.ttl(e.ino));
                let generation = Generation(e.generation());
                // Recorded before the reply: an open that follows it at
                // once must find the file's path (see
                // [`Profiles::read_at_start`]).
                if let Some(p) = &self.profiles {
                    p.on_lookup(parent.0, name.as_bytes(), e.ino);
                }
                reply.entry(&ttl, &file_attr(e.ino, &e.attr), generation);
                e.sent();
            }
            // A name that is not there is cached as a negative entry: the
            // programs an AppImage runs probe many missing paths (library
            // and module search), and image directories never change.
            Err(Error::NotFound) => {
                reply.entry(&ttl(parent.0), &negative_entry(), Generation(0));
                if let Some(p) = &self.profiles {
                    p.on_missing(parent.0, name.as_bytes());
                }
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.union.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.counts.count(Op::Getattr);
        match self.union.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl(ino.0), &file_attr(ino.0, &a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.counts.count(Op::Readlink);
        match self.union.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Without passthrough, answered ENOSYS, which the kernel takes as
    /// "opens need no answer" and stops sending OPEN and RELEASE for files:
    /// every open then keeps the page cache (as FOPEN_KEEP_CACHE) and costs
    /// no round trip. The mount is read-only, so the kernel refuses write
    /// opens itself, and who may reach an app's files is decided at lookup.
    ///
    /// With passthrough (`--cache-dir`, a kernel that offers it), each open
    /// is answered: a file the app's start-up profile lists is passed
    /// through to its checked whole copy in the cache folder when there is
    /// one, anything else opened with FOPEN_KEEP_CACHE as above.
    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.counts.count(Op::Open);
        let Some(pt) = self
            .passthrough
            .as_ref()
            .filter(|_| self.passthrough_granted)
        else {
            return reply.error(Errno::ENOSYS);
        };
        let at_start = self
            .profiles
            .as_ref()
            .is_some_and(|p| p.read_at_start(ino.0));
        match pt.open(ino.0, at_start, |copy| reply.open_backing(copy)) {
            Some(backing) => {
                reply.opened_passthrough(FileHandle(FH_PASSTHROUGH), FopenFlags::empty(), &backing)
            }
            None => reply.opened(FileHandle(FH_CACHED), FopenFlags::FOPEN_KEEP_CACHE),
        }
    }

    /// Sent only when opens are answered (passthrough): the daemon counts
    /// each file's open handles of either kind (see [`crate::passthrough`]).
    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(pt) = &self.passthrough {
            pt.released(ino.0, fh.0 == FH_PASSTHROUGH);
        }
        reply.ok();
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.counts.count(Op::Read);
        match self.union.read(ino.0, offset, size) {
            Ok(data) => {
                reply.data(&data);
                self.warmer.on_read(ino.0, offset, data.len() as u32);
                if let Some(p) = &self.profiles {
                    let at_start = p.on_read(ino.0, offset, data.len() as u32);
                    if let Some(pt) = self.passthrough.as_ref().filter(|_| at_start) {
                        pt.keep_whole(ino.0);
                    }
                }
            }
            Err(e) => {
                crate::log::debug(format_args!("read of inode {:#x} at {offset}: {e}", ino.0));
                reply.error(errno(&e))
            }
        }
    }

    /// Answered ENOSYS, like [`open`](Self::open): the kernel then stops
    /// sending OPENDIR and RELEASEDIR, two round trips per directory that
    /// a walk or a program's module search pays otherwise, and opens every
    /// directory with FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, so a listing it
    /// read once is served from its cache. READDIR then comes without a
    /// handle; [`Union::dir_listing`] keeps what a page needs. The watcher
    /// invalidates the synthesized directories when the source folder
    /// changes.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.counts.count(Op::Opendir);
        reply.error(Errno::ENOSYS)
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.counts.count(Op::Readdir);
        let listing = match self.union.dir_listing(ino.0) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(&e)),
        };
        if let Some(p) = &self.profiles {
            p.on_listed(ino.0, offset, &listing);
        }
        for (next, name, child, kind) in entries_from(&listing, ino.0, offset) {
            if reply.add(
                INodeNo(child),
                next,
                file_type(kind),
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.counts.count(Op::Readdirplus);
        let listing = match self.union.dir_listing(ino.0) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(&e)),
        };
        let own = match self.union.getattr(ino.0) {
            Ok(a) => a,
            Err(e) => return reply.error(errno(&e)),
        };
        if let Some(p) = &self.profiles {
            p.on_listed(ino.0, offset, &listing);
        }
        plus_entries(&self.union, ino.0, own, &listing, offset, |e| {
            let entry_ttl = match e.ttl {
                PlusTtl::Zero => Duration::ZERO,
                PlusTtl::Own => self.ttl(e.child),
                PlusTtl::Entry => entry_ttl(ino.0, self.ttl(e.child)),
            };
            reply.add(
                INodeNo(e.child),
                e.next,
                OsStr::from_bytes(e.name),
                &entry_ttl,
                &file_attr(e.child, &e.attr),
                Generation(e.generation),
            )
        });
        reply.ok();
    }

    /// No ioctl applies to image files: ENOTTY, what `isatty()` and
    /// overlayfs (copying up from this mount as a lower layer) expect of a
    /// regular file. (ENOSYS would not make the kernel stop asking.) The
    /// ioctl is also the daemon's only sign that a file was just opened:
    /// a small file is queued for a warming thread to store into the page
    /// cache ([`KernelWarmer::on_open`]; never stored on this thread).
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.counts.count(Op::Ioctl);
        if let Some(p) = &self.profiles {
            p.on_open(ino.0);
        }
        self.warmer.on_open(ino.0);
        reply.error(Errno::from_i32(libc::ENOTTY))
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.union.total_bytes().div_ceil(u64::from(IO_BLOCK));
        reply.statfs(blocks, 0, 0, 0, 0, IO_BLOCK, 255, IO_BLOCK);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.counts.count(Op::Xattr);
        let attrs = match self.union.xattrs(ino.0) {
            Ok(a) => a,
            Err(e) => return reply.error(errno(&e)),
        };
        match attrs.iter().find(|(n, _)| n.as_slice() == name.as_bytes()) {
            None => reply.error(Errno::from_i32(libc::ENODATA)),
            Some((_, value)) => sized_reply(reply, size, value),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.counts.count(Op::Xattr);
        match self.union.xattrs(ino.0) {
            Ok(attrs) => {
                let mut names = Vec::new();
                for (n, _) in &attrs {
                    names.extend_from_slice(n);
                    names.push(0);
                }
                sized_reply(reply, size, &names)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// The entries of directory `ino` from `offset` on: `.` and `..` (offsets
/// 0 and 1, both naming `ino` itself) then `listing`, each with the offset
/// of the entry after it. Starts at the offset directly, so each page
/// costs only what it returns.
fn entries_from(
    listing: &[Listing],
    ino: u64,
    offset: u64,
) -> impl Iterator<Item = (u64, &[u8], u64, Kind)> {
    let dots = [b".".as_slice(), b"..".as_slice()]
        .into_iter()
        .map(move |name| (name, ino, Kind::Dir));
    let rest = listing
        .get(usize::try_from(offset.saturating_sub(2)).unwrap_or(usize::MAX)..)
        .unwrap_or(&[])
        .iter()
        .map(|l| (l.name.as_slice(), l.ino, l.kind));
    let first = offset.min(2);
    dots.skip(first as usize)
        .chain(rest)
        .zip(offset.saturating_add(1)..)
        .map(|((name, child, kind), next)| (next, name, child, kind))
}

/// How long the kernel may keep one readdirplus entry (see [`plus_entries`]).
enum PlusTtl {
    /// A placeholder attribute: not to be kept.
    Zero,
    /// The directory itself: its own timeout.
    Own,
    /// A child: its entry timeout ([`entry_ttl`]).
    Entry,
}

/// One readdirplus entry to send.
struct PlusEntry<'a> {
    next: u64,
    name: &'a [u8],
    child: u64,
    attr: Attr,
    ttl: PlusTtl,
    generation: u64,
}

/// Bytes one READDIRPLUS entry named `name` takes in a reply: a `struct
/// fuse_direntplus` (a `fuse_entry_out` of 128 bytes and a `fuse_dirent`
/// header of 24), the name, padding to 8 bytes.
fn plus_entry_size(name: &[u8]) -> usize {
    (152 + name.len()).next_multiple_of(8)
}

/// The reply size a READDIRPLUS asks for (one page on Linux): the entries
/// of a page are prepared together, so that its attributes are read from
/// one opened tree and its lookups counted under one lock. Only the cost
/// depends on it: a bigger reply takes several batches, a smaller one gives
/// back what did not fit.
const PLUS_BATCH_BYTES: usize = 4096;

/// Where a readdirplus entry's attributes come from.
enum PlusAttr {
    /// The directory itself.
    Own,
    /// A placeholder (see [`Union::placeholder_attr`]).
    Placeholder(Attr),
    /// The node's own attributes.
    Real,
}

/// Feeds the entries of directory `dir` (attributes `own`) from `offset`
/// to `add`, which returns true when the reply is full (that entry was not
/// sent). Counts a lookup for every entry sent but `.` and `..`, as the
/// kernel does (`fuse_direntplus_link`): also for an entry naming its own
/// directory or one the kernel has cached already. Works in batches of
/// about a page ([`PLUS_BATCH_BYTES`]); lookups counted for entries that
/// did not fit are given back.
fn plus_entries(
    union: &Union,
    dir: u64,
    own: Attr,
    listing: &[Listing],
    offset: u64,
    mut add: impl FnMut(PlusEntry<'_>) -> bool,
) {
    let mut entries = entries_from(listing, dir, offset).peekable();
    // Sized for a page of entries with empty names: never grown for one.
    let fit = PLUS_BATCH_BYTES / plus_entry_size(b"") + 1;
    let mut batch = Vec::with_capacity(fit);
    let mut real = Vec::with_capacity(fit);
    let mut ready = Vec::with_capacity(fit);
    let mut named = Vec::with_capacity(fit);
    loop {
        batch.clear();
        let mut bytes = 0;
        while let Some((next, name, child, _)) = entries
            .next_if(|e| batch.is_empty() || bytes + plus_entry_size(e.1) <= PLUS_BATCH_BYTES)
        {
            bytes += plus_entry_size(name);
            let source = if child == dir {
                PlusAttr::Own
            } else if let Some(placeholder) = union.placeholder_attr(child) {
                PlusAttr::Placeholder(placeholder)
            } else {
                PlusAttr::Real
            };
            batch.push((next, name, child, source));
        }
        if batch.is_empty() {
            return;
        }
        real.clear();
        real.extend(
            batch
                .iter()
                .filter(|e| matches!(e.3, PlusAttr::Real))
                .map(|e| e.2),
        );
        let mut real_attrs = union.getattrs(&real).into_iter();
        ready.clear();
        for (next, name, child, source) in batch.drain(..) {
            let (attr, ttl) = match source {
                PlusAttr::Own => (own, PlusTtl::Own),
                PlusAttr::Placeholder(a) => (a, PlusTtl::Zero),
                PlusAttr::Real => match real_attrs.next() {
                    Some(Ok(a)) => (a, PlusTtl::Entry),
                    Some(Err(e)) => {
                        crate::log::debug(format_args!("readdirplus: skipping {child:#x}: {e}"));
                        continue;
                    }
                    None => continue,
                },
            };
            ready.push((next, name, child, attr, ttl));
        }
        named.clear();
        named.extend(ready.iter().filter(|e| !is_dot(e.1)).map(|e| {
            (
                e.1,
                Entry {
                    ino: e.2,
                    attr: e.3,
                },
            )
        }));
        let mut counted = union.plus_entries(dir, &named).into_iter();
        for (next, name, child, attr, ttl) in ready.drain(..) {
            let counted = if is_dot(name) {
                None
            } else {
                match counted.next() {
                    Some(Ok(c)) => Some(c),
                    Some(Err(e)) => {
                        crate::log::debug(format_args!("readdirplus: skipping {child:#x}: {e}"));
                        continue;
                    }
                    None => continue,
                }
            };
            let generation = match &counted {
                Some(c) => c.generation(),
                None => union.generation(child),
            };
            let full = add(PlusEntry {
                next,
                name,
                child,
                attr,
                ttl,
                generation,
            });
            if full {
                // The counts of this entry and the rest of the batch are
                // given back as they are dropped.
                return;
            }
            if let Some(c) = counted {
                c.sent();
            }
        }
    }
}

/// True for the names `.` and `..`, which the kernel does not count.
fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// Answers an xattr request: the size when asked for it, the bytes when they
/// fit, ERANGE otherwise.
fn sized_reply(reply: ReplyXattr, size: u32, bytes: &[u8]) {
    if size == 0 {
        reply.size(bytes.len() as u32)
    } else if bytes.len() <= size as usize {
        reply.data(bytes)
    } else {
        reply.error(Errno::from_i32(libc::ERANGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_start_at_the_offset() {
        let listing: Vec<Listing> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| Listing {
                name: n.as_bytes().to_vec(),
                ino: 10 + i as u64,
                kind: Kind::File,
            })
            .collect();
        let names = |offset| {
            entries_from(&listing, 7, offset)
                .map(|(next, name, child, _)| {
                    (next, String::from_utf8_lossy(name).into_owned(), child)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(0),
            [
                (1, ".".to_string(), 7),
                (2, "..".to_string(), 7),
                (3, "a".to_string(), 10),
                (4, "b".to_string(), 11),
                (5, "c".to_string(), 12)
            ]
        );
        assert_eq!(names(1)[0], (2, "..".to_string(), 7));
        assert_eq!(names(4), [(5, "c".to_string(), 12)]);
        assert!(names(5).is_empty());
        assert!(names(u64::MAX).is_empty());
    }

    #[test]
    fn names_in_synthesized_folders_expire_within_a_second() {
        let app_folder = inode::encode(3, inode::IMAGE_ROOT);
        let in_app = inode::encode(3, 42);
        assert_eq!(entry_ttl(1, ttl(app_folder)), SYNTH_TTL);
        assert_eq!(entry_ttl(inode::encode(0, 5), IMAGE_TTL), SYNTH_TTL);
        assert_eq!(entry_ttl(app_folder, ttl(in_app)), IMAGE_TTL);
        assert_eq!(entry_ttl(1, Duration::ZERO), Duration::ZERO);
    }

    /// The kernel counts a lookup for every readdirplus entry it is sent
    /// with a nonzero inode, except `.` and `..`: also one naming its own
    /// directory. An entry that did not fit is not counted.
    #[test]
    fn readdirplus_counts_what_the_kernel_counts() {
        let dir = crate::test_support::TempDir::new("plus-counts");
        std::os::unix::fs::symlink(
            crate::test_support::apps::echo(),
            dir.path().join("Echo.AppImage"),
        )
        .unwrap();
        let u = Union::new(
            dir.path(),
            std::path::Path::new("/opt/apps"),
            Arc::new(crate::cache::BlockCache::new(16 << 20)),
        )
        .unwrap();
        let folder = u
            .readdir(1)
            .unwrap()
            .iter()
            .find(|l| l.name == b"Echo")
            .unwrap()
            .ino;
        let own = u.getattr(folder).unwrap();
        let looping = [Listing {
            name: b"itself".to_vec(),
            ino: folder,
            kind: Kind::Dir,
        }];
        let mut sent = Vec::new();
        plus_entries(&u, folder, own, &looping, 0, |e| {
            sent.push(e.name.to_vec());
            false
        });
        assert_eq!(sent, [b".".to_vec(), b"..".to_vec(), b"itself".to_vec()]);
        assert_eq!(u.lookups_held(folder), 1);
        plus_entries(&u, folder, own, &looping, 2, |_| true);
        assert_eq!(u.lookups_held(folder), 1, "an entry that did not fit");
        // A page's entries are counted together: those sent stay counted,
        // the rest of the batch is given back.
        let three: Vec<Listing> = ["a", "b", "c"]
            .iter()
            .map(|n| Listing {
                name: n.as_bytes().to_vec(),
                ino: folder,
                kind: Kind::Dir,
            })
            .collect();
        let mut sent = 0;
        plus_entries(&u, folder, own, &three, 2, |_| {
            sent += 1;
            sent > 2
        });
        assert_eq!(u.lookups_held(folder), 3, "two of three entries fit");
        // Attributes of a page come from one opened tree, as one by one.
        let mut inos: Vec<u64> = u.readdir(folder).unwrap().iter().map(|l| l.ino).collect();
        inos.extend([1, folder, inode::encode(3, 5)]);
        let one_by_one: Vec<Option<Attr>> = inos.iter().map(|&i| u.getattr(i).ok()).collect();
        let paged: Vec<Option<Attr>> = u.getattrs(&inos).into_iter().map(|a| a.ok()).collect();
        assert!(inos.len() > 4 && one_by_one[0].is_some());
        assert_eq!(paged, one_by_one);
    }
}
