//! Desktop entries from an image: parsing, the menu rewrite, writing it
//! back. Checks that what parses survives a write and re-parse unchanged,
//! and that a rewritten entry runs exactly the launcher (the image cannot
//! smuggle another program into the host's menu).
#![no_main]

use appimagefs::desktop::{entry, exec, icons, names, rewrite, version};
use libfuzzer_sys::fuzz_target;

const LAUNCHER: &str = "/opt/my apps/bin/it's \"$(x)\" `y` %f";

fuzz_target!(|data: &[u8]| {
    // Side inputs an image also controls: the desktop file's name and the
    // version string.
    let _ = icons::sniff(data.get(..4096).unwrap_or(data));
    let _ = names::base_name(Some(data.get(..64).unwrap_or(data)), b"Fuzz-x86_64");
    if let Ok(text) = std::str::from_utf8(data.get(..32).unwrap_or(data)) {
        let _ = version::compare_versions(text, "1.2.3-rc1");
        let _ = exec::tokenize(text);
    }
    let Ok(parsed) = entry::parse(data) else {
        return;
    };
    let bytes = parsed.to_bytes();
    let again = entry::parse(&bytes).expect("a parsed entry written back does not parse");
    assert_eq!(again, parsed, "write and re-parse changed the entry");
    let _ = rewrite::menu_exclusion(&parsed);
    for icon in [None, Some("appimagefs-fuzz")] {
        let Ok(menu) = rewrite::rewrite(&parsed, LAUNCHER, icon, "/src/a\nb.AppImage") else {
            continue;
        };
        let out = entry::parse(&menu.to_bytes()).expect("rewritten entry does not parse");
        for group in out.groups.iter() {
            if group.name != entry::MAIN_GROUP && !group.name.starts_with("Desktop Action ") {
                continue;
            }
            if let Some(execv) = group.string("Exec").expect("rewritten Exec unescapes") {
                let (program, _) = exec::split_program(&execv).expect("rewritten Exec splits");
                // Readers turn `%%` into `%` after splitting.
                assert_eq!(
                    program.replace("%%", "%"),
                    LAUNCHER,
                    "rewritten Exec runs something else"
                );
            }
            let localized_exec = group.lines.iter().any(
                |l| matches!(l, entry::Line::Entry { key, locale: Some(_), .. } if key == "Exec"),
            );
            assert!(!localized_exec, "a localized Exec survived the rewrite");
        }
    }
});
