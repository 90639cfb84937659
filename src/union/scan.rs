//! Reading the source folder: which files are there, which of them are
//! AppImages, and why the others are not.

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
    /// Its current version (symlinks followed); `None` when it is not a
    /// regular file (directories, fifos, dangling links are never AppImages).
    pub version: Option<FileVersion>,
}

/// A file in the source folder that is a usable AppImage.
pub struct Found {
    /// File name (raw bytes).
    pub file_name: Vec<u8>,
    /// Absolute path.
    pub path: PathBuf,
    /// The open file (kept open, so a later rename or delete of the file
    /// does not take the data away from running apps).
    pub file: File,
    /// Detection result (including the file version it describes).
    pub detected: AppImage,
    /// Modification time (seconds).
    pub mtime: i64,
}

/// Lists `dir` (not recursively), sorted by file name. Hidden files (names
/// starting with `.`) are left out: they are how copy tools stage partial
/// files.
pub fn list(dir: &Path) -> std::io::Result<Vec<Listed>> {
    let mut listed: Vec<Listed> = fs::read_dir(dir)?
        .take(MAX_ENTRIES)
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().as_bytes().starts_with(b"."))
        .map(|e| {
            let path = e.path();
            let version = fs::metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| FileVersion::from_metadata(&m));
            Listed {
                file_name: e.file_name().as_bytes().to_vec(),
                path,
                version,
            }
        })
        .collect();
    listed.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(listed)
}

/// Examines one path: `Ok` for a usable AppImage, `Err` with a one-line
/// reason otherwise.
pub fn examine(path: &Path) -> std::result::Result<Found, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
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
        file,
        detected,
        mtime: meta.mtime(),
    })
}
