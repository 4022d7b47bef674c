//! Injected faults: after each, the host answers the next request normally.

use std::time::Duration;

use agentflow_e2e::Server;
use serde_json::{json, Value};

fn echo_works(s: &Server) {
    let (code, body) = s.execute("after", "fixture:echo", json!({"text": "ok"}));
    assert_eq!(code, 200, "host not healthy after the fault: {body}");
}

fn sessions(s: &Server, worker: &str) -> Vec<Value> {
    s.post("/session/list", json!({"worker_id": worker})).1["data"]["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_failed_warmup_is_retried_by_a_later_warmup() {
    let s = Server::builder()
        .plugin("fixture")
        .toml("[plugins.fixture.config]\nfail_warmup_times = 1")
        .start();
    let (code, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!((code, body["code"].clone()), (503, json!(2003)), "{body}");
    let (code, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(code, 200, "{body}");
    echo_works(&s);
}

#[test]
fn a_panic_in_warmup_is_2003_and_the_host_survives() {
    let s = Server::builder()
        .plugin("fixture")
        .toml("[plugins.fixture.config]\npanic_warmup = true")
        .start();
    let (code, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(code, 503);
    assert!(
        body["data"]["backends"]["fixture"]["error"]
            .as_str()
            .unwrap()
            .contains("panicked in warmup"),
        "{body}"
    );
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn initialize_failing_or_panicking_leaves_no_session() {
    let s = Server::builder().plugin("fixture").start();
    for (key, needle) in [
        ("fail_init", "initialize failure"),
        ("panic_init", "panicked in initialize"),
    ] {
        let (code, body) = s.post(
            "/session/create",
            json!({"worker_id": "w", "resource_type": "fixture", "config": {key: true}}),
        );
        assert_eq!((code, body["code"].clone()), (502, json!(2001)), "{body}");
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
        assert!(sessions(&s, "w").is_empty());
    }
    echo_works(&s);
}

#[test]
fn cleanup_failing_or_panicking_is_logged_and_the_session_removed() {
    let s = Server::builder().plugin("fixture").start();
    for key in ["fail_cleanup", "panic_cleanup"] {
        s.post(
            "/session/create",
            json!({"worker_id": "w", "resource_type": "fixture", "config": {key: true}}),
        );
        let (code, body) = s.post(
            "/session/destroy",
            json!({"worker_id": "w", "resource_type": "fixture"}),
        );
        assert_eq!(code, 200, "{body}");
        assert!(sessions(&s, "w").is_empty());
    }
    let log = s.log();
    assert!(
        log.contains("cleanup failure on request") && log.contains("panicked in cleanup"),
        "{log}"
    );
    echo_works(&s);
}

#[test]
fn results_over_the_limit_are_refused_with_2001() {
    let s = Server::builder()
        .plugin("fixture")
        .server("max_result_bytes = 100000")
        .start();
    let (code, body) = s.execute("w", "fixture:big", json!({"bytes": 200000}));
    assert_eq!((code, body["code"].clone()), (502, json!(2001)), "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("max_result_bytes"));
    let (code, _) = s.execute("w", "fixture:big", json!({"bytes": 1000}));
    assert_eq!(code, 200);
}

#[test]
fn session_limits_answer_at_once_with_2004() {
    let s = Server::builder()
        .plugin("fixture")
        .server("max_sessions_per_worker = 1")
        .server("max_sessions = 2")
        .start();
    assert_eq!(
        s.post(
            "/session/create",
            json!({"worker_id": "a", "resource_type": "fixture"})
        )
        .0,
        200
    );
    // The worker's one session is used; a temporary one for another type would be a second.
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "b", "resource_type": "fixture"}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "c", "resource_type": "fixture"}),
    );
    assert_eq!((code, body["code"].clone()), (503, json!(2004)), "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("server.max_sessions"));
    let (code, body) = s.execute("d", "fixture:echo", json!({"text": "x"}));
    assert_eq!(body["code"], 2004, "{body}");
    assert_eq!(code, 503);
}

#[test]
fn a_plugin_that_never_returns_from_shutdown_does_not_stop_the_host_exiting() {
    let mut s = Server::builder()
        .plugin("fixture")
        .server("shutdown_grace = 1")
        .env("FIXTURE_HANG_SHUTDOWN", "1")
        .start();
    s.post("/warmup", json!({}));
    let (code, _) = s.post("/shutdown", json!({}));
    assert_eq!(code, 200);
    assert_eq!(s.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn a_panic_in_shutdown_still_exits_zero() {
    let mut s = Server::builder()
        .plugin("fixture")
        .env("FIXTURE_PANIC_SHUTDOWN", "1")
        .start();
    s.post("/warmup", json!({}));
    s.signal("INT");
    assert_eq!(s.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn a_world_writable_plugin_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libagentflow_fixture.so");
    std::fs::copy(agentflow_e2e::plugin_library("fixture"), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    let s = Server::builder()
        .file(lib, "libagentflow_fixture.so")
        .start();
    let st = s.get("/warmup/status").1;
    let entry = &st["data"]["backends"]["fixture"];
    assert_eq!(entry["state"], "failed", "{st}");
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("writable by other users"),
        "{st}"
    );
}
