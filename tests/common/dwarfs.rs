//! DwarFS test images: a folder packed with the `dwarfs-enc` crate
//! (GPL-3.0, a dev-dependency only: never part of the appimagefs binary),
//! and wrapped as a type 2 AppImage as uruntime does (runtime, then the
//! image).
//!
//! dwarfs-enc stores permission bits only (no setuid, setgid, sticky) and
//! no sockets; the trees packed here avoid both. The reader's own tests
//! cover those with edited metadata.

use std::collections::HashMap;
use std::fs;
use std::num::NonZero;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use dwarfs_enc::chunker::{BasicChunker, Chunker};
use dwarfs_enc::metadata::{Builder, Config, DirId, InodeMetadata};
use dwarfs_enc::section::{CompressParam, Writer};

/// Packs the folder `src` into DwarFS image bytes with `block_size`-byte
/// blocks compressed with `compress`.
pub fn pack_dwarfs(src: &Path, block_size: u32, compress: CompressParam) -> Vec<u8> {
    let mut config = Config::default();
    config.block_size(NonZero::new(block_size).expect("block size"));
    let root_meta = InodeMetadata::from(&fs::metadata(src).expect("stat source"));
    let mut builder = Builder::new_with_config(&config, &root_meta);
    let writer = Writer::new(Vec::new()).expect("section writer");
    let mut chunker = BasicChunker::new(writer, builder.block_size(), compress);
    let root = builder.root();
    let mut links = HashMap::new();
    add_dir(&mut builder, &mut chunker, &mut links, src, root);
    let mut writer = chunker.finish().expect("finish data");
    let meta = builder.finish().expect("finish metadata");
    writer
        .write_metadata_sections(&meta, compress)
        .expect("write metadata");
    writer.finish().expect("finish image")
}

/// Adds the entries of `dir` under `parent`; `links` maps (dev, ino) of
/// files seen to their image inode, for hard links.
fn add_dir(
    b: &mut Builder,
    chunker: &mut BasicChunker<Vec<u8>>,
    links: &mut HashMap<(u64, u64), dwarfs_enc::metadata::FileId>,
    dir: &Path,
    parent: DirId,
) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read source dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 test names");
        let st = fs::symlink_metadata(&path).expect("lstat");
        let meta = InodeMetadata::from(&st);
        let ft = st.file_type();
        if ft.is_dir() {
            let id = b.put_dir(parent, name, &meta).expect("put dir");
            add_dir(b, chunker, links, &path, id);
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            b.put_symlink(parent, name, &meta, target.to_str().expect("UTF-8 target"))
                .expect("put symlink");
        } else if ft.is_file() {
            if let Some(&id) = links.get(&(st.dev(), st.ino())) {
                b.put_hard_link(parent, name, id).expect("put hard link");
                continue;
            }
            let data = fs::read(&path).expect("read source file");
            let chunks = chunker.put_bytes(&data).expect("put data");
            let id = b.put_file(parent, name, &meta, chunks).expect("put file");
            links.insert((st.dev(), st.ino()), id);
        } else if ft.is_fifo() {
            b.put_fifo(parent, name, &meta).expect("put fifo");
        } else if ft.is_char_device() {
            b.put_char_device(parent, name, &meta, st.rdev())
                .expect("put char device");
        } else if ft.is_block_device() {
            b.put_block_device(parent, name, &meta, st.rdev())
                .expect("put block device");
        } else {
            panic!("cannot pack {} into a DwarFS test image", path.display());
        }
    }
}

/// Writes `image` behind the stand-in type 2 runtime to `out`.
pub fn wrap_dwarfs_as_appimage(image: &[u8], out: &Path) {
    let mut data = super::type2_runtime().to_vec();
    data.extend_from_slice(image);
    fs::write(out, data).expect("write AppImage");
    super::set_mode(out, 0o755);
}
