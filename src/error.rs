//! One error type for everything below the FUSE adapter.
//!
//! Every variant maps to exactly one errno in [`Error::errno`], with no
//! wildcard arm, so adding a variant forces a decision about what the kernel
//! sees.

use std::fmt;
use std::io;

/// Why an operation on an image or on the union tree failed.
#[derive(Debug)]
pub enum Error {
    /// Reading the backing file failed (EIO for the caller).
    Io(io::Error),
    /// The image contradicts its own format; the string says where.
    Corrupt(String),
    /// A well-formed image uses something this reader does not implement.
    Unsupported(String),
    /// No such entry.
    NotFound,
    /// A directory operation on something that is not a directory.
    NotDir,
    /// A file operation on a directory.
    IsDir,
    /// readlink on something that is not a symlink (or read on a non-file).
    Invalid,
    /// The requested extended attribute does not exist.
    NoXattr,
    /// The caller's buffer is too small for the answer.
    Range,
    /// Something tried to modify the read-only tree.
    ReadOnly,
    /// The image was replaced or removed and this read can no longer be served
    /// with bytes of the version it started with.
    Stale,
    /// An inode number of an image that is no longer mounted: the kernel
    /// forgot every inode of it, so the number names nothing (ESTALE, never
    /// a node of an image mounted later under the same slot).
    Forgotten,
}

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for a corruption error with a message.
    pub fn corrupt(msg: impl Into<String>) -> Error {
        Error::Corrupt(msg.into())
    }

    /// The errno the kernel should see for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io(_) => libc::EIO,
            Error::Corrupt(_) => libc::EIO,
            Error::Unsupported(_) => libc::EOPNOTSUPP,
            Error::NotFound => libc::ENOENT,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::Invalid => libc::EINVAL,
            Error::NoXattr => libc::ENODATA,
            Error::Range => libc::ERANGE,
            Error::ReadOnly => libc::EROFS,
            Error::Stale => libc::EIO,
            Error::Forgotten => libc::ESTALE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Corrupt(m) => write!(f, "corrupt image: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::NotFound => f.write_str("no such file or directory"),
            Error::NotDir => f.write_str("not a directory"),
            Error::IsDir => f.write_str("is a directory"),
            Error::Invalid => f.write_str("invalid argument"),
            Error::NoXattr => f.write_str("no such extended attribute"),
            Error::Range => f.write_str("buffer too small"),
            Error::ReadOnly => f.write_str("read-only file system"),
            Error::Stale => f.write_str("image changed underneath this read"),
            Error::Forgotten => f.write_str("stale inode: its image is no longer mounted"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Corrupt(format!("image ends early: {e}"))
        } else {
            Error::Io(e)
        }
    }
}
