//! Source trees written on disk for the image builders: a list of paths
//! with what each is, plus the icon bytes desktop integration sniffs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One entry of a source tree.
pub enum Node {
    /// A regular file with its contents and mode.
    File(Vec<u8>, u32),
    /// A symbolic link to the target.
    Link(String),
    /// A directory with its mode (its entries are listed separately).
    Dir(u32),
    /// A hard link to the earlier path given.
    HardLink(&'static str),
}

/// Writes `nodes` under `root` in order; parents missing from the list
/// are made with mode 0755. Directory modes are set last, so a directory
/// made unwritable still gets its entries.
pub fn write<P: AsRef<str>>(root: &Path, nodes: &[(P, Node)]) {
    fs::create_dir_all(root).unwrap();
    let mut dir_modes = Vec::new();
    for (path, node) in nodes {
        let p = root.join(path.as_ref());
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        match node {
            Node::File(data, mode) => {
                fs::write(&p, data).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
            Node::Dir(mode) => {
                fs::create_dir_all(&p).unwrap();
                dir_modes.push((p, *mode));
            }
            Node::HardLink(to) => fs::hard_link(root.join(to), &p).unwrap(),
        }
    }
    for (p, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The start of a PNG file (signature and `IHDR` chunk) of `side` × `side`
/// pixels, padded to `len` bytes: what icon sizing reads.
pub fn png(side: u32, len: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    out.extend_from_slice(&side.to_be_bytes());
    out.extend_from_slice(&side.to_be_bytes());
    out.extend_from_slice(&[8, 6, 0, 0, 0]);
    out.resize(len.max(out.len()), 0x5a);
    out
}

/// An SVG document of about `len` bytes.
pub fn svg(len: usize) -> Vec<u8> {
    let mut out = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
width=\"48\" height=\"48\">\n"
        .to_vec();
    let mut i = 0;
    while out.len() + 7 < len {
        out.extend_from_slice(format!("<!-- {i} -->\n").as_bytes());
        i += 1;
    }
    out.extend_from_slice(b"</svg>\n");
    out
}
