//! A streaming `run` (`/execute/stream`): the command's output is passed on
//! as it is produced, in order, and the result still carries all of it.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use agentflow_bash::BashPlugin;
use common::*;
use plugin_api::{CallContext, Plugin};
use serde_json::json;

#[test]
fn output_is_passed_on_as_it_comes_and_whole_in_the_result() {
    let h = Harness::new();
    let s = h.session("stream", json!({}));
    let started = Instant::now();
    let chunks: Mutex<Vec<(String, String, Duration)>> = Mutex::new(Vec::new());
    let record = |stream: &str, text: &str| {
        chunks
            .lock()
            .unwrap()
            .push((stream.to_string(), text.to_string(), started.elapsed()));
    };
    let cancel = AtomicBool::new(false);
    let cx = CallContext::new(
        Some(&s),
        "stream",
        "w1",
        &cancel,
        SystemTime::now() + Duration::from_secs(60),
    )
    .with_emitter(&record);
    // A multi-byte character split across writes arrives whole.
    let command = "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; printf '\\xc3'; sleep 0.1; printf '\\xa9\\n'; echo oops >&2";
    let result = BashPlugin::tools()
        .call(h.plugin(), &cx, "run", json!({ "command": command }))
        .unwrap();
    let done = started.elapsed();
    let chunks = chunks.into_inner().unwrap();
    let stdout: String = chunks
        .iter()
        .filter(|(s, _, _)| s == "stdout")
        .map(|(_, t, _)| t.as_str())
        .collect();
    let stderr: String = chunks
        .iter()
        .filter(|(s, _, _)| s == "stderr")
        .map(|(_, t, _)| t.as_str())
        .collect();
    assert_eq!(stdout, result["stdout"].as_str().unwrap());
    assert_eq!(stdout, "line 1\nline 2\nline 3\nline 4\nline 5\né\n");
    assert_eq!(stderr, "oops\n");
    assert!(
        chunks.iter().all(|(_, t, _)| !t.contains('\u{fffd}')),
        "{chunks:?}"
    );
    // The first line was passed on while the others were still to come.
    let first = chunks.first().unwrap();
    assert_eq!(first.1, "line 1\n");
    assert!(first.2 + Duration::from_millis(300) < done, "{chunks:?}");
}

#[test]
fn a_streaming_wait_passes_on_a_background_process_output_as_it_comes() {
    let h = Harness::new();
    let s = h.session("stream-wait", json!({}));
    let cancel = AtomicBool::new(false);
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let plain = CallContext::new(Some(&s), "stream-wait", "w1", &cancel, deadline);
    let started = BashPlugin::tools()
        .call(
            h.plugin(),
            &plain,
            "start",
            json!({"command": "for i in 1 2 3 4; do echo w$i; sleep 0.2; done"}),
        )
        .unwrap();
    let clock = Instant::now();
    let chunks: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());
    let record = |_: &str, text: &str| {
        chunks
            .lock()
            .unwrap()
            .push((text.to_string(), clock.elapsed()))
    };
    let cx =
        CallContext::new(Some(&s), "stream-wait", "w1", &cancel, deadline).with_emitter(&record);
    let result = BashPlugin::tools()
        .call(
            h.plugin(),
            &cx,
            "wait",
            json!({"id": started["id"], "timeout": 20}),
        )
        .unwrap();
    let done = clock.elapsed();
    let chunks = chunks.into_inner().unwrap();
    let streamed: String = chunks.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(result["stdout"], "w1\nw2\nw3\nw4\n");
    assert_eq!(streamed, "w1\nw2\nw3\nw4\n");
    assert_eq!(result["running"], false);
    assert!(
        chunks[0].1 + Duration::from_millis(300) < done,
        "{chunks:?}"
    );
}
