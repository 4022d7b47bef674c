//! Process lifetime and directory isolation: nothing a session started
//! survives it, and sessions cannot see each other's directories.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use plugin_api::{ErrorKind, Plugin};
use serde_json::json;

/// Starts one process per way of escaping a shell, each with `marker` in its
/// command line.
fn start_escapees(h: &Harness, s: &agentflow_bash::BashSession, marker: &str) {
    let command = format!(
        "(exec -a {marker}-bg sleep 1000) &\n\
         nohup bash -c 'exec -a {marker}-nohup sleep 1000' >/dev/null 2>&1 &\n\
         setsid bash -c 'exec -a {marker}-setsid sleep 1000' >/dev/null 2>&1 &\n\
         ( (exec -a {marker}-double sleep 1000 >/dev/null 2>&1) & )\n\
         disown -a"
    );
    assert_eq!(h.run(s, &command)["return_code"], 0);
    assert!(
        eventually(10, || processes_with(marker).len() == 4),
        "all four started: {:?}",
        processes_with(marker)
    );
}

#[test]
fn no_process_survives_cleanup() {
    if !is_root() {
        eprintln!("skipped: setsid and double forks escape without namespaces (needs root)");
        return;
    }
    let h = Harness::new();
    let s = h.session("cleanup", json!({}));
    assert_eq!(h.isolation(&s), "bubblewrap");
    let dir = h.call(&s, "info", json!({})).unwrap()["session_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let marker = unique_marker("cleanup");
    start_escapees(&h, &s, &marker);
    h.plugin().cleanup(&s).unwrap();
    assert_eq!(processes_with(&marker), Vec::<i32>::new());
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the session directory is removed"
    );
    let err = h.call(&s, "run", json!({"command": "true"})).unwrap_err();
    assert_eq!(err.kind, ErrorKind::SessionBroken);
}

#[test]
fn background_jobs_die_with_the_session_without_namespaces_too() {
    let h = Harness::with_config(json!({"sandbox": {"isolation": "none"}}));
    let s = h.session("pg-cleanup", json!({}));
    assert_eq!(h.isolation(&s), "none");
    let marker = unique_marker("pg");
    h.run(&s, &format!("(exec -a {marker}-bg sleep 1000) & nohup bash -c 'exec -a {marker}-nohup sleep 1000' >/dev/null 2>&1 &"));
    assert!(eventually(10, || processes_with(&marker).len() == 2));
    h.plugin().cleanup(&s).unwrap();
    assert_eq!(processes_with(&marker), Vec::<i32>::new());
}

#[test]
fn dropping_a_session_without_cleanup_stops_its_processes() {
    let h = Harness::new();
    let s = h.session("dropped", json!({}));
    let marker = unique_marker("drop");
    h.run(&s, &format!("(exec -a {marker} sleep 1000) &"));
    assert!(eventually(10, || processes_with(&marker).len() == 1));
    drop(s);
    assert_eq!(processes_with(&marker), Vec::<i32>::new());
}

#[test]
fn sessions_cannot_see_each_others_directories_or_processes() {
    if !is_root() {
        eprintln!("skipped: without namespaces only file modes separate sessions (needs root)");
        return;
    }
    let h = Harness::new();
    let a = h.session("alice", json!({}));
    let b = h.session("bob", json!({}));
    let a_dir = h.call(&a, "info", json!({})).unwrap()["session_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let b_dir = h.call(&b, "info", json!({})).unwrap()["session_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let marker = unique_marker("alice");
    h.run(
        &a,
        &format!("echo secret > secret.txt; (exec -a {marker} sleep 1000) &"),
    );

    // The host sees both directories; each shell sees only its own.
    let listing = h.run(&b, "ls -A \"$(dirname \"$HOME\")\"");
    // Directory names start with the pid of the host process (here, this test).
    assert_eq!(listing["stdout"], format!("{}-bob\n", std::process::id()));
    let peek = h.run(&b, &format!("cat {a_dir}/secret.txt"));
    assert_ne!(peek["return_code"], 0);
    assert_eq!(peek["stdout"], "");
    let ps = h.run(&b, "ps -eo args");
    assert!(!ps["stdout"].as_str().unwrap().contains(&marker), "{ps}");
    assert!(h.run(&a, "ps -eo args")["stdout"]
        .as_str()
        .unwrap()
        .contains(&marker));

    // The file tools refuse the other session's paths too.
    let err = h
        .call(
            &b,
            "read_file",
            json!({"path": format!("{a_dir}/secret.txt")}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(err.message.contains("secret.txt"), "{}", err.message);
    assert!(std::path::Path::new(&b_dir).exists());
}

const CHILD_ENV: &str = "AGENTFLOW_BASH_TEST_HOST_CHILD";

#[test]
fn no_process_survives_a_sigkilled_host() {
    if !is_root() {
        eprintln!("skipped: needs namespaces (root)");
        return;
    }
    let marker = unique_marker("hostkill");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "host_child_holding_a_session",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &marker)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // libtest prints "test <name> ... " before the test's own output, so the
    // line starts with that; read on a thread so a stuck child cannot hang us.
    let stdout = child.stdout.take().unwrap();
    let (ready, root) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, path)) = line.split_once("READY ") {
                let _ = ready.send(path.to_string());
            }
        }
    });
    let root = match root.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(root) => root,
        Err(e) => {
            let _ = child.kill();
            panic!("the child host did not start its session: {e}");
        }
    };
    // The four escapees and a background process (`bash:start`).
    assert!(
        eventually(10, || processes_with(&marker).len() == 5),
        "{:?}",
        processes_with(&marker)
    );
    child.kill().unwrap(); // SIGKILL: no cleanup, no destructors
    child.wait().unwrap();
    assert!(
        eventually(10, || processes_with(&marker).is_empty()),
        "left behind: {:?}",
        processes_with(&marker)
    );
    // The dead host's disks and layers are still mounted; the next plugin
    // on the same root removes them.
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(root.as_str()))
            .count()
    };
    assert!(mounted() > 0, "the killed host left its disks mounted");
    let next = agentflow_bash::BashPlugin::warmup(&json!({ "workspace_root": root })).unwrap();
    next.shutdown();
    drop(next);
    assert_eq!(mounted(), 0, "a restart on the same root unmounts them");
    let _ = std::fs::remove_dir_all(root);
}

/// The "host" that `no_process_survives_a_sigkilled_host` kills.
#[test]
#[ignore = "helper process of no_process_survives_a_sigkilled_host"]
fn host_child_holding_a_session() {
    let Ok(marker) = std::env::var(CHILD_ENV) else {
        return;
    };
    let h = Harness::new();
    let s = h.session("victim", json!({}));
    // Sessions are driven from short-lived threads, as the host's pool does.
    std::thread::scope(|scope| {
        scope.spawn(|| start_escapees(&h, &s, &marker));
    });
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let command = format!("exec -a {marker}-start sleep 1000");
            h.call(&s, "start", json!({ "command": command })).unwrap();
        });
    });
    println!("READY {}", h.root.display());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1000));
    }
}

#[test]
fn shells_outlive_the_threads_that_created_them() {
    // PR_SET_PDEATHSIG fires when the forking *thread* exits: shells must be
    // forked by the plugin's own thread, not by the (short-lived) call thread.
    let h = Harness::new();
    let s = std::thread::scope(|scope| {
        scope
            .spawn(|| h.session("thread", json!({})))
            .join()
            .unwrap()
    });
    std::thread::scope(|scope| {
        scope.spawn(|| h.run(&s, "exit 0"));
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let result = h.run(&s, "echo alive");
    assert_eq!(result["stdout"], "alive\n");
    assert_eq!(result["shell_restarted"], false);
}
