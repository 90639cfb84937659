//! Issue 15 item 6 through a real mount: the kernel may keep a name of the
//! root for a second at most (a name answered just before a rescan and
//! delivered after its invalidation must not linger for a day). The
//! FUSE requests the kernel sends are counted with the `fuse_request_send`
//! tracepoint, in a tracing instance of the test's own.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

const TRACING: &str = "/sys/kernel/tracing";

/// A tracefs instance recording the FUSE requests sent to one connection;
/// removed on drop.
struct FuseTrace {
    dir: PathBuf,
}

impl FuseTrace {
    /// Starts recording requests to the FUSE mount at `mnt`; `None` where
    /// tracefs or the FUSE tracepoints are missing.
    fn start(mnt: &Path) -> Option<FuseTrace> {
        if !Path::new(TRACING)
            .join("events/fuse/fuse_request_send")
            .exists()
        {
            return None;
        }
        let dev = std::fs::metadata(mnt).unwrap().dev();
        // The kernel's dev_t: major << 20 | minor.
        let connection = (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev));
        let dir = Path::new(TRACING)
            .join("instances")
            .join(format!("appimagefs-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let trace = FuseTrace { dir };
        let event = trace.dir.join("events/fuse/fuse_request_send");
        std::fs::write(event.join("filter"), format!("connection == {connection}")).unwrap();
        std::fs::write(event.join("enable"), "1").unwrap();
        Some(trace)
    }

    /// How many requests of `opcode` (e.g. `FUSE_LOOKUP`) were sent so far.
    fn count(&self, opcode: &str) -> usize {
        let text = std::fs::read_to_string(self.dir.join("trace")).unwrap();
        text.lines()
            .filter(|l| l.contains(&format!("({opcode})")))
            .count()
    }
}

impl Drop for FuseTrace {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("events/fuse/fuse_request_send/enable"), "0");
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_name_in_the_root_is_looked_up_again_after_a_second() {
    let tmp = TempDir::new("entry-ttl");
    let src = tmp.subdir("src");
    let mnt = tmp.subdir("mnt");
    copy_sample_app("echo", &src, "Echo.AppImage");
    let mount = Mount::start(&src, &mnt, &[]);
    let Some(trace) = FuseTrace::start(&mnt) else {
        eprintln!("skipped: no tracefs with the fuse tracepoints");
        return;
    };
    let app = mnt.join("Echo");
    let inside = app.join("AppRun");
    std::fs::metadata(&inside).expect("stat Echo/AppRun");
    let first = trace.count("FUSE_LOOKUP");
    assert!(first >= 1, "the trace saw no LOOKUP");
    // Within the second, the name is taken from the kernel's cache.
    std::fs::metadata(&inside).expect("stat Echo/AppRun again");
    assert_eq!(trace.count("FUSE_LOOKUP"), first, "looked up again at once");
    std::thread::sleep(Duration::from_millis(2500));
    // After it, the root's name Echo is asked for again; AppRun, a name
    // inside an image, stays cached (one LOOKUP, not two).
    std::fs::metadata(&inside).expect("stat Echo/AppRun after 2.5 s");
    assert_eq!(
        trace.count("FUSE_LOOKUP"),
        first + 1,
        "Echo was not looked up again after 2.5 s (or AppRun was too)"
    );
    drop(trace);
    drop(mount);
}
