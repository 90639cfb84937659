//! Mounting with mount(2) ourselves when we may, so the kernel records the
//! type `fuse.appimagefs`.
//!
//! fuser's own mount(2) path always passes the type `fuse` (its `Subtype`
//! option only reaches fusermount3), and then `findmnt -t fuse.appimagefs`,
//! `umount -a -t fuse.appimagefs` and monitoring that filters by type miss
//! the mount. As root we open /dev/fuse and mount it here; where mount(2) is
//! refused (no CAP_SYS_ADMIN) or as a normal user, fuser runs fusermount3,
//! which sets the same type from the `subtype=appimagefs` option.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::cli::Settings;

/// The filesystem type the kernel records for our mounts.
pub const FSTYPE: &str = "fuse.appimagefs";

/// The subtype (`FSTYPE` without `fuse.`), for fusermount3.
pub const SUBTYPE: &str = "appimagefs";

/// A mount made by [`mount`]: the /dev/fuse descriptor it serves, and where.
pub struct KernelMount {
    /// The /dev/fuse descriptor to hand to `fuser::Session::from_fd`.
    pub fuse: OwnedFd,
    /// The mount point.
    pub path: PathBuf,
}

/// The `data` string mount(2) passes to the FUSE driver.
fn mount_data(fd: i32, uid: u32, gid: u32, s: &Settings) -> String {
    let mut data = format!(
        "fd={fd},rootmode={:o},user_id={uid},group_id={gid}",
        libc::S_IFDIR
    );
    // The kernel knows only allow_other; fuser filters allow_root itself.
    if s.allow_other || s.allow_root {
        data.push_str(",allow_other");
    }
    if s.default_permissions {
        data.push_str(",default_permissions");
    }
    data
}

/// Mounts /dev/fuse on `mnt` as `fuse.appimagefs`, read-only, nosuid and
/// nodev, with `s.fsname` as the source. `Ok(None)` when mount(2) is not
/// permitted here, so the caller falls back to fusermount3.
pub fn mount(mnt: &Path, s: &Settings) -> std::io::Result<Option<KernelMount>> {
    let fuse: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?
        .into();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let data = mount_data(fuse.as_raw_fd(), uid, gid, s);
    let c = |v: &[u8]| {
        CString::new(v).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "NUL byte in a mount argument",
            )
        })
    };
    let (source, target, fstype, data_c) = (
        c(s.fsname.as_bytes())?,
        c(mnt.as_os_str().as_bytes())?,
        c(FSTYPE.as_bytes())?,
        c(data.as_bytes())?,
    );
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: every pointer is a valid NUL-terminated string for the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data_c.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EPERM) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(KernelMount {
        fuse,
        path: mnt.to_path_buf(),
    }))
}

/// Unmounts a mount made by [`mount`] (the session then ends).
pub fn unmount(path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(extra: &[&str]) -> Settings {
        let mut v = vec!["appimagefs", "/src", "/mnt"];
        v.extend_from_slice(extra);
        crate::cli::Args::try_parse_from(v)
            .unwrap()
            .settings(true)
            .unwrap()
    }

    #[test]
    fn mount_data_names_the_descriptor_owner_and_access() {
        assert_eq!(
            mount_data(7, 0, 0, &settings(&[])),
            "fd=7,rootmode=40000,user_id=0,group_id=0,allow_other"
        );
        let mut s = settings(&["-o", "default_permissions"]);
        s.allow_other = false;
        assert_eq!(
            mount_data(9, 1000, 100, &s),
            "fd=9,rootmode=40000,user_id=1000,group_id=100,default_permissions"
        );
    }
}
