//! The DwarFS metadata as a checked inode index: what kind each inode is,
//! its attributes, directory listings, symlink targets and file chunks.
//!
//! The frozen-thrift metadata is decoded by the `dwarfs` crate
//! ([`Metadata::parse`]); everything after that is here, because the
//! crate's own index refuses valid images (it reads `owner_index` as an
//! index into `uids` always, while mkdwarfs 0.5 stores the uid itself there
//! and leaves `uids` empty when every file has one owner), has no link
//! counts and no protection against directory cycles.
//!
//! Inodes are numbered by kind: directories first, then symlinks, regular
//! files with unique contents, files sharing contents, devices, and fifos
//! and sockets. Every index stored in the metadata is checked once here, so
//! the accessors below never index out of range.

use dwarfs::metadata::{Chunk, Metadata, StringTable};

use crate::error::{Error, Result};
use crate::tree::Kind;

/// Inodes an image may hold: bounds the derived tables below (4 bytes each).
pub const MAX_INODES: usize = 1 << 26;

/// A string table: all strings back to back, `index[i]..index[i + 1]`
/// delimiting string `i` (compact tables are FSST-decoded at load).
struct Strings {
    buffer: Vec<u8>,
    index: Vec<u32>,
}

impl Strings {
    /// Bytes the table holds.
    fn memory_bytes(&self) -> usize {
        self.buffer.capacity() + self.index.capacity() * std::mem::size_of::<u32>()
    }

    fn load<S: AsRef<[u8]>>(
        loose: Vec<S>,
        compact: Option<StringTable>,
        what: &str,
    ) -> Result<Strings> {
        let Some(table) = compact else {
            let mut buffer = Vec::new();
            let mut index = vec![0u32];
            for s in &loose {
                buffer.extend_from_slice(s.as_ref());
                index.push(
                    u32::try_from(buffer.len())
                        .map_err(|_| Error::corrupt(format!("DwarFS {what} table too large")))?,
                );
            }
            return Ok(Strings { buffer, index });
        };
        let bad = || Error::corrupt(format!("DwarFS {what} table: bad index"));
        let mut index = table.index;
        let buffer: Vec<u8> = table.buffer.into();
        if table.packed_index {
            let mut sum = 0u32;
            for v in &mut index {
                let len = *v;
                *v = sum;
                sum = sum.checked_add(len).ok_or_else(bad)?;
            }
            index.push(sum);
        }
        if index.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad());
        }
        let Some(symtab) = table.symtab else {
            if index.last().is_some_and(|&l| l as usize > buffer.len()) {
                return Err(bad());
            }
            return Ok(Strings { buffer, index });
        };
        let decoder = dwarfs::fsst::Decoder::parse(&symtab)
            .map_err(|e| Error::corrupt(format!("DwarFS {what} symbol table: {e}")))?;
        let mut out = Vec::with_capacity(buffer.len().saturating_mul(2).min(64 << 20));
        let mut out_index = Vec::with_capacity(index.len());
        out_index.push(0u32);
        for w in index.windows(2) {
            let encoded = buffer.get(w[0] as usize..w[1] as usize).ok_or_else(bad)?;
            let at = out.len();
            out.resize(at + dwarfs::fsst::Decoder::max_decode_len(encoded.len()), 0);
            let n = decoder
                .decode_into(encoded, &mut out[at..])
                .map_err(|e| Error::corrupt(format!("DwarFS {what} table: {e}")))?;
            out.truncate(at + n);
            out_index.push(
                u32::try_from(out.len())
                    .map_err(|_| Error::corrupt(format!("DwarFS {what} table too large")))?,
            );
        }
        Ok(Strings {
            buffer: out,
            index: out_index,
        })
    }

    fn len(&self) -> usize {
        self.index.len().saturating_sub(1)
    }

    fn get(&self, i: u32) -> Option<&[u8]> {
        let start = *self.index.get(i as usize)? as usize;
        let end = *self.index.get(i as usize + 1)? as usize;
        self.buffer.get(start..end)
    }
}

/// Where each kind of inode starts (inode numbers are grouped by kind).
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    symlinks: u32,
    unique: u32,
    shared: u32,
    devices: u32,
    ipc: u32,
    unique_count: u32,
}

/// The checked metadata of one image.
pub struct Index {
    m: Metadata,
    names: Strings,
    symlinks: Strings,
    tally: Tally,
    time_base: u64,
    time_unit: u64,
    /// `uids`/`gids` hold the ids themselves rather than indexes (mkdwarfs
    /// 0.5 with a single owner leaves the tables empty).
    legacy_uid: bool,
    legacy_gid: bool,
    /// Link count of every inode.
    nlink: Vec<u32>,
    /// For each directory, the one entry that names it (0 for the root and
    /// unreachable ones): a second name for a directory is ignored, so
    /// the tree can have no cycles.
    dir_entry: Vec<u32>,
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::corrupt(format!("DwarFS metadata: {what}")))
    }
}

impl Index {
    /// Bytes the unpacked metadata holds (the tables of [`Metadata`] that
    /// grow with the image, the string tables, link counts and directory
    /// back-references).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of_val;
        let m = &self.m;
        #[allow(deprecated)]
        let entry_table = size_of_val(m.entry_table.as_slice());
        size_of_val(m.chunks.as_slice())
            + size_of_val(m.directories.as_slice())
            + size_of_val(m.inodes.as_slice())
            + size_of_val(m.chunk_table.as_slice())
            + entry_table
            + size_of_val(m.symlink_table.as_slice())
            + size_of_val(m.uids.as_slice())
            + size_of_val(m.gids.as_slice())
            + size_of_val(m.modes.as_slice())
            + m.devices.as_ref().map_or(0, |d| size_of_val(d.as_slice()))
            + m.dir_entries
                .as_ref()
                .map_or(0, |d| size_of_val(d.as_slice()))
            + m.shared_files_table
                .as_ref()
                .map_or(0, |d| size_of_val(d.as_slice()))
            + self.names.memory_bytes()
            + self.symlinks.memory_bytes()
            + size_of_val(self.nlink.as_slice())
            + size_of_val(self.dir_entry.as_slice())
    }

    /// Checks and unpacks decoded metadata.
    pub fn new(mut m: Metadata) -> Result<Index> {
        if let Some(features) = m.features.as_ref().filter(|f| !f.is_empty()) {
            let names: Vec<String> = features
                .0
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            return Err(Error::Unsupported(format!(
                "DwarFS feature {} is not supported",
                names.join(", ")
            )));
        }
        check(m.inodes.len() <= MAX_INODES, "too many inodes")?;
        check(!m.inodes.is_empty(), "no inodes")?;
        let options = m.options.clone().unwrap_or_default();
        let time_unit = u64::from(options.time_resolution_sec.unwrap_or(1));
        check(time_unit > 0, "time resolution 0")?;
        let time_base = m
            .timestamp_base
            .checked_mul(time_unit)
            .ok_or_else(|| Error::corrupt("DwarFS metadata: timestamp base overflows"))?;
        if options.packed_chunk_table {
            let mut sum = 0u32;
            for c in &mut m.chunk_table {
                sum = sum
                    .checked_add(*c)
                    .ok_or_else(|| Error::corrupt("DwarFS metadata: chunk table overflows"))?;
                *c = sum;
            }
        }
        if options.packed_directories {
            let mut sum = 0u32;
            for d in &mut m.directories {
                sum = sum
                    .checked_add(d.first_entry)
                    .ok_or_else(|| Error::corrupt("DwarFS metadata: directories overflow"))?;
                d.first_entry = sum;
            }
        }
        if options.packed_shared_files_table {
            if let Some(packed) = m.shared_files_table.take() {
                let mut unpacked = Vec::new();
                for (group, &count) in packed.iter().enumerate() {
                    for _ in 0..count.saturating_add(2) {
                        check(
                            unpacked.len() < m.inodes.len(),
                            "shared files table too long",
                        )?;
                        unpacked.push(group as u32);
                    }
                }
                m.shared_files_table = Some(unpacked);
            }
        }
        let dir_entries = m.dir_entries.take().unwrap_or_default();
        check(!dir_entries.is_empty(), "no directory entries")?;
        m.dir_entries = Some(dir_entries);

        let inodes = m.inodes.len();
        let dirs = m.directories.len().saturating_sub(1);
        check(dirs >= 1, "no root directory")?;
        let files = m.chunk_table.len().saturating_sub(1);
        let shared = m.shared_files_table.as_ref().map_or(0, |v| v.len());
        let shared_stores = m
            .shared_files_table
            .as_ref()
            .and_then(|v| v.last())
            .map_or(0, |&l| l as usize + 1);
        check(
            m.shared_files_table
                .as_ref()
                .is_none_or(|v| v.windows(2).all(|w| w[0] <= w[1])),
            "shared files table not sorted",
        )?;
        let unique = files
            .checked_sub(shared_stores)
            .ok_or_else(|| Error::corrupt("DwarFS metadata: bad shared file count"))?;
        let devices = m.devices.as_ref().map_or(0, |d| d.len());
        let symlinks_at = dirs;
        let unique_at = symlinks_at + m.symlink_table.len();
        let shared_at = unique_at + unique;
        let devices_at = shared_at + shared;
        let ipc_at = devices_at + devices;
        check(ipc_at <= inodes, "inode table too short")?;
        let tally = Tally {
            symlinks: symlinks_at as u32,
            unique: unique_at as u32,
            shared: shared_at as u32,
            devices: devices_at as u32,
            ipc: ipc_at as u32,
            unique_count: unique as u32,
        };

        check(
            m.compact_names.is_none() || m.names.is_empty(),
            "both name tables",
        )?;
        let names = Strings::load(std::mem::take(&mut m.names), m.compact_names.take(), "name")?;
        let symlinks = Strings::load(
            std::mem::take(&mut m.symlinks),
            m.compact_symlinks.take(),
            "symlink",
        )?;

        let block_size = m.block_size;
        check(
            block_size.is_power_of_two() && block_size <= 1 << 30,
            "bad block size",
        )?;
        for c in &m.chunks {
            check(
                c.offset
                    .checked_add(c.size)
                    .is_some_and(|e| e <= block_size),
                "chunk passes the end of its block",
            )?;
        }
        let chunk_count = m.chunks.len() as u32;
        check(
            m.chunk_table.windows(2).all(|w| w[0] <= w[1])
                && m.chunk_table.iter().all(|&c| c <= chunk_count),
            "bad chunk table",
        )?;
        let legacy_uid = m.uids.is_empty();
        let legacy_gid = m.gids.is_empty();
        let (uids, gids, modes) = (m.uids.len(), m.gids.len(), m.modes.len());
        for ino in &m.inodes {
            check(
                legacy_uid || (ino.owner_index as usize) < uids,
                "owner index out of range",
            )?;
            check(
                legacy_gid || (ino.group_index as usize) < gids,
                "group index out of range",
            )?;
            check((ino.mode_index as usize) < modes, "mode index out of range")?;
        }
        for &t in &m.symlink_table {
            check((t as usize) < symlinks.len(), "symlink index out of range")?;
        }
        let entries = m.dir_entries.as_deref().unwrap_or(&[]);
        for d in m.directories.windows(2) {
            check(
                d[0].first_entry >= 1 && d[0].first_entry <= d[1].first_entry,
                "directory entries out of order",
            )?;
        }
        check(
            m.directories
                .last()
                .is_some_and(|d| d.first_entry as usize <= entries.len()),
            "directory entries out of range",
        )?;
        for e in entries.iter().skip(1) {
            check((e.inode_num as usize) < inodes, "entry inode out of range")?;
            check(
                (e.name_index as usize) < names.len(),
                "entry name out of range",
            )?;
        }
        check(entries[0].inode_num == 0, "root entry is not inode 0")?;

        let mut index = Index {
            m,
            names,
            symlinks,
            tally,
            time_base,
            time_unit,
            legacy_uid,
            legacy_gid,
            nlink: Vec::new(),
            dir_entry: Vec::new(),
        };
        index.link_counts(dirs, inodes)?;
        Ok(index)
    }

    /// Walks the tree from the root once: each directory keeps the first
    /// entry that reaches it, link counts count the names of each inode.
    fn link_counts(&mut self, dirs: usize, inodes: usize) -> Result<()> {
        let mut nlink = vec![0u32; inodes];
        let mut dir_entry = vec![0u32; dirs];
        let mut queue = vec![0u32];
        nlink[0] = 2;
        while let Some(dir) = queue.pop() {
            for e in self.entry_range(dir)? {
                let ino = self.entry(e)?.inode_num;
                if (ino as usize) < dirs {
                    if ino == 0 || dir_entry[ino as usize] != 0 {
                        continue;
                    }
                    dir_entry[ino as usize] = e;
                    nlink[ino as usize] = 2;
                    nlink[dir as usize] = nlink[dir as usize].saturating_add(1);
                    queue.push(ino);
                } else if let Some(n) = nlink.get_mut(ino as usize) {
                    *n = n.saturating_add(1);
                }
            }
        }
        self.nlink = nlink;
        self.dir_entry = dir_entry;
        Ok(())
    }

    fn entry(&self, e: u32) -> Result<&dwarfs::metadata::DirEntry> {
        self.m
            .dir_entries
            .as_deref()
            .and_then(|d| d.get(e as usize))
            .ok_or_else(|| Error::corrupt("DwarFS directory entry out of range"))
    }

    fn entry_range(&self, dir: u32) -> Result<std::ops::Range<u32>> {
        let d = &self.m.directories;
        match (d.get(dir as usize), d.get(dir as usize + 1)) {
            (Some(a), Some(b)) => Ok(a.first_entry..b.first_entry),
            _ => Err(Error::NotDir),
        }
    }

    /// Number of inodes.
    pub fn inode_count(&self) -> usize {
        self.m.inodes.len()
    }

    /// Block size of the image.
    pub fn block_size(&self) -> u32 {
        self.m.block_size
    }

    /// The kind of inode `ino` (which must be < [`inode_count`](Self::inode_count)).
    pub fn kind(&self, ino: u32) -> Result<Kind> {
        let t = &self.tally;
        let mode = self.mode(ino)?;
        let kind = match mode & 0o170000 {
            0o040000 => Kind::Dir,
            0o100000 => Kind::File,
            0o120000 => Kind::Symlink,
            0o060000 => Kind::BlockDev,
            0o020000 => Kind::CharDev,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => {
                return Err(Error::corrupt(format!(
                    "DwarFS inode {ino}: bad mode {mode:o}"
                )))
            }
        };
        let group = if ino < t.symlinks {
            Kind::Dir
        } else if ino < t.unique {
            Kind::Symlink
        } else if ino < t.devices {
            Kind::File
        } else if ino < t.ipc {
            if matches!(kind, Kind::BlockDev | Kind::CharDev) {
                kind
            } else {
                Kind::CharDev
            }
        } else if matches!(kind, Kind::Fifo | Kind::Socket) {
            kind
        } else {
            Kind::Fifo
        };
        if group != kind {
            return Err(Error::corrupt(format!(
                "DwarFS inode {ino}: its mode says {kind:?}, its number {group:?}"
            )));
        }
        Ok(kind)
    }

    fn mode(&self, ino: u32) -> Result<u32> {
        let data = self
            .m
            .inodes
            .get(ino as usize)
            .ok_or_else(|| Error::corrupt(format!("DwarFS inode {ino} out of range")))?;
        Ok(self
            .m
            .modes
            .get(data.mode_index as usize)
            .copied()
            .unwrap_or(0))
    }

    /// Permission bits, owner, group, mtime and link count of `ino`.
    pub fn basics(&self, ino: u32) -> Result<(u16, u32, u32, i64, u32)> {
        let mode = self.mode(ino)?;
        let data = &self.m.inodes[ino as usize];
        let uid = if self.legacy_uid {
            data.owner_index
        } else {
            self.m
                .uids
                .get(data.owner_index as usize)
                .copied()
                .unwrap_or(0)
        };
        let gid = if self.legacy_gid {
            data.group_index
        } else {
            self.m
                .gids
                .get(data.group_index as usize)
                .copied()
                .unwrap_or(0)
        };
        let mtime = u64::from(data.mtime_offset)
            .saturating_mul(self.time_unit)
            .saturating_add(self.time_base);
        let nlink = self.nlink.get(ino as usize).copied().unwrap_or(1).max(1);
        Ok((
            (mode & 0o7777) as u16,
            uid,
            gid,
            i64::try_from(mtime).unwrap_or(i64::MAX),
            nlink,
        ))
    }

    /// The listing of directory `dir`: (name, inode) in stored order
    /// (sorted by name). A name that is empty, `.`, `..`, holds `/` or NUL,
    /// or is not greater than the one before makes the listing corrupt; a
    /// second name for a directory is left out.
    pub fn list(&self, dir: u32) -> Result<Vec<(&[u8], u32)>> {
        let range = self.entry_range(dir)?;
        let mut out = Vec::with_capacity(range.len().min(1 << 16));
        for e in range {
            let entry = self.entry(e)?;
            let name = self
                .names
                .get(entry.name_index)
                .ok_or_else(|| Error::corrupt("DwarFS name out of range"))?;
            if name.is_empty()
                || name == b"."
                || name == b".."
                || name.iter().any(|&b| b == b'/' || b == 0)
            {
                return Err(Error::corrupt(format!(
                    "DwarFS directory {dir} holds a forbidden name {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
            if out
                .last()
                .is_some_and(|(prev, _): &(&[u8], u32)| *prev >= name)
            {
                return Err(Error::corrupt(format!(
                    "DwarFS directory {dir} is not sorted by name"
                )));
            }
            if !self.names_dir_once(entry.inode_num, e) {
                continue;
            }
            out.push((name, entry.inode_num));
        }
        Ok(out)
    }

    /// Finds `name` in directory `dir` by binary search.
    pub fn find(&self, dir: u32, name: &[u8]) -> Result<Option<u32>> {
        let range = self.entry_range(dir)?;
        let (mut lo, mut hi) = (range.start, range.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entry = self.entry(mid)?;
            let here = self
                .names
                .get(entry.name_index)
                .ok_or_else(|| Error::corrupt("DwarFS name out of range"))?;
            match here.cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Ok(self
                        .names_dir_once(entry.inode_num, mid)
                        .then_some(entry.inode_num))
                }
            }
        }
        Ok(None)
    }

    /// False when entry `e` is a second name of directory `ino`.
    fn names_dir_once(&self, ino: u32, e: u32) -> bool {
        match self.dir_entry.get(ino as usize) {
            Some(&first) => first == e,
            None => true,
        }
    }

    /// The target of symlink `ino`.
    pub fn symlink(&self, ino: u32) -> Result<&[u8]> {
        let i = ino
            .checked_sub(self.tally.symlinks)
            .filter(|_| ino < self.tally.unique)
            .ok_or(Error::Invalid)?;
        let t = self.m.symlink_table.get(i as usize).ok_or(Error::Invalid)?;
        self.symlinks
            .get(*t)
            .ok_or_else(|| Error::corrupt("DwarFS symlink target out of range"))
    }

    /// The device number of device `ino` (Linux `makedev` encoding).
    pub fn device(&self, ino: u32) -> u64 {
        ino.checked_sub(self.tally.devices)
            .filter(|_| ino < self.tally.ipc)
            .and_then(|i| self.m.devices.as_ref()?.get(i as usize).copied())
            .unwrap_or(0)
    }

    /// The chunks of regular file `ino`.
    pub fn chunks(&self, ino: u32) -> Result<&[Chunk]> {
        let t = &self.tally;
        if ino < t.unique || ino >= t.devices {
            return Err(Error::Invalid);
        }
        let store = if ino >= t.shared {
            let shared = self.m.shared_files_table.as_deref().unwrap_or(&[]);
            let s = shared
                .get((ino - t.shared) as usize)
                .ok_or_else(|| Error::corrupt("DwarFS shared file out of range"))?;
            s.checked_add(t.unique_count)
                .ok_or_else(|| Error::corrupt("DwarFS shared file out of range"))?
        } else {
            ino - t.unique
        };
        let table = &self.m.chunk_table;
        match (table.get(store as usize), table.get(store as usize + 1)) {
            (Some(&a), Some(&b)) => self
                .m
                .chunks
                .get(a as usize..b as usize)
                .ok_or_else(|| Error::corrupt("DwarFS chunk table out of range")),
            _ => Err(Error::corrupt(
                "DwarFS file out of range of the chunk table",
            )),
        }
    }

    /// The mkdwarfs version that wrote the image, if recorded.
    pub fn creator(&self) -> Option<String> {
        self.m
            .dwarfs_version
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}
