//! Hot-plug: real plugin files dropped into a running server's directory.

use std::path::Path;
use std::time::Duration;

use agentflow_e2e::{eventually, library, plugin_library, Server};
use serde_json::{json, Value};

fn status(s: &Server) -> Value {
    s.get("/warmup/status").1["data"]["backends"].clone()
}

/// Writes beside the target and renames into place, as a careful deployer does.
fn install(src: &Path, dir: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn tool_names(s: &Server) -> Vec<String> {
    s.get("/tools?include_hidden=true").1["data"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_plugin_copied_into_a_running_server_is_discovered_then_warmed_and_called() {
    let s = Server::builder().server("rescan_interval = 1").start();
    assert!(tool_names(&s).is_empty());
    std::fs::copy(
        plugin_library("fixture"),
        s.plugin_dir().join("libagentflow_fixture.so"),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || status(&s)["fixture"]["state"]
            == "discovered"),
        "not discovered: {}",
        status(&s)
    );
    let entry = &status(&s)["fixture"];
    assert_eq!(entry["loaded"], false);
    assert_eq!(entry["file"]["name"], "libagentflow_fixture.so");
    assert_eq!(entry["file"]["hash"].as_str().unwrap().len(), 64);
    assert!(entry["file"]["size"].as_u64().unwrap() > 0);
    // Discovered is not loaded: its tools are not served yet.
    assert!(tool_names(&s).is_empty());
    assert_eq!(s.execute("w", "fixture:echo", json!({"text": "x"})).0, 404);

    let (code, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["backends"]["fixture"]["warmed_up"], true);
    assert!(tool_names(&s).contains(&"fixture:echo".to_string()));
    let (code, body) = s.execute("w", "fixture:echo", json!({"text": "hot"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["text"], "hot");
}

#[test]
fn an_upgrade_keeps_old_sessions_on_the_old_version_until_they_end() {
    upgrade_drains("");
}

#[test]
fn an_isolated_plugin_upgrades_and_drains_the_same_way_and_its_old_process_ends() {
    upgrade_drains("[plugins.fixture]\nmode = \"isolated\"\n");
}

fn upgrade_drains(plugin_toml: &str) {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("shutdown");
    let s = Server::builder()
        .plugin("fixture")
        .server("rescan_interval = 1")
        .toml(plugin_toml)
        .env("FIXTURE_SHUTDOWN_MARKER", marker.to_str().unwrap())
        .start();
    let old_runner = status(&s)["fixture"]["process"]["pid"].as_u64();
    assert_eq!(
        old_runner.is_some(),
        plugin_toml.contains("isolated"),
        "{}",
        status(&s)
    );
    let (code, _) = s.post(
        "/session/create",
        json!({"worker_id": "old", "resource_type": "fixture"}),
    );
    assert_eq!(code, 200);
    assert_eq!(
        s.execute("old", "fixture:echo", json!({"text": "a"})).1["data"]["version"],
        "0.1.0"
    );

    install(
        &library("agentflow_fixture_v2"),
        &s.plugin_dir(),
        "libagentflow_fixture.so",
    );
    assert!(
        eventually(Duration::from_secs(15), || status(&s)["fixture"]["state"]
            == "pending_upgrade"),
        "no pending upgrade: {}",
        status(&s)
    );
    // Pending until /warmup: calls still reach version 1.
    assert_eq!(
        s.execute("x", "fixture:echo", json!({"text": "a"})).1["data"]["version"],
        "0.1.0"
    );

    let (code, body) = s.post("/warmup", json!({"backends": ["fixture"]}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["backends"]["fixture"]["version"], "2.0.0");

    // The open session stays on version 1; new sessions and temporary ones get version 2.
    assert_eq!(
        s.execute("old", "fixture:echo", json!({"text": "a"})).1["data"]["version"],
        "0.1.0"
    );
    s.post(
        "/session/create",
        json!({"worker_id": "new", "resource_type": "fixture"}),
    );
    assert_eq!(
        s.execute("new", "fixture:echo", json!({"text": "a"})).1["data"]["version"],
        "2.0.0"
    );
    assert_eq!(
        s.execute("temp", "fixture:echo", json!({"text": "a"})).1["data"]["version"],
        "2.0.0"
    );
    let st = status(&s);
    assert_eq!(st["fixture"]["version"], "2.0.0");
    assert_eq!(st["fixture"]["draining"][0]["version"], "0.1.0", "{st}");
    assert_eq!(st["fixture"]["draining"][0]["sessions"], 1);
    let v1_marker = marker_dir.path().join("shutdown.0.1.0");
    assert!(
        !v1_marker.exists(),
        "version 1 shut down while a session still used it"
    );

    let (code, _) = s.post(
        "/session/destroy",
        json!({"worker_id": "old", "resource_type": "fixture"}),
    );
    assert_eq!(code, 200);
    assert!(
        eventually(Duration::from_secs(10), || v1_marker.exists()),
        "version 1 was not shut down"
    );
    assert!(status(&s)["fixture"].get("draining").is_none());
    assert!(!marker_dir.path().join("shutdown.2.0.0").exists());
    if let Some(pid) = old_runner {
        // Isolated: version 1's process ended with it; version 2 has its own.
        assert!(
            eventually(Duration::from_secs(10), || std::fs::read(format!(
                "/proc/{pid}/cmdline"
            ))
            .map_or(true, |c| c.is_empty())),
            "version 1's runner {pid} is still running"
        );
        let now = status(&s)["fixture"]["process"]["pid"].as_u64();
        assert!(now.is_some() && now != Some(pid), "{}", status(&s));
    }
}

#[test]
fn unusable_files_show_their_reason_and_change_nothing_that_runs() {
    let s = Server::builder()
        .plugin("fixture")
        .server("rescan_interval = 1")
        .start();
    let dir = s.plugin_dir();
    let bytes = std::fs::read(plugin_library("fixture")).unwrap();
    std::fs::write(
        dir.join("libagentflow_truncated.so"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    std::fs::write(dir.join("libagentflow_notes.so"), "just some text").unwrap();
    std::fs::copy(
        library("agentflow_fixture_old_api"),
        dir.join("libagentflow_oldapi.so"),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || {
            let st = status(&s);
            st["truncated"]["state"] == "failed"
                && st["notes"]["state"] == "failed"
                && st["oldapi"]["state"] == "discovered"
        }),
        "{}",
        status(&s)
    );
    let st = status(&s);
    assert!(
        st["truncated"]["error"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{st}"
    );
    assert!(
        st["notes"]["error"]
            .as_str()
            .unwrap()
            .contains("not an ELF"),
        "{st}"
    );
    // The old-API library only shows its reason once /warmup tries it.
    let (code, body) = s.post("/warmup", json!({}));
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["data"]["backends"]["fixture"]["warmed_up"], true);
    let reason = body["data"]["backends"]["oldapi"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("plugin-api 1.0.0"), "{reason}");
    assert_eq!(status(&s)["oldapi"]["state"], "failed");
    let (code, _) = s.execute("w", "fixture:echo", json!({"text": "still"}));
    assert_eq!(code, 200);
}

#[test]
fn removing_files_forgets_discoveries_and_keeps_loaded_plugins_running() {
    let s = Server::builder()
        .plugin("fixture")
        .server("rescan_interval = 1")
        .start();
    let dir = s.plugin_dir();
    std::fs::copy(plugin_library("fixture"), dir.join("libagentflow_other.so")).unwrap();
    // Same content as what runs: nothing new to show.
    std::thread::sleep(Duration::from_secs(3));
    assert!(status(&s).get("other").is_none(), "{}", status(&s));
    std::fs::copy(
        library("agentflow_fixture_v2"),
        dir.join("libagentflow_spare.so"),
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(15), || status(&s)["spare"]
        ["state"]
        == "discovered"));
    std::fs::remove_file(dir.join("libagentflow_spare.so")).unwrap();
    assert!(eventually(Duration::from_secs(15), || status(&s)
        .get("spare")
        .is_none()));
    std::fs::remove_file(dir.join("libagentflow_fixture.so")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = s.execute("w", "fixture:echo", json!({"text": "still"}));
    assert_eq!(code, 200);
}

#[test]
fn auto_load_serves_new_plugins_without_a_warmup_call() {
    let s = Server::builder()
        .server("auto_load = true")
        .server("rescan_interval = 1")
        .start();
    install(
        &plugin_library("fixture"),
        &s.plugin_dir(),
        "libagentflow_fixture.so",
    );
    assert!(eventually(Duration::from_secs(15), || s
        .execute("w", "fixture:echo", json!({"text": "x"}))
        .0
        == 200));
}
