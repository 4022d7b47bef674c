//! One loaded plugin version: its library, tools, schemas, warm state and call cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use plugin_api::{PluginInfo, SessionModel, ToolInfo};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::blocking::run_blocking;
use super::error::{CoreError, CoreResult};
use super::handle::PluginHandle;
use super::inline::InlineTools;
use super::library::LibraryFile;
use super::validate::ParamsSchema;
use crate::config::PluginConfig;
use crate::metrics::{Metrics, PluginLabel, Refusal, ToolMetrics};

/// Where a backend is in its warmup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmState {
    Cold,
    /// Its warmup is running.
    Warming,
    Warm,
    Failed(String),
}

/// A plugin version that has been loaded and checked.
pub struct Backend {
    pub name: String,
    pub info: PluginInfo,
    pub plugin: Box<dyn PluginHandle>,
    pub settings: PluginConfig,
    pub file: LibraryFile,
    tools: Vec<ToolInfo>,
    schemas: HashMap<String, ParamsSchema>,
    /// Which non-blocking tools still run on the runtime's threads.
    pub inline: InlineTools,
    warm_lock: tokio::sync::Mutex<()>,
    warm: Mutex<WarmState>,
    /// `warm == Warm`, readable without the lock on every call.
    is_warm: AtomicBool,
    calls: Arc<Semaphore>,
    max_calls: usize,
    /// Sessions created on this version and not yet destroyed.
    open_sessions: AtomicUsize,
    /// Replaced by a newer version: shut down once its last session ends.
    retired: AtomicBool,
    shut_down: AtomicBool,
    /// `None` with `server.metrics = false`.
    metrics: Option<Arc<Metrics>>,
    /// Each tool's metric handles, made once here.
    tool_metrics: HashMap<String, ToolMetrics>,
}

impl Backend {
    /// Checks the plugin's tools (names, schemas) and builds the backend.
    pub fn new(
        plugin: Box<dyn PluginHandle>,
        settings: PluginConfig,
        file: LibraryFile,
        max_calls: usize,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, String> {
        let info = plugin.info().clone();
        if !valid_name(&info.name) {
            return Err(format!(
                "plugin name '{}' is not valid (1–64 of A–Z a–z 0–9 _ -)",
                info.name
            ));
        }
        let tools = plugin.tools().to_vec();
        let mut schemas = HashMap::new();
        for tool in &tools {
            if !valid_name(&tool.name) {
                return Err(format!(
                    "tool name '{}' is not valid (1–64 of A–Z a–z 0–9 _ -)",
                    tool.name
                ));
            }
            let schema = ParamsSchema::compile(&tool.parameters)
                .map_err(|e| format!("tool '{}' has an invalid params schema: {e}", tool.name))?;
            if schemas.insert(tool.name.clone(), schema).is_some() {
                return Err(format!("tool '{}' is declared twice", tool.name));
            }
        }
        let isolated = plugin.isolated().is_some();
        if let Some(m) = &metrics {
            m.sessions.start_counting(&info.name);
        }
        let tool_metrics = match &metrics {
            Some(m) => tools
                .iter()
                .map(|t| {
                    let full = format!("{}:{}", info.name, t.name);
                    (t.name.clone(), m.tools.for_tool(&full))
                })
                .collect(),
            None => HashMap::new(),
        };
        Ok(Self {
            metrics,
            tool_metrics,
            name: info.name.clone(),
            info,
            plugin,
            settings,
            file,
            // A call to a plugin in another process waits on a pipe (and on a
            // restart after a crash): never on the async runtime's threads.
            inline: InlineTools::new(if isolated { &[] } else { &tools }),
            tools,
            schemas,
            warm_lock: tokio::sync::Mutex::new(()),
            warm: Mutex::new(WarmState::Cold),
            is_warm: AtomicBool::new(false),
            calls: Arc::new(Semaphore::new(max_calls)),
            max_calls,
            open_sessions: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
        })
    }

    pub fn tools(&self) -> &[ToolInfo] {
        &self.tools
    }

    /// The metric handles of one of this plugin's tools.
    pub fn tool_metrics(&self, tool: &str) -> Option<&ToolMetrics> {
        self.tool_metrics.get(tool)
    }

    pub fn has_tool(&self, tool: &str) -> bool {
        self.schemas.contains_key(tool)
    }

    pub fn per_session(&self) -> bool {
        self.info.session_model == SessionModel::PerWorker
    }

    /// Validates params against the tool's schema.
    pub fn check_params(&self, tool: &str, params: &Value) -> CoreResult<()> {
        match self.schemas.get(tool) {
            Some(schema) => schema.check(params).map_err(CoreError::InvalidParams),
            None => Err(CoreError::ToolNotFound(format!("{}:{tool}", self.name))),
        }
    }

    pub fn warm_state(&self) -> WarmState {
        self.warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn is_warm(&self) -> bool {
        self.is_warm.load(Ordering::Acquire)
    }

    fn set_warm(&self, state: WarmState) {
        let mut warm = self.warm.lock().unwrap_or_else(PoisonError::into_inner);
        self.is_warm
            .store(state == WarmState::Warm, Ordering::Release);
        *warm = state;
    }

    /// Warms the plugin up once; concurrent callers wait for the same warmup.
    /// A failed warmup is retried by the next caller.
    pub async fn ensure_warm(self: &Arc<Self>, timeout: Duration) -> CoreResult<()> {
        if self.is_warm() {
            return Ok(());
        }
        let _guard = self.warm_lock.lock().await;
        if self.is_warm() {
            return Ok(());
        }
        let me = self.clone();
        tracing::info!(plugin = %self.name, version = %self.info.version, "warming up");
        self.set_warm(WarmState::Warming);
        let started = std::time::Instant::now();
        let outcome = run_blocking(timeout, move || me.plugin.warmup(&me.settings.config)).await;
        if let Some(m) = &self.metrics {
            let label = PluginLabel {
                plugin: self.name.as_str().into(),
            };
            m.plugins
                .warmup_seconds
                .get_or_create(&label)
                .set(started.elapsed().as_secs_f64());
        }
        let error = match outcome {
            Ok(Ok(())) => {
                self.set_warm(WarmState::Warm);
                tracing::info!(plugin = %self.name, ms = started.elapsed().as_millis() as u64, "warmed up");
                return Ok(());
            }
            Ok(Err(e)) => e.message,
            Err(e) => e.describe("warmup"),
        };
        tracing::warn!(plugin = %self.name, error = %error, "warmup failed");
        self.set_warm(WarmState::Failed(error.clone()));
        Err(CoreError::NotWarmedUp(format!(
            "Warmup of '{}' failed: {error}",
            self.name
        )))
    }

    /// Takes one of the plugin's call slots, or says at once that all are busy.
    pub fn try_call_slot(&self) -> CoreResult<OwnedSemaphorePermit> {
        self.calls.clone().try_acquire_owned().map_err(|_| {
            if let Some(m) = &self.metrics {
                m.refused(Refusal::PluginBusy);
            }
            CoreError::Unavailable(format!(
                "Plugin '{}' is at its limit of {} concurrent calls (server.max_inflight_per_plugin); retry later",
                self.name, self.max_calls
            ))
        })
    }

    /// Calls running now and the most allowed at once.
    pub fn calls_in_flight(&self) -> (usize, usize) {
        let free = self.calls.available_permits();
        (self.max_calls.saturating_sub(free), self.max_calls)
    }

    pub fn session_opened(&self) {
        self.open_sessions.fetch_add(1, Ordering::SeqCst);
    }

    /// Records a session's end; true when this retired version should now shut down.
    pub fn session_closed(&self) -> bool {
        let left = self
            .open_sessions
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        left == 0 && self.is_retired()
    }

    pub fn open_sessions(&self) -> usize {
        self.open_sessions.load(Ordering::SeqCst)
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Shuts the plugin down once (a no-op for a plugin never warmed up).
    pub async fn shutdown(self: &Arc<Self>, timeout: Duration) {
        if self.shut_down.swap(true, Ordering::SeqCst)
            || matches!(self.warm_state(), WarmState::Cold | WarmState::Warming)
        {
            return;
        }
        let me = self.clone();
        match run_blocking(timeout, move || me.plugin.shutdown()).await {
            Ok(Ok(())) => {
                tracing::info!(plugin = %self.name, version = %self.info.version, "shut down")
            }
            Ok(Err(e)) => {
                tracing::warn!(plugin = %self.name, error = %e.message, "shutdown failed")
            }
            Err(e) => {
                tracing::warn!(plugin = %self.name, error = %e.describe("shutdown"), "shutdown did not finish")
            }
        }
        self.set_warm(WarmState::Cold);
    }
}

/// Plugin and tool names: what fits in `resource:action` and a session name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
