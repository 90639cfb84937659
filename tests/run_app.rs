//! Running apps through the mount: `MOUNT/<Name>/AppRun ARGS` must print the
//! same stdout and exit with the same status as the app's payload extracted
//! by an independent tool (`unsquashfs`, `xorriso`) and run from there with
//! the variables an AppImage runtime sets (`APPDIR`, `APPIMAGE`, `ARGV0`,
//! `OWD`). Every way of wrapping is run: ELF64 and ELF32 runtimes, no magic
//! bytes, type 1, a file without the `.AppImage` extension.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::apps::{
    app_with, copy_built, make_iso, App, BuiltApp, Comp, Wrap, DESKTOP_EXEC_APPRUN,
};
use crate::common::*;

struct Case {
    app: App,
    comp: Comp,
    wrap: Wrap,
    /// The file name in the source folder.
    file: &'static str,
    args: &'static [&'static str],
    /// Must appear in the reference run's stdout (so two equally broken runs
    /// cannot pass).
    expect: &'static str,
}

const ECHO_ARGS: &[&str] = &["foo", "bar  baz", "\u{fc}n\u{ef}"];
const ECHO_OUT: &str = "foo bar  baz \u{fc}n\u{ef}";

const CASES: &[Case] = &[
    Case {
        app: App::Echo,
        comp: Comp::Gzip,
        wrap: Wrap::Type2,
        file: "Echo-x86_64.AppImage",
        args: ECHO_ARGS,
        expect: ECHO_OUT,
    },
    Case {
        app: App::HelloWorld,
        comp: Comp::Gzip,
        wrap: Wrap::Type2,
        file: "Hello_World-x86_64.gzip.AppImage",
        args: &[],
        expect: "Hello world.",
    },
    Case {
        app: App::HelloWorld,
        comp: Comp::Xz16K,
        wrap: Wrap::Type2,
        file: "Hello_World-x86_64.xz.AppImage",
        args: &[],
        expect: "Hello world.",
    },
    Case {
        app: App::HelloWorld,
        comp: Comp::Zstd,
        wrap: Wrap::Type2,
        file: "Hello_World-x86_64.zstd.AppImage",
        args: &["x"],
        expect: "Hello world.",
    },
    Case {
        app: App::Hello,
        comp: Comp::Zstd,
        wrap: Wrap::Type2,
        file: "Hello-x86_64.AppImage",
        args: &["a", "b c"],
        expect: "Hello from hello-world!\narg: a\narg: b c",
    },
    Case {
        app: App::Hello,
        comp: Comp::Gzip,
        wrap: Wrap::Type2Elf32,
        file: "Hello-i386.AppImage",
        args: &["32"],
        expect: "arg: 32",
    },
    Case {
        app: App::Hello,
        comp: Comp::Xz16K,
        wrap: Wrap::Type2NoMagic,
        file: "Hello-no-magic-bytes.AppImage",
        args: &["no magic"],
        expect: "arg: no magic",
    },
    Case {
        app: App::Hello,
        comp: Comp::Gzip,
        wrap: Wrap::Type2,
        file: "hello-without-extension",
        args: &["bare"],
        expect: "arg: bare",
    },
    Case {
        app: App::Echo,
        comp: Comp::Gzip,
        wrap: Wrap::Type1,
        file: "Echo-type1.AppImage",
        args: ECHO_ARGS,
        expect: ECHO_OUT,
    },
    Case {
        app: App::Echo,
        comp: Comp::Gzip,
        wrap: Wrap::Type1NoMagic,
        file: "Echo-type1-no-magic-bytes.AppImage",
        args: ECHO_ARGS,
        expect: ECHO_OUT,
    },
];

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

/// Runs `appdir/AppRun args` in `cwd` with what an AppImage runtime sets
/// before it runs `AppRun`.
fn run_apprun(appdir: &Path, image: &Path, args: &[&str], cwd: &Path) -> Output {
    let mut cmd = Command::new(appdir.join("AppRun"));
    clean_env(&mut cmd);
    cmd.args(args)
        .env("APPDIR", appdir)
        .env("APPIMAGE", image)
        .env("ARGV0", image)
        .env("OWD", cwd)
        .env("TMPDIR", cwd)
        .current_dir(cwd);
    run_timeout(&mut cmd, Duration::from_secs(60))
}

#[test]
fn apprun_through_mount_matches_extract_and_run() {
    let tmp = TempDir::new("run-app");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let built: Vec<&BuiltApp> = CASES
        .iter()
        .map(|c| app_with(c.app, c.comp, c.wrap))
        .collect();
    for (c, b) in CASES.iter().zip(&built) {
        copy_built(b, &src, c.file);
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    for (i, (c, b)) in CASES.iter().zip(&built).enumerate() {
        let what = format!("{} ({:?}, {:?}, {:?})", c.file, c.app, c.comp, c.wrap);
        // Reference: the payload extracted by unsquashfs or xorriso.
        let extracted = tmp.join(format!("ref-{i}"));
        if let Err(e) = b.extract(&extracted) {
            fails.push(format!("{what}: {e}"));
            continue;
        }
        let ref_cwd = tmp.subdir(&format!("ref-cwd-{i}"));
        let reference = run_apprun(&extracted, &src.join(c.file), c.args, &ref_cwd);
        if !reference.success() || !reference.stdout_text().contains(c.expect) {
            fails.push(format!(
                "{what}: the reference run (extracted payload) did not work, cannot compare: {}",
                reference.describe()
            ));
            continue;
        }

        // Through the mount.
        let appdir = mnt.join(app_name(c.file));
        let run_cwd = tmp.subdir(&format!("mnt-cwd-{i}"));
        let through = run_apprun(&appdir, &src.join(c.file), c.args, &run_cwd);
        if through.status.map(|s| s.code()) != reference.status.map(|s| s.code())
            || through.stdout != reference.stdout
        {
            fails.push(format!(
                "{what}: {}/AppRun {:?} differs from the extracted payload's run\n=== reference stdout ===\n{}\n=== through the mount ===\n{}",
                appdir.display(),
                c.args,
                reference.stdout_text(),
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

/// A type 1 AppImage's own `AppRun` (AppImageKit's launcher logic: it finds
/// its AppDir, reads the desktop entry there and executes the program it
/// names) runs through the mount. The same AppDir run from a plain
/// directory is the reference.
#[test]
fn type1_apprun_runs_from_the_mount() {
    let tmp = TempDir::new("run-type1");
    let appdir = tmp.subdir("appdir");
    std::fs::create_dir_all(appdir.join("usr/bin")).unwrap();
    std::fs::write(appdir.join("AppRun"), DESKTOP_EXEC_APPRUN).unwrap();
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
        set_mode(&appdir.join(f), 0o755);
    }
    let iso = tmp.join("t1.iso");
    make_iso(&appdir, &iso);
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
