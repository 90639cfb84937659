//! `appimagefs inspect FILE...`: what appimagefs sees in each file, so an
//! admin can tell why an AppImage does not show up (or shows up without a
//! menu entry) before mounting anything.
//!
//! For each file: the AppImage type, the runtime's architecture, where the
//! payload is and how it is compressed, how many inodes it has, the name and
//! version from its desktop entry, the update information and whether it is
//! signed; for a file that is not a usable AppImage, why. The human format
//! is for reading; `--json` gives one array of objects with the same facts
//! (field names in [`write_json`]) for scripts.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::desktop::{self, entry, locate, mime, names, rewrite, sandbox};
use crate::detect::{self, elf, AppImage, Payload};
use crate::error::Error;
use crate::image::open_tree;

/// Decompression cache budget for inspecting (a few images, once each).
const CACHE_BYTES: usize = 16 << 20;

/// Most bytes read from an ELF section (`.upd_info` is 1 KiB, signatures a
/// few hundred bytes); a larger claim is not read in full.
const MAX_SECTION: u64 = 64 * 1024;

/// Where a type 1 AppImage keeps its update information: in the ISO 9660
/// primary volume descriptor's application-use field (AppImage
/// specification, type 1), 512 bytes.
const TYPE1_UPDATE_INFO: (u64, usize) = (33651, 512);

/// What inspecting one file found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The file as given on the command line.
    pub path: PathBuf,
    /// The facts, or why the file is not an AppImage at all.
    pub result: std::result::Result<Facts, String>,
}

/// Facts about a file recognised as an AppImage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// AppImage type judged by the payload: 1 (ISO 9660) or 2 (SquashFS).
    pub kind: u8,
    /// The type in the magic bytes 8..11, if present (type 1 may lack it).
    pub magic_type: Option<u8>,
    /// Architecture name of the runtime (`e_machine`), e.g. `x86_64`.
    pub arch: &'static str,
    /// Raw `e_machine`.
    pub elf_machine: u16,
    /// 32 or 64.
    pub bits: u8,
    /// True for a little-endian runtime.
    pub little_endian: bool,
    /// Byte offset of the filesystem image in the file.
    pub payload_offset: u64,
    /// Bytes the filesystem image occupies.
    pub payload_size: u64,
    /// `squashfs`, `iso9660`, or `dwarfs` with its format version
    /// (`dwarfs 2.5`).
    pub format: &'static str,
    /// Compression, e.g. `gzip`, `zstd`, `zisofs`.
    pub compression: String,
    /// Block size in bytes.
    pub block_size: u32,
    /// Number of inodes, if known.
    pub inode_count: Option<u64>,
    /// The desktop file at the AppDir root, if any.
    pub desktop_file: Option<String>,
    /// `Name` from the desktop entry.
    pub name: Option<String>,
    /// `X-AppImage-Version` from the desktop entry.
    pub version: Option<String>,
    /// Why the app gets no menu entry (no desktop entry, a broken one, or
    /// one that opts out); it still mounts and runs.
    pub desktop_problem: Option<String>,
    /// Update information (`.upd_info` section, or the ISO field for type
    /// 1), NUL-trimmed; `None` when empty.
    pub update_info: Option<String>,
    /// True when the `.sha256_sig` section holds a non-zero signature.
    pub signed: bool,
    /// True when the AppDir root has an `AppRun`.
    pub has_apprun: bool,
    /// The launchers the mount gives it when it is the newest of its app:
    /// `<app>`, and `<app>-<version>` when it has a version.
    pub launchers: Vec<String>,
    /// Types its MIME packages define (`usr/share/mime/packages/*.xml`).
    pub mime_defines: Vec<String>,
    /// Types its desktop entry's `MimeType=` claims.
    pub mime_opens: Vec<String>,
    /// A Chromium or Electron app ([`sandbox::is_browser_app`]): its
    /// launchers add `--no-sandbox` where its sandbox cannot start.
    pub sandboxed_browser: bool,
    /// Why the image cannot be opened, if it cannot: then it is not usable.
    pub image_error: Option<String>,
}

impl Report {
    /// True when appimagefs can mount and serve this file.
    pub fn usable(&self) -> bool {
        matches!(&self.result, Ok(f) if f.image_error.is_none())
    }
}

/// Inspects one file.
pub fn inspect_file(path: &Path, cache: &Arc<BlockCache>) -> Report {
    let result = crate::union::scan::open_regular(path).and_then(|(file, _)| {
        let detected = detect::detect(&file).map_err(|e| match e {
            // Detection's messages already say what is wrong with the file.
            Error::Corrupt(m) => format!("not a usable AppImage: {m}"),
            other => format!("not a usable AppImage: {other}"),
        })?;
        Ok(facts(&Arc::new(file), &detected, &folder_name(path), cache))
    });
    Report {
        path: path.to_path_buf(),
        result,
    }
}

/// The folder name the mount prefers for this file: its name without a
/// case-insensitive `.AppImage` (the mount's own rule).
fn folder_name(path: &Path) -> Vec<u8> {
    let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
    crate::union::naming::preferred_name(name)
}

fn facts(
    file: &Arc<File>,
    detected: &AppImage,
    folder_name: &[u8],
    cache: &Arc<BlockCache>,
) -> Facts {
    let e = &detected.elf;
    let mut f = Facts {
        kind: detected.kind(),
        magic_type: detected.magic_type,
        arch: elf::machine_name(e.machine),
        elf_machine: e.machine,
        bits: e.bits,
        little_endian: e.little_endian,
        signed: section(file, e, ".sha256_sig").is_some_and(|s| s.iter().any(|&b| b != 0)),
        ..Facts::default()
    };
    let update_info = match &detected.payload {
        Payload::SquashFs { offset, superblock } => {
            f.payload_offset = *offset;
            f.payload_size = superblock.bytes_used;
            f.format = "squashfs";
            f.compression = superblock.codec.name().to_string();
            f.block_size = superblock.block_size;
            f.inode_count = Some(u64::from(superblock.inode_count));
            section(file, e, ".upd_info")
        }
        Payload::Dwarfs {
            offset,
            len,
            version,
        } => {
            f.payload_offset = *offset;
            f.payload_size = *len;
            f.format = crate::dwarfs::section::format_name(*version);
            section(file, e, ".upd_info")
        }
        Payload::Iso9660 { len } => {
            f.payload_size = *len;
            f.format = "iso9660";
            let (at, n) = TYPE1_UPDATE_INFO;
            let mut buf = vec![0u8; n];
            file.read_exact_at(&mut buf, at).ok().map(|_| buf)
        }
    };
    f.update_info = update_info.and_then(|raw| {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let text = String::from_utf8_lossy(&raw[..end]).trim().to_string();
        (!text.is_empty()).then_some(text)
    });
    let tree = match open_tree(file, detected, cache.clone()) {
        Ok(tree) => tree,
        Err(err) => {
            f.image_error = Some(format!("cannot open the image: {err}"));
            return f;
        }
    };
    let info = tree.info();
    if !info.compression.is_empty() {
        f.compression = info.compression;
    }
    if info.block_size != 0 {
        f.block_size = info.block_size;
    }
    f.inode_count = info.inode_count.or(f.inode_count);
    if let Err(err) = tree.read_dir(tree.root()) {
        f.image_error = Some(format!("cannot list the image's root: {err}"));
        return f;
    }
    f.has_apprun = matches!(tree.lookup(tree.root(), b"AppRun"), Ok(Some(_)));
    let mut exec = None;
    match locate::find_desktop_file(tree.as_ref(), folder_name) {
        Ok(None) => f.desktop_problem = Some("no .desktop file at the AppDir root".to_string()),
        Err(reason) => f.desktop_problem = Some(reason),
        Ok(Some(desktop)) => {
            f.desktop_file = Some(String::from_utf8_lossy(&desktop.name).into_owned());
            match entry::parse(&desktop.bytes) {
                Err(reason) => f.desktop_problem = Some(format!("broken desktop entry: {reason}")),
                Ok(parsed) => {
                    if let Some(main) = parsed.main() {
                        f.name = main.string("Name").ok().flatten();
                        f.version = main.string("X-AppImage-Version").ok().flatten();
                        exec = main.string("Exec").ok().flatten();
                    }
                    f.desktop_problem = rewrite::menu_exclusion(&parsed);
                    f.mime_opens = parsed
                        .main()
                        .and_then(|m| m.string("MimeType").ok().flatten())
                        .unwrap_or_default()
                        .split(';')
                        .map(str::trim)
                        .filter(|t| mime::package::valid_type(t))
                        .map(str::to_string)
                        .collect();
                }
            }
        }
    }
    f.sandboxed_browser =
        sandbox::is_browser_app(tree.as_ref(), desktop::exec_program(exec.as_deref()));
    let desktop_file = f.desktop_file.as_ref().map(|d| d.as_bytes());
    let base = names::base_name(desktop_file, folder_name);
    f.launchers = vec![base.clone()];
    f.launchers.extend(
        f.version
            .as_deref()
            .and_then(|v| names::versioned(&base, v.trim())),
    );
    let (packages, _) = mime::find_packages(tree.as_ref());
    f.mime_defines = packages
        .iter()
        .flat_map(|p| p.types.iter().map(|t| t.name.clone()))
        .collect();
    f.mime_defines.sort();
    f.mime_defines.dedup();
    f
}

/// The bytes of ELF section `name` (at most [`MAX_SECTION`]), if present.
fn section(file: &File, e: &elf::Elf, name: &str) -> Option<Vec<u8>> {
    let s = e.section(name)?;
    let mut buf = vec![0u8; s.size.min(MAX_SECTION) as usize];
    file.read_exact_at(&mut buf, s.offset).ok()?;
    Some(buf)
}

/// Inspects every file in `paths` and writes the reports to `out`, human
/// readable or as JSON; true when every file is a usable AppImage.
pub fn inspect(paths: &[PathBuf], json: bool, out: &mut dyn Write) -> bool {
    let cache = Arc::new(BlockCache::new(CACHE_BYTES));
    let reports: Vec<Report> = paths.iter().map(|p| inspect_file(p, &cache)).collect();
    let written = if json {
        write_json(&reports, out)
    } else {
        reports.iter().try_for_each(|r| write_human(r, out))
    };
    written.is_ok() && reports.iter().all(Report::usable)
}

/// Writes one report for people: a header line with the path, then one
/// indented `label: value` line per fact. Text from the file (names, update
/// information) has control characters escaped, so a hostile AppImage
/// cannot drive the terminal.
pub fn write_human(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", clean(&report.path.to_string_lossy()))?;
    let f = match &report.result {
        Err(reason) => return writeln!(out, "  {}\n", clean(reason)),
        Ok(f) => f,
    };
    let magic = match f.magic_type {
        Some(t) => format!("magic AI\\x0{t}"),
        None => "no magic bytes".to_string(),
    };
    let endian = if f.little_endian { "little" } else { "big" };
    let inodes = f
        .inode_count
        .map_or("unknown".to_string(), |n| n.to_string());
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_string(), clean);
    let mut lines = vec![
        ("type", format!("{} ({magic})", f.kind)),
        (
            "architecture",
            format!(
                "{} (ELF {}-bit {endian}-endian, e_machine {})",
                f.arch, f.bits, f.elf_machine
            ),
        ),
        (
            "payload",
            format!(
                "{} at offset {}, {} bytes",
                f.format, f.payload_offset, f.payload_size
            ),
        ),
        (
            "compression",
            format!("{}, block size {}", clean(&f.compression), f.block_size),
        ),
        ("inodes", inodes),
        ("desktop file", opt(&f.desktop_file)),
        ("name", opt(&f.name)),
        ("version", opt(&f.version)),
        ("update info", opt(&f.update_info)),
        (
            "signed",
            if f.signed { "yes (.sha256_sig)" } else { "no" }.to_string(),
        ),
        (
            "AppRun",
            if f.has_apprun { "yes" } else { "missing" }.to_string(),
        ),
    ];
    if let Some(p) = &f.desktop_problem {
        lines.push(("no menu entry", clean(p)));
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            clean(&v.join(" "))
        }
    };
    lines.push(("launchers", list(&f.launchers)));
    lines.push(("defines types", list(&f.mime_defines)));
    lines.push(("opens types", list(&f.mime_opens)));
    lines.push((
        "browser app",
        if f.sandboxed_browser {
            "yes (Chromium/Electron: launchers add --no-sandbox where no user namespace can be made; -o sandbox)"
        } else {
            "no"
        }
        .to_string(),
    ));
    lines.push(match &f.image_error {
        None => ("usable", "yes".to_string()),
        Some(e) => ("usable", format!("no: {}", clean(e))),
    });
    for (label, value) in lines {
        writeln!(out, "  {:<16}{value}", format!("{label}:"))?;
    }
    writeln!(out)
}

/// Escapes control characters (as `\n`, `\u{1b}`, ...) and nothing else.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Writes all reports as one JSON array. Each object has `path`, `usable`,
/// `error` (why it is not an AppImage, else null), and for AppImages
/// `type`, `magic_type`, `arch`, `elf_machine`, `bits`, `endian`,
/// `payload_offset`, `payload_size`, `format`, `compression`,
/// `block_size`, `inodes`, `desktop_file`, `name`, `version`,
/// `desktop_problem`, `update_info`, `signed`, `apprun`, `launchers`,
/// `mime_defines`, `mime_opens` (arrays of strings), `sandboxed_browser`, `image_error`
/// (absent values are null). A path that is not UTF-8 is written with
/// U+FFFD for its invalid bytes, plus `path_bytes`, an array of its bytes.
pub fn write_json(reports: &[Report], out: &mut dyn Write) -> io::Result<()> {
    let mut s = String::from("[");
    for (i, r) in reports.iter().enumerate() {
        s.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
        let mut obj = JsonObject::new(&mut s);
        let raw = r.path.as_os_str().as_bytes();
        obj.str("path", &r.path.to_string_lossy());
        if std::str::from_utf8(raw).is_err() {
            let bytes: Vec<String> = raw.iter().map(u8::to_string).collect();
            obj.raw("path_bytes", &format!("[{}]", bytes.join(",")));
        }
        obj.raw("usable", bool_str(r.usable()));
        match &r.result {
            Err(reason) => obj.str("error", reason),
            Ok(f) => {
                obj.raw("error", "null");
                obj.raw("type", &f.kind.to_string());
                obj.raw(
                    "magic_type",
                    &f.magic_type.map_or("null".to_string(), |t| t.to_string()),
                );
                obj.str("arch", f.arch);
                obj.raw("elf_machine", &f.elf_machine.to_string());
                obj.raw("bits", &f.bits.to_string());
                obj.str("endian", if f.little_endian { "little" } else { "big" });
                obj.raw("payload_offset", &f.payload_offset.to_string());
                obj.raw("payload_size", &f.payload_size.to_string());
                obj.str("format", f.format);
                obj.str("compression", &f.compression);
                obj.raw("block_size", &f.block_size.to_string());
                obj.raw(
                    "inodes",
                    &f.inode_count.map_or("null".to_string(), |n| n.to_string()),
                );
                obj.opt("desktop_file", &f.desktop_file);
                obj.opt("name", &f.name);
                obj.opt("version", &f.version);
                obj.opt("desktop_problem", &f.desktop_problem);
                obj.opt("update_info", &f.update_info);
                obj.raw("signed", bool_str(f.signed));
                obj.raw("apprun", bool_str(f.has_apprun));
                obj.raw("launchers", &json_list(&f.launchers));
                obj.raw("mime_defines", &json_list(&f.mime_defines));
                obj.raw("mime_opens", &json_list(&f.mime_opens));
                obj.raw("sandboxed_browser", bool_str(f.sandboxed_browser));
                obj.opt("image_error", &f.image_error);
            }
        }
        s.push('}');
    }
    s.push_str(if reports.is_empty() { "]\n" } else { "\n]\n" });
    out.write_all(s.as_bytes())
}

/// A JSON array of strings.
fn json_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, item);
    }
    out.push(']');
    out
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Appends `"key": value` members to an object being written.
struct JsonObject<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut String) -> JsonObject<'a> {
        JsonObject { out, first: true }
    }

    fn raw(&mut self, key: &str, value: &str) {
        if !self.first {
            self.out.push_str(", ");
        }
        self.first = false;
        json_string(self.out, key);
        self.out.push_str(": ");
        self.out.push_str(value);
    }

    fn str(&mut self, key: &str, value: &str) {
        let mut v = String::new();
        json_string(&mut v, value);
        self.raw(key, &v);
    }

    fn opt(&mut self, key: &str, value: &Option<String>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }
}

/// Appends `s` as a JSON string (RFC 8259): `"` and `\` escaped, control
/// characters (C0, DEL and C1) as `\n`, `\t`, ... or `\u00XX`, so none
/// reaches a terminal raw; U+2028 and U+2029 escaped too, so the output is
/// also valid JavaScript.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::runtime_stub::StubRuntime;
    use crate::test_support::{apps, sqfs, TempDir};
    use std::ffi::OsStr;
    use std::path::Path;

    fn cache() -> Arc<BlockCache> {
        Arc::new(BlockCache::new(CACHE_BYTES))
    }

    fn facts_of(path: &Path) -> Facts {
        let report = inspect_file(path, &cache());
        assert!(report.usable(), "{}: {:?}", path.display(), report.result);
        report.result.unwrap()
    }

    /// Where the stand-in runtime ends and the payload of a type 2 image
    /// starts (update information does not change its size).
    fn runtime_len() -> u64 {
        StubRuntime::type2().bytes().len() as u64
    }

    /// `(bytes used, inodes)` of the SquashFS payload of a type 2 image, as
    /// `unsquashfs -s` reports them.
    fn unsquashfs_stats(path: &Path) -> (u64, u64) {
        let out = std::process::Command::new("unsquashfs")
            .args(["-s", "-o", &runtime_len().to_string()])
            .arg(path)
            .output()
            .expect("unsquashfs is needed (Debian package squashfs-tools)");
        let text = String::from_utf8(out.stdout).unwrap();
        let number = |prefix: &str| -> u64 {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"));
            line.split_whitespace().next().unwrap().parse().unwrap()
        };
        (number("Filesystem size "), number("Number of inodes "))
    }

    #[test]
    fn type2_facts_match_how_the_images_were_made() {
        let scribble = apps::scribble();
        let (used, inodes) = unsquashfs_stats(&scribble);
        let f = facts_of(&scribble);
        assert_eq!(
            (
                f.kind,
                f.magic_type,
                f.arch,
                f.elf_machine,
                f.bits,
                f.little_endian
            ),
            (2, Some(2), "x86_64", 62, 64, true)
        );
        assert_eq!(
            (f.format, f.payload_offset, f.payload_size),
            ("squashfs", runtime_len(), used)
        );
        assert_eq!(
            (f.compression.as_str(), f.block_size, f.inode_count),
            ("gzip", 131072, Some(inodes))
        );
        assert!(inodes > 100, "{inodes}");
        assert_eq!(f.desktop_file.as_deref(), Some("scribble.desktop"));
        assert_eq!(f.name.as_deref(), Some("Scribble"));
        assert_eq!(f.version, None);
        assert_eq!(f.update_info.as_deref(), Some(apps::SCRIBBLE_UPDATE_INFO));
        assert!(f.signed);
        assert!(f.has_apprun);
        assert_eq!(f.desktop_problem, None);

        let f = facts_of(&apps::daemon());
        assert!(f.signed);
        assert!(f
            .update_info
            .unwrap()
            .starts_with("gh-releases-zsync|AppImage|AppImageKit|continuous|"));
        assert!(f.desktop_problem.unwrap().contains("NoDisplay=true"));

        let versioned = apps::echo_versioned();
        let (_, inodes) = unsquashfs_stats(&versioned);
        let f = facts_of(&versioned);
        assert_eq!(
            (f.version.as_deref(), f.inode_count, f.signed, f.update_info),
            (Some("test1234"), Some(inodes), false, None)
        );

        let hello = apps::hello();
        let (_, inodes) = unsquashfs_stats(&hello);
        let f = facts_of(&hello);
        assert_eq!(
            (f.compression.as_str(), f.payload_offset, f.inode_count),
            ("zstd", runtime_len(), Some(inodes))
        );
        assert_eq!(f.name.as_deref(), Some("Hello World"));

        let f = facts_of(&apps::hello_world("xz"));
        assert_eq!((f.compression.as_str(), f.block_size), ("xz", 16384));

        let f = facts_of(&apps::echo_no_integrate());
        assert!(f
            .desktop_problem
            .unwrap()
            .contains("X-AppImage-Integrate=false"));

        let f = facts_of(&apps::broken_desktop());
        assert_eq!(f.name, None);
        assert!(f.desktop_problem.unwrap().contains("_Type"));

        let f = facts_of(&apps::no_type());
        assert!(f.desktop_problem.unwrap().contains("Type is missing"));
    }

    #[test]
    fn elf32_runtime_facts() {
        let f = facts_of(&apps::echo_elf32());
        assert_eq!(
            (f.kind, f.magic_type, f.arch, f.elf_machine, f.bits),
            (2, Some(2), "i386", 3, 32)
        );
        assert_eq!(
            (f.format, f.payload_offset),
            ("squashfs", StubRuntime::type2_elf32().bytes().len() as u64)
        );
        assert_eq!(f.name.as_deref(), Some("Echo"));
    }

    #[test]
    fn type1_facts() {
        let extract = apps::extract();
        let len = std::fs::metadata(&extract).unwrap().len();
        let f = facts_of(&extract);
        assert_eq!(
            (
                f.kind,
                f.magic_type,
                f.format,
                f.payload_offset,
                f.payload_size
            ),
            (1, Some(1), "iso9660", 0, len)
        );
        assert_eq!(f.compression, "zisofs");
        assert_eq!(f.name.as_deref(), Some("Extract"));
        assert!(f.has_apprun);
        let f = facts_of(&apps::extract_no_magic());
        assert_eq!((f.kind, f.magic_type), (1, None));
    }

    #[test]
    fn unusable_files_say_why() {
        let tmp = TempDir::new("unusable");
        let truncated = tmp.0.join("Echo-truncated.AppImage");
        let bytes = std::fs::read(apps::echo()).unwrap();
        std::fs::write(&truncated, &bytes[..runtime_len() as usize + 2000]).unwrap();
        let notes = tmp.0.join("notes.tsv");
        std::fs::write(&notes, "file\tkind\nEcho\tappimage\n".repeat(200)).unwrap();
        let cases = [
            (apps::elf_only(), "nothing after the ELF runtime"),
            (notes, "not an ELF"),
            (sqfs::edge_tree("zstd"), "not an ELF"),
            (tmp.0.join("does-not-exist.AppImage"), "cannot open"),
            (tmp.0.clone(), "is a directory"),
            (truncated, "not a usable AppImage"),
        ];
        for (path, why) in cases {
            let report = inspect_file(&path, &cache());
            assert!(!report.usable(), "{}", path.display());
            let reason = match &report.result {
                Err(reason) => reason.clone(),
                Ok(f) => f.image_error.clone().unwrap(),
            };
            assert!(reason.contains(why), "{}: {reason}", path.display());
        }
    }

    #[test]
    fn result_is_true_only_when_all_are_usable() {
        let good = vec![apps::echo(), apps::extract()];
        let mut sink = Vec::new();
        assert!(inspect(&good, false, &mut sink));
        let mut mixed = good.clone();
        mixed.push(apps::elf_only());
        assert!(!inspect(&mixed, false, &mut sink));
        assert!(!inspect(&mixed, true, &mut sink));
        assert!(inspect(&[], true, &mut sink));
    }

    #[test]
    fn human_output() {
        let scribble = apps::scribble();
        let (used, inodes) = unsquashfs_stats(&scribble);
        let mut out = Vec::new();
        inspect(&[scribble, apps::elf_only()], false, &mut out);
        let text = String::from_utf8(out).unwrap();
        for line in [
            "  type:           2 (magic AI\\x02)\n".to_string(),
            "  architecture:   x86_64 (ELF 64-bit little-endian, e_machine 62)\n".to_string(),
            format!(
                "  payload:        squashfs at offset {}, {used} bytes\n",
                runtime_len()
            ),
            "  compression:    gzip, block size 131072\n".to_string(),
            format!("  inodes:         {inodes}\n"),
            "  name:           Scribble\n".to_string(),
            "  signed:         yes (.sha256_sig)\n".to_string(),
            "  browser app:    no\n".to_string(),
            "  usable:         yes\n".to_string(),
            "elffile\n  not a usable AppImage: ".to_string(),
        ] {
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
    }

    /// An Electron-like app: a `chrome-sandbox` beside its binary under
    /// `opt/`, `Exec=AppRun`.
    #[test]
    fn a_browser_app_is_shown_as_one() {
        let tmp = TempDir::new("inspect-browser");
        let appdir = tmp.path().join("AppDir");
        std::fs::create_dir_all(appdir.join("opt/Thing")).unwrap();
        std::fs::write(
            appdir.join("thing.desktop"),
            "[Desktop Entry]\nType=Application\nName=Thing\nExec=AppRun %U\nIcon=thing\n",
        )
        .unwrap();
        std::fs::write(appdir.join("AppRun"), "#!/bin/sh\n").unwrap();
        std::fs::write(appdir.join("opt/Thing/thing"), "elf").unwrap();
        std::fs::write(appdir.join("opt/Thing/chrome-sandbox"), "elf").unwrap();
        let payload = tmp.path().join("payload.sqfs");
        sqfs::mksquashfs(&appdir, &payload, &["-comp", "gzip"]);
        let mut bytes = StubRuntime::type2().bytes().to_vec();
        bytes.extend_from_slice(&std::fs::read(&payload).unwrap());
        let image = tmp.path().join("Thing.AppImage");
        std::fs::write(&image, bytes).unwrap();
        assert!(facts_of(&image).sandboxed_browser);
        let mut out = Vec::new();
        inspect(std::slice::from_ref(&image), false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("  browser app:    yes (Chromium/Electron"),
            "{text}"
        );
        let mut out = Vec::new();
        inspect(&[image], true, &mut out);
        let Json::Arr(items) = Reader::parse(&String::from_utf8(out).unwrap()) else {
            panic!("not an array")
        };
        assert_eq!(items[0].get("sandboxed_browser"), &Json::Bool(true));
    }

    // ----- JSON -----

    /// A minimal JSON reader (RFC 8259) to check what `write_json` writes.
    #[derive(Debug, PartialEq)]
    enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn get(&self, key: &str) -> &Json {
            match self {
                Json::Obj(members) => {
                    &members
                        .iter()
                        .find(|(k, _)| k == key)
                        .unwrap_or_else(|| panic!("no {key}"))
                        .1
                }
                _ => panic!("not an object"),
            }
        }
        fn str(&self) -> &str {
            match self {
                Json::Str(s) => s,
                other => panic!("not a string: {other:?}"),
            }
        }
    }

    struct Reader<'a> {
        s: &'a [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn parse(text: &str) -> Json {
            let mut r = Reader {
                s: text.as_bytes(),
                at: 0,
            };
            let v = r.value();
            r.ws();
            assert_eq!(r.at, r.s.len(), "trailing garbage");
            v
        }
        fn ws(&mut self) {
            while self.at < self.s.len() && b" \t\n\r".contains(&self.s[self.at]) {
                self.at += 1;
            }
        }
        fn eat(&mut self, lit: &str) -> bool {
            if self.s[self.at..].starts_with(lit.as_bytes()) {
                self.at += lit.len();
                true
            } else {
                false
            }
        }
        fn value(&mut self) -> Json {
            self.ws();
            let first = self.s[self.at];
            match first {
                b'n' if self.eat("null") => Json::Null,
                b't' if self.eat("true") => Json::Bool(true),
                b'f' if self.eat("false") => Json::Bool(false),
                b'"' => Json::Str(self.string()),
                b'[' => {
                    self.at += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.eat("]") {
                        return Json::Arr(items);
                    }
                    loop {
                        items.push(self.value());
                        self.ws();
                        if self.eat("]") {
                            return Json::Arr(items);
                        }
                        assert!(self.eat(","), "expected , at {}", self.at);
                    }
                }
                b'{' => {
                    self.at += 1;
                    let mut members = Vec::new();
                    self.ws();
                    if self.eat("}") {
                        return Json::Obj(members);
                    }
                    loop {
                        self.ws();
                        let key = self.string();
                        self.ws();
                        assert!(self.eat(":"));
                        members.push((key, self.value()));
                        self.ws();
                        if self.eat("}") {
                            return Json::Obj(members);
                        }
                        assert!(self.eat(","), "expected , at {}", self.at);
                    }
                }
                _ => {
                    let start = self.at;
                    while self.at < self.s.len() && b"-+.eE0123456789".contains(&self.s[self.at]) {
                        self.at += 1;
                    }
                    Json::Num(
                        std::str::from_utf8(&self.s[start..self.at])
                            .unwrap()
                            .parse()
                            .expect("a number"),
                    )
                }
            }
        }
        fn string(&mut self) -> String {
            assert!(self.eat("\""));
            let mut out = String::new();
            loop {
                let c = self.s[self.at];
                assert!(c >= 0x20, "raw control character in a string");
                self.at += 1;
                match c {
                    b'"' => return out,
                    b'\\' => {
                        let e = self.s[self.at];
                        self.at += 1;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'u' => {
                                let hex =
                                    std::str::from_utf8(&self.s[self.at..self.at + 4]).unwrap();
                                self.at += 4;
                                out.push(
                                    char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap(),
                                );
                            }
                            other => panic!("bad escape \\{}", other as char),
                        }
                    }
                    _ => {
                        // Copy one whole UTF-8 character.
                        let start = self.at - 1;
                        let len = std::str::from_utf8(&self.s[start..]).map_or_else(
                            |e| {
                                std::str::from_utf8(&self.s[start..start + e.valid_up_to()])
                                    .unwrap()
                                    .chars()
                                    .next()
                                    .unwrap()
                                    .len_utf8()
                            },
                            |s| s.chars().next().unwrap().len_utf8(),
                        );
                        out.push_str(std::str::from_utf8(&self.s[start..start + len]).unwrap());
                        self.at = start + len;
                    }
                }
            }
        }
    }

    #[test]
    fn json_strings_round_trip() {
        let mut all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        all.push_str("\u{2028}\u{2029}\u{feff}😀\"\\/");
        for s in [
            all.as_str(),
            "",
            "plain",
            "\"quoted\"",
            "back\\slash",
            "new\nline\r\t\u{1b}[31m",
        ] {
            let mut out = String::new();
            json_string(&mut out, s);
            assert!(
                !out[1..out.len() - 1].chars().any(|c| c.is_control()),
                "{out:?}"
            );
            assert_eq!(Reader::parse(&out), Json::Str(s.to_string()));
        }
    }

    #[test]
    fn json_report_parses_and_keeps_hostile_paths() {
        let tmp = TempDir::new("json");
        let hostile = OsStr::from_bytes(b"we\"ird\\ \n\x1b[31m $(x) \xff.AppImage");
        let link = tmp.0.join(hostile);
        let scribble = apps::scribble();
        let (_, inodes) = unsquashfs_stats(&scribble);
        std::os::unix::fs::symlink(&scribble, &link).unwrap();
        let paths = vec![link.clone(), apps::elf_only(), apps::extract()];
        let mut out = Vec::new();
        assert!(!inspect(&paths, true, &mut out));
        let text = String::from_utf8(out).unwrap();
        let Json::Arr(items) = Reader::parse(&text) else {
            panic!("not an array")
        };
        assert_eq!(items.len(), 3);

        let leaf = &items[0];
        assert_eq!(leaf.get("path").str(), link.to_string_lossy());
        let Json::Arr(bytes) = leaf.get("path_bytes") else {
            panic!()
        };
        let bytes: Vec<u8> = bytes
            .iter()
            .map(|b| match b {
                Json::Num(n) => *n as u8,
                _ => panic!(),
            })
            .collect();
        assert_eq!(bytes, link.as_os_str().as_bytes());
        assert_eq!(leaf.get("usable"), &Json::Bool(true));
        assert_eq!(leaf.get("error"), &Json::Null);
        assert_eq!(leaf.get("type"), &Json::Num(2.0));
        assert_eq!(leaf.get("arch").str(), "x86_64");
        assert_eq!(leaf.get("payload_offset"), &Json::Num(runtime_len() as f64));
        assert_eq!(leaf.get("inodes"), &Json::Num(inodes as f64));
        assert_eq!(leaf.get("name").str(), "Scribble");
        assert_eq!(leaf.get("version"), &Json::Null);
        assert_eq!(leaf.get("signed"), &Json::Bool(true));
        assert_eq!(leaf.get("sandboxed_browser"), &Json::Bool(false));
        assert!(leaf.get("update_info").str().starts_with("bintray-zsync|"));

        let elf = &items[1];
        assert_eq!(elf.get("usable"), &Json::Bool(false));
        assert!(elf
            .get("error")
            .str()
            .contains("nothing after the ELF runtime"));
        assert!(matches!(elf, Json::Obj(m) if !m.iter().any(|(k, _)| k == "path_bytes")));

        assert_eq!(items[2].get("type"), &Json::Num(1.0));
        assert_eq!(items[2].get("magic_type"), &Json::Num(1.0));

        // The human format escapes the same path's control characters.
        let mut out = Vec::new();
        inspect(&[link], false, &mut out);
        assert!(!out.contains(&0x1b) && out.iter().filter(|&&b| b == b'\n').count() > 5);
        assert!(String::from_utf8_lossy(&out).contains("we\"ird\\ \\n\\u{1b}[31m $(x)"));
    }
}

/// `inspect` judges files as the mount does (issue 15).
#[cfg(test)]
mod same_as_the_mount_tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::time::Duration;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = TempDir::new("inspect-fifo");
        let fifo = dir.path().join("x.AppImage");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let report = inspect_file(&fifo, &Arc::new(BlockCache::new(1 << 20)));
            let _ = tx.send(report.result.err());
        });
        let reason = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("inspect blocked on a fifo");
        assert_eq!(reason.as_deref(), Some("not a regular file"));
    }

    #[test]
    fn the_folder_name_drops_the_suffix_in_any_case() {
        for (file, folder) in [
            ("dir/Tool.AppImage", "Tool"),
            ("Tool.appimage", "Tool"),
            ("Tool.APPIMAGE", "Tool"),
            ("tool", "tool"),
        ] {
            assert_eq!(folder_name(Path::new(file)), folder.as_bytes(), "{file}");
        }
    }
}
