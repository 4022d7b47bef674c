//! Session lifecycle: distinct displays, cleanup, a dying X server, the host
//! being killed, a missing Xvfb, a window manager.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use plugin_api::{ErrorKind, Plugin};
use serde_json::json;

#[test]
fn concurrent_sessions_get_distinct_displays() {
    let p = plugin();
    let sessions: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let p = &p;
                scope.spawn(move || {
                    session(
                        p,
                        &format!("vm_w{i}_001_multi"),
                        json!({"screen_size": [640, 480]}),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("session thread"))
            .collect()
    });
    let mut displays: Vec<u32> = sessions.iter().map(|s| s.display()).collect();
    displays.sort_unstable();
    displays.dedup();
    assert_eq!(displays.len(), 3, "displays {displays:?}");
    for s in &sessions {
        let (w, h, _) = decode_screenshot(&ok(&p, s, "screenshot", json!({})));
        assert_eq!((w, h), (640, 480));
        assert!(is_alive(s.xvfb_pid()));
    }
    // Input in one session does not move the pointer of another.
    ok(&p, &sessions[0], "move", json!({"x": 10, "y": 20}));
    ok(&p, &sessions[1], "move", json!({"x": 600, "y": 400}));
    assert_eq!(
        ok(&p, &sessions[0], "right_click", json!({}))["clicked"],
        json!([10, 20])
    );
    for s in &sessions {
        p.cleanup(s).unwrap();
    }
}

#[test]
fn cleanup_leaves_no_process_of_the_session() {
    cleanup_leaves_nothing(plugin(), "vm_w1_001_cleanup");
}

#[test]
fn cleanup_leaves_no_process_without_a_sandbox() {
    let p = warm(json!({"sandbox": {"isolation": "none"}}));
    cleanup_leaves_nothing(p, "vm_w1_001_cleanup_nosbx");
}

#[test]
fn cleanup_leaves_no_process_without_a_sandbox_or_pid_namespace() {
    let p = warm(json!({"pid_namespace": false, "sandbox": {"isolation": "none"}}));
    cleanup_leaves_nothing(p, "vm_w1_001_cleanup_nons");
}

fn cleanup_leaves_nothing(p: plugin_api::testkit::Kit<VmPlugin>, id: &str) {
    let s = session(
        &p,
        id,
        json!({
            "screen_size": [640, 480],
            "window_manager": "openbox",
            // A daemon that leaves its process group and session must die too.
            "programs": ["xterm -e bash --norc", "setsid sh -c 'sleep 600 & sleep 600'"],
        }),
    );
    assert!(eventually(Duration::from_secs(20), || {
        let pids = session_processes(id);
        let names: Vec<String> = pids.iter().map(|&p| comm(p)).collect();
        ["Xvfb", "openbox", "xterm", "bash", "sleep"]
            .iter()
            .all(|n| names.iter().any(|c| c == n))
    }));
    let xvfb = s.xvfb_pid();
    p.cleanup(&s).unwrap();
    let left = session_processes(id);
    assert!(
        left.is_empty(),
        "left behind: {:?}",
        left.iter().map(|&p| (p, comm(p))).collect::<Vec<_>>()
    );
    assert!(!is_alive(xvfb));
    assert!(!std::path::Path::new(&format!("/tmp/.X11-unix/X{}", s.display())).exists());
    assert!(!s.dir().exists(), "the session directory is removed");
    let e = call(&p, &s, "screenshot", json!({})).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SessionBroken, "{e:?}");
}

#[test]
fn a_killed_xvfb_makes_the_next_call_session_broken() {
    let p = plugin();
    let s = session(
        &p,
        "vm_w1_001_killed",
        json!({"screen_size": [640, 480], "programs": ["xterm"]}),
    );
    ok(&p, &s, "move", json!({"x": 5, "y": 5}));
    // SAFETY: plain kill(2) of the session's own Xvfb.
    unsafe { libc::kill(s.xvfb_pid() as libc::pid_t, libc::SIGKILL) };
    let e = call(&p, &s, "screenshot", json!({})).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SessionBroken, "{e:?}");
    assert!(
        e.message.contains(&format!(":{}", s.display())),
        "{}",
        e.message
    );
    for (tool, params) in [
        ("click", json!({"x": 1, "y": 1})),
        ("type", json!({"text": "x"})),
        ("wait", json!({"seconds": 0})),
    ] {
        let e = call(&p, &s, tool, params).unwrap_err();
        assert_eq!(e.kind, ErrorKind::SessionBroken, "{tool}: {e:?}");
    }
    // With Xvfb gone, the programs it served are gone too.
    assert!(eventually(Duration::from_secs(10), || session_processes(
        s.id()
    )
    .is_empty()));
    p.cleanup(&s).unwrap();
}

#[test]
fn a_stopped_xvfb_times_out_into_session_broken() {
    let p = warm(json!({"x_timeout_secs": 1}));
    let s = session(&p, "vm_w1_001_stopped", json!({"screen_size": [320, 240]}));
    // SAFETY: kill(2) stops, then resumes, the session's own Xvfb.
    unsafe { libc::kill(s.xvfb_pid() as libc::pid_t, libc::SIGSTOP) };
    let e = call(&p, &s, "screenshot", json!({})).unwrap_err();
    unsafe { libc::kill(s.xvfb_pid() as libc::pid_t, libc::SIGCONT) };
    assert_eq!(e.kind, ErrorKind::SessionBroken, "{e:?}");
    assert!(e.message.contains("did not answer"), "{}", e.message);
    p.cleanup(&s).unwrap();
}

use agentflow_vm::VmPlugin;

#[test]
fn a_missing_xvfb_is_unavailable_naming_the_package() {
    let Err(e) = VmPlugin::warmup(&json!({"xvfb": "/nonexistent/Xvfb"})) else {
        panic!("warmup succeeded")
    };
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("`xvfb`"), "{}", e.message);
}

#[test]
fn a_missing_program_is_unavailable_and_leaves_nothing() {
    let p = plugin();
    let id = "vm_w1_001_missing";
    let Err(e) = p.initialize(
        id,
        &json!({"screen_size": [320, 240], "programs": ["xterm", "no-such-program-xyz --flag"]}),
    ) else {
        panic!("a missing program must fail the session");
    };
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("programs[1]") && e.message.contains("no-such-program-xyz"),
        "{}",
        e.message
    );
    assert!(eventually(Duration::from_secs(5), || session_processes(id).is_empty()));
}

#[test]
fn a_window_manager_frames_the_programs_windows() {
    let p = plugin();
    let s = session(
        &p,
        "vm_w1_001_wm",
        json!({"screen_size": [800, 600], "window_manager": "openbox", "programs": ["xterm -title framed"]}),
    );
    // openbox reparents xterm into a frame: the xterm window is then nested deeper than the root's children.
    let framed = eventually(Duration::from_secs(20), || {
        let xml = ok(&p, &s, "accessibility_tree", json!({}))["accessibility_tree"]
            .as_str()
            .unwrap_or("")
            .to_string();
        xml.lines().any(|l| {
            l.contains("name=\"framed\"") && l.contains("class=\"XTerm\"") && l.starts_with("    ")
        })
    });
    assert!(
        framed,
        "{}",
        ok(&p, &s, "accessibility_tree", json!({}))["accessibility_tree"]
    );
    p.cleanup(&s).unwrap();
}

/// Not a test on its own: the child process of `killing_the_host_kills_the_session`.
#[test]
#[ignore = "run by killing_the_host_kills_the_session in a child process"]
fn host_child_holding_a_session() {
    let p = plugin();
    let id = std::env::var("VM_TEST_SESSION_ID").expect("session id");
    let s = session(
        &p,
        &id,
        json!({"screen_size": [320, 240], "programs": ["xterm -e bash --norc", "setsid sh -c 'sleep 600 & sleep 600'"]}),
    );
    assert!(eventually(Duration::from_secs(20), || {
        session_processes(&id).iter().any(|&p| comm(p) == "bash")
    }));
    println!("\nREADY {}", s.xvfb_pid());
    // The parent SIGKILLs this process long before; the limit only bounds a stray run.
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn killing_the_host_kills_the_session() {
    let id = format!("vm_w1_001_sigkill{}", std::process::id());
    /// Kills the child on every path out of the test.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host_child_holding_a_session",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VM_TEST_SESSION_ID", &id)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let stdout = child.0.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("READY"));
    assert!(ready.is_some(), "the child never got its session ready");
    let before = session_processes(&id);
    assert!(
        before.len() >= 4,
        "Xvfb, xterm, bash and sleeps: {before:?}"
    );
    child.0.kill().unwrap(); // SIGKILL: no cleanup code runs in the child
    child.0.wait().unwrap();
    let gone = eventually(Duration::from_secs(10), || {
        session_processes(&id).is_empty()
    });
    let left: Vec<_> = session_processes(&id)
        .iter()
        .map(|&p| (p, comm(p)))
        .collect();
    assert!(gone, "survived the host: {left:?}");
}

#[test]
fn only_clients_with_the_sessions_cookie_reach_its_display() {
    use x11rb::rust_connection::{DefaultStream, RustConnection};
    let p = plugin();
    let s = session(&p, "vm_w0_001_auth", json!({"screen_size": [640, 480]}));
    let connect = |name: &[u8], data: &[u8]| {
        let socket =
            std::os::unix::net::UnixStream::connect(format!("/tmp/.X11-unix/X{}", s.display()))
                .expect("the display's socket");
        let (stream, _) = DefaultStream::from_unix_stream(socket).expect("stream");
        RustConnection::connect_to_stream_with_auth_info(stream, 0, name.to_vec(), data.to_vec())
    };
    assert!(
        connect(b"", b"").is_err(),
        "a client without a cookie was let in"
    );
    assert!(
        connect(b"MIT-MAGIC-COOKIE-1", &[7; 16]).is_err(),
        "a client with a wrong cookie was let in"
    );
    // The session's programs find the cookie through XAUTHORITY in this file.
    let file = std::fs::read(s.dir().join("Xauthority")).expect("the session's Xauthority");
    let cookie = &file[file.len() - 16..];
    assert!(connect(b"MIT-MAGIC-COOKIE-1", cookie).is_ok());
    p.cleanup(&s).unwrap();
}
