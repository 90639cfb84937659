//! Tree snapshots and a readable tree diff.
//!
//! [`snapshot`] walks a tree with `lstat` (never following symlinks) and
//! records, per relative path (raw bytes), the metadata, symlink target,
//! content hash, and xattrs of every entry, plus the hard-link groups (sets of
//! non-directory paths sharing an inode number). Errors are recorded in the
//! snapshot instead of aborting the walk, so a broken filesystem shows up as
//! differences rather than as a panic in the walker.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{errno_str, show};

/// File type of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file.
    File,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// `lstat` failed (see the entry's errors).
    Unreadable,
}

impl Kind {
    fn from_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDev,
            libc::S_IFBLK => Kind::BlockDev,
            _ => Kind::Unreadable,
        }
    }
}

/// An error met while snapshotting one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapError {
    /// What was being done (`lstat`, `readdir`, `read`, `readlink`, ...).
    pub op: &'static str,
    /// The errno, when the error came from the OS.
    pub errno: Option<i32>,
    /// Free text.
    pub msg: String,
}

impl SnapError {
    fn io(op: &'static str, e: &io::Error) -> SnapError {
        SnapError {
            op,
            errno: e.raw_os_error(),
            msg: e.to_string(),
        }
    }

    fn other(op: &'static str, msg: impl Into<String>) -> SnapError {
        SnapError {
            op,
            errno: None,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for SnapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(e) => write!(f, "{}: {} ({})", self.op, errno_str(e), self.msg),
            None => write!(f, "{}: {}", self.op, self.msg),
        }
    }
}

/// Hash of a file's whole content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentHash {
    /// Bytes read until EOF.
    pub len: u64,
    /// Two independent 64-bit SipHashes.
    pub hash: [u64; 2],
}

/// Everything recorded about one path.
#[derive(Clone, Debug)]
pub struct Entry {
    /// File type.
    pub kind: Kind,
    /// `mode & 0o7777`.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` (seconds).
    pub mtime: i64,
    /// `st_nlink`.
    pub nlink: u64,
    /// `st_rdev`.
    pub rdev: u64,
    /// `st_ino` (not compared directly; used for hard-link groups).
    pub ino: u64,
    /// `st_dev` (not compared; used to detect escapes from a mount).
    pub dev: u64,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Regular files: the content hash (or why it could not be read).
    pub content: Option<Result<ContentHash, SnapError>>,
    /// Extended attributes (name -> value); `Err` if listing failed.
    pub xattrs: Result<BTreeMap<Vec<u8>, Vec<u8>>, SnapError>,
    /// Other errors (readdir failures, invalid or duplicate names, ...).
    pub errors: Vec<SnapError>,
    /// Absolute path (diagnostics only).
    pub abs: PathBuf,
}

impl Entry {
    fn unreadable(abs: PathBuf, err: SnapError) -> Entry {
        Entry {
            kind: Kind::Unreadable,
            perm: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            nlink: 0,
            rdev: 0,
            ino: 0,
            dev: 0,
            target: None,
            content: None,
            xattrs: Ok(BTreeMap::new()),
            errors: vec![err],
            abs,
        }
    }

    /// Every error recorded for this entry (content, xattrs, others).
    pub fn all_errors(&self) -> Vec<&SnapError> {
        let mut v: Vec<&SnapError> = self.errors.iter().collect();
        if let Some(Err(e)) = &self.content {
            v.push(e);
        }
        if let Err(e) = &self.xattrs {
            v.push(e);
        }
        v
    }
}

/// A whole tree.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The walked root.
    pub root: PathBuf,
    /// Relative path bytes (`b""` is the root) -> entry.
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// Sets of non-directory paths sharing one inode (only sets of 2+).
    pub link_groups: BTreeSet<Vec<Vec<u8>>>,
}

impl Snapshot {
    /// The entry at a relative path.
    pub fn get(&self, rel: &str) -> Option<&Entry> {
        self.entries.get(rel.as_bytes())
    }

    /// Every error recorded anywhere in the tree, with its path.
    pub fn errors(&self) -> Vec<(Vec<u8>, SnapError)> {
        let mut v = Vec::new();
        for (p, e) in &self.entries {
            for err in e.all_errors() {
                v.push((p.clone(), err.clone()));
            }
        }
        v
    }

    /// Paths whose `st_dev` differs from the root's (an escape from a mount).
    pub fn foreign_devices(&self) -> Vec<String> {
        let Some(root) = self.entries.get(&b""[..]) else {
            return vec![];
        };
        self.entries
            .iter()
            .filter(|(_, e)| e.kind != Kind::Unreadable && e.dev != root.dev)
            .map(|(p, e)| format!("{}: st_dev {} != root's {}", show(p), e.dev, root.dev))
            .collect()
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// `lgetxattr` with the usual size query and retry on ERANGE.
pub fn get_xattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cpath(path);
    let n = CString::new(name).expect("xattr name without NUL");
    for _ in 0..8 {
        let size = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; size as usize];
        let got = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                n.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf);
    }
    Err(io::Error::from_raw_os_error(libc::ERANGE))
}

/// `llistxattr` as a list of names (ENOTSUP = no xattrs).
pub fn list_xattr_names(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let c = cpath(path);
    for _ in 0..8 {
        let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                return Ok(vec![]);
            }
            return Err(e);
        }
        if size == 0 {
            return Ok(vec![]);
        }
        let mut buf = vec![0u8; size as usize];
        let got = unsafe {
            libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len())
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| n.to_vec())
            .collect());
    }
    Err(io::Error::from_raw_os_error(libc::ERANGE))
}

fn read_xattrs(path: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, SnapError> {
    let names = list_xattr_names(path).map_err(|e| SnapError::io("listxattr", &e))?;
    let mut m = BTreeMap::new();
    for name in names {
        match get_xattr(path, &name) {
            Ok(v) => {
                if m.insert(name.clone(), v).is_some() {
                    return Err(SnapError::other(
                        "listxattr",
                        format!("duplicate name {}", show(&name)),
                    ));
                }
            }
            Err(e) => {
                return Err(SnapError {
                    op: "getxattr",
                    errno: e.raw_os_error(),
                    msg: format!("{}: {e}", show(&name)),
                })
            }
        }
    }
    Ok(m)
}

/// Hashes a file's content (reads until EOF).
pub fn hash_file(path: &Path) -> Result<ContentHash, SnapError> {
    let mut f = File::open(path).map_err(|e| SnapError::io("open", &e))?;
    let mut h1 = DefaultHasher::new();
    let mut h2 = DefaultHasher::new();
    h1.write_u8(1);
    h2.write_u8(2);
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(SnapError {
                    op: "read",
                    errno: e.raw_os_error(),
                    msg: format!("at offset {len}: {e}"),
                })
            }
        };
        h1.write(&buf[..n]);
        h2.write(&buf[..n]);
        len += n as u64;
    }
    Ok(ContentHash {
        len,
        hash: [h1.finish(), h2.finish()],
    })
}

fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

fn stat_entry(abs: &Path) -> Entry {
    let md = match std::fs::symlink_metadata(abs) {
        Ok(m) => m,
        Err(e) => return Entry::unreadable(abs.to_path_buf(), SnapError::io("lstat", &e)),
    };
    let kind = Kind::from_mode(md.mode());
    let mut entry = Entry {
        kind,
        perm: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: md.size(),
        mtime: md.mtime(),
        nlink: md.nlink(),
        rdev: md.rdev(),
        ino: md.ino(),
        dev: md.dev(),
        target: None,
        content: None,
        xattrs: Ok(BTreeMap::new()),
        errors: vec![],
        abs: abs.to_path_buf(),
    };
    match kind {
        Kind::Symlink => match std::fs::read_link(abs) {
            Ok(t) => entry.target = Some(t.as_os_str().as_bytes().to_vec()),
            Err(e) => entry.errors.push(SnapError::io("readlink", &e)),
        },
        Kind::File => entry.content = Some(hash_file(abs)),
        _ => {}
    }
    entry.xattrs = read_xattrs(abs);
    entry
}

/// Walks `root` (not following symlinks) into a [`Snapshot`].
pub fn snapshot(root: &Path) -> Snapshot {
    let mut entries: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    let mut stack: Vec<(Vec<u8>, PathBuf)> = vec![(Vec::new(), root.to_path_buf())];
    while let Some((rel, abs)) = stack.pop() {
        let mut entry = stat_entry(&abs);
        if entry.kind == Kind::Dir {
            let mut seen: BTreeSet<Vec<u8>> = BTreeSet::new();
            match std::fs::read_dir(&abs) {
                Err(e) => entry.errors.push(SnapError::io("opendir", &e)),
                Ok(rd) => {
                    for item in rd {
                        let item = match item {
                            Ok(i) => i,
                            Err(e) => {
                                entry.errors.push(SnapError::io("readdir", &e));
                                break;
                            }
                        };
                        let name = item.file_name().as_bytes().to_vec();
                        if !is_valid_name(&name) {
                            entry.errors.push(SnapError::other(
                                "readdir",
                                format!("invalid entry name {:?}", show(&name)),
                            ));
                            continue;
                        }
                        if !seen.insert(name.clone()) {
                            entry.errors.push(SnapError::other(
                                "readdir",
                                format!("entry {:?} listed twice", show(&name)),
                            ));
                            continue;
                        }
                        let mut child_rel = rel.clone();
                        if !child_rel.is_empty() {
                            child_rel.push(b'/');
                        }
                        child_rel.extend_from_slice(&name);
                        stack.push((child_rel, abs.join(std::ffi::OsStr::from_bytes(&name))));
                    }
                }
            }
        }
        entries.insert(rel, entry);
    }
    let mut by_inode: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    for (p, e) in &entries {
        if e.kind != Kind::Dir && e.kind != Kind::Unreadable {
            by_inode.entry((e.dev, e.ino)).or_default().push(p.clone());
        }
    }
    let link_groups = by_inode.into_values().filter(|g| g.len() > 1).collect();
    Snapshot {
        root: root.to_path_buf(),
        entries,
        link_groups,
    }
}

// ---------------------------------------------------------------------------
// Comparison

/// Which fields a comparison looks at. `kind`, names, symlink targets and
/// recorded errors are always compared.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    /// `mode & 0o7777`.
    pub perm: bool,
    /// uid and gid.
    pub owner: bool,
    /// mtime seconds.
    pub mtime: bool,
    /// Size of files and symlinks.
    pub size: bool,
    /// File content.
    pub content: bool,
    /// `st_nlink` of non-directories.
    pub nlink: bool,
    /// Device numbers.
    pub rdev: bool,
    /// Extended attributes.
    pub xattrs: bool,
    /// Hard-link groups.
    pub link_groups: bool,
    /// perm/owner/mtime of symlinks.
    pub symlink_meta: bool,
    /// perm/owner/mtime/xattrs of the root directory itself.
    pub root_meta: bool,
}

impl Compare {
    /// Everything.
    pub const ALL: Compare = Compare {
        perm: true,
        owner: true,
        mtime: true,
        size: true,
        content: true,
        nlink: true,
        rdev: true,
        xattrs: true,
        link_groups: true,
        symlink_meta: true,
        root_meta: true,
    };

    /// A SquashFS payload vs `unsquashfs` (run as root, which restores
    /// owners, modes incl. setuid, mtimes incl. symlinks', xattrs, hard links
    /// and device nodes): everything except the app folder's own metadata,
    /// which the filesystem may synthesize.
    pub fn squashfs() -> Compare {
        Compare {
            root_meta: false,
            ..Compare::ALL
        }
    }

    /// An ISO 9660 payload vs `xorriso -osirrox on -extract`. What xorriso
    /// 1.5.4 preserves (checked by hand on the fixtures):
    /// - content, with zisofs (ZF) files decompressed;
    /// - names (Rock Ridge NM, else ISO names without `;1`), symlink targets;
    /// - mtimes of files and directories;
    /// - with Rock Ridge: perm bits, uid, gid (from PX). Without Rock Ridge
    ///   xorriso invents perms/owners (0555/0444, root), so they are skipped.
    ///
    /// Not preserved, hence not compared: hard links (extracted as separate
    /// files even with `-hardlinks on`), so no nlink/link groups; symlink
    /// perm/owner/mtime (created fresh); xattrs/ACLs (`-xattr`/`-acl` are off
    /// by default); the root's own metadata.
    pub fn iso(rockridge: bool) -> Compare {
        Compare {
            perm: rockridge,
            owner: rockridge,
            mtime: true,
            size: true,
            content: true,
            nlink: false,
            rdev: rockridge,
            xattrs: false,
            link_groups: false,
            symlink_meta: false,
            root_meta: false,
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Dir => "directory",
        Kind::File => "file",
        Kind::Symlink => "symlink",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
        Kind::CharDev => "char device",
        Kind::BlockDev => "block device",
        Kind::Unreadable => "unreadable",
    }
}

fn fmt_xattrs(m: &Result<BTreeMap<Vec<u8>, Vec<u8>>, SnapError>) -> String {
    match m {
        Err(e) => format!("<{e}>"),
        Ok(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    let v = if v.len() > 40 {
                        format!("{}...({} bytes)", show(&v[..40]), v.len())
                    } else {
                        format!("\"{}\"", v.escape_ascii())
                    };
                    format!("{}={}", show(k), v)
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn first_difference(a: &Path, b: &Path) -> String {
    let (Ok(fa), Ok(fb)) = (File::open(a), File::open(b)) else {
        return String::new();
    };
    let mut off = 0u64;
    let mut ba = vec![0u8; 65536];
    let mut bb = vec![0u8; 65536];
    while off < 256 << 20 {
        let na = fa.read_at(&mut ba, off).unwrap_or(0);
        let nb = fb.read_at(&mut bb, off).unwrap_or(0);
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return format!(
                "; first differing byte at offset {}: expected 0x{:02x}, got 0x{:02x}",
                off + i as u64,
                ba[i],
                bb[i]
            );
        }
        if na != nb {
            return format!(
                "; contents agree up to offset {}, then one side ends",
                off + n as u64
            );
        }
        if na == 0 {
            break;
        }
        off += na as u64;
    }
    String::new()
}

fn content_str(c: &Option<Result<ContentHash, SnapError>>) -> String {
    match c {
        None => "<none>".into(),
        Some(Ok(h)) => format!("{} bytes, hash {:016x}", h.len, h.hash[0]),
        Some(Err(e)) => format!("<{e}>"),
    }
}

/// One difference, with the field name for the summary.
#[derive(Clone, Debug)]
pub struct Difference {
    /// Relative path (bytes).
    pub path: Vec<u8>,
    /// Field names that differ (`missing`, `extra`, `kind`, `perm`, ...).
    pub fields: Vec<&'static str>,
    /// Human-readable detail.
    pub detail: String,
}

fn diff_entry(path: &[u8], e: &Entry, a: &Entry, cmp: &Compare) -> Option<Difference> {
    let mut fields = Vec::new();
    let mut parts = Vec::new();
    if e.kind != a.kind {
        let mut detail = format!(
            "kind: expected {}, got {}",
            kind_name(e.kind),
            kind_name(a.kind)
        );
        if !a.errors.is_empty() {
            let errs: Vec<String> = a.errors.iter().map(|x| x.to_string()).collect();
            detail.push_str(&format!(" (errors: {})", errs.join("; ")));
        }
        return Some(Difference {
            path: path.to_vec(),
            fields: vec!["kind"],
            detail,
        });
    }
    let is_root = path.is_empty();
    let meta = (!is_root || cmp.root_meta) && (e.kind != Kind::Symlink || cmp.symlink_meta);
    let mut field = |name: &'static str, ok: bool, detail: String| {
        if !ok {
            fields.push(name);
            parts.push(detail);
        }
    };
    if cmp.perm && meta {
        field(
            "perm",
            e.perm == a.perm,
            format!("perm: expected {:#o}, got {:#o}", e.perm, a.perm),
        );
    }
    if cmp.owner && meta {
        field(
            "owner",
            (e.uid, e.gid) == (a.uid, a.gid),
            format!(
                "owner: expected {}:{}, got {}:{}",
                e.uid, e.gid, a.uid, a.gid
            ),
        );
    }
    if cmp.mtime && meta && e.kind != Kind::Unreadable {
        field(
            "mtime",
            e.mtime == a.mtime,
            format!("mtime: expected {}, got {}", e.mtime, a.mtime),
        );
    }
    if cmp.size && matches!(e.kind, Kind::File | Kind::Symlink) {
        field(
            "size",
            e.size == a.size,
            format!("size: expected {}, got {}", e.size, a.size),
        );
    }
    if e.kind == Kind::Symlink {
        field(
            "target",
            e.target == a.target,
            format!(
                "symlink target: expected {:?}, got {:?}",
                e.target.as_deref().map(show),
                a.target.as_deref().map(show)
            ),
        );
    }
    if cmp.content && e.kind == Kind::File && e.content != a.content {
        let mut d = format!(
            "content: expected {}, got {}",
            content_str(&e.content),
            content_str(&a.content)
        );
        if let (Some(Ok(_)), Some(Ok(_))) = (&e.content, &a.content) {
            d.push_str(&first_difference(&e.abs, &a.abs));
        }
        field("content", false, d);
    }
    if cmp.nlink && !matches!(e.kind, Kind::Dir | Kind::Unreadable) {
        field(
            "nlink",
            e.nlink == a.nlink,
            format!("nlink: expected {}, got {}", e.nlink, a.nlink),
        );
    }
    if cmp.rdev && matches!(e.kind, Kind::CharDev | Kind::BlockDev) {
        field(
            "rdev",
            e.rdev == a.rdev,
            format!(
                "rdev: expected {}:{}, got {}:{}",
                libc::major(e.rdev),
                libc::minor(e.rdev),
                libc::major(a.rdev),
                libc::minor(a.rdev)
            ),
        );
    }
    if cmp.xattrs && (!is_root || cmp.root_meta) {
        field(
            "xattrs",
            e.xattrs == a.xattrs,
            format!(
                "xattrs: expected {}, got {}",
                fmt_xattrs(&e.xattrs),
                fmt_xattrs(&a.xattrs)
            ),
        );
    }
    if e.errors != a.errors {
        let ee: Vec<String> = e.errors.iter().map(|x| x.to_string()).collect();
        let ae: Vec<String> = a.errors.iter().map(|x| x.to_string()).collect();
        field(
            "errors",
            false,
            format!(
                "errors: expected [{}], got [{}]",
                ee.join("; "),
                ae.join("; ")
            ),
        );
    }
    if fields.is_empty() {
        None
    } else {
        Some(Difference {
            path: path.to_vec(),
            fields,
            detail: parts.join("; "),
        })
    }
}

/// All differences between two snapshots under `cmp`.
pub fn diff_snapshots(expected: &Snapshot, actual: &Snapshot, cmp: &Compare) -> Vec<Difference> {
    let mut out = Vec::new();
    let keys: BTreeSet<&Vec<u8>> = expected
        .entries
        .keys()
        .chain(actual.entries.keys())
        .collect();
    for k in keys {
        match (expected.entries.get(k), actual.entries.get(k)) {
            (Some(e), None) => out.push(Difference {
                path: k.clone(),
                fields: vec!["missing"],
                detail: format!("missing ({} expected)", kind_name(e.kind)),
            }),
            (None, Some(a)) => out.push(Difference {
                path: k.clone(),
                fields: vec!["extra"],
                detail: format!("unexpected {} (not in expected tree)", kind_name(a.kind)),
            }),
            (Some(e), Some(a)) => {
                if let Some(d) = diff_entry(k, e, a, cmp) {
                    out.push(d);
                }
            }
            (None, None) => unreachable!(),
        }
    }
    if cmp.link_groups && expected.link_groups != actual.link_groups {
        let fmt_group = |g: &Vec<Vec<u8>>| {
            format!(
                "{{{}}}",
                g.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
            )
        };
        for g in expected.link_groups.difference(&actual.link_groups) {
            out.push(Difference {
                path: g[0].clone(),
                fields: vec!["link_group"],
                detail: format!(
                    "hard-link group {} does not share one inode in the actual tree",
                    fmt_group(g)
                ),
            });
        }
        for g in actual.link_groups.difference(&expected.link_groups) {
            out.push(Difference {
                path: g[0].clone(),
                fields: vec!["link_group"],
                detail: format!(
                    "actual tree has a hard-link group {} not in the expected tree",
                    fmt_group(g)
                ),
            });
        }
    }
    out
}

/// Formats differences: a per-field summary, then the first `max` in detail.
pub fn format_differences(
    expected: &Snapshot,
    actual: &Snapshot,
    diffs: &[Difference],
    max: usize,
) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in diffs {
        for f in &d.fields {
            *counts.entry(f).or_default() += 1;
        }
    }
    let summary: Vec<String> = counts.iter().map(|(f, n)| format!("{f}: {n}")).collect();
    let mut s = format!(
        "{} difference(s) between expected {} and actual {} (by field: {}); first {}:\n",
        diffs.len(),
        expected.root.display(),
        actual.root.display(),
        summary.join(", "),
        max.min(diffs.len())
    );
    for d in diffs.iter().take(max) {
        s.push_str(&format!("  {}: {}\n", show(&d.path), d.detail));
    }
    s
}

/// Diffs under `cmp` and returns a readable report, or `None` when equal.
pub fn compare_trees(expected: &Snapshot, actual: &Snapshot, cmp: &Compare) -> Option<String> {
    let diffs = diff_snapshots(expected, actual, cmp);
    if diffs.is_empty() {
        None
    } else {
        Some(format_differences(expected, actual, &diffs, 20))
    }
}

/// Asserts two snapshots are equal in every field (see [`Compare::ALL`]).
pub fn assert_trees_equal(expected: &Snapshot, actual: &Snapshot) {
    assert_trees_equal_with(expected, actual, &Compare::ALL)
}

/// Asserts two snapshots are equal under `cmp`, printing the first 20
/// differences (and which fields) instead of whole trees.
pub fn assert_trees_equal_with(expected: &Snapshot, actual: &Snapshot, cmp: &Compare) {
    if let Some(report) = compare_trees(expected, actual, cmp) {
        panic!("trees differ: {report}");
    }
}
