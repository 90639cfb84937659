//! Malicious and broken inputs in one source folder next to good AppImages:
//! the mount comes up, listing works, every access to a bad app either
//! succeeds or fails with EIO/ENOENT (never hangs, never kills the daemon),
//! the good apps read back byte-identical, and nothing under the mount
//! reaches outside it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// Errnos a bad app may answer with. ENODATA/EOPNOTSUPP only come from the
/// xattr calls (no such attribute / xattrs unsupported).
const ALLOWED_ERRNOS: &[i32] = &[libc::EIO, libc::ENOENT, libc::ENODATA, libc::EOPNOTSUPP];

struct Bad {
    file: String,
    what: String,
}

fn truncated(src: &Path, fixture_name: &str, out: &str, len: u64, what: &str, bad: &mut Vec<Bad>) {
    let data = std::fs::read(fixture(fixture_name)).unwrap();
    assert!((len as usize) < data.len());
    std::fs::write(src.join(out), &data[..len as usize]).unwrap();
    set_mode(&src.join(out), 0o755);
    bad.push(Bad {
        file: out.into(),
        what: format!("{fixture_name} cut at {len}: {what}"),
    });
}

/// Names that must NOT appear at the mount root (not AppImages).
const NOT_APPS: &[&str] = &[
    "elffile",
    "volrecords.iso",
    "empty",
    "dir",
    "passwd",
    "loop",
    "runtime-only",
];

#[test]
fn hostile_inputs_do_not_break_the_mount() {
    let t0 = Instant::now();
    let tmp = TempDir::new("hostile");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut fails = Failures::new();
    let mut bad: Vec<Bad> = Vec::new();

    // Good ones.
    copy_fixture("Echo-x86_64.AppImage", &src, "Echo-x86_64.AppImage");
    copy_fixture("hello-x86_64.AppImage", &src, "hello-x86_64.AppImage");
    let weird = "we\"ird\n'name.AppImage";
    copy_fixture("Hello_World-x86_64.gzip.AppImage", &src, weird);
    // Cutting only the zero padding after the SquashFS keeps it valid.
    let echo_len = std::fs::metadata(fixture("Echo-x86_64.AppImage"))
        .unwrap()
        .len();
    let echo_off = manifest_row("Echo-x86_64.AppImage").sqfs_offset().unwrap();
    let data = std::fs::read(fixture("Echo-x86_64.AppImage")).unwrap();
    // bytes_used from the SquashFS superblock (offset 40, u64 LE)
    let sb = &data[echo_off as usize..];
    let echo_sqfs_end = echo_off + u64::from_le_bytes(sb[40..48].try_into().unwrap());
    assert_eq!(
        echo_sqfs_end,
        echo_off + 22215,
        "bytes_used differs from MANIFEST.tsv"
    );
    {
        std::fs::write(
            src.join("trunc-echo-padding.AppImage"),
            &data[..echo_sqfs_end as usize + 1],
        )
        .unwrap();
        assert!(echo_sqfs_end + 1 < echo_len);
    }
    let good: Vec<(&str, &str, u64)> = vec![
        ("Echo-x86_64", "Echo-x86_64.AppImage", echo_off),
        (
            "hello-x86_64",
            "hello-x86_64.AppImage",
            manifest_row("hello-x86_64.AppImage").sqfs_offset().unwrap(),
        ),
        (
            "we\"ird\n'name",
            "Hello_World-x86_64.gzip.AppImage",
            manifest_row("Hello_World-x86_64.gzip.AppImage")
                .sqfs_offset()
                .unwrap(),
        ),
        ("trunc-echo-padding", "Echo-x86_64.AppImage", echo_off),
    ];

    // Malicious images.
    wrap_squashfs_as_appimage(
        &fixture("pathtraversal.sqfs"),
        &src.join("evil-pathtraversal.AppImage"),
    );
    bad.push(Bad {
        file: "evil-pathtraversal.AppImage".into(),
        what: "SquashFS with a ../ entry name".into(),
    });
    for (f, what) in [
        (
            "test_read_format_iso_zisofs_overflow.iso",
            "zisofs header with overflowing sizes",
        ),
        (
            "test_read_format_iso_rockridge_ce_loop.iso",
            "Rock Ridge CE continuation loop",
        ),
        (
            "test_read_format_iso_rockridge_zf_overflow.iso",
            "Rock Ridge ZF/PD overflow",
        ),
    ] {
        let out = format!(
            "evil-{}.AppImage",
            f.trim_start_matches("test_read_format_iso_")
                .trim_end_matches(".iso")
        );
        wrap_iso_as_appimage(&fixture(f), &src.join(&out));
        bad.push(Bad {
            file: out,
            what: what.into(),
        });
    }
    {
        // The volume descriptors of a real ISO right after a type 1 system
        // area: a root directory pointing far beyond the end of the file.
        let mut data = type1_system_area().to_vec();
        data.extend_from_slice(&std::fs::read(fixture("volrecords.iso")).unwrap());
        std::fs::write(src.join("volrecords-wrapped.AppImage"), data).unwrap();
        bad.push(Bad {
            file: "volrecords-wrapped.AppImage".into(),
            what: "ISO descriptors only".into(),
        });
    }
    copy_fixture("elffile", &src, "elffile");
    copy_fixture("volrecords.iso", &src, "volrecords.iso");
    std::fs::write(src.join("runtime-only.AppImage"), type2_runtime()).unwrap();

    // Truncations.
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-64.AppImage",
        64,
        "ELF header only",
        &mut bad,
    );
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-100.AppImage",
        100,
        "inside the ELF headers",
        &mut bad,
    );
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-superblock-part.AppImage",
        echo_off + 50,
        "half a superblock",
        &mut bad,
    );
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-superblock.AppImage",
        echo_off + 96,
        "superblock only",
        &mut bad,
    );
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-mid.AppImage",
        200_000,
        "middle of the data",
        &mut bad,
    );
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-tables.AppImage",
        echo_sqfs_end - 100,
        "inside the index tables",
        &mut bad,
    );
    truncated(
        &src,
        "Echo-x86_64.AppImage",
        "trunc-echo-last-byte.AppImage",
        echo_sqfs_end - 1,
        "last SquashFS byte missing",
        &mut bad,
    );
    let hello_off = manifest_row("hello-x86_64.AppImage").sqfs_offset().unwrap();
    truncated(
        &src,
        "hello-x86_64.AppImage",
        "trunc-hello-1000.AppImage",
        hello_off + 1000,
        "zstd, early",
        &mut bad,
    );
    truncated(
        &src,
        "hello-x86_64.AppImage",
        "trunc-hello-half.AppImage",
        hello_off + 7000,
        "zstd, half",
        &mut bad,
    );
    truncated(
        &src,
        "AppImageExtract_6-x86_64.AppImage",
        "trunc-type1-pvd.AppImage",
        32768 + 1024,
        "half a PVD",
        &mut bad,
    );
    truncated(
        &src,
        "AppImageExtract_6-x86_64.AppImage",
        "trunc-type1-40k.AppImage",
        40_000,
        "type 1, tree cut",
        &mut bad,
    );
    truncated(
        &src,
        "AppImageExtract_6-x86_64.AppImage",
        "trunc-type1-300k.AppImage",
        300_000,
        "type 1, data cut",
        &mut bad,
    );

    // Things that are not AppImages at all.
    std::fs::write(src.join("empty.AppImage"), b"").unwrap();
    std::fs::create_dir(src.join("dir.AppImage")).unwrap();
    copy_fixture(
        "Echo-x86_64.AppImage",
        &src.join("dir.AppImage"),
        "inner.AppImage",
    );
    std::os::unix::fs::symlink("/etc/passwd", src.join("passwd.AppImage")).unwrap();
    std::os::unix::fs::symlink("loop.AppImage", src.join("loop.AppImage")).unwrap();

    let mut mount = Mount::start(&src, &mnt, &[]);

    // `ls` works.
    let ls = run_timeout(
        &mut command("ls", [std::ffi::OsStr::new("-la"), mnt.as_os_str()]),
        Duration::from_secs(30),
    );
    fails.check(ls.success(), || {
        format!("ls -la MOUNT failed: {}", ls.describe())
    });
    let m2 = mnt.clone();
    let root_names: Vec<Vec<u8>> =
        match with_timeout("readdir root", Duration::from_secs(30), move || {
            std::fs::read_dir(&m2).map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().as_bytes().to_vec())
                    .collect()
            })
        }) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!(
                "readdir of the mount root failed: {e}\n{}",
                mount.log_text()
            ),
            Err(e) => panic!("{e}\n{}", mount.log_text()),
        };
    for n in NOT_APPS {
        fails.check(!root_names.iter().any(|r| r == n.as_bytes()), || {
            format!("{n:?} is not an AppImage but appears at the mount root")
        });
    }

    // Every bad app: full walk under a timeout; only allowed errnos.
    let passwd_hash = hash_file(Path::new("/etc/passwd")).ok();
    let mut hung = false;
    for b in &bad {
        let name = app_name(&b.file);
        if !root_names.iter().any(|r| r == name.as_bytes()) {
            continue; // rejected at scan time: fine
        }
        let dir = mnt.join(&name);
        match with_timeout(
            &format!("walk {name}"),
            Duration::from_secs(30),
            move || snapshot(&dir),
        ) {
            Err(e) => {
                fails.push(format!("{name} ({}): {e}", b.what));
                if !crate::squashfs_tree::mount_responsive(&mnt) {
                    fails
                        .push("the mount stopped answering after that; remaining bad apps skipped");
                    hung = true;
                    break;
                }
            }
            Ok(s) => {
                for (p, err) in s.errors() {
                    // pathtraversal.sqfs really holds two entries named
                    // "DIR" (a symlink to /tmp and a directory; the kernel's
                    // squashfs lists both): listing a name twice is
                    // tolerated for a malicious image.
                    let ok = matches!(err.errno, Some(e) if ALLOWED_ERRNOS.contains(&e))
                        || (err.errno.is_none() && err.msg.contains("listed twice"));
                    fails.check(ok, || format!("{name} ({}): {}: {err}", b.what, show(&p)));
                }
                let foreign = s.foreign_devices();
                fails.check(foreign.is_empty(), || {
                    format!("{name}: entries outside the mount: {foreign:?}")
                });
                for (p, e) in &s.entries {
                    if let (Some(Ok(h)), Some(pw)) = (&e.content, &passwd_hash) {
                        fails.check(h != pw, || {
                            format!("{name}/{}: reads back /etc/passwd", show(p))
                        });
                    }
                }
            }
        }
    }

    // The daemon survived, the mount still answers.
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    if !hung {
        fails.check(crate::squashfs_tree::mount_responsive(&mnt), || {
            "the mount stopped answering".into()
        });
        // Good apps are byte-identical to unsquashfs's extraction.
        for (app, fixture_name, offset) in &good {
            let truth = tmp.join(format!("truth-{}", app.replace(['\n', '"', '\''], "_")));
            unsquashfs_extract(&fixture(fixture_name), *offset, &truth)
                .unwrap_or_else(|e| panic!("{e}"));
            if !root_names.iter().any(|r| r == app.as_bytes()) {
                fails.push(format!("good app {app:?} is missing from the mount root"));
                continue;
            }
            let expected = snapshot(&truth);
            let dir = mnt.join(app);
            match with_timeout("walk good app", Duration::from_secs(60), move || {
                snapshot(&dir)
            }) {
                Ok(actual) => {
                    if let Some(r) = compare_trees(&expected, &actual, &Compare::squashfs()) {
                        fails.push(format!("good app {app:?}: {r}"));
                    }
                }
                Err(e) => fails.push(format!("good app {app:?}: {e}")),
            }
        }
        // The root listing is the same after all that.
        let m3 = mnt.clone();
        let again: Option<Vec<Vec<u8>>> =
            with_timeout("readdir root again", Duration::from_secs(30), move || {
                std::fs::read_dir(&m3).ok().map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().as_bytes().to_vec())
                        .collect()
                })
            })
            .ok()
            .flatten();
        let (mut a, mut b) = (root_names.clone(), again.clone().unwrap_or_default());
        a.sort();
        b.sort();
        fails.check(again.is_some() && a == b, || {
            "the mount root listing changed after the walks".into()
        });
        // Nothing reachable through the mount root is on another device.
        let st_root = std::fs::metadata(&mnt).map(|m| m.dev()).ok();
        for n in &root_names {
            let p = mnt.join(std::ffi::OsStr::from_bytes(n));
            if let (Ok(m), Some(d)) = (std::fs::symlink_metadata(&p), st_root) {
                fails.check(m.dev() == d, || format!("{}: on another device", show(n)));
            }
        }
    }
    fails.check(mount.is_alive(), || {
        format!(
            "the filesystem process died at the end; output:\n{}",
            mount.log_text()
        )
    });
    eprintln!("hostile done in {:.1}s", t0.elapsed().as_secs_f64());
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("hostile");
}

/// A fifo (and a dangling symlink) in the source folder must not block the
/// mount: opening a fifo for reading waits for a writer forever.
#[test]
fn fifo_in_source_dir_does_not_hang_the_mount() {
    let tmp = TempDir::new("hostile-fifo");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_fixture("Echo-x86_64.AppImage", &src, "Echo-x86_64.AppImage");
    let fifo =
        std::ffi::CString::new(src.join("fifo.AppImage").as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("/nonexistent/x.AppImage", src.join("dangling.AppImage")).unwrap();
    let mount = Mount::try_start(&src, &mnt, &[])
        .unwrap_or_else(|e| panic!("mount with a fifo in the source dir: {e}"));
    let m = mnt.clone();
    let names = must_finish("readdir root", Duration::from_secs(20), move || {
        std::fs::read_dir(&m).map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
    })
    .expect("readdir root");
    assert!(
        names.contains(&"Echo-x86_64".to_string()),
        "Echo missing: {names:?}"
    );
    assert!(
        !names.contains(&"fifo".to_string()),
        "a fifo is not an AppImage: {names:?}"
    );
    let m = mnt.join("Echo-x86_64/AppRun");
    let len = must_finish("stat AppRun", Duration::from_secs(20), move || {
        std::fs::metadata(&m).map(|m| m.len())
    });
    assert_eq!(len.expect("stat Echo AppRun"), 9352);
    drop(mount);
}
