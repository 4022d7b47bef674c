//! `plugins.toml`: server settings and one table per plugin. Strings may use
//! `${VAR}` and `${VAR:-default}`; a bad file fails at startup naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

mod expand;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// One table per plugin, keyed by plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Where plugin libraries are discovered (relative to the config file).
    pub plugin_dir: PathBuf,
    /// Seconds an idle session lives.
    pub session_ttl: f64,
    /// Seconds a call may run when the request names no timeout.
    pub default_timeout: f64,
    /// The largest timeout a request may ask for.
    pub max_timeout: f64,
    /// Plugins warmed up at startup (names; `["*"]` for all).
    pub warmup: Vec<String>,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Most actions in one batch.
    pub max_batch_actions: usize,
    /// Largest tool result in bytes (JSON); larger results are refused with 2001.
    pub max_result_bytes: usize,
    /// Most concurrent calls per plugin; the excess is refused at once.
    pub max_inflight_per_plugin: usize,
    /// Most sessions one worker may hold, and in total.
    pub max_sessions_per_worker: usize,
    pub max_sessions: usize,
    /// Seconds to wait for in-flight calls and plugin shutdown when stopping.
    pub shutdown_grace: f64,
    /// Seconds a warmup may take.
    pub warmup_timeout: f64,
    /// Bearer token required on every endpoint but /health (empty: none;
    /// `AGENTFLOW_TOKEN` is used when this is empty).
    pub auth_token: String,
    /// Allow binding a non-loopback address without a token.
    pub allow_unauthenticated_remote: bool,
    /// Load plugins that appear in the plugin directory without waiting for /warmup.
    pub auto_load: bool,
    /// Seconds between rescans of the plugin directory (0: never).
    pub rescan_interval: f64,
    /// Where loaded copies of plugin libraries and other run-time files go.
    pub runtime_dir: PathBuf,
    /// Directories whose files `/api/v1/init/from-config` may read (it reads
    /// a file the client names): none by default, so it reads nothing.
    pub compat_config_dirs: Vec<PathBuf>,
    /// This host's name in every answer (`meta.node`, `X-AgentFlow-Node`), so
    /// clients behind a balancer see which host holds a worker. Empty: the
    /// machine's hostname.
    pub node_name: String,
    /// Seconds an answer to a request with an `Idempotency-Key` is kept for
    /// retries of that request.
    pub idempotency_window: f64,
    /// Seconds a snapshot lives unless pinned.
    pub snapshot_ttl: f64,
    /// Most snapshots held at once.
    pub max_snapshots: usize,
    /// Record every session's calls as a trajectory (`core/trajectory/`);
    /// a session config's `"record": true` records one session.
    pub record: bool,
    /// Where trajectories go, one directory per session. Empty:
    /// `<runtime_dir>/trajectories`.
    pub trajectory_dir: PathBuf,
    /// Largest trajectory of one session (its log and images), in bytes:
    /// then a marker line, and later calls are not recorded.
    pub trajectory_max_bytes: u64,
    /// Seconds a trajectory is kept after its last write (0: no limit).
    pub trajectory_max_age: f64,
    /// Most bytes all trajectories may take; the oldest ended ones are
    /// deleted first (0: no limit).
    pub trajectory_max_total_bytes: u64,
    /// Serve Prometheus metrics at `GET /metrics` and record them.
    pub metrics: bool,
    /// `/metrics` answers without the bearer token (for a scraper that has
    /// none); logged and shown in `/warmup/status` when on.
    pub metrics_public: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 18890,
            plugin_dir: "plugins".into(),
            session_ttl: 300.0,
            default_timeout: 60.0,
            max_timeout: 3600.0,
            warmup: Vec::new(),
            body_limit: 16 * 1024 * 1024,
            max_batch_actions: 1000,
            max_result_bytes: 256 * 1024 * 1024,
            max_inflight_per_plugin: 256,
            max_sessions_per_worker: 16,
            max_sessions: 1024,
            shutdown_grace: 10.0,
            warmup_timeout: 900.0,
            auth_token: String::new(),
            allow_unauthenticated_remote: false,
            auto_load: false,
            rescan_interval: 5.0,
            runtime_dir: std::env::temp_dir().join("agentflow-host"),
            compat_config_dirs: Vec::new(),
            node_name: String::new(),
            idempotency_window: 600.0,
            snapshot_ttl: 3600.0,
            max_snapshots: 256,
            record: false,
            trajectory_dir: PathBuf::new(),
            trajectory_max_bytes: 1 << 30,
            trajectory_max_age: 0.0,
            trajectory_max_total_bytes: 0,
            metrics: true,
            metrics_public: false,
        }
    }
}

/// `[plugins.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    pub enabled: bool,
    /// A library outside the plugin directory to load at startup.
    pub path: Option<PathBuf>,
    /// Passed to the plugin's warmup.
    pub config: Value,
    /// Defaults for every session, overlaid by the client's session config.
    pub session: Value,
    /// Where the plugin's code runs. Looked up by the name the library file
    /// gives (`libagentflow_<name>.so`), before the library is opened.
    pub mode: PluginMode,
    /// Isolated mode: the runner process's address-space limit (RLIMIT_AS),
    /// so a runaway allocation ends that process and not the machine.
    pub memory_bytes: Option<u64>,
}

/// Where a plugin's code runs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PluginMode {
    /// Loaded into the host: fastest; a crash in plugin code (segfault,
    /// abort, stack overflow) takes the host down with it.
    #[default]
    InProcess,
    /// In a process of its own (`isolation/`): a crash ends that process,
    /// its calls fail, its sessions are reported broken, and it restarts.
    Isolated,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            config: Value::Object(Default::default()),
            session: Value::Object(Default::default()),
            mode: PluginMode::InProcess,
            memory_bytes: None,
        }
    }
}

impl PluginConfig {
    /// Settings in the plugin's `sandbox` table that weaken session isolation
    /// (`isolation = "none"`, `network = "host"`), as warnings for the log and
    /// `/warmup/status`. The plugin applies them; the host only makes them seen.
    pub fn isolation_warnings(&self) -> Vec<String> {
        let sandbox = &self.config["sandbox"];
        let mut warnings = Vec::new();
        if sandbox["isolation"] == "none" {
            warnings.push(
                "sandbox.isolation = \"none\": session commands run on the host as the \
                 server's user, without a sandbox"
                    .to_string(),
            );
        }
        if sandbox["network"] == "host" {
            warnings.push(
                "sandbox.network = \"host\": sessions reach the host's network and the \
                 server's own port"
                    .to_string(),
            );
        }
        warnings
    }
}

/// The machine's hostname, as a node name (`localhost` if it has none).
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

impl Config {
    /// Server settings that weaken what is protected, as warnings for the log
    /// and `/warmup/status`.
    pub fn server_warnings(&self) -> Vec<String> {
        let s = &self.server;
        let mut warnings = Vec::new();
        if s.metrics && s.metrics_public && !s.auth_token.is_empty() {
            warnings.push(
                "server.metrics_public = true: /metrics answers without the bearer token"
                    .to_string(),
            );
        }
        warnings
    }

    /// Reads, expands and validates a config file. Relative paths in it are
    /// taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses config text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let raw: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        let expanded = expand::expand_value(raw, "")?;
        let mut config: Config = serde_path_to_error::deserialize(expanded).map_err(|e| {
            let path = e.path().to_string();
            format!("key '{path}': {}", e.into_inner())
        })?;
        config.validate()?;
        config.resolve_paths(base);
        if config.server.node_name.is_empty() {
            config.server.node_name = hostname();
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let s = &self.server;
        let positive = [
            ("server.session_ttl", s.session_ttl),
            ("server.default_timeout", s.default_timeout),
            ("server.max_timeout", s.max_timeout),
            ("server.warmup_timeout", s.warmup_timeout),
            ("server.idempotency_window", s.idempotency_window),
            ("server.snapshot_ttl", s.snapshot_ttl),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "key '{key}': must be a positive number of seconds, got {v}"
                ));
            }
        }
        if !(s.shutdown_grace.is_finite() && s.shutdown_grace >= 0.0) {
            return Err(format!(
                "key 'server.shutdown_grace': must be >= 0, got {}",
                s.shutdown_grace
            ));
        }
        if !(s.trajectory_max_age.is_finite() && s.trajectory_max_age >= 0.0) {
            return Err(format!(
                "key 'server.trajectory_max_age': must be >= 0 seconds (0: no limit), got {}",
                s.trajectory_max_age
            ));
        }
        if s.trajectory_max_bytes < 4096 {
            return Err(format!(
                "key 'server.trajectory_max_bytes': must be at least 4096, got {}",
                s.trajectory_max_bytes
            ));
        }
        if !(s.rescan_interval.is_finite() && s.rescan_interval >= 0.0) {
            return Err(format!(
                "key 'server.rescan_interval': must be >= 0, got {}",
                s.rescan_interval
            ));
        }
        let counts = [
            ("server.body_limit", s.body_limit),
            ("server.max_batch_actions", s.max_batch_actions),
            ("server.max_result_bytes", s.max_result_bytes),
            ("server.max_inflight_per_plugin", s.max_inflight_per_plugin),
            ("server.max_sessions_per_worker", s.max_sessions_per_worker),
            ("server.max_sessions", s.max_sessions),
            ("server.max_snapshots", s.max_snapshots),
        ];
        for (key, v) in counts {
            if v == 0 {
                return Err(format!("key '{key}': must be at least 1"));
            }
        }
        let node_ok = s.node_name.len() <= 64
            && s.node_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !node_ok {
            return Err(format!(
                "key 'server.node_name': must be up to 64 ASCII letters, digits and . _ -, got \"{}\"",
                s.node_name
            ));
        }
        if s.default_timeout > s.max_timeout {
            return Err("key 'server.default_timeout': must not exceed server.max_timeout".into());
        }
        for (name, p) in &self.plugins {
            if !p.config.is_object() {
                return Err(format!("key 'plugins.{name}.config': must be a table"));
            }
            if !p.session.is_object() {
                return Err(format!("key 'plugins.{name}.session': must be a table"));
            }
            if p.memory_bytes.is_some() && p.mode != PluginMode::Isolated {
                return Err(format!(
                    "key 'plugins.{name}.memory_bytes': only applies with mode = \"isolated\""
                ));
            }
            if p.memory_bytes.is_some_and(|b| b < 64 << 20) {
                return Err(format!(
                    "key 'plugins.{name}.memory_bytes': must be at least 67108864 (64 MiB)"
                ));
            }
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.server.plugin_dir);
        resolve(&mut self.server.runtime_dir);
        if self.server.trajectory_dir.as_os_str().is_empty() {
            self.server.trajectory_dir = self.server.runtime_dir.join("trajectories");
        }
        resolve(&mut self.server.trajectory_dir);
        self.server.compat_config_dirs.iter_mut().for_each(resolve);
        for p in self.plugins.values_mut() {
            if let Some(path) = &mut p.path {
                resolve(path);
            }
        }
    }

    /// The table for plugin `name` (defaults when the file has none).
    pub fn plugin(&self, name: &str) -> PluginConfig {
        self.plugins.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_plugins_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.server.port, 18890);
        for p in ["bash", "vm", "rag"] {
            assert!(c.plugin(p).enabled, "{p}");
        }
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let c = Config::parse("", Path::new("/etc")).unwrap();
        assert_eq!(c.server.port, 18890);
        assert_eq!(c.server.plugin_dir, PathBuf::from("/etc/plugins"));
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = Config::parse("[server]\nprot = 1\n", Path::new(".")).unwrap_err();
        assert!(e.contains("prot"), "{e}");
        let e = Config::parse("[server]\nport = \"x\"\n", Path::new(".")).unwrap_err();
        assert!(e.contains("server.port"), "{e}");
        let e = Config::parse("[plugins.bash]\nenabled = 3\n", Path::new(".")).unwrap_err();
        assert!(e.contains("plugins.bash.enabled"), "{e}");
    }

    #[test]
    fn variables_expand_in_strings() {
        std::env::set_var("AGENTFLOW_TEST_ROOT", "/srv/x");
        let c = Config::parse(
            "[plugins.bash.config]\nroot = \"${AGENTFLOW_TEST_ROOT}/a\"\nother = \"${AGENTFLOW_TEST_UNSET_VAR:-dflt}\"\n",
            Path::new("."),
        )
        .unwrap();
        let cfg = c.plugin("bash").config;
        assert_eq!(cfg["root"], "/srv/x/a");
        assert_eq!(cfg["other"], "dflt");
    }

    #[test]
    fn an_unset_variable_without_default_is_an_error_naming_the_key() {
        let e = Config::parse(
            "[server]\nauth_token = \"${AGENTFLOW_SURELY_UNSET_VAR}\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            e.contains("server.auth_token") && e.contains("AGENTFLOW_SURELY_UNSET_VAR"),
            "{e}"
        );
    }

    #[test]
    fn plugin_mode_and_its_memory_limit_are_checked() {
        let c = Config::parse(
            "[plugins.rag]\nmode = \"isolated\"\nmemory_bytes = 1073741824\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.plugin("rag").mode, PluginMode::Isolated);
        assert_eq!(c.plugin("bash").mode, PluginMode::InProcess);
        let e = Config::parse("[plugins.rag]\nmode = \"sideways\"\n", Path::new(".")).unwrap_err();
        assert!(e.contains("plugins.rag.mode") || e.contains("mode"), "{e}");
        let e = Config::parse("[plugins.rag]\nmemory_bytes = 1073741824\n", Path::new("."))
            .unwrap_err();
        assert!(
            e.contains("plugins.rag.memory_bytes") && e.contains("isolated"),
            "{e}"
        );
    }
}
