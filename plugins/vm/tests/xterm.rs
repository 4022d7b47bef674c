//! A real terminal on the session's desktop: click into it, type commands,
//! and find their effects on disk and on screen.

mod common;

use std::time::Duration;

use common::*;
use plugin_api::Plugin;
use serde_json::json;

/// A session whose xterm runs bash in `work`, a directory the plugin makes
/// inside the session's directory (sandboxed programs see no other).
fn xterm_session(
    p: &plugin_api::testkit::Kit<agentflow_vm::VmPlugin>,
    id: &str,
) -> agentflow_vm::VmSession {
    let s = session(
        p,
        id,
        json!({
            "screen_size": [1024, 768],
            "programs": ["xterm -u8 -geometry 80x24+0+0 -e bash --norc --noprofile"],
            "cwd": "work",
            "env": {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
        }),
    );
    // The xterm window shows up in the window tree once it is mapped.
    let mapped = eventually(Duration::from_secs(20), || {
        let tree = ok(p, &s, "accessibility_tree", json!({}));
        window_geometry(
            tree["accessibility_tree"].as_str().unwrap_or(""),
            "class",
            "XTerm",
        )
        .is_some()
    });
    assert!(mapped, "xterm never appeared");
    // bash needs a moment after the window maps before it reads input; typing
    // earlier is still buffered by the terminal, so no wait is needed here.
    s
}

#[test]
fn typing_into_xterm_writes_a_file_and_changes_the_screen() {
    let p = plugin();
    let s = xterm_session(&p, "vm_w1_001_hello");
    let dir = s.dir().join("work");
    let tree = ok(&p, &s, "accessibility_tree", json!({}));
    let (x, y, w, h) = window_geometry(
        tree["accessibility_tree"].as_str().unwrap(),
        "class",
        "XTerm",
    )
    .unwrap();

    let before = ok(&p, &s, "screenshot", json!({}));
    let (bw, bh, before_px) = decode_screenshot(&before);
    assert_eq!((bw, bh), (1024, 768));

    let r = ok(&p, &s, "click", json!({"x": x + w / 2, "y": y + h / 2}));
    assert_eq!(r["button"], "left");
    let r = ok(&p, &s, "type", json!({"text": "echo hello > FILE"}));
    assert_eq!(r, json!({"typed": "echo hello > FILE", "length": 17}));
    ok(&p, &s, "key", json!({"key": "enter"}));

    let file = dir.join("FILE");
    assert!(
        eventually(Duration::from_secs(20), || read(&file) == "hello\n"),
        "FILE never contained hello: {:?}",
        read(&file)
    );
    let after = ok(&p, &s, "screenshot", json!({}));
    let (aw, ah, after_px) = decode_screenshot(&after);
    assert_eq!((aw, ah), (1024, 768));
    assert_ne!(before_px, after_px, "the typed command must be visible");
    p.cleanup(&s).unwrap();
}

#[test]
fn characters_missing_from_the_keymap_are_typed_through_spare_keycodes() {
    let p = plugin();
    let s = xterm_session(&p, "vm_w1_001_unicode");
    let dir = s.dir().join("work");
    ok(&p, &s, "click", json!({"x": 100, "y": 100}));
    // é is Latin-1 but not on a US keyboard; € and 中 are Unicode keysyms.
    let text = "echo 'é€中 aé€' > UNI\n";
    let r = ok(&p, &s, "type", json!({"text": text}));
    assert_eq!(r["length"], text.chars().count());
    let file = dir.join("UNI");
    assert!(
        eventually(Duration::from_secs(20), || read(&file) == "é€中 aé€\n"),
        "UNI holds {:?}",
        read(&file)
    );
    // The three borrowed keycodes are given back once idle, at the next keyboard action.
    let borrowed = || {
        s.with_desktop(&|| Ok(()), |d| Ok(d.borrowed_keycodes()))
            .unwrap()
    };
    assert_eq!(borrowed().0, 3);
    std::thread::sleep(agentflow_vm::SPARE_IDLE + Duration::from_millis(200));
    ok(&p, &s, "key", json!({"key": "shift"}));
    assert_eq!(borrowed().0, 0);
    // More distinct missing characters than there are spare keycodes (Xvfb's
    // keymap has about 19): keycodes are re-bound while typing.
    let many: String = (0x4e00..0x4e00 + 60).filter_map(char::from_u32).collect();
    ok(
        &p,
        &s,
        "type",
        json!({"text": format!("echo {many} > MANY\n")}),
    );
    let file = dir.join("MANY");
    assert!(
        eventually(Duration::from_secs(30), || read(&file)
            == format!("{many}\n")),
        "MANY holds {:?}",
        read(&file)
    );
    p.cleanup(&s).unwrap();
}

#[test]
fn a_hotkey_reaches_the_shell() {
    let p = plugin();
    let s = xterm_session(&p, "vm_w1_001_ctrlc");
    let dir = s.dir().join("work");
    ok(&p, &s, "click", json!({"x": 100, "y": 100}));
    // Ctrl+U erases the half-typed line, so only the second command runs.
    ok(&p, &s, "type", json!({"text": "echo wrong > HK"}));
    ok(&p, &s, "hotkey", json!({"keys": ["ctrl", "u"]}));
    ok(&p, &s, "type", json!({"text": "echo right > HK"}));
    ok(&p, &s, "key", json!({"key": "return"}));
    let file = dir.join("HK");
    assert!(
        eventually(Duration::from_secs(20), || read(&file) == "right\n"),
        "HK holds {:?}",
        read(&file)
    );
    p.cleanup(&s).unwrap();
}
