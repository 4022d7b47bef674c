//! Unit tests of the core (executor, sessions, warmup, call caps) over Rust
//! test plugins (`testing.rs`): the real core, no library built.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_api::SessionModel;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::error::CoreError;
use super::executor::{ExecReport, ExecRequest};
use super::testing::{core_with, text_schema, wait_for_cancel, RustPlugin};
use super::Core;

fn request(action: &str, params: Value) -> ExecRequest {
    ExecRequest {
        worker_id: "w".into(),
        action: action.into(),
        params,
        timeout: None,
        cancel: None,
        session: None,
        chunks: None,
        origin: Default::default(),
    }
}

async fn run(core: &Arc<Core>, req: ExecRequest) -> ExecReport {
    core.execute(req).await
}

fn echo(model: SessionModel) -> RustPlugin {
    RustPlugin::new("t", model).tool("echo", text_schema(), |a| {
        Ok(json!({"text": a.params["text"], "session": a.session_id}))
    })
}

/// A shared plugin whose `wait` runs until its cancel flag is set, then
/// records in `saw_cancel` that it saw the flag.
fn waiter(saw_cancel: Arc<AtomicBool>) -> RustPlugin {
    RustPlugin::new("t", SessionModel::Shared).tool("wait", json!({"type": "object"}), move |a| {
        let r = wait_for_cancel(a);
        saw_cancel.store(a.cancel.load(Ordering::SeqCst), Ordering::SeqCst);
        r
    })
}

/// Polls `f` for up to two seconds.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_a_session_gets_a_temporary_one_that_ends_with_it() {
    let plugin = echo(SessionModel::PerWorker);
    let log = plugin.log.clone();
    let core = core_with("", vec![plugin]);
    let report = run(&core, request("t:echo", json!({"text": "hi"}))).await;
    let out: Value = serde_json::from_str(report.result.unwrap().get()).unwrap();
    assert_eq!(out["text"], "hi");
    assert!(report.meta.temporary_session);
    let sid = report.meta.session_id.unwrap();
    assert_eq!(out["session"], sid.as_str());
    assert_eq!(
        *log.lock().unwrap(),
        [
            "warmup".to_string(),
            format!("initialize {sid}"),
            "call echo".into(),
            format!("cleanup {sid}")
        ]
    );
    assert!(core.sessions.list("w").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_session_serves_every_call_until_destroyed() {
    let plugin = echo(SessionModel::PerWorker);
    let log = plugin.log.clone();
    let core = core_with("", vec![plugin]);
    let (session, created) = core
        .create_session("w", "t", &Value::Null, None, false)
        .await
        .unwrap();
    assert!(created);
    for _ in 0..2 {
        let report = run(&core, request("t_echo", json!({"text": "x"}))).await;
        assert!(report.result.is_ok());
        assert_eq!(report.meta.session_id.as_deref(), Some(session.id.as_str()));
        assert!(!report.meta.temporary_session);
    }
    core.destroy_session("w", "t").await.unwrap();
    assert!(log
        .lock()
        .unwrap()
        .contains(&format!("cleanup {}", session.id)));
    // The worker's last session is gone, and with it the worker.
    let again = core.destroy_session("w", "t").await.err();
    assert!(
        matches!(again, Some(CoreError::WorkerNotFound(_))),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_naming_a_session_this_host_lacks_is_refused_not_run_elsewhere() {
    let plugin = echo(SessionModel::PerWorker);
    let log = plugin.log.clone();
    let core = core_with("", vec![plugin]);
    let named = |session: &str| ExecRequest {
        session: Some(session.into()),
        ..request("t:echo", json!({"text": "x"}))
    };
    // No session at all: refused, and no temporary session is made for it.
    let report = run(&core, named("gone-1")).await;
    match report.result {
        Err(CoreError::SessionNotHere { session, worker }) => {
            assert_eq!((session.as_str(), worker.as_str()), ("gone-1", "w"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("initialize")));
    // A session, but another one than the call expects.
    let (session, _) = core
        .create_session("w", "t", &Value::Null, None, false)
        .await
        .unwrap();
    let report = run(&core, named("gone-1")).await;
    assert!(matches!(
        report.result,
        Err(CoreError::SessionNotHere { .. })
    ));
    let report = run(&core, named(&session.id)).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    // Only the call in the expected session reached the plugin.
    let calls = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| *l == "call echo")
        .count();
    assert_eq!(calls, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_call_hands_its_chunks_over_in_order() {
    let plugin =
        RustPlugin::new("t", SessionModel::Shared).tool("talk", json!({"type": "object"}), |a| {
            if let Some(emit) = a.emit {
                emit("stdout", "one\n");
                emit("stderr", "two\n");
            }
            Ok(json!({"said": 2}))
        });
    let core = core_with("", vec![plugin]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let report = run(
        &core,
        ExecRequest {
            chunks: Some(tx),
            ..request("t:talk", json!({}))
        },
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let mut got = Vec::new();
    while let Ok(c) = rx.try_recv() {
        got.push((c.stream, c.text));
    }
    assert_eq!(
        got,
        [
            ("stdout".to_string(), "one\n".to_string()),
            ("stderr".to_string(), "two\n".to_string())
        ]
    );
    // Without a receiver the same tool runs and emits nowhere.
    let report = run(&core, request("t:talk", json!({}))).await;
    assert!(report.result.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn params_that_break_the_schema_never_reach_the_plugin() {
    let plugin = echo(SessionModel::Shared);
    let log = plugin.log.clone();
    let core = core_with("", vec![plugin]);
    let err = run(&core, request("t:echo", json!({"text": 5})))
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, CoreError::InvalidParams(_)), "{err:?}");
    assert!(err.to_string().contains("'text'"), "{err}");
    assert!(!log.lock().unwrap().iter().any(|l| l.starts_with("call")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_past_its_timeout_is_answered_then_and_the_plugin_is_told_to_stop() {
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let plugin = waiter(saw_cancel.clone());
    let core = core_with("", vec![plugin]);
    let mut req = request("t:wait", json!({}));
    req.timeout = Some(0.2);
    let started = Instant::now();
    let err = run(&core, req).await.result.unwrap_err();
    assert!(matches!(err, CoreError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(eventually(|| saw_cancel.load(Ordering::SeqCst)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cancel_stops_the_call_through_the_plugins_flag() {
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let plugin = waiter(saw_cancel.clone());
    let core = core_with("", vec![plugin]);
    let token = CancellationToken::new();
    let mut req = request("t:wait", json!({}));
    req.cancel = Some(token.clone());
    let call = tokio::spawn({
        let core = core.clone();
        async move { core.execute(req).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    token.cancel();
    let err = call.await.unwrap().result.unwrap_err();
    assert!(matches!(err, CoreError::Cancelled), "{err:?}");
    assert!(eventually(|| saw_cancel.load(Ordering::SeqCst)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_warmup_is_reported_and_no_call_reaches_the_plugin() {
    let plugin = echo(SessionModel::Shared).failing_warmup("no model file");
    let log = plugin.log.clone();
    let core = core_with("", vec![plugin]);
    let err = run(&core, request("t:echo", json!({"text": "x"})))
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, CoreError::NotWarmedUp(_)), "{err:?}");
    assert!(err.to_string().contains("no model file"), "{err}");
    assert!(!log.lock().unwrap().iter().any(|l| l.starts_with("call")));
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_beyond_the_plugins_cap_are_refused_at_once() {
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    let plugin = RustPlugin::new("t", SessionModel::Shared).tool(
        "hold",
        json!({"type": "object"}),
        move |_| {
            while !gate.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(json!({}))
        },
    );
    let core = core_with("max_inflight_per_plugin = 1", vec![plugin]);
    let first = tokio::spawn({
        let core = core.clone();
        async move { core.execute(request("t:hold", json!({}))).await }
    });
    // The first call holds the only slot once the plugin is warm and running.
    assert!(eventually(|| core.registry.backend("t").is_some_and(|b| b.is_warm())).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = run(&core, request("t:hold", json!({})))
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, CoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("max_inflight_per_plugin"), "{err}");
    release.store(true, Ordering::SeqCst);
    assert!(first.await.unwrap().result.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_or_ambiguous_tool_is_named_in_the_error() {
    let a = echo(SessionModel::Shared);
    let b =
        RustPlugin::new("u", SessionModel::Shared).tool("echo", text_schema(), |_| Ok(json!({})));
    let core = core_with("", vec![a, b]);
    let err = run(&core, request("nope:echo", json!({})))
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, CoreError::ToolNotFound(_)), "{err:?}");
    let err = run(&core, request("echo", json!({"text": "x"})))
        .await
        .result
        .unwrap_err();
    match err {
        CoreError::AmbiguousTool { candidates, .. } => assert_eq!(candidates, ["t:echo", "u:echo"]),
        other => panic!("{other:?}"),
    }
}
