//! The built cdylib through the host's loader: the same ABI path the host uses.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use plugin_api::{ErrorKind, SessionModel};
use plugin_loader::LoadedPlugin;
use serde_json::json;

/// `target/<profile>/libagentflow_vm.so`, built by `cargo test` next to the test binaries.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let lib = dir.join("libagentflow_vm.so");
    assert!(
        lib.exists(),
        "{} is missing: build the crate first",
        lib.display()
    );
    lib
}

#[test]
fn the_library_serves_a_session_through_the_abi() {
    let plugin = LoadedPlugin::load(&library()).expect("load");
    assert_eq!(plugin.info().name, "vm");
    assert_eq!(plugin.info().session_model, SessionModel::PerWorker);
    assert_eq!(plugin.tools().iter().filter(|t| !t.hidden).count(), 16);
    assert!(plugin.tools().iter().all(|t| t.parameters.is_object()));
    plugin.warmup(&json!({})).expect("warmup");
    plugin
        .initialize("vm_w9_001_abi", &json!({"screen_size": [320, 200]}))
        .expect("initialize");
    let cancel = AtomicBool::new(false);
    let control = plugin_loader::CallControl {
        cancel: &cancel,
        deadline: SystemTime::now() + Duration::from_secs(30),
        emitter: None,
    };
    let text = plugin
        .call(
            Some("vm_w9_001_abi"),
            "w9",
            "screenshot",
            &json!({}),
            &control,
        )
        .expect("screenshot");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (
            v["width"].as_u64(),
            v["height"].as_u64(),
            v["format"].as_str()
        ),
        (Some(320), Some(200), Some("png"))
    );
    let e = plugin
        .call(
            Some("vm_w9_001_abi"),
            "w9",
            "click",
            &json!({"x": 320, "y": 0}),
            &control,
        )
        .expect_err("outside the screen");
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(e.message.contains("x=320"), "{}", e.message);
    plugin.cleanup("vm_w9_001_abi").expect("cleanup");
    let e = plugin
        .call(
            Some("vm_w9_001_abi"),
            "w9",
            "screenshot",
            &json!({}),
            &control,
        )
        .expect_err("the session is gone");
    assert_eq!(e.kind, ErrorKind::NoSession);
    plugin.shutdown().expect("shutdown");
}
