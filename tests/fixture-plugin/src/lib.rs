//! A plugin for fault tests: it panics, hangs, fails and initializes slowly on
//! request. Never shipped; only the end-to-end tests load it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use plugin_api::{
    export_plugin, CallContext, NoParams, Plugin, PluginError, PluginInfo, SessionModel, Tools,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

pub struct Fixture;

/// Per-session state: the config it was created with.
pub struct FixtureSession {
    config: Value,
    fail_cleanup: bool,
    panic_cleanup: bool,
    /// State a snapshot carries (`note`).
    notes: Mutex<Vec<String>>,
}

/// Snapshots: their notes, by snapshot id.
static SNAPSHOTS: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);

fn snapshots<T>(f: impl FnOnce(&mut HashMap<String, Vec<String>>) -> T) -> T {
    let mut guard = SNAPSHOTS.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashMap::new))
}

#[derive(Deserialize, JsonSchema)]
pub struct NoteParams {
    /// A note to add to the session's notes.
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
pub struct EchoParams {
    /// Text to send back.
    pub text: String,
    /// An optional count, to test integer validation.
    #[serde(default)]
    pub count: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
pub struct SleepParams {
    /// Seconds to sleep.
    pub seconds: f64,
}

#[derive(Deserialize, JsonSchema)]
pub struct TicksParams {
    /// How many lines to print.
    pub count: u32,
    /// Milliseconds between lines.
    pub interval_ms: u64,
    /// A file to write "cancelled" into when the call is cancelled.
    #[serde(default)]
    pub marker: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
pub struct BigParams {
    /// Size of the returned string.
    pub bytes: usize,
}

/// Warmups that failed so far (for `fail_warmup_times`).
static WARMUP_FAILURES: AtomicU64 = AtomicU64::new(0);

type Cx<'a> = CallContext<'a, FixtureSession>;

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn echo(_p: &Fixture, cx: &Cx, p: EchoParams) -> Result<Value, PluginError> {
    Ok(json!({
        "text": p.text,
        "count": p.count,
        "session_id": cx.session_id(),
        "worker_id": cx.worker_id(),
        "version": version(),
        "session_config": cx.session()?.config,
    }))
}

/// Uses 8 KiB of stack per level, forever.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 1024]);
    recurse(depth + 1) + frame[0]
}

/// Sleeps, ignoring the deadline and cancellation.
fn sleep_ignoring_deadline(_p: &Fixture, _cx: &Cx, p: SleepParams) -> Result<Value, PluginError> {
    std::thread::sleep(Duration::from_secs_f64(p.seconds.clamp(0.0, 3600.0)));
    Ok(json!({"slept": p.seconds}))
}

impl Plugin for Fixture {
    type Session = FixtureSession;

    fn info() -> PluginInfo {
        let info = PluginInfo::new(
            "fixture",
            version(),
            "Fault-injection fixture for tests",
            SessionModel::PerWorker,
        );
        // Version 2 stands for a plugin without snapshots.
        if version().starts_with("2.") {
            info
        } else {
            info.with_capability(PluginInfo::SNAPSHOTS)
        }
    }

    fn tools() -> Tools<Self> {
        Tools::new()
            .tool(
                "echo",
                "Echo text with the session and version",
                echo,
            )
            .non_blocking()
            .tool(
                "echo_blocking",
                "Echo text like echo, but as a tool that may block (run on a call thread)",
                echo,
            )
            .tool(
                "panic",
                "Panic inside the plugin",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    panic!("fixture panic on request")
                },
            )
            .tool(
                "fail",
                "Return a plugin error",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    Err(PluginError::internal("fixture failure on request"))
                },
            )
            .tool(
                "hang",
                "Sleep, ignoring the deadline and cancellation",
                sleep_ignoring_deadline,
            )
            .tool(
                "overrun",
                "Declared non-blocking, yet sleeps, ignoring the deadline (a plugin breaking its word)",
                sleep_ignoring_deadline,
            )
            .non_blocking()
            .tool(
                "sleep",
                "Sleep, stopping early when cancelled",
                |_p: &Fixture, cx: &Cx, p: SleepParams| {
                    let end = std::time::Instant::now()
                        + Duration::from_secs_f64(p.seconds.clamp(0.0, 3600.0));
                    while std::time::Instant::now() < end {
                        cx.check()?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(json!({"slept": p.seconds}))
                },
            )
            .tool(
                "note",
                "Add a note to the session's notes; returns them all",
                |_p: &Fixture, cx: &Cx, p: NoteParams| {
                    let session = cx.session()?;
                    let mut notes = session.notes.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(text) = p.text {
                        notes.push(text);
                    }
                    Ok(json!({"notes": *notes}))
                },
            )
            .tool(
                "ticks",
                "Print `tick N` lines at an interval, emitting each as a chunk",
                |_p: &Fixture, cx: &Cx, p: TicksParams| {
                    let mut out = String::new();
                    for n in 1..=p.count {
                        std::thread::sleep(Duration::from_millis(p.interval_ms.min(10_000)));
                        if let Err(e) = cx.check() {
                            if let Some(marker) = &p.marker {
                                let _ = std::fs::write(marker, "cancelled");
                            }
                            return Err(e);
                        }
                        let line = format!("tick {n}\n");
                        cx.emit("stdout", &line);
                        out.push_str(&line);
                    }
                    Ok(json!({"stdout": out}))
                },
            )
            .tool(
                "broken",
                "Report the session as broken",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    Err(PluginError::session_broken(
                        "fixture session broken on request",
                    ))
                },
            )
            .tool(
                "big",
                "Return a string of the given size",
                |_p: &Fixture, _cx: &Cx, p: BigParams| {
                    Ok(json!({"data": "x".repeat(p.bytes.min(512 * 1024 * 1024))}))
                },
            )
            .tool(
                "log",
                "Log the text at warn level through the host's log",
                |_p: &Fixture, _cx: &Cx, p: EchoParams| -> Result<Value, PluginError> {
                    plugin_api::log::warn!("fixture says: {}", p.text);
                    Ok(json!({"logged": p.text}))
                },
            )
            // Faults no panic guard can catch: they end the process the
            // plugin runs in (the host, unless the plugin is isolated).
            .tool(
                "segfault",
                "Write through a null pointer (SIGSEGV)",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    // SAFETY: none; this is the fault under test.
                    unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
                    Ok(json!({}))
                },
            )
            .tool(
                "abort",
                "Abort the process (SIGABRT)",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    std::process::abort()
                },
            )
            .tool(
                "overflow",
                "Recurse until the stack overflows",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    Ok(json!({"depth": recurse(0)}))
                },
            )
            .tool(
                "allocate",
                "Allocate and touch memory without bound",
                |_p: &Fixture, _cx: &Cx, _: NoParams| -> Result<Value, PluginError> {
                    let mut held: Vec<Vec<u8>> = Vec::new();
                    loop {
                        held.push(vec![1u8; 64 << 20]);
                        std::hint::black_box(&held);
                    }
                },
            )
            .hidden_tool(
                "secret",
                "A hidden tool",
                |_p: &Fixture, _cx: &Cx, _: NoParams| Ok(json!({"secret": true})),
            )
    }

    fn warmup(config: &Value) -> Result<Self, PluginError> {
        if config.get("fail_warmup").and_then(Value::as_bool) == Some(true) {
            return Err(PluginError::unavailable(
                "fixture warmup failure on request",
            ));
        }
        if let Some(times) = config.get("fail_warmup_times").and_then(Value::as_u64) {
            if WARMUP_FAILURES.fetch_add(1, Ordering::SeqCst) < times {
                return Err(PluginError::unavailable(
                    "fixture warmup failure on request (will succeed later)",
                ));
            }
        }
        if config.get("panic_warmup").and_then(Value::as_bool) == Some(true) {
            panic!("fixture warmup panic on request");
        }
        if let Some(delay) = config.get("warmup_delay").and_then(Value::as_f64) {
            // What a long warmup reports as its progress (/warmup/status shows it).
            plugin_api::log::info!("warming up slowly: {delay} s (warmup_delay)");
            std::thread::sleep(Duration::from_secs_f64(delay.clamp(0.0, 600.0)));
        }
        Ok(Fixture)
    }

    fn shutdown(&self) {
        if std::env::var("FIXTURE_PANIC_SHUTDOWN").is_ok() {
            panic!("fixture shutdown panic on request");
        }
        if let Ok(path) = std::env::var("FIXTURE_SHUTDOWN_MARKER") {
            let _ = std::fs::write(format!("{path}.{}", version()), "shut down");
        }
        if std::env::var("FIXTURE_HANG_SHUTDOWN").is_ok() {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    fn initialize(&self, _id: &str, config: &Value) -> Result<FixtureSession, PluginError> {
        if let Some(delay) = config.get("init_delay").and_then(Value::as_f64) {
            std::thread::sleep(Duration::from_secs_f64(delay.clamp(0.0, 600.0)));
        }
        if config.get("fail_init").and_then(Value::as_bool) == Some(true) {
            return Err(PluginError::internal(
                "fixture initialize failure on request",
            ));
        }
        if config.get("panic_init").and_then(Value::as_bool) == Some(true) {
            panic!("fixture initialize panic on request");
        }
        Ok(FixtureSession {
            fail_cleanup: config.get("fail_cleanup").and_then(Value::as_bool) == Some(true),
            panic_cleanup: config.get("panic_cleanup").and_then(Value::as_bool) == Some(true),
            config: config.clone(),
            notes: Mutex::new(Vec::new()),
        })
    }

    fn snapshot(&self, session: &FixtureSession, snapshot_id: &str) -> Result<Value, PluginError> {
        let notes = session
            .notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let n = notes.len();
        snapshots(|s| s.insert(snapshot_id.to_string(), notes));
        Ok(json!({"notes": n}))
    }

    fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &Value,
    ) -> Result<FixtureSession, PluginError> {
        let notes = snapshots(|s| s.get(snapshot_id).cloned())
            .ok_or_else(|| PluginError::invalid_params(format!("no snapshot '{snapshot_id}'")))?;
        let session = self.initialize(session_id, config)?;
        *session.notes.lock().unwrap_or_else(PoisonError::into_inner) = notes;
        Ok(session)
    }

    fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        snapshots(|s| s.remove(snapshot_id));
        Ok(())
    }

    fn cleanup(&self, session: &FixtureSession) -> Result<(), PluginError> {
        if session.panic_cleanup {
            panic!("fixture cleanup panic on request");
        }
        if session.fail_cleanup {
            return Err(PluginError::internal("fixture cleanup failure on request"));
        }
        Ok(())
    }
}

export_plugin!(Fixture);
