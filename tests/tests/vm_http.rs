//! The real vm plugin over HTTP: a desktop per session on real Xvfb.

use std::time::Duration;

use agentflow_e2e::{eventually, png_size, processes_matching, Server};
use serde_json::json;

#[test]
fn a_session_is_a_desktop_of_its_screen_size_and_leaves_nothing_behind() {
    let s = Server::builder().plugin("vm").start();
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "vm", "config": {"screen_size": [800, 600], "programs": ["xterm"]}}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, shot) = s.execute("w", "vm:screenshot", json!({}));
    assert_eq!(code, 200, "{shot}");
    assert_eq!(
        (
            shot["data"]["width"].clone(),
            shot["data"]["height"].clone()
        ),
        (json!(800), json!(600))
    );
    assert_eq!(shot["data"]["format"], "png");
    assert_eq!(
        png_size(shot["data"]["image"].as_str().unwrap()),
        (800, 600)
    );

    let (code, body) = s.execute("w", "vm:click", json!({"x": 5000, "y": 10}));
    assert_eq!((code, body["code"].clone()), (400, json!(1002)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("5000"), "{body}");
    let (code, body) = s.execute("w", "vm:key", json!({"key": "nosuchkey"}));
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("nosuchkey"));

    let (_, tree) = s.execute("w", "vm:accessibility_tree", json!({}));
    assert!(
        eventually(Duration::from_secs(10), || {
            let (_, tree) = s.execute("w", "vm:accessibility_tree", json!({}));
            tree["data"]["accessibility_tree"]
                .as_str()
                .unwrap_or("")
                .contains("xterm")
        }),
        "{tree}"
    );

    let display_procs = || {
        processes_matching("Xvfb")
            .into_iter()
            .filter(|(_, c)| c.contains("800x600"))
            .count()
    };
    assert_eq!(display_procs(), 1);
    let (code, _) = s.post(
        "/session/destroy",
        json!({"worker_id": "w", "resource_type": "vm"}),
    );
    assert_eq!(code, 200);
    assert!(
        eventually(Duration::from_secs(10), || display_procs() == 0),
        "Xvfb survived its session"
    );
}

#[test]
fn two_workers_get_separate_displays() {
    let s = Server::builder().plugin("vm").start();
    for w in ["a", "b"] {
        let (code, body) = s.post(
            "/session/create",
            json!({"worker_id": w, "resource_type": "vm", "config": {"screen_size": [640, 480]}}),
        );
        assert_eq!(code, 200, "{body}");
    }
    let (_, a) = s.execute("a", "vm:screenshot", json!({}));
    let (_, b) = s.execute("b", "vm:screenshot", json!({}));
    assert_eq!(a["code"], 0);
    assert_eq!(b["code"], 0);
    assert_ne!(a["meta"]["session_id"], b["meta"]["session_id"]);
    let displays: Vec<String> = processes_matching("Xvfb")
        .into_iter()
        .filter(|(_, c)| c.contains("640x480"))
        .map(|(_, c)| c)
        .collect();
    assert_eq!(displays.len(), 2, "{displays:?}");
}
