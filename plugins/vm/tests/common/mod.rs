//! Helpers for driving the vm plugin in-process against real Xvfb sessions.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use agentflow_vm::{VmPlugin, VmSession, SESSION_ENV};
use base64::Engine as _;
use plugin_api::testkit::Kit;
use plugin_api::{Plugin, PluginError, Tools};
use serde_json::{json, Value};

/// The tool table, built once.
pub fn tools() -> &'static Tools<VmPlugin> {
    static TOOLS: OnceLock<Tools<VmPlugin>> = OnceLock::new();
    TOOLS.get_or_init(VmPlugin::tools)
}

/// A warmed-up plugin with the default config, driven through plugin-api's
/// test kit (params checked against each tool's schema, as the host does).
pub fn plugin() -> Kit<VmPlugin> {
    warm(json!({}))
}

/// A warmed-up plugin with `config`.
pub fn warm(config: Value) -> Kit<VmPlugin> {
    Kit::warm(config).expect("warmup")
}

/// A session created through the plugin, as the host would.
pub fn session(p: &VmPlugin, id: &str, config: Value) -> VmSession {
    p.initialize(id, &config)
        .unwrap_or_else(|e| panic!("initialize {id}: {e:?}"))
}

/// Calls a tool in the session with a 60 s deadline.
pub fn call(
    p: &Kit<VmPlugin>,
    s: &VmSession,
    tool: &str,
    params: Value,
) -> Result<Value, PluginError> {
    p.call_with(
        Some((s.id(), s)),
        tool,
        params,
        Duration::from_secs(60),
        None,
    )
}

/// Calls a tool that must succeed.
pub fn ok(p: &Kit<VmPlugin>, s: &VmSession, tool: &str, params: Value) -> Value {
    call(p, s, tool, params).unwrap_or_else(|e| panic!("{tool} failed: {e:?}"))
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("agentflow-vm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Pids of live (non-zombie) processes whose environment carries the session marker.
pub fn session_processes(session_id: &str) -> Vec<u32> {
    let marker = format!("{SESSION_ENV}={session_id}");
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) && is_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// The executable name of a pid (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Decodes a screenshot result into (width, height, RGB pixels).
pub fn decode_screenshot(v: &Value) -> (u32, u32, Vec<u8>) {
    assert_eq!(v["format"], "png");
    let b64 = v["image"].as_str().expect("image string");
    assert!(!b64.starts_with("data:"), "image must be bare base64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    assert_eq!(v["width"].as_u64(), Some(u64::from(info.width)));
    assert_eq!(v["height"].as_u64(), Some(u64::from(info.height)));
    (info.width, info.height, buf)
}

/// Reads a file if it exists.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Finds the first element in the tree XML whose `attr="value"` matches and
/// returns its (x, y, width, height).
pub fn window_geometry(xml: &str, attr: &str, value: &str) -> Option<(i64, i64, i64, i64)> {
    let needle = format!("{attr}=\"{value}\"");
    let line = xml
        .lines()
        .find(|l| l.contains(&needle) && l.contains("visible=\"true\""))?;
    let get = |k: &str| -> Option<i64> {
        let start = line.find(&format!(" {k}=\""))? + k.len() + 3;
        let rest = &line[start..];
        rest[..rest.find('"')?].parse().ok()
    };
    Some((get("x")?, get("y")?, get("width")?, get("height")?))
}
