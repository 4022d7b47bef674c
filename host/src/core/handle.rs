//! The seam between the core and plugin code: everything the core asks of a
//! plugin, wherever that plugin's code runs. Today a library loaded into this
//! process ([`LoadedPlugin`]); in unit tests a Rust type in the test itself
//! (`core/testing.rs`), so the executor, sessions, warmup, draining and call
//! caps are tested without building libraries; and in isolated mode a runner
//! process (`isolation/child.rs`).

use plugin_api::{PluginError, PluginInfo, ToolInfo};
pub use plugin_loader::CallControl;
use plugin_loader::LoadedPlugin;
use serde_json::Value;

pub use crate::isolation::child::ProcessStatus;

/// A plugin the core can drive. Every method may block: the core calls them
/// on call threads (see `call_pool.rs`), never on the async runtime, except
/// tools a plugin declares non-blocking (see `inline.rs`).
pub trait PluginHandle: Send + Sync + 'static {
    /// Name, version, description and session model.
    fn info(&self) -> &PluginInfo;
    /// The tools, with their schemas.
    fn tools(&self) -> &[ToolInfo];
    /// Builds the plugin if needed and warms it up with its config.
    fn warmup(&self, config: &Value) -> Result<(), PluginError>;
    /// Ends every session the plugin still has and shuts it down.
    fn shutdown(&self) -> Result<(), PluginError>;
    /// Creates a session.
    fn initialize(&self, session_id: &str, config: &Value) -> Result<(), PluginError>;
    /// Ends a session.
    fn cleanup(&self, session_id: &str) -> Result<(), PluginError>;
    /// Runs a tool and returns its result as JSON text. `session_id` is
    /// `None` for shared plugins; `control.cancel` set means stop; chunks the
    /// tool emits go to `control.emitter`, when there is one.
    fn call(
        &self,
        session_id: Option<&str>,
        worker_id: &str,
        tool: &str,
        params: &Value,
        control: &CallControl<'_>,
    ) -> Result<String, PluginError>;

    /// The plugin's process, when it runs in one of its own (isolated mode).
    fn isolated(&self) -> Option<ProcessStatus> {
        None
    }

    /// The last line the plugin logged (info or above) during its current or
    /// last warmup: how a long warmup (building an index) shows progress.
    fn warmup_progress(&self) -> Option<String> {
        None
    }

    /// Freezes a session as a snapshot; returns the plugin's JSON report.
    fn snapshot(&self, session_id: &str, snapshot_id: &str) -> Result<String, PluginError> {
        let _ = (session_id, snapshot_id);
        Err(no_snapshots(self.info()))
    }

    /// Creates a session from a snapshot.
    fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &Value,
    ) -> Result<(), PluginError> {
        let _ = (session_id, snapshot_id, config);
        Err(no_snapshots(self.info()))
    }

    /// Forgets a snapshot.
    fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        let _ = snapshot_id;
        Ok(())
    }
}

impl PluginHandle for LoadedPlugin {
    fn info(&self) -> &PluginInfo {
        LoadedPlugin::info(self)
    }
    fn tools(&self) -> &[ToolInfo] {
        LoadedPlugin::tools(self)
    }
    fn warmup(&self, config: &Value) -> Result<(), PluginError> {
        LoadedPlugin::warmup(self, config)
    }
    fn warmup_progress(&self) -> Option<String> {
        plugin_loader::last_log_line(&self.info().name)
    }
    fn shutdown(&self) -> Result<(), PluginError> {
        LoadedPlugin::shutdown(self)
    }
    fn initialize(&self, session_id: &str, config: &Value) -> Result<(), PluginError> {
        LoadedPlugin::initialize(self, session_id, config)
    }
    fn cleanup(&self, session_id: &str) -> Result<(), PluginError> {
        LoadedPlugin::cleanup(self, session_id)
    }
    fn call(
        &self,
        session_id: Option<&str>,
        worker_id: &str,
        tool: &str,
        params: &Value,
        control: &CallControl<'_>,
    ) -> Result<String, PluginError> {
        LoadedPlugin::call(self, session_id, worker_id, tool, params, control)
    }
    fn snapshot(&self, session_id: &str, snapshot_id: &str) -> Result<String, PluginError> {
        LoadedPlugin::snapshot(self, session_id, snapshot_id)
    }
    fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &Value,
    ) -> Result<(), PluginError> {
        LoadedPlugin::restore(self, session_id, snapshot_id, config)
    }
    fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        LoadedPlugin::drop_snapshot(self, snapshot_id)
    }
}

fn no_snapshots(info: &PluginInfo) -> PluginError {
    PluginError::unsupported(format!(
        "snapshots are not supported by the plugin '{}' here",
        info.name
    ))
}
