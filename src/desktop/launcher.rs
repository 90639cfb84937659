//! The launcher scripts in `<mountpoint>/bin/`: each starts one app the way
//! the AppImage's own type 2 runtime would, but from the already mounted
//! AppDir, so no FUSE and no `fusermount` are needed per launch.
//!
//! The runtime sets `APPIMAGE` (absolute path of the .AppImage file),
//! `APPDIR` (where the payload is mounted), `ARGV0` (argv\[0\] as invoked)
//! and `OWD` (the working directory at launch, as `getcwd` returns it), then
//! execs `$APPDIR/AppRun` with the arguments. The script does the same with
//! `exec`, so arguments, standard streams, signals and the exit status pass
//! through unchanged. Differences from the runtime: `ARGV0` is the script's
//! `$0`, which is the full path when the shell found the script through
//! `PATH` (the kernel does not pass the original argv\[0\] to a script); and
//! when the working directory cannot be determined (it was removed), `OWD`
//! is unset rather than inherited from the caller.
//!
//! The script also exports `DESKTOPINTEGRATION=appimagefs`, the variable
//! integration tools (appimaged, AppImageLauncher) set so that an app does
//! not offer to write menu entries of its own into the user's home: the
//! mount already integrates it.
//!
//! Settings from the app's `.env` file ([`envfile`]) come first, each value
//! quoted the same way, so they can never change the variables above.
//!
//! For a Chromium or Electron app, the script then decides whether to pass
//! `--no-sandbox` ([`sandbox`]).
//!
//! Paths are arbitrary bytes: they are embedded in single quotes with every
//! `'` written as `'\''`, the one quoting in which `sh` interprets nothing,
//! so a path holding `$(...)`, backticks, quotes, newlines or non-UTF-8
//! bytes is passed on literally and never executed.

use super::envfile::{self, Setting};
use super::sandbox::{self, Policy};

/// What a launcher does beyond what the AppImage runtime would.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// The app's settings file ([`envfile`]), applied in order before the
    /// launcher's own variables.
    pub env: Vec<Setting>,
    /// For a Chromium or Electron app ([`sandbox::is_browser_app`]): what
    /// to do about `--no-sandbox` ([`sandbox::script_lines`]); `None` for
    /// any other app.
    pub sandbox: Option<Policy>,
}

/// The launcher script for one app: `appimage` is the absolute path of the
/// AppImage file, `appdir` the mount path of the app's folder (both raw
/// bytes). `Err` only for a NUL byte, which no path can contain.
pub fn launcher_script(appimage: &[u8], appdir: &[u8], extras: &Extras) -> Result<Vec<u8>, String> {
    if appimage.contains(&0) || appdir.contains(&0) {
        return Err("a path contains a NUL byte".to_string());
    }
    let mut out = Vec::with_capacity(512 + appimage.len() + appdir.len());
    out.extend_from_slice(
        b"#!/bin/sh\n\
# Made by appimagefs: runs this app from its mounted AppDir with the\n\
# environment the AppImage runtime would set (APPIMAGE, APPDIR, ARGV0, OWD).\n\
",
    );
    if !extras.env.is_empty() {
        out.extend_from_slice(
            b"# Settings from the AppImage's .env file, quoted: taken literally.\n",
        );
    }
    for setting in &extras.env {
        match setting {
            Setting::Set(name, value) => {
                if !envfile::valid_name(name) || value.contains(&0) {
                    return Err(format!("setting {name:?} cannot be exported"));
                }
                out.extend_from_slice(format!("{name}=").as_bytes());
                out.extend_from_slice(&shell_quote(value));
                out.extend_from_slice(format!("\nexport {name}\n").as_bytes());
            }
            Setting::Unset(name) if envfile::valid_name(name) => {
                out.extend_from_slice(format!("unset {name}\n").as_bytes());
            }
            Setting::Unset(name) => return Err(format!("setting {name:?} cannot be unset")),
        }
    }
    out.extend_from_slice(
        b"\
# DESKTOPINTEGRATION tells the app the mount integrates it in menus already.\n\
DESKTOPINTEGRATION=appimagefs\n\
APPIMAGE=",
    );
    out.extend_from_slice(&shell_quote(appimage));
    out.extend_from_slice(b"\nAPPDIR=");
    out.extend_from_slice(&shell_quote(appdir));
    out.extend_from_slice(
        b"\nARGV0=$0\n\
export DESKTOPINTEGRATION APPIMAGE APPDIR ARGV0\n\
# pwd -P is getcwd(); the trailing x keeps a final newline in the name.\n\
# getcwd() gives an absolute path or fails (dash then prints an empty line).\n\
OWD=$(pwd -P 2>/dev/null && printf x)\n\
OWD=${OWD%??}\n\
case $OWD in\n\
/*) export OWD ;;\n\
*) unset OWD ;;\n\
esac\n",
    );
    if let Some(policy) = extras.sandbox {
        out.extend_from_slice(&sandbox::script_lines(policy));
    }
    out.extend_from_slice(b"exec \"$APPDIR/AppRun\" \"$@\"\n");
    Ok(out)
}

/// Quotes `value` for `sh` as one word that expands to exactly `value`:
/// single quotes around it, each `'` inside as `'\''`.
pub fn shell_quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// A fresh directory under the system temp dir, removed on drop.
    fn join(base: &Path, name: &[u8]) -> PathBuf {
        base.join(OsStr::from_bytes(name))
    }

    /// Runs the command `make` builds with `stdin` as input. Another test
    /// thread forking while a script was open for writing makes exec fail
    /// with "Text file busy" for a moment; such runs are retried.
    fn run(make: impl Fn() -> Command, stdin: &[u8]) -> std::process::Output {
        for _ in 0..50 {
            let spawned = make()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match spawned {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                other => other.unwrap(),
            };
            {
                use std::io::Write;
                let mut input = child.stdin.take().unwrap();
                let _ = input.write_all(stdin);
            }
            let output = child.wait_with_output().unwrap();
            let busy = String::from_utf8_lossy(&output.stderr).contains("busy");
            if output.status.code() == Some(126) && busy {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            return output;
        }
        panic!("the executable stayed busy");
    }

    fn write_exec(path: &Path, text: &[u8]) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Prints APPIMAGE, APPDIR, ARGV0, OWD and each argument NUL-terminated,
    /// then copies stdin to stdout and exits 42.
    const APPRUN: &[u8] = b"#!/bin/sh\n\
printf '%s\\0' \"$APPIMAGE\" \"$APPDIR\" \"$ARGV0\" \"${OWD-<unset>}\" \"$#\" \"$@\"\n\
cat\n\
exit 42\n";

    /// Names that would run code or break naive quoting: any execution
    /// creates a file named `pwned` in the working directory.
    const HOSTILE: &[&[u8]] = &[
        b"plain",
        b"it's \"quoted\"",
        b"$(touch pwned)",
        b"`touch pwned`",
        b"'; touch pwned; '",
        b"\"; touch pwned; \"",
        b"new\nline$(touch pwned)\n",
        b"\xff\xfe non-utf8 \x80'",
        b"\\ back\\slash \\'",
        b"${HOME} $0 $@ * ? [a] ~ # ; & | < > ( ) !",
        b" leading and trailing space ",
        b"-n",
    ];

    /// True when a file named `pwned` exists anywhere under `dir`.
    fn pwned(dir: &Path) -> bool {
        std::fs::read_dir(dir).unwrap().flatten().any(|e| {
            e.file_name() == "pwned" || (e.file_type().unwrap().is_dir() && pwned(&e.path()))
        })
    }

    /// For each hostile name: an AppDir and an AppImage path named after it,
    /// the launcher run (through its shebang, or by `shell`) from a working
    /// directory of that name reached through a symlink; every value AppRun
    /// sees must be exactly the expected bytes, and nothing may have run.
    fn check_scripts_run_hostile_paths_literally(shell: Option<&str>) {
        let tmp = TempDir::new("launcher");
        for (i, raw) in HOSTILE.iter().enumerate() {
            let name = raw.to_vec();
            let case = tmp.0.join(format!("case{i}"));
            let appdir = join(&case, &name);
            std::fs::create_dir_all(&appdir).unwrap();
            write_exec(&appdir.join("AppRun"), APPRUN);
            let appimage = join(&case, &[&name[..], b".AppImage"].concat());
            let script = launcher_script(
                appimage.as_os_str().as_bytes(),
                appdir.as_os_str().as_bytes(),
                &Extras::default(),
            )
            .unwrap();
            let bin = case.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let launcher = bin.join("app");
            write_exec(&launcher, &script);
            // Start in a hostile working directory reached through a symlink:
            // OWD must be the physical path.
            let real_cwd = join(&case, &[b"cwd ", &name[..]].concat());
            std::fs::create_dir_all(&real_cwd).unwrap();
            let link_cwd = case.join("cwd-link");
            std::os::unix::fs::symlink(&real_cwd, &link_cwd).unwrap();
            let args: Vec<&OsStr> = vec![
                OsStr::from_bytes(&name),
                OsStr::new(""),
                OsStr::new("two words"),
                OsStr::new("%f"),
            ];
            let output = run(
                || {
                    let mut cmd = match shell {
                        Some(sh) => {
                            let mut c = Command::new(sh);
                            c.arg(&launcher);
                            c
                        }
                        None => Command::new(&launcher),
                    };
                    cmd.args(&args)
                        .current_dir(&link_cwd)
                        .env("PWD", &link_cwd)
                        .env("OWD", "inherited");
                    cmd
                },
                b"from stdin\n\xff",
            );
            assert_eq!(
                output.status.code(),
                Some(42),
                "case {i}: exit status not passed through"
            );
            let mut fields: Vec<&[u8]> = output.stdout.split(|&b| b == 0).collect();
            let rest = fields.pop().unwrap();
            assert_eq!(
                rest, b"from stdin\n\xff",
                "case {i}: stdin not passed through"
            );
            let real_cwd = std::fs::canonicalize(&real_cwd).unwrap();
            let mut expected: Vec<&[u8]> = vec![
                appimage.as_os_str().as_bytes(),
                appdir.as_os_str().as_bytes(),
                launcher.as_os_str().as_bytes(),
                real_cwd.as_os_str().as_bytes(),
                b"4",
            ];
            expected.extend(args.iter().map(|a| a.as_bytes()));
            assert_eq!(
                fields,
                expected,
                "case {i} ({:?})",
                String::from_utf8_lossy(raw)
            );
            assert!(!pwned(&tmp.0), "case {i}: the path was executed");
        }
    }

    #[test]
    fn hostile_paths_round_trip_and_never_run_via_shebang() {
        check_scripts_run_hostile_paths_literally(None);
    }

    #[test]
    fn hostile_paths_round_trip_under_dash_and_bash() {
        for shell in ["dash", "bash"] {
            if Command::new(shell)
                .arg("-c")
                .arg("true")
                .status()
                .is_ok_and(|s| s.success())
            {
                check_scripts_run_hostile_paths_literally(Some(shell));
            }
        }
    }

    /// The check above can fail: a script quoting with double quotes runs the
    /// embedded command, and `pwned` notices.
    #[test]
    fn naive_quoting_is_caught_by_the_check() {
        let tmp = TempDir::new("launcher-naive");
        let script = b"#!/bin/sh\nAPPDIR=\"$(touch pwned)\"\n";
        write_exec(&tmp.0.join("launch"), script);
        let output = run(
            || {
                let mut c = Command::new(tmp.0.join("launch"));
                c.current_dir(&tmp.0);
                c
            },
            b"",
        );
        assert!(output.status.success());
        assert!(pwned(&tmp.0));
    }

    #[test]
    fn owd_is_unset_when_the_working_directory_is_gone() {
        let tmp = TempDir::new("launcher-gone");
        let appdir = tmp.0.join("app");
        std::fs::create_dir_all(&appdir).unwrap();
        write_exec(&appdir.join("AppRun"), APPRUN);
        let script = launcher_script(
            b"/x.AppImage",
            appdir.as_os_str().as_bytes(),
            &Extras::default(),
        )
        .unwrap();
        write_exec(&tmp.0.join("launch"), &script);
        let gone = tmp.0.join("gone");
        std::fs::create_dir_all(&gone).unwrap();
        // The shell removes its own working directory, then runs the launcher.
        let output = run(
            || {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg("mkdir -p \"$1\" && cd \"$1\" && rmdir \"$1\" && exec \"$2\"")
                    .arg("sh")
                    .arg(&gone)
                    .arg(tmp.0.join("launch"))
                    .env("OWD", "inherited");
                c
            },
            b"",
        );
        assert_eq!(output.status.code(), Some(42));
        let fields: Vec<&[u8]> = output.stdout.split(|&b| b == 0).collect();
        assert_eq!(fields[3], b"<unset>");
    }

    #[test]
    fn desktopintegration_is_set_whatever_the_caller_had() {
        let tmp = TempDir::new("launcher-integration");
        let appdir = tmp.0.join("app");
        std::fs::create_dir_all(&appdir).unwrap();
        write_exec(
            &appdir.join("AppRun"),
            b"#!/bin/sh\nprintf '%s' \"${DESKTOPINTEGRATION-<unset>}\"\n",
        );
        let script = launcher_script(
            b"/x.AppImage",
            appdir.as_os_str().as_bytes(),
            &Extras::default(),
        )
        .unwrap();
        write_exec(&tmp.0.join("launch"), &script);
        for inherited in [None, Some("appimaged")] {
            let output = run(
                || {
                    let mut c = Command::new(tmp.0.join("launch"));
                    match inherited {
                        Some(v) => c.env("DESKTOPINTEGRATION", v),
                        None => c.env_remove("DESKTOPINTEGRATION"),
                    };
                    c
                },
                b"",
            );
            assert!(output.status.success());
            assert_eq!(output.stdout, b"appimagefs", "inherited {inherited:?}");
        }
    }

    #[test]
    fn settings_are_exported_literally_and_unset_works() {
        let tmp = TempDir::new("launcher-env");
        let appdir = tmp.0.join("app");
        std::fs::create_dir_all(&appdir).unwrap();
        write_exec(
            &appdir.join("AppRun"),
            b"#!/bin/sh\nprintf '%s\\0' \"${GONE-<unset>}\" \"$APPDIR\"\nfor v in $(seq 0 11); do eval \"printf '%s\\0' \\\"\\$V$v\\\"\"; done\n",
        );
        let mut env: Vec<Setting> = HOSTILE
            .iter()
            .enumerate()
            .map(|(i, v)| Setting::Set(format!("V{i}"), v.to_vec()))
            .collect();
        env.push(Setting::Unset("GONE".into()));
        let script = launcher_script(
            b"/x.AppImage",
            appdir.as_os_str().as_bytes(),
            &Extras { env, sandbox: None },
        )
        .unwrap();
        write_exec(&tmp.0.join("launch"), &script);
        let output = run(
            || {
                let mut c = Command::new(tmp.0.join("launch"));
                c.current_dir(&tmp.0).env("GONE", "inherited");
                c
            },
            b"",
        );
        assert!(output.status.success(), "{output:?}");
        let fields: Vec<&[u8]> = output.stdout.split(|&b| b == 0).collect();
        assert_eq!(fields[0], b"<unset>");
        assert_eq!(fields[1], appdir.as_os_str().as_bytes());
        assert_eq!(&fields[2..2 + HOSTILE.len()], HOSTILE);
        assert!(!pwned(&tmp.0), "a value was executed");
        let bad = Extras {
            env: vec![Setting::Set("A B".into(), b"x".to_vec())],
            sandbox: None,
        };
        assert!(launcher_script(b"/a", b"/x", &bad).is_err());
    }

    #[test]
    fn quoting_and_nul() {
        assert_eq!(shell_quote(b"a'b"), b"'a'\\''b'");
        assert_eq!(shell_quote(b""), b"''");
        let none = Extras::default();
        assert!(launcher_script(b"/a\0b", b"/x", &none).is_err());
        assert!(launcher_script(b"/a", b"/x\0", &none).is_err());
        let script = launcher_script(b"/a", b"/x", &none).unwrap();
        assert!(script.starts_with(b"#!/bin/sh\n"));
    }

    /// Runs a browser app's launcher under `policy` with a fake `unshare`
    /// first in PATH exiting `unshare_status` (`None`: no `unshare` at
    /// all); returns AppRun's arguments and the launcher's stderr.
    fn browser_run(policy: Policy, unshare_status: Option<i32>) -> (Vec<Vec<u8>>, String) {
        let tmp = TempDir::new("launcher-sandbox");
        let appdir = tmp.0.join("app");
        std::fs::create_dir_all(&appdir).unwrap();
        write_exec(
            &appdir.join("AppRun"),
            b"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n",
        );
        let fake = tmp.0.join("path");
        std::fs::create_dir_all(&fake).unwrap();
        if let Some(status) = unshare_status {
            write_exec(
                &fake.join("unshare"),
                format!("#!/bin/sh\nexit {status}\n").as_bytes(),
            );
        }
        let extras = Extras {
            env: Vec::new(),
            sandbox: Some(policy),
        };
        let script =
            launcher_script(b"/x.AppImage", appdir.as_os_str().as_bytes(), &extras).unwrap();
        write_exec(&tmp.0.join("launch"), &script);
        let output = run(
            || {
                // Only the fake directory is searched: without the fake,
                // `unshare` is not found.
                let mut c = Command::new("/bin/sh");
                c.arg(tmp.0.join("launch"))
                    .args(["--", "it's $(touch pwned)", ""])
                    .current_dir(&tmp.0)
                    .env("PATH", &fake);
                c
            },
            b"",
        );
        assert!(output.status.success(), "{output:?}");
        assert!(!pwned(&tmp.0));
        let mut args: Vec<Vec<u8>> = output
            .stdout
            .split(|&b| b == 0)
            .map(<[u8]>::to_vec)
            .collect();
        args.pop();
        (args, String::from_utf8_lossy(&output.stderr).into_owned())
    }

    #[test]
    fn no_sandbox_is_added_only_where_namespaces_fail_or_when_forced() {
        let plain: Vec<Vec<u8>> = vec![
            b"--".to_vec(),
            b"it's $(touch pwned)".to_vec(),
            b"".to_vec(),
        ];
        let mut without = vec![b"--no-sandbox".to_vec()];
        without.extend(plain.iter().cloned());
        // auto: namespaces work -> unchanged, silent.
        assert_eq!(
            browser_run(Policy::Auto, Some(0)),
            (plain.clone(), String::new())
        );
        // auto: unshare refused -> --no-sandbox first, one line saying why.
        let (args, err) = browser_run(Policy::Auto, Some(1));
        assert_eq!(args, without);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("launch: user namespaces are not available"),
            "{err}"
        );
        assert!(err.contains("--no-sandbox"), "{err}");
        // auto: no unshare to ask -> the sandbox stays on.
        assert_eq!(
            browser_run(Policy::Auto, None),
            (plain.clone(), String::new())
        );
        // keep: never, whatever unshare says.
        assert_eq!(
            browser_run(Policy::Keep, Some(1)),
            (plain.clone(), String::new())
        );
        // off: always, silently.
        assert_eq!(browser_run(Policy::Off, Some(0)), (without, String::new()));
        // Not a browser app: no check at all.
        let script = launcher_script(b"/a", b"/x", &Extras::default()).unwrap();
        assert!(!String::from_utf8_lossy(&script).contains("sandbox"));
    }
}
