//! `appimagefs inspect FILE...`: what appimagefs sees in each file, so an
//! admin can tell why an AppImage does not show up (or shows up without a
//! menu entry) before mounting anything.
//!
//! For each file: the AppImage type, the runtime's architecture, where the
//! payload is and how it is compressed, how many inodes it has, the update
//! information and whether it is signed; then what a mount of these files
//! together would make of it: its folder, the desktop file chosen (and why
//! the others were not), its launchers, its menu entry's `Name`, `Exec` and
//! `Icon` as rewritten, its icons and file types. For a file that is not a
//! usable AppImage, why. The human format is for reading; `--json` gives
//! one array of objects with the same facts (field names in [`write_json`])
//! for scripts.
//!
//! Every conclusion about integration comes from the functions the mount
//! itself uses ([`crate::union::naming`], [`desktop::analyze`],
//! [`desktop::plan`], [`desktop::render`]), so `inspect` and the mount
//! cannot disagree.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::desktop::{self, entry, launcher::Extras, AppFacts};
use crate::detect::{self, elf, AppImage, Payload};
use crate::error::Error;
use crate::image::open_tree;
use crate::tree::ImageTree;

/// Decompression cache budget for inspecting (a few images, once each).
const CACHE_BYTES: usize = 16 << 20;

/// The mount point menu entries are shown under when none is given: a
/// placeholder, as `inspect` mounts nothing.
pub const DEFAULT_MOUNTPOINT: &str = "/MOUNTPOINT";

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
    /// Update information (`.upd_info` section, or the ISO field for type
    /// 1), NUL-trimmed; `None` when empty.
    pub update_info: Option<String>,
    /// True when the `.sha256_sig` section holds a non-zero signature.
    pub signed: bool,
    /// True when the AppDir root has an `AppRun`.
    pub has_apprun: bool,
    /// The app's folder under the mount point.
    pub folder: String,
    /// The desktop file at the AppDir root the mount reads, if any.
    pub desktop_file: Option<String>,
    /// Why that one was chosen over the others.
    pub desktop_choice: Option<String>,
    /// The other desktop files at the AppDir root, passed over.
    pub other_desktop_files: Vec<String>,
    /// `Name` from the desktop entry.
    pub name: Option<String>,
    /// `X-AppImage-Version` from the desktop entry.
    pub version: Option<String>,
    /// Why the app gets no menu entry (no desktop entry, a broken one, one
    /// that opts out, an older version of an app given too); it still
    /// mounts and runs.
    pub desktop_problem: Option<String>,
    /// Its launchers under `bin/`: `<app>` for the newest version of its
    /// app, and `<app>-<version>` when it has a version.
    pub launchers: Vec<String>,
    /// Its menu entry's file name under `share/applications/`.
    pub menu_entry: Option<String>,
    /// `Name`, `Exec` and `Icon` of that menu entry, as rewritten.
    pub menu_name: Option<String>,
    /// See [`Facts::menu_name`].
    pub menu_exec: Option<String>,
    /// See [`Facts::menu_name`].
    pub menu_icon: Option<String>,
    /// Its icons' paths under `share/icons/`.
    pub icons: Vec<String>,
    /// Its MIME packages' names under `share/mime/packages/`.
    pub mime_packages: Vec<String>,
    /// Types those packages define.
    pub mime_defines: Vec<String>,
    /// Types its menu entry opens (its `MimeType=`, as `mimeinfo.cache`
    /// lists them).
    pub mime_opens: Vec<String>,
    /// A Chromium or Electron app ([`desktop::sandbox::is_browser_app`]):
    /// its launchers add `--no-sandbox` where its sandbox cannot start.
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

/// One file detected as an AppImage, on its way to a report.
struct Detected {
    facts: Facts,
    file_name: Vec<u8>,
    /// The folder name the mount gives it (see [`name_folders`]).
    folder: Vec<u8>,
    mtime: i64,
    tree: Option<Arc<dyn ImageTree>>,
}

/// Inspects one file on its own, menu entries shown under
/// [`DEFAULT_MOUNTPOINT`].
pub fn inspect_file(path: &Path, cache: &Arc<BlockCache>) -> Report {
    let paths = [path.to_path_buf()];
    let mut reports = inspect_files(&paths, Path::new(DEFAULT_MOUNTPOINT), cache);
    reports.remove(0)
}

/// Inspects `paths` as a mount at `mountpoint` of a folder holding them
/// would see them: folder names made unique, versions of one app grouped.
pub fn inspect_files(paths: &[PathBuf], mountpoint: &Path, cache: &Arc<BlockCache>) -> Vec<Report> {
    let mut found: Vec<std::result::Result<Detected, String>> =
        paths.iter().map(|p| detect_file(p, cache)).collect();
    name_folders(&mut found);
    let facts: Vec<Option<AppFacts>> = found
        .iter()
        .map(|d| {
            let d = d.as_ref().ok()?;
            Some(desktop::analyze(d.tree.as_deref()?, &d.folder))
        })
        .collect();
    // The mount plans its apps in folder-name order (which one of two
    // equal versions wins depends on it).
    let mut order: Vec<(&[u8], usize)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, d)| Some((d.as_ref().ok()?.folder.as_slice(), i)))
        .collect();
    order.sort();
    let order: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
    let planned: Vec<(Option<&AppFacts>, i64)> = order
        .iter()
        .map(|&i| (facts[i].as_ref(), found[i].as_ref().map_or(0, |d| d.mtime)))
        .collect();
    for group in desktop::plan::plan(&planned) {
        let newest = order[group.newest];
        let newest_path = paths[newest].display().to_string();
        for (k, versioned) in &group.members {
            let i = order[*k];
            let (Ok(d), Some(app)) = (&mut found[i], &facts[i]) else {
                continue;
            };
            if i == newest {
                integrate(d, app, &group.launcher, &paths[i], mountpoint);
            } else {
                d.facts.desktop_problem = Some(format!(
                    "an older version of {}; bin/{} and the menu use {newest_path}",
                    group.base, group.launcher
                ));
            }
            d.facts.launchers.extend(versioned.clone());
        }
    }
    for (d, app) in found.iter_mut().zip(&facts) {
        if let (Ok(d), Some(app)) = (d, app) {
            describe(&mut d.facts, app);
        }
    }
    paths
        .iter()
        .zip(found)
        .map(|(path, d)| Report {
            path: path.to_path_buf(),
            result: d.map(|d| d.facts),
        })
        .collect()
}

/// Opens and detects one file, and opens its image.
fn detect_file(path: &Path, cache: &Arc<BlockCache>) -> std::result::Result<Detected, String> {
    let (file, meta) = crate::union::scan::open_regular(path)?;
    let detected = detect::detect(&file).map_err(|e| match e {
        // Detection's messages already say what is wrong with the file.
        Error::Corrupt(m) => format!("not a usable AppImage: {m}"),
        other => format!("not a usable AppImage: {other}"),
    })?;
    let (facts, tree) = image_facts(&Arc::new(file), &detected, cache);
    Ok(Detected {
        facts,
        file_name: path
            .file_name()
            .map_or(Vec::new(), |n| n.as_bytes().to_vec()),
        folder: Vec::new(),
        mtime: meta.mtime(),
        tree,
    })
}

/// Gives each AppImage its folder name as the mount's scan does: unique
/// ([`crate::union::naming::assign`]), assigned in file-name order.
fn name_folders(found: &mut [std::result::Result<Detected, String>]) {
    let mut order: Vec<&mut Detected> = found.iter_mut().filter_map(|d| d.as_mut().ok()).collect();
    order.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    let mut taken = HashSet::new();
    for d in order {
        let name = crate::union::naming::assign(&d.file_name, &taken);
        d.facts.folder = String::from_utf8_lossy(&name).into_owned();
        d.folder = name.clone();
        taken.insert(name);
    }
}

/// What the analysis says of the app whatever its launchers: desktop file,
/// name, version, why it has no menu entry, browser detection.
fn describe(f: &mut Facts, app: &AppFacts) {
    let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
    f.desktop_file = app.desktop_file.as_ref().map(text);
    f.desktop_choice = app.desktop_choice.map(|c| c.to_string());
    f.other_desktop_files = app.other_desktop_files.iter().map(text).collect();
    f.name = app.name.clone();
    f.version = app.version.clone();
    f.sandboxed_browser = app.browser;
    if f.menu_entry.is_none() && f.desktop_problem.is_none() {
        f.desktop_problem = app.menu.as_ref().err().cloned();
    }
}

/// What the mount makes for the newest version of an app, rendered by the
/// mount's own [`desktop::render`] under launcher name `launcher`.
fn integrate(d: &mut Detected, app: &AppFacts, launcher: &str, path: &Path, mountpoint: &Path) {
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let out = desktop::render(
        app,
        launcher,
        &source,
        mountpoint,
        &d.folder,
        &Extras::default(),
    );
    let f = &mut d.facts;
    if out.script.is_ok() {
        f.launchers.push(launcher.to_string());
    }
    match out.menu {
        Ok(menu) => {
            let rewritten = entry::parse(&menu.contents).ok();
            let key = |k: &str| {
                rewritten
                    .as_ref()
                    .and_then(|e| e.main()?.string(k).ok().flatten())
            };
            f.menu_name = key("Name");
            f.menu_exec = key("Exec");
            f.menu_icon = key("Icon");
            f.menu_entry = Some(menu.file_name);
            f.mime_opens = app.mime_types();
        }
        Err(reason) => f.desktop_problem = Some(reason),
    }
    f.icons = out.icons.into_iter().map(|i| i.path).collect();
    f.mime_packages = app.mime.iter().map(|p| p.link_name(launcher)).collect();
    f.mime_defines = app
        .mime
        .iter()
        .flat_map(|p| p.types.iter().map(|t| t.name.clone()))
        .collect();
    f.mime_defines.sort();
    f.mime_defines.dedup();
}

/// The facts of the file and its image that do not depend on other files,
/// and the opened image (`None` when it cannot be opened or listed: then
/// [`Facts::image_error`] says why).
fn image_facts(
    file: &Arc<File>,
    detected: &AppImage,
    cache: &Arc<BlockCache>,
) -> (Facts, Option<Arc<dyn ImageTree>>) {
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
            return (f, None);
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
        return (f, None);
    }
    f.has_apprun = matches!(tree.lookup(tree.root(), b"AppRun"), Ok(Some(_)));
    (f, Some(tree))
}

/// The bytes of ELF section `name` (at most [`MAX_SECTION`]), if present.
fn section(file: &File, e: &elf::Elf, name: &str) -> Option<Vec<u8>> {
    let s = e.section(name)?;
    let mut buf = vec![0u8; s.size.min(MAX_SECTION) as usize];
    file.read_exact_at(&mut buf, s.offset).ok()?;
    Some(buf)
}

/// Inspects every file in `paths` as [`inspect_files`] does and writes the
/// reports to `out`, human readable or as JSON; true when every file is a
/// usable AppImage.
pub fn inspect(paths: &[PathBuf], mountpoint: &Path, json: bool, out: &mut dyn Write) -> bool {
    let cache = Arc::new(BlockCache::new(CACHE_BYTES));
    let reports = inspect_files(paths, mountpoint, &cache);
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
            if f.compression.is_empty() {
                "unknown (the image could not be opened)".to_string()
            } else {
                format!("{}, block size {}", clean(&f.compression), f.block_size)
            },
        ),
        ("inodes", inodes),
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
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            clean(&v.join(" "))
        }
    };
    if f.image_error.is_none() {
        let chosen = match (&f.desktop_file, &f.desktop_choice) {
            (Some(file), Some(why)) => clean(&format!("{file} ({why})")),
            (file, _) => opt(file),
        };
        lines.extend([("folder", clean(&f.folder)), ("desktop file", chosen)]);
        if !f.other_desktop_files.is_empty() {
            lines.push(("passed over", list(&f.other_desktop_files)));
        }
        lines.extend([("name", opt(&f.name)), ("version", opt(&f.version))]);
        if let Some(p) = &f.desktop_problem {
            lines.push(("no menu entry", clean(p)));
        }
        lines.push(("launchers", list(&f.launchers)));
        if let Some(menu) = &f.menu_entry {
            lines.extend([
                ("menu entry", clean(menu)),
                ("  Name", opt(&f.menu_name)),
                ("  Exec", opt(&f.menu_exec)),
                ("  Icon", opt(&f.menu_icon)),
            ]);
        }
        lines.push(("icons", list(&f.icons)));
        lines.push(("MIME packages", list(&f.mime_packages)));
        lines.push(("defines types", list(&f.mime_defines)));
        lines.push(("opens types", list(&f.mime_opens)));
    }
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
/// `block_size`, `inodes`, `update_info`, `signed`, `apprun`, `folder`,
/// `desktop_file`, `desktop_choice`, `other_desktop_files`, `name`,
/// `version`, `desktop_problem`, `launchers`, `menu_entry`, `menu_name`,
/// `menu_exec`, `menu_icon`, `icons`, `mime_packages`, `mime_defines`,
/// `mime_opens`, `sandboxed_browser`, `image_error` (lists are arrays of
/// strings, absent values null). A path that is not UTF-8 is written with
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
                obj.opt("update_info", &f.update_info);
                obj.raw("signed", bool_str(f.signed));
                obj.raw("apprun", bool_str(f.has_apprun));
                obj.str("folder", &f.folder);
                obj.opt("desktop_file", &f.desktop_file);
                obj.opt("desktop_choice", &f.desktop_choice);
                obj.raw("other_desktop_files", &json_list(&f.other_desktop_files));
                obj.opt("name", &f.name);
                obj.opt("version", &f.version);
                obj.opt("desktop_problem", &f.desktop_problem);
                obj.raw("launchers", &json_list(&f.launchers));
                obj.opt("menu_entry", &f.menu_entry);
                obj.opt("menu_name", &f.menu_name);
                obj.opt("menu_exec", &f.menu_exec);
                obj.opt("menu_icon", &f.menu_icon);
                obj.raw("icons", &json_list(&f.icons));
                obj.raw("mime_packages", &json_list(&f.mime_packages));
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

    fn mnt() -> &'static Path {
        Path::new(DEFAULT_MOUNTPOINT)
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
        assert!(inspect(&good, mnt(), false, &mut sink));
        let mut mixed = good.clone();
        mixed.push(apps::elf_only());
        assert!(!inspect(&mixed, mnt(), false, &mut sink));
        assert!(!inspect(&mixed, mnt(), true, &mut sink));
        assert!(inspect(&[], mnt(), true, &mut sink));
    }

    #[test]
    fn human_output() {
        let scribble = apps::scribble();
        let (used, inodes) = unsquashfs_stats(&scribble);
        let mut out = Vec::new();
        inspect(&[scribble, apps::elf_only()], mnt(), false, &mut out);
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
            "  desktop file:   scribble.desktop (the only one)\n".to_string(),
            "  launchers:      scribble\n".to_string(),
            "  menu entry:     appimagefs-scribble.desktop\n".to_string(),
            "    Exec:         /MOUNTPOINT/bin/scribble %f\n".to_string(),
            "  opens types:    text/plain\n".to_string(),
            "  usable:         yes\n".to_string(),
            "elffile\n  not a usable AppImage: ".to_string(),
        ] {
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
    }

    /// A DwarFS payload whose sections cannot be read: inspect says the
    /// compression is unknown rather than printing an empty codec.
    #[test]
    fn an_image_that_does_not_open_has_an_unknown_compression() {
        let tmp = TempDir::new("inspect-broken-dwarfs");
        let mut bytes = StubRuntime::type2().bytes().to_vec();
        bytes.extend_from_slice(b"DWARFS\x02\x05");
        bytes.extend_from_slice(&[0xa5; 4096]);
        let image = tmp.path().join("Broken.AppImage");
        std::fs::write(&image, bytes).unwrap();
        let mut out = Vec::new();
        inspect(&[image], mnt(), false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("  compression:    unknown (the image could not be opened)\n"),
            "{text}"
        );
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
        inspect(std::slice::from_ref(&image), mnt(), false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("  browser app:    yes (Chromium/Electron"),
            "{text}"
        );
        let mut out = Vec::new();
        inspect(&[image], mnt(), true, &mut out);
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
        assert!(!inspect(&paths, mnt(), true, &mut out));
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
        inspect(&[link], mnt(), false, &mut out);
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
        let dir = TempDir::new("inspect-folder");
        let echo = crate::test_support::apps::echo();
        let link = |name: &str| {
            let path = dir.path().join(name);
            std::os::unix::fs::symlink(&echo, &path).unwrap();
            path
        };
        for (file, folder) in [
            ("Tool.AppImage", "Tool"),
            ("Tool.appimage", "Tool"),
            ("Tool.APPIMAGE", "Tool"),
            ("tool", "tool"),
        ] {
            let report = inspect_file(&link(file), &Arc::new(BlockCache::new(1 << 20)));
            assert_eq!(report.result.unwrap().folder, folder, "{file}");
        }
        // Together, as in one source folder, the names are made unique as
        // the mount makes them.
        let together = [
            dir.path().join("Tool.appimage"),
            dir.path().join("Tool.AppImage"),
        ];
        let reports = inspect_files(
            &together,
            Path::new(DEFAULT_MOUNTPOINT),
            &Arc::new(BlockCache::new(1 << 20)),
        );
        let folders: Vec<String> = reports
            .into_iter()
            .map(|r| r.result.unwrap().folder)
            .collect();
        assert_eq!(folders, ["Tool.appimage", "Tool"]);
    }
}
