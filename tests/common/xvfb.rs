//! Xvfb helpers for the GUI checks: a process-group guard, screenshots from
//! the `-fbdir` frame buffer, and finding an app's window with xwininfo.

use std::path::Path;
use std::time::Duration;

use super::{command, run_timeout};

/// Owns a child started in its own process group; on drop, terminates the
/// whole group and reaps the child.
pub struct Killer(pub std::process::Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// An RGB screenshot from Xvfb's `-fbdir` frame buffer (XWD format).
pub struct Shot {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// The pixels, three bytes each, row by row.
    pub rgb: Vec<u8>,
}

/// Reads a 32-bit XWD frame buffer file.
pub fn read_xwd(path: &Path) -> Result<Shot, String> {
    let d = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if d.len() < 100 {
        return Err("XWD file too short".into());
    }
    let be = u32::from_be_bytes(d[4..8].try_into().unwrap()) == 7;
    let f = |i: usize| {
        let b: [u8; 4] = d[i * 4..i * 4 + 4].try_into().unwrap();
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let (header, w, h, byte_order, bpp, bpl) = (
        f(0) as usize,
        f(4) as usize,
        f(5) as usize,
        f(7),
        f(11),
        f(12) as usize,
    );
    let (rm, gm, bm, ncolors) = (f(14), f(15), f(16), f(19) as usize);
    if bpp != 32 {
        return Err(format!("XWD with {bpp} bits per pixel not handled"));
    }
    let start = header + ncolors * 12;
    if d.len() < start + bpl * h {
        return Err("XWD pixel data cut short".into());
    }
    let ch = |p: u32, m: u32| ((p & m) >> m.trailing_zeros()) as u8;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let o = start + y * bpl + x * 4;
            let b: [u8; 4] = d[o..o + 4].try_into().unwrap();
            let p = if byte_order == 0 {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            };
            rgb.extend_from_slice(&[ch(p, rm), ch(p, gm), ch(p, bm)]);
        }
    }
    Ok(Shot { w, h, rgb })
}

impl Shot {
    /// Distinct colours in the rectangle (clipped to the screen).
    pub fn colours(&self, x0: usize, y0: usize, w: usize, h: usize) -> usize {
        let mut set = std::collections::HashSet::new();
        for y in y0..(y0 + h).min(self.h) {
            for x in x0..(x0 + w).min(self.w) {
                let o = (y * self.w + x) * 3;
                set.insert([self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]]);
            }
        }
        set.len()
    }
}

/// The mapped top-level window at least 100x100 whose `xwininfo -tree`
/// line holds `class` (e.g. `("xmessage" "Xmessage")`): (id, x, y, w, h).
pub fn top_window(display: &str, class: &str) -> Option<(String, usize, usize, usize, usize)> {
    let out = run_timeout(
        &mut command("xwininfo", ["-display", display, "-root", "-tree"]),
        Duration::from_secs(10),
    );
    for line in out.stdout_text().lines() {
        if !line.contains(class) {
            continue;
        }
        // 0x200003 "xmessage": ("xmessage" "Xmessage")  480x240+20+20  +20+20
        let id = line.split_whitespace().next()?.to_string();
        let geo = line.rsplit("  ").nth(1)?.trim();
        let (wh, _) = geo.split_once('+')?;
        let (w, h) = wh.split_once('x')?;
        let abs = line.rsplit("  ").next()?.trim();
        let mut it = abs.trim_start_matches('+').split('+');
        let (x, y) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?);
        let (w, h): (usize, usize) = (w.parse().ok()?, h.parse().ok()?);
        if w < 100 || h < 100 {
            continue;
        }
        let info = run_timeout(
            &mut command("xwininfo", ["-display", display, "-id", &id]),
            Duration::from_secs(10),
        );
        if info.stdout_text().contains("IsViewable") {
            return Some((id, x, y, w, h));
        }
    }
    None
}
