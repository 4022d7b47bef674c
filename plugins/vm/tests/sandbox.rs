//! The session's programs run in a bubblewrap sandbox (Xvfb outside it): they
//! reach the display through its socket file and cookie, and nothing of the
//! host but its system directories (read-only) and the session's directory.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use plugin_api::{ErrorKind, Plugin};
use serde_json::json;

/// The host uid sandboxed programs run as: `sandbox.uid` (default 65534)
/// when the tests run as root, else the tests' own.
fn sandbox_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    match unsafe { libc::getuid() } {
        0 => 65534,
        uid => uid,
    }
}

/// What the probe program writes into the session's directory, then `done`.
const PROBE: &str = "\
xdpyinfo > xdpyinfo.txt 2>&1; echo $? > xdpyinfo.status; \
id -u > uid.txt; \
if echo x > /etc/agentflow-vm-sandbox-probe; then echo written; else echo refused; fi > etc.txt 2>&1; \
if cat \"$SECRET\" > secret.txt 2>&1; then echo read; else echo unreadable; fi > secret.status; \
if echo x >> \"$XAUTHORITY\"; then echo written; else echo refused; fi > xauth.txt 2>&1; \
ls -A /tmp/.X11-unix > sockets.txt 2>&1; \
env > env.txt; \
touch done";

#[test]
fn programs_reach_the_display_from_a_sandbox_that_confines_them() {
    // Another session's display: its socket must not be visible to the probe.
    let p = plugin();
    let other = session(
        &p,
        "vm_w2_001_sbx_other",
        json!({"screen_size": [320, 240]}),
    );
    // A host file the sandbox must not see (its /tmp is a tmpfs of its own).
    let host_dir = temp_dir("sandbox-secret");
    let secret = host_dir.join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let id = "vm_w1_001_sandboxed";
    let s = session(
        &p,
        id,
        json!({
            "screen_size": [640, 480],
            "programs": [PROBE],
            "env": {"SECRET": secret},
        }),
    );
    let dir = s.dir().to_path_buf();
    assert!(
        eventually(Duration::from_secs(20), || dir.join("done").exists()),
        "the probe never finished; programs.log: {}",
        read(&dir.join("programs.log"))
    );
    let file = |name: &str| read(&dir.join(name)).trim().to_string();

    // (a) The X connection works from inside.
    assert_eq!(
        file("xdpyinfo.status"),
        "0",
        "xdpyinfo: {}",
        file("xdpyinfo.txt")
    );
    assert!(
        file("xdpyinfo.txt").contains(&format!("name of display:    :{}", s.display())),
        "{}",
        file("xdpyinfo.txt")
    );
    // Only this session's socket is there.
    assert_eq!(file("sockets.txt"), format!("X{}", s.display()));

    // (b) Confinement: nobody inside, the sandbox's uid outside.
    assert_eq!(file("uid.txt"), "65534", "nobody inside");
    for name in ["uid.txt", "done"] {
        let owner = std::fs::metadata(dir.join(name)).unwrap().uid();
        assert_eq!(owner, sandbox_uid(), "owner of {name}");
    }
    assert_eq!(file("etc.txt").lines().last(), Some("refused"));
    assert!(!Path::new("/etc/agentflow-vm-sandbox-probe").exists());
    assert_eq!(
        file("secret.status"),
        "unreadable",
        "{}",
        file("secret.txt")
    );
    assert!(!file("secret.txt").contains("host secret"));
    assert_eq!(
        file("xauth.txt").lines().last(),
        Some("refused"),
        "the cookie is read-only inside"
    );
    // Only the variables the plugin sets, none of the host's.
    let env = file("env.txt");
    assert!(env.contains(&format!("HOME={}", dir.display())), "{env}");
    assert!(env.contains(&format!("AGENTFLOW_VM_SESSION={id}")), "{env}");
    assert!(
        !env.contains("CARGO_"),
        "the host's environment leaked: {env}"
    );
    // The files the programs need belong to the sandbox's user.
    for path in [dir.clone(), dir.join("Xauthority")] {
        let owner = std::fs::metadata(&path).unwrap().uid();
        assert_eq!(owner, sandbox_uid(), "owner of {}", path.display());
    }

    // Each program is a bubblewrap running as the sandbox's user, leading its
    // own process session (so cleanup can kill its group).
    for pid in s.program_pids() {
        assert_eq!(comm(pid), "bwrap");
        let status = read(Path::new(&format!("/proc/{pid}/status")));
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
        assert_eq!(uid, Some(sandbox_uid()), "{status}");
        let stat = read(Path::new(&format!("/proc/{pid}/stat")));
        let session_id = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(3)?.parse::<u32>().ok());
        assert_eq!(session_id, Some(pid), "{stat}");
    }

    let info = ok(&p, &s, "info", json!({}));
    assert_eq!(info["isolation"], "bubblewrap", "{info}");
    assert_eq!(info["sandbox"]["isolation"], "bubblewrap", "{info}");
    assert_eq!(info["sandbox"]["host_uid"], sandbox_uid(), "{info}");
    assert!(info["session_limits"]["memory_bytes"].is_u64(), "{info}");

    p.cleanup(&s).unwrap();
    assert!(eventually(Duration::from_secs(5), || session_processes(id).is_empty()));
    p.cleanup(&other).unwrap();
    let _ = std::fs::remove_dir_all(host_dir);
}

#[test]
fn client_limits_may_only_tighten_the_servers() {
    let p = plugin();
    let Err(e) = p.initialize(
        "vm_w1_001_sbx_loose",
        &json!({"limits": {"memory_bytes": 1u64 << 50}}),
    ) else {
        panic!("limits above the server's must be refused");
    };
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{e:?}");
    assert!(e.message.contains("limits.memory_bytes"), "{}", e.message);
    let Err(e) = p.initialize("vm_w1_001_sbx_typo", &json!({"limits": {"memory": 1}})) else {
        panic!("unknown limits must be refused");
    };
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{e:?}");
    assert!(e.message.contains("limits"), "{}", e.message);

    let s = session(
        &p,
        "vm_w1_001_sbx_tight",
        json!({"screen_size": [320, 240], "limits": {"processes": 64}}),
    );
    let info = ok(&p, &s, "info", json!({}));
    assert_eq!(info["session_limits"]["processes"], 64, "{info}");
    p.cleanup(&s).unwrap();
}

#[test]
fn a_cwd_outside_the_session_directory_is_refused_and_a_relative_one_made() {
    let p = plugin();
    let Err(e) = p.initialize("vm_w1_001_sbx_cwd", &json!({"cwd": "/etc"})) else {
        panic!("a host cwd must be refused");
    };
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{e:?}");
    assert!(
        e.message.contains("cwd") && e.message.contains("/etc"),
        "{}",
        e.message
    );
    let Err(e) = p.initialize("vm_w1_001_sbx_cwd", &json!({"cwd": "a/../../x"})) else {
        panic!("a cwd climbing out must be refused");
    };
    assert!(e.message.contains("cwd"), "{}", e.message);

    let s = session(
        &p,
        "vm_w1_001_sbx_cwd",
        json!({"screen_size": [320, 240], "cwd": "a/b", "programs": ["pwd > here; touch ../../done"]}),
    );
    let dir = s.dir().to_path_buf();
    assert!(eventually(Duration::from_secs(20), || dir
        .join("done")
        .exists()));
    assert_eq!(
        read(&dir.join("a/b/here")).trim(),
        dir.join("a/b").display().to_string()
    );
    assert_eq!(
        std::fs::metadata(dir.join("a")).unwrap().uid(),
        sandbox_uid()
    );
    p.cleanup(&s).unwrap();
}

#[test]
fn without_a_sandbox_programs_run_as_the_server_and_limits_are_refused() {
    let p = warm(json!({"sandbox": {"isolation": "none"}}));
    let Err(e) = p.initialize(
        "vm_w1_001_nosbx_limits",
        &json!({"limits": {"processes": 64}}),
    ) else {
        panic!("limits without a sandbox must be refused");
    };
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{e:?}");
    assert!(
        e.message.contains("limits") && e.message.contains("without a sandbox"),
        "{}",
        e.message
    );
    let s = session(
        &p,
        "vm_w1_001_nosbx",
        json!({"screen_size": [320, 240], "programs": ["xdpyinfo > xdpyinfo.txt 2>&1; env > env.txt; touch done"]}),
    );
    let dir = s.dir().to_path_buf();
    assert!(eventually(Duration::from_secs(20), || dir
        .join("done")
        .exists()));
    assert!(read(&dir.join("xdpyinfo.txt")).contains("name of display"));
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    assert_eq!(std::fs::metadata(dir.join("done")).unwrap().uid(), me);
    assert!(!read(&dir.join("env.txt")).contains("CARGO_"));
    let info = ok(&p, &s, "info", json!({}));
    assert_eq!(info["isolation"], "none", "{info}");
    assert_eq!(
        info["sandbox"]["warning"],
        sandbox::NO_SANDBOX_WARNING,
        "{info}"
    );
    assert!(info["session_limits"].is_null(), "{info}");
    p.cleanup(&s).unwrap();
}

#[test]
fn a_missing_bubblewrap_fails_warmup_naming_it() {
    let Err(e) =
        agentflow_vm::VmPlugin::warmup(&json!({"sandbox": {"bwrap": "/nonexistent/bwrap"}}))
    else {
        panic!("warmup succeeded")
    };
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(
        e.message.contains("bubblewrap") && e.message.contains("/nonexistent/bwrap"),
        "{}",
        e.message
    );
    let Err(e) = agentflow_vm::VmPlugin::warmup(&json!({"sandbox": {"isolaton": "none"}})) else {
        panic!("a misspelt key was accepted")
    };
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{e:?}");
    assert!(e.message.contains("isolaton"), "{}", e.message);
    // A failed warmup returns no plugin, so no session can start without its
    // sandbox.
}

#[test]
fn background_processes_outlive_their_command_line_until_cleanup() {
    let p = plugin();
    let id = "vm_w1_001_sbx_background";
    let s = session(
        &p,
        id,
        json!({"screen_size": [320, 240], "programs": ["sleep 617 & touch launched"]}),
    );
    let launched = s.dir().join("launched");
    assert!(eventually(Duration::from_secs(20), || launched.exists()));
    let daemon = || {
        session_processes(id).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() == b"sleep\x00617\x00"
        })
    };
    // Bubblewrap ends a sandbox with the program it started: the plugin's
    // wrapper keeps it while the background process lives.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(daemon(), "the background sleep died with its command line");
    p.cleanup(&s).unwrap();
    assert!(session_processes(id).is_empty());
}

#[test]
fn a_sessions_directory_is_a_disk_of_its_own_and_usr_a_layer_of_its_own() {
    let p = plugin();
    let tool = format!("agentflow-vm-layer-{}", std::process::id());
    let s = session(
        &p,
        "vm_w3_001_disk",
        json!({
            "screen_size": [320, 240],
            "limits": {"disk_bytes": 32u64 << 20},
            "programs": [format!(
                "dd if=/dev/zero of=fill bs=1M count=64 > dd.txt 2>&1; \
                 echo hi > /usr/local/bin/{tool} && cat /usr/local/bin/{tool} > layer.txt 2>&1; \
                 touch done"
            )],
        }),
    );
    let dir = s.dir().to_path_buf();
    assert!(
        eventually(Duration::from_secs(20), || dir.join("done").exists()),
        "the program never finished; programs.log: {}",
        read(&dir.join("programs.log"))
    );
    let dd = read(&dir.join("dd.txt"));
    assert!(dd.contains("No space left on device"), "{dd}");
    assert!(
        std::fs::metadata(dir.join("fill")).unwrap().len() <= 32 << 20,
        "the disk stopped the write"
    );
    assert_eq!(read(&dir.join("layer.txt")).trim(), "hi");
    assert!(
        !Path::new("/usr/local/bin").join(&tool).exists(),
        "the write to /usr stayed in the session's layer"
    );
    p.cleanup(&s).unwrap();
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir.to_string_lossy().as_ref()))
        .count();
    assert_eq!(mounted, 0, "the disk is unmounted at cleanup");
}
