//! Hostile commands in real sandboxed bash sessions, through the real server
//! with the default sandbox settings. Each is refused or contained with a
//! clear result, and afterwards the server and a second session still answer.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentflow_e2e::{eventually, processes_matching, Server};
use serde_json::{json, Value};

/// A server with the bash plugin, default sandbox, a private workspace root
/// and a host variable that must not reach sessions.
struct Fixture {
    server: Server,
    root: PathBuf,
    _root_dir: tempfile::TempDir,
}

const HOST_SECRET: &str = "AGENTFLOW_E2E_HOST_SECRET";

/// A server with the bash plugin, a private workspace root (its parent
/// passable for the sandbox's user) and `sandbox` as the lines of its
/// `[plugins.bash.config.sandbox]` table.
fn bash_server(sandbox: &str, env: &[(&str, &str)]) -> (Server, PathBuf, tempfile::TempDir) {
    let root_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root_dir.path(), PermissionsExt::from_mode(0o711)).unwrap();
    let root = root_dir.path().join("ws");
    let mut builder = Server::builder().plugin("bash").toml(&format!(
        "[plugins.bash.config]\nworkspace_root = \"{}\"\n[plugins.bash.config.sandbox]\n{sandbox}",
        root.display()
    ));
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    (builder.start(), root, root_dir)
}

fn fixture() -> Fixture {
    let (server, root, root_dir) = bash_server("", &[(HOST_SECRET, "do-not-leak")]);
    let f = Fixture {
        server,
        root,
        _root_dir: root_dir,
    };
    // The bystander: a second session that must keep answering.
    f.create("bystander", json!({}));
    f
}

impl Fixture {
    fn create(&self, worker: &str, config: Value) -> Value {
        let (code, body) = self.server.post(
            "/session/create",
            json!({"worker_id": worker, "resource_type": "bash", "config": config}),
        );
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Runs `command` in `worker`'s session; returns (HTTP status, body).
    fn run_within(&self, worker: &str, command: &str, timeout: u64) -> (u16, Value) {
        self.server.post(
            "/execute",
            json!({"worker_id": worker, "action": "bash:run",
                   "params": {"command": command}, "timeout": timeout}),
        )
    }

    /// Runs `command`; the call itself must succeed. Returns stdout + stderr.
    fn run(&self, worker: &str, command: &str) -> (String, i64) {
        let (code, body) = self.run_within(worker, command, 60);
        assert_eq!(code, 200, "{command}: {body}");
        let data = &body["data"];
        let text = format!(
            "{}{}",
            data["stdout"].as_str().unwrap_or_default(),
            data["stderr"].as_str().unwrap_or_default()
        );
        (text, data["return_code"].as_i64().unwrap_or(-1))
    }

    /// The server and the bystander session still answer.
    fn still_standing(&self) {
        let (code, _) = self.server.get("/health");
        assert_eq!(code, 200, "the server answers");
        let (out, rc) = self.run("bystander", "echo alive");
        assert_eq!(
            (out.as_str(), rc),
            ("alive\n", 0),
            "the second session answers"
        );
    }

    fn session_dir(&self, worker: &str) -> String {
        let (code, body) = self.server.execute(worker, "bash:info", json!({}));
        assert_eq!(code, 200, "{body}");
        body["data"]["session_dir"].as_str().unwrap().to_string()
    }
}

#[test]
fn the_host_filesystem_is_read_only_and_private_paths_are_absent() {
    let f = fixture();
    f.create("w", json!({}));
    let probe = format!("/etc/agentflow-probe-{}", std::process::id());
    let (out, rc) = f.run("w", &format!("touch {probe} 2>&1; echo rc=$?"));
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.ends_with("rc=1\n"), "{out} {rc}");
    assert!(
        !Path::new(&probe).exists(),
        "nothing reached the host's /etc"
    );
    // Root's secrets in /etc stay unreadable.
    let (out, _) = f.run("w", "cat /etc/shadow 2>&1; echo rc=$?");
    assert!(
        out.contains("Permission denied") && out.contains("rc=1"),
        "{out}"
    );
    // Private host paths: /root is empty, the server's directory and config do not exist.
    let config = f.server.dir.path().join("plugins.toml");
    let (out, _) = f.run(
        "w",
        &format!(
            "ls -A /root | wc -l; cat {} 2>&1; ls /home /var/lib /srv 2>&1 | head -3",
            config.display()
        ),
    );
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("No such file or directory"), "{out}");
    assert!(
        !out.contains("[server]"),
        "the config is not readable: {out}"
    );
    // The home directory and /tmp are writable and the session's own.
    let (out, rc) = f.run("w", "echo data > ~/f && echo t > /tmp/t && cat ~/f /tmp/t");
    assert_eq!((out.as_str(), rc), ("data\nt\n", 0));
    f.still_standing();
}

#[test]
fn writes_to_usr_and_opt_go_to_the_sessions_own_layer() {
    let f = fixture();
    f.create("w", json!({}));
    f.create("other", json!({}));
    let tool = format!("agentflow-layer-probe-{}", std::process::id());
    let (out, rc) = f.run(
        "w",
        &format!(
            "printf '#!/bin/sh\\necho from-the-layer\\n' > /usr/local/bin/{tool} && \
             chmod +x /usr/local/bin/{tool} && {tool} && \
             echo changed >> /usr/share/common-licenses/GPL-3 2>/dev/null; \
             tail -1 /usr/share/common-licenses/GPL-3"
        ),
    );
    assert_eq!(rc, 0, "{out}");
    assert!(out.starts_with("from-the-layer\n"), "{out}");
    assert!(
        out.ends_with("changed\n"),
        "the session sees its change: {out}"
    );
    assert!(
        !Path::new("/usr/local/bin").join(&tool).exists(),
        "nothing reached the host's /usr"
    );
    let host_file = std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap();
    assert!(
        !host_file.ends_with("changed\n"),
        "the host's file is unchanged"
    );
    let (out, _) = f.run(
        "other",
        &format!("ls /usr/local/bin/{tool} 2>&1; tail -1 /usr/share/common-licenses/GPL-3"),
    );
    assert!(
        out.contains("No such file"),
        "another session does not see it: {out}"
    );
    assert!(!out.ends_with("changed\n"), "{out}");
    let (code, body) = f.server.execute("w", "bash:info", json!({}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["layered"], json!(["/usr", "/opt"]), "{body}");
    f.still_standing();
}

#[test]
fn another_sessions_files_are_not_reachable_by_path_or_search() {
    let f = fixture();
    f.create("owner", json!({}));
    f.create("snoop", json!({}));
    let marker = format!("secret-marker-{}", std::process::id());
    f.run("owner", &format!("echo s3cret > {marker}"));
    let owner_dir = f.session_dir("owner");
    let (out, _) = f.run("snoop", &format!("cat {owner_dir}/{marker} 2>&1"));
    assert!(out.contains("No such file or directory"), "{out}");
    let (out, _) = f.run(
        "snoop",
        &format!(
            "find / -path /usr -prune -o -path /proc -prune -o -path /etc -prune -o \
             -name '{marker}*' -print 2>/dev/null; ls {} 2>&1",
            f.root.display()
        ),
    );
    assert!(
        !out.contains("s3cret") && !out.contains(&format!("/{marker}")),
        "{out}"
    );
    f.still_standing();
}

#[test]
fn the_network_is_the_sessions_own_loopback() {
    let f = fixture();
    f.create("w", json!({}));
    let host_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = host_listener.local_addr().unwrap().port();
    let server_port = f.server.base.rsplit(':').next().unwrap().to_string();
    for port in [server_port.clone(), other_port.to_string()] {
        let (out, _) = f.run(
            "w",
            &format!("(echo > /dev/tcp/127.0.0.1/{port}) 2>&1 && echo CONNECTED || echo refused"),
        );
        assert!(
            out.contains("refused") && !out.contains("CONNECTED"),
            "port {port}: {out}"
        );
    }
    let (out, _) = f.run("w", "cat /proc/net/dev | grep -c ':' ");
    assert_eq!(out.trim(), "1", "only a loopback interface");
    f.still_standing();
}

#[test]
fn the_session_has_no_privilege_on_the_host() {
    let f = fixture();
    f.create("w", json!({}));
    // Root inside, nobody outside; no capabilities, no_new_privs, seccomp.
    let (out, _) = f.run(
        "w",
        "id -u; cat /proc/self/uid_map; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[0], "0", "{out}");
    // One id mapped (bubblewrap nests a second user namespace for
    // --disable-userns, so the outer uid shows on the host, checked below).
    assert_eq!((fields[1], fields[3]), ("0", "1"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // On the host, the session's processes run as the unprivileged uid.
    let marker = format!("agentflow-e2e-uid-{}", std::process::id());
    f.run("w", &format!("(exec -a {marker} sleep 30) & disown"));
    assert!(eventually(Duration::from_secs(5), || {
        !processes_matching(&marker).is_empty()
    }));
    for (pid, _) in processes_matching(&marker) {
        let uid = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
        assert_eq!(uid, 65534, "host uid of {pid}");
    }
    // Mounting, new namespaces and /dev/kvm are refused.
    let (out, _) = f.run(
        "w",
        "mkdir -p m; mount -t tmpfs none m 2>&1; echo mount=$?; \
         unshare -U true 2>&1; echo unshare_user=$?; unshare -n true 2>&1; echo unshare_net=$?; \
         ls /dev/kvm 2>&1; ls /dev | tr '\\n' ' '",
    );
    assert!(out.contains("mount=32") || out.contains("mount=1"), "{out}");
    assert!(
        !out.contains("unshare_user=0") && !out.contains("unshare_net=0"),
        "{out}"
    );
    assert!(out.contains("cannot access '/dev/kvm'"), "{out}");
    assert!(
        !out.contains(" vda") && !out.contains(" sda"),
        "no disks: {out}"
    );
    // A setuid binary gains nothing: no_new_privs ignores the bit.
    let (out, _) = f.run(
        "w",
        "cp /bin/bash ./sb && chmod u+s ./sb && ./sb -p -c 'grep CapEff /proc/self/status'",
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    // The server's process is not in the session's PID namespace.
    let (out, _) = f.run("w", &format!("kill -0 {} 2>&1; echo rc=$?", f.server.pid()));
    assert!(out.contains("rc=1"), "{out}");
    f.still_standing();
}

#[test]
fn the_hosts_environment_does_not_reach_the_session() {
    let f = fixture();
    f.create("w", json!({}));
    let (out, _) = f.run("w", "env");
    assert!(!out.contains(HOST_SECRET), "{out}");
    assert!(!out.contains("do-not-leak"), "{out}");
    assert!(!out.contains("CARGO") && !out.contains("RUST"), "{out}");
    f.still_standing();
}

#[test]
fn kill_everything_and_fork_bombs_stay_inside_the_session() {
    let f = fixture();
    f.create("w", json!({"limits": {"processes": 64}}));
    // kill -9 -1 kills all the session's processes but the shell (PID 1).
    let (code, body) = f.run_within("w", "sleep 100 & kill -9 -1; echo survived", 30);
    assert_eq!(code, 200, "{body}");
    f.still_standing();
    // A fork bomb hits the session's process limit; the call times out and
    // what it started is killed.
    let (code, body) = f.run_within("w", ":(){ :|:& };:", 5);
    assert!(code == 200 || code == 504, "{code} {body}");
    f.still_standing();
    assert!(
        eventually(Duration::from_secs(20), || {
            let (code, body) = f.run_within("w", "echo back", 10);
            code == 200 && body["data"]["stdout"] == "back\n"
        }),
        "the session recovers after the fork bomb"
    );
}

#[test]
fn memory_and_tmp_hogs_are_stopped_inside_the_session() {
    let f = fixture();
    f.create(
        "w",
        json!({"limits": {"memory_bytes": 128u64 << 20, "tmp_bytes": 16u64 << 20}}),
    );
    // tail keeps a line in memory until it ends: this one never does.
    let (code, body) = f.run_within("w", "head -c 512M /dev/zero | tail -n 1 >/dev/null", 60);
    assert_eq!(code, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["return_code"], 137, "{data}");
    assert_eq!(data["memory_limit_reached"], true, "{data}");
    assert!(
        data["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("memory limit of 128 MiB"),
        "{data}"
    );
    // The next failing command does not report it again.
    let (code, body) = f.run_within("w", "false", 10);
    assert_eq!(code, 200, "{body}");
    assert!(body["data"].get("memory_limit_reached").is_none(), "{body}");
    let (out, _) = f.run(
        "w",
        "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; echo rc=$?",
    );
    assert!(
        out.contains("No space left on device") && out.contains("rc=1"),
        "{out}"
    );
    f.still_standing();
}

#[test]
fn filling_the_workspace_stops_at_its_disk_limit() {
    let f = fixture();
    f.create("w", json!({"limits": {"disk_bytes": 32u64 << 20}}));
    let (out, _) = f.run(
        "w",
        "dd if=/dev/urandom of=big bs=1M count=64 2>&1 | grep -c 'No space left'; df -k . | tail -1",
    );
    assert!(out.starts_with("1\n"), "ENOSPC inside the session: {out}");
    let size_kib: u64 = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        size_kib <= 32 * 1024,
        "the workspace is a 32 MiB disk: {out}"
    );
    // The plugin's own file tool meets the same limit.
    let (code, body) = f.server.execute(
        "w",
        "bash:write_file",
        json!({"path": "more.txt", "content": "x".repeat(1 << 20)}),
    );
    assert_ne!(code, 200, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("No space"),
        "{body}"
    );
    // Freeing space makes it usable again.
    let (out, rc) = f.run("w", "rm big && echo ok > small && cat small");
    assert_eq!((out.as_str(), rc), ("ok\n", 0));
    f.still_standing();
}

#[test]
fn client_limits_may_only_tighten() {
    let f = fixture();
    let (code, body) = f.server.post(
        "/session/create",
        json!({"worker_id": "greedy", "resource_type": "bash",
               "config": {"limits": {"memory_bytes": 1u64 << 40}}}),
    );
    assert_eq!(code, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("limits.memory_bytes") && message.contains("tighten"),
        "{message}"
    );
    f.still_standing();
}

#[test]
fn file_tools_see_only_the_sandboxed_view() {
    let f = fixture();
    f.create("w", json!({}));
    f.run("w", "ln -s /etc/passwd p; ln -s /root r");
    for path in ["p", "r/x"] {
        let (code, body) = f
            .server
            .execute("w", "bash:read_file", json!({"path": path}));
        assert_eq!(code, 400, "{path}: {body}");
    }
    // A file the tool writes belongs to the session: the shell may change it.
    let (code, body) = f.server.execute(
        "w",
        "bash:write_file",
        json!({"path": "sub/w.txt", "content": "from the tool\n"}),
    );
    assert_eq!(code, 200, "{body}");
    let (out, rc) = f.run(
        "w",
        "echo more >> sub/w.txt && cat sub/w.txt && rm sub/w.txt",
    );
    assert_eq!((out.as_str(), rc), ("from the tool\nmore\n", 0));
    f.still_standing();
}

#[test]
fn the_sandbox_is_shown_in_status() {
    let f = fixture();
    f.create("w", json!({}));
    let (code, body) = f.server.execute("w", "bash:info", json!({}));
    assert_eq!(code, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["isolation"], "bubblewrap", "{data}");
    assert_eq!(data["sandbox"]["network"], "none", "{data}");
    assert_eq!(data["sandbox"]["host_uid"], 65534, "{data}");
    assert!(
        data["session_limits"]["memory_bytes"].as_u64().is_some(),
        "{data}"
    );
}

#[test]
fn turning_the_sandbox_off_is_explicit_logged_and_shown() {
    let (s, _root, _dir) = bash_server("isolation = \"none\"", &[]);
    let (code, body) = s.get("/warmup/status");
    assert_eq!(code, 200, "{body}");
    let warnings = body["data"]["backends"]["bash"]["warnings"].to_string();
    assert!(warnings.contains("isolation = \\\"none\\\""), "{body}");
    let (code, body) = s.execute("w", "bash:info", json!({}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["isolation"], "none", "{body}");
    assert!(body["data"]["sandbox"]["warning"].is_string(), "{body}");
    assert!(
        s.log().contains("isolation = \"none\""),
        "the server's log warns: {}",
        s.log()
    );
}

/// A root filesystem holding just bash (and what it links), as an operator's
/// image would hold a whole distribution.
fn tiny_image(dir: &Path) {
    let usr = dir.join("usr");
    std::fs::create_dir_all(usr.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "ID=agentflow-tiny-image\n").unwrap();
    let bash = std::fs::canonicalize("/usr/bin/bash").unwrap();
    std::fs::copy(&bash, usr.join("bin/bash")).unwrap();
    let ldd = std::process::Command::new("ldd")
        .arg(&bash)
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let Some(path) = line.split_whitespace().find(|word| word.starts_with('/')) else {
            continue;
        };
        let real = std::fs::canonicalize(path).unwrap();
        let inside = Path::new(path).strip_prefix("/").unwrap();
        // Merged /usr: /lib64/x is /usr/lib64/x.
        let inside = Path::new("usr").join(inside.strip_prefix("usr").unwrap_or(inside));
        std::fs::create_dir_all(dir.join(&inside).parent().unwrap()).unwrap();
        std::fs::copy(real, dir.join(&inside)).unwrap();
    }
    for link in ["bin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), dir.join(link)).unwrap();
    }
}

#[test]
fn a_session_runs_on_the_operators_image_it_names() {
    let image_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(image_dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    tiny_image(image_dir.path());
    let (s, _root, _dir) = bash_server(
        &format!("images = {{ tiny = \"{}\" }}", image_dir.path().display()),
        &[],
    );
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "w", "resource_type": "bash", "config": {"image": "tiny"}}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.execute(
        "w",
        "bash:run",
        json!({"command": "echo \"$(</etc/os-release)\"; echo added > /etc/added && echo \"$(</etc/added)\"; \
                            [[ -e /usr/bin/python3 ]] && echo host-python || echo no-python"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["data"]["stdout"], "ID=agentflow-tiny-image\nadded\nno-python\n",
        "{body}"
    );
    assert!(
        !image_dir.path().join("etc/added").exists(),
        "the write went to the session's layer, not into the image"
    );
    let (code, body) = s.execute("w", "bash:info", json!({}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["image"], "tiny", "{body}");
    // Images are chosen by name only.
    let (code, body) = s.post(
        "/session/create",
        json!({"worker_id": "w2", "resource_type": "bash", "config": {"image": "/"}}),
    );
    assert_eq!(code, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("image") && message.contains("tiny"),
        "{message}"
    );
}

/// A network namespace of the test's own, joined to the host by a veth pair:
/// the "outside" an egress sandbox may reach (test traffic never leaves the
/// machine). Removed on drop.
struct Outside {
    netns: String,
    address: String,
}

impl Outside {
    fn new() -> Self {
        let id = std::process::id();
        let netns = format!("afe-{id}");
        let (host_if, ns_if) = (format!("afe{id}h"), format!("afe{id}n"));
        let net = 1 + id % 250;
        let address = format!("10.233.{net}.2");
        let ip = |args: &str| {
            let status = std::process::Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .unwrap();
            assert!(status.success(), "ip {args}");
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &netns])
            .status();
        ip(&format!("netns add {netns}"));
        ip(&format!("link add {host_if} type veth peer name {ns_if}"));
        ip(&format!("link set {ns_if} netns {netns}"));
        ip(&format!("addr add 10.233.{net}.1/30 dev {host_if}"));
        ip(&format!("link set {host_if} up"));
        ip(&format!("-n {netns} addr add {address}/30 dev {ns_if}"));
        ip(&format!("-n {netns} link set {ns_if} up"));
        Self { netns, address }
    }

    /// Accepts one connection on `port` in the namespace; returns what came.
    fn listen_once(&self, port: u16) -> std::process::Child {
        let script = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{}', {port}))\ns.listen(1)\nprint('listening', flush=True)\n\
             s.settimeout(30)\nc,_=s.accept()\nprint(c.recv(100).decode().strip(), flush=True)\n",
            self.address
        );
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns, "python3", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.as_mut().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "listening");
        child
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

#[test]
fn egress_reaches_outside_networks_but_not_the_hosts_loopback() {
    let outside = Outside::new();
    let (s, _root, _dir) = bash_server("network = \"egress\"", &[]);
    let port = 20000 + (std::process::id() % 20000) as u16;
    let listener = outside.listen_once(port);
    let (code, body) = s.execute(
        "w",
        "bash:run",
        json!({"command": format!(
            "echo hello-egress > /dev/tcp/{}/{port} && echo sent", outside.address
        )}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["stdout"], "sent\n", "{body}");
    let got = listener.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "hello-egress");
    // The host's loopback, the server's port on it, stays out of reach.
    let server_port = s.base.rsplit(':').next().unwrap().to_string();
    for address in ["127.0.0.1", "10.0.2.2"] {
        let (code, body) = s.execute(
            "w",
            "bash:run",
            json!({"command": format!(
                "timeout 5 bash -c 'echo > /dev/tcp/{address}/{server_port}' 2>/dev/null && echo CONNECTED || echo refused"
            )}),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["data"]["stdout"], "refused\n", "{address}: {body}");
    }
    let (code, body) = s.execute("w", "bash:info", json!({}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["sandbox"]["network"], "egress", "{body}");
}
