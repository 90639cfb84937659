//! Tests of the desktop integration on hand-written entries and trees:
//! valid, broken in every way the parser must notice, and hostile.

use std::path::Path;

use super::entry::{self, parse, Line, MAX_BYTES, MAX_LINES};
use super::testtree::MemTree;
use super::*;

/// Runs `desktop-file-validate` on `contents` saved as `file_name`; panics
/// with its output when it reports an error (warnings and hints are fine).
pub(crate) fn assert_validates(file_name: &str, contents: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "appimagefs-validate-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file_name);
    std::fs::write(&path, contents).unwrap();
    let out = std::process::Command::new("desktop-file-validate")
        .arg(&path)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect(
        "desktop-file-validate is needed (Debian package desktop-file-utils, see scripts/setup.sh)",
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("error:"),
        "desktop-file-validate rejects {file_name}:\n{text}\n--- contents:\n{}",
        String::from_utf8_lossy(contents)
    );
}

const LEAFPAD_LIKE: &str = "\
# A comment before the group
[Desktop Entry]
Name=Leafpad
Name[de]=Leafpad DE
Comment=Simple text editor
Comment[pt_BR]=Editor de texto simples
# translators: keep short
Exec=leafpad.wrapper %f
TryExec=leafpad.wrapper
Icon=leafpad
Icon[de]=leafpad-de
Terminal=false
Type=Application
MimeType=text/plain;
Categories=GTK;Utility;TextEditor;
Actions=new-window;
X-AppImage-Version=0.8.18.1

[Desktop Action new-window]
Name=New Window
Exec=\"/usr/bin/leaf pad\" --new-window %U
Icon=document-new
";

fn rewrite_with(text: &str, launcher: &str, icon: Option<&str>) -> Result<String, String> {
    let e = parse(text.as_bytes())?;
    let r = rewrite::rewrite(&e, launcher, icon, "/srv/apps/Leafpad.AppImage")?;
    Ok(String::from_utf8(r.to_bytes()).unwrap())
}

#[test]
fn parses_groups_keys_comments_and_locales_in_order() {
    let e = parse(LEAFPAD_LIKE.as_bytes()).unwrap();
    assert_eq!(e.preamble, vec!["# A comment before the group"]);
    assert_eq!(e.groups.len(), 2);
    let main = e.main().unwrap();
    assert_eq!(main.raw("Name"), Some("Leafpad"));
    assert_eq!(main.raw_localized("Name", Some("de")), Some("Leafpad DE"));
    assert_eq!(
        main.raw_localized("Comment", Some("pt_BR")),
        Some("Editor de texto simples")
    );
    assert!(matches!(&main.lines[4], Line::Comment(c) if c == "# translators: keep short"));
    assert_eq!(e.groups[1].name, "Desktop Action new-window");
    // Written back unchanged.
    assert_eq!(e.to_bytes(), LEAFPAD_LIKE.as_bytes());
}

#[test]
fn accepts_crlf_bom_blanks_around_equals_and_exact_limits() {
    let crlf = "\u{feff}[Desktop Entry]\r\nType = Application\r\nName\t=  Spaced\r\nExec=a\r\n";
    let e = parse(crlf.as_bytes()).unwrap();
    assert_eq!(e.main().unwrap().raw("Name"), Some("Spaced"));
    assert_eq!(
        e.to_bytes(),
        b"[Desktop Entry]\nType=Application\nName=Spaced\nExec=a\n"
    );

    let mut max_lines = String::from("[Desktop Entry]\nType=Application\nName=A\nExec=a\n");
    while max_lines.lines().count() < MAX_LINES {
        max_lines.push_str("#\n");
    }
    assert!(parse(max_lines.as_bytes()).is_ok());
    max_lines.push_str("#\n");
    assert!(parse(max_lines.as_bytes()).unwrap_err().contains("lines"));

    let head = "[Desktop Entry]\nType=Application\nName=A\nExec=a\nComment=";
    let mut big = head.to_string() + &"x".repeat(MAX_BYTES - head.len() - 1) + "\n";
    assert_eq!(big.len(), MAX_BYTES);
    assert!(parse(big.as_bytes()).is_ok());
    big.push('\n');
    assert!(parse(big.as_bytes()).unwrap_err().contains("bytes"));
}

#[test]
fn decodes_escapes() {
    let e = parse(b"[Desktop Entry]\nType=Application\nName=\\sa\\tb\\nc\\\\d\\re\nExec=a\nKeywords=x\\;y;z;\n").unwrap();
    let main = e.main().unwrap();
    assert_eq!(main.string("Name").unwrap().unwrap(), " a\tb\nc\\d\re");
    assert_eq!(main.string("Keywords").unwrap().unwrap(), "x\\;y;z;");
    for s in [" a\tb\nc\\d\re", "plain", "", "\\s"] {
        assert_eq!(entry::unescape(&entry::escape(s)).unwrap(), s);
    }
}

#[test]
fn broken_entries_are_reasons_not_panics() {
    let ok_tail = "Type=Application\nName=A\nExec=a\n";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "no [Desktop Entry]"),
        (b"# only a comment\n\n".to_vec(), "no [Desktop Entry]"),
        (
            format!("[Other]\nx=1\n[Desktop Entry]\n{ok_tail}").into_bytes(),
            "first group",
        ),
        (
            format!("Type=Application\n[Desktop Entry]\n{ok_tail}").into_bytes(),
            "before the first group",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}[Desktop Entry]\n").into_bytes(),
            "twice",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}[X-A]\n[X-A]\n").into_bytes(),
            "twice",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Name=B\n").into_bytes(),
            "key Name appears twice",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Name[de]=B\nName[de]=C\n").into_bytes(),
            "Name[de] appears twice",
        ),
        (
            b"[Desktop Entry]\nName=A\nExec=a\n".to_vec(),
            "Type is missing",
        ),
        (
            b"[Desktop Entry]\nType=Application\nExec=a\n".to_vec(),
            "Name is missing",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=  \nExec=a\n".to_vec(),
            "Name is empty",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=A\n".to_vec(),
            "Exec is missing",
        ),
        (
            b"[Desktop Entry]\nType=Link\nName=A\n".to_vec(),
            "URL is missing",
        ),
        (
            b"[Desktop Entry]\n_Type=Application\nName=A\nExec=a\n".to_vec(),
            "invalid key name",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Na me=x\n").into_bytes(),
            "invalid key name",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Name[]=x\n").into_bytes(),
            "locale",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Name[de=x\n").into_bytes(),
            "locale",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Name[d e]=x\n").into_bytes(),
            "locale",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}just text\n").into_bytes(),
            "neither",
        ),
        (
            [
                format!("[Desktop Entry]\n{ok_tail}Comment=caf").as_bytes(),
                b"\xe9\n",
            ]
            .concat(),
            "not UTF-8",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Comment=a\0b\n").into_bytes(),
            "control character",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Comment=a\rb\n").into_bytes(),
            "control character",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}Comment=a\x1b[31m\n").into_bytes(),
            "control character",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=A\\q\nExec=a\n".to_vec(),
            "invalid escape",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=A\\\nExec=a\n".to_vec(),
            "lone backslash",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=A\nExec=\"a b\n".to_vec(),
            "unterminated",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=A\nExec=a %x\n".to_vec(),
            "field code",
        ),
        (
            b"[Desktop Entry]\nType=Application\nName=A\nExec=\n".to_vec(),
            "empty command line",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}[Desktop Action x]\nName=X\nExec='oops\n")
                .into_bytes(),
            "[Desktop Action x] Exec",
        ),
        (
            format!("[Desktop Entry] junk\n{ok_tail}").into_bytes(),
            "text after",
        ),
        (
            format!("[Desktop Entry\n{ok_tail}").into_bytes(),
            "closing ]",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}[]\n").into_bytes(),
            "empty group",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}[Gr\u{fc}ppe]\n").into_bytes(),
            "group name",
        ),
        (
            format!("[Desktop Entry]\n{ok_tail}[a[b]\n").into_bytes(),
            "group name",
        ),
        (vec![b'#'; MAX_BYTES + 1], "bytes"),
        ("\n".repeat(MAX_LINES + 1).into_bytes(), "lines"),
    ];
    for (bytes, expected) in cases {
        match parse(&bytes) {
            Ok(_) => panic!("accepted: {:?}", String::from_utf8_lossy(&bytes)),
            Err(reason) => assert!(
                reason.contains(expected),
                "{:?}: reason {reason:?} lacks {expected:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

#[test]
fn parser_survives_every_prefix_and_byte_flip() {
    let text = LEAFPAD_LIKE.as_bytes();
    for cut in 0..text.len() {
        let _ = parse(&text[..cut]);
    }
    for i in 0..text.len() {
        for b in [0u8, b'\n', b'[', b']', b'=', b'\\', b'"', b'%', 0xff] {
            let mut t = text.to_vec();
            t[i] = b;
            if let Ok(e) = parse(&t) {
                // Whatever parses must rewrite or give a reason, not panic.
                let _ = rewrite::rewrite(&e, "/opt/apps/bin/x", Some("appimagefs-x"), "/x");
            }
        }
    }
}

#[test]
fn rewrites_exec_tryexec_actions_and_icon() {
    let out = rewrite_with(
        LEAFPAD_LIKE,
        "/opt/apps/bin/leafpad",
        Some("appimagefs-leafpad"),
    )
    .unwrap();
    let e = parse(out.as_bytes()).unwrap();
    let main = e.main().unwrap();
    assert_eq!(main.raw("Exec"), Some("/opt/apps/bin/leafpad %f"));
    assert_eq!(main.raw("TryExec"), Some("/opt/apps/bin/leafpad"));
    assert_eq!(main.raw("Icon"), Some("appimagefs-leafpad"));
    assert_eq!(
        main.raw_localized("Icon", Some("de")),
        None,
        "localized icons point at missing names"
    );
    assert_eq!(main.raw("X-AppImage-Version"), Some("0.8.18.1"));
    assert_eq!(main.raw("X-AppImage-Name"), Some("Leafpad"));
    assert_eq!(main.raw_localized("Name", Some("de")), Some("Leafpad DE"));
    assert_eq!(
        e.groups[1].raw("Exec"),
        Some("/opt/apps/bin/leafpad --new-window %U")
    );
    assert_eq!(e.groups[1].raw("Icon"), Some("document-new"));
    assert!(out.starts_with(
        "# Menu entry made by appimagefs for /srv/apps/Leafpad.AppImage\n# A comment"
    ));
    assert!(out.contains("# translators: keep short\n"));
    assert_validates("appimagefs-leafpad.desktop", out.as_bytes());
}

#[test]
fn drops_icon_without_icons_and_adds_no_tryexec() {
    let text = "[Desktop Entry]\nType=Application\nName=Echo\nExec=echo %F\nIcon=utilities-terminal\nDBusActivatable=true\nX-AppImage-Name=Custom\n";
    let out = rewrite_with(text, "/opt/apps/bin/echo", None).unwrap();
    assert_eq!(
        out,
        "# Menu entry made by appimagefs for /srv/apps/Leafpad.AppImage\n[Desktop Entry]\nType=Application\nName=Echo\n\
Exec=/opt/apps/bin/echo %F\nX-AppImage-Name=Custom\n"
    );
    assert_validates("appimagefs-echo.desktop", out.as_bytes());
}

#[test]
fn the_source_comment_stays_one_line() {
    let e = parse(ENTRY).unwrap();
    let r = rewrite::rewrite(&e, "/opt/apps/bin/t", None, "/s/a\nName=evil\r\u{1b}").unwrap();
    let text = String::from_utf8(r.to_bytes()).unwrap();
    assert!(
        text.starts_with("# Menu entry made by appimagefs for /s/a?Name=evil??\n[Desktop Entry]\n")
    );
    assert_eq!(r.main().unwrap().raw("Name"), Some("Tool"));
}

#[test]
fn quotes_a_launcher_path_that_needs_it() {
    let text = "[Desktop Entry]\nType=Application\nName=A\nExec='/usr/bin/a b' --x \"y z\" %u\nTryExec=a\n";
    for mountpoint in [
        "/opt/my apps",
        "/opt/it's \"q\"",
        "/opt/$(touch pwned)",
        "/opt/`id`",
        "/opt/100%",
        "/opt/back\\slash",
        "/opt/ünï",
    ] {
        let launcher = format!("{mountpoint}/bin/a");
        let out = rewrite_with(text, &launcher, Some("appimagefs-a")).unwrap();
        let e = parse(out.as_bytes()).unwrap();
        let exec_value = e.main().unwrap().string("Exec").unwrap().unwrap();
        let args: Vec<String> = exec::tokenize(&exec_value)
            .unwrap()
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        let program = launcher.replace('%', "%%");
        assert_eq!(
            args,
            vec![program.as_str(), "--x", "y z", "%u"],
            "{mountpoint}: {exec_value}"
        );
        assert_eq!(
            e.main().unwrap().string("TryExec").unwrap().unwrap(),
            launcher
        );
        assert_validates("appimagefs-a.desktop", out.as_bytes());
    }
    assert!(rewrite_with(text, "/opt/new\nline/bin/a", None)
        .unwrap_err()
        .contains("control character"));
}

#[test]
fn hostile_values_are_kept_as_data_and_still_validate() {
    let long = "x".repeat(60_000);
    let text = format!(
        "[Desktop Entry]\nType=Application\nName=$(touch pwned) `id` \"q\" 'q'\nName[de]=multi\\nline\\svalue\n\
Comment={long}\nExec=prog --arg=\"\\\\$(not run)\" \"a \\\\\"b\\\\\"\" %F\nX-AppImage-Version=1.0; rm -rf /\n"
    );
    let out = rewrite_with(&text, "/opt/apps/bin/prog", Some("appimagefs-prog")).unwrap();
    let e = parse(out.as_bytes()).unwrap();
    let main = e.main().unwrap();
    assert_eq!(main.raw("Name"), Some("$(touch pwned) `id` \"q\" 'q'"));
    assert_eq!(main.raw("X-AppImage-Name"), main.raw("Name"));
    assert_eq!(
        main.string("Name").unwrap(),
        Some("$(touch pwned) `id` \"q\" 'q'".into())
    );
    assert_eq!(
        main.raw("Exec"),
        Some("/opt/apps/bin/prog --arg=\"\\\\$(not run)\" \"a \\\\\"b\\\\\"\" %F")
    );
    assert_eq!(main.raw("Comment").map(str::len), Some(60_000));
    assert_validates("appimagefs-prog.desktop", out.as_bytes());
}

#[test]
fn spec_violating_exec_arguments_leave_the_app_out_of_the_menu() {
    for exec in ["h $(touch /tmp/x)", "h a;b", "h 'it s' %f", "h x\\\\y"] {
        let text = format!("[Desktop Entry]\nType=Application\nName=H\nExec={exec}\n");
        let err = rewrite_with(&text, "/opt/apps/bin/h", None).unwrap_err();
        assert!(err.contains("Exec"), "{exec}: {err}");
    }
}

#[test]
fn apps_that_opt_out_get_no_menu_entry() {
    let base = "[Desktop Entry]\nName=A\nExec=a\n";
    let cases = [
        (
            "Type=Application\nX-AppImage-Integrate=false\n",
            Some("X-AppImage-Integrate=false"),
        ),
        ("Type=Application\nNoDisplay=true\n", Some("NoDisplay=true")),
        ("Type=Application\nHidden=true\n", Some("Hidden=true")),
        ("Type=Link\nURL=https://example.org\n", Some("Type=Link")),
        ("Type=Directory\n", Some("Type=Directory")),
        (
            "Type=Application\nNoDisplay=false\nX-AppImage-Integrate=true\n",
            None,
        ),
    ];
    for (extra, expected) in cases {
        let e = parse(format!("{base}{extra}").as_bytes()).unwrap();
        let reason = rewrite::menu_exclusion(&e);
        match expected {
            Some(text) => assert!(
                reason.as_deref().is_some_and(|r| r.contains(text)),
                "{extra}: {reason:?}"
            ),
            None => assert_eq!(reason, None),
        }
    }
}

// ----- trees: paths, desktop file, icons, integrate -----

/// A 1x1-style PNG header claiming `w` x `h`.
pub(crate) fn png(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    b
}

const SVG: &[u8] = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n";
const ENTRY: &[u8] = b"[Desktop Entry]\nType=Application\nName=Tool\nExec=tool %F\nIcon=tool\nX-AppImage-Version=2.1\n";

#[test]
fn resolve_follows_links_inside_the_image_only() {
    let tree = MemTree::new()
        .file("usr/share/applications/a.desktop", b"x")
        .link("a.desktop", "usr/share/applications/a.desktop")
        .link("usr/lib", "share")
        .link("rel", "usr/lib/applications/../applications/./a.desktop")
        .link("abs", "/etc/passwd")
        .link("up", "../outside")
        .link("deep-up", "usr/../../x")
        .link("loop1", "loop2")
        .link("loop2", "loop1")
        .link("self", "self/x")
        .link("dangling", "nope")
        .file("plain", b"y");
    let path = |p: &str| {
        paths::resolve(&tree, p.as_bytes())
            .unwrap()
            .map(|r| String::from_utf8(r.path).unwrap())
    };
    assert_eq!(
        path("a.desktop").as_deref(),
        Some("usr/share/applications/a.desktop")
    );
    assert_eq!(
        path("rel").as_deref(),
        Some("usr/share/applications/a.desktop")
    );
    assert_eq!(
        path("usr/lib/applications").as_deref(),
        Some("usr/share/applications")
    );
    assert_eq!(path("./usr//share/../share").as_deref(), Some("usr/share"));
    assert_eq!(path("").as_deref(), Some(""));
    for gone in [
        "abs",
        "up",
        "deep-up",
        "loop1",
        "self",
        "dangling",
        "plain/x",
        "..",
        "usr/../..",
    ] {
        assert_eq!(path(gone), None, "{gone}");
    }
    // A chain of MAX_SYMLINKS links resolves; one more does not.
    let mut chain = MemTree::new().file("end", b"z");
    for i in 0..paths::MAX_SYMLINKS {
        let target = if i == 0 {
            "end".to_string()
        } else {
            format!("l{}", i - 1)
        };
        chain = chain.link(&format!("l{i}"), &target);
    }
    assert!(
        paths::resolve(&chain, format!("l{}", paths::MAX_SYMLINKS - 1).as_bytes())
            .unwrap()
            .is_some()
    );
    chain = chain.link("over", &format!("l{}", paths::MAX_SYMLINKS - 1));
    assert!(paths::resolve(&chain, b"over").unwrap().is_none());
}

#[test]
fn desktop_file_choice_prefers_the_apps_name() {
    let tree = MemTree::new()
        .file("aaa.desktop", b"first by name")
        .file("leafpad.desktop", b"leafpad")
        .file("leaf.desktop", b"leaf")
        .file("other.txt", b"no")
        .dir("dir.desktop");
    let pick = |folder: &[u8]| {
        locate::find_desktop_file(&tree, folder)
            .unwrap()
            .map(|f| f.bytes)
    };
    assert_eq!(pick(b"Leafpad-0.8.18.1-x86_64"), Some(b"leafpad".to_vec()));
    assert_eq!(pick(b"LEAF"), Some(b"leaf".to_vec()));
    assert_eq!(pick(b"Something"), Some(b"first by name".to_vec()));
    let why = |folder: &[u8]| {
        let f = locate::find_desktop_file(&tree, folder).unwrap().unwrap();
        (f.choice, f.others.len())
    };
    assert_eq!(why(b"leafpad"), (locate::Choice::SameAsFolder, 2));
    assert_eq!(why(b"Leafpad-0.8"), (locate::Choice::FolderStartsWith, 2));
    assert_eq!(why(b"x"), (locate::Choice::FirstByName, 2));
    let only = MemTree::new().file("x.desktop", b"x");
    let found = locate::find_desktop_file(&only, b"y").unwrap().unwrap();
    assert_eq!((found.choice, found.others), (locate::Choice::Only, vec![]));
    assert_eq!(
        locate::find_desktop_file(&MemTree::new().file("AppRun", b""), b"x").unwrap(),
        None
    );
    let dangling = MemTree::new().link("a.desktop", "usr/share/applications/a.desktop");
    assert!(locate::find_desktop_file(&dangling, b"a")
        .unwrap_err()
        .contains("dangling"));
    let huge = MemTree::new().file("a.desktop", &vec![b'#'; MAX_BYTES + 1]);
    assert!(locate::find_desktop_file(&huge, b"a")
        .unwrap_err()
        .contains("more than"));
}

#[test]
fn icons_from_hicolor_pixmaps_root_and_diricon() {
    let tree = MemTree::new()
        .file("tool.desktop", ENTRY)
        .file("usr/share/icons/hicolor/48x48/apps/tool.png", &png(48, 48))
        .file("usr/share/icons/hicolor/48x48/apps/tool.svg", SVG)
        .file(
            "usr/share/icons/hicolor/256x256@2/apps/tool.png",
            &png(512, 512),
        )
        .file("usr/share/icons/hicolor/scalable/apps/tool.svg", SVG)
        .file(
            "usr/share/icons/hicolor/symbolic/apps/tool-symbolic.svg",
            SVG,
        )
        .file("usr/share/icons/hicolor/16x16/apps/tool.png", b"")
        .file("usr/share/icons/hicolor/32x32/apps/other.png", &png(32, 32))
        .file("usr/share/icons/hicolor/../evil/apps/tool.png", &png(1, 1))
        .file(
            "usr/share/icons/hicolor/weird name/apps/tool.png",
            &png(1, 1),
        )
        .file(
            "usr/share/pixmaps/tool.xpm",
            b"/* XPM */\nstatic char *x[] = {\n\"100 90 2 1\",\n",
        )
        .file("tool.png", &png(48, 48))
        .file("tool.svgz", b"\x1f\x8b\x08rest")
        .link(".DirIcon", "tool.png");
    let icons = icons::find_icons(&tree, Some("tool"));
    let got: Vec<(String, String)> = icons
        .iter()
        .map(|i| {
            (
                i.output_path("appimagefs-tool"),
                String::from_utf8(i.path.clone()).unwrap(),
            )
        })
        .collect();
    let want = [
        (
            "hicolor/256x256@2/apps/appimagefs-tool.png",
            "usr/share/icons/hicolor/256x256@2/apps/tool.png",
        ),
        (
            "hicolor/48x48/apps/appimagefs-tool.png",
            "usr/share/icons/hicolor/48x48/apps/tool.png",
        ),
        (
            "hicolor/96x96/apps/appimagefs-tool.xpm",
            "usr/share/pixmaps/tool.xpm",
        ),
        (
            "hicolor/scalable/apps/appimagefs-tool.svg",
            "usr/share/icons/hicolor/scalable/apps/tool.svg",
        ),
        (
            "hicolor/symbolic/apps/appimagefs-tool-symbolic.svg",
            "usr/share/icons/hicolor/symbolic/apps/tool-symbolic.svg",
        ),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
    // `Icon=tool.png` names the same icon.
    assert_eq!(icons::find_icons(&tree, Some("tool.png")), icons);
}

#[test]
fn diricon_is_the_fallback_and_sized_from_its_bytes() {
    let cases: Vec<(MemTree, Option<&str>, Vec<&str>)> = vec![
        (
            MemTree::new()
                .file("a.png", &png(100, 60))
                .link(".DirIcon", "a.png"),
            None,
            vec!["hicolor/96x96/apps/i.png"],
        ),
        (
            MemTree::new().file(".DirIcon", &png(1024, 1024)),
            Some("/usr/share/icons/x.png"),
            vec!["hicolor/512x512/apps/i.png"],
        ),
        (
            MemTree::new().file(".DirIcon", &png(0, 5)),
            Some("x"),
            vec!["hicolor/256x256/apps/i.png"],
        ),
        (
            MemTree::new().file(".DirIcon", &png(20, 20)),
            Some(""),
            vec!["hicolor/22x22/apps/i.png"],
        ),
        (
            MemTree::new().file(".DirIcon", &png(40, 40)),
            Some(".."),
            vec!["hicolor/36x36/apps/i.png"],
        ),
        (
            MemTree::new().file(".DirIcon", SVG),
            None,
            vec!["hicolor/scalable/apps/i.svg"],
        ),
        (
            MemTree::new().file(".DirIcon", b"/* XPM */ no header"),
            None,
            vec!["hicolor/256x256/apps/i.xpm"],
        ),
        (MemTree::new().file(".DirIcon", b"GIF89a...."), None, vec![]),
        (MemTree::new().file(".DirIcon", b""), None, vec![]),
        (
            MemTree::new().link(".DirIcon", "/usr/share/pixmaps/x.png"),
            None,
            vec![],
        ),
        (MemTree::new().link(".DirIcon", ".DirIcon"), None, vec![]),
        (
            MemTree::new()
                .file("x.png", &png(16, 16))
                .file(".DirIcon", &png(256, 256)),
            Some("x"),
            vec!["hicolor/16x16/apps/i.png"],
        ),
    ];
    for (i, (tree, icon, want)) in cases.into_iter().enumerate() {
        let got: Vec<String> = icons::find_icons(&tree, icon)
            .iter()
            .map(|i| i.output_path("i"))
            .collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn sniffing_and_nearest_sizes() {
    assert_eq!(icons::sniff(&png(48, 32)), Some(("png", Some(48))));
    assert_eq!(icons::sniff(&png(48, 32)[..20]), Some(("png", None)));
    assert_eq!(icons::sniff(b"  \n<svg>"), Some(("svg", None)));
    assert_eq!(icons::sniff(b"<html>"), None);
    assert_eq!(icons::sniff(b""), None);
    assert_eq!(
        icons::sniff(b"/* XPM */\n{\"16 16 4 1\"}"),
        Some(("xpm", Some(16)))
    );
    for (side, want) in [
        (1, 16),
        (16, 16),
        (19, 22),
        (23, 24),
        (40, 36),
        (42, 48),
        (100, 96),
        (160, 192),
        (300, 256),
        (5000, 512),
    ] {
        assert_eq!(icons::nearest_standard_size(side), want, "{side}");
    }
}

#[test]
fn integrate_a_whole_app() {
    let tree = MemTree::new()
        .file("usr/share/applications/tool.desktop", ENTRY)
        .link("tool.desktop", "usr/share/applications/tool.desktop")
        .file("tool.png", &png(64, 64))
        .link(".DirIcon", "tool.png")
        .file("AppRun", b"#!/bin/sh\n");
    let it = integrate(
        &tree,
        b"Tool-2.1-x86_64",
        Path::new("/srv/Tool-2.1-x86_64.AppImage"),
        Path::new("/opt/apps"),
    );
    assert_eq!(it.launcher, "tool");
    assert_eq!(it.version.as_deref(), Some("2.1"));
    let menu = it.menu.unwrap();
    assert_eq!(menu.file_name, "appimagefs-tool.desktop");
    let text = String::from_utf8(menu.contents.clone()).unwrap();
    assert!(text.contains("\nExec=/opt/apps/bin/tool %F\n"), "{text}");
    assert!(text.contains("\nIcon=appimagefs-tool\n"), "{text}");
    assert_validates(&menu.file_name, &menu.contents);
    assert_eq!(
        it.icons,
        vec![IconFile {
            path: "hicolor/64x64/apps/appimagefs-tool.png".into(),
            source: b"tool.png".to_vec(),
            node: it.icons[0].node
        }]
    );
    let script = it.script.unwrap();
    let script = String::from_utf8(script).unwrap();
    assert!(script.contains("APPIMAGE='/srv/Tool-2.1-x86_64.AppImage'\n"));
    assert!(script.contains("APPDIR='/opt/apps/Tool-2.1-x86_64'\n"));

    // Under another (unique) name, everything follows the name.
    let facts = analyze(&tree, b"Tool-2.1-x86_64");
    let it = render(
        &facts,
        "tool-2",
        Path::new("/srv/x"),
        Path::new("/opt/apps"),
        b"Tool-2.1-x86_64",
        &launcher::Extras::default(),
    );
    let menu = it.menu.unwrap();
    assert_eq!(menu.file_name, "appimagefs-tool-2.desktop");
    assert!(String::from_utf8(menu.contents)
        .unwrap()
        .contains("Exec=/opt/apps/bin/tool-2 %F\n"));
    assert_eq!(it.icons[0].path, "hicolor/64x64/apps/appimagefs-tool-2.png");
    let bad = render(
        &facts,
        "../x",
        Path::new("/srv/x"),
        Path::new("/opt/apps"),
        b"Tool",
        &launcher::Extras::default(),
    );
    assert!(bad.menu.is_err() && bad.icons.is_empty());
}

#[test]
fn integration_failures_become_reasons() {
    let none = integrate(
        &MemTree::new().file("AppRun", b""),
        b"My App",
        Path::new("/s/a"),
        Path::new("/opt/apps"),
    );
    assert_eq!(none.launcher, "my-app");
    assert!(none.menu.unwrap_err().contains("no .desktop file"));
    assert!(none.script.is_ok());
    assert!(none.icons.is_empty());

    let broken = MemTree::new()
        .file(
            "echo.desktop",
            b"[Desktop Entry]\n_Type=Application\nName=Echo\n",
        )
        .file("echo.png", &png(8, 8));
    let it = integrate(
        &broken,
        b"broken",
        Path::new("/s/b"),
        Path::new("/opt/apps"),
    );
    assert_eq!(it.launcher, "echo");
    let reason = it.menu.unwrap_err();
    assert!(
        reason.contains("broken desktop entry echo.desktop"),
        "{reason}"
    );
    assert!(it.icons.is_empty());

    let mut failing = MemTree::new().file("tool.desktop", ENTRY);
    failing.fail_reads = true;
    let it = integrate(&failing, b"tool", Path::new("/s/t"), Path::new("/opt/apps"));
    assert!(it.menu.unwrap_err().contains("injected read failure"));

    let hidden = MemTree::new().file("t.desktop", b"[Desktop Entry]\nType=Application\nName=T\nExec=t\nNoDisplay=true\nX-AppImage-Version=3\n");
    let it = integrate(&hidden, b"t", Path::new("/s/t"), Path::new("/opt/apps"));
    assert_eq!(
        it.version.as_deref(),
        Some("3"),
        "version is read even without a menu entry"
    );
    assert!(it.menu.unwrap_err().contains("NoDisplay"));

    let non_utf8_mount = integrate(
        &MemTree::new().file("tool.desktop", ENTRY),
        b"t",
        Path::new("/s/t"),
        Path::new(std::ffi::OsStr::from_bytes(b"/opt/\xff")),
    );
    assert!(non_utf8_mount.menu.unwrap_err().contains("not UTF-8"));
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn non_utf8_names_in_the_image() {
    let tree = MemTree::new()
        .file_b(b"Caf\xe9 App.desktop", ENTRY)
        .file_b(b"tool\xff.png", &png(16, 16));
    let it = integrate(
        &tree,
        b"x",
        Path::new(std::ffi::OsStr::from_bytes(b"/s/\xff")),
        Path::new("/opt/apps"),
    );
    assert_eq!(it.launcher, "caf-app");
    let menu = it.menu.unwrap();
    assert_eq!(menu.file_name, "appimagefs-caf-app.desktop");
    assert!(String::from_utf8(menu.contents.clone())
        .unwrap()
        .contains("for /s/\u{fffd}\n"));
    assert_validates(&menu.file_name, &menu.contents);
    // Icon=tool finds no `tool.png`; the non-UTF-8 name is not it.
    assert!(it.icons.is_empty());
    // An odd but valid Icon= value is looked up as is.
    let tree = MemTree::new()
        .file(
            "t.desktop",
            b"[Desktop Entry]\nType=Application\nName=T\nExec=t\nIcon=we ird$(x)\n",
        )
        .file("we ird$(x).svg", SVG);
    let it = integrate(&tree, b"t", Path::new("/s/t"), Path::new("/opt/apps"));
    assert_eq!(it.icons.len(), 1);
    assert_eq!(it.icons[0].path, "hicolor/scalable/apps/appimagefs-t.svg");
}
