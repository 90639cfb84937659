//! Opt-in: the real DwarFS images of the shared corpus, each wrapped as an
//! AppImage, all mounted at once (`cargo test --test corpus_dwarfs`).
//!
//! Runs only when `APPIMAGEFS_DWARFS_CORPUS` names the folder (`.ci/run`
//! sets it when the corpus stands beside the checkout); without it the test
//! says it was skipped.
//! A missing or incomplete folder fails. Checked:
//! - the compatibility images written by mkdwarfs 0.5.6 and 0.7.5 equal
//!   `compat-reference.json` (names, types, modes, sizes, symlink targets,
//!   device ids, and every file's XXH3-64);
//! - `setuidgid-v0.5.6` (legacy owner encoding) has owners 33333/44444;
//! - the other good images list and read in full;
//! - format 2.2 and the unknown feature are named in `inspect`'s errors;
//! - each of the broken images in `bad/`, as found and with its headers
//!   claiming format 2.3 (most are 2.0, refused at detection), gives errors
//!   or a tree for itself alone, within a time bound, and the mount stays
//!   alive.

// Shared with the main test binary, which uses more of it.
#[allow(unused_imports)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dwarfs::wrap_dwarfs_as_appimage;
use common::*;

/// The good images and the bad ones the folder must hold.
const GOOD: &[&str] = &[
    "compat-v0.5.6",
    "compat-v0.7.5",
    "setuidgid-v0.5.6",
    "catdata",
    "data",
    "unixlink",
    "gh307",
];
const REFUSED: &[(&str, &str)] = &[
    ("compat-v0.4.1", "DwarFS format 2.2 is not supported"),
    (
        "future-features",
        "DwarFS feature this-feature-will-never-exist is not supported",
    ),
];
const BAD_COUNT: usize = 300;

/// Time one broken image may take to be walked and read.
const PER_BAD_IMAGE: Duration = Duration::from_secs(20);

fn corpus() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("APPIMAGEFS_DWARFS_CORPUS") else {
        println!(
            "corpus_dwarfs: SKIPPED: set APPIMAGEFS_DWARFS_CORPUS=<folder> \
             (a folder with compat-reference.json and bad/) to run it"
        );
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "APPIMAGEFS_DWARFS_CORPUS={} is not a folder",
        dir.display()
    );
    for name in GOOD.iter().chain(REFUSED.iter().map(|(n, _)| n)) {
        let p = dir.join(format!("{name}.dwarfs"));
        assert!(p.is_file(), "corpus incomplete: {} missing", p.display());
    }
    assert!(
        dir.join("compat-reference.json").is_file(),
        "corpus incomplete: compat-reference.json"
    );
    Some(dir)
}

/// The bad images, sorted.
fn bad_images(dir: &Path) -> Vec<PathBuf> {
    let mut bad: Vec<PathBuf> = fs::read_dir(dir.join("bad"))
        .expect("corpus incomplete: no bad/ folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dwarfs"))
        .collect();
    bad.sort();
    assert!(
        bad.len() >= BAD_COUNT,
        "corpus incomplete: {} images in bad/, want {BAD_COUNT}",
        bad.len()
    );
    bad
}

/// `image` with every section header claiming format 2.3. Most of the
/// fuzzing corpus is format 2.0, which detection refuses at once; as 2.3
/// the same bytes reach the section, metadata and block parsers.
fn as_format_2_3(image: &[u8]) -> Vec<u8> {
    let mut out = image.to_vec();
    let mut at = 0;
    while let Some(found) = out[at..].windows(6).position(|w| w == b"DWARFS") {
        let pos = at + found + 6;
        if let Some(version) = out.get_mut(pos..pos + 2) {
            version.copy_from_slice(&[2, 3]);
        }
        at = pos;
    }
    out
}

/// One node of the reference tree.
#[derive(Debug, PartialEq)]
struct RefNode {
    kind: String,
    mode: u32,
    size: Option<u64>,
    target: Option<String>,
    device: Option<u64>,
}

/// The reference tree as path -> node (root excluded).
fn reference(dir: &Path) -> (BTreeMap<String, RefNode>, BTreeMap<String, String>) {
    let text = fs::read_to_string(dir.join("compat-reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).expect("reference JSON");
    let mut out = BTreeMap::new();
    fn walk(v: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, RefNode>) {
        for child in v["inodes"].as_array().into_iter().flatten() {
            let name = child["name"].as_str().unwrap();
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = child["type"].as_str().unwrap().to_string();
            out.insert(
                path.clone(),
                RefNode {
                    size: (kind == "file" || kind == "link").then(|| {
                        child["size"].as_u64().unwrap_or_else(|| {
                            child["target"].as_str().map_or(0, |t| t.len() as u64)
                        })
                    }),
                    target: child["target"].as_str().map(str::to_string),
                    device: child["device_id"].as_u64(),
                    mode: child["mode"].as_u64().unwrap() as u32,
                    kind,
                },
            );
            walk(child, &path, out);
        }
    }
    walk(&json["tree"]["root"], "", &mut out);
    let hashes = json["xxh3"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (out, hashes)
}

/// The mounted tree under `root` in the reference's terms, with the
/// XXH3-64 (little-endian hex) of each file.
fn mounted(root: &Path) -> (BTreeMap<String, RefNode>, BTreeMap<String, String>) {
    let mut nodes = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    fn walk(
        dir: &Path,
        prefix: &str,
        nodes: &mut BTreeMap<String, RefNode>,
        hashes: &mut BTreeMap<String, String>,
    ) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let st = fs::symlink_metadata(e.path()).unwrap();
            let ft = st.file_type();
            let kind = if ft.is_dir() {
                "directory"
            } else if ft.is_symlink() {
                "link"
            } else if ft.is_file() {
                "file"
            } else if ft.is_char_device() {
                "chardev"
            } else if ft.is_block_device() {
                "blockdev"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "socket"
            };
            let target = ft.is_symlink().then(|| {
                fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_string()
                    .unwrap()
            });
            if ft.is_file() {
                let data = fs::read(e.path()).unwrap_or_else(|err| panic!("read {path}: {err}"));
                let h = xxhash_rust::xxh3::xxh3_64(&data).to_le_bytes();
                hashes.insert(path.clone(), h.iter().map(|b| format!("{b:02x}")).collect());
            }
            nodes.insert(
                path.clone(),
                RefNode {
                    kind: kind.to_string(),
                    mode: st.mode(),
                    size: (ft.is_file() || ft.is_symlink()).then_some(st.size()),
                    target,
                    device: (ft.is_char_device() || ft.is_block_device()).then_some(st.rdev()),
                },
            );
            if ft.is_dir() {
                walk(&e.path(), &path, nodes, hashes);
            }
        }
    }
    walk(root, "", &mut nodes, &mut hashes);
    (nodes, hashes)
}

/// Lists and reads everything under `dir`, ignoring errors; bounded.
fn touch_everything(dir: &Path) -> usize {
    let mut queue = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = queue.pop() {
        let Ok(list) = fs::read_dir(&d) else { continue };
        for e in list.flatten() {
            seen += 1;
            if seen > 100_000 {
                return seen;
            }
            let p = e.path();
            let Ok(st) = fs::symlink_metadata(&p) else {
                continue;
            };
            if st.is_dir() {
                queue.push(p);
            } else if st.is_file() {
                let _ = fs::read(&p);
            } else if st.file_type().is_symlink() {
                let _ = fs::read_link(&p);
            }
        }
    }
    seen
}

/// Runs the check, or says why it was skipped, with libtest's closing line
/// (a plain `main`, `harness = false`, so the notice shows in `cargo test`'s
/// output instead of being captured).
fn main() {
    let t0 = std::time::Instant::now();
    let Some(dir) = corpus() else {
        println!(
            "\nrunning 0 tests\ntest result: ok. 0 passed; 0 failed; 1 skipped \
             (APPIMAGEFS_DWARFS_CORPUS not set)\n"
        );
        return;
    };
    println!("\nrunning 1 test");
    let passed = std::panic::catch_unwind(|| dwarfs_corpus(dir)).is_ok();
    let secs = t0.elapsed().as_secs_f64();
    if passed {
        println!("test dwarfs_corpus ... ok\n\ntest result: ok. 1 passed; 0 failed; finished in {secs:.2}s\n");
    } else {
        println!("test dwarfs_corpus ... FAILED\n\ntest result: FAILED. 0 passed; 1 failed; finished in {secs:.2}s\n");
        std::process::exit(101);
    }
}

/// Every check of the module documentation, on the corpus in `dir`.
fn dwarfs_corpus(dir: PathBuf) {
    let bad = bad_images(&dir);
    let tmp = TempDir::new("dwarfs-corpus");
    let src = tmp.subdir("src");
    for name in GOOD.iter().chain(REFUSED.iter().map(|(n, _)| n)) {
        let image = fs::read(dir.join(format!("{name}.dwarfs"))).unwrap();
        wrap_dwarfs_as_appimage(&image, &src.join(format!("{name}.AppImage")));
    }
    for (i, p) in bad.iter().enumerate() {
        let image = fs::read(p).unwrap();
        wrap_dwarfs_as_appimage(&image, &src.join(format!("bad-{i:03}.AppImage")));
        wrap_dwarfs_as_appimage(
            &as_format_2_3(&image),
            &src.join(format!("bad-{i:03}-v23.AppImage")),
        );
    }
    let mnt = tmp.subdir("mnt");
    let mount = Mount::start(&src, &mnt, &[]);
    let mut failures = Vec::new();

    let (want, want_hashes) = reference(&dir);
    for name in ["compat-v0.5.6", "compat-v0.7.5"] {
        let (got, got_hashes) = mounted(&mnt.join(name));
        for (path, node) in &want {
            match got.get(path) {
                None => failures.push(format!("{name}: {path} missing")),
                Some(g) if g != node => {
                    failures.push(format!("{name}: {path}: {g:?}, want {node:?}"))
                }
                Some(_) => {}
            }
        }
        for path in got.keys().filter(|p| !want.contains_key(*p)) {
            failures.push(format!("{name}: {path} not in the reference"));
        }
        for (path, hash) in &want_hashes {
            if got_hashes.get(path) != Some(hash) {
                failures.push(format!(
                    "{name}: {path}: xxh3 {:?}, want {hash}",
                    got_hashes.get(path)
                ));
            }
        }
    }

    for e in walk_all(&mnt.join("setuidgid-v0.5.6")) {
        let st = fs::symlink_metadata(&e).unwrap();
        if (st.uid(), st.gid()) != (33333, 44444) {
            failures.push(format!("{}: owner {}:{}", e.display(), st.uid(), st.gid()));
        }
    }
    for name in ["catdata", "data", "unixlink", "gh307"] {
        for e in walk_all(&mnt.join(name)) {
            let st = fs::symlink_metadata(&e).unwrap();
            if st.is_file() {
                if let Err(err) = fs::read(&e) {
                    failures.push(format!("{}: {err}", e.display()));
                }
            }
        }
    }

    let mut inspect = std::process::Command::new(appimagefs_bin());
    inspect.arg("inspect");
    for (name, _) in REFUSED {
        inspect.arg(src.join(format!("{name}.AppImage")));
    }
    let out = run_timeout(&mut inspect, Duration::from_secs(60));
    let text = out.stdout_text() + &out.stderr_text();
    for (name, message) in REFUSED {
        if !text.contains(message) {
            failures.push(format!("{name}: inspect does not say {message:?}:\n{text}"));
        }
    }

    let alive = mnt.join("compat-v0.7.5/bench.sh");
    let mut opened = 0;
    for (i, image) in bad.iter().enumerate() {
        for suffix in ["", "-v23"] {
            let app = mnt.join(format!("bad-{i:03}{suffix}"));
            let name = image.file_name().unwrap().to_string_lossy();
            let what = format!("walking bad/{name}{suffix}");
            match with_timeout(&what, PER_BAD_IMAGE, move || touch_everything(&app)) {
                Ok(n) => opened += usize::from(n > 0),
                Err(e) => failures.push(e),
            }
            if fs::read(&alive).ok().map(|d| d.len()) != Some(1517) {
                failures.push(format!("the mount stopped serving good apps after {what}"));
                break;
            }
        }
    }
    eprintln!(
        "corpus_dwarfs: {opened} of {} broken images (as found and as format 2.3) listed something",
        2 * bad.len()
    );
    drop(mount);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every path under `dir` (directories included).
fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(d) = queue.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("list {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                queue.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
