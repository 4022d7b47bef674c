use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PluginError, Tools};

/// How a plugin's state is shared between the host's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionModel {
    /// One state serves every worker; the host creates no sessions (e.g. a search index).
    Shared,
    /// Each worker gets its own session, created by [`Plugin::initialize`] (e.g. a shell).
    PerWorker,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The resource type: the prefix of every tool name (`bash` in `bash:run`).
    pub name: String,
    /// The plugin's own version (usually `env!("CARGO_PKG_VERSION")`).
    pub version: String,
    /// One line about what the plugin does.
    pub description: String,
    /// Whether the plugin keeps one session per worker or one shared state.
    pub session_model: SessionModel,
    /// Optional features the plugin has: [`PluginInfo::SNAPSHOTS`].
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl PluginInfo {
    /// The capability of plugins that implement [`Plugin::snapshot`] and
    /// [`Plugin::restore`] (sessions can be snapshotted and forked).
    pub const SNAPSHOTS: &'static str = "snapshots";

    /// The same info with a capability added.
    pub fn with_capability(mut self, capability: &str) -> Self {
        self.capabilities.push(capability.to_string());
        self
    }

    /// Does the plugin declare `capability`?
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Info with no capabilities.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
        session_model: SessionModel,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            session_model,
            capabilities: Vec::new(),
        }
    }
}

/// A backend the host can load: implement this, then export the type with
/// [`export_plugin!`](crate::export_plugin).
///
/// Every method runs on a host thread outside the async runtime, possibly many
/// at once (`Send + Sync`). Panics are caught at the ABI boundary and reported
/// as [`ErrorKind::Panicked`](crate::ErrorKind::Panicked); never build a plugin
/// with `panic = "abort"`.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Per-session state (`()` for shared plugins). Dropped when the session ends
    /// and no call uses it any more.
    type Session: Send + Sync + 'static;

    /// Name, version, description and session model.
    fn info() -> PluginInfo;

    /// The plugin's tools with their typed handlers.
    fn tools() -> Tools<Self>;

    /// Builds the plugin from its config: open an index, check a program is
    /// installed, read settings. Called once, before any session or call;
    /// `config` is the plugin's table from the host configuration (`{}` when
    /// absent). What it returns is the plugin, warm: no "not warmed up" state
    /// to check anywhere else.
    fn warmup(config: &Value) -> Result<Self, PluginError>;

    /// Releases global resources; the host calls it once before exiting or
    /// after the last session of a replaced version ended.
    fn shutdown(&self) {}

    /// Creates the state of a new session. `config` is the plugin's defaults
    /// overlaid with the client's session config. Only called for
    /// [`SessionModel::PerWorker`] plugins, which implement it; shared plugins
    /// keep this default, which the host never calls.
    fn initialize(&self, session_id: &str, config: &Value) -> Result<Self::Session, PluginError> {
        let _ = (session_id, config);
        Err(PluginError::internal(format!(
            "plugin '{}' does not implement sessions (Plugin::initialize)",
            Self::info().name
        )))
    }

    /// Ends a session: stop its processes, remove its files. The state itself is
    /// dropped after the last running call on it returns.
    fn cleanup(&self, session: &Self::Session) -> Result<(), PluginError> {
        let _ = session;
        Ok(())
    }

    /// Freezes a session's state as snapshot `snapshot_id`, from which
    /// [`Plugin::restore`] starts new sessions, any number of times, while
    /// the source session goes on. Returns what a client should know about it
    /// as a JSON object (what was not carried, sizes). Plugins that implement
    /// snapshots declare [`PluginInfo::SNAPSHOTS`]; the default says the
    /// plugin has none.
    fn snapshot(&self, session: &Self::Session, snapshot_id: &str) -> Result<Value, PluginError> {
        let _ = (session, snapshot_id);
        Err(unsupported::<Self>())
    }

    /// Creates session `session_id` from snapshot `snapshot_id` (instead of
    /// [`Plugin::initialize`]); `config` as for `initialize`.
    fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &Value,
    ) -> Result<Self::Session, PluginError> {
        let _ = (session_id, snapshot_id, config);
        Err(unsupported::<Self>())
    }

    /// Forgets a snapshot. Sessions restored from it keep working.
    fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        let _ = snapshot_id;
        Ok(())
    }
}

fn unsupported<P: Plugin>() -> PluginError {
    PluginError::unsupported(format!(
        "snapshots are not supported by the plugin '{}'",
        P::info().name
    ))
}
