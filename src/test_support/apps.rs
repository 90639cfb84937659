//! AppImages built from written AppDirs: type 2 (the stand-in runtime
//! followed by a `mksquashfs` payload) and type 1 (the stand-in system area
//! over an `xorriso` ISO with Rock Ridge, Joliet and zisofs), each with the
//! desktop-entry trait a test needs, plus a runtime with nothing after it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::runtime_stub::{type1_system_area, StubRuntime};
use super::sqfs::mksquashfs;
use super::tree::{self, png, svg, Node};
use super::{cached, run, text, TempDir};

/// The update information of [`daemon`].
pub const DAEMON_UPDATE_INFO: &str =
    "gh-releases-zsync|AppImage|AppImageKit|continuous|appimaged-x86_64.AppImage.zsync";

/// The update information of [`scribble`].
pub const SCRIBBLE_UPDATE_INFO: &str =
    "bintray-zsync|probono|AppImages|Scribble|Scribble-_latestVersion-x86_64.AppImage.zsync";

/// The runtime's bytes; with `signed`, `.sha256_sig` holds non-zero bytes.
fn runtime(rt: &StubRuntime, signed: bool) -> Vec<u8> {
    let mut bytes = rt.bytes();
    if signed {
        let len = bytes.len() as u64;
        let copy = bytes.clone();
        let mut read_at = |off: u64, n: usize| -> crate::error::Result<Vec<u8>> {
            Ok(copy[off as usize..off as usize + n].to_vec())
        };
        let elf = crate::detect::elf::parse(&copy[..64], len, &mut read_at).unwrap();
        let sig = elf.section(".sha256_sig").unwrap();
        for (i, b) in bytes[sig.offset as usize..(sig.offset + sig.size) as usize]
            .iter_mut()
            .enumerate()
        {
            *b = (i % 251) as u8 + 1;
        }
    }
    bytes
}

/// The runtime with update information.
fn with_update_info(info: &str) -> StubRuntime {
    StubRuntime {
        update_info: info.as_bytes().to_vec(),
        ..StubRuntime::type2()
    }
}

/// A type 2 AppImage named `name`: `rt` then the AppDir `nodes` made into
/// SquashFS with the `mksquashfs` options `opts`.
fn type2<P: AsRef<str>>(name: &str, rt: Vec<u8>, nodes: &[(P, Node)], opts: &[&str]) -> PathBuf {
    cached(name, |out| {
        let src = TempDir::new("appdir");
        let appdir = src.path().join("AppDir");
        tree::write(&appdir, nodes);
        let payload = src.path().join("payload.sqfs");
        mksquashfs(&appdir, &payload, opts);
        let mut bytes = rt;
        bytes.extend_from_slice(&fs::read(&payload).unwrap());
        fs::write(out, bytes).unwrap();
    })
}

/// An AppRun script that starts `bin`.
fn apprun(bin: &str) -> Node {
    let script = format!(
        "#!/bin/sh\nHERE=\"$(dirname \"$(readlink -f \"$0\")\")\"\nexec \"$HERE/usr/bin/{bin}\" \"$@\"\n"
    );
    Node::File(script.into_bytes(), 0o755)
}

/// A program standing in for an app's binary: `len` bytes of text.
fn binary(len: usize, seed: u64) -> Node {
    let mut data = b"#!/bin/sh\necho \"$@\"\nexit 0\n".to_vec();
    data.extend(text(len, seed));
    Node::File(data, 0o755)
}

/// Which Echo: the desktop entry's extra line, and whether `echo.desktop`
/// at the root is a symlink into `usr/share/applications`.
fn echo_app(name: &str, rt: Vec<u8>, extra: &str, linked: bool) -> PathBuf {
    let entry = format!(
        "[Desktop Entry]\nVersion=1.0\nType=Application\nName=Echo\nComment=Just echo.\n\
         Exec=echo %F\nIcon=utilities-terminal\n{extra}"
    );
    let desktop = if linked {
        Node::Link("usr/share/applications/echo.desktop".into())
    } else {
        Node::File(entry.clone().into_bytes(), 0o644)
    };
    type2(
        name,
        rt,
        &[
            (".DirIcon", Node::Link("utilities-terminal.svg".into())),
            ("AppRun", apprun("echo")),
            ("echo.desktop", desktop),
            ("usr", Node::Dir(0o700)),
            ("usr/bin", Node::Dir(0o700)),
            ("usr/bin/echo", binary(31_000, 1)),
            (
                "usr/share/applications/echo.desktop",
                Node::File(entry.into_bytes(), 0o644),
            ),
            ("utilities-terminal.svg", Node::File(svg(13_230), 0o644)),
        ],
        &["-comp", "gzip"],
    )
}

/// `Echo-x86_64.AppImage`: gzip; `echo.desktop` links into
/// `usr/share/applications`, the icon is an SVG at the root and `.DirIcon`
/// links to it; `usr` is mode 700.
pub fn echo() -> PathBuf {
    echo_app(
        "Echo-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        "",
        true,
    )
}

/// `Echo-test1234-x86_64.AppImage`: Echo with `X-AppImage-Version=test1234`
/// (its entry a plain file).
pub fn echo_versioned() -> PathBuf {
    echo_app(
        "Echo-test1234-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        "X-AppImage-Version=test1234\n",
        false,
    )
}

/// `Echo-no-integrate-x86_64.AppImage`: Echo with
/// `X-AppImage-Integrate=false`.
pub fn echo_no_integrate() -> PathBuf {
    echo_app(
        "Echo-no-integrate-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        "X-AppImage-Integrate=false\n",
        true,
    )
}

/// `Echo-x86_64-no_display.AppImage`: Echo with `NoDisplay=true`.
pub fn echo_no_display() -> PathBuf {
    echo_app(
        "Echo-x86_64-no_display.AppImage",
        StubRuntime::type2().bytes(),
        "NoDisplay=true\n",
        false,
    )
}

/// `Echo-i386.AppImage`: Echo behind a 32-bit i386 runtime.
pub fn echo_elf32() -> PathBuf {
    echo_app(
        "Echo-i386.AppImage",
        StubRuntime::type2_elf32().bytes(),
        "",
        true,
    )
}

/// `broken-desktop-file-x86_64.AppImage`: a valid image whose entry has
/// `_Type` and `_Exec` instead of `Type` and `Exec`; a PNG icon.
pub fn broken_desktop() -> PathBuf {
    let entry = "[Desktop Entry]\nVersion=1.0\n_Type=Application\nName=Echo\nName[de]=Echo DE\n\
                 Comment=Just echo.\n_Exec=echo %F\nIcon=utilities-terminal\nX-AppImage-Version=1234\n";
    type2(
        "broken-desktop-file-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        &[
            (".DirIcon", Node::Link("utilities-terminal.png".into())),
            ("AppRun", apprun("echo")),
            ("echo.desktop", Node::File(entry.as_bytes().to_vec(), 0o664)),
            ("usr/bin/echo", binary(35_000, 2)),
            ("utilities-terminal.png", Node::File(png(32, 621), 0o664)),
        ],
        &["-comp", "gzip"],
    )
}

/// `Daemon-x86_64.AppImage`: a background tool hidden from the menu
/// (`NoDisplay=true`), signed, with update information
/// ([`DAEMON_UPDATE_INFO`]).
pub fn daemon() -> PathBuf {
    let entry = "[Desktop Entry]\nType=Application\nName=Daemon\nExec=daemon\n\
                 Comment=Optional daemon\nIcon=daemon\nCategories=Development;\nTerminal=false\n\
                 NoDisplay=true\n";
    type2(
        "Daemon-x86_64.AppImage",
        runtime(&with_update_info(DAEMON_UPDATE_INFO), true),
        &[
            (".DirIcon", Node::Link("daemon.svg".into())),
            ("AppRun", apprun("daemon")),
            (
                "daemon.desktop",
                Node::File(entry.as_bytes().to_vec(), 0o644),
            ),
            ("daemon.svg", Node::File(svg(21_585), 0o644)),
            ("usr/bin/daemon", binary(120_000, 3)),
            ("usr/bin/validate", binary(11_016, 4)),
            ("usr/lib", Node::Dir(0o755)),
            (
                "usr/share/metainfo/daemon.appdata.xml",
                Node::File(text(1163, 5), 0o644),
            ),
        ],
        &["-comp", "gzip"],
    )
}

/// `notype__tool`: no `.AppImage` extension, and an entry without `Type`.
pub fn no_type() -> PathBuf {
    let entry = "[Desktop Entry]\nName=notype\nExec=notype\nComment=Tool\nIcon=notype\n\
                 Categories=Development;\nTerminal=true\n";
    type2(
        "notype__tool",
        StubRuntime::type2().bytes(),
        &[
            (".DirIcon", Node::Link("notype.svg".into())),
            ("AppRun", apprun("notype")),
            (
                "notype.desktop",
                Node::File(entry.as_bytes().to_vec(), 0o644),
            ),
            ("notype.svg", Node::File(svg(4_000), 0o644)),
            ("usr/bin/notype", binary(225_376, 6)),
            ("usr/bin/mksquashfs", binary(86_840, 7)),
        ],
        &["-comp", "gzip"],
    )
}

/// Languages of [`scribble`]'s translations.
const LOCALES: &[&str] = &[
    "bg", "br", "ca", "cs", "da", "de", "el", "es", "et", "eu", "fi", "fr", "gl", "hu", "it", "ja",
    "ko", "lt", "nl", "pl", "pt", "pt_BR", "ru", "sk", "sv", "ta", "tr", "uk", "vi", "zh_CN",
];

/// The source tree of [`scribble`], written at `root`.
fn write_scribble(root: &Path) {
    let entry =
        "[Desktop Entry]\nName=Scribble\nName[de]=Scribble DE\nComment=Simple text editor\n\
                 Keywords=editor;\nExec=scribble.wrapper %f\nIcon=scribble\nTerminal=false\n\
                 Type=Application\nMimeType=text/plain;\nCategories=GTK;Utility;TextEditor;\n";
    let mut nodes: Vec<(String, Node)> = vec![
        (".DirIcon".into(), Node::Link("scribble.png".into())),
        ("AppRun".into(), apprun("scribble.wrapper")),
        (
            "scribble.desktop".into(),
            Node::File(entry.as_bytes().to_vec(), 0o644),
        ),
        ("scribble.png".into(), Node::File(png(48, 1574), 0o644)),
        ("usr/bin/scribble".into(), binary(102_200, 8)),
        ("usr/bin/scribble.wrapper".into(), binary(8_603, 9)),
        ("usr/lib".into(), Node::Dir(0o775)),
        (
            "usr/share/applications/scribble.desktop".into(),
            Node::File(entry.as_bytes().to_vec(), 0o644),
        ),
        (
            "usr/share/doc/scribble/README".into(),
            Node::File(text(2180, 10), 0o644),
        ),
        (
            "usr/share/doc/scribble/copyright".into(),
            Node::File(text(2635, 11), 0o644),
        ),
        (
            "usr/share/icons/hicolor/scalable/apps/scribble.svg".into(),
            Node::File(svg(29_156), 0o644),
        ),
        (
            "usr/share/pixmaps/scribble.png".into(),
            Node::File(png(48, 1574), 0o644),
        ),
        (
            "usr/share/pixmaps/scribble.xpm".into(),
            Node::File(
                b"/* XPM */\nstatic char *x[] = {\n\"48 48 2 1\",\n};\n".to_vec(),
                0o644,
            ),
        ),
    ];
    for (side, len) in [(16, 741), (22, 1283), (24, 1294), (32, 2365)] {
        nodes.push((
            format!("usr/share/icons/hicolor/{side}x{side}/apps/scribble.png"),
            Node::File(png(side, len), 0o644),
        ));
    }
    for side in [48, 64, 128, 256, 512] {
        nodes.push((
            format!("usr/share/icons/hicolor/{side}x{side}/apps"),
            Node::Dir(0o775),
        ));
    }
    for (i, lang) in LOCALES.iter().enumerate() {
        nodes.push((
            format!("usr/share/locale/{lang}/LC_MESSAGES/scribble.mo"),
            Node::File(text(3000 + i * 97, 20 + i as u64), 0o644),
        ));
    }
    tree::write(root, &nodes);
}

/// `Scribble-1.0-x86_64.AppImage`: an editor with many files, icons in
/// four hicolor sizes, `scalable`, `usr/share/pixmaps` and the root,
/// `Exec=scribble.wrapper %f`; signed, with update information
/// ([`SCRIBBLE_UPDATE_INFO`]); gzip.
pub fn scribble() -> PathBuf {
    cached("Scribble-1.0-x86_64.AppImage", |out| {
        let src = TempDir::new("scribble");
        let appdir = src.path().join("AppDir");
        write_scribble(&appdir);
        let payload = src.path().join("payload.sqfs");
        mksquashfs(&appdir, &payload, &["-comp", "gzip"]);
        let mut bytes = runtime(&with_update_info(SCRIBBLE_UPDATE_INFO), true);
        bytes.extend_from_slice(&fs::read(&payload).unwrap());
        fs::write(out, bytes).unwrap();
    })
}

/// `hello-x86_64.AppImage`: zstd, a 256 × 256 PNG icon at the root.
pub fn hello() -> PathBuf {
    let entry =
        "[Desktop Entry]\nType=Application\nName=Hello World\nExec=hello-world\nIcon=hello-world\n\
         Categories=Utility;\n";
    type2(
        "hello-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        &[
            (".DirIcon", Node::Link("hello-world.png".into())),
            ("AppRun", apprun("hello-world")),
            (
                "hello-world.desktop",
                Node::File(entry.as_bytes().to_vec(), 0o664),
            ),
            ("hello-world.png", Node::File(png(256, 11_598), 0o664)),
            ("usr/bin/hello-world", binary(16_360, 12)),
        ],
        &["-comp", "zstd"],
    )
}

/// `Hello_World-x86_64.<comp>.AppImage`: the same AppDir in `gzip`, `xz`
/// (16 KiB blocks) or `zstd`; its icons are empty files, so none is used.
pub fn hello_world(comp: &str) -> PathBuf {
    let entry = "[Desktop Entry]\nName=Hello World\nIcon=helloworld\nExec=helloworld\n\
                 Type=Application\nCategories=Utility;\n";
    let block = if comp == "xz" { "16384" } else { "131072" };
    type2(
        &format!("Hello_World-x86_64.{comp}.AppImage"),
        StubRuntime::type2().bytes(),
        &[
            (".DirIcon", Node::Link("helloworld.svg".into())),
            ("AppRun", apprun("helloworld")),
            (
                "helloworld.desktop",
                Node::File(entry.as_bytes().to_vec(), 0o664),
            ),
            ("helloworld.svg", Node::File(Vec::new(), 0o664)),
            ("usr/bin", Node::Dir(0o755)),
            ("usr/lib", Node::Dir(0o755)),
            ("usr/share/applications/icons/scalable", Node::Dir(0o755)),
            ("usr/share/icons/hicolor/16x16/apps", Node::Dir(0o755)),
            ("usr/share/icons/hicolor/256x256/apps", Node::Dir(0o755)),
            (
                "usr/share/icons/hicolor/scalable/helloworld.svg",
                Node::File(Vec::new(), 0o664),
            ),
        ],
        &["-comp", comp, "-b", block],
    )
}

/// `tool-x86_64.AppImage`: several files of hundreds of KiB (many data
/// blocks each), an SVG icon at the root.
pub fn tool() -> PathBuf {
    let entry = "[Desktop Entry]\nType=Application\nName=tool\nExec=tool\n\
                 Comment=Tool to generate things\nIcon=tool\nCategories=Development;\nTerminal=true\n";
    type2(
        "tool-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        &[
            (".DirIcon", Node::Link("tool.svg".into())),
            ("AppRun", apprun("tool")),
            ("tool.desktop", Node::File(entry.as_bytes().to_vec(), 0o644)),
            ("tool.svg", Node::File(svg(21_585), 0o644)),
            ("usr/bin/tool", binary(320_128, 13)),
            ("usr/bin/validate", binary(42_296, 14)),
            ("usr/bin/file", binary(15_680, 15)),
            ("usr/bin/zsyncmake", binary(95_479, 16)),
            ("usr/lib/tool/mksquashfs", binary(390_071, 17)),
            (
                "usr/share/metainfo/tool.appdata.xml",
                Node::File(text(1249, 18), 0o644),
            ),
        ],
        &["-comp", "gzip"],
    )
}

/// A type 1 AppImage named `name` from the AppDir `nodes`: an ISO 9660
/// image with Rock Ridge, Joliet and zisofs (128 KiB blocks) whose system
/// area holds the stand-in runtime; with `magic` false its `AI\x01` is
/// zeroed.
fn type1<P: AsRef<str>>(name: &str, nodes: &[(P, Node)], magic: bool) -> PathBuf {
    cached(name, |out| {
        let src = TempDir::new("appdir1");
        let appdir = src.path().join("AppDir");
        tree::write(&appdir, nodes);
        let iso = src.path().join("payload.iso");
        run(Command::new("xorriso")
            .arg("-outdev")
            .arg(&iso)
            .args(["-padding", "0", "-volid", "AppImage", "-joliet", "on"])
            .args(["-zisofs", "level=6:block_size=128k"])
            .arg("-map")
            .arg(&appdir)
            .args(["/", "-set_filter_r", "--zisofs", "/", "--", "-commit"]));
        let mut bytes = fs::read(&iso).unwrap();
        let mut area = type1_system_area();
        if !magic {
            area[8..11].fill(0);
        }
        bytes[..area.len()].copy_from_slice(&area);
        fs::write(out, bytes).unwrap();
    })
}

/// The AppDir of [`extract`].
fn extract_tree() -> Vec<(&'static str, Node)> {
    let entry = "[Desktop Entry]\nName=Extract\nExec=extract\nIcon=Extract\nTerminal=true\n\
                 Type=Application\nCategories=Development;\nComment=Extract things\n\
                 StartupNotify=true\n";
    vec![
        (".DirIcon", Node::File(png(48, 4035), 0o775)),
        ("AppRun", binary(8_640, 30)),
        (
            "Extract.desktop",
            Node::File(entry.as_bytes().to_vec(), 0o775),
        ),
        ("Extract.png", Node::File(png(48, 4035), 0o775)),
        ("usr/bin/extract", binary(1_158, 31)),
        ("usr/bin/xorriso", binary(270_320, 32)),
        ("usr/lib/libburn.so.4", binary(223_472, 33)),
        ("usr/lib/libisoburn.so.1", binary(60_640, 34)),
    ]
}

/// `Extract-x86_64.AppImage`: type 1 with a 48 × 48 PNG icon at the root
/// and zisofs files bigger than one 128 KiB block.
pub fn extract() -> PathBuf {
    type1("Extract-x86_64.AppImage", &extract_tree(), true)
}

/// `Extract_no_magic_bytes-x86_64.AppImage`: [`extract`] with its magic
/// bytes zeroed, still a type 1 AppImage by its ELF and ISO 9660 image.
pub fn extract_no_magic() -> PathBuf {
    type1(
        "Extract_no_magic_bytes-x86_64.AppImage",
        &extract_tree(),
        false,
    )
}

/// `Assistant`: type 1 without `.AppImage` extension, with many entries at
/// the top and some in subfolders.
pub fn assistant() -> PathBuf {
    let entry = "[Desktop Entry]\nName=Assistant\nExec=Assistant\nIcon=Assistant\n\
                 Type=Application\n";
    let mut nodes: Vec<(String, Node)> = vec![
        (".DirIcon".into(), Node::Link("Assistant.png".into())),
        ("AppRun".into(), binary(2_000, 40)),
        ("Assistant".into(), binary(40_000, 41)),
        (
            "Assistant.desktop".into(),
            Node::File(entry.as_bytes().to_vec(), 0o644),
        ),
        ("Assistant.png".into(), Node::File(png(128, 9_000), 0o644)),
        ("runtime".into(), binary(90_000, 42)),
        ("xdg/open".into(), binary(3_000, 43)),
        (
            "usr/lib/python/dialogs.py".into(),
            Node::File(text(20_000, 44), 0o644),
        ),
    ];
    const NAMES: &[&str] = &[
        "checkglibc",
        "extract",
        "package",
        "testappimage",
        "portability.py",
        "xdgappdir.py",
        "warning.png",
        "default.png",
    ];
    for (i, n) in NAMES.iter().enumerate() {
        nodes.push((n.to_string(), binary(1_000 + i * 7_000, 50 + i as u64)));
    }
    for i in 0..30 {
        nodes.push((
            format!("usr/share/assistant/part{i:02}.txt"),
            Node::File(text(500 + i * 300, 60 + i as u64), 0o644),
        ));
    }
    type1("Assistant", &nodes, true)
}

/// `elffile`: a runtime with no magic bytes and nothing after it, a plain
/// ELF executable rather than an AppImage.
pub fn elf_only() -> PathBuf {
    cached("elffile", |out| {
        let rt = StubRuntime {
            magic: None,
            ..StubRuntime::type2()
        };
        fs::write(out, rt.bytes()).unwrap();
    })
}

/// How many files the folder `many/` of [`wide`] holds.
pub const WIDE_ENTRIES: usize = 20_000;

/// `Wide-x86_64.AppImage`: an AppRun and a folder `many/` of
/// [`WIDE_ENTRIES`] empty files, for listing in pages; gzip.
pub fn wide() -> PathBuf {
    let mut nodes = vec![
        ("AppRun".to_string(), apprun("wide")),
        ("many".to_string(), Node::Dir(0o755)),
    ];
    for i in 0..WIDE_ENTRIES {
        nodes.push((format!("many/file-{i:05}"), Node::File(Vec::new(), 0o644)));
    }
    type2(
        "Wide-x86_64.AppImage",
        StubRuntime::type2().bytes(),
        &nodes,
        &["-comp", "gzip"],
    )
}
