//! The native API over HTTP against the real binary and the fixture plugin:
//! every endpoint's success path and error codes.

use std::time::{Duration, Instant};

use agentflow_e2e::{eventually, library, Server};
use serde_json::{json, Value};

fn fixture_server() -> Server {
    Server::builder().plugin("fixture").start()
}

fn assert_error(resp: &(u16, Value), status: u16, code: u64, needle: &str) {
    let (s, body) = resp;
    assert_eq!(*s, status, "status for {body}");
    assert_eq!(body["code"], code, "code for {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message {msg:?} should mention {needle:?}"
    );
    assert!(
        body["meta"]["request_id"].is_string(),
        "request id in {body}"
    );
    assert!(
        body["meta"]["error_type"].is_string(),
        "error type in {body}"
    );
}

#[test]
fn health_answers_without_envelope() {
    let s = fixture_server();
    let (status, body) = s.get("/health");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert!(body["version"].is_string());
    assert!(body.get("code").is_none());
}

#[test]
fn execute_runs_a_tool_in_a_temporary_session() {
    let s = fixture_server();
    let (status, body) = s.execute("w1", "fixture:echo", json!({"text": "hi"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 0);
    assert_eq!(body["message"], "success");
    assert_eq!(body["data"]["text"], "hi");
    assert_eq!(body["data"]["worker_id"], "w1");
    let meta = &body["meta"];
    assert_eq!(meta["tool"], "echo");
    assert_eq!(meta["resource_type"], "fixture");
    assert_eq!(meta["temporary_session"], true);
    let sid = meta["session_id"].as_str().unwrap();
    assert!(sid.starts_with("fixture_w1_001_"), "{sid}");
    assert!(meta["execution_time_ms"].is_number());
    // The temporary session is gone after the call.
    let (_, list) = s.post("/session/list", json!({"worker_id": "w1"}));
    assert_eq!(list["data"]["sessions"], json!([]));
}

#[test]
fn request_id_is_taken_from_the_header() {
    let s = fixture_server();
    let (_, body) = s.request(
        "POST",
        "/execute",
        &[("X-Request-Id", "req-42")],
        Some(json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "x"}})),
    );
    assert_eq!(body["meta"]["request_id"], "req-42");
}

#[test]
fn name_forms_resolve_and_unknown_tools_are_1001() {
    let s = fixture_server();
    for name in ["fixture.echo", "fixture_echo", "fixture-echo", "echo"] {
        let (status, body) = s.execute("w", name, json!({"text": "a"}));
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["meta"]["tool"], "echo");
    }
    assert_error(
        &s.execute("w", "fixture:nope", json!({})),
        404,
        1001,
        "fixture:nope",
    );
    assert_error(&s.execute("w", "nope", json!({})), 404, 1001, "nope");
}

#[test]
fn bad_params_are_1002_naming_the_parameter() {
    let s = fixture_server();
    assert_error(
        &s.execute("w", "fixture:echo", json!({})),
        400,
        1002,
        "text",
    );
    assert_error(
        &s.execute("w", "fixture:echo", json!({"text": "a", "count": "five"})),
        400,
        1002,
        "'count'",
    );
    assert_error(
        &s.post("/execute", json!({"action": "fixture:echo"})),
        400,
        1002,
        "'worker_id'",
    );
    assert_error(
        &s.post(
            "/execute",
            json!({"worker_id": "w", "action": "fixture:echo", "params": [1]}),
        ),
        400,
        1002,
        "'params'",
    );
    assert_error(
        &s.post("/execute", json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "a"}, "timeout": -1})),
        400,
        1002,
        "'timeout'",
    );
    assert_error(
        &s.post_raw("/execute", b"{not json"),
        400,
        1002,
        "Malformed JSON",
    );
    assert_error(
        &s.execute("bad worker!", "fixture:echo", json!({"text": "a"})),
        400,
        1002,
        "'worker_id'",
    );
}

#[test]
fn an_oversized_body_is_413_with_1002() {
    let s = Server::builder()
        .plugin("fixture")
        .server("body_limit = 1024")
        .start();
    let big =
        json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "x".repeat(4096)}});
    assert_error(&s.post("/execute", big), 413, 1002, "1024 bytes");
}

#[test]
fn unknown_paths_and_methods_have_json_bodies() {
    let s = fixture_server();
    let (status, body) = s.get("/nope");
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("/nope"));
    let (status, body) = s.get("/execute");
    assert_eq!(status, 405);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Method Not Allowed"));
}

#[test]
fn session_lifecycle_create_reuse_list_refresh_destroy() {
    let s = fixture_server();
    let (status, body) = s.post(
        "/session/create",
        json!({"worker_id": "w1", "resource_type": "fixture", "config": {"k": "v"}, "custom_name": "my.box"}),
    );
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["created"], true);
    assert_eq!(data["session_status"], "active");
    assert_eq!(data["session_name"], "fixture_w1_001_my-box");
    let sid = data["session_id"].as_str().unwrap().to_string();
    assert!(
        sid.starts_with("fixture_w1_001_my-box_")
            && sid.len() == "fixture_w1_001_my-box_".len() + 8
    );

    let (_, again) = s.post(
        "/session/create",
        json!({"worker_id": "w1", "resource_type": "fixture"}),
    );
    assert_eq!(again["data"]["created"], false);
    assert_eq!(again["data"]["session_id"], sid.as_str());

    // Calls use the session, with its config.
    let (_, call) = s.execute("w1", "fixture:echo", json!({"text": "a"}));
    assert_eq!(call["meta"]["temporary_session"], false);
    assert_eq!(call["meta"]["session_id"], sid.as_str());
    assert_eq!(call["data"]["session_config"]["k"], "v");

    let (_, list) = s.post("/session/list", json!({"worker_id": "w1"}));
    let sessions = list["data"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    for key in [
        "resource_type",
        "session_id",
        "session_name",
        "status",
        "created_at",
        "last_activity",
        "expires_at",
        "temporary",
    ] {
        assert!(
            sessions[0].get(key).is_some(),
            "{key} missing in {}",
            sessions[0]
        );
    }
    assert!(sessions[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, refreshed) = s.post(
        "/session/refresh",
        json!({"worker_id": "w1", "resource_type": "fixture"}),
    );
    assert_eq!(status, 200);
    assert!(refreshed["data"]["expires_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let (status, destroyed) = s.post(
        "/session/destroy",
        json!({"worker_id": "w1", "resource_type": "fixture"}),
    );
    assert_eq!(status, 200, "{destroyed}");
    assert_eq!(destroyed["data"]["session_id"], sid.as_str());
    let (_, list) = s.post("/session/list", json!({"worker_id": "w1"}));
    assert_eq!(list["data"]["sessions"], json!([]));
}

#[test]
fn session_errors_have_their_codes() {
    let s = fixture_server();
    assert_error(
        &s.post(
            "/session/create",
            json!({"worker_id": "w", "resource_type": "nosuch"}),
        ),
        404,
        1005,
        "nosuch",
    );
    assert_error(
        &s.post(
            "/session/destroy",
            json!({"worker_id": "ghost", "resource_type": "fixture"}),
        ),
        404,
        1004,
        "ghost",
    );
    assert_error(
        &s.post("/session/refresh", json!({"worker_id": "ghost"})),
        404,
        1004,
        "ghost",
    );
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "fixture"}),
    );
    assert_error(
        &s.post(
            "/session/destroy",
            json!({"worker_id": "w", "resource_type": "other"}),
        ),
        404,
        1003,
        "other",
    );
    assert_error(
        &s.execute("w", "fixture:broken", json!({})),
        409,
        1003,
        "broken",
    );
    let (_, list) = s.post("/session/list", json!({"worker_id": "w"}));
    assert_eq!(list["data"]["sessions"][0]["status"], "broken");
    // Initialization failure: 2001 and nothing left behind.
    assert_error(
        &s.post(
            "/session/create",
            json!({"worker_id": "w2", "resource_type": "fixture", "config": {"fail_init": true}}),
        ),
        502,
        2001,
        "initialize failure",
    );
    let (_, list) = s.post("/session/list", json!({"worker_id": "w2"}));
    assert_eq!(list["data"]["sessions"], json!([]));
}

#[test]
fn hidden_tools_are_listed_only_on_request_and_always_executable() {
    let s = fixture_server();
    let names = |body: &Value| -> Vec<String> {
        body["data"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, visible) = s.get("/tools");
    assert!(names(&visible).contains(&"fixture:echo".to_string()));
    assert!(!names(&visible).contains(&"fixture:secret".to_string()));
    for flag in ["true", "1", "TRUE"] {
        let (_, all) = s.get(&format!("/tools?include_hidden={flag}"));
        assert!(
            names(&all).contains(&"fixture:secret".to_string()),
            "{flag}"
        );
    }
    let (_, all) = s.get("/tools?include_hidden=true");
    let echo = all["data"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fixture:echo")
        .unwrap()
        .clone();
    assert_eq!(echo["resource_type"], "fixture");
    assert_eq!(echo["hidden"], false);
    assert_eq!(echo["parameters"]["properties"]["text"]["type"], "string");
    assert_error(
        &s.get("/tools?include_hidden=maybe"),
        400,
        1002,
        "include_hidden",
    );
    let (status, body) = s.execute("w", "fixture:secret", json!({}));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["secret"], true);
}

#[test]
fn a_panicking_tool_is_2001_and_the_host_keeps_serving() {
    let s = fixture_server();
    assert_error(
        &s.execute("w", "fixture:panic", json!({})),
        502,
        2001,
        "panicked",
    );
    assert_error(
        &s.execute("w", "fixture:fail", json!({})),
        502,
        2001,
        "failure on request",
    );
    let (status, _) = s.execute("w", "fixture:echo", json!({"text": "still here"}));
    assert_eq!(status, 200);
}

#[test]
fn a_call_ignoring_its_deadline_gets_2002_at_the_deadline() {
    let s = fixture_server();
    let started = Instant::now();
    let resp = s.post(
        "/execute",
        json!({"worker_id": "w", "action": "fixture:hang", "params": {"seconds": 60}, "timeout": 1}),
    );
    // The plugin sleeps a minute; the client hears at its deadline.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered after {:?}",
        started.elapsed()
    );
    assert_error(&resp, 504, 2002, "timed out after 1s");
    assert_eq!(resp.1["data"]["timeout"], 1.0);
    let (status, _) = s.execute("w", "fixture:echo", json!({"text": "still here"}));
    assert_eq!(status, 200);
}

#[test]
fn blocking_and_non_blocking_tools_answer_alike() {
    let s = fixture_server();
    for tool in ["fixture:echo", "fixture:echo_blocking"] {
        let (status, body) = s.execute("w", tool, json!({"text": "hi", "count": 2}));
        assert_eq!(status, 200, "{tool}: {body}");
        assert_eq!(body["data"]["text"], "hi", "{tool}: {body}");
        assert_eq!(body["data"]["count"], 2, "{tool}: {body}");
    }
}

#[test]
fn a_non_blocking_tool_that_blocks_is_moved_to_call_threads() {
    let s = fixture_server();
    // Declared non-blocking, the tool runs on the runtime's threads, where the
    // host cannot interrupt it: each slow call still answers, late.
    for _ in 0..3 {
        let (status, body) = s.execute("w", "fixture:overrun", json!({"seconds": 0.05}));
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        eventually(Duration::from_secs(10), || s
            .log()
            .contains("it now runs on call threads")),
        "no warning in the log:\n{}",
        s.log()
    );
    assert!(s.log().contains("tool=\"overrun\"") || s.log().contains("tool=overrun"));
    // Moved to a call thread, it is held to its deadline again: inline, this
    // call would only answer after its whole minute, and with success.
    let started = Instant::now();
    let resp = s.post(
        "/execute",
        json!({"worker_id": "w", "action": "fixture:overrun", "params": {"seconds": 60}, "timeout": 1}),
    );
    assert_error(&resp, 504, 2002, "timed out after 1s");
    assert!(started.elapsed() < Duration::from_secs(30));
    let (status, _) = s.execute("w", "fixture:echo", json!({"text": "still here"}));
    assert_eq!(status, 200);
}

#[test]
fn calls_beyond_the_per_plugin_cap_are_refused_at_once() {
    let s = Server::builder()
        .plugin("fixture")
        .server("max_inflight_per_plugin = 1")
        .start();
    std::thread::scope(|scope| {
        // The long call retries until it holds the plugin's one slot (the
        // probes below may hold it for an instant).
        scope.spawn(|| loop {
            let r = s.post(
                "/execute",
                json!({"worker_id": "a", "action": "fixture:sleep", "params": {"seconds": 3}}),
            );
            if r.1["code"] != 2004 {
                break r;
            }
        });
        assert!(eventually(Duration::from_secs(20), || {
            let r = s.execute("b", "fixture:echo", json!({"text": "x"}));
            r.1["code"] == 2004
                && r.1["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("max_inflight_per_plugin")
        }));
    });
    let r = s.execute("b", "fixture:echo", json!({"text": "x"}));
    assert_eq!(r.0, 200);
}

#[test]
fn a_failed_warmup_is_2003_and_can_be_retried() {
    let s = Server::builder()
        .plugin("fixture")
        .toml("[plugins.fixture.config]\nfail_warmup = true")
        .start();
    let (status, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(status, 503);
    assert_eq!(body["code"], 2003);
    assert_eq!(body["data"]["backends"]["fixture"]["warmed_up"], false);
    assert!(body["data"]["backends"]["fixture"]["error"]
        .as_str()
        .unwrap()
        .contains("warmup failure"));
    assert_error(
        &s.execute("w", "fixture:echo", json!({"text": "a"})),
        503,
        2003,
        "warmup failure",
    );
    let (_, status) = s.get("/warmup/status");
    assert_eq!(
        status["data"]["backends"]["fixture"]["state"],
        "warmup_failed"
    );
}

#[test]
fn warmup_and_status_report_every_backend() {
    let s = Server::builder()
        .plugin("fixture")
        .file(
            library("agentflow_fixture_old_api"),
            "libagentflow_oldapi.so",
        )
        .start();
    let (_, before) = s.get("/warmup/status");
    let fixture = &before["data"]["backends"]["fixture"];
    assert_eq!(fixture["loaded"], true);
    assert_eq!(fixture["warmed_up"], false);
    assert!(fixture["tools"]
        .as_array()
        .unwrap()
        .contains(&json!("fixture:echo")));
    let (status, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["backends"]["fixture"],
        json!({"loaded": true, "warmed_up": true, "version": "0.1.0", "error": null})
    );
    let (_, after) = s.get("/warmup/status");
    assert_eq!(after["data"]["backends"]["fixture"]["state"], "warm");
    let (status, body) = s.post("/warmup", json!({"backends": ["nosuch"]}));
    assert_eq!(status, 503);
    assert!(body["data"]["backends"]["nosuch"]["error"]
        .as_str()
        .unwrap()
        .contains("Unknown backend"));
}

#[test]
fn a_plugin_built_against_another_api_major_is_refused_while_others_load() {
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "this is not a library").unwrap();
    let s = Server::builder()
        .plugin("fixture")
        .file(
            library("agentflow_fixture_old_api"),
            "libagentflow_oldapi.so",
        )
        .file(junk.path().to_path_buf(), "libagentflow_junk.so")
        .start();
    let (_, status) = s.get("/warmup/status");
    let old = &status["data"]["backends"]["oldapi"];
    assert_eq!(old["state"], "failed", "{status}");
    let reason = old["error"].as_str().unwrap();
    assert!(
        reason.contains("plugin-api 1.0.0") && reason.contains("this host needs plugin-api ^0."),
        "{reason}"
    );
    let junk = &status["data"]["backends"]["junk"];
    assert_eq!(junk["state"], "failed");
    assert!(
        junk["error"].as_str().unwrap().contains("not an ELF"),
        "{junk}"
    );
    let (code, _) = s.execute("w", "fixture:echo", json!({"text": "ok"}));
    assert_eq!(code, 200);
}

#[test]
fn a_short_ttl_destroys_an_idle_session() {
    let s = Server::builder()
        .plugin("fixture")
        .server("session_ttl = 1")
        .start();
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "fixture"}),
    );
    let (_, list) = s.post("/session/list", json!({"worker_id": "w"}));
    assert_eq!(list["data"]["sessions"].as_array().unwrap().len(), 1);
    assert!(eventually(Duration::from_secs(10), || {
        let (_, list) = s.post("/session/list", json!({"worker_id": "w"}));
        list["data"]["sessions"]
            .as_array()
            .is_some_and(Vec::is_empty)
    }));
    // The log line follows the session's removal from the table.
    assert!(
        eventually(Duration::from_secs(5), || s
            .log()
            .contains("session expired")),
        "{}",
        s.log()
    );
}

#[test]
fn many_workers_call_concurrently() {
    let s = fixture_server();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let worker = format!("w{i}");
                    let (st, created) = s.post(
                        "/session/create",
                        json!({"worker_id": worker, "resource_type": "fixture"}),
                    );
                    assert_eq!(st, 200, "{created}");
                    let sid = created["data"]["session_id"].as_str().unwrap().to_string();
                    for n in 0..20 {
                        let (st, body) =
                            s.execute(&worker, "fixture:echo", json!({"text": format!("{i}-{n}")}));
                        assert_eq!(st, 200, "{body}");
                        assert_eq!(body["data"]["text"], format!("{i}-{n}"));
                        assert_eq!(body["meta"]["session_id"], sid.as_str());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_slow_initialize_for_one_worker_does_not_delay_another() {
    let s = fixture_server();
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            s.post(
                "/session/create",
                json!({"worker_id": "slow", "resource_type": "fixture", "config": {"init_delay": 8}}),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        let (st, _) = s.post(
            "/session/create",
            json!({"worker_id": "fast", "resource_type": "fixture"}),
        );
        assert_eq!(st, 200);
        for _ in 0..5 {
            let (st, _) = s.execute("fast", "fixture:echo", json!({"text": "x"}));
            assert_eq!(st, 200);
        }
        assert!(
            !slow.is_finished(),
            "the fast worker finished only after the slow initialize"
        );
        assert_eq!(slow.join().unwrap().0, 200);
    });
}

#[test]
fn batches_run_serially_or_in_parallel() {
    let s = fixture_server();
    let (status, body) = s.post(
        "/execute/batch",
        json!({"worker_id": "w", "actions": [
            {"action": "fixture:echo", "params": {"text": "1"}},
            {"action": "fixture:fail", "params": {}},
            {"action": "fixture:echo", "params": {"text": "3"}},
        ]}),
    );
    assert_eq!(body["code"], 2001, "{body}");
    assert_eq!(status, 502);
    assert_eq!(body["message"], "1 of 2 actions failed");
    assert_eq!(body["data"]["total"], 3);
    assert_eq!(body["data"]["executed"], 2);
    assert_eq!(body["data"]["success_count"], 1);
    assert_eq!(body["data"]["results"][0]["data"]["text"], "1");

    let (status, body) = s.post(
        "/execute/batch",
        json!({"worker_id": "w", "parallel": true, "actions": [
            {"action": "fixture:echo", "params": {"text": "a"}},
            {"action": "fixture:echo", "params": {"text": "b"}},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["success_count"], 2);
    assert_eq!(body["data"]["results"][1]["data"]["text"], "b");

    let many: Vec<Value> = (0..5)
        .map(|_| json!({"action": "fixture:echo", "params": {"text": "x"}}))
        .collect();
    let s2 = Server::builder()
        .plugin("fixture")
        .server("max_batch_actions = 4")
        .start();
    assert_error(
        &s2.post("/execute/batch", json!({"worker_id": "w", "actions": many})),
        400,
        1002,
        "at most 4",
    );
}

#[test]
fn shutdown_replies_then_exits_zero() {
    let mut s = fixture_server();
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "fixture"}),
    );
    let (status, body) = s.post("/shutdown", json!({}));
    assert_eq!(status, 200);
    assert_eq!(body["code"], 0);
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(s.log().contains("sessions_cleaned=1"), "{}", s.log());
}

#[test]
fn sigterm_stops_cleanly() {
    let mut s = fixture_server();
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn an_invalid_config_fails_at_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugins.toml");
    std::fs::write(&cfg, "[server]\nport = \"high\"\n").unwrap();
    let out = std::process::Command::new(Server::binary())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.port"), "{err}");
}

#[test]
fn a_plugins_log_lines_reach_the_host_log_with_the_request_id_worker_and_session() {
    log_lines_carry_the_call("");
}

#[test]
fn an_isolated_plugins_log_lines_carry_the_call_too() {
    // Logged in the plugin's process, sent to the host with the call's id.
    log_lines_carry_the_call("[plugins.fixture]\nmode = \"isolated\"\n");
}

fn log_lines_carry_the_call(plugin_toml: &str) {
    let s = Server::builder()
        .plugin("fixture")
        .toml(plugin_toml)
        .start();
    let (code, body) = s.request(
        "POST",
        "/execute",
        &[("X-Request-Id", "req-log-7")],
        Some(json!({"worker_id": "logger", "action": "fixture:log", "params": {"text": "hello host"}})),
    );
    assert_eq!(code, 200, "{body}");
    let session = body["meta"]["session_id"].as_str().unwrap().to_string();
    assert!(
        agentflow_e2e::eventually(std::time::Duration::from_secs(5), || s
            .log()
            .lines()
            .any(|l| l.contains("fixture says: hello host"))),
        "{}",
        s.log()
    );
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("fixture says: hello host"))
        .unwrap_or_default();
    for part in [
        "WARN",
        "req-log-7",
        "worker=logger",
        &session,
        "plugin=\"fixture\"",
    ] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
}
