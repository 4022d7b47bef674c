//! Background processes (`start`, `output`, `wait`, `kill`, `write_stdin`,
//! `processes`) in real sessions: servers reached from `run`, output read
//! in pieces, input, signals, limits, and that nothing outlives the session.

mod common;

use std::time::{Duration, Instant};

use agentflow_bash::BashSession;
use common::*;
use plugin_api::{ErrorKind, Plugin};
use serde_json::{json, Value};

/// Starts `command` and returns its id.
fn start(h: &Harness, s: &BashSession, command: &str) -> String {
    let started = h
        .call(s, "start", json!({ "command": command }))
        .unwrap_or_else(|e| panic!("start {command:?} failed: {e:?}"));
    started["id"].as_str().expect("an id").to_string()
}

/// Waits (up to `secs`) for process `id` to exit; returns the answer.
fn wait_exit(h: &Harness, s: &BashSession, id: &str, secs: f64) -> Value {
    let result = h
        .call(s, "wait", json!({ "id": id, "timeout": secs }))
        .unwrap_or_else(|e| panic!("wait {id} failed: {e:?}"));
    assert_eq!(
        result["running"], false,
        "{id} did not exit in {secs}s: {result}"
    );
    result
}

/// Reads the output of `id` until its stdout contains `text` (up to 10 s);
/// returns all stdout read meanwhile.
fn read_until(h: &Harness, s: &BashSession, id: &str, text: &str) -> String {
    let mut stdout = String::new();
    let found = eventually(10, || {
        let result = h.call(s, "output", json!({ "id": id })).unwrap();
        stdout.push_str(result["stdout"].as_str().unwrap());
        stdout.contains(text)
    });
    assert!(
        found,
        "{id} never wrote {text:?}; stdout so far: {stdout:?}"
    );
    stdout
}

#[test]
fn a_server_started_in_the_background_answers_curl_from_run() {
    let h = Harness::new();
    let s = h.session("http", json!({}));
    h.run(
        &s,
        "mkdir -p site && cd site && echo 'hello from the site' > hello.txt",
    );
    // Started in the shell's current directory (site/): it serves hello.txt.
    let started = h
        .call(
            &s,
            "start",
            json!({"command": "exec python3 -u -m http.server 8765 --bind 127.0.0.1", "name": "web"}),
        )
        .unwrap();
    assert_eq!(started["name"], "web");
    assert!(
        started["cwd"].as_str().unwrap().ends_with("/site"),
        "{started}"
    );
    let id = started["id"].as_str().unwrap();
    read_until(&h, &s, id, "Serving HTTP");

    let fetched = h.run(
        &s,
        "for i in $(seq 50); do curl -sf http://127.0.0.1:8765/hello.txt && break; sleep 0.1; done",
    );
    assert_eq!(fetched["stdout"], "hello from the site\n", "{fetched}");
    // The server keeps running between calls and logs the request to stderr.
    let mut log = String::new();
    assert!(eventually(10, || {
        let out = h.call(&s, "output", json!({ "id": id })).unwrap();
        assert_eq!(out["running"], true, "{out}");
        log.push_str(out["stderr"].as_str().unwrap());
        log.contains("GET /hello.txt")
    }));
    let again = h.run(
        &s,
        "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8765/nope",
    );
    assert_eq!(again["stdout"], "404");

    h.call(&s, "kill", json!({ "id": id })).unwrap();
    let ended = wait_exit(&h, &s, id, 10.0);
    assert_eq!(ended["signal"], libc::SIGTERM, "{ended}");
    assert_eq!(ended["exit_code"], Value::Null);
}

#[test]
fn interleaved_reads_advance_the_offsets_and_lose_or_repeat_nothing() {
    let h = Harness::new();
    let s = h.session("ticker", json!({}));
    let id = start(
        &h,
        &s,
        "for i in $(seq 1 20); do echo \"line $i\"; echo \"err $i\" >&2; sleep 0.1; done",
    );
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let mut reads_with_output = 0;
    loop {
        let out = h.call(&s, "output", json!({ "id": id })).unwrap();
        let (new_out, new_err) = (
            out["stdout"].as_str().unwrap(),
            out["stderr"].as_str().unwrap(),
        );
        stdout.push_str(new_out);
        stderr.push_str(new_err);
        assert_eq!(out["stdout_offset"], stdout.len() as u64, "{out}");
        assert_eq!(out["stderr_offset"], stderr.len() as u64, "{out}");
        assert_eq!(out["stdout_dropped_bytes"], 0);
        reads_with_output += usize::from(!new_out.is_empty());
        if out["running"] == false {
            // What it wrote before exiting is all there once it has exited.
            assert_eq!(out["exit_code"], 0, "{out}");
            assert_eq!(out["signal"], Value::Null);
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let expected =
        |prefix: &str| -> String { (1..=20).map(|i| format!("{prefix} {i}\n")).collect() };
    assert_eq!(stdout, expected("line"));
    assert_eq!(stderr, expected("err"));
    assert!(
        reads_with_output > 3,
        "output came in pieces: {reads_with_output}"
    );

    // Nothing new after the end; explicit offsets read again from anywhere.
    let out = h.call(&s, "output", json!({ "id": id })).unwrap();
    assert_eq!(
        (out["stdout"].as_str(), out["stderr"].as_str()),
        (Some(""), Some(""))
    );
    let from_line_20 = stdout.find("line 20").unwrap() as u64;
    let out = h
        .call(
            &s,
            "output",
            json!({"id": id, "since": {"stdout": from_line_20, "stderr": 0}}),
        )
        .unwrap();
    assert_eq!(out["stdout"], "line 20\n");
    assert_eq!(out["stderr"], expected("err"));
}

#[test]
fn write_stdin_reaches_the_program_and_eof_ends_its_input() {
    let h = Harness::new();
    let s = h.session("stdin", json!({}));
    let id = start(&h, &s, "read line; echo \"got:$line\"; cat");
    let wrote = h
        .call(&s, "write_stdin", json!({"id": id, "data": "hello\n"}))
        .unwrap();
    assert_eq!(wrote["bytes_written"], 6);
    assert_eq!(wrote["stdin_open"], true);
    read_until(&h, &s, &id, "got:hello\n");
    let wrote = h
        .call(
            &s,
            "write_stdin",
            json!({"id": id, "data": "cmVzdCBvZiBpdA==", "encoding": "base64", "eof": true}),
        )
        .unwrap();
    assert_eq!(wrote["stdin_open"], false);
    let ended = wait_exit(&h, &s, &id, 10.0);
    assert_eq!(ended["exit_code"], 0, "{ended}");
    assert_eq!(
        ended["stdout"], "rest of it",
        "cat echoed the rest, then saw EOF"
    );
    let err = h
        .call(&s, "write_stdin", json!({"id": id, "data": "more"}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
    assert!(err.message.contains("stdin"), "{}", err.message);

    // More than a pipe holds: the call waits while the program reads.
    let id = start(&h, &s, "wc -c");
    let data = "x".repeat(300_000);
    h.call(
        &s,
        "write_stdin",
        json!({"id": id, "data": data, "eof": true}),
    )
    .unwrap();
    assert_eq!(wait_exit(&h, &s, &id, 10.0)["stdout"], "300000\n");

    // A program that never reads: the call stops at its deadline, stdin stays open.
    let id = start(&h, &s, "exec sleep 1000");
    let begun = Instant::now();
    let err = h
        .call_within(
            &s,
            "write_stdin",
            json!({"id": id, "data": "y".repeat(300_000)}),
            0.5,
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(err.message.contains("not reading"), "{}", err.message);
    assert!(begun.elapsed() < Duration::from_secs(5));
    let wrote = h
        .call(
            &s,
            "write_stdin",
            json!({"id": id, "data": "", "eof": true}),
        )
        .unwrap();
    assert_eq!(wrote["stdin_open"], false);
}

#[test]
fn kill_sends_term_by_default_and_any_signal_asked_for_to_the_group() {
    let h = Harness::new();
    let s = h.session("kill", json!({}));
    let id = start(&h, &s, "exec sleep 1000");
    let killed = h.call(&s, "kill", json!({ "id": id })).unwrap();
    assert_eq!(
        (killed["signal"].as_i64(), killed["sent"].as_bool()),
        (Some(15), Some(true))
    );
    let ended = wait_exit(&h, &s, &id, 10.0);
    assert_eq!(
        (ended["signal"].as_i64(), ended["exit_code"].as_i64()),
        (Some(15), None)
    );
    let again = h.call(&s, "kill", json!({ "id": id })).unwrap();
    assert_eq!(
        again["sent"], false,
        "an ended process gets nothing: {again}"
    );

    // TERM ignored (by the shell and, inherited, by its children): KILL ends it.
    let id = start(
        &h,
        &s,
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    );
    read_until(&h, &s, &id, "ready");
    h.call(&s, "kill", json!({"id": id, "signal": "TERM"}))
        .unwrap();
    let still = h
        .call(&s, "wait", json!({"id": id, "timeout": 0.5}))
        .unwrap();
    assert_eq!(still["running"], true, "{still}");
    h.call(&s, "kill", json!({"id": id, "signal": "KILL"}))
        .unwrap();
    let ended = wait_exit(&h, &s, &id, 10.0);
    assert_eq!(ended["signal"], 9, "{ended}");
    assert_eq!(ended["exit_code"], Value::Null);

    // By number, to a group whose leader has exited but left a child behind.
    let marker = unique_marker("left");
    let id = start(
        &h,
        &s,
        &format!("(exec -a {marker} sleep 1000) & echo started"),
    );
    read_until(&h, &s, &id, "started");
    assert!(eventually(10, || processes_with(&marker).len() == 1));
    let out = h
        .call(&s, "wait", json!({"id": id, "timeout": 10}))
        .unwrap();
    assert_eq!(out["exit_code"], 0, "the leader exited: {out}");
    let killed = h.call(&s, "kill", json!({"id": id, "signal": 2})).unwrap();
    assert_eq!(killed["sent"], true, "{killed}");
    assert!(
        eventually(10, || processes_with(&marker).is_empty()),
        "the child in its group got the signal"
    );
}

#[test]
fn wait_returns_at_its_timeout_or_when_the_process_exits() {
    let h = Harness::new();
    let s = h.session("wait", json!({}));
    let id = start(&h, &s, "sleep 1; echo done");
    let begun = Instant::now();
    let early = h
        .call(&s, "wait", json!({"id": id, "timeout": 0.3}))
        .unwrap();
    let waited = begun.elapsed();
    assert_eq!(early["running"], true, "{early}");
    assert_eq!(early["exit_code"], Value::Null);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let now = h.call(&s, "wait", json!({"id": id, "timeout": 0})).unwrap();
    assert_eq!(now["running"], true);

    let begun = Instant::now();
    let ended = wait_exit(&h, &s, &id, 30.0);
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "returned at the exit, not the timeout"
    );
    assert_eq!(ended["exit_code"], 0);
    assert_eq!(ended["stdout"], "done\n");
}

#[test]
fn wait_never_outlasts_the_calls_deadline_or_its_cancellation() {
    let h = Harness::new();
    let s = h.session("wait-deadline", json!({}));
    let id = start(&h, &s, "exec sleep 1000");
    let begun = Instant::now();
    let err = h
        .call_within(&s, "wait", json!({"id": id, "timeout": 60}), 0.5)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "{:?}",
        begun.elapsed()
    );

    let begun = Instant::now();
    let err = h
        .call_cancelled_after(&s, "wait", json!({"id": id, "timeout": 60}), 60.0, 0.3)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "{:?}",
        begun.elapsed()
    );
    let status = h.call(&s, "output", json!({ "id": id })).unwrap();
    assert_eq!(
        status["running"], true,
        "waiting does not touch the process"
    );
}

#[test]
fn output_beyond_the_limit_drops_the_oldest_bytes_and_says_so() {
    let h = Harness::with_config(json!({"output_limit_bytes": 1000}));
    let s = h.session("cap", json!({}));
    let id = start(&h, &s, "seq 1 2000; echo note >&2");
    let all: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    let total = all.len() as u64;
    let ended = wait_exit(&h, &s, &id, 10.0);
    let stdout = ended["stdout"].as_str().unwrap();
    assert_eq!(
        stdout,
        &all[all.len() - 1000..],
        "the newest 1000 bytes are kept"
    );
    assert_eq!(ended["stdout_offset"], total);
    assert_eq!(ended["stdout_dropped_bytes"], total - 1000);
    assert_eq!(ended["stderr"], "note\n");
    assert_eq!(
        ended["stderr_dropped_bytes"], 0,
        "each stream has its own limit"
    );

    // Offsets keep counting every byte: a dropped offset gets what remains.
    let out = h
        .call(&s, "output", json!({"id": id, "since": {"stdout": 10}}))
        .unwrap();
    assert_eq!(out["stdout_dropped_bytes"], total - 1000 - 10);
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1000);
    let out = h
        .call(
            &s,
            "output",
            json!({"id": id, "since": {"stdout": total - 5}}),
        )
        .unwrap();
    assert_eq!(
        (out["stdout"].as_str(), out["stdout_dropped_bytes"].as_u64()),
        (Some("2000\n"), Some(0))
    );
    let listed = h.call(&s, "processes", json!({})).unwrap();
    assert_eq!(listed["processes"][0]["stdout_bytes"], total, "{listed}");
}

#[test]
fn the_number_of_unfinished_processes_is_capped() {
    let h = Harness::with_config(json!({"max_background_processes": 2}));
    let s = h.session("many", json!({}));
    let first = start(&h, &s, "exec sleep 1000");
    let second = start(&h, &s, "exec sleep 1000");
    let err = h
        .call(&s, "start", json!({"command": "exec sleep 1000"}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
    assert!(
        err.message.contains("max_background_processes"),
        "{}",
        err.message
    );

    // A finished one makes room, and is dropped when the room is needed.
    h.call(&s, "kill", json!({ "id": first })).unwrap();
    wait_exit(&h, &s, &first, 10.0);
    let third = start(&h, &s, "exec sleep 1000");
    let listed = h.call(&s, "processes", json!({})).unwrap();
    let ids: Vec<&str> = listed["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), third.as_str()]);
    assert_eq!(listed["max_processes"], 2);
    let err = h.call(&s, "output", json!({ "id": first })).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(err.message.starts_with("id: "), "{}", err.message);
    assert!(err.message.contains("make room"), "{}", err.message);

    let h = Harness::with_config(json!({"max_background_processes": 0}));
    let s = h.session("none-allowed", json!({}));
    let err = h.call(&s, "start", json!({"command": "true"})).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("disabled"), "{}", err.message);
}

#[test]
fn processes_lists_every_process_with_its_state() {
    let h = Harness::new();
    let s = h.session("list", json!({}));
    h.run(&s, "mkdir -p w && cd w");
    let started = h
        .call(
            &s,
            "start",
            json!({"command": "echo hi; echo oops >&2", "name": "greeter"}),
        )
        .unwrap();
    let greeter = started["id"].as_str().unwrap().to_string();
    wait_exit(&h, &s, &greeter, 10.0);
    let sleeper = start(&h, &s, "exec sleep 1000");
    let listed = h.call(&s, "processes", json!({})).unwrap();
    let processes = listed["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2, "{listed}");
    let (done, running) = (&processes[0], &processes[1]);
    assert_eq!(done["id"], greeter.as_str());
    assert_eq!(done["name"], "greeter");
    assert_eq!(done["command"], "echo hi; echo oops >&2");
    assert!(done["cwd"].as_str().unwrap().ends_with("/w"), "{done}");
    assert_eq!(
        (done["running"].as_bool(), done["exit_code"].as_i64()),
        (Some(false), Some(0))
    );
    assert_eq!(
        (done["stdout_bytes"].as_u64(), done["stderr_bytes"].as_u64()),
        (Some(3), Some(5))
    );
    // The wait above read everything.
    assert_eq!(done["stdout_unread_bytes"], 0);
    let started_at = done["started_at"].as_str().unwrap();
    assert_eq!(
        started_at.len(),
        "2024-01-01T00:00:00.000Z".len(),
        "{started_at}"
    );
    assert!(
        started_at.ends_with('Z') && started_at.as_bytes()[10] == b'T',
        "{started_at}"
    );
    assert_eq!(running["id"], sleeper.as_str());
    assert_eq!(running["name"], Value::Null);
    assert_eq!(running["running"], true);
    assert!(running["pid"].as_i64().unwrap() > 1);
}

#[test]
fn run_timeouts_spare_background_processes_even_ones_started_meanwhile() {
    for isolation in isolations() {
        let h = Harness::with_config(json!({"sandbox": {"isolation": isolation}}));
        let s = h.session("spared", json!({}));
        let marker = unique_marker("spared");
        let early = start(&h, &s, &format!("exec -a {marker}-early sleep 1000"));
        let during = std::thread::scope(|scope| {
            let run =
                scope.spawn(|| h.call(&s, "run", json!({"command": "sleep 30", "timeout": 3})));
            std::thread::sleep(Duration::from_millis(300));
            // The shell is busy: start does not wait for it.
            let begun = Instant::now();
            let id = start(
                &h,
                &s,
                &format!(
                    "(exec -a {marker}-child sleep 1000) & exec -a {marker}-during sleep 1000"
                ),
            );
            // Waiting for the shell would take until the run's timeout (2.7 s more).
            assert!(
                begun.elapsed() < Duration::from_secs(2),
                "{isolation}: {:?}",
                begun.elapsed()
            );
            let err = run.join().unwrap().unwrap_err();
            assert_eq!(err.kind, ErrorKind::Timeout, "{isolation}: {err:?}");
            id
        });
        assert_eq!(
            processes_with(&marker).len(),
            3,
            "{isolation}: all survived the timeout"
        );
        for id in [&early, &during] {
            let out = h.call(&s, "output", json!({ "id": id })).unwrap();
            assert_eq!(out["running"], true, "{isolation}: {out}");
        }
        assert_eq!(h.run(&s, "echo fine")["stdout"], "fine\n");
    }
}

#[test]
fn background_processes_die_with_their_session() {
    for isolation in isolations() {
        let h = Harness::with_config(json!({"sandbox": {"isolation": isolation}}));
        let s = h.session("ends", json!({}));
        let marker = unique_marker("ends");
        // A child in the leader's group, and in a sandbox one that left it with setsid.
        let escapee = match isolation {
            "bubblewrap" => format!("setsid bash -c 'exec -a {marker}-setsid sleep 1000' & "),
            _ => String::new(),
        };
        let expected = if escapee.is_empty() { 2 } else { 3 };
        start(
            &h,
            &s,
            &format!(
                "(exec -a {marker}-child sleep 1000) & {escapee}exec -a {marker}-leader sleep 1000"
            ),
        );
        start(&h, &s, "read forever");
        assert!(
            eventually(10, || processes_with(&marker).len() == expected),
            "{isolation}: {:?}",
            processes_with(&marker)
        );
        h.plugin().cleanup(&s).unwrap();
        assert_eq!(processes_with(&marker), Vec::<i32>::new(), "{isolation}");
        for (tool, params) in [
            ("start", json!({"command": "true"})),
            ("output", json!({"id": "p1"})),
        ] {
            let err = h.call(&s, tool, params).unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::SessionBroken,
                "{isolation} {tool}: {err:?}"
            );
        }
    }
}

#[test]
fn a_dropped_session_leaves_no_background_process() {
    let h = Harness::new();
    let s = h.session("dropped-bg", json!({}));
    let marker = unique_marker("dropped-bg");
    start(&h, &s, &format!("exec -a {marker} sleep 1000"));
    assert!(eventually(10, || processes_with(&marker).len() == 1));
    drop(s);
    assert_eq!(processes_with(&marker), Vec::<i32>::new());
}

#[test]
fn a_background_process_runs_in_the_shells_own_sandbox() {
    if !is_root() {
        eprintln!("skipped: compares the sandbox's namespaces (needs root)");
        return;
    }
    let h = Harness::new();
    let s = h.session("same-sandbox", json!({"env": {"WHO": "agent"}}));
    assert_eq!(h.isolation(&s), "bubblewrap");
    h.run(
        &s,
        "mkdir -p sub && cd sub && echo shared > /tmp/mark && export LATER=1",
    );
    let probe = "for n in mnt pid net ipc uts user cgroup; do readlink /proc/self/ns/$n; done; \
                 grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; id; cat /proc/self/cgroup; \
                 ulimit -a; cat /tmp/mark; pwd; echo \"$HOME $WHO ${LATER-unset}\"; echo $PATH";
    let id = start(&h, &s, probe);
    let background = wait_exit(&h, &s, &id, 10.0);
    assert_eq!(background["exit_code"], 0, "{background}");
    let shell = h.run(&s, &format!("LATER=unset; {probe}"));
    assert_eq!(
        background["stdout"], shell["stdout"],
        "{background}\n{shell}"
    );
    let text = shell["stdout"].as_str().unwrap();
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("CapBnd:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(text.contains("shared\n"), "the same /tmp: {text}");
    assert!(text.contains("/sub\n"), "the shell's directory: {text}");
    assert!(
        text.contains(" agent unset\n"),
        "the session's environment: {text}"
    );
    // The shell sees it among its processes, and files it writes are the session's.
    let id = start(&h, &s, "echo made > made.txt; exec sleep 1000");
    let pid = h.call(&s, "processes", json!({})).unwrap()["processes"][1]["pid"].clone();
    let seen = h.run(
        &s,
        &format!(
            "for i in $(seq 100); do [ \"$(ps -o args= -p {pid})\" = 'sleep 1000' ] && break; \
             sleep 0.1; done; ps -o args= -p {pid}; stat -c %u made.txt"
        ),
    );
    assert_eq!(seen["stdout"], "sleep 1000\n0\n", "{seen}");
    h.call(&s, "kill", json!({"id": id, "signal": "KILL"}))
        .unwrap();
    wait_exit(&h, &s, &id, 10.0);
}

#[test]
fn a_shell_restart_in_a_sandbox_ends_its_background_processes() {
    if !is_root() {
        eprintln!("skipped: sandboxes need root here");
        return;
    }
    let h = Harness::new();
    let s = h.session("restart", json!({}));
    let marker = unique_marker("restart");
    let id = start(&h, &s, &format!("exec -a {marker} sleep 1000"));
    assert!(eventually(10, || processes_with(&marker).len() == 1));
    let result = h.run(&s, "exit 3");
    assert_eq!(result["shell_restarted"], true);
    let ended = wait_exit(&h, &s, &id, 10.0);
    assert_eq!(
        ended["signal"], 9,
        "the sandbox went with the old shell: {ended}"
    );
    assert!(eventually(10, || processes_with(&marker).is_empty()));
    // The next one joins the new shell's sandbox.
    let id = start(&h, &s, "readlink /proc/self/ns/net");
    let ns = wait_exit(&h, &s, &id, 10.0)["stdout"].clone();
    assert_eq!(h.run(&s, "readlink /proc/self/ns/net")["stdout"], ns);
}

#[test]
fn bad_ids_signals_and_offsets_are_refused_naming_the_field() {
    let h = Harness::new();
    let s = h.session("bad-params", json!({}));
    let id = start(&h, &s, "echo out; exec sleep 1000");
    read_until(&h, &s, &id, "out");
    let refused = |tool: &str, params: Value, field: &str| {
        let err = h.call(&s, tool, params.clone()).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::InvalidParams,
            "{tool} {params}: {err:?}"
        );
        assert!(
            err.message.contains(field),
            "{tool} {params}: {}",
            err.message
        );
        err.message
    };
    for (tool, params) in [
        ("output", json!({"id": "p99"})),
        ("wait", json!({"id": "p99", "timeout": 1})),
        ("kill", json!({"id": "p99"})),
        ("write_stdin", json!({"id": "p99", "data": "x"})),
    ] {
        let message = refused(tool, params, "id: ");
        assert!(
            message.contains("p99") && message.contains(&id),
            "{message}"
        );
    }
    refused("kill", json!({"id": id, "signal": "STOPIT"}), "signal: ");
    refused("kill", json!({"id": id, "signal": 0}), "signal: ");
    refused("kill", json!({"id": id, "signal": 99}), "signal: ");
    refused("kill", json!({"id": id, "signal": true}), "signal");
    refused(
        "output",
        json!({"id": id, "since": {"stdout": 999}}),
        "since.stdout: ",
    );
    refused(
        "output",
        json!({"id": id, "since": {"stderr": -1}}),
        "since/stderr",
    );
    refused("output", json!({"id": id, "since": {"stdin": 0}}), "stdin");
    refused("wait", json!({"id": id, "timeout": -1}), "timeout");
    refused("wait", json!({ "id": id }), "timeout");
    refused("start", json!({"command": "  "}), "command: ");
    refused("start", json!({"command": "echo \u{0}"}), "command: ");
    refused(
        "start",
        json!({"command": "true", "name": "n".repeat(201)}),
        "name: ",
    );
    refused(
        "write_stdin",
        json!({"id": id, "data": "%%", "encoding": "base64"}),
        "data: ",
    );
    let out = h.call(&s, "output", json!({ "id": id })).unwrap();
    assert_eq!(out["running"], true, "the process was not disturbed: {out}");
}
