//! Log lines for the admin: one line per event, on standard error.
//!
//! The daemon points standard error at `--log-file` (or /dev/null) once it
//! detaches, so this module never needs to know where lines go. Lines carry
//! a UTC timestamp so they can be correlated with other logs.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on or off.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

fn line(level: &str, args: Arguments<'_>) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let text = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z appimagefs {level}: {args}\n",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Something the admin should know about that is not a failure.
pub fn info(args: Arguments<'_>) {
    line("info", args);
}

/// A file or image that could not be used; the mount goes on.
pub fn warn(args: Arguments<'_>) {
    line("warning", args);
}

/// Detail for debugging, shown with `--verbose`.
pub fn debug(args: Arguments<'_>) {
    if VERBOSE.load(Ordering::Relaxed) {
        line("debug", args);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_778), (2026, 11, 21));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
