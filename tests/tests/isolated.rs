//! Isolated plugins (`mode = "isolated"`): the fault fixtures crash their
//! own process, not the host; the plugin comes back; nothing is left behind.

use std::time::Duration;

use agentflow_e2e::{eventually, processes_matching, Server};
use serde_json::{json, Value};

const ISOLATED: &str = "[plugins.fixture]\nmode = \"isolated\"\nmemory_bytes = 536870912\n";

fn isolated_server() -> Server {
    Server::builder()
        .plugin("fixture")
        .plugin("bash")
        .toml(ISOLATED)
        .start()
}

fn fixture_status(s: &Server) -> Value {
    s.get("/warmup/status").1["data"]["backends"]["fixture"].clone()
}

fn runner_pid(s: &Server) -> Option<u64> {
    fixture_status(s)["process"]["pid"].as_u64()
}

fn echo_works(s: &Server, worker: &str) -> bool {
    let (code, body) = s.execute(worker, "fixture:echo", json!({"text": "back"}));
    code == 200 && body["data"]["text"] == "back"
}

fn alive(pid: u64) -> bool {
    // A zombie has no command line; only a running process counts.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

#[test]
fn each_crash_ends_only_the_plugins_process_which_comes_back_and_serves_again() {
    let s = isolated_server();
    assert!(echo_works(&s, "w"));
    let status = fixture_status(&s);
    assert_eq!(status["mode"], "isolated", "{status}");
    let first_pid = runner_pid(&s).expect("a runner pid in /warmup/status");
    assert_ne!(first_pid, u64::from(s.pid()));
    // A named session made before the crash.
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "kept", "resource_type": "fixture"}),
    );
    assert_eq!(code, 200, "{body}");

    let faults = [
        ("segfault", "signal 11"),
        ("abort", "signal 6"),
        ("overflow", "signal"),
        ("allocate", "signal"),
    ];
    for (i, (tool, how)) in faults.iter().enumerate() {
        let (code, body) = s.execute("w", &format!("fixture:{tool}"), json!({}));
        assert_eq!(code, 502, "{tool}: {body}");
        assert_eq!(body["code"], 2001, "{tool}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("plugin process died") && message.contains(how),
            "{tool}: {message}"
        );
        // The host and its other plugins never noticed.
        let (code, body) = s.execute("w", "bash:run", json!({"command": "echo still here"}));
        assert_eq!(code, 200, "after {tool}: {body}");
        assert_eq!(body["data"]["stdout"], "still here\n");
        // The plugin comes back (after a back-off) and serves again.
        assert!(
            eventually(Duration::from_secs(30), || echo_works(&s, "w")),
            "fixture did not come back after {tool}: {}",
            fixture_status(&s)
        );
        let status = fixture_status(&s);
        assert_eq!(status["process"]["restarts"], (i + 1) as u64, "{status}");
        assert!(
            status["process"]["last_exit"]
                .as_str()
                .unwrap_or_default()
                .contains("signal"),
            "{status}"
        );
    }
    assert!(
        !alive(first_pid),
        "the crashed runner {first_pid} is still there"
    );
    // The session made before the first crash lost its state: it says so.
    let (code, body) = s.execute("kept", "fixture:echo", json!({"text": "x"}));
    assert_eq!((code, body["code"].clone()), (409, json!(1003)), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("died"),
        "{body}"
    );
    // Destroying it works, and a new one serves.
    let (code, _) = s.post(
        "/session/destroy",
        json!({"worker_id": "kept", "resource_type": "fixture"}),
    );
    assert_eq!(code, 200);
    assert!(echo_works(&s, "kept"));
}

#[test]
fn a_plugin_that_never_answers_is_killed_after_its_call_is_cancelled_and_serves_again() {
    let s = isolated_server();
    assert!(echo_works(&s, "w"));
    let pid = runner_pid(&s).unwrap();
    let (code, body) = s.post(
        "/execute",
        json!({"worker_id": "w", "action": "fixture:hang", "params": {"seconds": 3600}, "timeout": 1}),
    );
    assert_eq!((code, body["code"].clone()), (504, json!(2002)), "{body}");
    // The runner ignored the cancel, so it is killed and replaced.
    assert!(
        eventually(Duration::from_secs(30), || !alive(pid)
            && echo_works(&s, "w2")),
        "{}",
        fixture_status(&s)
    );
    assert_ne!(runner_pid(&s), Some(pid));
}

#[test]
fn no_runner_outlives_the_host_even_when_the_host_is_killed() {
    let mut s = isolated_server();
    assert!(echo_works(&s, "w"));
    let pid = runner_pid(&s).unwrap();
    assert!(alive(pid));
    s.signal("KILL");
    let _ = s.wait_exit(Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(10), || !alive(pid)),
        "runner {pid} outlived the killed host"
    );
}

#[test]
fn a_clean_shutdown_ends_the_runner() {
    let mut s = isolated_server();
    assert!(echo_works(&s, "w"));
    let pid = runner_pid(&s).unwrap();
    let (code, _) = s.post("/shutdown", json!({}));
    assert_eq!(code, 200);
    assert!(s.wait_exit(Duration::from_secs(30)).is_some());
    assert!(eventually(Duration::from_secs(10), || !alive(pid)));
    assert!(processes_matching(&format!(
        "plugin-runner --library {}",
        s.dir.path().display()
    ))
    .is_empty());
}

/// Documents the other mode: in process, the same fault ends the host.
#[test]
fn in_process_a_segfault_in_plugin_code_takes_the_host_down() {
    let s = Server::builder().plugin("fixture").start();
    assert!(echo_works(&s, "w"));
    // The connection dies with the host: send without waiting for an answer.
    let body = json!({"worker_id": "w", "action": "fixture:segfault", "params": {}}).to_string();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut conn, request.as_bytes()).unwrap();
    // The process ended by a signal: no exit code.
    assert!(
        eventually(Duration::from_secs(10), || !alive(u64::from(s.pid()))),
        "the host survived a segfault in process"
    );
}

#[test]
fn an_isolated_plugin_streams_chunks_and_makes_and_restores_snapshots() {
    let s = isolated_server();
    // Streaming: chunks cross the runner's pipe before the result.
    let res = ureq::post(&format!("{}/execute/stream", s.base))
        .send_json(json!({"worker_id": "w-iso", "action": "fixture:ticks",
                          "params": {"count": 3, "interval_ms": 20}}))
        .unwrap();
    let text = res.into_string().unwrap();
    let chunks = text.matches("event: chunk").count();
    assert_eq!(chunks, 3, "{text}");
    assert!(text.contains("event: result"), "{text}");
    assert!(text.find("tick 3").unwrap() < text.find("event: result").unwrap());
    // Snapshots: made and restored inside the runner.
    s.post(
        "/session/create",
        json!({"worker_id": "src", "resource_type": "fixture"}),
    );
    s.execute("src", "fixture:note", json!({"text": "kept"}));
    let (code, body) = s.post(
        "/session/snapshot",
        json!({"worker_id": "src", "resource_type": "fixture", "name": "iso"}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "copy", "from_snapshot": "iso"}),
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = s.execute("copy", "fixture:note", json!({}));
    assert_eq!(body["data"]["notes"], json!(["kept"]));
}
