//! Snapshots and forks over the native API, on the fixture plugin (whose
//! sessions carry a list of notes): a snapshot starts any number of
//! independent sessions, a fork does it for many workers at once, snapshots
//! are listed, deleted and expire, and a plugin without snapshots says so
//! without leaving a half-made session.

use std::time::Duration;

use agentflow_e2e::{eventually, library, Server};
use serde_json::{json, Value};

fn notes(s: &Server, worker: &str, add: Option<&str>) -> Value {
    let params = match add {
        Some(t) => json!({ "text": t }),
        None => json!({}),
    };
    let (code, body) = s.execute(worker, "fixture:note", params);
    assert_eq!(code, 200, "{body}");
    body["data"]["notes"].clone()
}

fn create(s: &Server, body: Value) -> (u16, Value) {
    s.post("/session/create", body)
}

#[test]
fn a_snapshot_starts_independent_sessions_for_any_worker() {
    let s = Server::builder().plugin("fixture").start();
    create(&s, json!({"worker_id": "src", "resource_type": "fixture"}));
    notes(&s, "src", Some("set up"));
    let (code, body) = s.post(
        "/session/snapshot",
        json!({"worker_id": "src", "resource_type": "fixture", "name": "base"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["name"], "base");
    assert_eq!(body["data"]["report"]["notes"], 1);
    assert_eq!(body["data"]["pinned"], false);
    for w in ["a", "b", "c"] {
        let (code, body) = create(&s, json!({"worker_id": w, "from_snapshot": "base"}));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["data"]["from_snapshot"], "base");
        assert_eq!(body["data"]["resource_type"], "fixture");
    }
    // Each starts with the snapshot's state and goes its own way.
    notes(&s, "a", Some("only a"));
    notes(&s, "src", Some("only src"));
    assert_eq!(notes(&s, "a", None), json!(["set up", "only a"]));
    assert_eq!(notes(&s, "b", None), json!(["set up"]));
    assert_eq!(notes(&s, "src", None), json!(["set up", "only src"]));
    // A worker that already has a session must destroy it first.
    let (code, body) = create(&s, json!({"worker_id": "a", "from_snapshot": "base"}));
    assert_eq!((code, body["code"].as_u64()), (400, Some(1002)), "{body}");
    // Unknown snapshot, or one of another resource type.
    let (_, body) = create(&s, json!({"worker_id": "d", "from_snapshot": "nope"}));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no snapshot named 'nope'"),
        "{body}"
    );
    let (_, body) = create(
        &s,
        json!({"worker_id": "d", "resource_type": "other", "from_snapshot": "base"}),
    );
    assert_eq!(body["code"], 1002, "{body}");
    // A name in use is refused.
    let (_, body) = s.post(
        "/session/snapshot",
        json!({"worker_id": "a", "resource_type": "fixture", "name": "base"}),
    );
    assert!(
        body["message"].as_str().unwrap().contains("exists"),
        "{body}"
    );
}

#[test]
fn a_fork_gives_each_target_its_own_copy_in_one_call() {
    let s = Server::builder().plugin("fixture").start();
    create(&s, json!({"worker_id": "root", "resource_type": "fixture"}));
    notes(&s, "root", Some("prompt"));
    let targets: Vec<String> = (0..8).map(|i| format!("rollout-{i}")).collect();
    let (code, body) = s.post(
        "/session/fork",
        json!({"worker_id": "root", "resource_type": "fixture", "target_worker_ids": targets}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["created"], 8);
    let sessions = body["data"]["sessions"].as_array().unwrap();
    for (i, entry) in sessions.iter().enumerate() {
        assert_eq!(entry["worker_id"], targets[i].as_str());
        assert!(entry["session_id"].as_str().is_some(), "{entry}");
    }
    for (i, t) in targets.iter().enumerate() {
        notes(&s, t, Some(&format!("step of {i}")));
    }
    assert_eq!(notes(&s, "rollout-3", None), json!(["prompt", "step of 3"]));
    assert_eq!(notes(&s, "root", None), json!(["prompt"]));
    // The fork's snapshot is listed; a second fork into taken workers fails
    // for those only, and says so.
    let (_, listed) = s.get("/snapshot/list");
    assert_eq!(listed["data"]["count"], 1, "{listed}");
    let (code, body) = s.post(
        "/session/fork",
        json!({"worker_id": "root", "resource_type": "fixture", "target_worker_ids": ["rollout-0", "fresh"]}),
    );
    assert_eq!((code, body["code"].as_u64()), (400, Some(1002)), "{body}");
    assert_eq!(body["message"], "1 of 2 forks failed");
    assert_eq!(body["data"]["created"], 1);
    assert_eq!(notes(&s, "fresh", None), json!(["prompt"]));
}

#[test]
fn snapshots_are_listed_deleted_and_expire_unless_pinned() {
    let s = Server::builder()
        .plugin("fixture")
        .server("snapshot_ttl = 1")
        .server("session_ttl = 1")
        .start();
    create(&s, json!({"worker_id": "w", "resource_type": "fixture"}));
    for (name, pinned) in [("short", false), ("kept", true), ("gone", true)] {
        let (code, body) = s.post(
            "/session/snapshot",
            json!({"worker_id": "w", "resource_type": "fixture", "name": name, "pinned": pinned}),
        );
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = s.post("/snapshot/delete", json!({"name": "gone"}));
    assert_eq!(code, 200, "{body}");
    let (_, body) = s.post("/snapshot/delete", json!({"name": "gone"}));
    assert_eq!(body["code"], 1002);
    let names = |s: &Server| -> Vec<String> {
        let (_, listed) = s.get("/snapshot/list");
        listed["data"]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(10), || names(&s) == ["kept"]),
        "{:?}",
        names(&s)
    );
    // A pinned snapshot outlives its source session.
    let (code, body) = create(&s, json!({"worker_id": "later", "from_snapshot": "kept"}));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn a_plugin_without_snapshots_says_so_and_makes_nothing() {
    // Version 2 of the fixture declares no snapshots.
    let s = Server::builder()
        .file(library("agentflow_fixture_v2"), "libagentflow_fixture.so")
        .start();
    create(&s, json!({"worker_id": "w", "resource_type": "fixture"}));
    let (code, body) = s.post(
        "/session/snapshot",
        json!({"worker_id": "w", "resource_type": "fixture", "name": "x"}),
    );
    assert_eq!((code, body["code"].as_u64()), (501, Some(1002)), "{body}");
    assert_eq!(body["meta"]["error_type"], "NotSupportedError");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not supported by the plugin 'fixture'"),
        "{body}"
    );
    let (code, body) = s.post(
        "/session/fork",
        json!({"worker_id": "w", "resource_type": "fixture", "target_worker_ids": ["t1"]}),
    );
    assert_eq!(code, 501, "{body}");
    let (_, listed) = s.post("/session/list", json!({"worker_id": "t1"}));
    assert_eq!(listed["data"]["count"], 0);
    let (_, listed) = s.get("/snapshot/list");
    assert_eq!(listed["data"]["count"], 0);
    // Without a session of it too: the answer is about the plugin.
    let (code, body) = s.post(
        "/session/snapshot",
        json!({"worker_id": "nobody", "resource_type": "fixture", "name": "y"}),
    );
    assert_eq!(code, 501, "{body}");
}
