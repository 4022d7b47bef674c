//! The built `libagentflow_rag.so` loads through the plugin ABI as the host
//! loads it, and answers tools across the boundary.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use plugin_loader::LoadedPlugin;
use serde_json::{json, Value};

/// The cdylib cargo built next to this test binary (in `deps/`).
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let lib = deps.join("libagentflow_rag.so");
    assert!(
        lib.is_file(),
        "{} was not built with the tests",
        lib.display()
    );
    lib
}

#[test]
fn the_library_loads_and_answers_through_the_abi() {
    let plugin = LoadedPlugin::load(&library()).unwrap_or_else(|e| panic!("load: {e}"));
    assert_eq!(plugin.info().name, "rag");
    let mut names: Vec<(String, bool)> = plugin
        .tools()
        .iter()
        .map(|t| (t.name.clone(), t.hidden))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("batch_search".into(), false),
            ("index".into(), false),
            ("search".into(), false),
            ("stats".into(), true)
        ]
    );
    let search = plugin.tools().iter().find(|t| t.name == "search").unwrap();
    assert!(
        search.parameters["properties"]["query"].is_object(),
        "{}",
        search.parameters
    );

    let dir = tempfile::tempdir().unwrap();
    plugin
        .warmup(&json!({"index_path": dir.path().join("index"), "dense": false}))
        .unwrap();
    let cancel = AtomicBool::new(false);
    let control = plugin_loader::CallControl {
        cancel: &cancel,
        deadline: SystemTime::now() + Duration::from_secs(60),
        emitter: None,
    };
    let call = |tool: &str, params: Value| -> Value {
        let text = plugin
            .call(None, "w1", tool, &params, &control)
            .unwrap_or_else(|e| panic!("{tool}: {:?} {}", e.kind, e.message));
        serde_json::from_str(&text).unwrap()
    };
    let answer = call(
        "index",
        json!({"documents": [{"id": "abi", "title": "ABI", "content": "crossing the boundary"}]}),
    );
    assert_eq!(answer["total"], 1);
    let result = call("search", json!({"query": "boundary"}));
    assert_eq!(result["context"], "[ABI]\ncrossing the boundary");
    let e = plugin
        .call(None, "w1", "search", &json!({"query": ""}), &control)
        .unwrap_err();
    assert_eq!(e.kind, plugin_api::ErrorKind::InvalidParams);
    plugin.shutdown().unwrap();
}
