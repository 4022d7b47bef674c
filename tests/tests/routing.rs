//! What a host behind a balancer promises its clients (deploy/README.md):
//! the routing header, the node name on every answer, refusal of a call that
//! names a session this host lacks, and draining on SIGTERM.

use std::time::Duration;

use agentflow_e2e::{Reply, Server};
use serde_json::{json, Value};

fn server() -> Server {
    Server::builder()
        .plugin("fixture")
        .server("node_name = \"node-a\"")
        .start()
}

fn post(s: &Server, path: &str, headers: &[(&str, &str)], body: Value) -> Reply {
    s.send("POST", path, headers, Some(body))
}

fn message(r: &Reply) -> &str {
    r.body["message"].as_str().unwrap_or_default()
}

#[test]
fn the_worker_header_alone_names_the_worker_and_every_answer_names_the_node() {
    let s = server();
    let h = [("X-Worker-ID", "w-header")];
    let r = post(
        &s,
        "/session/create",
        &h,
        json!({"resource_type": "fixture"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["meta"]["node"], "node-a");
    assert_eq!(r.header("x-agentflow-node"), Some("node-a"));
    let sid = r.body["data"]["session_id"].as_str().unwrap().to_string();

    let r = post(
        &s,
        "/execute",
        &h,
        json!({"action": "fixture:echo", "params": {"text": "hi"}}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["meta"]["session_id"], sid.as_str());
    assert_eq!(r.body["meta"]["temporary_session"], false);

    let r = post(&s, "/session/list", &h, json!({}));
    assert_eq!(r.body["data"]["count"], 1);
    // Errors, probes and the compat surface name the node too.
    let r = post(&s, "/execute", &h, json!({"action": "nope"}));
    assert_eq!(r.body["meta"]["node"], "node-a");
    let r = s.send("GET", "/health", &[], None);
    assert_eq!(r.header("x-agentflow-node"), Some("node-a"));
    let r = post(
        &s,
        "/api/v1/session/list",
        &h,
        json!({"worker_id": "w-header"}),
    );
    assert_eq!(r.body["meta"]["node"], "node-a", "{:?}", r.body);
}

#[test]
fn a_header_and_body_that_disagree_are_refused_naming_both() {
    let s = server();
    let h = [("X-Worker-ID", "w-a")];
    let r = post(
        &s,
        "/execute",
        &h,
        json!({"worker_id": "w-b", "action": "fixture:echo", "params": {"text": "x"}}),
    );
    assert_eq!((r.status, r.body["code"].as_u64()), (400, Some(1002)));
    assert!(
        message(&r).contains("\"w-b\"") && message(&r).contains("\"w-a\""),
        "{}",
        message(&r)
    );
    let r = post(
        &s,
        "/session/create",
        &h,
        json!({"worker_id": "w-b", "resource_type": "fixture"}),
    );
    assert_eq!(r.body["code"], 1002, "{:?}", r.body);
    // The compat surface (the Python SDK sends the header and the body).
    let r = post(
        &s,
        "/api/v1/execute",
        &h,
        json!({"worker_id": "w-b", "action": "fixture:echo", "params": {"text": "x"}}),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(message(&r).contains("X-Worker-ID"), "{:?}", r.body);
    // Neither: the missing field is named.
    let r = post(&s, "/execute", &[], json!({"action": "fixture:echo"}));
    assert!(message(&r).contains("'worker_id'"), "{:?}", r.body);
}

#[test]
fn a_call_naming_a_session_this_host_lacks_is_refused_and_runs_nowhere() {
    let s = server();
    let call = |session: Option<&str>, header: Option<&str>| {
        let mut h = vec![("X-Worker-ID", "w-moved")];
        if let Some(v) = header {
            h.push(("X-Session-ID", v));
        }
        let mut body = json!({"action": "fixture:echo", "params": {"text": "x"}});
        if let Some(v) = session {
            body["session_id"] = json!(v);
        }
        post(&s, "/execute", &h, body)
    };
    for r in [
        call(Some("fixture-lost-1"), None),
        call(None, Some("fixture-lost-1")),
    ] {
        assert_eq!(
            (r.status, r.body["code"].as_u64()),
            (404, Some(1003)),
            "{:?}",
            r.body
        );
        assert!(message(&r).contains("not on this host"), "{}", message(&r));
        assert!(
            message(&r).contains("create the session again"),
            "{}",
            message(&r)
        );
        assert_eq!(r.body["data"]["session_id"], "fixture-lost-1");
    }
    // No temporary session was made for the refused calls.
    let r = post(
        &s,
        "/session/list",
        &[("X-Worker-ID", "w-moved")],
        json!({}),
    );
    assert_eq!(r.body["data"]["count"], 0);
    // Once created here, naming it works.
    let r = post(
        &s,
        "/session/create",
        &[("X-Worker-ID", "w-moved")],
        json!({"resource_type": "fixture"}),
    );
    let sid = r.body["data"]["session_id"].as_str().unwrap().to_string();
    let r = call(Some(&sid), None);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(Some(&sid), Some("fixture-other"));
    assert_eq!(
        r.body["code"], 1002,
        "a body and header naming different sessions"
    );
}

#[test]
fn ready_waits_for_the_startup_warmup() {
    ready_waits_for_the_warmup_and_shows_its_progress("");
}

#[test]
fn an_isolated_plugin_s_warmup_progress_shows_too() {
    // The line is logged in the plugin's own process.
    ready_waits_for_the_warmup_and_shows_its_progress("[plugins.fixture]\nmode = \"isolated\"\n");
}

fn ready_waits_for_the_warmup_and_shows_its_progress(plugin_toml: &str) {
    let s = Server::builder()
        .plugin("fixture")
        .server("warmup = [\"fixture\"]")
        .toml(&format!(
            "{plugin_toml}[plugins.fixture.config]\nwarmup_delay = 1.5"
        ))
        .start();
    let r = s.send("GET", "/ready", &[], None);
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (503, Some("warming"))
    );
    // /warmup/status says which backend warms and what it last reported.
    let fixture =
        || s.send("GET", "/warmup/status", &[], None).body["data"]["backends"]["fixture"].clone();
    // The state turns to warming just before the plugin's first line.
    let reported = |f: &serde_json::Value| {
        f["state"] == "warming" && f["progress"] == "warming up slowly: 1.5 s (warmup_delay)"
    };
    assert!(
        agentflow_e2e::eventually(Duration::from_secs(1), || reported(&fixture())),
        "{}",
        fixture()
    );
    let mode = if plugin_toml.contains("isolated") {
        "isolated"
    } else {
        "in_process"
    };
    assert_eq!(fixture()["mode"], mode);
    assert!(agentflow_e2e::eventually(Duration::from_secs(20), || s
        .send("GET", "/ready", &[], None)
        .status
        == 200));
}

#[test]
fn sigterm_drains_refusing_new_work_while_calls_in_flight_finish() {
    let mut s = Server::builder()
        .plugin("fixture")
        .server("shutdown_grace = 20")
        .start();
    let h = [("X-Worker-ID", "w-busy")];
    let r = post(
        &s,
        "/session/create",
        &h,
        json!({"resource_type": "fixture"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(s.send("GET", "/ready", &[], None).status, 200);
    let in_flight = std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            post(
                &s,
                "/execute",
                &h,
                json!({"action": "fixture:sleep", "params": {"seconds": 3}}),
            )
        });
        // Let the call start, then ask the host to stop while it runs.
        std::thread::sleep(Duration::from_millis(700));
        s.signal("TERM");
        assert!(agentflow_e2e::eventually(Duration::from_secs(5), || s
            .send("GET", "/ready", &[], None)
            .status
            == 503));
        let ready = s.send("GET", "/ready", &[], None);
        assert_eq!(ready.body["status"], "draining");
        let refused = post(
            &s,
            "/session/create",
            &[("X-Worker-ID", "w-new")],
            json!({"resource_type": "fixture"}),
        );
        assert_eq!(
            (refused.status, refused.body["code"].as_u64()),
            (503, Some(5002))
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        call.join().unwrap()
    });
    assert_eq!(in_flight.status, 200, "{:?}", in_flight.body);
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(s.log().contains("sessions_cleaned=1"), "{}", s.log());
}
