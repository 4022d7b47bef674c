//! Rust plugins for the core's unit tests: a [`PluginHandle`] whose tools are
//! closures in the test, so the executor, sessions, warmup and call caps run
//! for real without building a library. Each records what the core asked of
//! it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use plugin_api::{PluginError, PluginInfo, SessionModel, ToolInfo};
use serde_json::{json, Value};

use super::backend::Backend;
use super::handle::{CallControl, PluginHandle};
use super::library::LibraryFile;
use super::Core;
use crate::config::Config;

/// What a tool sees of a call.
pub struct Args<'a> {
    pub session_id: Option<&'a str>,
    pub params: &'a Value,
    pub cancel: &'a AtomicBool,
    pub deadline: SystemTime,
    /// Where a streaming call's chunks go.
    pub emit: Option<plugin_api::Emit<'a>>,
}

type ToolFn = Box<dyn Fn(&Args<'_>) -> Result<Value, PluginError> + Send + Sync>;

/// A plugin made of closures.
pub struct RustPlugin {
    info: PluginInfo,
    tools: Vec<ToolInfo>,
    handlers: HashMap<String, ToolFn>,
    warmup_error: Option<String>,
    /// What happened, in order: `warmup`, `initialize <id>`, `cleanup <id>`,
    /// `call <tool>`, `shutdown`.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl RustPlugin {
    pub fn new(name: &str, model: SessionModel) -> Self {
        Self {
            info: PluginInfo::new(name, "1.0.0", "a test plugin", model),
            tools: Vec::new(),
            handlers: HashMap::new(),
            warmup_error: None,
            log: Arc::default(),
        }
    }

    /// Adds a tool taking `{"text": string}`-like params of the given schema.
    pub fn tool(
        mut self,
        name: &str,
        schema: Value,
        f: impl Fn(&Args<'_>) -> Result<Value, PluginError> + Send + Sync + 'static,
    ) -> Self {
        self.tools.push(ToolInfo {
            name: name.into(),
            description: format!("test tool {name}"),
            hidden: false,
            parameters: schema,
            non_blocking: false,
            read_only: false,
            destructive: false,
        });
        self.handlers.insert(name.into(), Box::new(f));
        self
    }

    /// Makes warmup fail with `message`.
    pub fn failing_warmup(mut self, message: &str) -> Self {
        self.warmup_error = Some(message.into());
        self
    }

    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
}

impl PluginHandle for RustPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }
    fn tools(&self) -> &[ToolInfo] {
        &self.tools
    }
    fn warmup(&self, _config: &Value) -> Result<(), PluginError> {
        self.note("warmup".into());
        match &self.warmup_error {
            Some(m) => Err(PluginError::unavailable(m.clone())),
            None => Ok(()),
        }
    }
    fn shutdown(&self) -> Result<(), PluginError> {
        self.note("shutdown".into());
        Ok(())
    }
    fn initialize(&self, session_id: &str, _config: &Value) -> Result<(), PluginError> {
        self.note(format!("initialize {session_id}"));
        Ok(())
    }
    fn cleanup(&self, session_id: &str) -> Result<(), PluginError> {
        self.note(format!("cleanup {session_id}"));
        Ok(())
    }
    fn call(
        &self,
        session_id: Option<&str>,
        _worker_id: &str,
        tool: &str,
        params: &Value,
        control: &CallControl<'_>,
    ) -> Result<String, PluginError> {
        self.note(format!("call {tool}"));
        let f = self.handlers.get(tool).ok_or_else(|| {
            PluginError::new(
                plugin_api::ErrorKind::UnknownTool,
                format!("no tool '{tool}'"),
            )
        })?;
        let args = Args {
            session_id,
            params,
            cancel: control.cancel,
            deadline: control.deadline,
            emit: control.emitter,
        };
        f(&args).map(|v| v.to_string())
    }
}

/// A core with `server` settings (TOML lines of `[server]`) serving `plugins`.
pub fn core_with(server: &str, plugins: Vec<RustPlugin>) -> Arc<Core> {
    let config = Config::parse(&format!("[server]\n{server}\n"), std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let core = Core::new(config);
    for p in plugins {
        let name = p.info.name.clone();
        let file = LibraryFile {
            path: PathBuf::from(format!("<test plugin {name}>")),
            size: 0,
            hash: format!("{name:0>64}"),
        };
        let settings = core.config.plugin(&name);
        let max = core.config.server.max_inflight_per_plugin;
        let backend = Backend::new(Box::new(p), settings, file, max, core.metrics.clone())
            .unwrap_or_else(|e| panic!("test plugin: {e}"));
        core.registry
            .install(Arc::new(backend), false)
            .unwrap_or_else(|e| panic!("test plugin: {e}"));
    }
    core
}

/// `{"type": "object"}` with one required string property.
pub fn text_schema() -> Value {
    json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
}

/// Waits (politely, on a call thread) until `cancel` is set or `deadline` passes.
pub fn wait_for_cancel(args: &Args<'_>) -> Result<Value, PluginError> {
    while !args.cancel.load(Ordering::SeqCst) {
        if SystemTime::now() > args.deadline + std::time::Duration::from_secs(5) {
            return Ok(json!({"cancelled": false}));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(json!({"cancelled": true}))
}
