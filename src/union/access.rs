//! Who may read an AppImage file, and so enter its app folder: owner,
//! group, permission bits and POSIX ACL, decided as the kernel decides
//! for a read of the file (`default_permissions` is off by default, so the
//! folder of an app whose file not everyone may read is checked here).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

/// Largest ACL read (bytes): far more entries than anyone writes.
const ACL_MAX: usize = 64 << 10;

/// The tags of a POSIX ACL entry, as `system.posix_acl_access` stores them.
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const ACL_READ: u16 = 0x04;

/// One entry of a POSIX access ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// `ACL_USER`, `ACL_GROUP`, ... (see the constants).
    pub tag: u16,
    /// rwx bits (4, 2, 1).
    pub perm: u16,
    /// The user or group of `ACL_USER` / `ACL_GROUP` entries.
    pub id: u32,
}

/// Who may read an AppImage file: its owner, group, permission bits and
/// ACL. An app whose file not everyone may read is only shown to those who
/// may (see [`Access::allows`]), since its content is the file's content.
/// Rescans compare it, so a chmod, chown or setfacl takes effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Owner of the file.
    pub uid: u32,
    /// Group of the file.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The file's access ACL beyond the permission bits, if it has one.
    pub acl: Option<Arc<[AclEntry]>>,
}

impl Access {
    /// The access rules of the file at `path` whose metadata is `meta`
    /// (an ACL that cannot be read counts as none).
    pub fn read(path: &Path, meta: &fs::Metadata) -> Access {
        Access {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o777,
            acl: read_acl(path).map(Arc::from),
        }
    }

    /// True when every user may read the file.
    pub fn is_public(&self) -> bool {
        self.mode & 0o004 != 0
    }

    /// Whether a caller with this uid and these groups (primary and
    /// supplementary) may read the file, as the kernel would decide from the
    /// permission bits and ACL (root always may).
    pub fn allows(&self, uid: u32, groups: &[u32]) -> bool {
        if uid == 0 {
            return true;
        }
        if let Some(acl) = &self.acl {
            return acl_allows(acl, self, uid, groups);
        }
        let bit = if uid == self.uid {
            0o400
        } else if groups.contains(&self.gid) {
            0o040
        } else {
            0o004
        };
        self.mode & bit != 0
    }
}

/// The POSIX ACL check (acl(5), "access check algorithm") for reading.
fn acl_allows(acl: &[AclEntry], access: &Access, uid: u32, groups: &[u32]) -> bool {
    let readable = |perm: u16| perm & ACL_READ != 0;
    let mask = acl
        .iter()
        .find(|e| e.tag == ACL_MASK)
        .map_or(0o7, |e| e.perm);
    if uid == access.uid {
        return acl
            .iter()
            .find(|e| e.tag == ACL_USER_OBJ)
            .is_some_and(|e| readable(e.perm));
    }
    if let Some(e) = acl.iter().find(|e| e.tag == ACL_USER && e.id == uid) {
        return readable(e.perm & mask);
    }
    let mut in_a_group = false;
    for e in acl {
        let matches = match e.tag {
            ACL_GROUP_OBJ => groups.contains(&access.gid),
            ACL_GROUP => groups.contains(&e.id),
            _ => false,
        };
        if matches {
            in_a_group = true;
            if readable(e.perm & mask) {
                return true;
            }
        }
    }
    if in_a_group {
        return false;
    }
    acl.iter()
        .find(|e| e.tag == ACL_OTHER)
        .is_some_and(|e| readable(e.perm))
}

/// The entries of the `system.posix_acl_access` attribute of `path`
/// (symlinks followed); `None` when there is none or it cannot be read.
fn read_acl(path: &Path) -> Option<Vec<AclEntry>> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = c"system.posix_acl_access";
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: valid NUL-terminated strings and a buffer of buf.len() bytes.
        let n = unsafe {
            libc::getxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return parse_acl(&buf);
        }
        let too_small = std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE);
        if !too_small || buf.len() >= ACL_MAX {
            return None;
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// Parses the attribute: a little-endian version 2 header, then entries
/// of (tag u16, perm u16, id u32).
fn parse_acl(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (header, rest) = bytes.split_at_checked(4)?;
    if header != 2u32.to_le_bytes() || rest.len() % 8 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|e| AclEntry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_the_permission_bits() {
        let private = Access {
            uid: 1000,
            gid: 100,
            mode: 0o640,
            acl: None,
        };
        assert!(!private.is_public());
        assert!(private.allows(0, &[0]));
        assert!(private.allows(1000, &[5]));
        assert!(private.allows(2000, &[100]));
        assert!(private.allows(2000, &[200, 100]), "a supplementary group");
        assert!(!private.allows(2000, &[200, 300]));
        assert!(!private.allows(2000, &[]));
        let public = Access {
            uid: 0,
            gid: 0,
            mode: 0o644,
            acl: None,
        };
        assert!(public.is_public() && public.allows(2000, &[200]));
        let owner_locked_out = Access {
            uid: 1000,
            gid: 100,
            mode: 0o044,
            acl: None,
        };
        assert!(
            !owner_locked_out.allows(1000, &[100]),
            "the owner class decides, as in the kernel"
        );
    }

    #[test]
    fn an_acl_decides_for_named_users_and_groups() {
        let e = |tag, perm, id| AclEntry { tag, perm, id };
        let access = Access {
            uid: 1000,
            gid: 100,
            mode: 0o640,
            acl: Some(Arc::from(vec![
                e(ACL_USER_OBJ, 6, 0),
                e(ACL_USER, 4, 2000),
                e(ACL_USER, 4, 2001),
                e(ACL_GROUP_OBJ, 0, 0),
                e(ACL_GROUP, 4, 300),
                e(ACL_MASK, 4, 0),
                e(ACL_OTHER, 0, 0),
            ])),
        };
        assert!(access.allows(1000, &[1]));
        assert!(access.allows(2000, &[1]), "a named user");
        assert!(!access.allows(3000, &[100]), "the owning group has no read");
        assert!(access.allows(3000, &[100, 300]), "a named group");
        assert!(!access.allows(3000, &[7]));
        let mut masked = access.clone();
        masked.acl = Some(Arc::from(vec![
            e(ACL_USER_OBJ, 6, 0),
            e(ACL_USER, 4, 2000),
            e(ACL_MASK, 0, 0),
            e(ACL_OTHER, 0, 0),
        ]));
        assert!(!masked.allows(2000, &[1]), "the mask limits named users");
    }

    #[test]
    fn acl_bytes_parse_and_junk_is_ignored() {
        let mut b = 2u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[2, 0, 4, 0, 0xd0, 0x07, 0, 0]);
        assert_eq!(
            parse_acl(&b),
            Some(vec![AclEntry {
                tag: ACL_USER,
                perm: 4,
                id: 2000
            }])
        );
        assert_eq!(parse_acl(&b[..7]), None);
        assert_eq!(parse_acl(b"\x01\0\0\0"), None);
    }
}
