//! What needs the corpus's REAL AppImage runtimes and apps: each app run by
//! its own runtime (`--appimage-extract-and-run`, no FUSE) is the reference
//! for `MNT/<app>/AppRun` and the `bin/` launcher through the mount; an
//! AppDir that prints its environment, wrapped with the real runtimes, shows
//! that the launcher sets APPDIR, APPIMAGE, ARGV0 and OWD as they do; the
//! real Leafpad (GTK 2) starts from its menu entry under Xvfb; `inspect`
//! reports the real Leafpad's facts and refuses a plain ELF file.
//!
//! The runtimes of `Echo-x86_64-no_display.AppImage` and
//! `appimaged-x86_64.AppImage` do not implement extract-and-run and need
//! libfuse2 to mount, so they have no reference run here.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::apps::png_rgb;
use crate::common::images::{mksquashfs, wrap_squashfs_with_runtime};
use crate::common::xvfb::{read_xwd, top_window, Killer};
use crate::common::*;
use crate::manifest::Corpus;

/// Removes what an AppImage runtime or our launcher sets, so the values the
/// app sees come from the runtime/launcher only.
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

/// The old AppImageKit runtime lists every extracted file on stdout during
/// extract-and-run; those lines (paths under TMPDIR) are not the app's.
fn drop_extraction_lines(stdout: &[u8], tmpdir: &Path) -> Vec<u8> {
    let prefix = format!("{}/appimage_extracted_", tmpdir.display());
    let mut out = Vec::new();
    for line in stdout.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(prefix.as_bytes()) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Runs `image` by its own runtime: `--appimage-extract-and-run`, or
/// `APPIMAGE_EXTRACT_AND_RUN=1` for runtimes that read the variable.
fn run_by_runtime(image: &Path, env_var: bool, args: &[&str], cwd: &Path, tmpdir: &Path) -> Output {
    let mut c = Command::new(image);
    clean_env(&mut c);
    if env_var {
        c.env("APPIMAGE_EXTRACT_AND_RUN", "1");
    } else {
        c.arg("--appimage-extract-and-run");
    }
    c.args(args)
        .env("TMPDIR", tmpdir)
        .env("PWD", cwd)
        .current_dir(cwd);
    let mut o = run_timeout(&mut c, Duration::from_secs(60));
    o.stdout = drop_extraction_lines(&o.stdout, tmpdir);
    o
}

/// One real app and what its runtime's own run does.
struct RealApp {
    file: &'static str,
    /// Its launcher in bin/.
    launcher: &'static str,
    args: &'static [&'static str],
    /// Text the runtime's run prints.
    want: &'static str,
    /// Whether the runtime's run succeeds.
    ok: bool,
    /// The runtime reads APPIMAGE_EXTRACT_AND_RUN=1.
    env_var: bool,
    /// It gets a menu entry (false: opted out or a broken desktop entry).
    menu: bool,
}

const APPS: &[RealApp] = &[
    RealApp {
        file: "Echo-x86_64.AppImage",
        launcher: "echo",
        args: &["foo", "bar  baz", "\u{fc}n\u{ef}"],
        want: "foo bar  baz \u{fc}n\u{ef}",
        ok: true,
        env_var: false,
        menu: true,
    },
    RealApp {
        file: "Echo-no-integrate-x86_64.AppImage",
        launcher: "echo",
        args: &["a", "b  c"],
        want: "a b  c",
        ok: true,
        env_var: false,
        menu: false,
    },
    RealApp {
        file: "broken-desktop-file-x86_64.AppImage",
        launcher: "echo",
        args: &["a"],
        want: "",
        ok: false,
        env_var: false,
        menu: false,
    },
    RealApp {
        file: "hello-x86_64.AppImage",
        launcher: "hello-world",
        args: &["a", "b c"],
        want: "Hello, Firejail!",
        ok: true,
        env_var: true,
        menu: true,
    },
    RealApp {
        file: "Hello_World-x86_64.gzip.AppImage",
        launcher: "helloworld",
        args: &[],
        want: "Hello world.",
        ok: true,
        env_var: false,
        menu: true,
    },
    RealApp {
        file: "Hello_World-x86_64.xz.AppImage",
        launcher: "helloworld",
        args: &[],
        want: "Hello world.",
        ok: true,
        env_var: true,
        menu: true,
    },
    RealApp {
        file: "Hello_World-x86_64.zstd.AppImage",
        launcher: "helloworld",
        args: &["x"],
        want: "Hello world.",
        ok: true,
        env_var: false,
        menu: true,
    },
];

/// Each real app: `MNT/<app>/AppRun` (with the variables the runtime sets)
/// and `bin/<launcher>` print the same stdout and exit with the same status
/// as the AppImage run by its own runtime, and only the apps that do not
/// opt out (or carry a broken desktop entry) get a menu entry. Apps sharing
/// a launcher name get a mount each.
pub fn apps_match_extract_and_run(corpus: &Corpus) {
    let apps: Vec<_> = APPS.iter().filter(|a| corpus.has(a.file)).collect();
    assert!(!apps.is_empty(), "the corpus has none of the apps to run");
    let mut fails = Failures::new();
    for (i, a) in apps.iter().enumerate() {
        let RealApp {
            file,
            launcher,
            args,
            want,
            ok,
            env_var,
            menu,
        } = **a;
        let tmp = TempDir::new("corpus-runtime");
        let (src, mnt, cwd) = (tmp.subdir("src"), tmp.subdir("mnt"), tmp.subdir("cwd"));
        let image = src.join(file);
        std::fs::copy(corpus.path(file), &image).unwrap();
        set_mode(&image, 0o755);
        // The reference runs from a private copy (runs may write next to it).
        let refdir = tmp.subdir("ref");
        let copy = refdir.join(file);
        std::fs::copy(corpus.path(file), &copy).unwrap();
        set_mode(&copy, 0o755);
        let r = run_by_runtime(&copy, env_var, args, &cwd, &tmp.subdir("rt-tmp"));
        if r.success() != ok || !r.stdout_text().contains(want) {
            fails.push(format!(
                "{file}: the runtime's own run is not as expected (success {ok}, stdout with {want:?}), cannot compare: {}",
                r.describe()
            ));
            continue;
        }
        let mut mount = Mount::start(&src, &mnt, &[]);
        let appdir = mnt.join(app_name(file));
        let mut apprun = Command::new(appdir.join("AppRun"));
        clean_env(&mut apprun);
        apprun
            .args(args.iter())
            .env("APPDIR", &appdir)
            .env("APPIMAGE", &image)
            .env("ARGV0", &image)
            .env("OWD", &cwd)
            .current_dir(&cwd);
        let mut bin = Command::new(mnt.join("bin").join(launcher));
        clean_env(&mut bin);
        bin.args(args.iter()).current_dir(&cwd);
        for (how, cmd) in [("AppRun", &mut apprun), ("bin/", &mut bin)] {
            let o = run_timeout(cmd, Duration::from_secs(60));
            // A failing app's last error line shows the same AppRun ran.
            let last_err = r.stderr_text().lines().last().unwrap_or("").to_string();
            fails.check(
                o.status.map(|s| s.code()) == r.status.map(|s| s.code())
                    && o.stdout == r.stdout
                    && (ok || o.stderr_text().contains(&last_err)),
                || {
                    format!(
                        "{file} ({i}): {how}{} {args:?} differs from --appimage-extract-and-run\n=== runtime ===\n{}\n=== through the mount ===\n{}",
                        if how == "bin/" { launcher } else { "" },
                        r.describe(),
                        o.describe()
                    )
                },
            );
        }
        let entries: Vec<String> = std::fs::read_dir(mnt.join("share/applications"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let expected: Vec<String> = if menu {
            vec![format!("appimagefs-{launcher}.desktop")]
        } else {
            Vec::new()
        };
        fails.check(entries == expected, || {
            format!("{file}: menu entries {entries:?}, expected {expected:?}")
        });
        fails.check(mount.is_alive(), || {
            format!("{file}: the daemon died:\n{}", mount.log_text())
        });
        drop(mount);
    }
    fails.finish("corpus runtimes");
}

/// Prints the variables an AppImage runtime sets, its own path, the
/// physical cwd, its arguments and then its whole environment, one
/// NUL-terminated field each.
const ENVDUMP_APPRUN: &str = r#"#!/bin/sh
printf '%s\0' "APPIMAGE=${APPIMAGE-<unset>}" "APPDIR=${APPDIR-<unset>}" "ARGV0=${ARGV0-<unset>}" "OWD=${OWD-<unset>}" "SELF=$0" "CWD=$(pwd -P)"
for a in "$@"; do printf 'ARG=%s\0' "$a"; done
printf 'ENV\0'
env -0
"#;

/// envdump's output: the named fields, the arguments, the environment.
struct Dump {
    vars: BTreeMap<String, Vec<u8>>,
    args: Vec<Vec<u8>>,
    env: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Dump {
    fn parse(stdout: &[u8]) -> Result<Dump, String> {
        let mut d = Dump {
            vars: BTreeMap::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
        };
        let mut in_env = false;
        let fields = stdout.split(|&b| b == 0).filter(|f| !f.is_empty());
        for f in fields {
            if f == b"ENV" {
                in_env = true;
                continue;
            }
            let eq = f.iter().position(|&b| b == b'=').ok_or("field without =")?;
            let (k, v) = (&f[..eq], f[eq + 1..].to_vec());
            if in_env {
                d.env.insert(k.to_vec(), v);
            } else if k == b"ARG" {
                d.args.push(v);
            } else {
                d.vars.insert(String::from_utf8_lossy(k).into_owned(), v);
            }
        }
        if !in_env {
            return Err("no ENV marker in the output".into());
        }
        Ok(d)
    }

    fn var(&self, k: &str) -> &[u8] {
        self.vars.get(k).map_or(b"<missing>", |v| v.as_slice())
    }
}

/// An AppDir printing its environment, wrapped with the real runtimes of
/// hello (type2-runtime, reads APPIMAGE_EXTRACT_AND_RUN) and Echo
/// (AppImageKit, takes `--appimage-extract-and-run`): the launcher in bin/
/// passes the arguments and sets APPIMAGE, APPDIR (the folder of the AppRun
/// that runs), ARGV0 (the path invoked) and OWD (the physical cwd) as the
/// runtime does, and changes nothing else in the environment.
pub fn launcher_env_matches_real_runtimes(corpus: &Corpus) {
    let tmp = TempDir::new("corpus-envdump");
    let (src, mnt, cwd) = (tmp.subdir("src"), tmp.subdir("mnt"), tmp.subdir("cwd dir"));
    let appdir = tmp.subdir("appdir");
    std::fs::write(appdir.join("AppRun"), ENVDUMP_APPRUN).unwrap();
    set_mode(&appdir.join("AppRun"), 0o755);
    let sqfs = tmp.join("envdump.sqfs");
    // (runtime taken from, built file, launcher, runtime reads the variable)
    let builds = [
        (
            "hello-x86_64.AppImage",
            "EnvDump-x86_64.AppImage",
            "envdump",
            true,
        ),
        (
            "Echo-x86_64.AppImage",
            "EnvDumpOld-x86_64.AppImage",
            "envdump-old",
            false,
        ),
    ];
    let builds: Vec<_> = builds.iter().filter(|b| corpus.has(b.0)).collect();
    assert!(!builds.is_empty(), "the corpus has neither hello nor Echo");
    for &&(from, file, stem, _) in &builds {
        for f in ["envdump.desktop", "envdump-old.desktop"] {
            let _ = std::fs::remove_file(appdir.join(f));
        }
        std::fs::write(
            appdir.join(format!("{stem}.desktop")),
            format!(
                "[Desktop Entry]\nType=Application\nName=Env Dump\nExec={stem} %F\nIcon={stem}\n"
            ),
        )
        .unwrap();
        let _ = std::fs::remove_file(&sqfs);
        mksquashfs(&appdir, &sqfs, &["-all-root"]);
        let row = corpus.rows.iter().find(|r| r.file == from).unwrap();
        let off = row.sqfs_offset().expect("sqfs_offset in the manifest") as usize;
        let data = std::fs::read(corpus.path(from)).unwrap();
        assert_eq!(&data[off..off + 4], b"hsqs", "{from}: no SquashFS at {off}");
        wrap_squashfs_with_runtime(&data[..off], &sqfs, &src.join(file));
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let args = ["plain", "", "two  words", "$(touch pwned)", "*", "%f"];
    let phys = cwd.canonicalize().unwrap();
    for &&(from, file, stem, env_var) in &builds {
        let image = src.join(file);
        let launcher = mnt.join("bin").join(stem);
        let r = run_by_runtime(
            &image,
            env_var,
            &args,
            &cwd,
            &tmp.subdir(&format!("rt-{stem}")),
        );
        let mut c = Command::new(&launcher);
        clean_env(&mut c);
        c.args(args)
            .env("TMPDIR", tmp.subdir(&format!("ln-{stem}")))
            .env("PWD", &cwd)
            .current_dir(&cwd);
        let l = run_timeout(&mut c, Duration::from_secs(60));
        let what = format!("{file} (runtime of {from}) via {}", launcher.display());
        let (rd, ld) = match (Dump::parse(&r.stdout), Dump::parse(&l.stdout)) {
            (Ok(a), Ok(b)) if r.success() && l.success() => (a, b),
            (a, b) => {
                fails.push(format!(
                    "{what}: unusable output: runtime {:?} / launcher {:?}\nruntime: {}\nlauncher: {}",
                    a.err(),
                    b.err(),
                    r.describe(),
                    l.describe()
                ));
                continue;
            }
        };
        let want: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        fails.check(ld.args == want && rd.args == want, || {
            format!(
                "{what}: args: launcher {:?}, runtime {:?}",
                ld.args, rd.args
            )
        });
        let img = image.as_os_str().as_bytes();
        fails.check(
            ld.var("APPIMAGE") == img && rd.var("APPIMAGE") == img,
            || {
                format!(
                    "{what}: APPIMAGE: launcher {}, runtime {}, expected {}",
                    show(ld.var("APPIMAGE")),
                    show(rd.var("APPIMAGE")),
                    image.display()
                )
            },
        );
        // APPDIR: the runtime's is its extraction folder; for both it is
        // the folder holding the AppRun that runs.
        let app = mnt.join(app_name(file));
        fails.check(ld.var("APPDIR") == app.as_os_str().as_bytes(), || {
            format!(
                "{what}: APPDIR {}, expected {}",
                show(ld.var("APPDIR")),
                app.display()
            )
        });
        for (who, d) in [("launcher", &ld), ("runtime", &rd)] {
            let self_dir = Path::new(std::ffi::OsStr::from_bytes(d.var("SELF"))).parent();
            fails.check(
                self_dir.map(|p| p.as_os_str().as_bytes()) == Some(d.var("APPDIR")),
                || {
                    format!(
                        "{what}: {who}: APPDIR {} is not the folder of the AppRun that ran ({})",
                        show(d.var("APPDIR")),
                        show(d.var("SELF"))
                    )
                },
            );
        }
        // ARGV0: the path invoked, as the runtime's argv[0].
        fails.check(
            ld.var("ARGV0") == launcher.as_os_str().as_bytes() && rd.var("ARGV0") == img,
            || {
                format!(
                    "{what}: ARGV0: launcher {}, runtime {}",
                    show(ld.var("ARGV0")),
                    show(rd.var("ARGV0"))
                )
            },
        );
        // OWD: the physical cwd (runtimes set it only when they mount).
        fails.check(ld.var("OWD") == phys.as_os_str().as_bytes(), || {
            format!(
                "{what}: OWD {}, expected {}",
                show(ld.var("OWD")),
                phys.display()
            )
        });
        fails.check(ld.var("CWD") == rd.var("CWD"), || {
            format!(
                "{what}: cwd: launcher {}, runtime {}",
                show(ld.var("CWD")),
                show(rd.var("CWD"))
            )
        });
        fails.check(
            ld.env.get(&b"DESKTOPINTEGRATION"[..]).map(Vec::as_slice) == Some(&b"appimagefs"[..]),
            || {
                format!(
                    "{what}: DESKTOPINTEGRATION {:?}, expected appimagefs",
                    ld.env.get(&b"DESKTOPINTEGRATION"[..]).map(|v| show(v))
                )
            },
        );
        // The launcher sets DESKTOPINTEGRATION; nothing else differs.
        let ignore: &[&[u8]] = &[
            b"APPDIR",
            b"DESKTOPINTEGRATION",
            b"OWD",
            b"ARGV0",
            b"APPIMAGE",
            b"_",
            b"TMPDIR",
            b"APPIMAGE_EXTRACT_AND_RUN",
            b"PWD",
            b"OLDPWD",
            b"SHLVL",
        ];
        let mut diff: Vec<String> = ld
            .env
            .keys()
            .chain(rd.env.keys())
            .filter(|k| !ignore.contains(&k.as_slice()) && ld.env.get(*k) != rd.env.get(*k))
            .map(|k| show(k))
            .collect();
        diff.sort();
        diff.dedup();
        fails.check(diff.is_empty(), || {
            format!("{what}: environment variables differ between launcher and runtime: {diff:?}")
        });
        eprintln!(
            "INFO corpus: {file}: runtime APPDIR={} OWD={}; launcher APPDIR={} OWD={}",
            show(rd.var("APPDIR")),
            show(rd.var("OWD")),
            show(ld.var("APPDIR")),
            show(ld.var("OWD"))
        );
    }
    for dir in [&cwd, &src] {
        fails.check(!dir.join("pwned").exists(), || {
            format!(
                "a hostile argument was executed: {}/pwned exists",
                dir.display()
            )
        });
    }
    fails.check(mount.is_alive(), || "the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("corpus launcher environment");
}

/// `appimagefs inspect` on the real Leafpad: type 2, x86_64, the payload
/// at 112632 (gzip, 128 KiB blocks), its update information (bintray-zsync)
/// and signature; on `elffile`, a plain ELF program: not usable, with the
/// reason, and exit status 1; `--json` says the same.
pub fn inspect_real_files(corpus: &Corpus) {
    let good = corpus.path("Leafpad-0.8.18.1.glibc2.4-x86_64.AppImage");
    let bad = corpus.path("elffile");
    let text = run_timeout(
        Command::new(appimagefs_bin()).arg("inspect").arg(&good),
        Duration::from_secs(30),
    );
    assert!(text.success(), "{}", text.describe());
    let out = text.stdout_text();
    for fact in [
        "type:           2",
        "x86_64",
        "offset 112632",
        "gzip, block size 131072",
        "Leafpad",
        "bintray-zsync",
        "signed:         yes",
    ] {
        assert!(out.contains(fact), "missing {fact:?} in:\n{out}");
    }
    let plain = run_timeout(
        Command::new(appimagefs_bin()).arg("inspect").arg(&bad),
        Duration::from_secs(30),
    );
    assert_eq!(
        plain.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        plain.describe()
    );
    assert!(
        plain
            .stdout_text()
            .contains("a plain program, not an AppImage"),
        "{}",
        plain.describe()
    );
    let json = run_timeout(
        Command::new(appimagefs_bin())
            .args(["inspect", "--json"])
            .arg(&good)
            .arg(&bad),
        Duration::from_secs(30),
    );
    assert_eq!(
        json.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        json.describe()
    );
    let out = json.stdout_text();
    assert!(
        out.trim_start().starts_with('[') && out.trim_end().ends_with(']'),
        "{out}"
    );
    assert!(
        out.contains("\"usable\": true") && out.contains("\"usable\": false"),
        "{out}"
    );
    assert!(out.contains("\"payload_offset\": 112632"), "{out}");
    assert!(out.contains("a plain program, not an AppImage"), "{out}");
}

// ---------------------------------------------------------------------------
// The real Leafpad under Xvfb

/// Kills a process group on drop.
/// Distinct colours a drawn Leafpad window shows at least (menu bar text,
/// backgrounds, the text area's border); an undrawn one shows one.
const MIN_COLOURS: usize = 3;

/// The real Leafpad (GTK 2, needs the host's libgtk2.0-0) started the way a
/// desktop does: its menu entry's `Exec` line with `%f` dropped, under
/// Xvfb. Its window is mapped, something is drawn in it, and the process
/// runs a program inside the mount. The screenshot is saved as
/// `target/tmp/corpus-leafpad.png`.
pub fn leafpad_starts_from_its_menu_entry(corpus: &Corpus) {
    let fx = "Leafpad-0.8.18.1.glibc2.4-x86_64.AppImage";
    let tmp = TempDir::new("corpus-gui");
    let (src, mnt) = (tmp.subdir("src"), tmp.subdir("mnt"));
    std::fs::copy(corpus.path(fx), src.join(fx)).unwrap();
    set_mode(&src.join(fx), 0o755);
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let entry = mnt.join("share/applications/appimagefs-leafpad.desktop");
    let text = std::fs::read_to_string(&entry).unwrap_or_default();
    let Some(exec) = text
        .lines()
        .skip_while(|l| l.trim() != "[Desktop Entry]")
        .find_map(|l| l.strip_prefix("Exec="))
    else {
        fails.push(format!("no Exec line in {}: {text:?}", entry.display()));
        drop(mount);
        return fails.finish("corpus gui");
    };
    // Our entries quote nothing for a plain mount path; field codes go.
    let argv: Vec<&str> = exec
        .split_whitespace()
        .filter(|a| !(a.len() == 2 && a.starts_with('%')))
        .collect();
    fails.check(
        argv.len() == 1 && Path::new(argv[0]).starts_with(&mnt),
        || format!("Exec={exec:?} is not one program inside the mount"),
    );
    eprintln!("INFO corpus: GUI: Exec={exec:?} -> {argv:?}");

    // Xvfb on a free display, its frame buffer in an XWD file.
    let n = (50..99)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("no free X display number");
    let display = format!(":{n}");
    let fbdir = tmp.subdir("fb");
    let xvfb = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
            "-fbdir",
        ])
        .arg(&fbdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start Xvfb ({e}); scripts/setup.sh installs the xvfb package")
        });
    let _xvfb = Killer(xvfb);
    let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
    let ready = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < ready {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sock.exists(), "Xvfb {display} did not come up within 10 s");
    let fb = fbdir.join("Xvfb_screen0");
    let mut before = read_xwd(&fb);
    while before.is_err() && Instant::now() < ready {
        std::thread::sleep(Duration::from_millis(50));
        before = read_xwd(&fb);
    }
    let before = before.expect("screenshot before");
    fails.check(before.colours(0, 0, before.w, before.h) == 1, || {
        "the empty Xvfb screen is not one flat colour; the screenshot check would prove nothing"
            .into()
    });

    let home = tmp.subdir("home");
    let t0 = Instant::now();
    let app = Command::new(argv[0])
        .args(&argv[1..])
        .env("DISPLAY", &display)
        .env("HOME", &home)
        .env("NO_AT_BRIDGE", "1")
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(tmp.join("app.log")).unwrap())
        .stderr(std::fs::File::create(tmp.join("app.err")).unwrap())
        .process_group(0)
        .spawn()
        .expect("start the menu entry's Exec program");
    let app_pid = app.id() as i32;
    let app = Killer(app);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut win = None;
    while win.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        win = top_window(&display, "(\"leafpad\" \"Leafpad\")");
    }
    let png_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("corpus-leafpad.png");
    match win {
        None => fails.push(format!(
            "no mapped Leafpad window on {display} within 30 s (is libgtk2.0-0 installed? scripts/setup.sh does); xwininfo:\n{}\napp stderr:\n{}",
            run_timeout(
                &mut command("xwininfo", ["-display", display.as_str(), "-root", "-tree"]),
                Duration::from_secs(10)
            )
            .stdout_text(),
            std::fs::read_to_string(tmp.join("app.err")).unwrap_or_default()
        )),
        Some((id, x, y, w, h)) => {
            eprintln!(
                "INFO corpus: GUI: Leafpad window {id} {w}x{h}+{x}+{y} after {:.1}s",
                t0.elapsed().as_secs_f64()
            );
            let mut shot = read_xwd(&fb).unwrap();
            let until = Instant::now() + Duration::from_secs(5);
            while shot.colours(x, y, w, h) < MIN_COLOURS && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(200));
                shot = read_xwd(&fb).unwrap();
            }
            std::fs::create_dir_all(png_path.parent().unwrap()).unwrap();
            std::fs::write(&png_path, png_rgb(shot.w as u32, shot.h as u32, &shot.rgb)).unwrap();
            let inside = shot.colours(x, y, w, h);
            eprintln!(
                "INFO corpus: GUI: screenshot {} ({inside} colours in the window)",
                png_path.display()
            );
            fails.check(inside >= MIN_COLOURS, || {
                format!(
                    "the Leafpad window area has only {inside} colour(s): nothing drawn (screenshot {})",
                    png_path.display()
                )
            });
            let exe = std::fs::read_link(format!("/proc/{app_pid}/exe")).unwrap_or_default();
            fails.check(exe.starts_with(&mnt), || {
                format!("the started process runs {}, not a program inside the mount", exe.display())
            });
        }
    }
    drop(app);
    fails.check(mount.is_alive(), || "the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("corpus gui");
}
