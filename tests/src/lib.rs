//! The end-to-end test harness: starts the real `agentflow` binary with a
//! private plugin directory holding real plugin libraries built from this
//! workspace, and talks to it over HTTP.
//!
//! Build the workspace first (`cargo build --workspace`; `scripts/test.sh` does).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `target/debug` (or wherever this test binary was built).
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The built library of a workspace crate: `agentflow_bash` -> `libagentflow_bash.so`.
pub fn library(crate_lib_name: &str) -> PathBuf {
    let path = build_dir().join(format!("lib{crate_lib_name}.so"));
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which scripts/test.sh runs)",
        path.display()
    );
    path
}

/// The built plugin library for plugin `name` (`bash`, `vm`, `rag`, `fixture`).
pub fn plugin_library(name: &str) -> PathBuf {
    library(&format!("agentflow_{name}"))
}

/// An answer with its headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A server under test, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    agent: ureq::Agent,
}

/// Configures a server before starting it.
#[derive(Default)]
pub struct ServerBuilder {
    plugins: Vec<(PathBuf, String)>,
    server_lines: Vec<String>,
    tables: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Puts the built plugin `name` into the plugin directory.
    pub fn plugin(mut self, name: &str) -> Self {
        let src = plugin_library(name);
        let file = format!("libagentflow_{name}.so");
        self.plugins.push((src, file));
        self
    }

    /// Puts any file into the plugin directory under `file_name`.
    pub fn file(mut self, src: PathBuf, file_name: &str) -> Self {
        self.plugins.push((src, file_name.to_string()));
        self
    }

    /// Adds a `key = value` line to `[server]`.
    pub fn server(mut self, line: &str) -> Self {
        self.server_lines.push(line.to_string());
        self
    }

    /// Appends raw TOML (plugin tables).
    pub fn toml(mut self, text: &str) -> Self {
        self.tables.push(text.to_string());
        self
    }

    /// Sets an environment variable for the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the server and waits until it listens.
    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).expect("plugin dir");
        for (src, name) in &self.plugins {
            std::fs::copy(src, plugins.join(name)).expect("copy plugin");
        }
        let mut config = String::from(
            "[server]\nport = 0\nplugin_dir = \"plugins\"\nruntime_dir = \"runtime\"\n",
        );
        for l in &self.server_lines {
            config.push_str(l);
            config.push('\n');
        }
        for t in &self.tables {
            config.push('\n');
            config.push_str(t);
            config.push('\n');
        }
        let config_path = dir.path().join("plugins.toml");
        std::fs::write(&config_path, config).expect("write config");
        Server::spawn(dir, &config_path, &self.env)
    }
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The `agentflow` binary built with this workspace.
    pub fn binary() -> PathBuf {
        let bin = build_dir().join("agentflow");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --workspace` first",
            bin.display()
        );
        bin
    }

    fn spawn(dir: tempfile::TempDir, config: &Path, env: &[(String, String)]) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(Self::binary());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start agentflow");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("agentflow listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("server did not start; log:\n{log}");
            }
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(600))
            .build();
        Server {
            child: Some(child),
            base,
            dir,
            agent,
        }
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn finish(res: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
        match res {
            Ok(r) => {
                let status = r.status();
                (status, r.into_json().unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(json!({ "raw": text })),
                )
            }
            Err(e) => panic!("transport error: {e}"),
        }
    }

    /// POSTs JSON; returns status and body.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::finish(
            self.agent
                .post(&format!("{}{path}", self.base))
                .send_json(body),
        )
    }

    /// POSTs raw bytes with a JSON content type.
    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        Self::finish(
            self.agent
                .post(&format!("{}{path}", self.base))
                .set("Content-Type", "application/json")
                .send_bytes(body),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        Self::finish(self.agent.get(&format!("{}{path}", self.base)).call())
    }

    /// A request with any method and headers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = self.send(method, path, headers, body);
        (r.status, r.body)
    }

    /// A request with any method and headers; the answer with its headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let response = match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(json!({ "raw": text })),
            headers,
        }
    }

    /// A GET whose answer is read as bytes (files, archives, pages).
    pub fn get_bytes(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let response = match req.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = response.status();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).expect("read body");
        (status, bytes)
    }

    /// `POST /execute` with a timeout of 60 s unless params say otherwise.
    pub fn execute(&self, worker: &str, action: &str, params: Value) -> (u16, Value) {
        self.post(
            "/execute",
            json!({"worker_id": worker, "action": action, "params": params}),
        )
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the server with SIGKILL (nothing of its own runs after) and
    /// reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }
}

impl Drop for Server {
    /// Stops the server as an operator would (SIGTERM), so that it ends its
    /// sessions and plugins (unmounting session disks); SIGKILL if it hangs.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let end = Instant::now() + Duration::from_secs(15);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A server with the bash plugin, its sessions under `root`.
pub fn bash_server_at(root: &Path) -> Server {
    use std::os::unix::fs::PermissionsExt;
    // The sandbox's user must pass through the workspace root and its parent.
    // Bits are only added: the parent is usually the machine's shared /tmp,
    // whose mode (1777) other programs rely on.
    for dir in [root.parent().unwrap_or(root), root] {
        let mode = std::fs::metadata(dir).expect("root").permissions().mode();
        if mode & 0o011 != 0o011 {
            std::fs::set_permissions(dir, PermissionsExt::from_mode((mode & 0o7777) | 0o011))
                .expect("chmod");
        }
    }
    Server::builder()
        .plugin("bash")
        .toml(&format!(
            "[plugins.bash.config]\nworkspace_root = \"{}\"",
            root.display()
        ))
        .start()
}

/// Polls `f` until it returns true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line contains `needle`, as (pid, cmdline).
pub fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(needle) {
                out.push((pid, cmd));
            }
        }
    }
    out
}

/// Width and height of a base64 PNG (a screenshot), read from its header.
pub fn png_size(b64: &str) -> (u32, u32) {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}
