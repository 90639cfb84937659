//! The `appimagefs` command: `appimagefs SOURCE_DIR MOUNTPOINT` mounts,
//! `appimagefs inspect FILE...` reports on files without mounting.

use std::process::ExitCode;

use clap::Parser;

use appimagefs::{cli, daemon, inspect};

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "inspect") {
        let args = cli::InspectArgs::parse_from(std::env::args_os().skip(1));
        let all_usable = inspect::inspect(
            &args.files,
            &args.mountpoint,
            args.json,
            &mut std::io::stdout().lock(),
        );
        return if all_usable {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let args = cli::Args::parse();
    // SAFETY: geteuid cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let settings = match args.settings(is_root) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("appimagefs: {msg}");
            return ExitCode::from(2);
        }
    };
    match daemon::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appimagefs: {}", e.0);
            ExitCode::FAILURE
        }
    }
}
