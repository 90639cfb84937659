//! Shared harness of the fuzz targets: the input as an open file, one
//! decompression cache for the whole run, and a bounded walk of an opened
//! image that checks the `ImageTree` contract on the way.
//!
//! A violated contract is a `panic!`, which libFuzzer reports as a crash
//! (with the input saved under `fuzz/artifacts/<target>/`).

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::{Arc, OnceLock};

use appimagefs::cache::BlockCache;
use appimagefs::tree::{ImageTree, Kind, NodeId, NODE_ID_BITS};

/// Nodes visited at most per image.
pub const MAX_NODES: usize = 2048;
/// Deepest directory descended into.
pub const MAX_DEPTH: usize = 48;
/// Bytes read at most from one file.
pub const MAX_FILE_READ: u64 = 128 << 10;
/// Bytes read at most per image (keeps an input's run short: the fuzzer's
/// speed matters more than reading every byte of large seeds).
pub const MAX_TOTAL_READ: u64 = 512 << 10;
/// Size of one read call (like a FUSE read).
const READ_CHUNK: u32 = 32 * 1024;

/// The node id the union reserves for every image's root (see
/// `appimagefs::union::inode::IMAGE_ROOT`): no reader may hand it out.
const IMAGE_ROOT: NodeId = (1 << NODE_ID_BITS) - 1;

/// `data` as a file: an anonymous memfd, so no temporary file is left
/// behind when the fuzzer is killed.
pub fn as_file(data: &[u8]) -> File {
    // SAFETY: memfd_create with a valid NUL-terminated name; the returned
    // descriptor is owned by the File from here on.
    let fd = unsafe { libc::memfd_create(c"appimagefs-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data).expect("write memfd");
    file
}

/// `data` as a file, extended with zeros (sparse, so for free) to the
/// volume size an ISO 9660 primary volume descriptor at sector 16 declares,
/// at most `max` bytes: seeds and inputs can leave out the zero padding and
/// file data at the end of an image and still pass the truncation check.
pub fn as_iso_file(data: &[u8], max: u64) -> File {
    let file = as_file(data);
    let at = 16 * 2048 + 80;
    if let Some(b) = data.get(at..at + 4) {
        if data.get(16 * 2048 + 1..16 * 2048 + 6) == Some(b"CD001") {
            let blocks = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let want = (u64::from(blocks) * 2048).min(max);
            if want > data.len() as u64 {
                file.set_len(want).expect("extend memfd");
            }
        }
    }
    file
}

/// One decompression cache for the whole process, as in the daemon (its
/// read-ahead pool is started once, not per input).
pub fn cache() -> Arc<BlockCache> {
    static CACHE: OnceLock<Arc<BlockCache>> = OnceLock::new();
    CACHE
        .get_or_init(|| Arc::new(BlockCache::new(64 << 20)))
        .clone()
}

/// True when `name` may appear in a directory listing.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

fn check_node_id(node: NodeId, what: &str) {
    assert!(
        node >> NODE_ID_BITS == 0 && node != IMAGE_ROOT,
        "{what}: node id {node:#x} does not fit the union's inode encoding"
    );
}

/// Reads the head and the tail of every regular file (both within the
/// caps), checking that each read returns exactly what the size promises (a
/// short read ends the file for FUSE). Decompression is most of an input's
/// run time, and the inflate code is not what is fuzzed here, so the middle
/// of large files is skipped.
fn read_file(tree: &dyn ImageTree, node: NodeId, size: u64, budget: &mut u64) {
    let head = size.min(MAX_FILE_READ / 2);
    let tail_start = size.saturating_sub(MAX_FILE_READ / 2).max(head);
    for (from, to) in [(0, head), (tail_start, size)] {
        let mut at = from;
        while at < to && *budget > 0 {
            let n = READ_CHUNK.min((to - at).min(*budget) as u32);
            match tree.read(node, at, n) {
                Ok(data) => {
                    let expected = u64::from(n).min(size - at);
                    assert_eq!(
                        data.len() as u64,
                        expected,
                        "read of {n} at {at} of a {size}-byte file returned {} bytes",
                        data.len()
                    );
                    *budget = budget.saturating_sub(data.len() as u64);
                    at += data.len() as u64;
                    if data.is_empty() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    // Reads at and past the end, and at hostile offsets, are empty or errors.
    for offset in [size, size.saturating_add(1), u64::MAX - 1, u64::MAX] {
        if let Ok(data) = tree.read(node, offset, 4096) {
            assert!(data.is_empty(), "read at {offset} past the end gave data");
        }
    }
    if size > 1 && *budget > 0 {
        if let Ok(data) = tree.read(node, size - 1, u32::MAX) {
            assert_eq!(data.len(), 1, "read of the last byte");
        }
    }
}

/// Walks `tree` from its root within the caps, calling every operation of
/// the trait on every node and checking the contract:
///
/// - listings hold valid, unique names and node ids that fit the union's
///   inode encoding, and `lookup` finds every listed name;
/// - reads never return more than asked, and exactly the file's size;
/// - symlink targets are at most 4096 bytes, and only symlinks have one.
///
/// Returns the number of nodes visited.
pub fn walk(tree: &dyn ImageTree) -> usize {
    let _ = tree.info();
    let root = tree.root();
    check_node_id(root, "root");
    let mut budget = MAX_TOTAL_READ;
    let mut seen: HashSet<NodeId> = HashSet::new();
    let mut stack = vec![(root, 0usize)];
    let mut visited = 0;
    while let Some((node, depth)) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        visited += 1;
        if visited > MAX_NODES {
            break;
        }
        let attr = tree.attr(node);
        let _ = tree.xattrs(node);
        match tree.read_link(node) {
            Ok(target) => {
                assert!(
                    target.len() <= 4096,
                    "symlink target of {} bytes",
                    target.len()
                );
                if let Ok(a) = &attr {
                    assert_eq!(a.kind, Kind::Symlink, "read_link worked on a {:?}", a.kind);
                }
            }
            Err(_) => {}
        }
        if let Ok(a) = &attr {
            if a.kind == Kind::File {
                read_file(tree, node, a.size, &mut budget);
            } else {
                assert!(
                    tree.read(node, 0, 16).is_err(),
                    "read worked on a {:?}",
                    a.kind
                );
            }
        }
        let Ok(list) = tree.read_dir(node) else {
            continue;
        };
        let mut names = HashSet::new();
        for e in list.iter() {
            assert!(valid_name(&e.name), "listing holds the name {:?}", e.name);
            assert!(
                names.insert(e.name.as_slice()),
                "listing holds {:?} twice",
                e.name
            );
            check_node_id(e.node, "directory entry");
        }
        for e in list.iter().take(512) {
            match tree.lookup(node, &e.name) {
                Ok(Some(found)) => assert_eq!(found, e.node, "lookup of {:?}", e.name),
                Ok(None) => panic!("lookup does not find the listed {:?}", e.name),
                Err(_) => {} // e.g. the listing was evicted and now fails to parse
            }
            if depth < MAX_DEPTH {
                stack.push((e.node, depth + 1));
            }
        }
        // Names that must never be found.
        for bad in [&b""[..], b".", b"..", b"a/b", b"\0"] {
            if let Ok(found) = tree.lookup(node, bad) {
                assert!(found.is_none(), "lookup of {bad:?} found something");
            }
        }
    }
    // Ids the tree never handed out: errors, never panics.
    for bogus in [
        0,
        1,
        2,
        IMAGE_ROOT,
        u64::MAX,
        root ^ 1,
        root.wrapping_add(8191),
    ] {
        let _ = tree.attr(bogus);
        let _ = tree.read_dir(bogus);
        let _ = tree.lookup(bogus, b"x");
        let _ = tree.read(bogus, 0, 16);
        let _ = tree.read_link(bogus);
        let _ = tree.xattrs(bogus);
    }
    visited
}

/// Desktop integration of an opened image, as the union builds `bin/` and
/// `share/`: finds and parses the desktop entry, the icons, the launcher.
pub fn integrate(tree: &dyn ImageTree) {
    let integration = appimagefs::desktop::integrate(
        tree,
        b"Fuzz-1.0-x86_64",
        std::path::Path::new("/src/Fuzz-1.0-x86_64.AppImage"),
        std::path::Path::new("/opt/apps"),
    );
    if let Ok(menu) = &integration.menu {
        assert!(
            appimagefs::desktop::entry::parse(&menu.contents).is_ok(),
            "the menu entry does not parse"
        );
    }
}
