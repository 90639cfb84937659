//! Whole test apps: AppDirs with desktop entries, icons and an `AppRun`
//! that really runs, wrapped as AppImages at test time (each built once per
//! test process).
//!
//! They stand in for the real-world AppImages the suite once read from the
//! corpus, keeping what each of those gave the tests: an `AppRun` that is a
//! shell script or runs a host program copied into the AppDir (`/bin/echo`,
//! `/usr/bin/xmessage`), a desktop entry that is a symlink into
//! `usr/share/applications`, broken or opted-out entries, `.DirIcon`
//! symlinks, PNG and SVG icons, payload roots of mode 0700 and 0755, and
//! every way of wrapping (ELF64 and ELF32 runtimes, no magic bytes, type 1).
//! The runtime is the stand-in of [`super::runtime_stub`]: appimagefs never
//! runs it, and these tests run the apps through the mount only.

use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::runtime_stub::{self, StubRuntime};
use super::{build_dir, mksquashfs, run_timeout, set_mode, unsquashfs_extract, xorriso_extract};

/// How an AppDir is wrapped into an AppImage file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wrap {
    /// The 64-bit stand-in runtime (`AI\x02`), SquashFS after it.
    Type2,
    /// The 32-bit (i386) stand-in runtime, SquashFS after it.
    Type2Elf32,
    /// The 64-bit stand-in without magic bytes: found by its payload alone.
    Type2NoMagic,
    /// An ISO 9660 image (Rock Ridge, Joliet) whose system area holds the
    /// stand-in runtime with `AI\x01`.
    Type1,
    /// Type 1 with the magic bytes zeroed: found as ELF + ISO 9660.
    Type1NoMagic,
}

impl Wrap {
    /// The runtime bytes a type 2 wrap starts with (`None` for type 1).
    pub fn runtime(self) -> Option<Vec<u8>> {
        match self {
            Wrap::Type2 => Some(StubRuntime::type2().bytes()),
            Wrap::Type2Elf32 => Some(StubRuntime::type2_elf32().bytes()),
            Wrap::Type2NoMagic => Some(
                StubRuntime {
                    magic: None,
                    ..StubRuntime::type2()
                }
                .bytes(),
            ),
            Wrap::Type1 | Wrap::Type1NoMagic => None,
        }
    }

    /// The SquashFS payload's offset of a type 2 wrap.
    pub fn payload_offset(self) -> Option<u64> {
        self.runtime().map(|r| r.len() as u64)
    }
}

/// SquashFS compression of a type 2 app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Comp {
    /// gzip, 128 KiB blocks.
    Gzip,
    /// xz, 16 KiB blocks.
    Xz16K,
    /// zstd, 128 KiB blocks.
    Zstd,
}

impl Comp {
    fn args(self) -> &'static [&'static str] {
        match self {
            Comp::Gzip => &["-comp", "gzip"],
            Comp::Xz16K => &["-comp", "xz", "-b", "16K"],
            Comp::Zstd => &["-comp", "zstd"],
        }
    }
}

/// The apps. Each names the folder, launcher and menu entry it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum App {
    /// `Echo-x86_64.AppImage`: an AppImageKit-style shell `AppRun` that runs
    /// the program the desktop entry's `Exec` names (`echo %F`), found in
    /// `usr/bin` (a copy of the host's `/bin/echo`). `echo.desktop` is a
    /// symlink into `usr/share/applications`; `.DirIcon` is a symlink to
    /// an SVG icon; the payload root has mode 0700. Launcher `echo`.
    Echo,
    /// Echo whose entry says `X-AppImage-Integrate=false` (desktop file a
    /// symlink, as in Echo).
    EchoNoIntegrate,
    /// Echo whose entry (a regular file) says `NoDisplay=true`.
    EchoNoDisplay,
    /// Echo whose entry is broken: no `Type`, no `Exec` (`_Type`, `_Exec`
    /// instead), a localized name and `X-AppImage-Version=1234`; PNG icon.
    /// Its `AppRun` finds no program to run and fails.
    EchoBrokenDesktop,
    /// A background tool (`NoDisplay=true`), launcher `hidden-tool`; SVG
    /// icon; never run.
    HiddenTool,
    /// `Hello-x86_64.AppImage`: world-readable payload (root 0755), an
    /// `AppRun` that runs `$APPDIR/usr/bin/hello-world` (so it needs the
    /// `APPDIR` the runtime or a launcher sets), `hello-world.desktop` with
    /// `Name=Hello World`, a PNG icon. Launcher `hello-world`.
    Hello,
    /// `Hello_World-x86_64.AppImage`: `AppRun` prints `Hello world.`;
    /// `helloworld.desktop`, SVG icon. Launcher `helloworld`.
    HelloWorld,
    /// `XMessage-x86_64.AppImage`: the host's `xmessage` (X11) copied in,
    /// its entry's `Exec` opens a 480x240 window. Its runtime carries update
    /// information and a signature (`.upd_info`, `.sha256_sig`), as
    /// released AppImages do. Launcher `xmessage`.
    Gui,
}

/// Update information written into [`App::Gui`]'s runtime.
pub const GUI_UPDATE_INFO: &str =
    "gh-releases-zsync|appimagefs|tests|latest|XMessage-*x86_64.AppImage.zsync";

impl App {
    /// The file name the corpus AppImage it stands in for had (the folder
    /// name is this without `.AppImage`).
    pub fn file_name(self) -> &'static str {
        match self {
            App::Echo => "Echo-x86_64.AppImage",
            App::EchoNoIntegrate => "Echo-no-integrate-x86_64.AppImage",
            App::EchoNoDisplay => "Echo-x86_64-no_display.AppImage",
            App::EchoBrokenDesktop => "broken-desktop-file-x86_64.AppImage",
            App::HiddenTool => "hidden-tool-x86_64.AppImage",
            App::Hello => "Hello-x86_64.AppImage",
            App::HelloWorld => "Hello_World-x86_64.AppImage",
            App::Gui => "XMessage-x86_64.AppImage",
        }
    }

    /// The launcher name under `MNT/bin/`.
    pub fn launcher(self) -> &'static str {
        match self {
            App::Echo | App::EchoNoIntegrate | App::EchoNoDisplay | App::EchoBrokenDesktop => {
                "echo"
            }
            App::HiddenTool => "hidden-tool",
            App::Hello => "hello-world",
            App::HelloWorld => "helloworld",
            App::Gui => "xmessage",
        }
    }

    fn key(self) -> &'static str {
        match self {
            App::Echo => "echo",
            App::EchoNoIntegrate => "echo-no-integrate",
            App::EchoNoDisplay => "echo-no-display",
            App::EchoBrokenDesktop => "echo-broken",
            App::HiddenTool => "hidden-tool",
            App::Hello => "hello",
            App::HelloWorld => "helloworld",
            App::Gui => "gui",
        }
    }

    fn default_comp(self) -> Comp {
        match self {
            App::Hello => Comp::Zstd,
            _ => Comp::Gzip,
        }
    }
}

/// An app built into an AppImage file.
#[derive(Debug)]
pub struct BuiltApp {
    /// The AppImage file (in the process's build folder; copy it to use it).
    pub path: PathBuf,
    /// How it was wrapped.
    pub wrap: Wrap,
}

impl BuiltApp {
    /// Extracts the payload with an independent tool (`unsquashfs -o` for
    /// type 2, `xorriso` for type 1) into `dir`, which must not exist.
    pub fn extract(&self, dir: &Path) -> Result<(), String> {
        match self.wrap.payload_offset() {
            Some(offset) => unsquashfs_extract(&self.path, offset, dir),
            None => xorriso_extract(&self.path, dir),
        }
    }
}

/// `app` as a type 2 AppImage with its usual compression.
pub fn app(app: App) -> &'static BuiltApp {
    app_with(app, app.default_comp(), Wrap::Type2)
}

/// `app` compressed with `comp` (type 2 only) and wrapped as `wrap`; built
/// once per process.
pub fn app_with(app: App, comp: Comp, wrap: Wrap) -> &'static BuiltApp {
    type Built = HashMap<(App, Comp, Wrap), &'static BuiltApp>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(b) = built.get(&(app, comp, wrap)) {
        return b;
    }
    let dir = build_dir().join("apps");
    let name = format!("{}-{comp:?}-{wrap:?}", app.key());
    let tree = dir.join(&name);
    let _ = std::fs::remove_dir_all(&tree);
    build_appdir(app, &tree);
    let path = dir.join(format!("{name}.AppImage"));
    match wrap.runtime() {
        Some(mut runtime) => {
            if app == App::Gui {
                sign(&mut runtime);
            }
            let sqfs = dir.join(format!("{name}.sqfs"));
            let mut args = comp.args().to_vec();
            args.push("-all-root");
            mksquashfs(&tree, &sqfs, &args);
            runtime.extend_from_slice(&std::fs::read(&sqfs).expect("read squashfs"));
            std::fs::write(&path, runtime).expect("write AppImage");
        }
        None => {
            let iso = dir.join(format!("{name}.iso"));
            make_iso(&tree, &iso);
            let iso = std::fs::read(&iso).expect("read ISO");
            let mut data = runtime_stub::type1_system_area();
            if wrap == Wrap::Type1NoMagic {
                data[8..11].fill(0);
            }
            data.extend_from_slice(&iso[32768..]);
            std::fs::write(&path, data).expect("write AppImage");
        }
    }
    set_mode(&path, 0o755);
    let b: &'static BuiltApp = Box::leak(Box::new(BuiltApp { path, wrap }));
    built.insert((app, comp, wrap), b);
    b
}

/// Copies `app`'s AppImage (type 2, usual compression) into `dir` as
/// `name`, mode 0755.
pub fn copy_app(which: App, dir: &Path, name: &str) -> PathBuf {
    copy_built(app(which), dir, name)
}

/// Copies a built AppImage into `dir` as `name`, mode 0755.
pub fn copy_built(b: &BuiltApp, dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(&b.path, &dst).expect("copy AppImage");
    set_mode(&dst, 0o755);
    dst
}

/// A plain ELF program (the stand-in runtime without magic bytes and with
/// nothing after it): not an AppImage.
pub fn plain_program(out: &Path) {
    let elf = StubRuntime {
        magic: None,
        ..StubRuntime::type2()
    }
    .bytes();
    std::fs::write(out, elf).expect("write ELF");
    set_mode(out, 0o755);
}

/// `xorriso -as mkisofs -R -J -o ISO TREE`.
pub fn make_iso(tree: &Path, iso: &Path) {
    let made = run_timeout(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-R", "-J", "-o"])
            .arg(iso)
            .arg(tree),
        Duration::from_secs(120),
    );
    assert!(made.success(), "xorriso: {}", made.describe());
}

/// The AppImageKit `AppRun` (its shell version): puts the AppDir's
/// `usr/bin` first in `PATH` and runs the program the desktop entry's
/// `Exec` names, with the arguments given; without one it fails with a
/// message.
pub const DESKTOP_EXEC_APPRUN: &str = r#"#!/bin/sh
HERE="$(dirname "$(readlink -f "${0}")")"
export PATH="${HERE}/usr/bin/:${PATH}"
EXEC=$(grep -e '^Exec=.*' "${HERE}"/*.desktop | head -n 1 | cut -d "=" -f 2 | cut -d " " -f 1)
if [ -z "${EXEC}" ]; then
    echo "AppRun: the desktop entry has no Exec= line" >&2
    exit 1
fi
exec "${EXEC}" "$@"
"#;

/// A desktop entry with the usual keys and `extra` lines after them.
pub fn desktop_entry(name: &str, exec: &str, icon: &str, extra: &str) -> String {
    format!(
        "[Desktop Entry]\nVersion=1.0\nType=Application\nName={name}\nComment=A test app of appimagefs.\nExec={exec}\nIcon={icon}\nCategories=Utility;\n{extra}"
    )
}

/// A small SVG icon.
pub fn svg_icon(label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"48\" height=\"48\" viewBox=\"0 0 48 48\">\n  <rect x=\"4\" y=\"4\" width=\"40\" height=\"40\" rx=\"6\" fill=\"#2a6\"/>\n  <text x=\"24\" y=\"30\" font-size=\"12\" text-anchor=\"middle\" fill=\"#fff\">{label}</text>\n</svg>\n"
    )
}

/// A 16x16 PNG icon.
pub fn png_icon(seed: u8) -> Vec<u8> {
    let px: Vec<u8> = (0..16 * 16).flat_map(|i| [i as u8, seed, 200]).collect();
    png_rgb(16, 16, &px)
}

fn write(p: &Path, data: impl AsRef<[u8]>) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn write_exec(p: &Path, data: impl AsRef<[u8]>) {
    write(p, data);
    set_mode(p, 0o755);
}

fn copy_exec(from: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    set_mode(to, 0o755);
}

/// The Echo AppDir with `desktop` as its entry, a symlink into
/// `usr/share/applications` when `linked`; icon SVG or PNG.
fn echo_appdir(root: &Path, desktop: &str, linked: bool, png: bool) {
    write_exec(&root.join("AppRun"), DESKTOP_EXEC_APPRUN);
    copy_exec("/bin/echo", &root.join("usr/bin/echo"));
    if linked {
        write(&root.join("usr/share/applications/echo.desktop"), desktop);
        symlink(
            "usr/share/applications/echo.desktop",
            root.join("echo.desktop"),
        )
        .unwrap();
    } else {
        write(&root.join("echo.desktop"), desktop);
    }
    let icon = if png {
        write(&root.join("utilities-terminal.png"), png_icon(1));
        "utilities-terminal.png"
    } else {
        write(&root.join("utilities-terminal.svg"), svg_icon("echo"));
        "utilities-terminal.svg"
    };
    symlink(icon, root.join(".DirIcon")).unwrap();
}

fn build_appdir(app: App, root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let echo = |extra: &str| desktop_entry("Echo", "echo %F", "utilities-terminal", extra);
    match app {
        App::Echo => {
            echo_appdir(root, &echo(""), true, false);
            set_mode(root, 0o700);
            set_mode(&root.join("usr"), 0o700);
            set_mode(&root.join("usr/bin"), 0o700);
        }
        App::EchoNoIntegrate => {
            echo_appdir(root, &echo("X-AppImage-Integrate=false\n"), true, false)
        }
        App::EchoNoDisplay => echo_appdir(root, &echo("NoDisplay=true\n"), false, false),
        App::EchoBrokenDesktop => echo_appdir(
            root,
            "[Desktop Entry]\nVersion=1.0\n_Type=Application\nName=Echo\nName[de]=Echo DE\nComment=Just echo.\n_Exec=echo %F\nIcon=utilities-terminal\nX-AppImage-Version=1234\n",
            false,
            true,
        ),
        App::HiddenTool => {
            write_exec(&root.join("AppRun"), DESKTOP_EXEC_APPRUN);
            write_exec(
                &root.join("usr/bin/hidden-tool"),
                "#!/bin/sh\necho 'hidden tool running'\n",
            );
            write(
                &root.join("hidden-tool.desktop"),
                desktop_entry(
                    "Hidden tool",
                    "hidden-tool",
                    "hidden-tool",
                    "Terminal=false\nNoDisplay=true\n",
                ),
            );
            write(&root.join("hidden-tool.svg"), svg_icon("tool"));
            symlink("hidden-tool.svg", root.join(".DirIcon")).unwrap();
        }
        App::Hello => {
            write_exec(
                &root.join("AppRun"),
                "#!/bin/sh\nexec \"$APPDIR/usr/bin/hello-world\" \"$@\"\n",
            );
            write_exec(
                &root.join("usr/bin/hello-world"),
                "#!/bin/sh\necho 'Hello from hello-world!'\nfor a in \"$@\"; do echo \"arg: $a\"; done\n",
            );
            write(
                &root.join("hello-world.desktop"),
                "[Desktop Entry]\nType=Application\nName=Hello World\nExec=hello-world\nIcon=hello-world\nCategories=Utility;\n",
            );
            write(&root.join("hello-world.png"), png_icon(2));
            symlink("hello-world.png", root.join(".DirIcon")).unwrap();
            set_mode(root, 0o755);
        }
        App::HelloWorld => {
            write_exec(&root.join("AppRun"), "#!/bin/sh\necho \"Hello world.\"\n");
            write(
                &root.join("helloworld.desktop"),
                "[Desktop Entry]\nName=Hello World\nIcon=helloworld\nExec=helloworld\nType=Application\nCategories=Utility;\n",
            );
            write(&root.join("helloworld.svg"), svg_icon("hello"));
            symlink("helloworld.svg", root.join(".DirIcon")).unwrap();
            set_mode(root, 0o755);
        }
        App::Gui => {
            write_exec(
                &root.join("AppRun"),
                "#!/bin/sh\nHERE=\"$(dirname \"$(readlink -f \"$0\")\")\"\nexec \"$HERE/usr/bin/xmessage\" \"$@\"\n",
            );
            copy_exec("/usr/bin/xmessage", &root.join("usr/bin/xmessage"));
            write(
                &root.join("xmessage.desktop"),
                desktop_entry(
                    "XMessage",
                    "xmessage -geometry 480x240+20+20 \"A window from an AppImage\"",
                    "xmessage",
                    "",
                ),
            );
            write(&root.join("xmessage.png"), png_icon(3));
            symlink("xmessage.png", root.join(".DirIcon")).unwrap();
            set_mode(root, 0o755);
        }
    }
}

/// Writes update information and a (dummy, non-zero) signature into the
/// stand-in runtime's `.upd_info` and `.sha256_sig` sections.
fn sign(runtime: &mut [u8]) {
    fill_section(runtime, ".upd_info", GUI_UPDATE_INFO.as_bytes());
    fill_section(runtime, ".sha256_sig", &[0x5a; 64]);
}

/// Overwrites the start of section `name` of a 64-bit little-endian ELF.
fn fill_section(elf: &mut [u8], name: &str, data: &[u8]) {
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(elf[4], 2, "fill_section handles 64-bit ELF only");
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(elf, 0x28),
        u16_at(elf, 0x3A),
        u16_at(elf, 0x3C),
        u16_at(elf, 0x3E),
    );
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(elf, header(shstrndx) + 0x18);
    for i in 0..shnum {
        let h = header(i);
        let at = names + u32_at(elf, h);
        let end = at + elf[at..].iter().position(|&b| b == 0).unwrap();
        if &elf[at..end] == name.as_bytes() {
            let (offset, size) = (u64_at(elf, h + 0x18), u64_at(elf, h + 0x20));
            assert!(data.len() <= size, "{name} is too small");
            elf[offset..offset + data.len()].copy_from_slice(data);
            return;
        }
    }
    panic!("the stand-in runtime has no {name} section");
}

/// A valid `w`x`h` RGB PNG (stored, uncompressed deflate).
pub fn png_rgb(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::with_capacity((w * 3 + 1) as usize * h as usize);
    for y in 0..h as usize {
        raw.push(0);
        raw.extend_from_slice(&rgb[y * w as usize * 3..(y + 1) * w as usize * 3]);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
