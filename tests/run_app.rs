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
