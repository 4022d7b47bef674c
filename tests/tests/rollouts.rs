//! What RL rollouts ask of bash sessions, over HTTP against the real server:
//! long-running processes in the background, their output read while they
//! run, their input written, and nothing left when the session ends.

use std::time::Duration;

use agentflow_e2e::{bash_server_at, eventually, processes_matching, Server};
use serde_json::{json, Value};

fn call(s: &Server, worker: &str, tool: &str, params: Value) -> Value {
    let (code, body) = s.execute(worker, tool, params);
    assert_eq!(code, 200, "{tool}: {body}");
    body["data"].clone()
}

#[test]
fn a_server_started_in_the_background_answers_another_call() {
    let root = tempfile::tempdir().unwrap();
    let s = bash_server_at(root.path());
    let w = "rollout-web";
    s.post(
        "/session/create",
        json!({"worker_id": w, "resource_type": "bash"}),
    );
    call(
        &s,
        w,
        "bash:run",
        json!({"command": "mkdir site && echo hello from the sandbox > site/index.html"}),
    );
    let started = call(
        &s,
        w,
        "bash:start",
        json!({"command": "cd site && exec python3 -m http.server 8731 --bind 127.0.0.1", "name": "web"}),
    );
    let id = started["id"].as_str().unwrap().to_string();
    // Another call reaches it, inside the same sandbox.
    let fetched = eventually(Duration::from_secs(20), || {
        let out = call(
            &s,
            w,
            "bash:run",
            json!({"command": "curl -s http://127.0.0.1:8731/index.html"}),
        );
        out["stdout"] == "hello from the sandbox\n"
    });
    assert!(fetched, "the background server never answered");
    // Its log is readable while it runs, from an offset.
    let out = call(&s, w, "bash:output", json!({"id": id}));
    assert_eq!(out["running"], true);
    assert!(
        out["stderr"].as_str().unwrap().contains("GET /index.html"),
        "{out}"
    );
    let listed = call(&s, w, "bash:processes", json!({}));
    assert_eq!(listed["processes"][0]["name"], "web");
    let killed = call(&s, w, "bash:kill", json!({"id": id}));
    assert_eq!(killed["sent"], true);
    let waited = call(&s, w, "bash:wait", json!({"id": id, "timeout": 10}));
    assert_eq!(waited["running"], false, "{waited}");
}

#[test]
fn input_reaches_a_background_program_and_the_session_end_takes_it_down() {
    let root = tempfile::tempdir().unwrap();
    let s = bash_server_at(root.path());
    let w = "rollout-io";
    s.post(
        "/session/create",
        json!({"worker_id": w, "resource_type": "bash"}),
    );
    let started = call(
        &s,
        w,
        "bash:start",
        json!({"command": "while read line; do echo got:$line; done; echo done"}),
    );
    let id = started["id"].as_str().unwrap().to_string();
    call(
        &s,
        w,
        "bash:write_stdin",
        json!({"id": id, "data": "one\ntwo\n", "eof": true}),
    );
    let waited = call(&s, w, "bash:wait", json!({"id": id, "timeout": 10}));
    assert_eq!(waited["stdout"], "got:one\ngot:two\ndone\n", "{waited}");
    assert_eq!(waited["exit_code"], 0);
    // A process still running when the session is destroyed leaves nothing.
    let marker = format!("rollout-left-{}", std::process::id());
    call(
        &s,
        w,
        "bash:start",
        json!({"command": format!("exec -a {marker} sleep 1000")}),
    );
    assert!(eventually(Duration::from_secs(10), || !processes_matching(
        &marker
    )
    .is_empty()));
    let (code, body) = s.post(
        "/session/destroy",
        json!({"worker_id": w, "resource_type": "bash"}),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        eventually(Duration::from_secs(10), || processes_matching(&marker)
            .is_empty()),
        "{:?}",
        processes_matching(&marker)
    );
}
