//! The `appimagefs` command.

use std::process::ExitCode;

use clap::Parser;

use appimagefs::{cli, daemon};

fn main() -> ExitCode {
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
