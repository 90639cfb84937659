//! The corpus folder's MANIFEST.tsv: one row per file (name, size, sha256,
//! kind, free-form details), and the check that the folder holds exactly
//! what it lists.

use std::path::{Path, PathBuf};

use crate::sha256::sha256_hex;

/// One row of MANIFEST.tsv.
#[derive(Clone, Debug)]
pub struct Row {
    /// File name inside the corpus folder.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// `appimage-type1`, `appimage-type2`, `squashfs`, `iso9660` or `other`.
    pub kind: String,
    /// The free-form `details` column (`key=value; key=value; ...`).
    pub details: String,
}

impl Row {
    /// The value of `key=` in the details column, if present.
    pub fn detail(&self, key: &str) -> Option<&str> {
        // Items are separated by "; ", and some items hold several
        // space-separated `key=value` pairs (`sqfs_v=4.0 block=131072 ...`).
        self.details
            .split(';')
            .flat_map(|item| item.split_whitespace())
            .find_map(|tok| tok.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// Byte offset of the SquashFS payload of a type 2 AppImage.
    pub fn sqfs_offset(&self) -> Option<u64> {
        self.detail("sqfs_offset").and_then(|v| v.parse().ok())
    }

    /// True for files that are malicious or not AppImages at all.
    pub fn is_hostile(&self) -> bool {
        self.details.starts_with("MALICIOUS")
            || self.details.starts_with("NEGATIVE: plain")
            || self.kind == "other"
    }

    /// True when the ISO carries Rock Ridge metadata.
    pub fn rockridge(&self) -> bool {
        self.detail("rockridge") == Some("yes")
    }
}

/// The corpus: its folder and rows.
pub struct Corpus {
    /// The folder named by `APPIMAGEFS_CORPUS`.
    pub dir: PathBuf,
    /// Every row of its MANIFEST.tsv.
    pub rows: Vec<Row>,
}

impl Corpus {
    /// The path of one file of the corpus.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The row of `file`; panics when the manifest does not list it.
    pub fn row(&self, file: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.file == file)
            .unwrap_or_else(|| panic!("{file} is not in MANIFEST.tsv"))
    }

    /// Whether the manifest lists `file`.
    pub fn has(&self, file: &str) -> bool {
        self.rows.iter().any(|r| r.file == file)
    }
}

/// Reads `dir/MANIFEST.tsv` and checks that every file it lists exists with
/// the listed size and SHA-256. Every problem is reported, not just the
/// first.
pub fn load(dir: &Path) -> Result<Corpus, String> {
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("corpus folder {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("corpus folder {} is not a folder", dir.display()));
    }
    let manifest = dir.join("MANIFEST.tsv");
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| format!("{} is empty", manifest.display()))?
        .split('\t')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("{} has no column {name}", manifest.display()))
    };
    let (c_file, c_size, c_sha, c_kind, c_details) = (
        col("file")?,
        col("size_bytes")?,
        col("sha256")?,
        col("kind")?,
        col("details")?,
    );
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let get = |c: usize| cols.get(c).copied().unwrap_or("");
        let Ok(size) = get(c_size).parse::<u64>() else {
            problems.push(format!(
                "MANIFEST.tsv line {}: bad size {:?}",
                n + 2,
                get(c_size)
            ));
            continue;
        };
        rows.push(Row {
            file: get(c_file).to_string(),
            size,
            sha256: get(c_sha).to_ascii_lowercase(),
            kind: get(c_kind).to_string(),
            details: get(c_details).to_string(),
        });
    }
    if rows.is_empty() {
        problems.push("MANIFEST.tsv lists no files".into());
    }
    for r in &rows {
        let p = dir.join(&r.file);
        match std::fs::read(&p) {
            Err(e) => problems.push(format!("{}: {e}", p.display())),
            Ok(data) if data.len() as u64 != r.size => problems.push(format!(
                "{}: {} bytes, MANIFEST.tsv says {}",
                p.display(),
                data.len(),
                r.size
            )),
            Ok(data) => {
                let got = sha256_hex(&data);
                if got != r.sha256 {
                    problems.push(format!(
                        "{}: sha256 {got}, MANIFEST.tsv says {}",
                        p.display(),
                        r.sha256
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(Corpus {
            dir: dir.to_path_buf(),
            rows,
        })
    } else {
        Err(format!(
            "the corpus in {} is incomplete or changed:\n  {}",
            dir.display(),
            problems.join("\n  ")
        ))
    }
}
