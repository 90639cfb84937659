//! Malicious and broken inputs in one source folder next to good AppImages:
//! the mount comes up, listing works, every access to a bad app either
//! succeeds or fails with EIO/ENOENT (never hangs, never kills the daemon),
//! the good apps read back byte-identical, and nothing under the mount
//! reaches outside it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// Errnos a bad app may answer with. ENODATA/EOPNOTSUPP only come from the
/// xattr calls (no such attribute / xattrs unsupported).
const ALLOWED_ERRNOS: &[i32] = &[libc::EIO, libc::ENOENT, libc::ENODATA, libc::EOPNOTSUPP];

struct Bad {
    file: String,
    what: String,
}

/// Writes the first `len` bytes of `data` as `src/out` and records it.
fn truncated(src: &Path, data: &[u8], out: &str, len: u64, what: &str, bad: &mut Vec<Bad>) {
    assert!((len as usize) < data.len());
    std::fs::write(src.join(out), &data[..len as usize]).unwrap();
    set_mode(&src.join(out), 0o755);
    bad.push(Bad {
        file: out.into(),
        what: format!("cut at {len}: {what}"),
    });
}

/// The end of the SquashFS payload at `off` (its `bytes_used`).
fn squashfs_end(data: &[u8], off: u64) -> u64 {
    let sb = &data[off as usize..];
    off + u64::from_le_bytes(sb[40..48].try_into().unwrap())
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
    copy_sample_app("echo", &src, "Echo-x86_64.AppImage");
    copy_sample_app("hello-zstd", &src, "hello-x86_64.AppImage");
    let weird = "we\"ird\n'name.AppImage";
    copy_sample_app("hello-gzip", &src, weird);
    // Cutting only the zero padding after the SquashFS keeps it valid.
    let echo = sample_app("echo");
    let data = std::fs::read(&echo.image).unwrap();
    let echo_off = echo.offset;
    let echo_sqfs_end = squashfs_end(&data, echo_off);
    assert!(
        echo_sqfs_end + 1 < data.len() as u64,
        "mksquashfs pads to 4K"
    );
    std::fs::write(
        src.join("trunc-echo-padding.AppImage"),
        &data[..echo_sqfs_end as usize + 1],
    )
    .unwrap();
    let good: Vec<(&str, &str)> = vec![
        ("Echo-x86_64", "echo"),
        ("hello-x86_64", "hello-zstd"),
        ("we\"ird\n'name", "hello-gzip"),
        ("trunc-echo-padding", "echo"),
    ];

    // Malicious images.
    wrap_squashfs_as_appimage(
        squashfs_path_traversal(),
        &src.join("evil-pathtraversal.AppImage"),
    );
    bad.push(Bad {
        file: "evil-pathtraversal.AppImage".into(),
        what: "SquashFS listing DIR twice: a directory and a symlink to /tmp".into(),
    });
    wrap_squashfs_as_appimage(
        squashfs_forbidden_names(),
        &src.join("evil-forbidden-names.AppImage"),
    );
    bad.push(Bad {
        file: "evil-forbidden-names.AppImage".into(),
        what: "SquashFS with entries named .., ., a/b and ../x".into(),
    });
    assert!(
        unsquashfs_extract(
            squashfs_path_traversal(),
            0,
            &tmp.join("unsquashfs-refuses")
        )
        .is_err(),
        "unsquashfs extracted the path traversal image: it is not hostile"
    );
    for (iso, out, what) in [
        (
            iso_zisofs_overflow(),
            "evil-zisofs_overflow.AppImage",
            "zisofs header with overflowing sizes",
        ),
        (
            iso_ce_loop(),
            "evil-rockridge_ce_loop.AppImage",
            "Rock Ridge CE continuation loop",
        ),
        (
            iso_zf_overflow(),
            "evil-rockridge_zf_overflow.AppImage",
            "Rock Ridge ZF/PD overflow",
        ),
    ] {
        wrap_iso_as_appimage(iso, &src.join(out));
        bad.push(Bad {
            file: out.into(),
            what: what.into(),
        });
    }
    let descriptors = iso_descriptors_only(type1_app_iso());
    {
        // The volume descriptors of an ISO right after a type 1 system
        // area: a root directory pointing beyond the end of the file.
        let mut data = type1_system_area().to_vec();
        data.extend_from_slice(&descriptors);
        std::fs::write(src.join("volrecords-wrapped.AppImage"), data).unwrap();
        bad.push(Bad {
            file: "volrecords-wrapped.AppImage".into(),
            what: "ISO descriptors only".into(),
        });
    }
    std::fs::write(src.join("elffile"), plain_elf()).unwrap();
    set_mode(&src.join("elffile"), 0o755);
    std::fs::write(src.join("volrecords.iso"), &descriptors).unwrap();
    std::fs::write(src.join("runtime-only.AppImage"), type2_runtime()).unwrap();

    // Truncations.
    for (out, len, what) in [
        ("trunc-echo-64.AppImage", 64, "ELF header only"),
        ("trunc-echo-100.AppImage", 100, "inside the ELF headers"),
        (
            "trunc-echo-superblock-part.AppImage",
            echo_off + 50,
            "half a superblock",
        ),
        (
            "trunc-echo-superblock.AppImage",
            echo_off + 96,
            "superblock only",
        ),
        (
            "trunc-echo-mid.AppImage",
            (echo_off + echo_sqfs_end) / 2,
            "middle of the data",
        ),
        (
            "trunc-echo-tables.AppImage",
            echo_sqfs_end - 100,
            "inside the index tables",
        ),
        (
            "trunc-echo-last-byte.AppImage",
            echo_sqfs_end - 1,
            "last SquashFS byte missing",
        ),
    ] {
        truncated(
            &src,
            &data,
            out,
            len,
            &format!("echo (gzip): {what}"),
            &mut bad,
        );
    }
    let big = sample_app("big-tool");
    let big_data = std::fs::read(&big.image).unwrap();
    let big_end = squashfs_end(&big_data, big.offset);
    for (out, len, what) in [
        ("trunc-big-1000.AppImage", big.offset + 1000, "early"),
        (
            "trunc-big-half.AppImage",
            (big.offset + big_end) / 2,
            "half",
        ),
    ] {
        truncated(
            &src,
            &big_data,
            out,
            len,
            &format!("big-tool: {what}"),
            &mut bad,
        );
    }
    let t1 = tmp.join("type1.AppImage");
    write_type1_app(&t1, true);
    let t1 = std::fs::read(&t1).unwrap();
    for (out, len, what) in [
        ("trunc-type1-pvd.AppImage", 32768 + 1024, "half a PVD"),
        ("trunc-type1-40k.AppImage", 40_000, "tree cut"),
        ("trunc-type1-half.AppImage", t1.len() as u64 / 2, "data cut"),
    ] {
        truncated(&src, &t1, out, len, &format!("type 1: {what}"), &mut bad);
    }

    // Things that are not AppImages at all.
    std::fs::write(src.join("empty.AppImage"), b"").unwrap();
    std::fs::create_dir(src.join("dir.AppImage")).unwrap();
    copy_sample_app("echo", &src.join("dir.AppImage"), "inner.AppImage");
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
    let mut with_errors: Vec<String> = Vec::new();
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
                if !mount_responsive(&mnt) {
                    fails
                        .push("the mount stopped answering after that; remaining bad apps skipped");
                    hung = true;
                    break;
                }
            }
            Ok(s) => {
                if !s.errors().is_empty() {
                    with_errors.push(name.clone());
                }
                for (p, err) in s.errors() {
                    // The path traversal image really holds two entries
                    // named "DIR" (a symlink to /tmp and a directory; the
                    // kernel's squashfs lists both): listing a name twice is
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

    // The images whose damage every reader must notice gave an error:
    // rejected at scan time, or an error somewhere in their walk.
    for (file, what) in [
        ("evil-forbidden-names.AppImage", "forbidden names"),
        ("evil-rockridge_ce_loop.AppImage", "CE loop"),
        ("evil-zisofs_overflow.AppImage", "zisofs overflow"),
        ("volrecords-wrapped.AppImage", "descriptors only"),
    ] {
        let name = app_name(file);
        fails.check(
            !root_names.iter().any(|r| r == name.as_bytes()) || with_errors.contains(&name),
            || format!("{name} ({what}) was served without a single error"),
        );
    }

    // The daemon survived, the mount still answers.
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    if !hung {
        fails.check(mount_responsive(&mnt), || {
            "the mount stopped answering".into()
        });
        // Good apps are byte-identical to unsquashfs's extraction.
        for (app, sample) in &good {
            let truth = sample_app_extraction(sample);
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
    copy_sample_app("echo", &src, "Echo-x86_64.AppImage");
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
    let want = std::fs::metadata(sample_app_extraction("echo").join("AppRun"))
        .unwrap()
        .len();
    assert_eq!(len.expect("stat Echo AppRun"), want);
    drop(mount);
}

/// One corrupted copy of a good image.
struct Variant {
    file: String,
    what: String,
    data: Vec<u8>,
}

fn le64(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

/// Deterministic corruptions of a type 2 AppImage's SquashFS: random bytes
/// anywhere after the superblock, targeted damage at the start of every
/// metadata table, and absurd superblock fields.
fn squashfs_variants(base_name: &str, data: &[u8], off: usize, n_random: u64) -> Vec<Variant> {
    let sb = &data[off..off + 96];
    let bytes_used = le64(sb, 40) as usize;
    let end = off + bytes_used;
    let mut out = Vec::new();
    for i in 0..n_random {
        let rnd = pseudo_random(1000 + i, 64);
        let mut d = data.to_vec();
        let count = 1 + (rnd[0] % 8) as usize;
        let mut spots = Vec::new();
        for k in 0..count {
            let r = u32::from_le_bytes(rnd[4 + 4 * k..8 + 4 * k].try_into().unwrap()) as usize;
            let pos = off + 96 + r % (bytes_used - 96);
            d[pos] = rnd[40 + k];
            spots.push(pos);
        }
        out.push(Variant {
            file: format!("fuzz-{base_name}-rnd{i}.AppImage"),
            what: format!("{base_name}: random bytes at {spots:?}"),
            data: d,
        });
    }
    for (field, at) in [
        ("id_table", 48),
        ("xattr_table", 56),
        ("inode_table", 64),
        ("dir_table", 72),
        ("frag_table", 80),
        ("export_table", 88),
    ] {
        let start = le64(sb, at);
        if start == u64::MAX || off + start as usize + 8 > end {
            continue;
        }
        let t = off + start as usize;
        for (how, patch) in [
            ("header 0xffff", &[0xffu8, 0xff][..]),
            ("header 0x0001", &[0x01, 0x00][..]),
            (
                "body bytes",
                &[0x00, 0x00, 0xff, 0xff, 0x13, 0x37, 0x00, 0x80][..],
            ),
        ] {
            let mut d = data.to_vec();
            let pos = if how == "body bytes" { t + 2 } else { t };
            // The table-start fields of id/xattr/frag/export point at a list
            // of u64 block pointers; patch those too.
            d[pos..pos + patch.len()].copy_from_slice(patch);
            out.push(Variant {
                file: format!(
                    "fuzz-{base_name}-{field}-{}.AppImage",
                    how.replace(' ', "_")
                ),
                what: format!("{base_name}: {field} (at {t}): {how}"),
                data: d,
            });
        }
    }
    let mut sb_patch = |name: &str, at: usize, bytes: &[u8]| {
        let mut d = data.to_vec();
        d[off + at..off + at + bytes.len()].copy_from_slice(bytes);
        out.push(Variant {
            file: format!("fuzz-{base_name}-sb-{name}.AppImage"),
            what: format!("{base_name}: superblock {name}"),
            data: d,
        });
    };
    sb_patch(
        "root_inode_ref",
        32,
        &0x0000_7fff_0000_1234u64.to_le_bytes(),
    );
    sb_patch("inode_count_0", 4, &0u32.to_le_bytes());
    sb_patch("inode_count_max", 4, &u32::MAX.to_le_bytes());
    sb_patch("frag_count_max", 16, &u32::MAX.to_le_bytes());
    sb_patch("id_count_0", 26, &0u16.to_le_bytes());
    sb_patch("id_count_max", 26, &u16::MAX.to_le_bytes());
    sb_patch("dir_table_swapped", 72, &le64(sb, 64).to_le_bytes());
    sb_patch(
        "inode_table_at_end",
        64,
        &(bytes_used as u64 - 2).to_le_bytes(),
    );
    out
}

/// Random byte damage in an ISO-based (type 1) AppImage: in the root
/// directory extent, in the path tables, and anywhere after the descriptors.
fn iso_variants(base_name: &str, data: &[u8], n: u64) -> Vec<Variant> {
    let pvd = 16 * 2048;
    let root_lba =
        u32::from_le_bytes(data[pvd + 156 + 2..pvd + 156 + 6].try_into().unwrap()) as usize;
    let root_len =
        u32::from_le_bytes(data[pvd + 156 + 10..pvd + 156 + 14].try_into().unwrap()) as usize;
    let pt_lba = u32::from_le_bytes(data[pvd + 140..pvd + 144].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    for i in 0..n {
        let rnd = pseudo_random(2000 + i, 64);
        let mut d = data.to_vec();
        let (region, lo, len) = match i % 3 {
            0 => ("root dir", root_lba * 2048, root_len.min(2048)),
            1 => ("path table", pt_lba * 2048, 64),
            _ => ("anywhere", 18 * 2048, data.len() - 18 * 2048),
        };
        let count = 1 + (rnd[0] % 6) as usize;
        let mut spots = Vec::new();
        for k in 0..count {
            let r = u32::from_le_bytes(rnd[4 + 4 * k..8 + 4 * k].try_into().unwrap()) as usize;
            let pos = lo + r % len;
            if pos < d.len() {
                d[pos] = rnd[40 + k];
                spots.push(pos);
            }
        }
        out.push(Variant {
            file: format!("fuzz-{base_name}-{i}.AppImage"),
            what: format!("{base_name}: random bytes in the {region} at {spots:?}"),
            data: d,
        });
    }
    out
}

/// Corrupted copies of good images (SquashFS with gzip, xz, zstd, xattrs,
/// fragments; ISO with Rock Ridge and zisofs) next to a good AppImage: no
/// hang, no crash, no runaway memory, only EIO/ENOENT, and the good app
/// still reads back byte-identical. Failing variants are kept in cargo's
/// target tmp dir for reproduction.
#[test]
fn corrupted_images_do_not_break_the_mount() {
    let t0 = Instant::now();
    let tmp = TempDir::new("hostile-fuzz");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let mut fails = Failures::new();

    let echo = std::fs::read(&sample_app("echo").image).unwrap();
    let echo_off = sample_app("echo").offset as usize;
    let rt = type2_runtime().len();
    let wrapped = |sqfs: &Path| {
        let mut d = type2_runtime().to_vec();
        d.extend_from_slice(&std::fs::read(sqfs).unwrap());
        d
    };
    let mut variants = Vec::new();
    variants.extend(squashfs_variants("echo", &echo, echo_off, 12));
    variants.extend(squashfs_variants(
        "edge",
        &wrapped(&built_image("edge").sqfs),
        rt,
        12,
    ));
    variants.extend(squashfs_variants(
        "xz1m",
        &wrapped(&built_image("mixed-xz-b1m").sqfs),
        rt,
        8,
    ));
    variants.extend(squashfs_variants(
        "zstd",
        &wrapped(&built_image("mixed-zstd").sqfs),
        rt,
        8,
    ));
    let zisofs = built_isos()
        .iter()
        .find(|b| b.name == "iso-rr-zisofs")
        .unwrap();
    let mut iso = type1_system_area().to_vec();
    iso.extend_from_slice(&std::fs::read(&zisofs.iso).unwrap()[32768..]);
    variants.extend(iso_variants("zisofs", &iso, 12));
    let t1 = tmp.join("type1.AppImage");
    write_type1_app(&t1, true);
    variants.extend(iso_variants("type1", &std::fs::read(&t1).unwrap(), 9));
    for v in &variants {
        std::fs::write(src.join(&v.file), &v.data).unwrap();
        set_mode(&src.join(&v.file), 0o755);
    }
    copy_sample_app("echo", &src, "good-echo.AppImage");

    let mut mount = Mount::start(&src, &mnt, &[]);
    let m2 = mnt.clone();
    let root: Vec<String> = match with_timeout("readdir root", Duration::from_secs(30), move || {
        std::fs::read_dir(&m2).map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
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
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("appimagefs-fuzz-failures");
    let mut served = 0;
    let mut with_errors = 0;
    for v in &variants {
        let name = app_name(&v.file);
        if !root.contains(&name) {
            continue;
        }
        served += 1;
        let before = fails.len();
        let dir = mnt.join(&name);
        match with_timeout(
            &format!("walk {name}"),
            Duration::from_secs(20),
            move || snapshot(&dir),
        ) {
            Err(e) => {
                fails.push(format!("{} ({}): {e}", name, v.what));
                if !mount_responsive(&mnt) {
                    fails.push("the mount stopped answering; remaining variants skipped");
                    let _ = std::fs::create_dir_all(&keep);
                    let _ = std::fs::write(keep.join(&v.file), &v.data);
                    break;
                }
            }
            Ok(s) => {
                if !s.errors().is_empty() {
                    with_errors += 1;
                    eprintln!(
                        "fuzz variant with read errors: {name}: {} error(s)",
                        s.errors().len()
                    );
                }
                for (p, err) in s.errors() {
                    let ok = matches!(err.errno, Some(e) if ALLOWED_ERRNOS.contains(&e))
                        || (err.errno.is_none() && err.msg.contains("listed twice"));
                    fails.check(ok, || format!("{name} ({}): {}: {err}", v.what, show(&p)));
                }
                let foreign = s.foreign_devices();
                fails.check(foreign.is_empty(), || {
                    format!("{name}: entries outside the mount: {foreign:?}")
                });
            }
        }
        if !mount.is_alive() {
            fails.push(format!(
                "the daemon died while walking {name} ({}); output:\n{}",
                v.what,
                mount.log_text()
            ));
        }
        if fails.len() > before {
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::write(keep.join(&v.file), &v.data);
        }
        if !mount.is_alive() {
            break;
        }
    }
    eprintln!(
        "fuzz: {} variants, {} served as app folders, {} of them with read errors",
        variants.len(),
        served,
        with_errors
    );
    if let Some(pid) = mount.pid() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        fails.check(rss_kb < 1 << 20, || {
            format!("daemon peak RSS {rss_kb} kB (> 1 GiB) after the corrupted images")
        });
    }
    if mount.is_alive() && mount_responsive(&mnt) {
        let truth = sample_app_extraction("echo");
        let expected = snapshot(&truth);
        let dir = mnt.join("good-echo");
        match with_timeout("walk good app", Duration::from_secs(60), move || {
            snapshot(&dir)
        }) {
            Ok(actual) => {
                if let Some(r) = compare_trees(&expected, &actual, &Compare::squashfs()) {
                    fails.push(format!("good-echo after the corrupted ones: {r}"));
                }
            }
            Err(e) => fails.push(format!("good-echo: {e}")),
        }
    }
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    eprintln!("fuzz done in {:.1}s", t0.elapsed().as_secs_f64());
    if !fails.is_empty() {
        fails.push(format!(
            "failing variants kept in {}\ndaemon output:\n{}",
            keep.display(),
            mount.log_text()
        ));
    }
    drop(mount);
    fails.finish("corrupted images");
}
