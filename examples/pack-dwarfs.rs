//! Packs a directory as a DwarFS image, for the DwarFS rows of
//! `scripts/bench-cold-start.sh` (mkdwarfs is not packaged for Debian).
//!
//! Written on the `dwarfs-enc` crate, a dev-dependency (GPL-3.0-only): this
//! example is never part of the appimagefs binary or library. Defaults
//! follow mkdwarfs's: 16 MiB blocks (`-S 24`), zstd at level 22; `--compression
//! lzma` uses xz at level 9. Content is deduplicated in content-defined
//! chunks; unlike mkdwarfs, files are laid out in directory order (no
//! similarity ordering). Directories, regular files, symlinks and hard
//! links are packed with their permission bits (no setuid/setgid/sticky),
//! owners and mtimes; other file types are skipped with a warning, and a
//! name or symlink target that is not UTF-8 is an error.
//!
//! ```text
//! cargo run --release --example pack-dwarfs -- DIR OUT.dwarfs \
//!     [--compression zstd|lzma|none] [--level N] [--block-size-bits 24]
//! ```

use std::collections::HashMap;
use std::fs;
use std::num::NonZero;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use dwarfs_enc::chunker::{BasicChunker, CdcChunker, Chunker};
use dwarfs_enc::metadata::{Builder, Config, DirId, InodeMetadata, LinkableInodeId};
use dwarfs_enc::section::{CompressParam, Writer};

/// Block compression.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Compression {
    /// zstd (mkdwarfs's default).
    Zstd,
    /// xz/LZMA2 (mkdwarfs -l8/-l9).
    Lzma,
    /// Stored uncompressed.
    None,
}

/// Packs DIR into the DwarFS image OUT.
#[derive(Debug, Parser)]
struct Cli {
    /// Directory to pack.
    dir: PathBuf,
    /// Image to write (replaced if it exists).
    out: PathBuf,
    /// Block compression.
    #[arg(long, value_enum, default_value = "zstd")]
    compression: Compression,
    /// Compression level (default: 22 for zstd, 9 for lzma).
    #[arg(long)]
    level: Option<i32>,
    /// Block size as a power of two (mkdwarfs -S); 24 = 16 MiB.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(12..=30))]
    block_size_bits: u8,
}

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let started = Instant::now();
    let compress = match cli.compression {
        Compression::Zstd => CompressParam::Zstd(cli.level.unwrap_or(22)),
        Compression::Lzma => CompressParam::Lzma(u32::try_from(cli.level.unwrap_or(9))?),
        Compression::None => CompressParam::None,
    };
    let mut config = Config::default();
    config.block_size(NonZero::new(1u32 << cli.block_size_bits).ok_or("block size")?);
    let root_meta = fs::metadata(&cli.dir)?;
    let mut builder = Builder::new_with_config(&config, &InodeMetadata::from(&root_meta));
    let out = fs::File::create(&cli.out)?;
    let writer = Writer::new(std::io::BufWriter::new(out))?;
    let mut chunker = CdcChunker::new(BasicChunker::new(writer, builder.block_size(), compress));
    let root = builder.root();
    let files = pack_dir(&mut builder, &mut chunker, root, &cli.dir)?;
    let deduplicated = chunker.deduplicated_bytes();
    let mut writer = chunker.finish()?;
    writer.write_metadata_sections(&builder.finish()?, compress)?;
    writer.finish()?;
    let size = fs::metadata(&cli.out)?.len();
    eprintln!(
        "{}: {files} files, {size} bytes ({compress:?}, {} KiB blocks, {deduplicated} bytes deduplicated) in {:.1?}",
        cli.out.display(),
        (1u32 << cli.block_size_bits) >> 10,
        started.elapsed()
    );
    Ok(())
}

/// Adds the entries of `path` under `dir` (depth first, sorted by name so
/// that the image does not depend on readdir order); returns the number of
/// regular files packed.
fn pack_dir(
    builder: &mut Builder,
    chunker: &mut dyn Chunker,
    root: DirId,
    path: &Path,
) -> Result<u64, Error> {
    let mut links: HashMap<(u64, u64), LinkableInodeId> = HashMap::new();
    let mut files = 0;
    let mut stack = vec![(root, path.to_owned())];
    while let Some((dir, path)) = stack.pop() {
        let mut entries = fs::read_dir(&path)?.collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("{}: name is not UTF-8", entry.path().display()))?;
            let meta = fs::symlink_metadata(entry.path())?;
            let inode = InodeMetadata::from(&meta);
            let kind = meta.file_type();
            if kind.is_dir() {
                let sub = builder.put_dir(dir, name, &inode)?;
                stack.push((sub, entry.path()));
            } else if kind.is_file() {
                let key = (meta.dev(), meta.ino());
                if let Some(&id) = links.get(&key) {
                    builder.put_hard_link(dir, name, id)?;
                    continue;
                }
                let chunks = chunker.put_reader(&mut fs::File::open(entry.path())?)?;
                let id = builder.put_file(dir, name, &inode, chunks)?;
                if meta.nlink() > 1 {
                    links.insert(key, id.into());
                }
                files += 1;
            } else if kind.is_symlink() {
                let target = fs::read_link(entry.path())?;
                let target = target.to_str().ok_or_else(|| {
                    format!("{}: symlink target is not UTF-8", entry.path().display())
                })?;
                builder.put_symlink(dir, name, &inode, target)?;
            } else {
                eprintln!(
                    "skipped (not a file, directory or symlink): {}",
                    entry.path().display()
                );
            }
        }
    }
    Ok(files)
}
