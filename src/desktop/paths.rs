//! Walking one image's tree by path, the way a process inside the mounted
//! AppDir would, but never leaving the image.
//!
//! AppDirs use symlinks a lot (`.DirIcon` → `app.png`, `app.desktop` →
//! `usr/share/applications/app.desktop`), so lookups follow them, with two
//! limits: at most [`MAX_SYMLINKS`] links per lookup (as Linux's
//! `MAXSYMLINKS`), and a link whose target is absolute or climbs above the
//! image root with `..` counts as dangling: in a mounted AppImage such a
//! link points outside the image, and integration must only describe what
//! the image itself holds.

use crate::error::{Error, Result};
use crate::tree::{Attr, ImageTree, Kind, NodeId};

/// Most symlinks followed while resolving one path.
pub const MAX_SYMLINKS: usize = 40;

/// Most path components processed while resolving one path (including
/// those symlink targets add); bounds the work a hostile image can cause.
pub const MAX_STEPS: usize = 4096;

/// Longest symlink target read.
pub const MAX_LINK_TARGET: u64 = 4096;

/// A path resolved inside the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The node the path leads to.
    pub node: NodeId,
    /// Its metadata (never a symlink when the last link was followed).
    pub attr: Attr,
    /// The symlink-free path from the image root, components joined by `/`
    /// (empty for the root itself).
    pub path: Vec<u8>,
}

/// Resolves `path` (relative to the image root; `/`-separated; empty, `.`
/// and `..` components allowed) following every symlink, the last one too.
/// `Ok(None)` when the path does not exist inside the image (missing,
/// dangling or escaping link, loop, a non-directory in the middle).
pub fn resolve(tree: &dyn ImageTree, path: &[u8]) -> Result<Option<Resolved>> {
    // `pending` holds the components still to walk, the next one last.
    let mut pending: Vec<Vec<u8>> = components(path).rev().collect();
    // `stack` holds the directories walked so far below the root.
    let mut stack: Vec<(NodeId, Vec<u8>)> = Vec::new();
    let mut links = 0;
    let mut steps = 0;
    let root = tree.root();
    while let Some(name) = pending.pop() {
        steps += 1;
        if steps > MAX_STEPS {
            return Ok(None);
        }
        if name == b".." {
            if stack.pop().is_none() {
                return Ok(None);
            }
            continue;
        }
        let dir = stack.last().map_or(root, |(node, _)| *node);
        let node = match tree.lookup(dir, &name) {
            Ok(Some(node)) => node,
            Ok(None) | Err(Error::NotDir) | Err(Error::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let attr = tree.attr(node)?;
        if attr.kind == Kind::Symlink {
            links += 1;
            if links > MAX_SYMLINKS || attr.size > MAX_LINK_TARGET {
                return Ok(None);
            }
            let target = tree.read_link(node)?;
            if target.is_empty()
                || target.starts_with(b"/")
                || target.len() as u64 > MAX_LINK_TARGET
            {
                return Ok(None);
            }
            pending.extend(components(&target).rev());
            continue;
        }
        if !pending.is_empty() && attr.kind != Kind::Dir {
            return Ok(None);
        }
        stack.push((node, name));
    }
    let (node, attr) = match stack.last() {
        Some(&(node, _)) => (node, tree.attr(node)?),
        None => (root, tree.attr(root)?),
    };
    let path = stack
        .iter()
        .map(|(_, name)| name.as_slice())
        .collect::<Vec<_>>()
        .join(&b'/');
    Ok(Some(Resolved { node, attr, path }))
}

/// The non-empty, non-`.` components of a `/`-separated path.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

/// Resolves `path` and requires a regular file; `Ok(None)` otherwise.
pub fn resolve_file(tree: &dyn ImageTree, path: &[u8]) -> Result<Option<Resolved>> {
    Ok(resolve(tree, path)?.filter(|r| r.attr.kind == Kind::File))
}

/// Reads all of file `node` if it holds at most `max` bytes; `Err` with a
/// reason when it is larger or cannot be read.
pub fn read_capped(
    tree: &dyn ImageTree,
    node: NodeId,
    max: usize,
) -> std::result::Result<Vec<u8>, String> {
    let size = tree.attr(node).map_err(|e| e.to_string())?.size;
    if size > max as u64 {
        return Err(format!("{size} bytes, more than the {max} accepted"));
    }
    read_head(tree, node, size as usize).map_err(|e| e.to_string())
}

/// Reads the first `n` bytes of file `node` (fewer when it is shorter).
pub fn read_head(tree: &dyn ImageTree, node: NodeId, n: usize) -> Result<Vec<u8>> {
    const CHUNK: usize = 64 * 1024;
    let mut out = Vec::with_capacity(n.min(CHUNK));
    // Each round either adds bytes or stops, and never asks past `n`.
    while out.len() < n {
        let want = (n - out.len()).min(CHUNK) as u32;
        let chunk = tree.read(node, out.len() as u64, want)?;
        if chunk.is_empty() {
            break;
        }
        let take = chunk.len().min(n - out.len());
        out.extend_from_slice(&chunk[..take]);
    }
    Ok(out)
}
