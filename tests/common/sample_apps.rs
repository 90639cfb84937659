//! Small AppImages shaped like the real ones the suite used to borrow
//! (Echo, Hello World in gzip/xz/zstd, a many-file app, a bigger tool, a
//! type 1 app with zisofs), built once per test process with mksquashfs or
//! xorriso and the stand-in runtime. Each type 2 app's `AppRun` is a shell
//! script that really runs, so launches through the mount can be checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::runtime_stub::StubRuntime;
use super::{
    build_dir, mksquashfs, pseudo_random, run_timeout, set_mode, set_mtime, text,
    type1_system_area, unsquashfs_extract,
};

/// One built type 2 sample app.
#[derive(Debug)]
pub struct SampleApp {
    /// Short unique name (`echo`, `hello-xz`, ...).
    pub name: &'static str,
    /// The AppImage file (runtime + SquashFS + trailing bytes).
    pub image: PathBuf,
    /// The file name the tests give it in a source folder.
    pub file_name: &'static str,
    /// Offset of the SquashFS payload in `image`.
    pub offset: u64,
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// An SVG icon of a few hundred bytes.
fn svg(label: &str) -> Vec<u8> {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"48\" height=\"48\">\
         <rect width=\"48\" height=\"48\" fill=\"#336\"/><text x=\"4\" y=\"30\">{label}</text></svg>\n"
    )
    .into_bytes()
}

/// `AppRun` for a sample app: runs `usr/bin/<exe>` of its AppDir (`$APPDIR`
/// when set, as the runtime and the bin/ launchers set it, else its own
/// folder).
fn apprun(exe: &str) -> Vec<u8> {
    format!("#!/bin/sh\nHERE=${{APPDIR:-${{0%/*}}}}\nexec \"$HERE/usr/bin/{exe}\" \"$@\"\n")
        .into_bytes()
}

/// The Echo-like AppDir: `AppRun` → `usr/bin/echo` (a copy of the host's
/// `/bin/echo`), the desktop entry as a symlink into usr/share, `.DirIcon`.
fn echo_tree(root: &Path) {
    write(&root.join("AppRun"), &apprun("echo"));
    set_mode(&root.join("AppRun"), 0o775);
    write(
        &root.join("usr/bin/echo"),
        &std::fs::read("/bin/echo").expect("read /bin/echo"),
    );
    set_mode(&root.join("usr/bin/echo"), 0o755);
    write(
        &root.join("usr/share/applications/echo.desktop"),
        b"[Desktop Entry]\nVersion=1.0\nType=Application\nName=Echo\nComment=Just echo.\n\
          Exec=echo %F\nIcon=utilities-terminal\n",
    );
    symlink(
        "usr/share/applications/echo.desktop",
        &root.join("echo.desktop"),
    );
    write(&root.join("utilities-terminal.svg"), &svg("echo"));
    symlink("utilities-terminal.svg", &root.join(".DirIcon"));
    set_mode(&root.join("usr"), 0o700);
    set_mode(&root.join("usr/bin"), 0o700);
}

/// The Hello-World-like AppDir: 26 entries, a script printing a greeting.
fn hello_tree(root: &Path, greeting: &str) {
    write(&root.join("AppRun"), &apprun("helloworld"));
    set_mode(&root.join("AppRun"), 0o755);
    write(
        &root.join("usr/bin/helloworld"),
        format!("#!/bin/sh\necho \"{greeting}\"\n").as_bytes(),
    );
    set_mode(&root.join("usr/bin/helloworld"), 0o755);
    write(
        &root.join("helloworld.desktop"),
        b"[Desktop Entry]\nName=Hello World\nIcon=helloworld\nExec=helloworld\nType=Application\n",
    );
    write(&root.join("helloworld.svg"), &svg("hello"));
    symlink("helloworld.svg", &root.join(".DirIcon"));
    for size in ["16x16", "32x32", "48x48", "64x64", "128x128", "256x256"] {
        write(
            &root.join(format!(
                "usr/share/icons/hicolor/{size}/apps/helloworld.svg"
            )),
            &svg(size),
        );
    }
    write(&root.join("usr/share/doc/helloworld/README"), &text(900, 3));
}

/// A many-file AppDir (about 170 entries in nested folders).
fn many_files_tree(root: &Path) {
    hello_tree(root, "many files");
    for d in 0..12 {
        for f in 0..12 {
            write(
                &root.join(format!("usr/lib/mod{d:02}/part{f:02}.txt")),
                &text(50 + d * 97 + f * 13, d * 12 + f),
            );
        }
    }
}

/// A tool with multi-block data: a 300 KB incompressible "binary" and text.
fn big_tool_tree(root: &Path) {
    hello_tree(root, "big tool");
    write(&root.join("usr/bin/tool.bin"), &pseudo_random(77, 300_000));
    write(&root.join("usr/share/tool/manual.txt"), &text(250_000, 7));
}

/// (name, file name, tree builder, mksquashfs arguments)
type AppSpec = (&'static str, &'static str, fn(&Path), Vec<&'static str>);

/// The type 2 sample apps (built once per process): `echo` (gzip),
/// `hello-gzip`, `hello-xz` (16K blocks), `hello-zstd`, `many-files` (gzip,
/// no xattrs, no 4K padding, update information in the runtime, 1000 zero
/// bytes after the SquashFS), `big-tool` (gzip, multi-block files).
pub fn sample_apps() -> &'static [SampleApp] {
    static APPS: OnceLock<Vec<SampleApp>> = OnceLock::new();
    APPS.get_or_init(|| {
        let dir = build_dir().join("sample-apps");
        let specs: Vec<AppSpec> = vec![
            (
                "echo",
                "Echo-x86_64.AppImage",
                echo_tree,
                vec!["-comp", "gzip"],
            ),
            (
                "hello-gzip",
                "Hello_World-x86_64.gzip.AppImage",
                |r| hello_tree(r, "Hello, World! (gzip)"),
                vec!["-comp", "gzip"],
            ),
            (
                "hello-xz",
                "Hello_World-x86_64.xz.AppImage",
                |r| hello_tree(r, "Hello, World! (xz)"),
                vec!["-comp", "xz", "-b", "16K"],
            ),
            (
                "hello-zstd",
                "Hello_World-x86_64.zstd.AppImage",
                |r| hello_tree(r, "Hello, World! (zstd)"),
                vec!["-comp", "zstd"],
            ),
            (
                "many-files",
                "ManyFiles-x86_64.AppImage",
                many_files_tree,
                vec!["-comp", "gzip", "-no-xattrs", "-nopad"],
            ),
            (
                "big-tool",
                "BigTool-x86_64.AppImage",
                big_tool_tree,
                vec!["-comp", "gzip"],
            ),
        ];
        specs
            .into_iter()
            .map(|(name, file_name, build, args)| {
                let tree = dir.join("trees").join(name);
                std::fs::create_dir_all(&tree).unwrap();
                build(&tree);
                set_mtime(&tree, 1_540_000_000);
                let sqfs = dir.join(format!("{name}.sqfs"));
                mksquashfs(&tree, &sqfs, &args);
                let mut runtime = StubRuntime::type2();
                let mut tail = Vec::new();
                if name == "many-files" {
                    runtime.update_info =
                        b"gh-releases-zsync|example|many|latest|ManyFiles-*x86_64.AppImage.zsync"
                            .to_vec();
                    tail = vec![0u8; 1000];
                }
                let mut data = runtime.bytes();
                let offset = data.len() as u64;
                data.extend_from_slice(&std::fs::read(&sqfs).unwrap());
                data.extend_from_slice(&tail);
                let image = dir.join(file_name);
                std::fs::write(&image, data).unwrap();
                set_mode(&image, 0o755);
                SampleApp {
                    name,
                    image,
                    file_name,
                    offset,
                }
            })
            .collect()
    })
}

/// One sample app by name.
pub fn sample_app(name: &str) -> &'static SampleApp {
    sample_apps()
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no sample app {name}"))
}

/// Copies a sample app into `dir` under `file` (mode 755).
pub fn copy_sample_app(name: &str, dir: &Path, file: &str) -> PathBuf {
    let dst = dir.join(file);
    std::fs::copy(&sample_app(name).image, &dst).expect("copy sample app");
    set_mode(&dst, 0o755);
    dst
}

/// The unsquashfs extraction of a sample app (done once per process).
pub fn sample_app_extraction(name: &str) -> PathBuf {
    static DONE: OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>>> =
        OnceLock::new();
    let mut m = DONE.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = m.get(name) {
        return p.clone();
    }
    let app = sample_app(name);
    let out = build_dir().join("sample-apps/extracted").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    unsquashfs_extract(&app.image, app.offset, &out).unwrap_or_else(|e| panic!("{e}"));
    m.insert(name.to_string(), out.clone());
    out
}

/// The ISO of a type 1 app (built once per process): an AppDir with a
/// desktop entry, an icon, `AppRun`, `usr/` and a 400 KB incompressible
/// file, with Rock Ridge, Joliet and every compressible file
/// zisofs-compressed in 128 KiB blocks (like AppImageKit's type 1 tools).
pub fn type1_app_iso() -> &'static Path {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    ISO.get_or_init(|| {
        let dir = build_dir().join("type1-app");
        let tree = dir.join("tree");
        hello_tree(&tree, "type 1");
        write(
            &tree.join("usr/lib/libdata.so"),
            &pseudo_random(91, 400_000),
        );
        write(&tree.join("usr/share/type1/notes.txt"), &text(300_000, 11));
        let iso = dir.join("type1.iso");
        let o = run_timeout(
            Command::new("xorriso")
                .arg("-outdev")
                .arg(&iso)
                .args(["-volid", "AppImage", "-joliet", "on"])
                .args(["-zisofs", "level=9:block_size=128k", "-map"])
                .arg(&tree)
                .args(["/", "-set_filter_r", "--zisofs", "/", "--"]),
            Duration::from_secs(120),
        );
        assert!(o.success(), "xorriso type 1 app: {}", o.describe());
        iso
    })
}

/// A type 1 AppImage of [`type1_app_iso`]: the stand-in system area
/// (`AI\x01`, or zeroed magic bytes when `magic` is false) + the ISO.
pub fn write_type1_app(out: &Path, magic: bool) {
    let iso = std::fs::read(type1_app_iso()).expect("read type 1 ISO");
    let mut data = type1_system_area().to_vec();
    if !magic {
        data[8..11].fill(0);
    }
    data.extend_from_slice(&iso[32768..]);
    std::fs::write(out, data).expect("write type 1 AppImage");
    set_mode(out, 0o755);
}
