//! The real bash plugin over HTTP: state across calls, timeouts, and no
//! process outliving its session or the host.

use std::time::Duration;

use agentflow_e2e::{bash_server_at, eventually, processes_matching, Server};
use serde_json::{json, Value};

fn bash_server() -> Server {
    bash_server_at(&tempfile::tempdir().unwrap().keep())
}

fn run(s: &Server, worker: &str, command: &str) -> (u16, Value) {
    s.execute(worker, "bash:run", json!({"command": command}))
}

#[test]
fn a_session_keeps_its_shell_state_between_calls() {
    let s = bash_server();
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "bash", "config": {"env": {"GREETING": "hi"}}}),
    );
    assert_eq!(code, 200, "{body}");
    run(
        &s,
        "w",
        "mkdir -p sub && cd sub && export COLOR=blue && f() { echo \"fn:$1\"; }",
    );
    let (code, body) = run(&s, "w", "echo $COLOR $GREETING; f x; pwd");
    assert_eq!(code, 200, "{body}");
    let data = &body["data"];
    let out = data["stdout"].as_str().unwrap();
    assert!(out.starts_with("blue hi\nfn:x\n"), "{out}");
    assert!(data["cwd"].as_str().unwrap().ends_with("/sub"), "{data}");
    assert_eq!(data["return_code"], 0);
    assert_eq!(body["meta"]["temporary_session"], false);
    for key in [
        "stdout",
        "stderr",
        "return_code",
        "cwd",
        "timed_out",
        "truncated",
    ] {
        assert!(data.get(key).is_some(), "{key} missing");
    }
    // A failing command is a successful call carrying its exit code.
    let (code, body) = run(
        &s,
        "w",
        "echo oops >&2; exit_code() { return 3; }; exit_code",
    );
    assert_eq!(code, 200);
    assert_eq!(body["data"]["return_code"], 3);
    assert_eq!(body["data"]["stderr"], "oops\n");
}

#[test]
fn a_command_past_its_deadline_is_2002_and_the_shell_keeps_its_state() {
    let s = bash_server();
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "bash"}),
    );
    run(&s, "w", "export KEEP=yes");
    let (code, body) = s.post(
        "/execute",
        json!({"worker_id": "w", "action": "bash:run", "params": {"command": "sleep 300"}, "timeout": 1}),
    );
    assert_eq!((code, body["code"].clone()), (504, json!(2002)), "{body}");
    let (code, body) = run(&s, "w", "echo $KEEP");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["stdout"], "yes\n");
}

#[test]
fn background_processes_die_with_their_session() {
    let s = bash_server();
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "bash"}),
    );
    let marker = format!("agentflow-e2e-{}-bg", std::process::id());
    let (code, body) = run(
        &s,
        "w",
        &format!("(exec -a {marker}-a sleep 1000) & setsid bash -c 'exec -a {marker}-b sleep 1000' & nohup bash -c 'exec -a {marker}-c sleep 1000' >/dev/null 2>&1 & sleep 0.3; echo started"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        eventually(Duration::from_secs(5), || processes_matching(&marker).len()
            >= 3),
        "{:?}",
        processes_matching(&marker)
    );
    s.post(
        "/session/destroy",
        json!({"worker_id": "w", "resource_type": "bash"}),
    );
    assert!(
        eventually(Duration::from_secs(10), || processes_matching(&marker)
            .is_empty()),
        "left behind: {:?}",
        processes_matching(&marker)
    );
}

#[test]
fn nothing_survives_the_host_being_killed_and_a_restart_removes_its_directories() {
    let root = tempfile::tempdir().unwrap();
    let mut s = bash_server_at(root.path());
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "bash"}),
    );
    let marker = format!("agentflow-e2e-{}-kill", std::process::id());
    run(
        &s,
        "w",
        &format!("setsid bash -c 'exec -a {marker} sleep 1000' & disown; sleep 0.3"),
    );
    assert!(eventually(Duration::from_secs(5), || !processes_matching(
        &marker
    )
    .is_empty()));
    let session_dirs = || -> Vec<_> {
        std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            // `.disks` holds the images of the sessions' disks.
            .filter(|name| !name.to_string_lossy().starts_with('.'))
            .collect()
    };
    assert_eq!(session_dirs().len(), 1, "one session directory");
    let mounted = || {
        let root = root.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(root.as_str()))
            .count()
    };
    assert!(mounted() > 0, "the session's disk is mounted");
    s.signal("KILL");
    assert_eq!(
        s.wait_exit(Duration::from_secs(10)),
        None,
        "SIGKILL gives no exit code"
    );
    assert!(
        eventually(Duration::from_secs(10), || processes_matching(&marker)
            .is_empty()),
        "left behind: {:?}",
        processes_matching(&marker)
    );
    drop(s);
    let s = bash_server_at(root.path());
    let (code, body) = s.post("/warmup", json!({"backends": ["bash"]}));
    assert_eq!(code, 200, "{body}");
    let left = session_dirs();
    assert!(
        left.is_empty(),
        "stale session directories survived the restart: {left:?}"
    );
    drop(s);
    assert_eq!(mounted(), 0, "the dead host's disks are unmounted");
}

#[test]
fn files_move_in_and_out_of_the_workspace() {
    let s = bash_server();
    s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "bash"}),
    );
    let (code, body) = s.execute(
        "w",
        "bash:write_file",
        json!({"path": "data.bin", "content": "AAEC/w==", "encoding": "base64"}),
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = run(&s, "w", "od -An -tx1 data.bin | tr -d ' \\n'");
    assert_eq!(body["data"]["stdout"], "000102ff");
    let (code, body) = s.execute("w", "bash:read_file", json!({"path": "../../etc/passwd"}));
    assert_eq!((code, body["code"].clone()), (400, json!(1002)), "{body}");
}
