//! Writes the man pages and shell completions of `appimagefs`, generated
//! from its clap definition ([`appimagefs::cli::command`]), so they can never
//! disagree with `--help`. `scripts/package.sh` runs it:
//!
//! `cargo run --example gen-docs -- OUT_DIR` writes
//! `OUT_DIR/man/appimagefs.1`, `OUT_DIR/man/appimagefs-inspect.1` and
//! `OUT_DIR/completions/{appimagefs.bash,_appimagefs,appimagefs.fish}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

/// Cross references at the end of both pages.
const SEE_ALSO: &str = "fusermount3(1), mount.fuse3(8), findmnt(8), fstab(5), systemd.mount(5)";

/// Lines written verbatim (`.nf`) under a heading: clap's after-help text is
/// laid out in columns that filled roff text would run together.
fn verbatim(roff: &mut Roff, heading: &str, text: &str) {
    roff.control("SH", [heading]);
    roff.control("nf", []);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
}

/// One man page: clap_mangen's sections, then EXAMPLES from the after-help
/// text and extra sections.
fn man_page(cmd: clap::Command, extra: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
    let after_help = cmd.get_after_help().map(|s| s.to_string());
    let man = Man::new(cmd.clone())
        .manual("User Commands")
        .source(format!("appimagefs {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::default();
    if let Some(text) = after_help {
        verbatim(&mut roff, "EXAMPLES", &text);
    }
    for (heading, text) in extra {
        roff.control("SH", [*heading]);
        for paragraph in text.split("\n\n") {
            roff.text([roman(paragraph.replace('\n', " "))]);
            roff.control("PP", []);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(SEE_ALSO)]);
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// What the main page says beyond `--help`.
const MAIN_EXTRA: &[(&str, &str)] = &[
    (
        "LOGGING",
        "Log lines go to standard error (with -f: the journal under systemd), and \
to --log-file once a background daemon is running. At start there is one line \
per file that is skipped and why, then one line once the mount is ready with \
the number of AppImages mounted and of files skipped. With -v there is also one \
line per app mounted.",
    ),
    (
        "FILES",
        "The mount appears in /proc/mounts with the type fuse.appimagefs and the \
source folder as its source: findmnt -t fuse.appimagefs lists it.\n\n\
The Debian package installs /lib/systemd/system/appimagefs.service, which \
mounts /share/AppImages on /opt/apps: override the paths with systemctl edit \
appimagefs.",
    ),
    (
        "EXIT STATUS",
        "0 once the mount is ready (without -f) or after a clean unmount (with -f); \
1 when the mount cannot be made, with the reason on standard error; 2 for a \
command-line error.",
    ),
];

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::File::create(path)?.write_all(bytes)
}

fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen-docs OUT_DIR");
        std::process::exit(2);
    };
    let mut cmd = appimagefs::cli::command().disable_help_subcommand(true);
    cmd.build();
    let man_dir = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&completions)?;

    write(
        &man_dir.join("appimagefs.1"),
        &man_page(cmd.clone(), MAIN_EXTRA)?,
    )?;
    let inspect = cmd
        .find_subcommand("inspect")
        .expect("inspect subcommand")
        .clone()
        .name("appimagefs-inspect")
        .display_name("appimagefs-inspect");
    write(
        &man_dir.join("appimagefs-inspect.1"),
        &man_page(inspect, &[])?,
    )?;

    for (shell, file) in [
        (Shell::Bash, "appimagefs.bash"),
        (Shell::Zsh, "_appimagefs"),
        (Shell::Fish, "appimagefs.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "appimagefs", &mut buf);
        write(&completions.join(file), &buf)?;
    }
    Ok(())
}
