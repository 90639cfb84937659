//! How many requests of each kind the kernel sent, logged at exit with
//! `-v`. A FUSE round trip costs two context switches however little the
//! daemon does, so what a workload still asks matters as much as how fast
//! each answer is: a second launch on the same mount should send little
//! beyond one IOCTL per opened file (`isatty`, which the kernel always
//! forwards), and a metadata walk two READDIRs per directory. These
//! counts show which round trips remain.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A kind of request, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// LOOKUP of a name that exists.
    Lookup,
    /// LOOKUP of a name that does not exist (answered with a negative entry).
    NegativeLookup,
    /// GETATTR.
    Getattr,
    /// READLINK.
    Readlink,
    /// OPEN (answered ENOSYS once; the kernel then stops sending it).
    Open,
    /// READ.
    Read,
    /// OPENDIR (answered ENOSYS once, like OPEN).
    Opendir,
    /// READDIR.
    Readdir,
    /// READDIRPLUS.
    Readdirplus,
    /// IOCTL.
    Ioctl,
    /// GETXATTR and LISTXATTR.
    Xattr,
}

const OPS: [(Op, &str); 11] = [
    (Op::Lookup, "lookup"),
    (Op::NegativeLookup, "negative lookup"),
    (Op::Getattr, "getattr"),
    (Op::Readlink, "readlink"),
    (Op::Open, "open"),
    (Op::Read, "read"),
    (Op::Opendir, "opendir"),
    (Op::Readdir, "readdir"),
    (Op::Readdirplus, "readdirplus"),
    (Op::Ioctl, "ioctl"),
    (Op::Xattr, "xattr"),
];

/// One counter per [`Op`].
#[derive(Default)]
pub struct RequestCounts {
    counts: [AtomicU64; OPS.len()],
}

impl RequestCounts {
    /// Counts one request of kind `op`.
    pub fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests of kind `op` were counted.
    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }
}

/// `lookup 12, negative lookup 3, ...`, every kind, in a fixed order (the
/// tests read this line from the log).
impl fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, name)) in OPS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} {}", self.get(*op))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_counter_and_name() {
        for (i, (op, _)) in OPS.iter().enumerate() {
            assert_eq!(*op as usize, i, "OPS is in declaration order");
        }
        let c = RequestCounts::default();
        c.count(Op::NegativeLookup);
        c.count(Op::NegativeLookup);
        c.count(Op::Ioctl);
        assert_eq!(c.get(Op::NegativeLookup), 2);
        assert_eq!(c.get(Op::Lookup), 0);
        let line = c.to_string();
        assert!(line.starts_with("lookup 0, negative lookup 2, getattr 0"));
        assert!(line.ends_with("ioctl 1, xattr 0"));
    }
}
