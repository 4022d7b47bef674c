//! Commands that run out of time: what dies, what survives, and that the
//! session keeps working.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use agentflow_bash::BashPlugin;
use common::*;
use plugin_api::{CallContext, ErrorKind, Plugin};
use serde_json::json;

#[test]
fn timeout_kills_the_command_and_the_shell_keeps_its_state() {
    for isolation in isolations() {
        let h = Harness::with_config(json!({"sandbox": {"isolation": isolation}}));
        let s = h.session("timeout", json!({}));
        h.run(&s, "mkdir -p sub && cd sub && export KEPT=yes");
        let marker = unique_marker("fg");
        let command = format!(
            "echo started; (exec -a {marker} sleep 1000) | (exec -a {marker} sleep 1000); echo not-reached"
        );
        let err = h
            .call(&s, "run", json!({"command": command, "timeout": 1}))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout, "{isolation}: {err:?}");
        assert!(err.message.contains("timeout of 1s"), "{}", err.message);
        assert!(err.message.contains("kept its state"), "{}", err.message);
        assert!(
            err.message.contains("started"),
            "partial output is quoted: {}",
            err.message
        );
        assert!(
            processes_with(&marker).is_empty(),
            "{isolation}: the pipeline was killed"
        );
        let result = h.run(&s, "echo $KEPT; basename \"$PWD\"");
        assert_eq!(result["stdout"], "yes\nsub\n", "{isolation}");
        assert_eq!(result["shell_restarted"], false);
    }
}

#[test]
fn a_loop_inside_the_shell_is_interrupted_without_losing_state() {
    let h = Harness::new();
    let s = h.session("builtin-loop", json!({}));
    let err = h
        .call(
            &s,
            "run",
            json!({"command": "X=7; while true; do :; done", "timeout": 0.5}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    let result = h.run(&s, "echo $X");
    assert_eq!(result["stdout"], "7\n");
    assert_eq!(result["shell_restarted"], false);
    // A loop of external commands, and one inside a function.
    let err = h
        .call(
            &s,
            "run",
            json!({"command": "f() { while :; do sleep 1; done; }; f", "timeout": 0.5}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(h.run(&s, "echo $X")["stdout"], "7\n");
}

#[test]
fn a_command_that_cannot_be_interrupted_gets_a_fresh_shell() {
    let h = Harness::new();
    let s = h.session("stubborn", json!({}));
    // Ignoring the interrupt signal leaves no way but killing the shell.
    let command = "export LOST=1; trap '' USR1; while :; do :; done";
    let err = h
        .call(&s, "run", json!({"command": command, "timeout": 0.5}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.message.contains("restarted"), "{}", err.message);
    let result = h.run(&s, "echo \"[${LOST-}]\"");
    assert_eq!(result["stdout"], "[]\n");
    assert_eq!(result["shell_restarted"], true);
    assert_eq!(h.run(&s, "true")["shell_restarted"], false);
}

#[test]
fn background_jobs_of_earlier_commands_survive_a_timeout() {
    let h = Harness::new();
    let s = h.session("bg-survives", json!({}));
    let marker = unique_marker("earlier");
    h.run(&s, &format!("(exec -a {marker} sleep 1000) &"));
    assert!(eventually(10, || processes_with(&marker).len() == 1));
    let err = h
        .call(&s, "run", json!({"command": "sleep 1000", "timeout": 0.5}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(
        processes_with(&marker).len(),
        1,
        "the earlier job is still running"
    );
    h.plugin().cleanup(&s).unwrap();
    assert!(processes_with(&marker).is_empty());
}

#[test]
fn the_call_deadline_bounds_the_command_too() {
    let h = Harness::new();
    let s = h.session("deadline", json!({}));
    let err = h
        .call_within(
            &s,
            "run",
            json!({"command": "sleep 1000", "timeout": 100}),
            0.5,
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.message.contains("deadline"), "{}", err.message);
    assert_eq!(h.run(&s, "echo ok")["stdout"], "ok\n");
}

#[test]
fn cancellation_stops_the_command() {
    let h = Harness::new();
    let s = h.session("cancel", json!({}));
    let cancel = AtomicBool::new(false);
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let err = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::Relaxed);
        });
        let cx = CallContext::new(Some(&s), "sid", "w1", &cancel, deadline);
        BashPlugin::tools()
            .call(h.plugin(), &cx, "run", json!({"command": "sleep 1000"}))
            .unwrap_err()
    });
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    assert_eq!(h.run(&s, "echo ok")["stdout"], "ok\n");
}
