//! The AgentFlow plugin API.
//!
//! A plugin is a `cdylib` that the AgentFlow host loads at run time. This crate is
//! the only thing a plugin and the host share:
//!
//! * for **plugin authors**, a safe Rust API: implement [`Plugin`], describe the
//!   tools with [`Tools`] (typed params derive their JSON Schema through
//!   `schemars`), and export the type with [`export_plugin!`];
//! * for **the host**, the types that cross the boundary; the loader that opens
//!   a library, checks the plugin-api version it was built against, verifies
//!   the ABI layout and calls it is the separate crate `agentflow-plugin-loader`
//!   (`plugin-loader/`), so plugins do not link it.
//!
//! The stable ABI underneath (currently `abi_stable`) never appears in either
//! side's code, so it can be replaced without touching plugins or the host.
//!
//! ```ignore
//! use plugin_api::{export_plugin, CallContext, Plugin, PluginError, PluginInfo, SessionModel, Tools};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct EchoParams { text: String }
//!
//! struct Echo;
//! impl Plugin for Echo {
//!     type Session = ();
//!     fn info() -> PluginInfo { PluginInfo::new("echo", env!("CARGO_PKG_VERSION"), "Echoes text", SessionModel::Shared) }
//!     fn tools() -> Tools<Self> {
//!         Tools::new().tool("say", "Echo the text back", |_p: &Echo, _cx: &CallContext<'_, ()>, p: EchoParams| {
//!             Ok(serde_json::json!({ "text": p.text }))
//!         })
//!     }
//!     fn warmup(_config: &serde_json::Value) -> Result<Self, PluginError> { Ok(Echo) }
//! }
//! export_plugin!(Echo);
//! ```

mod context;
mod error;
#[doc(hidden)]
pub mod export;
#[doc(hidden)]
pub mod ffi;
mod logging;
mod plugin;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tools;

pub use context::{CallContext, Emit};
pub use error::{ErrorKind, PluginError};
pub use plugin::{Plugin, PluginInfo, SessionModel};
pub use tools::{NoParams, ToolInfo, Tools};

/// Re-exported so plugin authors use the same `serde_json`, `schemars` and
/// `log` as the API. Log with `plugin_api::log::info!(…)`: records reach the
/// host's log with the plugin's name and the call's request id.
pub use log;
pub use schemars;
pub use serde_json;

/// The version of this crate, recorded in every plugin and checked by the host
/// (with semver) before any other function of the plugin is called.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The symbol every plugin exports with its plugin-api version, read with plain
/// `dlsym` before any layout-checked code runs.
pub const API_VERSION_SYMBOL: &str = "agentflow_plugin_api_version";
