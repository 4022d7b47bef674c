//! Operating the host: the OpenAPI description checked by an independent
//! validator and by schemathesis against the real server and plugins,
//! `/metrics` read by the Python prometheus-client parser after a known
//! sequence of calls, and `/ready` through a failed warmup. The Python
//! packages come from `scripts/setup.sh`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use agentflow_e2e::{eventually, Server};
use serde_json::{json, Value};

const TOKEN: &str = "ops-test-token";

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `tests/python/<script>` with `input` on stdin: (success, stdout, stderr).
fn python(script: &str, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new("python3")
        .arg(python_dir().join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/setup.sh installs what these tests need)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("python3 output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "a Python package is missing; run scripts/setup.sh:\n{stderr}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

fn auth() -> String {
    format!("Bearer {TOKEN}")
}

/// GET with the token; the body as text.
fn get_text(s: &Server, path: &str) -> (u16, String) {
    let r = s.send("GET", path, &[("Authorization", &auth())], None);
    let text = match &r.body {
        Value::Object(m) if m.contains_key("raw") => m["raw"].as_str().unwrap_or("").to_string(),
        other => other.to_string(),
    };
    (r.status, text)
}

fn openapi(s: &Server) -> Value {
    let r = s.send("GET", "/openapi.json", &[("Authorization", &auth())], None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn assert_valid(doc: &Value) {
    let (ok, out, err) = python("validate_openapi.py", &[], &doc.to_string());
    assert!(
        ok,
        "openapi-spec-validator refused the document:\n{out}\n{err}"
    );
}

#[test]
fn the_description_validates_and_follows_the_live_registry() {
    let s = Server::builder()
        .plugin("bash")
        .server(&format!("auth_token = \"{TOKEN}\""))
        .server("max_timeout = 120")
        .start();
    let doc = openapi(&s);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_valid(&doc);
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["params.bash.run"]["properties"]["command"].is_object(),
        "{}",
        schemas["params.bash.run"]
    );
    assert_eq!(
        schemas["ExecuteBodyCommon"]["properties"]["timeout"]["maximum"],
        120.0
    );
    let variants: Vec<&str> = schemas["ToolCall"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let name = v["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            schemas[name]["properties"]["action"]["const"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        variants.contains(&"bash:run") && !variants.iter().any(|v| v.starts_with("fixture:")),
        "{variants:?}"
    );
    // The auth scheme and the routing header are described.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let headers = doc["paths"]["/execute"]["post"]["parameters"].to_string();
    assert!(headers.contains("X-Worker-ID"), "{headers}");

    // A plugin dropped in and warmed shows up at the next request.
    std::fs::copy(
        agentflow_e2e::plugin_library("fixture"),
        s.plugin_dir().join("libagentflow_fixture.so"),
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(20), || {
        let r = s.send(
            "POST",
            "/warmup",
            &[("Authorization", &auth())],
            Some(json!({"backends": ["fixture"]})),
        );
        r.status == 200
    }));
    let doc = openapi(&s);
    let echo = &doc["components"]["schemas"]["params.fixture.echo"];
    assert_eq!(echo["required"], json!(["text"]), "{echo}");
    assert_eq!(
        doc["components"]["schemas"]["call.fixture.echo"]["properties"]["action"]["const"],
        "fixture:echo"
    );
    assert_valid(&doc);
}

/// schemathesis (property-based, driven by the description) against the
/// real server with the bash plugin: every operation but `/shutdown`, a
/// bounded number of examples each; no 500, every answer as described
/// (checks and the documented 5xx in `tests/python/schemathesis.toml`).
#[test]
fn schemathesis_finds_nothing_against_the_real_server() {
    let s = Server::builder()
        .plugin("bash")
        .server(&format!("auth_token = \"{TOKEN}\""))
        // Generated commands end within seconds, whatever they are.
        .server("default_timeout = 5")
        .server("max_timeout = 10")
        .start();
    let seed = std::env::var("AGENTFLOW_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let url = format!("{}/openapi.json", s.base);
    let config = python_dir().join("schemathesis.toml");
    let header = format!("Authorization: {}", auth());
    let args = [
        "--config-file",
        config.to_str().unwrap(),
        "run",
        &url,
        "-H",
        &header,
        "--max-examples",
        "15",
        "--exclude-path",
        "/shutdown",
        "--workers",
        "1",
        "--seed",
        &seed,
    ];
    let (ok, out, err) = python("run_schemathesis.py", &args, "");
    assert!(
        ok,
        "schemathesis found problems (seed {seed}):\n{out}\n{err}\nserver log:\n{}",
        s.log()
    );
    assert!(out.contains("passed"), "{out}");
    // The host stayed up throughout.
    assert_eq!(s.get("/health").0, 200);
}

/// Samples as parsed by prometheus-client: (name, labels, value).
struct Samples(Vec<(String, serde_json::Map<String, Value>, f64)>);

impl Samples {
    fn parse(text: &str) -> Self {
        let (ok, out, err) = python("parse_metrics.py", &[], text);
        assert!(
            ok,
            "prometheus-client could not parse /metrics:\n{err}\n{text}"
        );
        let raw: Vec<(String, serde_json::Map<String, Value>, Value)> =
            serde_json::from_str(&out).expect("parser output");
        Samples(
            raw.into_iter()
                .map(|(n, l, v)| {
                    let v = v.as_f64().unwrap_or(match v.as_str() {
                        Some("inf") => f64::INFINITY,
                        _ => f64::NAN,
                    });
                    (n, l, v)
                })
                .collect(),
        )
    }

    /// The value of the one sample with this name and these labels (others may exist).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
            })
            .map(|s| s.2)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}

#[test]
fn metrics_count_a_known_sequence_of_calls() {
    let s = Server::builder()
        .plugin("fixture")
        .server(&format!("auth_token = \"{TOKEN}\""))
        .server("body_limit = 4096")
        .server("max_inflight_per_plugin = 7")
        .start();
    let a = auth();
    let h = [("Authorization", a.as_str())];
    let call = |action: &str, params: Value, timeout: Option<f64>| {
        let mut body = json!({"worker_id": "w1", "action": action, "params": params});
        if let Some(t) = timeout {
            body["timeout"] = json!(t);
        }
        s.send("POST", "/execute", &h, Some(body)).status
    };
    for i in 0..3 {
        assert_eq!(
            call("fixture:echo", json!({"text": format!("hi {i}")}), None),
            200
        );
    }
    assert_eq!(call("fixture:echo", json!({"count": 1}), None), 400);
    assert_eq!(call("fixture:sleep", json!({"seconds": 3}), Some(0.3)), 504);
    assert_eq!(call("fixture:fail", json!({}), None), 502);
    for (path, worker) in [
        ("/session/create", "w2"),
        ("/session/destroy", "w2"),
        ("/session/create", "w3"),
    ] {
        let r = s.send(
            "POST",
            path,
            &h,
            Some(json!({"worker_id": worker, "resource_type": "fixture"})),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // Refused: no token; a body over the limit.
    assert_eq!(s.send("GET", "/tools", &[], None).status, 401);
    let big =
        json!({"worker_id": "w1", "action": "fixture:echo", "params": {"text": "x".repeat(8192)}});
    assert_eq!(s.send("POST", "/execute", &h, Some(big)).status, 413);
    // Same auth as the rest.
    assert_eq!(s.send("GET", "/metrics", &[], None).status, 401);

    let (status, text) = get_text(&s, "/metrics");
    assert_eq!(status, 200, "{text}");
    let m = Samples::parse(&text);
    let calls = "agentflow_tool_calls_total";
    assert_eq!(
        m.value(calls, &[("tool", "fixture:echo"), ("result", "ok")]),
        3.0
    );
    assert_eq!(
        m.value(
            calls,
            &[("tool", "fixture:echo"), ("result", "invalid_params")]
        ),
        1.0
    );
    assert_eq!(
        m.value(calls, &[("tool", "fixture:sleep"), ("result", "timeout")]),
        1.0
    );
    assert_eq!(
        m.value(calls, &[("tool", "fixture:fail"), ("result", "backend")]),
        1.0
    );
    // The latency histogram: 4 echo calls, all fast; the timed-out sleep
    // landed between 0.25 s and 0.5 s.
    let bucket = "agentflow_tool_call_duration_seconds_bucket";
    assert_eq!(
        m.value(
            "agentflow_tool_call_duration_seconds_count",
            &[("tool", "fixture:echo")]
        ),
        4.0
    );
    assert_eq!(
        m.value(bucket, &[("tool", "fixture:echo"), ("le", "+Inf")]),
        4.0
    );
    assert_eq!(
        m.value(bucket, &[("tool", "fixture:sleep"), ("le", "0.25")]),
        0.0
    );
    assert_eq!(
        m.value(bucket, &[("tool", "fixture:sleep"), ("le", "0.5")]),
        1.0
    );
    let sum = m.value(
        "agentflow_tool_call_duration_seconds_sum",
        &[("tool", "fixture:sleep")],
    );
    assert!((0.29..0.5).contains(&sum), "{sum}");

    let requests = "agentflow_http_requests_total";
    for (status, n) in [
        ("200", 3.0),
        ("400", 1.0),
        ("504", 1.0),
        ("502", 1.0),
        ("413", 1.0),
    ] {
        assert_eq!(
            m.value(requests, &[("endpoint", "/execute"), ("status", status)]),
            n,
            "/execute {status}"
        );
    }
    assert_eq!(
        m.value(requests, &[("endpoint", "/tools"), ("status", "401")]),
        1.0
    );
    assert_eq!(
        m.value(
            "agentflow_http_request_duration_seconds_count",
            &[("endpoint", "/session/create")]
        ),
        2.0
    );
    assert_eq!(
        m.value("agentflow_refusals_total", &[("reason", "unauthorized")]),
        2.0
    );
    assert_eq!(
        m.value("agentflow_refusals_total", &[("reason", "body_limit")]),
        1.0
    );
    assert_eq!(
        m.value("agentflow_refusals_total", &[("reason", "plugin_busy")]),
        0.0
    );

    let fixture = [("resource_type", "fixture")];
    assert_eq!(m.value("agentflow_sessions_created_total", &fixture), 2.0);
    assert_eq!(m.value("agentflow_sessions_destroyed_total", &fixture), 1.0);
    assert_eq!(m.value("agentflow_sessions_active", &fixture), 1.0);

    let plugin = |state| {
        m.value(
            "agentflow_plugin_state",
            &[("plugin", "fixture"), ("state", state)],
        )
    };
    assert_eq!(
        (
            plugin("loaded"),
            plugin("warm"),
            plugin("failed"),
            plugin("draining")
        ),
        (1.0, 1.0, 0.0, 0.0)
    );
    assert!(
        m.value(
            "agentflow_plugin_warmup_duration_seconds",
            &[("plugin", "fixture")]
        ) > 0.0
    );
    assert_eq!(
        m.value("agentflow_plugin_inflight_limit", &[("plugin", "fixture")]),
        7.0
    );
    // The timed-out sleep still holds its slot until the plugin stops it.
    assert!(m.value("agentflow_plugin_inflight_calls", &[("plugin", "fixture")]) <= 1.0);
    assert!(m.value("agentflow_call_pool_threads", &[]) >= 1.0);
    assert!(m.value("agentflow_call_pool_queued_calls", &[]) >= 0.0);

    // Process figures agree with what the kernel says of the server.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
        .unwrap()
        .count() as f64;
    let reported = m.value("process_open_fds", &[]);
    assert!((reported - fds).abs() <= 8.0, "{reported} vs {fds}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let rss = m.value("process_resident_memory_bytes", &[]);
    assert!(
        rss > rss_kib * 1024.0 / 2.0 && rss < rss_kib * 1024.0 * 2.0,
        "{rss} vs {rss_kib} KiB"
    );
    // Every metric the Grafana dashboard queries is one the host serves.
    let dashboard = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/agentflow-dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard).unwrap()).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("agentflow_") || word.starts_with("process_") {
                    queried += 1;
                    let served = text.lines().any(|l| {
                        l.strip_prefix("# TYPE ")
                            .unwrap_or(l)
                            .split([' ', '{'])
                            .next()
                            == Some(word)
                    });
                    assert!(
                        served,
                        "the dashboard queries {word}, which /metrics does not serve"
                    );
                }
            }
        }
    }
    assert!(queried > 15, "{queried}");
}

#[test]
fn metrics_can_be_public_or_off() {
    let public = Server::builder()
        .plugin("fixture")
        .server(&format!("auth_token = \"{TOKEN}\""))
        .server("metrics_public = true")
        .start();
    let r = public.send("GET", "/metrics", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    // Only /metrics: the rest still wants the token.
    assert_eq!(public.send("GET", "/tools", &[], None).status, 401);
    let status = public.send("GET", "/warmup/status", &[("Authorization", &auth())], None);
    assert!(
        status.body["data"]["warnings"]
            .to_string()
            .contains("metrics_public"),
        "{}",
        status.body
    );
    assert!(public.log().contains("metrics_public"), "not logged");

    let off = Server::builder()
        .plugin("fixture")
        .server("metrics = false")
        .start();
    assert_eq!(off.send("GET", "/metrics", &[], None).status, 404);
}

#[test]
fn ready_is_not_ready_after_a_configured_backend_failed_to_warm() {
    let s = Server::builder()
        .plugin("fixture")
        .server(&format!("auth_token = \"{TOKEN}\""))
        .server("warmup = [\"fixture\"]")
        .toml("[plugins.fixture.config]\nfail_warmup_times = 1")
        .start();
    let failed = eventually(Duration::from_secs(20), || {
        s.send("GET", "/ready", &[], None).body["status"] == "warmup_failed"
    });
    assert!(failed, "{}", s.send("GET", "/ready", &[], None).body);
    let r = s.send("GET", "/ready", &[], None);
    assert_eq!(r.status, 503);
    assert_eq!(r.body["failed"], json!(["fixture"]));
    // Liveness is another matter.
    assert_eq!(s.get("/health").0, 200);
    let (_, text) = get_text(&s, "/metrics");
    let m = Samples::parse(&text);
    assert_eq!(
        m.value(
            "agentflow_plugin_state",
            &[("plugin", "fixture"), ("state", "failed")]
        ),
        1.0
    );

    // A later warmup that succeeds makes the host ready.
    let r = s.send(
        "POST",
        "/warmup",
        &[("Authorization", &auth())],
        Some(json!({"backends": ["fixture"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.send("GET", "/ready", &[], None);
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("ready")),
        "{}",
        r.body
    );
}
