//! Input observed by a real X client: `xev` runs on the session's display and
//! logs what it receives to a file.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use plugin_api::Plugin;
use serde_json::json;

/// Starts a session running `xev` in a 400x300 window at the top left,
/// logging to `xev.log` in the session's directory (the sandboxed program's
/// working directory, and the only one it can write); returns the log's path.
fn xev_session(
    p: &plugin_api::testkit::Kit<agentflow_vm::VmPlugin>,
    id: &str,
) -> (agentflow_vm::VmSession, PathBuf) {
    let s = session(
        p,
        id,
        json!({
            "screen_size": [800, 600],
            "programs": ["exec xev -geometry 400x300+0+0 > xev.log"],
        }),
    );
    let log = s.dir().join("xev.log");
    // xev prints events as they come: wait for its window to be mapped.
    assert!(
        eventually(Duration::from_secs(20), || read(&log).contains("MapNotify")),
        "xev never mapped its window: {}",
        read(&log)
    );
    (s, log)
}

/// Positions of `needle` lines in the log, in order.
fn positions(log: &str, needle: &str) -> Vec<usize> {
    log.match_indices(needle).map(|(i, _)| i).collect()
}

/// The index of the first event block containing all of `parts`.
fn event_index(log: &str, parts: &[&str]) -> Option<usize> {
    let mut offset = 0;
    for block in log.split("\n\n") {
        if parts.iter().all(|p| block.contains(p)) {
            return Some(offset);
        }
        offset += block.len() + 2;
    }
    None
}

#[test]
fn xev_sees_hotkey_in_order_and_released_in_reverse() {
    let p = plugin();
    let (s, log) = xev_session(&p, "vm_w1_001_hotkey");
    // Keyboard focus follows the pointer (no window manager): point into xev's window.
    ok(&p, &s, "move", json!({"x": 200, "y": 150}));
    let r = ok(&p, &s, "hotkey", json!({"keys": ["ctrl", "alt", "t"]}));
    assert_eq!(r["keys"], json!(["ctrl", "alt", "t"]));
    let done = eventually(Duration::from_secs(10), || {
        event_index(&read(&log), &["KeyRelease", "Control_L"]).is_some()
    });
    let text = read(&log);
    assert!(done, "no KeyRelease of Control_L in xev's log:\n{text}");
    let press =
        |k: &str| event_index(&text, &["KeyPress", k]).unwrap_or_else(|| panic!("no KeyPress {k}"));
    let release = |k: &str| {
        event_index(&text, &["KeyRelease", k]).unwrap_or_else(|| panic!("no KeyRelease {k}"))
    };
    assert!(press("Control_L") < press("Alt_L") && press("Alt_L") < press("keysym 0x74, t"));
    assert!(
        release("keysym 0x74, t") < release("Alt_L") && release("Alt_L") < release("Control_L")
    );
    p.cleanup(&s).unwrap();
}

#[test]
fn xev_sees_scroll_clicks_and_drag() {
    let p = plugin();
    let (s, log) = xev_session(&p, "vm_w1_001_pointer");

    let r = ok(&p, &s, "scroll", json!({"x": 100, "y": 100, "clicks": 3}));
    assert_eq!(r, json!({"position": [100, 100], "clicks": 3}));
    ok(&p, &s, "scroll", json!({"x": 100, "y": 100, "clicks": -2}));
    assert!(eventually(Duration::from_secs(10), || positions(
        &read(&log),
        "button 5,"
    )
    .len()
        >= 4));
    let text = read(&log);
    // Each wheel click is a press and a release.
    assert_eq!(positions(&text, "button 4,").len(), 6, "{text}");
    assert_eq!(positions(&text, "button 5,").len(), 4, "{text}");

    let r = ok(
        &p,
        &s,
        "click",
        json!({"x": 50, "y": 60, "button": "middle"}),
    );
    assert_eq!(r, json!({"clicked": [50, 60], "button": "middle"}));
    ok(&p, &s, "double_click", json!({"x": 70, "y": 80}));
    let r = ok(&p, &s, "right_click", json!({}));
    assert_eq!(
        r["clicked"],
        json!([70, 80]),
        "right_click without a point clicks where the pointer is"
    );
    ok(
        &p,
        &s,
        "drag",
        json!({"start_x": 10, "start_y": 10, "end_x": 300, "end_y": 200}),
    );
    ok(&p, &s, "mouse_down", json!({"button": "right"}));
    ok(&p, &s, "mouse_up", json!({"button": "right"}));
    assert!(eventually(Duration::from_secs(10), || positions(
        &read(&log),
        "button 3,"
    )
    .len()
        >= 4));
    let text = read(&log);
    assert!(
        event_index(&text, &["ButtonPress", "(50,60)", "button 2,"]).is_some(),
        "{text}"
    );
    let presses = |at: &str, button: &str| {
        text.split("\n\n")
            .filter(|b| b.contains("ButtonPress") && b.contains(at) && b.contains(button))
            .count()
    };
    assert_eq!(
        presses("(70,80)", "button 1,"),
        2,
        "double click: two presses\n{text}"
    );
    assert_eq!(
        presses("(70,80)", "button 3,"),
        1,
        "right click at the pointer\n{text}"
    );
    assert_eq!(
        presses("(10,10)", "button 1,"),
        1,
        "drag presses at its start\n{text}"
    );
    assert_eq!(
        presses("(300,200)", "button 3,"),
        1,
        "mouse_down where the drag ended\n{text}"
    );
    // The drag released at its end point after moving there.
    assert!(
        event_index(&text, &["ButtonRelease", "(300,200)", "button 1,"]).is_some(),
        "{text}"
    );
    assert!(event_index(&text, &["MotionNotify", "(300,200)"]).is_some());
    p.cleanup(&s).unwrap();
}

#[test]
fn xev_sees_key_down_and_up_and_named_keys() {
    let p = plugin();
    let (s, log) = xev_session(&p, "vm_w1_001_keys");
    ok(&p, &s, "move", json!({"x": 200, "y": 150}));
    ok(&p, &s, "key_down", json!({"key": "shift"}));
    ok(&p, &s, "key", json!({"key": "F5"}));
    ok(&p, &s, "key_up", json!({"key": "shift"}));
    ok(&p, &s, "key", json!({"key": "pagedown"}));
    ok(&p, &s, "key", json!({"key": "esc"}));
    assert!(eventually(Duration::from_secs(10), || read(&log).contains("Escape")));
    let text = read(&log);
    let press = |k: &str| {
        event_index(&text, &["KeyPress", k]).unwrap_or_else(|| panic!("no KeyPress {k}:\n{text}"))
    };
    assert!(press("Shift_L") < press("F5"));
    assert!(event_index(&text, &["KeyRelease", "Shift_L"]).unwrap() > press("F5"));
    assert!(press("Next") > press("F5"));
    p.cleanup(&s).unwrap();
}
