//! Reading the source folder: which files are AppImages, and why the others
//! are not.

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::detect::{detect, AppImage};
use crate::error::Error;

/// Upper bound on directory entries considered in one scan, so a folder
/// flooded with files cannot exhaust memory.
pub const MAX_ENTRIES: usize = 100_000;

/// A file in the source folder that is a usable AppImage.
pub struct Found {
    /// File name (raw bytes).
    pub file_name: Vec<u8>,
    /// Absolute path.
    pub path: PathBuf,
    /// The open file (kept open, so a later rename or delete of the file
    /// does not take the data away from running apps).
    pub file: File,
    /// Detection result.
    pub detected: AppImage,
    /// Modification time (seconds).
    pub mtime: i64,
}

/// One file that was skipped, and why.
pub struct Skipped {
    /// Path of the file.
    pub path: PathBuf,
    /// One-line reason.
    pub reason: String,
}

/// Examines one path: `Ok` for a usable AppImage, `Err` with the reason
/// otherwise.
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

/// Scans `dir` (not recursively), sorted by file name. Hidden files (names
/// starting with `.`) are ignored silently: they are how copy tools stage
/// partial files.
pub fn scan(dir: &Path) -> std::io::Result<(Vec<Found>, Vec<Skipped>)> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)?
        .take(MAX_ENTRIES)
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().as_bytes().starts_with(b"."))
        .map(|e| e.path())
        .collect();
    names.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for path in names {
        match examine(&path) {
            Ok(f) => found.push(f),
            Err(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    Ok((found, skipped))
}
