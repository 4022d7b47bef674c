//! Starting and stopping the real `agentflow` server: a private temporary
//! directory with its own plugin directory, config and log, `--port 0`, and
//! the address read from the `agentflow listening on http://ADDR` line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::Api;

/// What goes into a server's directory and config.
#[derive(Default, Clone)]
pub struct ServerSpec {
    plugins: Vec<(String, PathBuf)>,
    server: Vec<String>,
    tables: Vec<String>,
}

impl ServerSpec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies the plugin library `lib` into the plugin directory as `libagentflow_<name>.so`.
    pub fn plugin(mut self, name: &str, lib: &Path) -> Self {
        self.plugins.push((name.into(), lib.into()));
        self
    }

    /// Adds a `key = value` line to `[server]`.
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.into());
        self
    }

    /// Appends TOML (plugin tables).
    pub fn toml(mut self, text: &str) -> Self {
        self.tables.push(text.into());
        self
    }

    fn config(&self) -> String {
        // Nothing warms at startup: scenarios warm explicitly (and time it).
        // Sessions outlive the longest run; plenty of room for the 100-session runs.
        let mut c = String::from(
            "[server]\nport = 0\nplugin_dir = \"plugins\"\nruntime_dir = \"runtime\"\n\
             warmup = []\nsession_ttl = 3600\nmax_sessions = 1024\n",
        );
        for l in &self.server {
            c.push_str(l);
            c.push('\n');
        }
        for t in &self.tables {
            c.push('\n');
            c.push_str(t);
            c.push('\n');
        }
        c
    }
}

/// A running server; killed if dropped without [`Server::stop`].
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Holds the config, plugins, runtime files and `server.log`; removed on drop.
    pub dir: tempfile::TempDir,
    /// When the process was spawned.
    pub spawned: Instant,
}

/// How a server ended.
pub struct Stopped {
    /// Exit code, or `None` when it had to be killed.
    pub exit_code: Option<i32>,
}

impl Server {
    /// Starts `agentflow serve` with the spec and waits until it listens.
    pub async fn start(binary: &Path, spec: &ServerSpec) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("agentflow-bench-")
            .tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins)?;
        for (name, lib) in &spec.plugins {
            std::fs::copy(lib, plugins.join(format!("libagentflow_{name}.so")))
                .with_context(|| format!("copy {}", lib.display()))?;
        }
        let config = dir.path().join("plugins.toml");
        std::fs::write(&config, spec.config())?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let spawned = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("agentflow listening on http://") {
                    return url.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        let Ok(Some(addr)) = found else {
            let _ = child.kill().await;
            bail!(
                "the server did not start; its log:\n{}",
                tail(&dir.path().join("server.log"))
            );
        };
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            pid,
            addr,
            dir,
            spawned,
        })
    }

    pub fn api(&self) -> Api {
        Api { addr: self.addr }
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// `POST /shutdown` with session cleanup, then waits for the exit (kills after a minute).
    pub async fn stop(mut self) -> anyhow::Result<Stopped> {
        let asked = self
            .api()
            .post(
                "/shutdown",
                json!({"force": false, "cleanup_sessions": true}),
            )
            .await;
        if let Err(e) = asked {
            eprintln!("xtask bench: /shutdown failed ({e:#}); killing the server");
        }
        let stopped = match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => Stopped {
                exit_code: status?.code(),
            },
            Err(_) => {
                eprintln!(
                    "xtask bench: the server did not exit within 60 s of /shutdown; killing it"
                );
                self.child.kill().await?;
                Stopped { exit_code: None }
            }
        };
        report_warnings(&self.dir.path().join("server.log"));
        Ok(stopped)
    }
}

/// Shows what the server warned about while it was measured (a demoted tool,
/// a slow cleanup): it can explain a figure, and the log is removed with the server.
fn report_warnings(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    for line in warnings.iter().take(10) {
        eprintln!("  server: {line}");
    }
    if warnings.len() > 10 {
        eprintln!("  server: … and {} more warnings", warnings.len() - 10);
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
