//! Apps behaving as a desktop user expects (issue 17): every version
//! reachable under `bin/`, `DESKTOPINTEGRATION`, per-app `.env` settings,
//! file types under `share/mime/`, and Chromium's sandbox. Every AppImage
//! here is built at test time (mksquashfs + the stand-in runtime).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

/// Prints the `marker` file of its AppDir, a NUL, then its arguments and
/// its environment, each NUL-terminated (`ARG=` before each argument).
const DUMP_APPRUN: &str = "#!/bin/sh\n\
cat \"$APPDIR/marker\"\n\
printf '\\0'\n\
for a in \"$@\"; do printf 'ARG=%s\\0' \"$a\"; done\n\
env -0\n";

/// A file of a test AppDir: path, contents, mode.
pub type AppFile = (String, Vec<u8>, u32);

/// The files of an AppDir whose `AppRun` is [`DUMP_APPRUN`], with a
/// desktop entry `<stem>.desktop` (with `extra` lines) and `marker`.
pub fn dump_app(stem: &str, marker: &str, extra: &str) -> Vec<AppFile> {
    let desktop = format!(
        "[Desktop Entry]\nType=Application\nName={stem}\nExec={stem} %F\nIcon={stem}\nCategories=Utility;\n{extra}"
    );
    vec![
        ("AppRun".into(), DUMP_APPRUN.as_bytes().to_vec(), 0o755),
        ("marker".into(), marker.as_bytes().to_vec(), 0o644),
        (format!("{stem}.desktop"), desktop.into_bytes(), 0o644),
    ]
}

/// Builds a type 2 AppImage at `out` holding `files`.
pub fn build_appimage(out: &Path, files: &[AppFile]) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let root = build_dir().join(format!("desktop-tree-{n}"));
    let _ = std::fs::remove_dir_all(&root);
    for (path, bytes, mode) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        set_mode(&p, *mode);
    }
    std::fs::create_dir_all(&root).unwrap();
    let sqfs = build_dir().join(format!("desktop-{n}.sqfs"));
    mksquashfs(&root, &sqfs, &["-comp", "gzip", "-all-root"]);
    wrap_squashfs_as_appimage(&sqfs, out);
    let _ = std::fs::remove_file(&sqfs);
    let _ = std::fs::remove_dir_all(&root);
}

/// What a [`DUMP_APPRUN`] app printed.
struct Dump {
    marker: String,
    args: Vec<Vec<u8>>,
    env: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Dump {
    fn var(&self, name: &str) -> Option<String> {
        self.env
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Runs `bin/<launcher>` of the mount with `args` and parses its dump.
fn run_launcher(mnt: &Path, launcher: &str, args: &[&str]) -> Result<Dump, String> {
    let mut cmd = Command::new(mnt.join("bin").join(launcher));
    cmd.args(args)
        .env_remove("DESKTOPINTEGRATION")
        .env_remove("APPDIR");
    let out = run_timeout(&mut cmd, Duration::from_secs(20));
    if !out.success() {
        return Err(format!("bin/{launcher}: {}", out.describe()));
    }
    let mut fields = out.stdout.split(|&b| b == 0);
    let marker = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let mut dump = Dump {
        marker,
        args: Vec::new(),
        env: BTreeMap::new(),
    };
    for f in fields.filter(|f| !f.is_empty()) {
        if let Some(arg) = f.strip_prefix(b"ARG=") {
            dump.args.push(arg.to_vec());
        } else if let Some(eq) = f.iter().position(|&b| b == b'=') {
            dump.env.insert(f[..eq].to_vec(), f[eq + 1..].to_vec());
        }
    }
    Ok(dump)
}

/// Names in a folder of the mount, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Retries `check` every 50 ms until it returns `Ok` or `limit` passes;
/// the last error otherwise.
fn eventually(
    limit: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > limit => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---------------------------------------------------------------------------
// Versions and DESKTOPINTEGRATION

#[test]
fn every_version_has_a_launcher_and_the_menu_shows_the_newest() {
    let tmp = TempDir::new("desktop-versions");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let apps: &[(&str, &str, Option<&str>)] = &[
        ("foo-1.9.AppImage", "foo", Some("1.9")),
        ("foo-1.10.AppImage", "foo", Some("1.10")),
        ("foo-nover.AppImage", "foo", None),
        ("bar.AppImage", "bar", Some("2.0 (Beta) $(touch pwned)")),
    ];
    for (file, stem, version) in apps {
        let extra = version
            .map(|v| format!("X-AppImage-Version={v}\n"))
            .unwrap_or_default();
        build_appimage(&src.join(file), &dump_app(stem, file, &extra));
    }
    let mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let bin = listing(&mnt.join("bin"));
    let want = [
        "bar",
        "bar-2.0-beta-touch-pwned",
        "foo",
        "foo-1.10",
        "foo-1.9",
    ];
    fails.check(bin == want, || {
        format!("bin/ holds {bin:?}, expected {want:?}")
    });
    for (launcher, file) in [
        ("foo", "foo-1.10.AppImage"),
        ("foo-1.10", "foo-1.10.AppImage"),
        ("foo-1.9", "foo-1.9.AppImage"),
        ("bar-2.0-beta-touch-pwned", "bar.AppImage"),
    ] {
        match run_launcher(&mnt, launcher, &["x y"]) {
            Ok(d) => {
                fails.check(d.marker == file, || {
                    format!("bin/{launcher} ran {:?}, expected {file}", d.marker)
                });
                fails.check(d.args == [b"x y".to_vec()], || {
                    format!("bin/{launcher}: arguments {:?}", d.args)
                });
                let appimage = src.join(file).canonicalize().unwrap();
                fails.check(
                    d.var("APPIMAGE").as_deref() == Some(&*appimage.to_string_lossy()),
                    || format!("bin/{launcher}: APPIMAGE={:?}", d.var("APPIMAGE")),
                );
                fails.check(
                    d.var("DESKTOPINTEGRATION").as_deref() == Some("appimagefs"),
                    || {
                        format!(
                            "bin/{launcher}: DESKTOPINTEGRATION={:?}",
                            d.var("DESKTOPINTEGRATION")
                        )
                    },
                );
            }
            Err(e) => fails.push(e),
        }
    }
    let menu = listing(&mnt.join("share/applications"));
    fails.check(
        menu == ["appimagefs-bar.desktop", "appimagefs-foo.desktop"],
        || format!("the menu holds {menu:?}, expected one entry per app"),
    );
    let foo = std::fs::read_to_string(mnt.join("share/applications/appimagefs-foo.desktop"))
        .unwrap_or_default();
    fails.check(foo.contains("X-AppImage-Version=1.10\n"), || {
        format!("the menu's foo is not the newest:\n{foo}")
    });
    fails.check(
        !src.join("pwned").exists() && !mnt.join("pwned").exists(),
        || "a version string ran a command".into(),
    );
    // inspect names the launchers each file gets.
    let out = run_timeout(
        Command::new(appimagefs_bin())
            .arg("inspect")
            .arg(src.join("foo-1.10.AppImage")),
        Duration::from_secs(30),
    );
    fails.check(
        out.stdout_text()
            .contains("\n  launchers:      foo foo-1.10\n"),
        || format!("inspect does not list the launchers: {}", out.describe()),
    );
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("versions");
}

// ---------------------------------------------------------------------------
// Per-app settings

/// Values that would run code or break naive quoting if a shell evaluated
/// them; every one must reach the app byte for byte.
const HOSTILE_VALUES: &[&str] = &[
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    "${HOME} $0 * ? ~ ; & | < > !",
    "\\ back\\slash",
];

/// The value of `HOSTILE_VALUES[i]` written as a single-quoted `.env` value
/// when it holds no `'`, else double-quoted with `\"`, `\\` and `\$` escaped.
fn env_line(name: &str, value: &str) -> String {
    if value.contains('\'') {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$");
        format!("{name}=\"{escaped}\"\n")
    } else {
        format!("{name}='{value}'\n")
    }
}

#[test]
fn settings_files_are_exported_literally_and_followed_live() {
    let tmp = TempDir::new("desktop-env");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let app = src.join("envapp.AppImage");
    build_appimage(&app, &dump_app("envapp", "envapp", ""));
    build_appimage(&src.join("other.AppImage"), &dump_app("other", "other", ""));
    let env_file = src.join("envapp.AppImage.env");
    let mut text = String::from("# settings\nexport PLAIN=hello world # comment\nunset GONE\n");
    for (i, v) in HOSTILE_VALUES.iter().enumerate() {
        text.push_str(&env_line(&format!("HOSTILE{i}"), v));
    }
    text.push_str("BROKEN-NAME=1\nAPPDIR=/elsewhere\nLAST=ok\n");
    std::fs::write(&env_file, &text).unwrap();
    let mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let run = |launcher: &str| {
        let mut cmd = Command::new(mnt.join("bin").join(launcher));
        cmd.current_dir(&src).env("GONE", "inherited");
        let out = run_timeout(&mut cmd, Duration::from_secs(20));
        let mut env = BTreeMap::new();
        for f in out.stdout.split(|&b| b == 0).skip(1) {
            if let Some(eq) = f.iter().position(|&b| b == b'=') {
                env.insert(
                    String::from_utf8_lossy(&f[..eq]).into_owned(),
                    String::from_utf8_lossy(&f[eq + 1..]).into_owned(),
                );
            }
        }
        (out, env)
    };
    let (out, env) = run("envapp");
    fails.check(out.success(), || out.describe());
    fails.check(
        env.get("PLAIN").map(String::as_str) == Some("hello world"),
        || format!("PLAIN={:?}", env.get("PLAIN")),
    );
    fails.check(!env.contains_key("GONE"), || {
        "unset GONE had no effect".into()
    });
    for (i, v) in HOSTILE_VALUES.iter().enumerate() {
        let got = env.get(&format!("HOSTILE{i}"));
        fails.check(got.map(String::as_str) == Some(*v), || {
            format!("HOSTILE{i}: got {got:?}, expected {v:?}")
        });
    }
    fails.check(env.get("LAST").map(String::as_str) == Some("ok"), || {
        "the line after the broken ones was not applied".into()
    });
    let appdir = mnt.join("envapp");
    fails.check(
        env.get("APPDIR").map(String::as_str) == Some(&*appdir.to_string_lossy()),
        || format!("APPDIR was changed: {:?}", env.get("APPDIR")),
    );
    fails.check(!src.join("pwned").exists(), || {
        "a value was executed".into()
    });
    let (_, other) = run("other");
    fails.check(!other.contains_key("PLAIN"), || {
        "another app got envapp's settings".into()
    });

    // Followed live: a change, a chmod that makes the file unusable, removal.
    std::fs::write(&env_file, "PLAIN=changed\n").unwrap();
    if let Err(e) = eventually(Duration::from_secs(5), || {
        let (_, env) = run("envapp");
        match env.get("PLAIN").map(String::as_str) {
            Some("changed") if !env.contains_key("LAST") => Ok(()),
            other => Err(format!("after the change, PLAIN={other:?}")),
        }
    }) {
        fails.push(e);
    }
    set_mode(&env_file, 0o600);
    if let Err(e) = eventually(Duration::from_secs(5), || {
        let (_, env) = run("envapp");
        match env.get("PLAIN") {
            None => Ok(()),
            Some(v) => Err(format!(
                "a settings file only root may read still applies: {v}"
            )),
        }
    }) {
        fails.push(e);
    }
    set_mode(&env_file, 0o644);
    std::fs::remove_file(&env_file).unwrap();
    if let Err(e) = eventually(Duration::from_secs(5), || {
        let (_, env) = run("envapp");
        match env.get("PLAIN") {
            None => Ok(()),
            Some(v) => Err(format!("after removal, PLAIN={v}")),
        }
    }) {
        fails.push(e);
    }
    let log = mount.log_text();
    let broken = log.matches("BROKEN-NAME").count();
    fails.check(broken == 1, || {
        format!("the broken line was logged {broken} times, expected once")
    });
    fails.check(log.contains("APPDIR is set by the launcher"), || {
        "the APPDIR line was not reported".into()
    });
    fails.check(!log.contains("skipping"), || {
        "a settings file was examined as an AppImage".into()
    });
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{log}"));
    }
    drop(mount);
    fails.finish("settings files");
}

// ---------------------------------------------------------------------------
// File types

/// A MIME package defining `type` for `*.<ext>` files and for files that
/// start with `magic`.
pub fn mime_package(ty: &str, ext: &str, magic: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{ty}">
    <comment>Test document &amp; more</comment>
    <comment xml:lang="de">Testdokument</comment>
    <sub-class-of type="text/plain"/>
    <glob pattern="*.{ext}"/>
    <magic priority="90"><match type="string" offset="0" value="{magic}"/></magic>
    <generic-icon name="text-x-generic"/>
  </mime-type>
</mime-info>
"#
    )
    .into_bytes()
}

/// Runs `gio ARGS` seeing the mount's `share/` before `/usr/share` (which
/// has a `mime.cache` of its own) and an empty home.
fn gio(mnt: &Path, home: &Path, args: &[&str]) -> Output {
    let mut dirs = mnt.join("share").into_os_string();
    dirs.push(":/usr/share");
    let mut cmd = Command::new("gio");
    cmd.args(args)
        .env("XDG_DATA_DIRS", dirs)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CONFIG_DIRS", home.join("etc"))
        .env("HOME", home)
        .env("GIO_USE_VFS", "local")
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
    run_timeout(&mut cmd, Duration::from_secs(30))
}

fn content_type(mnt: &Path, home: &Path, file: &Path) -> String {
    let out = gio(
        mnt,
        home,
        &[
            "info",
            "-a",
            "standard::content-type",
            &file.to_string_lossy(),
        ],
    );
    out.stdout_text()
        .lines()
        .find_map(|l| l.trim().strip_prefix("standard::content-type: "))
        .map(str::to_string)
        .unwrap_or_else(|| format!("<none: {}>", out.describe()))
}

#[test]
fn file_types_of_apps_are_known_through_share_mime() {
    let tmp = TempDir::new("desktop-mime");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let home = tmp.subdir("home");
    let mut files = dump_app(
        "fooview",
        "fooview",
        "MimeType=application/x-appimagefs-foo;\n",
    );
    files.push((
        "usr/share/mime/packages/fooview.xml".into(),
        mime_package(
            "application/x-appimagefs-foo",
            "appimagefsfoo",
            "APPIMAGEFS-FOO",
        ),
        0o644,
    ));
    build_appimage(&src.join("fooview.AppImage"), &files);
    let mut files = dump_app(
        "barview",
        "barview",
        "MimeType=application/x-appimagefs-bar;\n",
    );
    files.push((
        "usr/share/mime/packages/barview.xml".into(),
        mime_package(
            "application/x-appimagefs-bar",
            "appimagefsbar",
            "APPIMAGEFS-BAR",
        ),
        0o644,
    ));
    build_appimage(&src.join("barview.AppImage"), &files);
    // Hostile packages: not well-formed; a loop of parents, a glob for
    // every file, names that would break the database's line format, and
    // matches nested beyond the bound.
    let deep =
        "<match type=\"string\" offset=\"0\" value=\"x\">".repeat(50) + &"</match>".repeat(50);
    let hostile = format!(
        r#"<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="application/x-loop-a"><sub-class-of type="application/x-loop-b"/><glob pattern="*"/><glob pattern="*.a:b"/></mime-type>
  <mime-type type="application/x-loop-b"><sub-class-of type="application/x-loop-a"/></mime-type>
  <mime-type type="bad type&#10;x/y"><glob pattern="*.evil"/></mime-type>
  <mime-type type="application/x-deep"><magic>{deep}</magic><glob pattern="*.deep"/></mime-type>
</mime-info>"#
    );
    let mut files = dump_app("evil", "evil", "MimeType=application/x-loop-a;\n");
    files.push((
        "usr/share/mime/packages/evil.xml".into(),
        hostile.into_bytes(),
        0o644,
    ));
    files.push((
        "usr/share/mime/packages/broken.xml".into(),
        b"<mime-info><mime-type type=\"application/x-broken\"><glob pattern=\"*.broken\"></mime-info>".to_vec(),
        0o644,
    ));
    build_appimage(&src.join("evil.AppImage"), &files);
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let packages = listing(&mnt.join("share/mime/packages"));
    // broken.xml is not well-formed: it is not linked either.
    let want = [
        "appimagefs-barview-barview.xml",
        "appimagefs-evil-evil.xml",
        "appimagefs-fooview-fooview.xml",
    ];
    fails.check(packages == want, || {
        format!("share/mime/packages: {packages:?}")
    });
    let linked = std::fs::read(mnt.join("share/mime/packages/appimagefs-fooview-fooview.xml"));
    fails.check(
        linked.as_deref().ok()
            == Some(
                &mime_package(
                    "application/x-appimagefs-foo",
                    "appimagefsfoo",
                    "APPIMAGEFS-FOO",
                )[..],
            ),
        || format!("the linked package does not read as the app's: {linked:?}"),
    );
    let db = listing(&mnt.join("share/mime"));
    for name in [
        "globs2",
        "magic",
        "subclasses",
        "aliases",
        "types",
        "icons",
        "generic-icons",
        "mime.cache",
    ] {
        fails.check(db.iter().any(|n| n == name), || {
            format!("share/mime/{name} missing: {db:?}")
        });
    }
    let subclasses = std::fs::read_to_string(mnt.join("share/mime/subclasses")).unwrap_or_default();
    fails.check(
        subclasses
            .lines()
            .filter(|l| l.starts_with("application/x-loop-"))
            .count()
            == 1,
        || format!("the parent loop was not broken:\n{subclasses}"),
    );
    let globs2 = std::fs::read_to_string(mnt.join("share/mime/globs2")).unwrap_or_default();
    for bad in [":*\n", "a:b", "evil", "broken"] {
        fails.check(!globs2.contains(bad), || {
            format!("globs2 holds {bad:?}:\n{globs2}")
        });
    }
    for want in [
        "50:application/x-appimagefs-foo:*.appimagefsfoo\n",
        "50:application/x-deep:*.deep\n",
    ] {
        fails.check(globs2.contains(want), || {
            format!("globs2 lacks {want:?}:\n{globs2}")
        });
    }

    // GLib (gio) reads the database: by name, by content, and the app.
    let data = tmp.subdir("files");
    let cases = [
        (
            "doc.appimagefsfoo",
            &b"whatever"[..],
            "application/x-appimagefs-foo",
        ),
        (
            "doc.appimagefsbar",
            b"whatever",
            "application/x-appimagefs-bar",
        ),
        (
            "no-extension",
            b"APPIMAGEFS-FOO and more",
            "application/x-appimagefs-foo",
        ),
        (
            "other-no-extension",
            b"APPIMAGEFS-BAR and more",
            "application/x-appimagefs-bar",
        ),
        (
            "DOC.APPIMAGEFSFOO",
            b"whatever",
            "application/x-appimagefs-foo",
        ),
        ("x.deep", b"whatever", "application/x-deep"),
        // The host's types still work beside the apps' ones.
        ("notes.txt", b"plain text", "text/plain"),
        ("picture", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
    ];
    for (name, bytes, want) in cases {
        std::fs::write(data.join(name), bytes).unwrap();
        let got = content_type(&mnt, &home, &data.join(name));
        fails.check(got == want, || {
            format!("gio info {name}: {got}, expected {want}")
        });
    }
    let out = gio(&mnt, &home, &["mime", "application/x-appimagefs-foo"]);
    fails.check(
        out.stdout_text().contains("appimagefs-fooview.desktop"),
        || format!("gio mime does not list the app: {}", out.describe()),
    );
    let out = run_timeout(
        Command::new(appimagefs_bin())
            .args(["inspect", "--json"])
            .arg(src.join("fooview.AppImage")),
        Duration::from_secs(30),
    );
    let json = out.stdout_text();
    for want in [
        r#""launchers": ["fooview"]"#,
        r#""mime_defines": ["application/x-appimagefs-foo"]"#,
        r#""mime_opens": ["application/x-appimagefs-foo"]"#,
    ] {
        fails.check(json.contains(want), || {
            format!("inspect --json lacks {want}: {}", out.describe())
        });
    }
    fails.check(mount.is_alive(), || "the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("file types");
}

// ---------------------------------------------------------------------------
// Chromium's sandbox

/// Loads a seccomp filter refusing new user namespaces the way Docker's
/// default profile does (`unshare` and `clone` with CLONE_NEWUSER: EPERM;
/// `clone3`, whose flags a filter cannot see: ENOSYS, so libc falls back
/// to `clone`), then execs its arguments.
const NO_USERNS: &str = "import errno, os, sys, seccomp\n\
CLONE_NEWUSER = 0x10000000\n\
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)\n\
userns = seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)\n\
f.add_rule(seccomp.ERRNO(errno.EPERM), 'unshare', userns)\n\
f.add_rule(seccomp.ERRNO(errno.EPERM), 'clone', userns)\n\
f.add_rule(seccomp.ERRNO(errno.ENOSYS), 'clone3')\n\
f.load()\n\
os.execv(sys.argv[1], sys.argv[1:])\n";

/// Runs Debian's Chromium (`/usr/lib/chromium`, copied into an AppImage
/// built here, with a `chrome-sandbox` beside the binary and an AppRun
/// that does not pass `--no-sandbox`) through its `bin/` launcher as
/// uid 65534, once as is and once under [`NO_USERNS`]: both print the DOM
/// without Chromium's "No usable sandbox!", and only the second says it
/// added `--no-sandbox`. Needs Debian's `chromium` and `python3-seccomp`
/// (scripts/setup.sh installs them).
#[test]
fn chromium_starts_with_and_without_user_namespaces() {
    let chromium = Path::new("/usr/lib/chromium");
    assert!(
        chromium.join("chromium").is_file(),
        "/usr/lib/chromium/chromium is needed: apt-get install chromium (scripts/setup.sh)"
    );
    let seccomp = Command::new("/usr/bin/python3")
        .args(["-c", "import seccomp"])
        .status();
    assert!(
        seccomp.is_ok_and(|s| s.success()),
        "python3-seccomp is needed: apt-get install python3-seccomp (scripts/setup.sh)"
    );
    let tmp = TempDir::new("desktop-chromium");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let appdir = tmp.subdir("AppDir");
    std::fs::create_dir_all(appdir.join("usr/lib")).unwrap();
    let copied = run_timeout(
        Command::new("cp")
            .arg("-a")
            .arg(chromium)
            .arg(appdir.join("usr/lib/")),
        Duration::from_secs(300),
    );
    assert!(copied.success(), "cp: {}", copied.describe());
    // What Electron apps ship: the setuid helper beside the main binary. The
    // mode is kept in the image; nosuid makes the bit useless.
    let helper = appdir.join("usr/lib/chromium/chrome-sandbox");
    std::fs::copy("/bin/true", &helper).unwrap();
    set_mode(&helper, 0o4755);
    std::fs::write(
        appdir.join("AppRun"),
        "#!/bin/sh\nexec \"$APPDIR/usr/lib/chromium/chromium\" \"$@\"\n",
    )
    .unwrap();
    set_mode(&appdir.join("AppRun"), 0o755);
    std::fs::write(
        appdir.join("chromium.desktop"),
        "[Desktop Entry]\nType=Application\nName=Chromium\nExec=chromium %U\nIcon=chromium\nCategories=Network;\n",
    )
    .unwrap();
    // Data blocks stored uncompressed: the binary is large and compression
    // is not what is tested.
    let sqfs = tmp.join("chromium.sqfs");
    mksquashfs(&appdir, &sqfs, &["-noD", "-noF", "-all-root"]);
    wrap_squashfs_as_appimage(&sqfs, &src.join("Chromium.AppImage"));
    std::fs::remove_file(&sqfs).unwrap();
    std::fs::remove_dir_all(&appdir).unwrap();

    // A world-writable home and page for the unprivileged user.
    let home = tmp.subdir("home");
    set_mode(&home, 0o1777);
    set_mode(tmp.path(), 0o755);
    let page = tmp.join("page.html");
    std::fs::write(
        &page,
        "<html><body><p id=\"x\">appimagefs-dom-check</p></body></html>\n",
    )
    .unwrap();
    set_mode(&page, 0o644);
    let wrapper = tmp.join("no-userns.py");
    std::fs::write(&wrapper, NO_USERNS).unwrap();
    set_mode(&wrapper, 0o644);

    let mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let launcher = mnt.join("bin/chromium");
    let url = format!("file://{}", page.display());
    let chrome_args = [
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--dump-dom",
        url.as_str(),
    ];
    for filtered in [false, true] {
        let mut cmd = if filtered {
            let mut c = Command::new("/usr/bin/python3");
            c.arg(&wrapper).arg(&launcher);
            c
        } else {
            Command::new(&launcher)
        };
        cmd.args(chrome_args)
            .current_dir(&home)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .uid(65534)
            .gid(65534);
        let out = run_timeout(&mut cmd, Duration::from_secs(120));
        let what = if filtered {
            "without user namespaces"
        } else {
            "with user namespaces"
        };
        let stderr = out.stderr_text();
        fails.check(out.stdout_text().contains("appimagefs-dom-check"), || {
            format!("{what}: Chromium printed no DOM: {}", out.describe())
        });
        fails.check(
            !stderr.contains("No usable sandbox") && !stderr.contains("SUID sandbox helper"),
            || format!("{what}: Chromium found no sandbox: {}", out.describe()),
        );
        let said = stderr
            .lines()
            .filter(|l| l.starts_with("appimagefs: chromium: user namespaces are not available"))
            .count();
        fails.check(said == usize::from(filtered), || {
            format!(
                "{what}: the --no-sandbox line appears {said} times: {}",
                out.describe()
            )
        });
    }
    // The filter is what makes the difference: Chromium run directly under
    // it, without the launcher, has no sandbox and aborts.
    let mut direct = Command::new("/usr/bin/python3");
    direct
        .arg(&wrapper)
        .arg(mnt.join("Chromium/usr/lib/chromium/chromium"))
        .args(chrome_args)
        .current_dir(&home)
        .env_clear()
        .env("HOME", &home)
        .uid(65534)
        .gid(65534);
    let out = run_timeout(&mut direct, Duration::from_secs(120));
    let stderr = out.stderr_text();
    // Without a user namespace Chromium takes the helper beside it (its
    // stat shows setuid root; a stand-in here, so the zygote exits, which
    // the browser reports in one of two ways depending on who notices
    // first) or, without one, says it has no usable sandbox.
    let refused = [
        "No usable sandbox",
        "SUID sandbox helper",
        "Zygote process exited",
        "Cannot communicate with zygote",
    ]
    .iter()
    .any(|m| stderr.contains(m));
    fails.check(
        !out.stdout_text().contains("appimagefs-dom-check") && refused,
        || {
            format!(
                "Chromium ran sandboxed under the filter: {}",
                out.describe()
            )
        },
    );
    // inspect calls it a browser app.
    let out = run_timeout(
        Command::new(appimagefs_bin())
            .arg("inspect")
            .arg(src.join("Chromium.AppImage")),
        Duration::from_secs(30),
    );
    fails.check(
        out.stdout_text().contains("\n  browser app:    yes"),
        || format!("inspect does not call it a browser app: {}", out.describe()),
    );
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("chromium");
}
