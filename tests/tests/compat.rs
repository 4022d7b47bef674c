//! The `/api/v1/` compatibility surface (docs/compat.md) over HTTP against the real
//! binary and the fixture plugin, sending what the AgentFlow Python SDK sends
//! (`X-Worker-ID` on every request, JSON bodies): every endpoint's success
//! shape and its listed errors with code, status and message.

use std::time::Duration;

use agentflow_e2e::Server;
use serde_json::{json, Value};

/// How many tools the native API lists (hidden ones left out).
fn visible_tools(s: &Server) -> u64 {
    let (_, body) = s.get("/tools");
    body["data"]["count"].as_u64().unwrap_or_default()
}

fn fixture_server() -> Server {
    Server::builder().plugin("fixture").start()
}

/// A POST as the SDK sends it.
/// A POST as the SDK sends it: its worker id in the header and the body.
fn sdk_post(s: &Server, path: &str, body: Value) -> (u16, Value) {
    let worker = body["worker_id"]
        .as_str()
        .unwrap_or("sdk-worker")
        .to_string();
    s.request("POST", path, &[("X-Worker-ID", &worker)], Some(body))
}

/// A GET as the SDK sends it: JSON content type, no body.
fn sdk_get(s: &Server, path: &str) -> (u16, Value) {
    s.request(
        "GET",
        path,
        &[
            ("X-Worker-ID", "sdk-worker"),
            ("Content-Type", "application/json"),
        ],
        None,
    )
}

fn execute(s: &Server, worker: &str, action: &str, params: Value) -> (u16, Value) {
    sdk_post(
        s,
        "/api/v1/execute",
        json!({"worker_id": worker, "action": action, "params": params}),
    )
}

/// Every meta key present, `trace_id` set.
fn assert_envelope(body: &Value) {
    for key in ["code", "message", "data", "meta"] {
        assert!(body.get(key).is_some(), "{key} missing in {body}");
    }
    let meta = &body["meta"];
    for key in [
        "tool",
        "execution_time_ms",
        "resource_type",
        "session_id",
        "trace_id",
    ] {
        assert!(meta.get(key).is_some(), "meta.{key} missing in {body}");
    }
    assert!(
        meta["trace_id"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}

fn assert_ok(resp: &(u16, Value)) -> Value {
    let (status, body) = resp;
    assert_eq!(*status, 200, "{body}");
    assert_envelope(body);
    assert_eq!(body["code"], 0, "{body}");
    assert_eq!(body["message"], "success");
    body["data"].clone()
}

fn assert_error(resp: &(u16, Value), status: u16, code: u64, message: &str) {
    let (s, body) = resp;
    assert_eq!(*s, status, "status for {body}");
    assert_envelope(body);
    assert_eq!(body["code"], code, "code for {body}");
    assert_eq!(body["message"], message, "message for {body}");
}

/// `2024-05-01T12:30:00[.123456]`: naive UTC isoformat, as Python writes it.
fn assert_naive_iso(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let b = s.as_bytes();
    let shape_ok = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (b.len() == 19 || (b[19] == b'.' && b.len() == 26));
    assert!(
        shape_ok && !s.ends_with('Z') && !s.contains('+'),
        "not a naive isoformat: {s}"
    );
}

/// 422 with FastAPI's `detail` listing each bad field.
fn assert_422(resp: &(u16, Value), locs: &[Value]) {
    let (status, body) = resp;
    assert_eq!(*status, 422, "{body}");
    let detail = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("no detail list in {body}"));
    let got: Vec<&Value> = detail.iter().map(|d| &d["loc"]).collect();
    assert_eq!(got, locs.iter().collect::<Vec<_>>(), "{body}");
    for d in detail {
        assert!(d["msg"].is_string() && d["type"].is_string(), "{d}");
    }
}

#[test]
fn health_answers_each_surface_in_its_own_shape() {
    let s = fixture_server();
    let (status, sdk) = sdk_get(&s, "/health");
    assert_eq!(status, 200);
    assert_eq!(sdk["status"], "healthy");
    assert_naive_iso(&sdk["timestamp"]);
    assert!(sdk.get("code").is_none());

    let (status, native) = s.get("/health");
    assert_eq!(status, 200);
    assert_eq!(native["status"], "ok");
    assert!(native["version"].is_string());
    assert!(native.get("code").is_none());
}

#[test]
fn ready_counts_tools_workers_and_sessions() {
    let s = fixture_server();
    let (status, body) = sdk_get(&s, "/ready");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "tools_count": visible_tools(&s), "active_workers": 0, "total_sessions": 0})
    );
    for w in ["a", "b"] {
        assert_ok(&sdk_post(
            &s,
            "/api/v1/session/create",
            json!({"worker_id": w, "resource_type": "fixture"}),
        ));
    }
    let (_, body) = sdk_get(&s, "/ready");
    assert_eq!(body["active_workers"], 2);
    assert_eq!(body["total_sessions"], 2);
}

#[test]
fn execute_answers_the_tools_envelope() {
    let s = fixture_server();
    let resp = s.request(
        "POST",
        "/api/v1/execute",
        &[("X-Worker-ID", "w1"), ("X-Request-Id", "trace-7")],
        Some(json!({"worker_id": "w1", "action": "fixture:echo", "params": {"text": "hi"}, "timeout": 30})),
    );
    let data = assert_ok(&resp);
    assert_eq!(data["worker_id"], "w1");
    assert_eq!(data["text"], "hi");
    let meta = &resp.1["meta"];
    assert_eq!(meta["tool"], "fixture:echo");
    assert_eq!(meta["resource_type"], "fixture");
    assert_eq!(meta["trace_id"], "trace-7");
    assert_eq!(meta["temporary_session"], true);
    assert!(meta["execution_time_ms"].is_number());
    assert!(meta["session_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("fixture_w1_001_")));

    // With a session, it is used and `temporary_session` is absent.
    let created = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/create",
        json!({"worker_id": "w1", "resource_type": "fixture", "session_config": {"mark": 1}}),
    ));
    let resp = execute(&s, "w1", "fixture:echo", json!({"text": "again"}));
    let data = assert_ok(&resp);
    assert_eq!(data["session_config"]["mark"], 1);
    assert_eq!(resp.1["meta"]["session_id"], created["session_id"]);
    assert!(
        resp.1["meta"].get("temporary_session").is_none(),
        "{}",
        resp.1
    );

    // `params` may be left out; a whole-number float timeout is an integer.
    let (status, body) = sdk_post(
        &s,
        "/api/v1/execute",
        json!({"worker_id": "w1", "action": "fixture:secret", "timeout": 5.0}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["secret"], true);
}

#[test]
fn name_forms_resolve_and_unknown_names_are_4002() {
    let s = fixture_server();
    for name in [
        "fixture:echo",
        "fixture.echo",
        "fixture_echo",
        "fixture-echo",
        "echo",
    ] {
        let resp = execute(&s, "w", name, json!({"text": "a"}));
        assert_ok(&resp);
        assert_eq!(resp.1["meta"]["tool"], "fixture:echo", "{name}");
    }
    for name in ["fixture:nope", "nope", "other:echo", "fixture echo\n"] {
        let resp = execute(&s, "w", name, json!({}));
        assert_error(&resp, 400, 4002, &format!("Tool not found: {name}"));
        assert_eq!(resp.1["data"]["action"], name);
    }
}

#[test]
fn execute_bodies_failing_validation_are_422() {
    let s = fixture_server();
    let post = |body: Value| sdk_post(&s, "/api/v1/execute", body);
    assert_422(
        &post(json!({"params": {}})),
        &[json!(["body", "worker_id"]), json!(["body", "action"])],
    );
    assert_422(
        &post(json!({"worker_id": "w", "action": "echo", "params": [1]})),
        &[json!(["body", "params"])],
    );
    assert_422(
        &post(json!({"worker_id": "w", "action": "echo", "params": {"text": "a"}, "timeout": 1.5})),
        &[json!(["body", "timeout"])],
    );
    assert_422(
        &post(json!({"worker_id": "w", "action": "echo", "timeout": "soon"})),
        &[json!(["body", "timeout"])],
    );
    let (status, body) = s.post_raw("/api/v1/execute", b"{not json");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    let (status, body) = s.post_raw("/api/v1/execute", b"");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"].as_array().map(Vec::len), Some(2));
}

#[test]
fn tool_failures_are_5005_and_bad_params_4004() {
    let s = fixture_server();
    let resp = execute(&s, "w", "fixture:fail", json!({}));
    assert_error(&resp, 500, 5005, "fixture: fixture failure on request");
    assert_eq!(resp.1["meta"]["tool"], "fixture:fail");
    let (status, body) = execute(&s, "w", "fixture:panic", json!({}));
    assert_eq!((status, body["code"].clone()), (500, json!(5005)), "{body}");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("fixture panic on request")));

    let (status, body) = execute(
        &s,
        "w",
        "fixture:echo",
        json!({"text": "a", "count": "five"}),
    );
    assert_eq!((status, body["code"].clone()), (400, json!(4004)), "{body}");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("'count'")));
    let (status, body) = execute(&s, "w", "fixture:echo", json!({}));
    assert_eq!((status, body["code"].clone()), (400, json!(4004)), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("text")));
    // Nothing broke: the next call works.
    assert_ok(&execute(&s, "w", "fixture:echo", json!({"text": "ok"})));
}

#[test]
fn a_timeout_is_5006_naming_the_limit() {
    let s = fixture_server();
    let resp = sdk_post(
        &s,
        "/api/v1/execute",
        json!({"worker_id": "w", "action": "fixture:sleep", "params": {"seconds": 60}, "timeout": 1}),
    );
    assert_error(&resp, 500, 5006, "Tool execution timed out after 1s");
    assert_eq!(resp.1["data"], json!({"timeout": 1}));
    assert_ok(&execute(&s, "w", "fixture:echo", json!({"text": "after"})));
}

#[test]
fn batches_answer_200_207_or_500() {
    let s = fixture_server();
    let batch = |actions: Value, parallel: bool, stop: bool| {
        sdk_post(
            &s,
            "/api/v1/execute/batch",
            json!({"worker_id": "w", "actions": actions, "parallel": parallel, "stop_on_error": stop}),
        )
    };
    let echo = json!({"action": "fixture_echo", "params": {"text": "x"}});
    let fail = json!({"action": "fixture:fail", "params": {}});

    let resp = batch(json!([echo, echo]), false, true);
    let data = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "batch:execute");
    assert_eq!(
        (&data["total"], &data["executed"], &data["success_count"]),
        (&json!(2), &json!(2), &json!(2))
    );
    for r in data["results"].as_array().unwrap() {
        assert_envelope(r);
        assert_eq!(r["meta"]["tool"], "fixture:echo");
        assert_eq!(r["data"]["text"], "x");
    }
    assert_ok(&batch(json!([]), false, true));

    // Parallel runs everything: one of two failed.
    let resp = batch(json!([echo, fail]), true, true);
    assert_error(&resp, 207, 5010, "1 out of 2 actions failed");
    assert_eq!(resp.1["data"]["results"][1]["code"], 5005);
    assert_eq!(resp.1["data"]["success_count"], 1);

    // Serial with stop_on_error stops at the first failure.
    let resp = batch(json!([fail, echo, echo]), false, true);
    assert_error(&resp, 500, 5009, "All actions failed");
    assert_eq!(
        (&resp.1["data"]["total"], &resp.1["data"]["executed"]),
        (&json!(3), &json!(1))
    );
    let resp = batch(json!([echo, fail, echo]), false, false);
    assert_error(&resp, 207, 5010, "1 out of 3 actions failed");
    assert_eq!(resp.1["data"]["executed"], 3);

    assert_422(
        &batch(json!([{"params": {}}]), false, true),
        &[json!(["body", "actions", 0, "action"])],
    );
}

#[test]
fn sessions_create_exist_list_refresh_destroy() {
    let s = fixture_server();
    let create = |worker: &str, custom: Value| {
        sdk_post(
            &s,
            "/api/v1/session/create",
            json!({"worker_id": worker, "resource_type": "fixture", "custom_name": custom}),
        )
    };
    let resp = create("team/a b", json!(" My VM! "));
    let data = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "session:create");
    assert_eq!(resp.1["meta"]["resource_type"], "session");
    assert_eq!(data["session_name"], "fixture_team-a-b_001_My-VM");
    let id = data["session_id"].as_str().unwrap().to_string();
    let hex = id.strip_prefix("fixture_team-a-b_001_My-VM_").unwrap();
    assert!(
        hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(data["session_status"], "active");
    assert_eq!(data["resource_type"], "fixture");
    assert_eq!(data["error"], Value::Null);
    assert!(data.get("compatibility_mode").is_none());

    let data = assert_ok(&create("team/a b", Value::Null));
    assert_eq!(data["status"], "exists");
    assert_eq!(data["session_id"], id.as_str());

    let list = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/list",
        json!({"worker_id": "team/a b"}),
    ));
    assert_eq!(list["worker_id"], "team/a b");
    assert_eq!(list["count"], 1);
    let entry = &list["sessions"][0];
    assert_eq!(entry["session_id"], id.as_str());
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["auto_created"], false);
    for k in ["created_at", "last_activity", "expires_at"] {
        assert_naive_iso(&entry[k]);
    }

    let one = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/refresh",
        json!({"worker_id": "team/a b", "resource_type": "fixture"}),
    ));
    assert_eq!(one["message"], "Session refreshed for fixture");
    assert_eq!(one["session_id"], id.as_str());
    assert_naive_iso(&one["expires_at"]);
    let all = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/refresh",
        json!({"worker_id": "team/a b"}),
    ));
    assert_eq!(all["message"], "Refreshed 1 sessions");
    assert_eq!(all["refreshed_count"], 1);
    assert_eq!(all["details"]["fixture"]["status"], "refreshed");

    let gone = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/destroy",
        json!({"worker_id": "team/a b", "resource_type": "fixture"}),
    ));
    assert_eq!(gone["message"], "Session destroyed for fixture");
    assert_eq!(gone["session_id"], id.as_str());
    assert_eq!(gone["session_name"], "fixture_team-a-b_001_My-VM");
    assert_error(
        &sdk_post(
            &s,
            "/api/v1/session/destroy",
            json!({"worker_id": "team/a b", "resource_type": "fixture"}),
        ),
        404,
        4007,
        "No session found for fixture",
    );
    assert_error(
        &sdk_post(
            &s,
            "/api/v1/session/refresh",
            json!({"worker_id": "team/a b", "resource_type": "fixture"}),
        ),
        404,
        4007,
        "No session found for fixture",
    );

    // NNN counts on per (worker, type); odd worker ids fall back to "worker".
    let data = assert_ok(&create("team/a b", Value::Null));
    assert_eq!(data["session_name"], "fixture_team-a-b_002");
    let data = assert_ok(&create("///", json!("__x__")));
    assert_eq!(data["session_name"], "fixture_worker_001_x");
}

#[test]
fn session_errors_have_their_codes() {
    let s = fixture_server();
    for body in [
        json!({}),
        json!({"worker_id": "w"}),
        json!({"worker_id": "", "resource_type": "fixture"}),
    ] {
        assert_error(
            &sdk_post(&s, "/api/v1/session/create", body),
            400,
            4002,
            "worker_id and resource_type required",
        );
    }
    assert_error(
        &sdk_post(
            &s,
            "/api/v1/session/destroy",
            json!({"resource_type": "fixture"}),
        ),
        400,
        4002,
        "worker_id and resource_type required",
    );
    for path in ["/api/v1/session/list", "/api/v1/session/refresh"] {
        assert_error(
            &sdk_post(&s, path, json!({})),
            400,
            4002,
            "worker_id required",
        );
    }
    let resp = sdk_post(
        &s,
        "/api/v1/session/create",
        json!({"worker_id": "w", "resource_type": "fixture", "session_config": {"fail_init": true}}),
    );
    assert_error(&resp, 500, 4007, "Session creation failed");
    assert_eq!(resp.1["data"]["session_status"], "error");
    assert!(resp.1["data"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("fixture initialize failure on request")));
    // Nothing was left behind.
    let list = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/list",
        json!({"worker_id": "w"}),
    ));
    assert_eq!(list["count"], 0);
}

#[test]
fn a_resource_type_without_a_plugin_gets_a_compatibility_session() {
    let s = fixture_server();
    let resp = sdk_post(
        &s,
        "/api/v1/session/create",
        json!({"worker_id": "w", "resource_type": "sql", "session_config": {"db": "x"}, "custom_name": "main"}),
    );
    let data = assert_ok(&resp);
    assert_eq!(data["compatibility_mode"], true);
    assert!(data["compatibility_message"].is_string());
    assert_eq!(data["session_name"], "sql_w_001_main");
    assert_eq!(data["session_status"], "active");
    let list = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/list",
        json!({"worker_id": "w"}),
    ));
    assert_eq!(list["sessions"][0]["resource_type"], "sql");
    // Tools of real plugins are unaffected.
    assert_ok(&execute(&s, "w", "fixture:echo", json!({"text": "a"})));
    assert_ok(&sdk_post(
        &s,
        "/api/v1/session/destroy",
        json!({"worker_id": "w", "resource_type": "sql"}),
    ));
}

fn expires_at(s: &Server, worker: &str) -> String {
    let list = assert_ok(&sdk_post(
        s,
        "/api/v1/session/list",
        json!({"worker_id": worker}),
    ));
    list["sessions"][0]["expires_at"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn ttl_moves_with_calls_and_init_but_not_with_heartbeat_list_or_status() {
    let s = fixture_server();
    assert_ok(&sdk_post(
        &s,
        "/api/v1/session/create",
        json!({"worker_id": "w", "resource_type": "fixture"}),
    ));
    let pause = || std::thread::sleep(Duration::from_millis(20));
    let first = expires_at(&s, "w");
    pause();
    assert_ok(&sdk_post(
        &s,
        "/api/v1/lifecycle/heartbeat",
        json!({"worker_id": "w"}),
    ));
    assert_ok(&sdk_post(
        &s,
        "/api/v1/lifecycle/status",
        json!({"worker_id": "w"}),
    ));
    assert_eq!(expires_at(&s, "w"), first);

    pause();
    assert_ok(&execute(&s, "w", "fixture:echo", json!({"text": "a"})));
    let after_call = expires_at(&s, "w");
    assert!(after_call > first, "{after_call} !> {first}");

    pause();
    assert_ok(&sdk_post(
        &s,
        "/api/v1/init/resource",
        json!({"worker_id": "w", "resource_type": "fixture", "init_config": {}}),
    ));
    let after_init = expires_at(&s, "w");
    assert!(after_init > after_call, "{after_init} !> {after_call}");
}

#[test]
fn lifecycle_heartbeat_status_and_disconnect() {
    let s = fixture_server();
    for rt in ["fixture", "sql"] {
        assert_ok(&sdk_post(
            &s,
            "/api/v1/session/create",
            json!({"worker_id": "w", "resource_type": rt}),
        ));
    }
    let resp = sdk_post(&s, "/api/v1/lifecycle/heartbeat", json!({"worker_id": "w"}));
    let beat = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "session:heartbeat");
    assert_eq!(beat["worker_id"], "w");
    assert_eq!(beat["active_sessions"], json!(["fixture", "sql"]));
    assert_naive_iso(&beat["timestamp"]);

    let resp = sdk_post(&s, "/api/v1/lifecycle/status", json!({"worker_id": "w"}));
    let status = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "session:status");
    assert_eq!(status["active_resources"], json!(["fixture", "sql"]));
    assert_eq!(status["tools_available"], visible_tools(&s));
    let fixture = &status["sessions"]["fixture"];
    assert!(fixture["session_id"].is_string());
    assert_eq!(fixture["status"], "active");
    assert_naive_iso(&fixture["created_at"]);
    assert_naive_iso(&fixture["last_activity"]);

    let resp = sdk_post(&s, "/api/v1/worker/disconnect", json!({"worker_id": "w"}));
    let gone = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "session:disconnect");
    assert_eq!(gone, json!({"worker_id": "w", "sessions_cleaned": 2}));
    let list = assert_ok(&sdk_post(
        &s,
        "/api/v1/session/list",
        json!({"worker_id": "w"}),
    ));
    assert_eq!(list["count"], 0);

    for path in [
        "/api/v1/lifecycle/heartbeat",
        "/api/v1/lifecycle/status",
        "/api/v1/worker/disconnect",
    ] {
        assert_error(
            &sdk_post(&s, path, json!({})),
            400,
            4002,
            "worker_id required",
        );
    }
}

#[test]
fn init_resource_gets_or_creates() {
    let s = fixture_server();
    let init = |rt: &str, config: Value| {
        sdk_post(
            &s,
            "/api/v1/init/resource",
            json!({"worker_id": "w", "resource_type": rt, "init_config": config}),
        )
    };
    let resp = init("fixture", json!({"mark": 2}));
    // Every /init/* answer's meta says "session", as the Python server's.
    assert_eq!(resp.1["meta"]["resource_type"], "session");
    let first = assert_ok(&resp);
    assert_eq!(first["resource_type"], "fixture");
    assert_eq!(first["session_status"], "active");
    assert_eq!(first["error"], Value::Null);
    let again = assert_ok(&init("fixture", json!({})));
    assert_eq!(again["session_id"], first["session_id"]);
    let echoed = assert_ok(&execute(&s, "w", "fixture:echo", json!({"text": "a"})));
    assert_eq!(echoed["session_config"]["mark"], 2);

    let compat = assert_ok(&init("web_search", json!({})));
    assert_eq!(compat["compatibility_mode"], true);

    let resp = sdk_post(
        &s,
        "/api/v1/init/resource",
        json!({"worker_id": "other", "resource_type": "fixture", "init_config": {"fail_init": true}}),
    );
    assert_error(&resp, 500, 4007, "Resource initialization failed");
    assert_eq!(resp.1["data"]["session_status"], "error");
    assert!(resp.1["data"]["error"].is_string());
    assert_error(
        &sdk_post(&s, "/api/v1/init/resource", json!({"worker_id": "w"})),
        400,
        4002,
        "worker_id and resource_type required",
    );
}

#[test]
fn init_batch_answers_200_207_or_500() {
    let s = fixture_server();
    let batch = |worker: &str, configs: Value| {
        sdk_post(
            &s,
            "/api/v1/init/batch",
            json!({"worker_id": worker, "resource_configs": configs}),
        )
    };
    let resp = batch(
        "a",
        json!({"fixture": {"content": {"mark": 3}}, "sql": {"db": "x"}}),
    );
    assert_eq!(resp.1["meta"]["resource_type"], "session");
    let data = assert_ok(&resp);
    assert_eq!(
        (&data["total"], &data["success_count"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(data["worker_id"], "a");
    assert_eq!(data["results"]["fixture"]["status"], "success");
    assert_eq!(data["results"]["fixture"]["session_status"], "active");
    assert!(data["results"]["sql"]["session_id"].is_string());
    let echoed = assert_ok(&execute(&s, "a", "fixture:echo", json!({"text": "a"})));
    assert_eq!(echoed["session_config"]["mark"], 3);

    let resp = batch(
        "b",
        json!({"fixture": {"content": {"fail_init": true}}, "sql": {}}),
    );
    assert_error(&resp, 207, 5010, "1 out of 2 resources failed");
    let failed = &resp.1["data"]["results"]["fixture"];
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["session_status"], "error");
    assert!(failed["error"].is_string());

    assert_error(
        &batch("c", json!({"fixture": {"fail_init": true}})),
        500,
        5009,
        "All resources failed to initialize",
    );
    assert_ok(&batch("d", json!({})));
}

#[test]
fn init_from_config_reads_only_files_in_the_operators_directories() {
    let configs = tempfile::tempdir().unwrap();
    let s = Server::builder()
        .plugin("fixture")
        .server(&format!(
            "compat_config_dirs = [\"{}\"]",
            configs.path().display()
        ))
        .start();
    let path = configs.path().join("pipeline.json");
    std::fs::write(
        &path,
        r#"{"vm": {"screen_size": [800, 600], "keep": true}, "model": "a", "list": [1]}"#,
    )
    .unwrap();
    let path_str = path.to_string_lossy().to_string();
    let resp = sdk_post(
        &s,
        "/api/v1/init/from-config",
        json!({
            "worker_id": "w",
            "config_path": path_str,
            "override_params": {"vm": {"screen_size": [1024, 768]}, "model": "b", "extra": 1},
        }),
    );
    let data = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["resource_type"], "session");
    // As the Python server: the path read, and overrides only of keys the file has.
    assert_eq!(data["config_loaded"], json!(path_str));
    assert_eq!(
        data["config"],
        json!({"vm": {"screen_size": [1024, 768], "keep": true}, "model": "b", "list": [1]})
    );
    let missing = configs
        .path()
        .join("nope.json")
        .to_string_lossy()
        .to_string();
    assert_error(
        &sdk_post(
            &s,
            "/api/v1/init/from-config",
            json!({"worker_id": "w", "config_path": missing}),
        ),
        404,
        4002,
        &format!("Config file not found: {missing}"),
    );
    // Outside the directories, directly or through a link, nothing is read.
    let outside = s.dir.path().join("plugins.toml");
    let link = configs.path().join("link.json");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    for path in [outside, link] {
        let (status, body) = sdk_post(
            &s,
            "/api/v1/init/from-config",
            json!({"worker_id": "w", "config_path": path}),
        );
        assert_eq!((status, &body["code"]), (403, &json!(4002)), "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("server.compat_config_dirs"), "{message}");
        assert!(!body.to_string().contains("[server]"), "{body}");
    }
}

#[test]
fn init_from_config_reads_nothing_by_default() {
    let s = fixture_server();
    let path = s.dir.path().join("plugins.toml");
    let (status, body) = sdk_post(
        &s,
        "/api/v1/init/from-config",
        json!({"worker_id": "w", "config_path": path}),
    );
    assert_eq!((status, &body["code"]), (403, &json!(4002)), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("server.compat_config_dirs is empty"),
        "{body}"
    );
}

#[test]
fn tools_are_listed_bare_with_python_style_flags() {
    let s = fixture_server();
    let visible = visible_tools(&s);
    assert!(visible > 0);
    let (status, body) = sdk_get(&s, "/api/v1/tools");
    assert_eq!(status, 200);
    assert!(body.get("code").is_none());
    assert_eq!(body["count"], visible);
    let tools = body["tools"].as_array().unwrap();
    let echo = tools.iter().find(|t| t["name"] == "echo").unwrap();
    assert_eq!(echo["full_name"], "fixture:echo");
    assert_eq!(echo["resource_type"], "fixture");
    assert_eq!(echo["stateless"], false);
    assert!(echo["description"].is_string());
    assert!(tools.iter().all(|t| t["name"] != "secret"));

    for flag in ["True", "true", "1", "yes", "ON"] {
        let (_, body) = sdk_get(&s, &format!("/api/v1/tools?include_hidden={flag}"));
        assert_eq!(body["count"], visible + 1, "{flag}");
        let tools = body["tools"].as_array().unwrap();
        let secret = tools.iter().find(|t| t["name"] == "secret").unwrap();
        let description = secret["description"].as_str().unwrap();
        assert!(description.starts_with("[HIDDEN] "), "{description}");
        // `stateless` is "no resource type", as in the Python server.
        assert!(tools.iter().all(|t| t["stateless"] == false), "{body}");
    }
    let (_, body) = sdk_get(&s, "/api/v1/tools?include_hidden=False");
    assert_eq!(body["count"], visible);
    let (status, body) = sdk_get(&s, "/api/v1/tools?include_hidden=maybe");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "include_hidden"]));

    for name in ["fixture:echo", "echo", "fixture%3Aecho"] {
        let (status, body) = sdk_get(&s, &format!("/api/v1/tools/{name}/schema"));
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["full_name"], "fixture:echo");
        assert!(
            body["parameters"]["properties"]["text"].is_object(),
            "{body}"
        );
    }
    let (status, body) = sdk_get(&s, "/api/v1/tools/fixture:secret/schema");
    assert_eq!((status, &body["name"]), (200, &json!("secret")));
    let (status, body) = sdk_get(&s, "/api/v1/tools/nope/schema");
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"status": "error", "message": "Tool not found: nope"})
    );
}

#[test]
fn warmup_reports_per_backend_and_always_answers_200() {
    let s = fixture_server();
    let (status, body) = s.post_raw("/api/v1/warmup", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "results": {"fixture": true}, "summary": {"total": 1, "warmed_up": 1, "pending": 0}})
    );
    let (status, body) = sdk_post(
        &s,
        "/api/v1/warmup",
        json!({"backends": ["fixture", "nope"]}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["status"], "partial_error");
    assert_eq!(body["results"], json!({"fixture": true, "nope": false}));
    assert_eq!(
        body["summary"],
        json!({"total": 2, "warmed_up": 1, "pending": 1})
    );
    assert!(body["errors"]["nope"]
        .as_str()
        .is_some_and(|e| e.contains("nope")));
    let (status, body) = sdk_get(&s, "/api/v1/warmup/status");
    assert_eq!(status, 200);
    assert_eq!(body["backends"]["fixture"]["loaded"], true);
    assert_eq!(body["backends"]["fixture"]["warmed_up"], true);
    assert_eq!(body["summary"]["total"], 1);
}

#[test]
fn a_failed_backend_warmup_is_partial_error_and_5011_on_execute() {
    let s = Server::builder()
        .plugin("fixture")
        .toml("[plugins.fixture.config]\nfail_warmup = true")
        .start();
    let (status, body) = sdk_post(&s, "/api/v1/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(status, 200);
    assert_eq!(body["status"], "partial_error");
    assert!(body["errors"]["fixture"]
        .as_str()
        .is_some_and(|e| e.contains("fixture warmup failure on request")));
    let (status, body) = execute(&s, "w", "fixture:echo", json!({"text": "a"}));
    assert_eq!((status, body["code"].clone()), (500, json!(5011)), "{body}");
}

#[test]
fn unknown_paths_and_methods_answer_like_fastapi() {
    let s = fixture_server();
    assert_eq!(
        sdk_get(&s, "/api/v1/nope"),
        (404, json!({"detail": "Not Found"}))
    );
    assert_eq!(
        sdk_post(&s, "/api/v1/session/nope", json!({})),
        (404, json!({"detail": "Not Found"}))
    );
    assert_eq!(
        sdk_get(&s, "/api/v1/execute"),
        (405, json!({"detail": "Method Not Allowed"}))
    );
    assert_eq!(
        sdk_post(&s, "/ready", json!({})),
        (405, json!({"detail": "Method Not Allowed"}))
    );
    // The native surface keeps its envelopes.
    let (status, body) = s.get("/nope");
    assert_eq!((status, body["code"].clone()), (404, json!(1001)));
    let (status, body) = s.get("/execute");
    assert_eq!((status, body["code"].clone()), (405, json!(1002)));
}

#[test]
fn a_token_guards_the_compat_surface_too() {
    let token = "compat-s3cret";
    let s = Server::builder()
        .plugin("fixture")
        .env("AGENTFLOW_TOKEN", token)
        .start();
    assert_eq!(sdk_get(&s, "/health").0, 200);
    let resp = sdk_post(
        &s,
        "/api/v1/execute",
        json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "x"}}),
    );
    let (status, body) = &resp;
    assert_eq!(
        (*status, body["code"].clone()),
        (401, json!(4000)),
        "{body}"
    );
    assert_envelope(body);
    assert!(body["message"].as_str().unwrap().contains("Bearer"));
    let bearer = format!("Bearer {token}");
    let (status, body) = s.request(
        "GET",
        "/api/v1/tools",
        &[("Authorization", &bearer), ("X-Worker-ID", "w")],
        None,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_oversized_body_is_413_in_the_compat_shape() {
    let s = Server::builder()
        .plugin("fixture")
        .server("body_limit = 2000")
        .start();
    let resp = execute(&s, "w", "fixture:echo", json!({"text": "x".repeat(5000)}));
    assert_eq!(resp.0, 413, "{}", resp.1);
    assert_envelope(&resp.1);
    assert_eq!(resp.1["code"], 4000);
}

#[test]
fn shutdown_answers_then_exits_zero() {
    let mut s = fixture_server();
    assert_ok(&sdk_post(
        &s,
        "/api/v1/session/create",
        json!({"worker_id": "w", "resource_type": "fixture"}),
    ));
    let (status, body) = s.post_raw("/api/v1/server/shutdown", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Server shutdown initiated", "sessions_cleaned": 1})
    );
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(s.log().contains("sessions_cleaned=1"), "{}", s.log());
}

/// The result shapes the SDK's formatter reads, from the real bash plugin.
#[test]
fn bash_results_carry_what_the_sdk_formatter_reads() {
    let s = Server::builder().plugin("bash").start();
    let (status, tools) = sdk_get(&s, "/api/v1/tools");
    assert_eq!(status, 200);
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["full_name"] == "bash:run"),
        "{tools}"
    );
    // A temporary session, reached through an LLM-style name.
    let resp = execute(
        &s,
        "w",
        "bash_run",
        json!({"command": "echo out; echo err >&2; exit 3"}),
    );
    let data = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "bash:run");
    assert_eq!(resp.1["meta"]["temporary_session"], true);
    assert_eq!(data["stdout"], "out\n");
    assert_eq!(data["stderr"], "err\n");
    assert_eq!(data["return_code"], 3);
    assert!(data["cwd"].is_string());

    // A session keeps the shell; a host timeout is 5006 and leaves it usable.
    assert_ok(&sdk_post(
        &s,
        "/api/v1/session/create",
        json!({"worker_id": "w", "resource_type": "bash"}),
    ));
    assert_ok(&execute(&s, "w", "bash:run", json!({"command": "cd /tmp"})));
    let resp = sdk_post(
        &s,
        "/api/v1/execute",
        json!({"worker_id": "w", "action": "bash:run", "params": {"command": "sleep 60"}, "timeout": 1}),
    );
    assert_error(&resp, 500, 5006, "Tool execution timed out after 1s");
    let data = assert_ok(&execute(&s, "w", "run", json!({"command": "pwd"})));
    assert_eq!(data["stdout"], "/tmp\n");
    assert_eq!(data["cwd"], "/tmp");
}

/// `rag:search` data `{query, context}` from the real rag plugin (BM25 only,
/// so no embedding model is needed).
#[test]
fn rag_search_carries_query_and_context() {
    let s = Server::builder()
        .plugin("rag")
        .toml("[plugins.rag.config]\ndense = false\nindex_path = \"rag-index\"")
        .start();
    let indexed = execute(
        &s,
        "w",
        "rag:index",
        json!({"documents": [
            {"id": "1", "title": "Paris", "content": "Paris is the capital of France."},
            {"id": "2", "title": "Berlin", "content": "Berlin is the capital of Germany."},
        ]}),
    );
    assert_ok(&indexed);
    let resp = execute(
        &s,
        "w",
        "rag_search",
        json!({"query": "capital of France", "top_k": 1}),
    );
    let data = assert_ok(&resp);
    assert_eq!(resp.1["meta"]["tool"], "rag:search");
    // A shared plugin needs no session.
    assert!(resp.1["meta"].get("temporary_session").is_none());
    assert_eq!(data["query"], "capital of France");
    assert_eq!(data["context"], "[Paris]\nParis is the capital of France.");
}
