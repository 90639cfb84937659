//! `share/mime/mime.cache`: the binary form of the database, version 1.2
//! of the shared-mime-info specification ("The mime.cache files"). GLib
//! reads only the caches as soon as one directory of `XDG_DATA_DIRS` has
//! one (the host's `/usr/share/mime` usually does), so without this file
//! the apps' types would stay unknown on most desktops.
//!
//! Layout: a header of eleven big-endian offsets, then a pool of
//! NUL-terminated strings (and match values), then the lists, each sorted
//! as readers' binary searches expect.

use std::collections::BTreeMap;

use super::package::Match;

/// What the cache is written from, already merged and checked.
pub struct Input<'a> {
    /// (alias, type).
    pub aliases: Vec<(&'a str, &'a str)>,
    /// type → parents.
    pub parents: BTreeMap<&'a str, Vec<&'a str>>,
    /// (pattern, type, weight, case-sensitive).
    pub globs: Vec<(&'a str, &'a str, u8, bool)>,
    /// (priority, type, matches).
    pub magic: Vec<(u8, &'a str, &'a [Match])>,
    /// (namespace URI, local name, type).
    pub namespaces: Vec<(&'a str, &'a str, &'a str)>,
    /// (type, icon).
    pub icons: Vec<(&'a str, &'a str)>,
    /// (type, generic icon).
    pub generic_icons: Vec<(&'a str, &'a str)>,
}

struct Out {
    buf: Vec<u8>,
    strings: BTreeMap<Vec<u8>, u32>,
}

impl Out {
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn at(&self) -> u32 {
        self.buf.len() as u32
    }
    fn patch(&mut self, at: u32, v: u32) {
        self.buf[at as usize..at as usize + 4].copy_from_slice(&v.to_be_bytes());
    }
    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    /// The offset of `bytes` in the pool (with a NUL after them).
    fn string(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&at) = self.strings.get(bytes) {
            return at;
        }
        let at = self.at();
        self.buf.extend_from_slice(bytes);
        self.buf.push(0);
        self.align();
        self.strings.insert(bytes.to_vec(), at);
        at
    }
}

/// Weight and flags as the cache stores them.
fn weight(w: u8, case_sensitive: bool) -> u32 {
    u32::from(w) | if case_sensitive { 0x100 } else { 0 }
}

/// A suffix tree node: children by character, and leaves (type, weight).
#[derive(Default)]
struct Node {
    children: BTreeMap<u32, Node>,
    leaves: Vec<(u32, u32)>,
}

/// Writes the cache.
pub fn write(input: &Input) -> Vec<u8> {
    let mut out = Out {
        buf: vec![0; 40],
        strings: BTreeMap::new(),
    };
    out.buf[0..2].copy_from_slice(&1u16.to_be_bytes());
    out.buf[2..4].copy_from_slice(&2u16.to_be_bytes());

    // Globs: literals, simple suffixes (the tree), the rest (fnmatch).
    let special = |s: &str| s.contains(['*', '?', '[']);
    let mut literals = Vec::new();
    let mut tree = Node::default();
    let mut others = Vec::new();
    for &(pattern, ty, w, cs) in &input.globs {
        let pattern = if cs {
            pattern.to_string()
        } else {
            pattern.to_ascii_lowercase()
        };
        let t = out.string(ty.as_bytes());
        let flags = weight(w, cs);
        if !special(&pattern) {
            literals.push((pattern, t, flags));
        } else if let Some(suffix) = pattern
            .strip_prefix('*')
            .filter(|s| !s.is_empty() && !special(s))
        {
            let mut node = &mut tree;
            for c in suffix.chars().rev() {
                node = node.children.entry(c as u32).or_default();
            }
            node.leaves.push((t, flags));
        } else {
            others.push((pattern, t, flags));
        }
    }
    literals.sort();
    let literals: Vec<(u32, u32, u32)> = literals
        .into_iter()
        .map(|(p, t, f)| (out.string(p.as_bytes()), t, f))
        .collect();
    let others: Vec<(u32, u32, u32)> = others
        .into_iter()
        .map(|(p, t, f)| (out.string(p.as_bytes()), t, f))
        .collect();
    let mut aliases: Vec<(&str, &str)> = input.aliases.clone();
    aliases.sort();
    let aliases: Vec<(u32, u32)> = aliases
        .iter()
        .map(|(a, t)| (out.string(a.as_bytes()), out.string(t.as_bytes())))
        .collect();
    let parents: Vec<(u32, Vec<u32>)> = input
        .parents
        .iter()
        .map(|(t, ps)| {
            let t = out.string(t.as_bytes());
            (t, ps.iter().map(|p| out.string(p.as_bytes())).collect())
        })
        .collect();
    let mut namespaces = input.namespaces.clone();
    namespaces.sort();
    let namespaces: Vec<[u32; 3]> = namespaces
        .iter()
        .map(|(ns, l, t)| {
            [
                out.string(ns.as_bytes()),
                out.string(l.as_bytes()),
                out.string(t.as_bytes()),
            ]
        })
        .collect();
    let mut magic = input.magic.clone();
    magic.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    for (_, ty, _) in &magic {
        out.string(ty.as_bytes());
    }
    let mut icon_lists = Vec::new();
    for list in [&input.icons, &input.generic_icons] {
        let mut list = list.clone();
        list.sort();
        icon_lists.push(
            list.iter()
                .map(|(t, i)| (out.string(t.as_bytes()), out.string(i.as_bytes())))
                .collect::<Vec<_>>(),
        );
    }

    // Alias list.
    let at = out.at();
    out.patch(4, at);
    out.u32(aliases.len() as u32);
    for (a, t) in &aliases {
        out.u32(*a);
        out.u32(*t);
    }
    // Parent list, then each type's parents.
    let at = out.at();
    out.patch(8, at);
    out.u32(parents.len() as u32);
    let entries = out.at();
    for (t, _) in &parents {
        out.u32(*t);
        out.u32(0);
    }
    for (i, (_, ps)) in parents.iter().enumerate() {
        let at = out.at();
        out.patch(entries + 8 * i as u32 + 4, at);
        out.u32(ps.len() as u32);
        for p in ps {
            out.u32(*p);
        }
    }
    // Literal list.
    let at = out.at();
    out.patch(12, at);
    out.u32(literals.len() as u32);
    for (p, t, f) in &literals {
        out.u32(*p);
        out.u32(*t);
        out.u32(*f);
    }
    // Suffix tree.
    let at = out.at();
    out.patch(16, at);
    out.u32(tree.children.len() as u32);
    let first = out.at();
    out.u32(0);
    let (roots, _) = write_array(&mut out, &tree);
    out.patch(first, roots);
    // Glob list.
    let at = out.at();
    out.patch(20, at);
    out.u32(others.len() as u32);
    for (p, t, f) in &others {
        out.u32(*p);
        out.u32(*t);
        out.u32(*f);
    }
    // Magic list, highest priority first.
    let at = out.at();
    out.patch(24, at);
    out.u32(magic.len() as u32);
    let extent_at = out.at();
    out.u32(0);
    let first_at = out.at();
    out.u32(0);
    let entries = out.at();
    out.patch(first_at, entries);
    let mut slots = Vec::new();
    for (priority, ty, matches) in &magic {
        let t = out.strings[ty.as_bytes()];
        slots.push(out.at());
        out.u32(u32::from(*priority));
        out.u32(t);
        out.u32(matches.len() as u32);
        out.u32(0);
    }
    let mut extent = 0;
    for (slot, (_, _, matches)) in slots.into_iter().zip(&magic) {
        let first = write_matchlets(&mut out, matches, &mut extent);
        out.patch(slot + 12, first);
    }
    out.patch(extent_at, extent);
    // Namespaces, icons, generic icons.
    let at = out.at();
    out.patch(28, at);
    out.u32(namespaces.len() as u32);
    for n in &namespaces {
        for v in n {
            out.u32(*v);
        }
    }
    for (i, list) in icon_lists.iter().enumerate() {
        let at = out.at();
        out.patch(if i == 0 { 32 } else { 36 }, at);
        out.u32(list.len() as u32);
        for (t, icon) in list {
            out.u32(*t);
            out.u32(*icon);
        }
    }
    out.buf
}

/// Writes `node`'s array: its leaves (character 0) first, then its
/// children by character, each child's own array after; returns the
/// array's offset and length.
fn write_array(out: &mut Out, node: &Node) -> (u32, u32) {
    let at = out.at();
    let n = node.leaves.len() + node.children.len();
    for _ in 0..n * 3 {
        out.u32(0);
    }
    for (i, &(t, w)) in node.leaves.iter().enumerate() {
        let entry = at + 12 * i as u32;
        out.patch(entry + 4, t);
        out.patch(entry + 8, w);
    }
    for (j, (&c, child)) in node.children.iter().enumerate() {
        let entry = at + 12 * (node.leaves.len() + j) as u32;
        let (first, count) = write_array(out, child);
        out.patch(entry, c);
        out.patch(entry + 4, count);
        out.patch(entry + 8, first);
    }
    (at, n as u32)
}

/// Writes one array of matchlets (and, after it, their children's arrays
/// and values); returns the array's offset.
fn write_matchlets(out: &mut Out, matches: &[Match], extent: &mut u32) -> u32 {
    let at = out.at();
    for _ in 0..matches.len() * 8 {
        out.u32(0);
    }
    for (i, m) in matches.iter().enumerate() {
        let entry = at + 32 * i as u32;
        let value = native_words(&m.value, m.word_size);
        let value_at = out.string(&value);
        let mask_at = match &m.mask {
            Some(mask) => out.string(&native_words(mask, m.word_size)),
            None => 0,
        };
        *extent = (*extent).max(m.start + m.range + m.value.len() as u32);
        let first_child = if m.children.is_empty() {
            0
        } else {
            write_matchlets(out, &m.children, extent)
        };
        for (k, v) in [
            m.start,
            m.range,
            m.word_size,
            m.value.len() as u32,
            value_at,
            mask_at,
            m.children.len() as u32,
            first_child,
        ]
        .into_iter()
        .enumerate()
        {
            out.patch(entry + 4 * k as u32, v);
        }
    }
    at
}

/// Host-order words are kept big-endian in [`Match`]; the cache, read on
/// this host, holds them in its order.
fn native_words(bytes: &[u8], word_size: u32) -> Vec<u8> {
    let mut v = bytes.to_vec();
    if cfg!(target_endian = "little") && word_size > 1 {
        for w in v.chunks_mut(word_size as usize) {
            w.reverse();
        }
    }
    v
}
