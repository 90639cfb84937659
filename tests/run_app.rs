//! Running apps through the mount: `MOUNT/<Name>/AppRun ARGS` must print the
//! same stdout and exit with the same status as the AppImage itself run with
//! `--appimage-extract-and-run` (the runtime's own extraction, no FUSE).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

struct Case {
    fixture: &'static str,
    args: &'static [&'static str],
    /// Must appear in the reference run's stdout (so two equally broken runs
    /// cannot pass).
    expect: &'static str,
}

const CASES: &[Case] = &[
    Case {
        fixture: "Echo-x86_64.AppImage",
        args: &["foo", "bar  baz", "\u{fc}n\u{ef}"],
        expect: "foo bar  baz \u{fc}n\u{ef}",
    },
    Case {
        fixture: "Hello_World-x86_64.gzip.AppImage",
        args: &[],
        expect: "Hello world.",
    },
    Case {
        fixture: "Hello_World-x86_64.xz.AppImage",
        args: &[],
        expect: "Hello world.",
    },
    Case {
        fixture: "Hello_World-x86_64.zstd.AppImage",
        args: &["x"],
        expect: "Hello world.",
    },
    Case {
        fixture: "hello-x86_64.AppImage",
        args: &["a", "b c"],
        expect: "Hello, Firejail!",
    },
];

/// The old AppImageKit runtime lists every extracted file on stdout during
/// `--appimage-extract-and-run`; those lines (paths under TMPDIR) are not the
/// app's output and are dropped.
fn normalize(stdout: &[u8], tmpdir: &Path) -> String {
    let prefix = format!("{}/appimage_extracted_", tmpdir.display());
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .collect::<Vec<_>>()
        .join("\n")
}

fn clean_env(cmd: &mut Command) {
    for v in [
        "APPDIR",
        "APPIMAGE",
        "ARGV0",
        "OWD",
        "APPIMAGE_EXTRACT_AND_RUN",
    ] {
        cmd.env_remove(v);
    }
}

#[test]
fn apprun_through_mount_matches_extract_and_run() {
    let tmp = TempDir::new("run-app");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    for c in CASES {
        copy_fixture(c.fixture, &src, c.fixture);
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    for (i, c) in CASES.iter().enumerate() {
        // Reference: a private copy (runs may write next to the AppImage).
        let refdir = tmp.subdir(&format!("ref-{i}"));
        let ref_tmp = tmp.subdir(&format!("ref-tmp-{i}"));
        let copy = copy_fixture(c.fixture, &refdir, c.fixture);
        let mut cmd = Command::new(&copy);
        clean_env(&mut cmd);
        cmd.arg("--appimage-extract-and-run")
            .args(c.args)
            .env("APPIMAGE_EXTRACT_AND_RUN", "1")
            .env("TMPDIR", &ref_tmp)
            .current_dir(&refdir);
        let reference = run_timeout(&mut cmd, Duration::from_secs(60));
        let ref_out = normalize(&reference.stdout, &ref_tmp);
        if !reference.success() || !ref_out.contains(c.expect) {
            fails.push(format!(
                "{}: the reference run (--appimage-extract-and-run) did not work, cannot compare: {}",
                c.fixture,
                reference.describe()
            ));
            continue;
        }

        // Through the mount.
        let app = mnt.join(app_name(c.fixture)).join("AppRun");
        let run_tmp = tmp.subdir(&format!("mnt-tmp-{i}"));
        let mut cmd = Command::new(&app);
        clean_env(&mut cmd);
        // What the AppImage runtime sets before it execs AppRun (some AppRun
        // scripts, e.g. hello's, rely on $APPDIR).
        cmd.args(c.args)
            .env("APPDIR", mnt.join(app_name(c.fixture)))
            .env("APPIMAGE", src.join(c.fixture))
            .env("ARGV0", src.join(c.fixture))
            .env("OWD", &run_tmp)
            .env("TMPDIR", &run_tmp)
            .current_dir(&run_tmp);
        let through = run_timeout(&mut cmd, Duration::from_secs(60));
        let out = normalize(&through.stdout, &run_tmp);
        if through.status.map(|s| s.code()) != reference.status.map(|s| s.code()) || out != ref_out
        {
            fails.push(format!(
                "{}: {} {:?} differs from --appimage-extract-and-run\n=== reference stdout ===\n{}\n=== through the mount ===\n{}",
                c.fixture,
                app.display(),
                c.args,
                ref_out,
                through.describe()
            ));
        }
    }
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("run_app");
}

/// A type 1 AppImage's own `AppRun` (the AppImageKit C launcher, taken from
/// a type 1 fixture) runs through the mount: it finds its AppDir, reads the
/// desktop entry there and executes the program it names. The same AppDir
/// run from a plain directory is the reference.
#[test]
fn type1_apprun_runs_from_the_mount() {
    let tmp = TempDir::new("run-type1");
    let fixture_tree = tmp.subdir("fixture-tree");
    xorriso_extract(&fixture("AppImageExtract_6-x86_64.AppImage"), &fixture_tree)
        .unwrap_or_else(|e| panic!("xorriso extract of the type 1 fixture: {e}"));
    let appdir = tmp.subdir("appdir");
    std::fs::create_dir_all(appdir.join("usr/bin")).unwrap();
    std::fs::copy(fixture_tree.join("AppRun"), appdir.join("AppRun")).unwrap();
    std::fs::write(
        appdir.join("t1.desktop"),
        "[Desktop Entry]\nType=Application\nName=T1\nExec=hello %F\nIcon=t1\n",
    )
    .unwrap();
    std::fs::write(
        appdir.join("usr/bin/hello"),
        "#!/bin/sh\necho \"type1 hello: $*\"\nexit 7\n",
    )
    .unwrap();
    for f in ["AppRun", "usr/bin/hello"] {
        let p = appdir.join(f);
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
    }
    let iso = tmp.join("t1.iso");
    let made = run_timeout(
        command("xorriso", ["-as", "mkisofs", "-R", "-J", "-o"])
            .arg(&iso)
            .arg(&appdir),
        Duration::from_secs(60),
    );
    assert!(made.success(), "xorriso: {}", made.describe());
    let src = tmp.subdir("src");
    wrap_iso_as_appimage(&iso, &src.join("T1.AppImage"));

    let run = |apprun: &Path| {
        let mut cmd = Command::new(apprun);
        clean_env(&mut cmd);
        cmd.args(["one", "two three"]).current_dir(tmp.path());
        run_timeout(&mut cmd, Duration::from_secs(30))
    };
    let reference = run(&appdir.join("AppRun"));
    assert!(
        reference
            .stdout_text()
            .contains("type1 hello: one two three"),
        "reference run: {}",
        reference.describe()
    );
    let mnt = tmp.subdir("mnt");
    let mount = Mount::start(&src, &mnt, &[]);
    let through = run(&mnt.join("T1").join("AppRun"));
    assert_eq!(
        through.stdout_text(),
        reference.stdout_text(),
        "{}",
        through.describe()
    );
    assert_eq!(
        through.status.map(|s| s.code()),
        reference.status.map(|s| s.code())
    );
    assert_eq!(through.status.and_then(|s| s.code()), Some(7));
    drop(mount);
}
