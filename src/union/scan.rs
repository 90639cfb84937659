//! Reading the source folder: which files are there, which of them are
//! AppImages, and why the others are not.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use super::access::Access;
use crate::backing::FileVersion;
use crate::detect::{detect, AppImage};
use crate::error::Error;

/// Upper bound on directory entries considered in one scan, so a folder
/// flooded with files cannot exhaust memory.
pub const MAX_ENTRIES: usize = 100_000;

/// A file in the source folder, before detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Absolute path.
    pub path: PathBuf,
    /// File name (raw bytes).
    pub file_name: Vec<u8>,
    /// What `stat` (symlinks followed) says of it now.
    pub stat: Stat,
}

/// What `stat` of a listed name found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stat {
    /// A regular file in this version, and who may read it.
    File(FileVersion, Access),
    /// Not a regular file (directories, fifos, dangling links are never
    /// AppImages), or gone since the listing.
    NotFile,
    /// `stat` failed otherwise (an I/O error, a network filesystem's
    /// hiccup): unknown for now, so whatever is mounted from it stays.
    Failed(String),
}

impl Stat {
    /// The version, for a regular file.
    pub fn version(&self) -> Option<FileVersion> {
        match self {
            Stat::File(v, _) => Some(*v),
            _ => None,
        }
    }

    /// What `stat` of `path` (symlinks followed) says now.
    pub(super) fn of(path: &Path) -> Stat {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => {
                Stat::File(FileVersion::from_metadata(&m), Access::read(path, &m))
            }
            Ok(_) => Stat::NotFile,
            Err(e) if is_absent(&e) => Stat::NotFile,
            Err(e) => Stat::Failed(e.to_string()),
        }
    }
}

/// True for errors that mean "nothing is there" rather than "could not
/// look": the name (or a symlink's target) does not exist.
pub fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// A file in the source folder that is a usable AppImage.
pub struct Found {
    /// File name (raw bytes).
    pub file_name: Vec<u8>,
    /// Absolute path.
    pub path: PathBuf,
    /// Detection result (including the file version it describes).
    pub detected: AppImage,
    /// Modification time (seconds).
    pub mtime: i64,
    /// Who may read the file itself.
    pub access: Access,
}

/// Lists `dir` (not recursively), sorted by file name. Hidden files (names
/// starting with `.`) are left out: they are how copy tools stage partial
/// files. Fails when reading the folder fails at any point.
pub fn list(dir: &Path) -> std::io::Result<Vec<Listed>> {
    let mut entries = fs::read_dir(dir)?;
    let mut listed = Vec::new();
    for entry in entries.by_ref().take(MAX_ENTRIES) {
        // An entry that cannot be read fails the whole listing: a partial
        // one would look like files were removed.
        let entry = entry?;
        let file_name = entry.file_name().as_bytes().to_vec();
        if file_name.starts_with(b".") {
            continue;
        }
        let path = entry.path();
        listed.push(Listed {
            stat: Stat::of(&path),
            file_name,
            path,
        });
    }
    if entries.next().is_some() {
        crate::log::warn(format_args!(
            "{} holds more than {MAX_ENTRIES} entries; only the first {MAX_ENTRIES} read are considered",
            dir.display()
        ));
    }
    listed.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(listed)
}

/// Opens `path` for reading without blocking (a fifo or device swapped in
/// under the name cannot stall the caller) and checks that what was opened
/// is a regular file; `Err` with a one-line reason otherwise. Shared by the
/// mount's scan and `inspect`.
pub fn open_regular(path: &Path) -> std::result::Result<(fs::File, fs::Metadata), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    Ok((file, meta))
}

/// Examines one path: `Ok` for a usable AppImage, `Err` with a one-line
/// reason otherwise. The file is opened without blocking (a fifo swapped in
/// under the name cannot stall the scan) and judged by what was opened, not
/// by a separate `stat` of the name; it is closed again (the mount opens it
/// on use through [`crate::fd_pool`], checking it is the same version). Symlinks are followed, so an admin may
/// link AppImages kept elsewhere into the folder.
pub fn examine(path: &Path) -> std::result::Result<Found, String> {
    let (file, meta) = open_regular(path)?;
    let detected = detect(&file).map_err(|e| match e {
        Error::Corrupt(why) => why,
        other => other.to_string(),
    })?;
    Ok(Found {
        file_name: path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default(),
        path: path.to_path_buf(),
        detected,
        mtime: meta.mtime(),
        access: Access::read(path, &meta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_rejected_without_blocking() {
        let dir = crate::test_support::TempDir::new("scan-fifo");
        let fifo = dir.path().join("x.AppImage");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(examine(&fifo).err().as_deref(), Some("not a regular file"));
    }
}
