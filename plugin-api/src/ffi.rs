//! The types that cross the library boundary. Only FFI-safe, layout-checked
//! types: strings, results, an atomic flag and integers. Params, results,
//! configs and schemas travel as JSON text. Frozen per plugin-api minor version,
//! but for fields appended to [`PluginMod`] after its last prefix field: those
//! are optional, so libraries built before them still load.

use std::sync::atomic::AtomicBool;

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr, RString};
use abi_stable::{package_version_strings, StableAbi};

/// An error crossing the boundary: an [`ErrorKind`](crate::ErrorKind) code and a message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiError {
    pub code: u32,
    pub message: RString,
}

/// The call context crossing the boundary.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiCallContext<'a> {
    pub cancel: &'a AtomicBool,
    /// Deadline in milliseconds since the Unix epoch.
    pub deadline_unix_ms: u64,
    pub worker_id: RStr<'a>,
}

pub type FfiResult<T> = RResult<T, FfiError>;

/// Where a streaming call's output goes while the tool runs. The host passes
/// a struct of its own that starts with this one (`#[repr(C)]`), so `emit`
/// finds the host's state from the reference it is given.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiChunkSink {
    /// One chunk: `stream` names the output (`stdout`, `stderr`,
    /// `progress`), `text` is what it says.
    pub emit: extern "C" fn(sink: &FfiChunkSink, stream: RStr<'_>, text: RStr<'_>),
}

/// The host's log sink, handed to the plugin once after loading: `level` is
/// 1 (error) to 5 (trace).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostLog {
    pub log: extern "C" fn(level: u8, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>),
}

/// The root module every plugin library exports. All functions catch panics.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin-api version the library was built against.
    pub api_version: extern "C" fn() -> RStr<'static>,
    /// JSON of [`PluginInfo`](crate::PluginInfo).
    pub info: extern "C" fn() -> FfiResult<RString>,
    /// JSON array of [`ToolInfo`](crate::ToolInfo).
    pub tools: extern "C" fn() -> FfiResult<RString>,
    /// Builds the plugin object if needed and warms it up with a JSON config.
    pub warmup: extern "C" fn(config: RStr<'_>) -> FfiResult<()>,
    pub shutdown: extern "C" fn() -> FfiResult<()>,
    /// Creates session `session_id` from a JSON config.
    pub initialize: extern "C" fn(session_id: RStr<'_>, config: RStr<'_>) -> FfiResult<()>,
    pub cleanup: extern "C" fn(session_id: RStr<'_>) -> FfiResult<()>,
    /// Runs `tool` with JSON params in a session (empty id: none); returns JSON.
    pub call: extern "C" fn(
        session_id: RStr<'_>,
        tool: RStr<'_>,
        params: RStr<'_>,
        ctx: &FfiCallContext<'_>,
    ) -> FfiResult<RString>,
    /// Sends the plugin's log records at or above `max_level` (1 error … 5
    /// trace, 0 none) to the host's sink. Called once, right after loading.
    #[sabi(last_prefix_field)]
    pub set_logger: extern "C" fn(sink: HostLog, max_level: u8),
    /// `call` with a sink for output chunks while the tool runs (added in
    /// 0.2.1; a library built before has none and is called with `call`).
    #[sabi(missing_field(option))]
    pub call_streaming: extern "C" fn(
        session_id: RStr<'_>,
        tool: RStr<'_>,
        params: RStr<'_>,
        ctx: &FfiCallContext<'_>,
        sink: &FfiChunkSink,
    ) -> FfiResult<RString>,
    /// Freezes session `session_id` as snapshot `snapshot_id`; returns JSON
    /// (added in 0.2.1, as the two below).
    #[sabi(missing_field(option))]
    pub snapshot: extern "C" fn(session_id: RStr<'_>, snapshot_id: RStr<'_>) -> FfiResult<RString>,
    /// Creates session `session_id` from snapshot `snapshot_id` with a JSON config.
    #[sabi(missing_field(option))]
    pub restore: extern "C" fn(
        session_id: RStr<'_>,
        snapshot_id: RStr<'_>,
        config: RStr<'_>,
    ) -> FfiResult<()>,
    /// Forgets a snapshot.
    #[sabi(missing_field(option))]
    pub drop_snapshot: extern "C" fn(snapshot_id: RStr<'_>) -> FfiResult<()>,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "agentflow_plugin";
    const NAME: &'static str = "agentflow_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
