//! Access control: bearer tokens and refusing unauthenticated remote binds.

use agentflow_e2e::Server;
use serde_json::json;

const TOKEN: &str = "s3cret-token-value";

#[test]
fn a_token_guards_every_endpoint_but_health() {
    let s = Server::builder()
        .plugin("fixture")
        .env("AGENTFLOW_TOKEN", TOKEN)
        .start();
    assert_eq!(s.get("/health").0, 200);
    let (status, body) = s.get("/tools");
    assert_eq!(status, 401);
    assert_eq!(body["code"], 1006);
    assert!(body["message"].as_str().unwrap().contains("Bearer"));
    let wrong = s.request("GET", "/tools", &[("Authorization", "Bearer nope")], None);
    assert_eq!((wrong.0, wrong.1["code"].clone()), (401, json!(1006)));
    let bearer = format!("Bearer {TOKEN}");
    let ok = s.request(
        "POST",
        "/execute",
        &[("Authorization", &bearer)],
        Some(json!({"worker_id": "w", "action": "fixture:echo", "params": {"text": "x"}})),
    );
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert!(!s.log().contains(TOKEN), "the token leaked into the log");
}

#[test]
fn binding_a_remote_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(Server::binary())
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--config"])
        .arg(dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = std::process::Command::new(Server::binary())
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .current_dir(dir.path())
        .env_remove("AGENTFLOW_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a token") && err.contains("allow_unauthenticated_remote"),
        "{err}"
    );
}
