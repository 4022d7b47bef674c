//! What operators (`plugins.toml`) and clients (session config) may set, with
//! defaults and validation. Errors name the field and the problem.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sandbox::{Limits, SandboxConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Plugin-wide settings: the `[plugins.bash.config]` table of `plugins.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Directory that holds one directory per session.
    /// Default: `${TMPDIR:-/tmp}/agentflow-bash`.
    pub workspace_root: Option<PathBuf>,
    /// The shell program. Default: `bash` found on `PATH`.
    pub shell: Option<PathBuf>,
    /// Bytes of stdout, and separately of stderr, kept per call; the rest is
    /// read and dropped, and the result says `truncated: true`. Background
    /// processes keep their newest bytes of each stream up to this limit
    /// (older ones are dropped, and reads say how many).
    pub output_limit_bytes: usize,
    /// Background processes (`bash:start`) a session may have unfinished at
    /// once; 0 turns `start` off.
    pub max_background_processes: usize,
    /// Seconds a command may run when the call gives no `timeout`.
    pub default_timeout_secs: f64,
    /// Largest content `write_file` accepts and `read_file` returns, in bytes.
    pub file_limit_bytes: usize,
    /// The sandbox every session's shell runs in (`[plugins.bash.config.sandbox]`).
    pub sandbox: SandboxConfig,
    /// Limits applied (setrlimit) to each process of a session.
    pub limits: ResourceLimits,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            workspace_root: None,
            shell: None,
            output_limit_bytes: MIB as usize,
            max_background_processes: 32,
            default_timeout_secs: 30.0,
            file_limit_bytes: 16 * MIB as usize,
            sandbox: SandboxConfig::default(),
            limits: ResourceLimits::default(),
        }
    }
}

/// Per-process resource limits (`setrlimit`), inherited by every process of a
/// session. `0` means "no limit" (TOML has no null).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceLimits {
    /// CPU seconds per process (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Virtual address space per process in bytes (`RLIMIT_AS`).
    pub address_space_bytes: u64,
    /// Processes of the user (`RLIMIT_NPROC`), applied only without a
    /// sandbox (sandboxes share one host user; their limit is
    /// `sandbox.limits.processes`, per session). The kernel does not enforce
    /// it for root.
    pub processes: u64,
    /// Largest file a process may write, in bytes (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            cpu_seconds: 3600,
            address_space_bytes: 8 * GIB,
            processes: 4096,
            file_size_bytes: 4 * GIB,
        }
    }
}

impl PluginConfig {
    /// Parses and checks the plugin's config table (`{}` or null: all defaults).
    pub fn parse(value: &Value) -> Result<Self, String> {
        let config: Self = if value.is_null() {
            Self::default()
        } else {
            serde_json::from_value(value.clone())
                .map_err(|e| format!("invalid bash plugin config: {e}"))?
        };
        if config.output_limit_bytes == 0 {
            return Err("output_limit_bytes: must be at least 1".into());
        }
        if config.file_limit_bytes == 0 {
            return Err("file_limit_bytes: must be at least 1".into());
        }
        if !(config.default_timeout_secs.is_finite() && config.default_timeout_secs > 0.0) {
            return Err(format!(
                "default_timeout_secs: must be a positive number of seconds, got {}",
                config.default_timeout_secs
            ));
        }
        if let Some(root) = &config.workspace_root {
            if !root.is_absolute() || root.parent().is_none() {
                return Err(format!(
                    "workspace_root: must be an absolute path below '/', got '{}'",
                    root.display()
                ));
            }
        }
        Ok(config)
    }

    /// The workspace root to use: the configured one or `${TMPDIR:-/tmp}/agentflow-bash`.
    pub fn workspace_root(&self) -> PathBuf {
        self.workspace_root
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("agentflow-bash"))
    }
}

/// A session's settings: `[plugins.bash.session]` overlaid with the client's
/// session config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionConfig {
    /// Starting directory, relative to the session's directory (which it must stay inside).
    pub cwd: Option<String>,
    /// Extra environment variables for the shell.
    pub env: BTreeMap<String, String>,
    /// The client's `limits` object: tightens `sandbox.limits` (null: none).
    pub limits: Value,
    /// The operator's base image to run on (`sandbox.images`), by name.
    pub image: Option<String>,
}

/// What a restored session's config changes once the snapshot's shell state
/// is restored (see [`SessionConfig::restored_with`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Variables to export.
    pub env: BTreeMap<String, String>,
    /// A directory to change to, relative to the session's directory.
    pub cwd: Option<String>,
}

impl SessionConfig {
    /// The config of a session restored from a snapshot of a session whose
    /// config was `self`, asked for with `given` (the plugin's session
    /// defaults overlaid with the client's config, as for a fresh session):
    ///
    /// * the snapshot's image (the files were made on it: another is refused);
    /// * the snapshot's limits, each field `given` names replaced by its
    ///   value, checked against the server's as for a fresh session (a
    ///   client may ask for less than the server allows, never more);
    /// * the snapshot's `env` and `cwd`; entries of `given`'s `env` and a
    ///   `cwd` that differ from the snapshot's are [`Changes`], applied after
    ///   its shell state (so the defaults every config carries do not undo
    ///   what the shell changed since).
    pub fn restored_with(&self, given: &SessionConfig) -> Result<(SessionConfig, Changes), String> {
        if given.image.is_some() && given.image != self.image {
            return Err(format!(
                "session config image: the snapshot's files were made on {}; a session \
                 restored from it runs there (leave image out)",
                self.image
                    .as_deref()
                    .map_or("the host's base".to_string(), |i| format!("image '{i}'"))
            ));
        }
        let limits = match (&self.limits, &given.limits) {
            (Value::Object(snapshot), Value::Object(asked)) => {
                let mut merged = snapshot.clone();
                merged.extend(asked.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Object(merged)
            }
            (snapshot, Value::Null) => snapshot.clone(),
            (_, asked) => asked.clone(),
        };
        let changes = Changes {
            env: given
                .env
                .iter()
                .filter(|(name, value)| self.env.get(*name) != Some(*value))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            cwd: given
                .cwd
                .clone()
                .filter(|cwd| Some(cwd) != self.cwd.as_ref()),
        };
        let config = SessionConfig {
            limits,
            ..self.clone()
        };
        Ok((config, changes))
    }

    /// The session's sandbox limits: the server's, tightened by the client's.
    pub fn sandbox_limits(&self, server: &Limits) -> Result<Limits, String> {
        server.tightened_by(&self.limits)
    }

    /// Parses and checks a session config object.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let object = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(object) => object,
            other => return Err(format!("session config: expected an object, got {other}")),
        };
        let mut config = Self::default();
        for (key, value) in object {
            match key.as_str() {
                "cwd" => config.cwd = parse_cwd(value)?,
                "env" => config.env = parse_env(value)?,
                "limits" => config.limits = value.clone(),
                "image" => {
                    config.image = match value {
                        Value::Null => None,
                        Value::String(name) => Some(name.clone()),
                        other => {
                            return Err(format!(
                                "session config image: expected the name of an image, got {other}"
                            ))
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "session config: unknown field '{other}', expected 'cwd', 'env', \
                         'limits' or 'image'"
                    ))
                }
            }
        }
        Ok(config)
    }
}

fn parse_cwd(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.contains('\0') => {
            Err("session config cwd: contains a NUL character".into())
        }
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(format!(
            "session config cwd: expected a string, got {other}"
        )),
    }
}

fn parse_env(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let object = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "session config env: expected an object, got {other}"
            ))
        }
    };
    let mut env = BTreeMap::new();
    for (name, value) in object {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!(
                "session config env: '{name}' is not a valid variable name (empty, or contains '=' or NUL)"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "session config env.{name}: expected a string, got {value}"
            ));
        };
        if value.contains('\0') {
            return Err(format!(
                "session config env.{name}: contains a NUL character"
            ));
        }
        env.insert(name.clone(), value.clone());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_plugin_config_gives_defaults() {
        let config = PluginConfig::parse(&json!({})).unwrap();
        assert_eq!(config.output_limit_bytes, 1024 * 1024);
        assert_eq!(config.max_background_processes, 32);
        assert_eq!(config.default_timeout_secs, 30.0);
        assert!(config.workspace_root().ends_with("agentflow-bash"));
    }

    #[test]
    fn unknown_plugin_config_field_is_named() {
        let err = PluginConfig::parse(&json!({"output_limit": 5})).unwrap_err();
        assert!(err.contains("output_limit"), "{err}");
        let err = PluginConfig::parse(&json!({"limits": {"cpu": 5}})).unwrap_err();
        assert!(err.contains("cpu"), "{err}");
    }

    #[test]
    fn bad_plugin_config_values_are_refused() {
        assert!(PluginConfig::parse(&json!({"default_timeout_secs": 0})).is_err());
        assert!(PluginConfig::parse(&json!({"output_limit_bytes": 0})).is_err());
        assert!(PluginConfig::parse(&json!({"workspace_root": "relative"})).is_err());
        assert!(PluginConfig::parse(&json!({"workspace_root": "/"})).is_err());
    }

    #[test]
    fn session_config_parses_cwd_and_env() {
        let config =
            SessionConfig::parse(&json!({"cwd": "work", "env": {"A": "1", "B": "two"}})).unwrap();
        assert_eq!(config.cwd.as_deref(), Some("work"));
        assert_eq!(config.env.get("B").map(String::as_str), Some("two"));
    }

    #[test]
    fn a_restored_session_keeps_the_snapshots_config_but_for_what_changed() {
        let snapshot = SessionConfig::parse(&json!({
            "env": {"A": "1", "B": "2"},
            "cwd": "src",
            "limits": {"memory_bytes": 300 * MIB, "processes": 64},
        }))
        .unwrap();
        let given = SessionConfig::parse(&json!({
            "env": {"A": "1", "B": "3", "C": "4"},
            "limits": {"processes": 32},
        }))
        .unwrap();
        let (config, changes) = snapshot.restored_with(&given).unwrap();
        assert_eq!(config.env, snapshot.env);
        assert_eq!(config.cwd.as_deref(), Some("src"));
        assert_eq!(
            config.limits,
            json!({"memory_bytes": 300 * MIB, "processes": 32})
        );
        let changed: Vec<(&str, &str)> = changes
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(changed, [("B", "3"), ("C", "4")]);
        assert_eq!(changes.cwd, None);
        let (_, changes) = snapshot
            .restored_with(&SessionConfig::parse(&json!({"cwd": "other"})).unwrap())
            .unwrap();
        assert_eq!(changes.cwd.as_deref(), Some("other"));
        let err = snapshot
            .restored_with(&SessionConfig::parse(&json!({"image": "alpine"})).unwrap())
            .unwrap_err();
        assert!(
            err.contains("image") && err.contains("host's base"),
            "{err}"
        );
    }

    #[test]
    fn session_config_errors_name_the_field() {
        let err = SessionConfig::parse(&json!({"env": {"PORT": 8080}})).unwrap_err();
        assert!(err.contains("env.PORT"), "{err}");
        let err = SessionConfig::parse(&json!({"env": {"A=B": "x"}})).unwrap_err();
        assert!(err.contains("A=B"), "{err}");
        let err = SessionConfig::parse(&json!({"shell": "zsh"})).unwrap_err();
        assert!(err.contains("shell"), "{err}");
    }
}
