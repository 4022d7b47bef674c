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

/// `bash:run` in the worker's session; its stdout.
fn sh(s: &Server, worker: &str, command: &str) -> String {
    let out = call(s, worker, "bash:run", json!({ "command": command }));
    assert_eq!(out["return_code"], 0, "{worker}: {command}: {out}");
    out["stdout"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_set_up_session_forks_eight_ways_into_independent_copies() {
    let root = tempfile::tempdir().unwrap();
    let s = bash_server_at(root.path());
    let src = "rollout-setup";
    s.post(
        "/session/create",
        json!({"worker_id": src, "resource_type": "bash"}),
    );
    sh(
        &s,
        src,
        "mkdir -p repo/src && echo 'fn main() {}' > repo/src/main.rs && echo token > ~/.netrc-test \
         && cd repo && export STAGE=installed && LOCAL=shell-only && greet() { echo hi $1; } \
         && alias ll='ls -l' && set -o pipefail",
    );
    // A process running at snapshot time is left behind, and listed.
    call(
        &s,
        src,
        "bash:start",
        json!({"command": "sleep 300", "name": "left"}),
    );
    let targets: Vec<String> = (0..8).map(|i| format!("rollout-{i}")).collect();
    let (code, body) = s.post(
        "/session/fork",
        json!({"worker_id": src, "resource_type": "bash", "target_worker_ids": targets}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["created"], 8);
    let left = body["data"]["snapshot"]["report"]["left_behind"].to_string();
    assert!(left.contains("sleep 300"), "{body}");
    for t in &targets {
        let state = sh(
            &s,
            t,
            "pwd; cat src/main.rs; cat ~/.netrc-test; echo $STAGE $LOCAL; greet x; alias ll; shopt -o pipefail | tr -s ' \\t' ' '",
        );
        let lines: Vec<&str> = state.lines().collect();
        assert!(lines[0].ends_with("/repo"), "{t}: {state}");
        assert_eq!(
            lines[1..4],
            ["fn main() {}", "token", "installed shell-only"],
            "{t}: {state}"
        );
        assert_eq!(lines[4], "hi x", "{t}: {state}");
        assert!(lines[5].contains("ls -l"), "{t}: {state}");
        assert_eq!(lines[6].trim(), "pipefail on", "{t}: {state}");
    }
    // Independent: a write in one fork is seen neither by another nor by the source.
    sh(
        &s,
        "rollout-0",
        "echo mine > only-0.txt && echo changed > src/main.rs",
    );
    assert_eq!(
        sh(
            &s,
            "rollout-1",
            "ls only-0.txt 2>/dev/null; cat src/main.rs"
        ),
        "fn main() {}\n"
    );
    assert_eq!(
        sh(&s, src, "ls only-0.txt 2>/dev/null; cat src/main.rs"),
        "fn main() {}\n"
    );
    // The processes of the source were not carried.
    let listed = call(&s, "rollout-2", "bash:processes", json!({}));
    assert_eq!(
        listed["processes"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
}

#[test]
fn a_snapshot_starts_three_sessions_and_outlives_its_source() {
    let root = tempfile::tempdir().unwrap();
    let s = bash_server_at(root.path());
    s.post(
        "/session/create",
        json!({"worker_id": "base", "resource_type": "bash"}),
    );
    sh(&s, "base", "echo 42 > answer && export ANSWER=42");
    let (code, body) = s.post(
        "/session/snapshot",
        json!({"worker_id": "base", "resource_type": "bash", "name": "answer", "pinned": true}),
    );
    assert_eq!(code, 200, "{body}");
    s.post(
        "/session/destroy",
        json!({"worker_id": "base", "resource_type": "bash"}),
    );
    for w in ["t1", "t2", "t3"] {
        let (code, body) = s.post(
            "/session/create",
            json!({"worker_id": w, "from_snapshot": "answer"}),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(sh(&s, w, "cat answer; echo $ANSWER"), "42\n42\n");
    }
    let (code, _) = s.post("/snapshot/delete", json!({"name": "answer"}));
    assert_eq!(code, 200);
    // Sessions started from it go on after it is deleted.
    assert_eq!(sh(&s, "t2", "cat answer"), "42\n");
}
