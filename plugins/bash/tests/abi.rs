//! The built library through the host's loader: what the host really loads.

mod common;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use plugin_api::SessionModel;
use plugin_loader::{CallControl, LoadedPlugin};
use serde_json::json;

/// The library cargo built for this test run: the crate is a cdylib too, and
/// `cargo test` leaves it next to the test binary in `target/<profile>/deps`
/// (the copy in `target/<profile>` is only refreshed by `cargo build`).
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.with_file_name("libagentflow_bash.so")
}

#[test]
fn the_library_loads_and_runs_a_session() {
    let plugin = LoadedPlugin::load(&library()).expect("load");
    assert_eq!(plugin.info().name, "bash");
    assert_eq!(plugin.info().session_model, SessionModel::PerWorker);
    let names: Vec<_> = plugin
        .tools()
        .iter()
        .map(|t| (t.name.as_str(), t.hidden))
        .collect();
    assert_eq!(
        names,
        [
            ("run", false),
            ("write_file", false),
            ("read_file", false),
            ("start", false),
            ("output", false),
            ("wait", false),
            ("kill", false),
            ("write_stdin", false),
            ("processes", false),
            ("info", true)
        ]
    );

    let root = std::env::temp_dir().join(format!("agentflow-bash-abi-{}", std::process::id()));
    plugin
        .warmup(&json!({ "workspace_root": root }))
        .expect("warmup");
    let isolation = if common::is_root() {
        "bubblewrap"
    } else {
        "none"
    };
    plugin
        .initialize("abi", &json!({"env": {"WHO": "abi"}}))
        .expect("initialize");
    let cancel = AtomicBool::new(false);
    let control = CallControl {
        cancel: &cancel,
        deadline: SystemTime::now() + Duration::from_secs(60),
        emitter: None,
    };
    let result = plugin
        .call(
            Some("abi"),
            "w1",
            "run",
            &json!({"command": "echo hello $WHO"}),
            &control,
        )
        .expect("run");
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["stdout"], "hello abi\n");
    let info = plugin
        .call(Some("abi"), "w1", "info", &json!({}), &control)
        .expect("info");
    assert!(
        info.contains(&format!("\"isolation\":\"{isolation}\"")),
        "{info}"
    );
    plugin.cleanup("abi").expect("cleanup");
    plugin.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(root);
}
