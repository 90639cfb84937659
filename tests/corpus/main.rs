//! The opt-in real-world corpus (`cargo test --test corpus`): AppImages
//! from public projects and hostile ISO 9660 / SquashFS files, listed with
//! their sizes and SHA-256 in the folder's MANIFEST.tsv. Nothing of it is
//! in this repository; set `APPIMAGEFS_CORPUS=<folder>` to run it (`.ci/run`
//! does when `../shared/fixtures` exists).
//!
//! - Unset: prints that it was skipped and why, and passes.
//! - Set to a folder that is missing, lacks a listed file or holds a file
//!   whose size or SHA-256 differs: fails.
//! - Otherwise: every AppImage / SquashFS / ISO row is mounted and compared
//!   with unsquashfs or xorriso (`trees`), every hostile row fails alone in
//!   bounded time while the mount and the good apps keep working
//!   (`hostile`), the real apps' launchers run (`launch`), and what needs
//!   the real runtimes and apps (`runtimes`): each app through the mount
//!   against its runtime's extract-and-run, the environment the launcher
//!   sets against the runtimes', Leafpad (GTK 2) under Xvfb, `inspect`.
//!
//! A custom harness (`harness = false`), so the skip notice is printed even
//! though the run passes; arguments that do not start with `-` select the
//! tests whose names contain them, like libtest's filters; libtest's options
//! are ignored.

#[path = "../common/mod.rs"]
mod common;

mod hostile;
mod launch;
mod manifest;
mod runtimes;
mod sha256;
mod trees;

use std::time::Instant;

use manifest::Corpus;

/// The environment variable naming the corpus folder.
const VAR: &str = "APPIMAGEFS_CORPUS";

type Test = (&'static str, fn(&Corpus));

const TESTS: &[Test] = &[
    (
        "trees::squashfs_payloads_match_unsquashfs",
        trees::squashfs_payloads_match_unsquashfs,
    ),
    (
        "trees::iso_payloads_match_xorriso",
        trees::iso_payloads_match_xorriso,
    ),
    (
        "hostile::each_bad_file_fails_alone",
        hostile::each_bad_file_fails_alone,
    ),
    (
        "launch::real_apps_run_through_bin",
        launch::real_apps_run_through_bin,
    ),
    (
        "runtimes::apps_match_extract_and_run",
        runtimes::apps_match_extract_and_run,
    ),
    (
        "runtimes::launcher_env_matches_real_runtimes",
        runtimes::launcher_env_matches_real_runtimes,
    ),
    (
        "runtimes::leafpad_starts_from_its_menu_entry",
        runtimes::leafpad_starts_from_its_menu_entry,
    ),
    ("runtimes::inspect_real_files", runtimes::inspect_real_files),
];

fn main() {
    // libtest options are accepted and ignored; those taking a value in the
    // next argument must not turn it into a filter.
    let mut filters: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if [
            "--test-threads",
            "--skip",
            "--color",
            "--format",
            "--logfile",
            "-Z",
        ]
        .contains(&a.as_str())
        {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let selected: Vec<&Test> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let Some(dir) = std::env::var_os(VAR) else {
        println!(
            "\ncorpus: SKIPPED: {VAR} is not set, so the {} real-world corpus test(s) did not run.\n\
             corpus: set {VAR}=<folder holding MANIFEST.tsv and the files it lists> to run them,\n\
             corpus: e.g. {VAR}=$PWD/../shared/fixtures cargo test --release --locked --test corpus\n",
            selected.len()
        );
        println!(
            "test result: ok. 0 passed; 0 failed; {} skipped ({VAR} not set)\n",
            selected.len()
        );
        return;
    };
    let t0 = Instant::now();
    println!(
        "\nrunning {} corpus tests on {}",
        selected.len() + 1,
        dir.to_string_lossy()
    );
    let corpus = match sha256::self_test().and_then(|()| manifest::load(dir.as_ref())) {
        Ok(c) => {
            println!(
                "test manifest::files_match_manifest ({} files) ... ok",
                c.rows.len()
            );
            c
        }
        Err(e) => {
            println!("test manifest::files_match_manifest ... FAILED\n\n{e}\n");
            println!(
                "test result: FAILED. 0 passed; 1 failed; {} not run; finished in {:.2}s\n",
                selected.len(),
                t0.elapsed().as_secs_f64()
            );
            std::process::exit(101);
        }
    };
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| test(&corpus));
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => println!("test {name} ... ok ({secs:.1}s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({secs:.1}s)");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() + 1 - failed.len();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {passed} passed; 0 failed; finished in {:.2}s\n",
            t0.elapsed().as_secs_f64()
        );
    } else {
        println!("\nfailures (messages above):");
        for f in &failed {
            println!("    {f}");
        }
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed; finished in {:.2}s\n",
            failed.len(),
            t0.elapsed().as_secs_f64()
        );
        std::process::exit(101);
    }
}
