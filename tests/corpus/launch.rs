//! The corpus's real apps run through the mount: their launchers in bin/
//! (the way a user starts them) and each Hello World build's AppRun with
//! the environment the AppImage runtime sets, printing what the apps print.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::manifest::Corpus;

/// (file, how to run it, arguments, text its stdout must contain)
const RUNS: &[(&str, &str, &[&str], &str)] = &[
    (
        "Echo-x86_64.AppImage",
        "bin/echo",
        &["foo", "bar  baz", "\u{fc}n\u{ef}"],
        "foo bar  baz \u{fc}n\u{ef}",
    ),
    (
        "hello-x86_64.AppImage",
        "bin/hello-world",
        &["a"],
        "Hello, Firejail!",
    ),
    (
        "Hello_World-x86_64.gzip.AppImage",
        "bin/helloworld",
        &[],
        "Hello world.",
    ),
    (
        "Hello_World-x86_64.gzip.AppImage",
        "AppRun",
        &[],
        "Hello world.",
    ),
    (
        "Hello_World-x86_64.xz.AppImage",
        "AppRun",
        &[],
        "Hello world.",
    ),
    (
        "Hello_World-x86_64.zstd.AppImage",
        "AppRun",
        &["x"],
        "Hello world.",
    ),
];

/// Every listed app's run prints its text and exits 0.
pub fn real_apps_run_through_bin(corpus: &Corpus) {
    let tmp = TempDir::new("corpus-launch");
    let (src, mnt, cwd) = (tmp.subdir("src"), tmp.subdir("mnt"), tmp.subdir("cwd"));
    let runs: Vec<_> = RUNS.iter().filter(|r| corpus.has(r.0)).collect();
    assert!(!runs.is_empty(), "the corpus has none of the apps to run");
    for (file, ..) in &runs {
        if !src.join(file).exists() {
            std::fs::copy(corpus.path(file), src.join(file)).unwrap();
            set_mode(&src.join(file), 0o755);
        }
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    for (file, how, args, want) in &runs {
        let appdir = mnt.join(app_name(file));
        let mut cmd = if *how == "AppRun" {
            let mut c = Command::new(appdir.join("AppRun"));
            c.env("APPDIR", &appdir)
                .env("APPIMAGE", src.join(file))
                .env("ARGV0", src.join(file))
                .env("OWD", &cwd);
            c
        } else {
            let mut c = Command::new(mnt.join(how));
            c.env_remove("APPDIR").env_remove("APPIMAGE");
            c
        };
        cmd.args(args.iter()).current_dir(&cwd);
        let out = run_timeout(&mut cmd, Duration::from_secs(60));
        fails.check(out.success() && out.stdout_text().contains(want), || {
            format!(
                "{file}: {how} {args:?} should print {want:?}: {}",
                out.describe()
            )
        });
    }
    fails.check(mount.is_alive(), || {
        format!("the filesystem process died; output:\n{}", mount.log_text())
    });
    if !fails.is_empty() {
        fails.push(format!("daemon output:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("corpus launch");
}
