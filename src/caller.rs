//! Who is asking: the groups of the process behind a FUSE request.
//!
//! The kernel tells a FUSE server the caller's uid, primary gid and thread
//! id, not its supplementary groups, yet those decide whether the caller may
//! read a group-readable AppImage. Like libfuse's `fuse_req_getgroups`, the
//! groups are read from `/proc/PID/task/PID/status`. A caller that has gone,
//! or is not visible in this daemon's pid namespace (pid 0), has only its
//! primary group.

use std::io::Read;

/// Bytes of a status file read at most: the `Groups:` line of a process in
/// the maximum of 65536 groups fits.
const STATUS_MAX: u64 = 1 << 20;

/// Groups read at most (the kernel's NGROUPS_MAX).
const GROUPS_MAX: usize = 65536;

/// The primary group `gid` followed by the supplementary groups of thread
/// `pid`.
pub fn groups(pid: u32, gid: u32) -> Vec<u32> {
    let mut out = vec![gid];
    if pid == 0 {
        return out;
    }
    let path = format!("/proc/{pid}/task/{pid}/status");
    let mut status = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(STATUS_MAX).read_to_end(&mut status));
    if read.is_ok() {
        out.extend(supplementary_groups(&status));
    }
    out
}

/// The numbers on the `Groups:` line of a `/proc/.../status` text; nothing
/// when there is no such line. Anything that is not a number is skipped.
pub fn supplementary_groups(status: &[u8]) -> Vec<u32> {
    status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Groups:"))
        .map(|rest| {
            rest.split(|b| b.is_ascii_whitespace())
                .filter_map(|w| std::str::from_utf8(w).ok()?.parse().ok())
                .take(GROUPS_MAX)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_line_is_parsed() {
        let status =
            b"Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNgid:\t0\n";
        assert_eq!(supplementary_groups(status), vec![4, 24, 27, 1000]);
        assert_eq!(supplementary_groups(b"Groups:\t\n"), Vec::<u32>::new());
        assert_eq!(supplementary_groups(b"Name:\tx\n"), Vec::<u32>::new());
        assert_eq!(
            supplementary_groups(b"Groups:\t5 x 99999999999 7\xff 8\n"),
            vec![5, 8]
        );
    }

    #[test]
    fn this_process_has_its_own_groups() {
        let pid = std::process::id();
        // SAFETY: getgid and getgroups with a null buffer cannot fail in a
        // way that matters here; getgroups(0, NULL) returns the count.
        let (gid, count) = unsafe { (libc::getgid(), libc::getgroups(0, std::ptr::null_mut())) };
        let mut expected = vec![0 as libc::gid_t; count.max(0) as usize];
        // SAFETY: `expected` has room for `count` groups.
        let n = unsafe { libc::getgroups(count, expected.as_mut_ptr()) };
        expected.truncate(n.max(0) as usize);
        let got = groups(pid, gid);
        assert_eq!(got[0], gid);
        let mut rest = got[1..].to_vec();
        rest.sort_unstable();
        expected.sort_unstable();
        assert_eq!(rest, expected);
        assert_eq!(groups(0, 7), vec![7], "pid 0: primary group only");
    }
}
