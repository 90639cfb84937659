//! Desktop integration (issue 5): the launchers in `MNT/bin/`, the menu
//! entries in `MNT/share/applications/` and their icons.
//!
//! - Launchers are compared with the app's payload extracted by `unsquashfs`
//!   and run with the variables an AppImage runtime sets (`APPIMAGE`,
//!   `APPDIR`, `ARGV0`, `OWD`): stdout, exit status, stdin, and the
//!   environment the app sees (with `envdump`, an AppImage built here whose
//!   AppRun prints it). The apps are built at test time
//!   (`common::apps`); the real runtimes are exercised by the opt-in corpus.
//! - Every generated menu entry passes `desktop-file-validate`, its
//!   `Exec`/`TryExec` program and `Icon` resolve inside the mount.
//! - Hostile AppImage file names and desktop entries run nothing but the app.
//! - Versions: `bin/` follows the newest; opt-outs get no menu entry.
//! - A GUI app (the host's `xmessage` in an AppImage built here) started
//!   from its menu entry's `Exec` line under Xvfb; the screenshot is saved
//!   as `target/tmp/gui-app.png`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::apps::{app, copy_app, png_icon, png_rgb, App, Wrap};
use crate::common::xvfb::{read_xwd, top_window, Killer, Shot};
use crate::common::*;

// ---------------------------------------------------------------------------
// Building small AppImages

/// Prints, NUL-separated, what the AppImage runtime sets, its own path, the
/// physical working directory, the `marker` file next to it, its arguments
/// and its whole environment; copies stdin; exits with `$ENVDUMP_EXIT`.
const ENVDUMP_APPRUN: &str = r#"#!/bin/sh
here=${0%/*}
printf '%s\0' "APPIMAGE=${APPIMAGE-<unset>}" "APPDIR=${APPDIR-<unset>}" "ARGV0=${ARGV0-<unset>}" "OWD=${OWD-<unset>}" "SELF=$0" "CWD=$(pwd -P)" "MARKER=$(cat "$here/marker")" "APPDIR_MARKER=$(cat "${APPDIR-/nonexistent}/marker" 2>&1)" "ARGC=$#"
for a in "$@"; do printf 'ARG=%s\0' "$a"; done
printf 'ENV\0'
env -0
printf 'STDIN\0'
cat
exit "${ENVDUMP_EXIT:-0}"
"#;

/// One envdump AppImage to build.
struct Spec {
    /// Desktop file name at the AppDir root (`None`: no desktop file).
    desktop_name: Option<Vec<u8>>,
    /// Its contents.
    desktop: Vec<u8>,
    /// Printed as MARKER (tells which AppImage ran).
    marker: String,
    /// Ship `<icon>.png` at the AppDir root.
    icon: Option<String>,
    /// The stand-in runtime it is wrapped with (type 2 only).
    wrap: Wrap,
}

fn desktop(name: &str, exec: &str, icon: &str, extra: &str) -> Vec<u8> {
    format!(
        "[Desktop Entry]\nType=Application\nName={name}\nExec={exec}\nIcon={icon}\nCategories=Utility;\n{extra}"
    )
    .into_bytes()
}

fn build_envdump(out: &Path, spec: &Spec) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let root = build_dir().join(format!("menu-tree-{n}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("AppRun"), ENVDUMP_APPRUN).unwrap();
    set_mode(&root.join("AppRun"), 0o755);
    std::fs::write(root.join("marker"), &spec.marker).unwrap();
    if let Some(d) = &spec.desktop_name {
        std::fs::write(root.join(OsStr::from_bytes(d)), &spec.desktop).unwrap();
    }
    if let Some(icon) = &spec.icon {
        std::fs::write(root.join(format!("{icon}.png")), png_icon(80)).unwrap();
    }
    let sqfs = build_dir().join(format!("menu-{n}.sqfs"));
    mksquashfs(&root, &sqfs, &["-comp", "gzip", "-all-root"]);
    let mut data = spec.wrap.runtime().expect("envdump apps are type 2");
    data.extend_from_slice(&std::fs::read(&sqfs).unwrap());
    std::fs::write(out, data).unwrap();
    set_mode(out, 0o755);
}

// ---------------------------------------------------------------------------
// Running things with stdin, a timeout, and retries on ETXTBSY

/// Runs `make()`'s command with `stdin` piped in. A command whose file was
/// just written can fail with ETXTBSY while another test thread forks; that
/// is retried.
fn run_stdin(make: &dyn Fn() -> Command, stdin: &[u8], timeout: Duration) -> Output {
    for _ in 0..50 {
        let start = Instant::now();
        let mut cmd = make();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => panic!("spawn {cmd:?}: {e}"),
            Ok(c) => c,
        };
        let pgid = child.id() as i32;
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let r = with_timeout("command", timeout, move || child.wait_with_output());
        let out = match r {
            Ok(o) => o.unwrap(),
            Err(e) => {
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                panic!("{cmd:?}: {e}");
            }
        };
        let o = Output {
            status: Some(out.status),
            stdout: out.stdout,
            stderr: out.stderr,
            elapsed: start.elapsed(),
        };
        if o.status.and_then(|s| s.code()) == Some(126) && o.stderr_text().contains("busy") {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        return o;
    }
    panic!("the executable stayed busy (ETXTBSY)");
}

/// Removes what an AppImage runtime or our launcher sets, so the values the
/// app sees come from the launcher/runtime only.
fn clean_env(cmd: &mut Command) {
    for v in [
        "APPDIR",
        "APPIMAGE",
        "ARGV0",
        "OWD",
        "APPIMAGE_EXTRACT_AND_RUN",
        "ENVDUMP_EXIT",
    ] {
        cmd.env_remove(v);
    }
}

/// What envdump printed.
#[derive(Debug, Default)]
struct Dump {
    vars: BTreeMap<String, Vec<u8>>,
    args: Vec<Vec<u8>>,
    env: BTreeMap<Vec<u8>, Vec<u8>>,
    stdin: Vec<u8>,
}

fn parse_dump(stdout: &[u8]) -> Result<Dump, String> {
    let mut d = Dump::default();
    let mut rest = stdout;
    let next = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let i = rest.iter().position(|&b| b == 0)?;
        let f = rest[..i].to_vec();
        *rest = &rest[i + 1..];
        Some(f)
    };
    loop {
        let f = next(&mut rest).ok_or("no ENV marker in the output")?;
        if f == b"ENV" {
            break;
        }
        if let Some(a) = f.strip_prefix(b"ARG=") {
            d.args.push(a.to_vec());
        } else {
            let i = f.iter().position(|&b| b == b'=').ok_or("field without =")?;
            d.vars.insert(
                String::from_utf8_lossy(&f[..i]).into_owned(),
                f[i + 1..].to_vec(),
            );
        }
    }
    loop {
        let f = next(&mut rest).ok_or("no STDIN marker in the output")?;
        if f == b"STDIN" {
            break;
        }
        if let Some(i) = f.iter().position(|&b| b == b'=') {
            d.env.insert(f[..i].to_vec(), f[i + 1..].to_vec());
        }
    }
    d.stdin = rest.to_vec();
    Ok(d)
}

impl Dump {
    fn var(&self, k: &str) -> &[u8] {
        self.vars
            .get(k)
            .map(|v| v.as_slice())
            .unwrap_or(b"<missing>")
    }
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

// ---------------------------------------------------------------------------
// Desktop entries: parsing and Exec

/// `[Desktop Entry]` keys of a desktop file (string-unescaped values).
fn entry_keys(text: &str) -> BTreeMap<String, String> {
    group_keys(text, "Desktop Entry")
}

/// The keys of group `[group]` of a desktop file (string-unescaped values).
fn group_keys(text: &str, group: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut in_main = false;
    for line in text.lines() {
        let l = line.trim_end();
        if l.starts_with('[') {
            in_main = l.strip_prefix('[').and_then(|g| g.strip_suffix(']')) == Some(group);
            continue;
        }
        if !in_main || l.starts_with('#') || l.is_empty() {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            out.insert(k.trim().to_string(), unescape_value(v.trim_start()));
        }
    }
    out
}

/// The desktop-entry string escapes: `\s \n \t \r \\`.
fn unescape_value(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('s') => out.push(' '),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits an (unescaped) Exec value into arguments by the Desktop Entry
/// spec's quoting rules.
fn split_exec(exec: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut it = exec.chars().peekable();
    loop {
        while it.peek() == Some(&' ') {
            it.next();
        }
        let Some(&c) = it.peek() else { break };
        let mut arg = String::new();
        if c == '"' {
            it.next();
            loop {
                match it.next() {
                    None => return Err(format!("unterminated quote in {exec:?}")),
                    Some('"') => break,
                    Some('\\') => match it.next() {
                        Some(e @ ('"' | '`' | '$' | '\\')) => arg.push(e),
                        Some(o) => {
                            arg.push('\\');
                            arg.push(o)
                        }
                        None => return Err("trailing backslash".into()),
                    },
                    Some(o) => arg.push(o),
                }
            }
            match it.peek() {
                None | Some(' ') => {}
                Some(_) => return Err(format!("text right after a closing quote in {exec:?}")),
            }
        } else {
            while let Some(&c) = it.peek() {
                if c == ' ' {
                    break;
                }
                arg.push(c);
                it.next();
            }
        }
        args.push(arg);
    }
    Ok(args)
}

/// Replaces field codes as a launcher would with one file `file`.
fn expand_field_codes(args: &[String], file: &str, keys: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for a in args {
        match a.as_str() {
            "%f" | "%F" | "%u" | "%U" => out.push(file.to_string()),
            "%i" => {
                if let Some(icon) = keys.get("Icon") {
                    out.push("--icon".into());
                    out.push(icon.clone());
                }
            }
            "%c" => out.push(keys.get("Name").cloned().unwrap_or_default()),
            "%d" | "%D" | "%n" | "%N" | "%v" | "%m" | "%k" => {}
            _ => {
                let mut s = String::new();
                let mut it = a.chars();
                while let Some(c) = it.next() {
                    if c == '%' {
                        match it.next() {
                            Some('%') => s.push('%'),
                            Some('f' | 'F' | 'u' | 'U') => s.push_str(file),
                            _ => {}
                        }
                    } else {
                        s.push(c);
                    }
                }
                out.push(s);
            }
        }
    }
    out
}

/// The menu entry files of a mount (name -> contents).
fn menu_entries(mnt: &Path) -> BTreeMap<String, Vec<u8>> {
    let dir = mnt.join("share/applications");
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            );
        }
    }
    out
}

/// `desktop-file-validate` of one entry; `Err` with its output on failure.
fn validate(path: &Path) -> Result<String, String> {
    let out = run_timeout(
        &mut command("desktop-file-validate", [path]),
        Duration::from_secs(30),
    );
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    if out.success() && !text.contains("error:") {
        Ok(text)
    } else {
        Err(out.describe())
    }
}

/// True when `p` (followed through symlinks) is an existing file inside `mnt`.
fn resolves_inside(p: &Path, mnt: &Path) -> Result<PathBuf, String> {
    let real = p
        .canonicalize()
        .map_err(|e| format!("{} does not resolve: {}", p.display(), errno_name(&e)))?;
    if !real.starts_with(mnt) {
        return Err(format!(
            "{} resolves outside the mount, to {}",
            p.display(),
            real.display()
        ));
    }
    if !real.is_file() {
        return Err(format!(
            "{} resolves to {}, not a file",
            p.display(),
            real.display()
        ));
    }
    Ok(real)
}

/// Checks one menu entry: validates, Exec/TryExec programs are launchers in
/// the mount, Icon resolves inside the mount.
fn check_entry(mnt: &Path, name: &str, fails: &mut Failures) -> Option<BTreeMap<String, String>> {
    let path = mnt.join("share/applications").join(name);
    if let Err(e) = validate(&path) {
        fails.push(format!(
            "menu entry {name}: desktop-file-validate fails:\n{e}"
        ));
    }
    let text = String::from_utf8_lossy(&std::fs::read(&path).ok()?).into_owned();
    let keys = entry_keys(&text);
    let bin = mnt.join("bin");
    match keys.get("Exec").map(|e| split_exec(e)) {
        Some(Ok(args)) if !args.is_empty() => {
            let prog = Path::new(&args[0]);
            fails.check(prog.parent() == Some(bin.as_path()), || {
                format!(
                    "menu entry {name}: Exec program {:?} is not a launcher in {}",
                    args[0],
                    bin.display()
                )
            });
            if let Err(e) = resolves_inside(prog, mnt) {
                fails.push(format!("menu entry {name}: Exec program: {e}"));
            } else if std::fs::metadata(prog)
                .map(|m| m.permissions().mode() & 0o111 == 0)
                .unwrap_or(true)
            {
                fails.push(format!(
                    "menu entry {name}: Exec program {} is not executable",
                    prog.display()
                ));
            }
        }
        other => fails.push(format!("menu entry {name}: unusable Exec: {other:?}")),
    }
    if let Some(t) = keys.get("TryExec") {
        if let Err(e) = resolves_inside(Path::new(t), mnt) {
            fails.push(format!("menu entry {name}: TryExec: {e}"));
        }
    }
    match keys.get("Icon") {
        None => {}
        Some(icon) if icon.starts_with('/') => {
            if let Err(e) = resolves_inside(Path::new(icon), mnt) {
                fails.push(format!("menu entry {name}: Icon {icon:?}: {e}"));
            }
        }
        Some(icon) => {
            let mut found = Vec::new();
            let mut bad = Vec::new();
            if let Ok(sizes) = std::fs::read_dir(mnt.join("share/icons/hicolor")) {
                for s in sizes.flatten() {
                    for ext in ["png", "svg", "svgz", "xpm"] {
                        let p = s.path().join("apps").join(format!("{icon}.{ext}"));
                        if p.symlink_metadata().is_ok() {
                            match resolves_inside(&p, mnt) {
                                Ok(_) => found.push(p),
                                Err(e) => bad.push(e),
                            }
                        }
                    }
                }
            }
            fails.check(!found.is_empty() && bad.is_empty(), || {
                format!(
                    "menu entry {name}: Icon={icon:?} must name share/icons/hicolor/*/apps/{icon}.* resolving inside the mount; found {found:?}, broken {bad:?}"
                )
            });
        }
    }
    Some(keys)
}

// ---------------------------------------------------------------------------
// 1. launchers vs the runtime

struct Fx {
    app: App,
    args: &'static [&'static str],
    expect: &'static str,
}

const RUN_APPS: &[Fx] = &[
    Fx {
        app: App::Echo,
        args: &["foo", "bar  baz", "\u{fc}n\u{ef}"],
        expect: "foo bar  baz",
    },
    Fx {
        app: App::Hello,
        args: &["a", "b c"],
        expect: "Hello from hello-world!",
    },
    Fx {
        app: App::HelloWorld,
        args: &[],
        expect: "Hello world.",
    },
];

/// The reference a launcher is compared with: the AppImage `image`'s
/// payload (SquashFS at `offset`) extracted by unsquashfs into
/// `tmpdir/extracted`, its AppRun run in `cwd` with what an AppImage
/// runtime sets: `APPIMAGE` and `ARGV0` the file, `APPDIR` the extracted
/// folder, `OWD` the physical working directory.
fn reference_run(
    image: &Path,
    offset: u64,
    args: &[&OsStr],
    cwd: &Path,
    tmpdir: &Path,
    stdin: &[u8],
    exit: Option<i32>,
) -> Output {
    let dir = tmpdir.join("extracted");
    if !dir.exists() {
        unsquashfs_extract(image, offset, &dir).unwrap_or_else(|e| panic!("{e}"));
    }
    let owd = cwd.canonicalize().expect("canonicalize cwd");
    let make = || {
        let mut c = Command::new(dir.join("AppRun"));
        clean_env(&mut c);
        if let Some(x) = exit {
            c.env("ENVDUMP_EXIT", x.to_string());
        }
        // PWD as a shell started there (maybe through a symlink) has it.
        c.args(args)
            .env("APPIMAGE", image)
            .env("APPDIR", &dir)
            .env("ARGV0", image)
            .env("OWD", &owd)
            .env("TMPDIR", tmpdir)
            .env("PWD", cwd)
            .current_dir(cwd);
        c
    };
    run_stdin(&make, stdin, Duration::from_secs(60))
}

fn run_launcher(
    launcher: &Path,
    args: &[&OsStr],
    cwd: &Path,
    tmpdir: &Path,
    stdin: &[u8],
    exit: Option<i32>,
) -> Output {
    let make = || {
        let mut c = Command::new(launcher);
        clean_env(&mut c);
        if let Some(x) = exit {
            c.env("ENVDUMP_EXIT", x.to_string());
        }
        // PWD as a shell started there (maybe through a symlink) has it.
        c.args(args)
            .env("TMPDIR", tmpdir)
            .env("PWD", cwd)
            .current_dir(cwd);
        c
    };
    run_stdin(&make, stdin, Duration::from_secs(60))
}

#[test]
fn launchers_behave_like_the_runtime() {
    let t0 = Instant::now();
    let tmp = TempDir::new("menu-launch");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    for f in RUN_APPS {
        copy_app(f.app, &src, f.app.file_name());
    }
    let envdumps: [(&str, &str, Wrap); 2] = [
        ("EnvDump-x86_64.AppImage", "envdump", Wrap::Type2),
        ("EnvDump-i386.AppImage", "envdump-i386", Wrap::Type2Elf32),
    ];
    for (file, stem, wrap) in envdumps {
        build_envdump(
            &src.join(file),
            &Spec {
                desktop_name: Some(format!("{stem}.desktop").into_bytes()),
                desktop: desktop(
                    "Env Dump",
                    &format!("{stem} %F"),
                    stem,
                    &format!(
                        "Actions=second;\n\n[Desktop Action second]\nName=Second window\nExec={stem} --second %f\n"
                    ),
                ),
                marker: format!("marker of {file}"),
                icon: Some(stem.into()),
                wrap,
            },
        );
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let cwd = tmp.subdir("work dir");
    let stdin_data: &[u8] = b"line one\n\xff\xfe binary \x01 end";

    // Built apps: stdout and exit status.
    for (i, f) in RUN_APPS.iter().enumerate() {
        let args: Vec<&OsStr> = f.args.iter().map(OsStr::new).collect();
        let t1 = tmp.subdir(&format!("rt-{i}"));
        let file = f.app.file_name();
        let offset = app(f.app).wrap.payload_offset().unwrap();
        let reference = reference_run(&src.join(file), offset, &args, &cwd, &t1, b"", None);
        if !reference.success() || !reference.stdout_text().contains(f.expect) {
            fails.push(format!(
                "{file}: the extracted payload's run did not work, cannot compare: {}",
                reference.describe()
            ));
            continue;
        }
        let t2 = tmp.subdir(&format!("ln-{i}"));
        let launcher = mnt.join("bin").join(f.app.launcher());
        let through = run_launcher(&launcher, &args, &cwd, &t2, b"", None);
        fails.check(
            through.status.map(|s| s.code()) == reference.status.map(|s| s.code())
                && through.stdout == reference.stdout,
            || {
                format!(
                    "{file}: {} {:?} differs from the extracted payload's run\n=== reference stdout ===\n{}\n=== launcher ===\n{}",
                    launcher.display(),
                    f.args,
                    reference.stdout_text(),
                    through.describe()
                )
            },
        );
    }

    // envdump: environment, args, stdin, exit status.
    let link = tmp.join("cwd-link");
    std::os::unix::fs::symlink(&cwd, &link).unwrap();
    let hostile_args: Vec<&OsStr> = vec![
        os(b"plain"),
        os(b""),
        os(b"two  words"),
        os(b"$(touch pwned)"),
        os(b"`touch pwned`"),
        os(b"*"),
        os(b"new\nline"),
        os(b"\xff\xfe"),
        os(b"%f"),
    ];
    for (file, stem, wrap) in envdumps {
        let app = mnt.join(app_name(file));
        let launcher = mnt.join("bin").join(stem);
        for exit in [0, 42] {
            let t1 = tmp.subdir(&format!("rt-{stem}-{exit}"));
            let image = src.join(file);
            let r = reference_run(
                &image,
                wrap.payload_offset().unwrap(),
                &hostile_args,
                &link,
                &t1,
                stdin_data,
                Some(exit),
            );
            let t2 = tmp.subdir(&format!("ln-{stem}-{exit}"));
            let l = run_launcher(&launcher, &hostile_args, &link, &t2, stdin_data, Some(exit));
            let (rd, ld) = match (parse_dump(&r.stdout), parse_dump(&l.stdout)) {
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => {
                    fails.push(format!(
                        "{file}: envdump output unusable: reference {:?} / launcher {:?}\nreference: {}\nlauncher: {}",
                        a.err(),
                        b.err(),
                        r.describe(),
                        l.describe()
                    ));
                    continue;
                }
            };
            let what = format!("{file} via {} (exit {exit})", launcher.display());
            // Exit status and stdin pass through, like the runtime's.
            fails.check(l.status.and_then(|s| s.code()) == Some(exit), || {
                format!(
                    "{what}: exit status {:?}, expected {exit} (reference: {:?})",
                    l.status, r.status
                )
            });
            fails.check(r.status.and_then(|s| s.code()) == Some(exit), || {
                format!(
                    "{what}: the reference run exited {:?} (reference broken)",
                    r.status
                )
            });
            fails.check(ld.stdin == stdin_data && rd.stdin == stdin_data, || {
                format!(
                    "{what}: stdin not passed through: launcher {:?}, reference {:?}",
                    show(&ld.stdin),
                    show(&rd.stdin)
                )
            });
            // Arguments: exactly as given, like the runtime.
            let want: Vec<Vec<u8>> = hostile_args.iter().map(|a| a.as_bytes().to_vec()).collect();
            fails.check(ld.args == want && rd.args == want, || {
                let sh = |v: &Vec<Vec<u8>>| v.iter().map(|a| show(a)).collect::<Vec<_>>();
                format!(
                    "{what}: args: launcher {:?}, reference {:?}, given {:?}",
                    sh(&ld.args),
                    sh(&rd.args),
                    sh(&want)
                )
            });
            // APPIMAGE: the source file, like the runtime.
            fails.check(
                ld.var("APPIMAGE") == bytes(&image) && rd.var("APPIMAGE") == bytes(&image),
                || {
                    format!(
                        "{what}: APPIMAGE: launcher {:?}, reference {:?}, expected {:?}",
                        show(ld.var("APPIMAGE")),
                        show(rd.var("APPIMAGE")),
                        image
                    )
                },
            );
            // APPDIR: the runtime's is its temp extraction dir; by meaning
            // both are the folder holding the AppRun that runs.
            fails.check(ld.var("APPDIR") == bytes(&app), || {
                format!(
                    "{what}: APPDIR {:?}, expected {}",
                    show(ld.var("APPDIR")),
                    app.display()
                )
            });
            for (who, d) in [("launcher", &ld), ("reference", &rd)] {
                let self_dir = Path::new(os(d.var("SELF")))
                    .parent()
                    .map(|p| p.as_os_str().as_bytes().to_vec());
                fails.check(
                    self_dir.as_deref() == Some(d.var("APPDIR"))
                        && d.var("APPDIR_MARKER") == format!("marker of {file}").as_bytes()
                        && d.var("MARKER") == format!("marker of {file}").as_bytes(),
                    || {
                        format!(
                            "{what}: {who}: APPDIR {:?} is not the folder of the AppRun that ran ({:?}), or its marker {:?} is wrong",
                            show(d.var("APPDIR")),
                            show(d.var("SELF")),
                            show(d.var("APPDIR_MARKER"))
                        )
                    },
                );
            }
            // ARGV0: the path the user invoked, like the runtime's argv[0].
            fails.check(
                ld.var("ARGV0") == bytes(&launcher) && rd.var("ARGV0") == bytes(&image),
                || {
                    format!(
                    "{what}: ARGV0: launcher {:?} (expected {:?}), reference {:?} (expected {:?})",
                    show(ld.var("ARGV0")),
                    launcher,
                    show(rd.var("ARGV0")),
                    image
                )
                },
            );
            // OWD: the physical working directory (the runtime sets it only
            // when it mounts; in extract-and-run mode it is left unset).
            let phys = cwd.canonicalize().unwrap();
            fails.check(ld.var("OWD") == bytes(&phys), || {
                format!(
                    "{what}: OWD {:?}, expected the physical cwd {}",
                    show(ld.var("OWD")),
                    phys.display()
                )
            });
            fails.check(ld.var("CWD") == rd.var("CWD"), || {
                format!(
                    "{what}: the app's cwd differs: launcher {:?}, reference {:?}",
                    show(ld.var("CWD")),
                    show(rd.var("CWD"))
                )
            });
            fails.check(
                ld.env.get(&b"DESKTOPINTEGRATION"[..]).map(Vec::as_slice)
                    == Some(&b"appimagefs"[..]),
                || {
                    format!(
                        "{what}: DESKTOPINTEGRATION {:?}, expected appimagefs",
                        ld.env.get(&b"DESKTOPINTEGRATION"[..]).map(|v| show(v))
                    )
                },
            );
            // Nothing else in the environment differs.
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
            let mut diff = Vec::new();
            for k in ld.env.keys().chain(rd.env.keys()) {
                if ignore.contains(&k.as_slice()) {
                    continue;
                }
                if ld.env.get(k) != rd.env.get(k) && !diff.contains(&show(k)) {
                    diff.push(show(k));
                }
            }
            fails.check(diff.is_empty(), || {
                format!(
                    "{what}: environment variables differ between launcher and reference: {diff:?}"
                )
            });
            if exit == 0 {
                eprintln!(
                    "INFO menu: {file}: reference APPDIR={} OWD={}; launcher APPDIR={} OWD={}",
                    show(rd.var("APPDIR")),
                    show(rd.var("OWD")),
                    show(ld.var("APPDIR")),
                    show(ld.var("OWD"))
                );
            }
        }
    }
    for dir in [&cwd, &src, &tmp.path().to_path_buf()] {
        fails.check(!dir.join("pwned").exists(), || {
            format!(
                "a hostile argument was executed: {}/pwned exists",
                dir.display()
            )
        });
    }

    // Through PATH, as a menu or a shell would run it.
    let out = run_stdin(
        &|| {
            let mut c = Command::new("sh");
            clean_env(&mut c);
            c.arg("-c")
                .arg("envdump one 'two three'")
                .env(
                    "PATH",
                    format!("{}:/usr/bin:/bin", mnt.join("bin").display()),
                )
                .current_dir(&cwd);
            c
        },
        b"",
        Duration::from_secs(30),
    );
    match parse_dump(&out.stdout) {
        Ok(d) => fails.check(
            out.success()
                && d.args == vec![b"one".to_vec(), b"two three".to_vec()]
                && d.var("APPIMAGE") == bytes(&src.join("EnvDump-x86_64.AppImage")),
            || format!("envdump through PATH: {}", out.describe()),
        ),
        Err(e) => fails.push(format!("envdump through PATH: {e}: {}", out.describe())),
    }

    // Menu entries of this mount.
    let entries = menu_entries(&mnt);
    for want in [
        "echo",
        "hello-world",
        "helloworld",
        "envdump",
        "envdump-i386",
    ] {
        let n = format!("appimagefs-{want}.desktop");
        if entries.contains_key(&n) {
            check_entry(&mnt, &n, &mut fails);
        } else {
            fails.push(format!("no menu entry {n} (entries: {:?})", entries.keys()));
        }
    }
    fails.check(entries.len() == 5, || {
        format!("expected 5 menu entries, got {:?}", entries.keys())
    });
    // A desktop action's Exec runs the same app with the action's arguments.
    let action_file = cwd.join("for the action.txt");
    std::fs::write(&action_file, b"x").unwrap();
    for (file, stem, _) in envdumps {
        let n = format!("appimagefs-{stem}.desktop");
        let text =
            String::from_utf8_lossy(entries.get(&n).map(|v| v.as_slice()).unwrap_or_default())
                .into_owned();
        let keys = group_keys(&text, "Desktop Action second");
        let Some(Ok(args)) = keys.get("Exec").map(|e| split_exec(e)) else {
            fails.push(format!(
                "{n}: no usable Exec in [Desktop Action second]:\n{text}"
            ));
            continue;
        };
        let af = action_file.to_str().unwrap();
        let argv = expand_field_codes(&args, af, &keys);
        let out = run_stdin(
            &|| {
                let mut c = Command::new(&argv[0]);
                clean_env(&mut c);
                c.args(&argv[1..]).current_dir(&cwd);
                c
            },
            b"",
            Duration::from_secs(30),
        );
        let want = vec![b"--second".to_vec(), af.as_bytes().to_vec()];
        match parse_dump(&out.stdout) {
            Ok(d) => fails.check(
                out.success()
                    && Path::new(&argv[0]).parent() == Some(mnt.join("bin").as_path())
                    && d.var("MARKER") == format!("marker of {file}").as_bytes()
                    && d.args == want,
                || {
                    format!(
                        "{n}: the action's Exec {:?} ran marker {:?} with args {:?}; expected {file}'s app with {want:?}",
                        keys["Exec"],
                        show(d.var("MARKER")),
                        d.args
                    )
                },
            ),
            Err(e) => fails.push(format!("{n}: action Exec {argv:?}: {e}: {}", out.describe())),
        }
    }
    fails.check(mount.is_alive(), || "the daemon died".into());
    eprintln!(
        "TIMING menu: launchers_behave_like_the_runtime {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("launchers");
}

// ---------------------------------------------------------------------------
// 2. hostile names and entries

fn pwned_marker() -> PathBuf {
    PathBuf::from(format!("/tmp/appimagefs-pwned-{}", std::process::id()))
}

/// The daemon's full log (stderr of the foreground process).
fn full_log(m: &Mount) -> String {
    let Some(pid) = m.pid() else {
        return m.log_text();
    };
    match std::fs::read_link(format!("/proc/{pid}/fd/2")).and_then(std::fs::read) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => m.log_text(),
    }
}

#[test]
fn hostile_names_run_nothing_else() {
    let t0 = Instant::now();
    let tmp = TempDir::new("menu-hostile");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let pw = pwned_marker();
    let _ = std::fs::remove_file(&pw);
    let pws = pw.display().to_string();
    // (file name, desktop stem, Exec, Name, extra keys)
    let mut cases: Vec<(Vec<u8>, String, String, String, String)> = Vec::new();
    let names: Vec<&[u8]> = vec![
        b"it's \"quoted\".AppImage",
        b"$(touch pwned).AppImage",
        b"`touch pwned` x.AppImage",
        b"new\nline$(touch pwned)\n.AppImage",
        b"  spaces  and\ttab .AppImage",
        b"non-utf8 \xff\xfe\x80'.AppImage",
        b"'; touch pwned; '.AppImage",
        b"-rf.AppImage",
        b"%f %U field codes.AppImage",
        b"back\\slash $HOME *.AppImage",
    ];
    for (i, n) in names.iter().enumerate() {
        cases.push((
            n.to_vec(),
            format!("hname{i}"),
            format!("hname{i} %F"),
            format!("Hostile file {i}"),
            String::new(),
        ));
    }
    let entry_cases: Vec<(&str, String, String, String)> = vec![
        (
            "h-name",
            "hentry0 %f".into(),
            format!("$(touch {pws}) `touch {pws}` \"q\" 'q' ; | &"),
            format!("Comment=$(touch {pws})\n"),
        ),
        (
            "h-args",
            format!("hentry1 \"\\\\$(touch {pws})\" \"a b\" \"'single'\" %u"),
            "Args".into(),
            String::new(),
        ),
        (
            "h-unquoted",
            format!("hentry2 $(touch {pws}) ; touch {pws} | x"),
            "Unquoted".into(),
            String::new(),
        ),
        (
            "h-program",
            format!("/bin/sh -c \"touch {pws}\" %f"),
            "Program".into(),
            String::new(),
        ),
        (
            "h-backtick",
            format!("hentry4 \"\\\\`touch {pws}\\\\`\" %F"),
            "Backtick".into(),
            String::new(),
        ),
        (
            "h-escapes",
            "\"hentry5 prog\" --flag=\\\\\\\\x \"\\\\\\\\\\\\\"\" %% 100%%".into(),
            "Escapes".into(),
            String::new(),
        ),
        (
            "h-newline",
            "hentry6 \"line1\\nline2\" x\\ny".into(),
            "Newline".into(),
            String::new(),
        ),
        (
            "h-tryexec",
            "hentry7".into(),
            "TryExec".into(),
            format!("TryExec=$(touch {pws})\n"),
        ),
        (
            "h-icon",
            "hentry8".into(),
            "Icon path".into(),
            String::new(),
        ),
    ];
    for (i, (file, exec, name, extra)) in entry_cases.iter().enumerate() {
        cases.push((
            format!("{file}.AppImage").into_bytes(),
            format!("hentry{i}"),
            exec.clone(),
            name.clone(),
            extra.clone(),
        ));
    }
    for (i, (file, stem, exec, name, extra)) in cases.iter().enumerate() {
        let mut d = format!(
            "[Desktop Entry]\nType=Application\nName={name}\nExec={exec}\nIcon={}\nCategories=Utility;\n{extra}",
            if stem == "hentry8" { "/etc/passwd".to_string() } else { stem.clone() }
        );
        if stem == "hentry8" {
            d.push_str("X-Test=no icon shipped\n");
        }
        build_envdump(
            &src.join(os(file)),
            &Spec {
                desktop_name: Some(format!("{stem}.desktop").into_bytes()),
                desktop: d.into_bytes(),
                marker: format!("marker {i}"),
                icon: (stem != "hentry8").then(|| stem.clone()),
                wrap: Wrap::Type2,
            },
        );
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let cwd = tmp.subdir("cwd");

    // Every folder is there under its exact name.
    for (file, ..) in &cases {
        let folder = app_name_bytes(file);
        fails.check(mnt.join(os(&folder)).join("AppRun").exists(), || {
            format!("no folder {:?} for {:?}", show(&folder), show(file))
        });
    }
    // Each launcher runs exactly its app with the exact values.
    let mut by_source: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let launchers: Vec<String> = std::fs::read_dir(mnt.join("bin"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for l in &launchers {
        let out = run_launcher(
            &mnt.join("bin").join(l),
            &[os(b"x y")],
            &cwd,
            &cwd,
            b"",
            None,
        );
        match parse_dump(&out.stdout) {
            Ok(d) => {
                by_source
                    .entry(d.var("APPIMAGE").to_vec())
                    .or_default()
                    .push(l.clone());
                let src_file = d.var("APPIMAGE").to_vec();
                let Some((i, (file, ..))) = cases
                    .iter()
                    .enumerate()
                    .find(|(_, c)| bytes(&src.join(os(&c.0))) == src_file.as_slice())
                else {
                    fails.push(format!(
                        "launcher {l}: APPIMAGE {:?} is none of the source files",
                        show(&src_file)
                    ));
                    continue;
                };
                let appdir = mnt.join(os(&app_name_bytes(file)));
                fails.check(
                    d.var("APPDIR") == bytes(&appdir)
                        && d.var("MARKER") == format!("marker {i}").as_bytes()
                        && d.args == vec![b"x y".to_vec()]
                        && out.success(),
                    || {
                        format!(
                            "launcher {l} for {:?}: APPDIR {:?} (expected {:?}), marker {:?}, args {:?}, {}",
                            show(file),
                            show(d.var("APPDIR")),
                            show(bytes(&appdir)),
                            show(d.var("MARKER")),
                            d.args,
                            out.describe()
                        )
                    },
                );
            }
            Err(e) => fails.push(format!("launcher {l}: {e}: {}", out.describe())),
        }
    }
    for (file, ..) in &cases {
        let p = src.join(os(file));
        let n = by_source.get(bytes(&p)).map(|v| v.len()).unwrap_or(0);
        fails.check(n == 1, || {
            format!(
                "{:?}: {n} launchers run it (expected 1): {:?}",
                show(file),
                by_source.get(bytes(&p))
            )
        });
    }

    // Menu entries: validate, resolve, and their Exec runs the app with the
    // arguments the original entry gave, and nothing else.
    let entries = menu_entries(&mnt);
    let log = full_log(&mount);
    let test_file = cwd.join("a file.txt");
    std::fs::write(&test_file, b"x").unwrap();
    for (i, (file, stem, exec, ..)) in cases.iter().enumerate() {
        let entry = format!("appimagefs-{stem}.desktop");
        let folder = String::from_utf8_lossy(&app_name_bytes(file)).into_owned();
        if !entries.contains_key(&entry) {
            fails.check(log.contains(&format!("{folder}: no menu entry")), || {
                format!(
                    "{:?}: no menu entry {entry} and no log line saying why",
                    show(file)
                )
            });
            eprintln!(
                "INFO menu: {:?} (Exec={exec:?}) has no menu entry",
                show(file)
            );
            continue;
        }
        let Some(keys) = check_entry(&mnt, &entry, &mut fails) else {
            continue;
        };
        let Ok(args) = split_exec(&keys["Exec"]) else {
            continue;
        };
        let ts = test_file.to_str().unwrap();
        let got = expand_field_codes(&args, ts, &keys);
        let out = run_stdin(
            &|| {
                let mut c = Command::new(&got[0]);
                clean_env(&mut c);
                c.args(&got[1..]).current_dir(&cwd);
                c
            },
            b"",
            Duration::from_secs(30),
        );
        // What the app must get: the original Exec's arguments after its
        // program, field codes expanded the same way.
        let orig = unescape_value(exec);
        let want: Option<Vec<Vec<u8>>> = split_exec(&orig).ok().map(|a| {
            expand_field_codes(&a[1..], ts, &keys)
                .into_iter()
                .map(String::into_bytes)
                .collect()
        });
        match parse_dump(&out.stdout) {
            Ok(d) => fails.check(
                d.var("MARKER") == format!("marker {i}").as_bytes()
                    && d.var("APPIMAGE") == bytes(&src.join(os(file)))
                    && want.as_ref().is_none_or(|w| &d.args == w),
                || {
                    format!(
                        "menu entry {entry}: Exec {:?} ran marker {:?} APPIMAGE {:?} with args {:?}; expected marker {i}, args {want:?}",
                        keys["Exec"],
                        show(d.var("MARKER")),
                        show(d.var("APPIMAGE")),
                        d.args.iter().map(|a| show(a)).collect::<Vec<_>>()
                    )
                },
            ),
            Err(e) => fails.push(format!("menu entry {entry}: running Exec {got:?}: {e}: {}", out.describe())),
        }
        eprintln!("INFO menu: {entry}: Exec={:?}", keys["Exec"]);
    }
    fails.check(!pw.exists(), || {
        format!(
            "something executed a hostile value: {} exists",
            pw.display()
        )
    });
    for dir in [&cwd, &src, &tmp.path().to_path_buf()] {
        fails.check(!dir.join("pwned").exists(), || {
            format!(
                "a hostile file name was executed: {}/pwned exists",
                dir.display()
            )
        });
    }
    let _ = std::fs::remove_file(&pw);
    fails.check(mount.is_alive(), || "the daemon died".into());
    eprintln!(
        "TIMING menu: hostile_names_run_nothing_else {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    if !fails.is_empty() {
        fails.push(format!(
            "daemon log:\n{}",
            truncate_text(&full_log(&mount), 6000)
        ));
    }
    drop(mount);
    fails.finish("hostile");
}

/// `app_name` for raw bytes.
fn app_name_bytes(file: &[u8]) -> Vec<u8> {
    let suffix = b".appimage";
    if file.len() > suffix.len() && file[file.len() - suffix.len()..].eq_ignore_ascii_case(suffix) {
        file[..file.len() - suffix.len()].to_vec()
    } else {
        file.to_vec()
    }
}

// ---------------------------------------------------------------------------
// 3. versions

fn marker_of_launcher(mnt: &Path, launcher: &str) -> Result<Vec<u8>, String> {
    let p = mnt.join("bin").join(launcher);
    let out = run_launcher(&p, &[], Path::new("/"), Path::new("/tmp"), b"", None);
    parse_dump(&out.stdout)
        .map(|d| d.var("MARKER").to_vec())
        .map_err(|e| format!("{e}: {}", out.describe()))
}

#[test]
fn bin_points_at_the_newest_version() {
    let tmp = TempDir::new("menu-versions");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old = 1_600_000_000;
    // (file, stem, version, mtime)
    let apps: &[(&str, &str, Option<&str>, i64)] = &[
        // natural order: 1.10 > 1.9, although 1.9 is newer on disk and
        // sorts after 1.10 by name
        ("verapp-1.10.AppImage", "verapp", Some("1.10"), old),
        ("verapp-1.9.AppImage", "verapp", Some("1.9"), now),
        // no versions: the newer file wins (it sorts first by name)
        ("mtapp-a.AppImage", "mtapp", None, now),
        ("mtapp-b.AppImage", "mtapp", None, old),
    ];
    for (file, stem, version, mtime) in apps {
        let extra = version
            .map(|v| format!("X-AppImage-Version={v}\n"))
            .unwrap_or_default();
        build_envdump(
            &src.join(file),
            &Spec {
                desktop_name: Some(format!("{stem}.desktop").into_bytes()),
                desktop: desktop(stem, &format!("{stem} %f"), stem, &extra),
                marker: format!("marker {file}"),
                icon: Some(stem.to_string()),
                wrap: Wrap::Type2,
            },
        );
        set_mtime(&src.join(file), *mtime);
    }
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    for (file, ..) in apps {
        fails.check(mnt.join(app_name(file)).join("AppRun").exists(), || {
            format!("folder of {file} missing")
        });
    }
    for (launcher, want) in [
        ("verapp", "verapp-1.10.AppImage"),
        ("mtapp", "mtapp-a.AppImage"),
    ] {
        match marker_of_launcher(&mnt, launcher) {
            Ok(m) => fails.check(m == format!("marker {want}").as_bytes(), || {
                format!(
                    "bin/{launcher} runs {:?}, expected the newest, {want}",
                    show(&m)
                )
            }),
            Err(e) => fails.push(format!("bin/{launcher}: {e}")),
        }
    }
    let entries = menu_entries(&mnt);
    fails.check(
        entries.keys().cloned().collect::<Vec<_>>()
            == ["appimagefs-mtapp.desktop", "appimagefs-verapp.desktop"],
        || format!("expected one menu entry per app, got {:?}", entries.keys()),
    );
    if let Some(e) = entries.get("appimagefs-verapp.desktop") {
        let keys = entry_keys(&String::from_utf8_lossy(e));
        fails.check(
            keys.get("X-AppImage-Version").map(|s| s.as_str()) == Some("1.10"),
            || format!("the verapp menu entry is not the 1.10 one: {keys:?}"),
        );
    }
    let launchers: Vec<String> = std::fs::read_dir(mnt.join("bin"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut launchers = launchers;
    launchers.sort();
    fails.check(
        launchers == ["mtapp", "verapp", "verapp-1.10", "verapp-1.9"],
        || format!("expected one launcher per app and per version, got {launchers:?}"),
    );

    // A newer version arrives while mounted; then leaves again.
    let newer = src.join("verapp-1.11.AppImage");
    build_envdump(
        &newer,
        &Spec {
            desktop_name: Some(b"verapp.desktop".to_vec()),
            desktop: desktop("verapp", "verapp %f", "verapp", "X-AppImage-Version=1.11\n"),
            marker: "marker verapp-1.11.AppImage".into(),
            icon: Some("verapp".into()),
            wrap: Wrap::Type2,
        },
    );
    set_mtime(&newer, old - 1000);
    for (step, want) in [
        ("add 1.11", "verapp-1.11.AppImage"),
        ("rm 1.11", "verapp-1.10.AppImage"),
    ] {
        if step == "rm 1.11" {
            std::fs::remove_file(&newer).unwrap();
        }
        let t = Instant::now();
        let mut last: String;
        loop {
            match marker_of_launcher(&mnt, "verapp") {
                Ok(m) if m == format!("marker {want}").as_bytes() => {
                    eprintln!(
                        "TIMING menu: {step}: bin/verapp switched after {} ms",
                        t.elapsed().as_millis()
                    );
                    break;
                }
                Ok(m) => last = String::from_utf8_lossy(&m).into_owned(),
                Err(e) => last = e,
            }
            if t.elapsed() > Duration::from_secs(3) {
                fails.push(format!(
                    "{step}: bin/verapp still runs {last:?} after 3 s, expected {want}"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fails.check(mount.is_alive(), || "the daemon died".into());
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", full_log(&mount)));
    }
    drop(mount);
    fails.finish("versions");
}

// ---------------------------------------------------------------------------
// 4. opt-outs and broken entries

#[test]
fn opted_out_and_broken_apps_get_a_launcher_but_no_menu_entry() {
    let mut fails = Failures::new();
    // (app, reason in the log, run it)
    let cases = [
        (App::EchoNoIntegrate, "X-AppImage-Integrate=false", true),
        (App::EchoNoDisplay, "NoDisplay=true", true),
        (App::HiddenTool, "NoDisplay=true", false),
        (App::EchoBrokenDesktop, "broken desktop entry", true),
    ];
    for (which, reason, run) in cases {
        let (fx, launcher) = (which.file_name(), which.launcher());
        let tmp = TempDir::new("menu-optout");
        let src = tmp.subdir("src");
        let mnt = tmp.subdir("mnt");
        copy_app(which, &src, fx);
        // A positive control: this one must get its entry.
        copy_app(App::HelloWorld, &src, App::HelloWorld.file_name());
        let mut mount = Mount::start(&src, &mnt, &[]);
        let folder = app_name(fx);
        fails.check(mnt.join(&folder).join("AppRun").exists(), || {
            format!("{fx}: not mounted")
        });
        let l = mnt.join("bin").join(launcher);
        let script = std::fs::read(&l).unwrap_or_default();
        let appdir_line = format!("APPDIR='{}'", mnt.join(&folder).display());
        fails.check(
            String::from_utf8_lossy(&script).contains(&appdir_line),
            || {
                format!(
                    "{fx}: bin/{launcher} missing or not for {folder}: {:?}",
                    String::from_utf8_lossy(&script)
                )
            },
        );
        if run {
            let t1 = tmp.subdir("rt");
            let args = [OsStr::new("a"), OsStr::new("b  c")];
            let offset = app(which).wrap.payload_offset().unwrap();
            let r = reference_run(&src.join(fx), offset, &args, tmp.path(), &t1, b"", None);
            let o = run_launcher(&l, &args, tmp.path(), &t1, b"", None);
            // The app's own last error line (if any) must show the launcher
            // reached the same AppRun.
            let last_err = r.stderr_text().lines().last().unwrap_or("").to_string();
            fails.check(
                o.status.map(|s| s.code()) == r.status.map(|s| s.code())
                    && o.stdout == r.stdout
                    && (r.success() || o.stderr_text().contains(&last_err)),
                || {
                    format!(
                        "{fx}: bin/{launcher} differs from the reference run:\nreference: {}\nlauncher: {}",
                        r.describe(),
                        o.describe()
                    )
                },
            );
        }
        let entries = menu_entries(&mnt);
        fails.check(
            entries.keys().cloned().collect::<Vec<_>>() == ["appimagefs-helloworld.desktop"],
            || {
                format!(
                    "{fx}: expected only the control's menu entry, got {:?}",
                    entries.keys()
                )
            },
        );
        // Touch bin/ and share/ again: still one log line.
        let _ = menu_entries(&mnt);
        let _ = std::fs::read_dir(mnt.join("bin")).map(|r| r.count());
        let log = full_log(&mount);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("{folder}: no menu entry")))
            .collect();
        fails.check(lines.len() == 1 && lines[0].contains(reason), || {
            format!("{fx}: expected one log line \"{folder}: no menu entry: ...{reason}...\", got {lines:?}")
        });
        if which == App::EchoBrokenDesktop {
            let n = log
                .lines()
                .filter(|l| l.contains("broken desktop entry"))
                .count();
            fails.check(n == 1, || {
                format!("{fx}: the broken entry was logged {n} times:\n{log}")
            });
        }
        fails.check(mount.is_alive(), || format!("{fx}: the daemon died"));
        drop(mount);
    }
    fails.finish("opt-outs");
}

// ---------------------------------------------------------------------------
// 5. a GUI app under Xvfb

/// Kills a process group on drop.
/// Distinct colours a drawn xmessage window shows at least (its text, the
/// background, the button's border); an undrawn one shows one.
const MIN_COLOURS: usize = 2;

#[test]
fn gui_app_starts_from_its_menu_entry() {
    let t0 = Instant::now();
    let fx = App::Gui.file_name();
    let tmp = TempDir::new("menu-gui");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_app(App::Gui, &src, fx);
    let mut mount = Mount::start(&src, &mnt, &[]);
    let mut fails = Failures::new();
    let entry = "appimagefs-xmessage.desktop";
    let Some(keys) = check_entry(&mnt, entry, &mut fails) else {
        fails.push(format!(
            "no menu entry {entry}: {:?}",
            menu_entries(&mnt).keys()
        ));
        drop(mount);
        return fails.finish("gui");
    };
    let args = split_exec(&keys["Exec"]).expect("Exec parses");
    let argv = expand_field_codes(&args, "", &keys)
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>();
    eprintln!("INFO menu: GUI: Exec={:?} -> {argv:?}", keys["Exec"]);

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
    // The frame buffer file may be written just after the socket appears.
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
    let app = Command::new(&argv[0])
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
    let _app = Killer(app);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut win = None;
    while Instant::now() < deadline {
        win = top_window(&display, "(\"xmessage\" \"Xmessage\")");
        if win.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = t0.elapsed();
    let png_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gui-app.png");
    match win {
        None => fails.push(format!(
            "no mapped xmessage window on {display} within 20 s; xwininfo:\n{}\napp stderr:\n{}",
            run_timeout(
                &mut command("xwininfo", ["-display", display.as_str(), "-root", "-tree"]),
                Duration::from_secs(10)
            )
            .stdout_text(),
            std::fs::read_to_string(tmp.join("app.err")).unwrap_or_default()
        )),
        Some((id, x, y, w, h)) => {
            eprintln!(
                "INFO menu: GUI: xmessage window {id} {w}x{h}+{x}+{y} after {:.1}s",
                started.as_secs_f64()
            );
            // Wait for it to be drawn.
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
                "INFO menu: GUI: screenshot {} ({inside} colours in the window)",
                png_path.display()
            );
            fails.check(inside >= MIN_COLOURS, || {
                format!("the xmessage window area has only {inside} colour(s): nothing drawn (screenshot {})", png_path.display())
            });
            // The process is the app from the mount.
            let exe = std::fs::read_link(format!("/proc/{app_pid}/exe")).unwrap_or_default();
            fails.check(exe.starts_with(&mnt), || {
                format!(
                    "the started process runs {}, not a program inside the mount",
                    exe.display()
                )
            });
        }
    }
    fails.check(mount.is_alive(), || "the daemon died".into());
    eprintln!("TIMING menu: gui {:.1}s", t0.elapsed().as_secs_f64());
    drop(_app);
    if !fails.is_empty() {
        fails.push(format!("daemon log:\n{}", mount.log_text()));
    }
    drop(mount);
    fails.finish("gui");
}

#[test]
fn exec_parser_self_check() {
    // The test's own Exec parser must get the spec's examples right, or the
    // hostile-entry checks above would compare against wrong expectations.
    assert_eq!(
        split_exec(r#"a "b c" "d\"e" "\$x" "\\" f"#).unwrap(),
        ["a", "b c", "d\"e", "$x", "\\", "f"]
    );
    assert!(split_exec("a \"b").is_err());
    assert_eq!(unescape_value(r"a\sb\\c\n"), "a b\\c\n");
    let k = BTreeMap::new();
    let e: Vec<String> = ["p", "%f", "%%", "x%%y", "%k"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(expand_field_codes(&e, "/f", &k), ["p", "/f", "%", "x%y"]);
    let shot = Shot {
        w: 2,
        h: 1,
        rgb: vec![0, 0, 0, 1, 2, 3],
    };
    assert_eq!(shot.colours(0, 0, 2, 1), 2);
}
