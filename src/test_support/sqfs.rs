//! Bare SquashFS images made with `mksquashfs`: the edge-case tree in every
//! compressor, a symlinked folder (compressed or not), a directory spanning
//! several metadata blocks, and a path-traversal image patched by hand.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::tree::{self, Node};
use super::{cached, run, text, TempDir};

/// Builds `out` from `src` with `mksquashfs` and the extra options.
pub fn mksquashfs(src: &Path, out: &Path, extra: &[&str]) {
    run(Command::new("mksquashfs")
        .arg(src)
        .arg(out)
        .args(["-noappend", "-quiet", "-no-progress", "-processors", "1"])
        .args(extra));
}

/// The tree of [`edge_tree`]: a 255-byte name, a broken symlink, a sparse
/// 64 KiB file, modes 400/644/777, a symlink into a subfolder; 13 inodes.
pub fn write_edge_tree(root: &Path) {
    let long = "A".repeat(255);
    tree::write(
        root,
        &[
            ("1/TEST", Node::File(b"test".to_vec(), 0o644)),
            ("2/another dir", Node::Dir(0o755)),
            ("2/text", Node::File(text(1687, 5), 0o644)),
            (long.as_str(), Node::File(b"A".to_vec(), 0o644)),
            ("broken_symlink", Node::Link("I_DONT_EXIST".into())),
            ("perm_400", Node::File(Vec::new(), 0o400)),
            ("perm_644", Node::File(Vec::new(), 0o644)),
            ("perm_777", Node::File(Vec::new(), 0o777)),
            ("symlink", Node::Link("2/text".into())),
        ],
    );
    let sparse = fs::File::create(root.join("2/another dir/sparse_file")).unwrap();
    sparse.set_len(65536).unwrap();
}

/// `tree_<comp>.sqfs`: the tree of [`write_edge_tree`] compressed with
/// `comp` (`gzip`, `xz`, `lzo`, `lz4`, `zstd`, `lzma`).
pub fn edge_tree(comp: &str) -> std::path::PathBuf {
    cached(&format!("tree_{comp}.sqfs"), |out| {
        let src = TempDir::new("edge-tree");
        write_edge_tree(src.path());
        mksquashfs(src.path(), out, &["-comp", comp]);
    })
}

/// `folder-symlink.<comp>.squashfs`: `foo/fighter/ufo` (mode 700, owned by
/// 1000:1000) and the symlink `foo/jet -> fighter`, every file in a
/// fragment. With `None`, nothing is compressed (inodes, directories,
/// data, fragments), so names can be found and patched in the bytes.
pub fn folder_symlink(comp: Option<&str>) -> std::path::PathBuf {
    let tag = comp.unwrap_or("no-compression");
    cached(&format!("folder-symlink.{tag}.squashfs"), |out| {
        let src = TempDir::new("folder-symlink");
        tree::write(
            src.path(),
            &[
                ("foo/fighter/ufo", Node::File(b"ufo!!\n".to_vec(), 0o700)),
                ("foo/jet", Node::Link("fighter".into())),
            ],
        );
        for p in ["foo", "foo/fighter", "foo/fighter/ufo", "foo/jet"] {
            std::os::unix::fs::lchown(src.path().join(p), Some(1000), Some(1000)).unwrap();
        }
        let mut opts = vec!["-always-use-fragments", "-comp", comp.unwrap_or("gzip")];
        if comp.is_none() {
            opts.extend(["-noI", "-noD", "-noF", "-noX"]);
        }
        mksquashfs(src.path(), out, &opts);
    })
}

/// `dir_read.sqs`: 300 files `file_001_xxx…` … `file_300_xxx…` (48-byte
/// names) in the root, a directory listing spanning three 8 KiB metadata
/// blocks; zstd, 4 KiB blocks.
pub fn big_dir() -> std::path::PathBuf {
    cached("dir_read.sqs", |out| {
        let src = TempDir::new("big-dir");
        for i in 1..=300 {
            let name = format!("file_{i:03}_{}", "x".repeat(39));
            fs::write(src.path().join(name), format!("{i}\n")).unwrap();
        }
        mksquashfs(src.path(), out, &["-comp", "zstd", "-b", "4096"]);
    })
}

/// `pathtraversal.sqfs`: a root holding two entries named `DIR`, a folder
/// (with `gotcha.txt`) and a symlink to `/tmp`, the trick that makes naive
/// extractors write through the link. Made uncompressed with the link
/// named `DIS`, then renamed in the directory table.
pub fn path_traversal() -> std::path::PathBuf {
    cached("pathtraversal.sqfs", |out| {
        let src = TempDir::new("traversal");
        tree::write(
            src.path(),
            &[
                (
                    "DIR/gotcha.txt",
                    Node::File(b"written through\n".to_vec(), 0o644),
                ),
                ("DIS", Node::Link("/tmp".into())),
            ],
        );
        let plain = src.path().with_extension("sqfs");
        mksquashfs(
            src.path(),
            &plain,
            &["-noI", "-noD", "-noF", "-noX", "-b", "4096"],
        );
        let mut bytes = fs::read(&plain).unwrap();
        fs::remove_file(&plain).unwrap();
        let at = bytes.windows(3).rposition(|w| w == b"DIS").unwrap();
        bytes[at..at + 3].copy_from_slice(b"DIR");
        fs::write(out, bytes).unwrap();
    })
}
