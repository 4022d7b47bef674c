//! Drives the plugin in-process, as the host would through the ABI.

#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use agentflow_bash::{BashPlugin, BashSession};
use plugin_api::testkit::Kit;
use plugin_api::{Plugin, PluginError};
use serde_json::{json, Value};

/// A warmed-up plugin (driven through plugin-api's test kit, which checks
/// params against each tool's schema as the host does) with a workspace root
/// of its own, removed on drop.
pub struct Harness {
    /// `None` only while dropping: the plugin shuts down before its root goes.
    kit: Option<Kit<BashPlugin>>,
    pub root: PathBuf,
}

impl Harness {
    /// Default config, private workspace root.
    pub fn new() -> Self {
        Self::with_config(json!({}))
    }

    /// `config` plus a private workspace root.
    pub fn with_config(mut config: Value) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "agentflow-bash-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        config["workspace_root"] = json!(root);
        let kit = Kit::warm(config).expect("warmup");
        Self {
            kit: Some(kit),
            root,
        }
    }

    /// The test kit driving the plugin.
    pub fn kit(&self) -> &Kit<BashPlugin> {
        self.kit
            .as_ref()
            .expect("the kit lives as long as the harness")
    }

    /// The plugin.
    pub fn plugin(&self) -> &BashPlugin {
        self.kit().plugin()
    }

    /// A new session with `config`.
    pub fn session(&self, id: &str, config: Value) -> BashSession {
        self.plugin().initialize(id, &config).expect("initialize")
    }

    /// Calls `tool` with a deadline `secs` away.
    pub fn call_within(
        &self,
        session: &BashSession,
        tool: &str,
        params: Value,
        secs: f64,
    ) -> Result<Value, PluginError> {
        self.kit().call_with(
            Some(("sid", session)),
            tool,
            params,
            Duration::from_secs_f64(secs),
            None,
        )
    }

    /// Calls `tool` with a deadline `secs` away and its cancel flag set
    /// `cancel_after` seconds after it starts, as the host does when the
    /// client cancels.
    pub fn call_cancelled_after(
        &self,
        session: &BashSession,
        tool: &str,
        params: Value,
        secs: f64,
        cancel_after: f64,
    ) -> Result<Value, PluginError> {
        self.kit().call_with(
            Some(("sid", session)),
            tool,
            params,
            Duration::from_secs_f64(secs),
            Some(Duration::from_secs_f64(cancel_after)),
        )
    }

    /// Calls `tool` with a generous deadline.
    pub fn call(
        &self,
        session: &BashSession,
        tool: &str,
        params: Value,
    ) -> Result<Value, PluginError> {
        self.call_within(session, tool, params, 120.0)
    }

    /// Runs `command` and returns the result, which must not be an error.
    pub fn run(&self, session: &BashSession, command: &str) -> Value {
        self.call(session, "run", json!({ "command": command }))
            .unwrap_or_else(|e| panic!("run {command:?} failed: {e:?}"))
    }

    /// The isolation mode the plugin chose.
    pub fn isolation(&self, session: &BashSession) -> String {
        let info = self.call(session, "info", json!({})).expect("info");
        info["isolation"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Shut the plugin down (unmounting its disks) before removing its root.
        drop(self.kit.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// True when this process may create namespaces (the CI runs as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A marker unique to this test run, to find processes by their command line.
pub fn unique_marker(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("afbash-{tag}-{}-{nanos}", std::process::id())
}

/// Host pids of live (non-zombie) processes whose argv[0] (as set by `exec -a`) starts with `marker`.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let alive = std::fs::read_to_string(dir.join("stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false);
            // argv[0] only: the `nohup`/`setsid`/`bash -c` wrappers that start
            // the renamed processes carry the marker in later arguments for a
            // moment before they exec, and must not be counted.
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            alive && String::from_utf8_lossy(argv0).starts_with(marker)
        })
        .collect()
}

/// Waits up to `secs` for `check` to hold (for events that take the kernel a
/// moment, not for speed).
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

impl Harness {
    /// `initialize` without unwrapping.
    pub fn plugin_initialize(&self, id: &str, config: Value) -> Result<BashSession, PluginError> {
        self.plugin().initialize(id, &config)
    }
}

/// The isolation modes this machine can run: both as root, else only process groups.
pub fn isolations() -> Vec<&'static str> {
    if is_root() {
        vec!["bubblewrap", "none"]
    } else {
        vec!["none"]
    }
}
