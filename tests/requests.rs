//! What the kernel still asks the daemon when an app's files are used
//! again on the same mount (issue 18: a second launch should cost about
//! what it costs from a plain folder). Names that do not exist inside an
//! image, directory listings and directory opens are answered once per
//! mount; names in the synthesized top level still follow the source
//! folder. Counted with the `requests at exit` line the daemon logs
//! with `-v`.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::common::apps::{copy_app, App};
use crate::common::mount::Mount;
use crate::common::*;

#[test]
fn a_second_pass_over_an_app_asks_the_daemon_nothing_new() {
    let tmp = TempDir::new("requests");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_app(App::Echo, &src, "Echo-x86_64.AppImage");
    let mut m = Mount::start(&src, &mnt, &["-v"]);
    let app = m.mountpoint.join("Echo-x86_64");
    let dirs = ["", "usr", "usr/bin", "usr/share"];
    // Missing names in four image directories, probed as a module or
    // library search does; the last one stops at `usr/share/nope`.
    let missing = [
        "nope",
        "usr/nope",
        "usr/bin/nope.so",
        "usr/share/nope/deeper",
    ];
    for pass in 0..3 {
        for d in dirs {
            let n = std::fs::read_dir(app.join(d))
                .unwrap_or_else(|e| panic!("pass {pass}: listing {d:?}: {e}"))
                .count();
            assert!(n > 0, "pass {pass}: {d:?} lists nothing");
        }
        for name in missing {
            let e = std::fs::symlink_metadata(app.join(name)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "pass {pass}: {name}");
        }
        assert!(!std::fs::read(app.join("AppRun")).unwrap().is_empty());
    }
    m.unmount().expect("unmount");
    let log = m.log_text();
    assert_eq!(
        requests(&log, "negative lookup"),
        missing.len() as u64,
        "each missing name is asked once, then the kernel keeps the answer"
    );
    assert!(
        requests(&log, "opendir") <= 1,
        "the first OPENDIR is answered ENOSYS and the kernel stops sending them"
    );
    let listings = requests(&log, "readdir") + requests(&log, "readdirplus");
    assert!(
        listings <= 2 * dirs.len() as u64 + 4,
        "{listings} READDIR requests: only the first listing of each directory \
         (one page and the end) should reach the daemon, plus a few of the top level"
    );
}

#[test]
fn a_missing_app_name_is_seen_once_the_app_arrives() {
    let tmp = TempDir::new("requests-root");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_app(App::Echo, &src, "Echo-x86_64.AppImage");
    let m = Mount::start(&src, &mnt, &[]);
    let hello = m.mountpoint.join("Hello");
    // Looked up while missing: the kernel now holds a negative entry.
    assert!(std::fs::symlink_metadata(&hello).is_err());
    assert!(std::fs::symlink_metadata(&hello).is_err());
    copy_app(App::Hello, &src, "Hello.AppImage");
    let start = Instant::now();
    while std::fs::symlink_metadata(&hello).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "Hello/ still missing 5 s after its AppImage arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(hello.join("AppRun").exists());
    std::fs::remove_file(src.join("Echo-x86_64.AppImage")).unwrap();
    let echo = m.mountpoint.join("Echo-x86_64");
    let start = Instant::now();
    while std::fs::symlink_metadata(&echo).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "Echo-x86_64/ still there 5 s after its AppImage was removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
