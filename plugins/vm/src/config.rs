//! Plugin config (`[plugins.vm.config]`) and session config (`[plugins.vm.session]`
//! overlaid with the client's), parsed by hand so every error names its field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox::SandboxConfig;
use serde_json::{Map, Value};

use crate::error::{VmError, VmResult};

/// Smallest and largest screen side Xvfb is asked for.
const SCREEN_SIDE: std::ops::RangeInclusive<u32> = 16..=8192;

/// Global settings, from the host's `[plugins.vm.config]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The Xvfb binary (a name looked up in `PATH`, or a path). Key `xvfb`.
    pub xvfb: String,
    /// How long Xvfb may take to report its display. Key `startup_timeout_secs`.
    pub startup_timeout: Duration,
    /// How long any one X request may take before the session counts as broken.
    /// Key `x_timeout_secs`.
    pub x_timeout: Duration,
    /// Where per-session directories (logs, default working directory) go.
    /// Key `run_dir`; default `<tmp>/agentflow-vm`.
    pub run_dir: PathBuf,
    /// Whether to put each session in its own PID namespace when the kernel
    /// allows it (then nothing a session started can outlive it). Key
    /// `pid_namespace`. Only without a sandbox: sandboxed programs each have a
    /// PID namespace of their own, and the session's cgroup.
    pub pid_namespace: bool,
    /// PNG compression of screenshots. Key `png_compression`: `fast` (default,
    /// a few ms a screen) or `small` (about 3x smaller files, about 50 ms a screen).
    pub png_small: bool,
    /// The sandbox the session's programs run in (Xvfb runs outside it).
    /// Table `sandbox` (`[plugins.vm.config.sandbox]`), see `agentflow-sandbox`.
    pub sandbox: SandboxConfig,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            xvfb: "Xvfb".into(),
            startup_timeout: Duration::from_secs(10),
            x_timeout: Duration::from_secs(5),
            run_dir: std::env::temp_dir().join("agentflow-vm"),
            pid_namespace: true,
            png_small: false,
            sandbox: SandboxConfig::default(),
        }
    }
}

impl PluginConfig {
    /// Parses the plugin table; absent keys keep their defaults.
    pub fn parse(value: &Value) -> VmResult<Self> {
        let obj = object(value, "vm plugin config")?;
        let mut c = Self::default();
        if let Some(v) = opt_str(obj, "xvfb")? {
            c.xvfb = v;
        }
        if let Some(v) = opt_secs(obj, "startup_timeout_secs")? {
            c.startup_timeout = v;
        }
        if let Some(v) = opt_secs(obj, "x_timeout_secs")? {
            c.x_timeout = v;
        }
        if let Some(v) = opt_str(obj, "run_dir")? {
            c.run_dir = PathBuf::from(v);
        }
        if let Some(v) = obj.get("pid_namespace").filter(|v| !v.is_null()) {
            c.pid_namespace = v.as_bool().ok_or_else(|| {
                VmError::invalid(format!("pid_namespace must be true or false, got {v}"))
            })?;
        }
        match opt_str(obj, "png_compression")?.as_deref() {
            None | Some("fast") => c.png_small = false,
            Some("small") => c.png_small = true,
            Some(other) => {
                return Err(VmError::invalid(format!(
                    "png_compression must be \"fast\" or \"small\", got {other:?}"
                )))
            }
        }
        if let Some(v) = obj.get("sandbox").filter(|v| !v.is_null()) {
            c.sandbox = serde_json::from_value(v.clone())
                .map_err(|e| VmError::invalid(format!("sandbox: {e}")))?;
        }
        Ok(c)
    }
}

/// One session's desktop, from the session config.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Screen width and height in pixels. Key `screen_size`: `[w, h]` or `"WxH"`.
    pub screen_size: (u32, u32),
    /// Command line of a window manager to start first (e.g. `openbox`). Key `window_manager`.
    pub window_manager: Option<String>,
    /// Command lines (run with `sh -c`) started on the display. Key `programs`.
    pub programs: Vec<String>,
    /// Working directory of the programs; default the session's own directory.
    /// Key `cwd`: a relative path is taken inside the session's directory (and
    /// created); an absolute path must lie inside it when programs are
    /// sandboxed (see `VmSession::create`).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables for the programs. Key `env`.
    pub env: BTreeMap<String, String>,
    /// The client's sandbox limits, which may only tighten the operator's
    /// `sandbox.limits` (null: the operator's). Key `limits`.
    pub limits: Value,
    /// Where to record the screen to while the session lives (`video.rs`).
    /// Keys `record_video: true` and `video_path`, an absolute path whose
    /// directory exists (an AgentFlow host sets it; clients cannot).
    pub video: Option<PathBuf>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            screen_size: (1920, 1080),
            window_manager: None,
            programs: Vec::new(),
            cwd: None,
            env: BTreeMap::new(),
            limits: Value::Null,
            video: None,
        }
    }
}

impl SessionConfig {
    /// Parses a session config; absent keys keep their defaults, unknown keys are ignored.
    pub fn parse(value: &Value) -> VmResult<Self> {
        let obj = object(value, "vm session config")?;
        let mut c = Self::default();
        if let Some(v) = obj.get("screen_size").filter(|v| !v.is_null()) {
            c.screen_size = screen_size(v)?;
        }
        c.window_manager = opt_str(obj, "window_manager")?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "none");
        if let Some(v) = obj.get("programs").filter(|v| !v.is_null()) {
            c.programs = programs(v)?;
        }
        c.cwd = opt_str(obj, "cwd")?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(v) = obj.get("env").filter(|v| !v.is_null()) {
            c.env = env(v)?;
        }
        match obj.get("limits") {
            None | Some(Value::Null) => {}
            Some(v @ Value::Object(_)) => c.limits = v.clone(),
            Some(other) => {
                return Err(VmError::invalid(format!(
                "limits must be an object (memory_bytes, processes, cpus, tmp_bytes), got {other}"
            )))
            }
        }
        c.video = video(obj)?;
        Ok(c)
    }
}

fn video(obj: &Map<String, Value>) -> VmResult<Option<PathBuf>> {
    let record = match obj.get("record_video") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(VmError::invalid(format!(
                "record_video must be true or false, got {other}"
            )))
        }
    };
    if !record {
        return Ok(None);
    }
    match opt_str(obj, "video_path")?.map(PathBuf::from) {
        Some(p) if p.is_absolute() && p.parent().is_some_and(Path::is_dir) => Ok(Some(p)),
        Some(p) => Err(VmError::invalid(format!(
            "video_path must be an absolute path in an existing directory, got {}",
            p.display()
        ))),
        None => Err(VmError::invalid(
            "record_video needs video_path, the file to record to (an AgentFlow host \
             sets it in the session's trajectory when recording is on)",
        )),
    }
}

fn object<'a>(value: &'a Value, what: &str) -> VmResult<&'a Map<String, Value>> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match value {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        other => Err(VmError::invalid(format!(
            "{what} must be an object, got {other}"
        ))),
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> VmResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(VmError::invalid(format!(
            "{key} must be a string, got {other}"
        ))),
    }
}

fn opt_secs(obj: &Map<String, Value>, key: &str) -> VmResult<Option<Duration>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| {
                VmError::invalid(format!(
                    "{key} must be a positive number of seconds, got {v}"
                ))
            }),
    }
}

fn screen_size(v: &Value) -> VmResult<(u32, u32)> {
    let bad = || {
        VmError::invalid(format!(
            "screen_size must be [width, height] with each side in {}..={}, got {v}",
            SCREEN_SIDE.start(),
            SCREEN_SIDE.end()
        ))
    };
    let (w, h) = match v {
        Value::Array(a) if a.len() == 2 => (
            a[0].as_u64().ok_or_else(bad)?,
            a[1].as_u64().ok_or_else(bad)?,
        ),
        Value::String(s) => {
            let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
            (
                w.trim().parse().map_err(|_| bad())?,
                h.trim().parse().map_err(|_| bad())?,
            )
        }
        _ => return Err(bad()),
    };
    let w = u32::try_from(w).map_err(|_| bad())?;
    let h = u32::try_from(h).map_err(|_| bad())?;
    if !SCREEN_SIDE.contains(&w) || !SCREEN_SIDE.contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

fn programs(v: &Value) -> VmResult<Vec<String>> {
    let items = v.as_array().ok_or_else(|| {
        VmError::invalid(format!("programs must be a list of command lines, got {v}"))
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            other => Err(VmError::invalid(format!(
                "programs[{i}] must be a non-empty command line string, got {other}"
            ))),
        })
        .collect()
}

fn env(v: &Value) -> VmResult<BTreeMap<String, String>> {
    let obj = v
        .as_object()
        .ok_or_else(|| VmError::invalid(format!("env must be an object of strings, got {v}")))?;
    obj.iter()
        .map(|(k, val)| {
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(VmError::invalid(format!(
                    "env has an invalid variable name {k:?}"
                )));
            }
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(VmError::invalid(format!(
                        "env.{k} must be a string, got {other}"
                    )))
                }
            };
            if s.contains('\0') {
                return Err(VmError::invalid(format!("env.{k} contains a NUL byte")));
            }
            Ok((k.clone(), s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_defaults_and_overrides() {
        let c = SessionConfig::parse(&json!({})).unwrap();
        assert_eq!(c.screen_size, (1920, 1080));
        assert!(c.window_manager.is_none());
        let c = SessionConfig::parse(&json!({
            "screen_size": [1280, 800], "window_manager": "openbox",
            "programs": ["xterm"], "cwd": "/tmp", "env": {"LANG": "C.UTF-8", "N": 3}
        }))
        .unwrap();
        assert_eq!(c.screen_size, (1280, 800));
        assert_eq!(c.window_manager.as_deref(), Some("openbox"));
        assert_eq!(c.programs, vec!["xterm".to_string()]);
        assert_eq!(c.env.get("N").map(String::as_str), Some("3"));
        assert_eq!(
            SessionConfig::parse(&json!({"screen_size": "800x600"}))
                .unwrap()
                .screen_size,
            (800, 600)
        );
    }

    #[test]
    fn bad_session_values_are_named() {
        let e = SessionConfig::parse(&json!({"screen_size": [0, 100]})).unwrap_err();
        assert!(
            e.to_string().contains("screen_size") && e.to_string().contains("[0,100]"),
            "{e}"
        );
        let e = SessionConfig::parse(&json!({"programs": ["xterm", 3]})).unwrap_err();
        assert!(e.to_string().contains("programs[1]"), "{e}");
        let e = SessionConfig::parse(&json!({"env": {"A": [1]}})).unwrap_err();
        assert!(e.to_string().contains("env.A"), "{e}");
    }

    #[test]
    fn plugin_config_parses_timeouts() {
        let c = PluginConfig::parse(&json!({"x_timeout_secs": 2.5, "xvfb": "/opt/Xvfb"})).unwrap();
        assert_eq!(c.x_timeout, Duration::from_millis(2500));
        assert_eq!(c.xvfb, "/opt/Xvfb");
        assert!(PluginConfig::parse(&json!({"x_timeout_secs": -1})).is_err());
    }

    #[test]
    fn the_sandbox_table_is_parsed_and_its_errors_named() {
        let c = PluginConfig::parse(&json!({})).unwrap();
        assert_eq!(c.sandbox.isolation, sandbox::Isolation::Bubblewrap);
        let c = PluginConfig::parse(&json!({"sandbox": {"isolation": "none"}})).unwrap();
        assert_eq!(c.sandbox.isolation, sandbox::Isolation::None);
        let e = PluginConfig::parse(&json!({"sandbox": {"netwrk": "host"}})).unwrap_err();
        assert!(
            e.to_string().contains("sandbox") && e.to_string().contains("netwrk"),
            "{e}"
        );
    }

    #[test]
    fn a_video_needs_an_absolute_path() {
        assert_eq!(SessionConfig::parse(&json!({})).unwrap().video, None);
        let tmp = std::env::temp_dir().join("screen.mp4");
        let c = SessionConfig::parse(&json!({"record_video": true, "video_path": tmp})).unwrap();
        assert_eq!(c.video, Some(tmp));
        let e = SessionConfig::parse(&json!({"record_video": true})).unwrap_err();
        assert!(e.to_string().contains("video_path"), "{e}");
        let e = SessionConfig::parse(&json!({"record_video": true, "video_path": "a.mp4"}))
            .unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = SessionConfig::parse(&json!({"record_video": "yes"})).unwrap_err();
        assert!(e.to_string().contains("record_video"), "{e}");
    }

    #[test]
    fn session_limits_must_be_an_object() {
        let c = SessionConfig::parse(&json!({"limits": {"processes": 64}})).unwrap();
        assert_eq!(c.limits, json!({"processes": 64}));
        let e = SessionConfig::parse(&json!({"limits": 5})).unwrap_err();
        assert!(e.to_string().contains("limits"), "{e}");
    }
}
