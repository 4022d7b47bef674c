//! The host side of the boundary: open a plugin library, check it, and call it
//! through safe methods. Loading runs the library's code: only load files you trust.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::{RResult, RStr, RString};
use semver::{Version, VersionReq};

use plugin_api::export::unix_ms;
use plugin_api::ffi::{FfiCallContext, FfiChunkSink, FfiError, HostLog, PluginModRef};
use plugin_api::{ErrorKind, PluginError, PluginInfo, ToolInfo, API_VERSION, API_VERSION_SYMBOL};

/// Why a library could not be used as a plugin. Messages are short and readable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened as a shared library (missing, truncated, not ELF).
    #[error("cannot open library: {0}")]
    Open(String),
    /// The library exports no plugin-api version: it is not an AgentFlow plugin.
    #[error("not an AgentFlow plugin (no `{API_VERSION_SYMBOL}` symbol)")]
    NotAPlugin,
    /// Built against a plugin-api version this host cannot load.
    #[error("built against plugin-api {found}, but this host needs plugin-api {required}")]
    IncompatibleApi { found: String, required: String },
    /// The ABI layout check failed (the long report is summarized).
    #[error("ABI layout mismatch with this host's plugin-api: {0}")]
    AbiMismatch(String),
    /// The plugin's info or tool list could not be read.
    #[error("invalid plugin metadata: {0}")]
    BadMetadata(String),
}

/// The plugin-api versions this host accepts: the same major version (for
/// 0.x, the same minor), as semver's caret requirement says.
pub fn compatible_versions() -> VersionReq {
    let host = Version::parse(API_VERSION).unwrap_or_else(|_| Version::new(0, 0, 0));
    let req = if host.major == 0 {
        format!("^0.{}", host.minor)
    } else {
        format!("^{}", host.major)
    };
    VersionReq::parse(&req).unwrap_or(VersionReq::STAR)
}

/// How a call may run: the flag that asks it to stop, its deadline, and, for
/// a streaming call, where the chunks of output it emits go.
pub struct CallControl<'a> {
    pub cancel: &'a AtomicBool,
    pub deadline: SystemTime,
    pub emitter: Option<plugin_api::Emit<'a>>,
}

/// The sink handed to a plugin: the ABI's part first, so that [`host_emit`]
/// finds the emitter from the reference the plugin passes back.
#[repr(C)]
struct HostSink<'a> {
    ffi: FfiChunkSink,
    emitter: plugin_api::Emit<'a>,
}

extern "C" fn host_emit(sink: &FfiChunkSink, stream: RStr<'_>, text: RStr<'_>) {
    // SAFETY: the only `FfiChunkSink` this host hands out is the first field
    // of a `#[repr(C)] HostSink` that outlives the call (`LoadedPlugin::call`),
    // so the pointer to it is a pointer to that `HostSink`.
    let host = unsafe { &*(sink as *const FfiChunkSink).cast::<HostSink<'_>>() };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (host.emitter)(stream.as_str(), text.as_str());
    }));
}

/// A loaded, version- and layout-checked plugin library. Libraries are never
/// unloaded; to load a new version, load a copy at another path.
#[derive(Clone)]
pub struct LoadedPlugin {
    module: PluginModRef,
    info: PluginInfo,
    tools: Vec<ToolInfo>,
    api_version: String,
    path: PathBuf,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.info)
            .field("path", &self.path)
            .finish()
    }
}

/// The most detailed level the host's subscriber wants, as the ABI counts
/// (0 none, 1 error … 5 trace): finer records are dropped in the plugin.
fn max_level() -> u8 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}

/// The last line each plugin logged at info level or above, by plugin name.
static LAST_LINES: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

thread_local! {
    /// True while this thread runs a plugin's warmup.
    static IN_WARMUP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Longest line kept by [`last_log_line`].
const LAST_LINE_CHARS: usize = 300;

/// The last line `plugin` (loaded in this process) logged at info level or
/// above on its warmup's thread: how a long warmup (building an index) shows
/// its progress.
pub fn last_log_line(plugin: &str) -> Option<String> {
    LAST_LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(plugin)
        .cloned()
}

/// Where plugin log records go instead of this process's `tracing`: level,
/// plugin, module, message.
pub type LogSink = fn(u8, &str, &str, &str);

static LOG_SINK: std::sync::OnceLock<LogSink> = std::sync::OnceLock::new();

/// Sends every plugin log record from now on to `sink` instead of
/// [`log_record`]: a plugin runner process passes them to its host, which
/// logs them in the span of the call they belong to. Set once; false if a
/// sink was already set.
pub fn redirect_logs(sink: LogSink) -> bool {
    LOG_SINK.set(sink).is_ok()
}

/// A plugin's log record (by the plugin-api levels, 1 = error … 5 = trace) as
/// a host event: target `plugin`, the plugin's name and its own module. On a
/// thread inside a call's span, it carries that span (request id, worker,
/// session).
pub fn log_record(level: u8, plugin: &str, module: &str, message: &str) {
    match level {
        1 => tracing::error!(target: "plugin", plugin, module, "{message}"),
        2 => tracing::warn!(target: "plugin", plugin, module, "{message}"),
        3 => tracing::info!(target: "plugin", plugin, module, "{message}"),
        4 => tracing::debug!(target: "plugin", plugin, module, "{message}"),
        _ => tracing::trace!(target: "plugin", plugin, module, "{message}"),
    }
}

/// What a plugin's log macros call. Emitted on the thread that runs the
/// plugin's code, so inside a call it carries that call's span.
extern "C" fn host_log(level: u8, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    let (plugin, module, message) = (plugin.as_str(), target.as_str(), message.as_str());
    if level <= 3 && IN_WARMUP.with(std::cell::Cell::get) {
        let line: String = message.chars().take(LAST_LINE_CHARS).collect();
        LAST_LINES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(plugin.to_string(), line);
    }
    match LOG_SINK.get() {
        Some(sink) => sink(level, plugin, module, message),
        None => log_record(level, plugin, module, message),
    }
}

/// Reads the plugin-api version a library was built against, without running
/// any of its layout-checked code.
fn read_api_version(path: &Path) -> Result<String, LoadError> {
    // SAFETY: loading a library runs its initializers; the caller chose to trust
    // this file. The handle is leaked on purpose: libraries are never unloaded.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| LoadError::Open(short(&e.to_string())))?;
    let version = {
        // SAFETY: the symbol is declared by `export_plugin!` with this signature.
        let sym: libloading::Symbol<'_, extern "C" fn() -> *const c_char> =
            unsafe { lib.get(API_VERSION_SYMBOL.as_bytes()) }.map_err(|_| LoadError::NotAPlugin)?;
        let ptr = sym();
        if ptr.is_null() {
            return Err(LoadError::NotAPlugin);
        }
        // SAFETY: the plugin returns a pointer to a static nul-terminated string.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    };
    std::mem::forget(lib);
    Ok(version)
}

fn short(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s);
    if first.len() > 300 {
        let mut end = 300;
        while !first.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &first[..end])
    } else {
        first.to_string()
    }
}

fn summarize_library_error(e: &LibraryError) -> LoadError {
    match e {
        LibraryError::AbiInstability(_) => {
            let text = e.to_string();
            // The full report is many kilobytes; keep the lines that say what differs.
            let key: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.contains("too many fields")
                        || l.contains("Error:")
                        || l.contains("mismatch")
                        || l.contains("different")
                })
                .take(3)
                .collect();
            let summary = if key.is_empty() {
                short(&text)
            } else {
                short(&key.join("; "))
            };
            LoadError::AbiMismatch(summary)
        }
        LibraryError::OpenError { .. } => LoadError::Open(short(&e.to_string())),
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin,
        _ => LoadError::AbiMismatch(short(&e.to_string())),
    }
}

fn from_ffi(e: FfiError) -> PluginError {
    PluginError::new(ErrorKind::from_code(e.code), e.message.into_string())
}

fn unit(r: RResult<(), FfiError>) -> Result<(), PluginError> {
    r.into_result().map_err(from_ffi)
}

fn text(r: RResult<RString, FfiError>) -> Result<String, PluginError> {
    r.into_result().map(RString::into_string).map_err(from_ffi)
}

impl LoadedPlugin {
    /// Opens the library at `path`: checks its plugin-api version with semver,
    /// then its ABI layout, then reads its info and tools. Nothing of the plugin
    /// is constructed yet.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let found = read_api_version(path)?;
        let required = compatible_versions();
        let compatible = Version::parse(&found)
            .map(|v| required.matches(&v))
            .unwrap_or(false);
        if !compatible {
            return Err(LoadError::IncompatibleApi {
                found,
                required: required.to_string(),
            });
        }
        let header = lib_header_from_path(path).map_err(|e| summarize_library_error(&e))?;
        let module = header
            .init_root_module::<PluginModRef>()
            .map_err(|e| summarize_library_error(&e))?;
        let info_json = text((module.info())()).map_err(|e| LoadError::BadMetadata(e.message))?;
        let info: PluginInfo = serde_json::from_str(&info_json)
            .map_err(|e| LoadError::BadMetadata(format!("plugin info: {e}")))?;
        let tools_json = text((module.tools())()).map_err(|e| LoadError::BadMetadata(e.message))?;
        let tools: Vec<ToolInfo> = serde_json::from_str(&tools_json)
            .map_err(|e| LoadError::BadMetadata(format!("tool list: {e}")))?;
        (module.set_logger())(HostLog { log: host_log }, max_level());
        Ok(Self {
            module,
            info,
            tools,
            api_version: found,
            path: path.to_path_buf(),
        })
    }

    /// The plugin's name, version, description and session model.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The plugin's tools.
    pub fn tools(&self) -> &[ToolInfo] {
        &self.tools
    }

    /// The plugin-api version the library was built against.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The path the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Builds the plugin object if needed and warms it up with its config.
    pub fn warmup(&self, config: &serde_json::Value) -> Result<(), PluginError> {
        let config = config.to_string();
        // Lines logged on this thread during warmup are kept for
        // `last_log_line`; calls' log lines cost nothing extra. A warmup
        // again (after an upgrade) starts without the last one's line.
        LAST_LINES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.info().name);
        IN_WARMUP.with(|w| w.set(true));
        let result = unit((self.module.warmup())(RStr::from_str(&config)));
        IN_WARMUP.with(|w| w.set(false));
        result
    }

    /// Cleans up every session the plugin still has and shuts it down.
    pub fn shutdown(&self) -> Result<(), PluginError> {
        unit((self.module.shutdown())())
    }

    /// Freezes a session as a snapshot; returns the plugin's JSON report.
    pub fn snapshot(&self, session_id: &str, snapshot_id: &str) -> Result<String, PluginError> {
        let f = self
            .module
            .snapshot()
            .ok_or_else(|| self.before_snapshots())?;
        text(f(RStr::from_str(session_id), RStr::from_str(snapshot_id)))
    }

    /// Creates a session from a snapshot.
    pub fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &serde_json::Value,
    ) -> Result<(), PluginError> {
        let f = self
            .module
            .restore()
            .ok_or_else(|| self.before_snapshots())?;
        let config = config.to_string();
        unit(f(
            RStr::from_str(session_id),
            RStr::from_str(snapshot_id),
            RStr::from_str(&config),
        ))
    }

    /// Forgets a snapshot.
    pub fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        match self.module.drop_snapshot() {
            Some(f) => unit(f(RStr::from_str(snapshot_id))),
            None => Ok(()),
        }
    }

    fn before_snapshots(&self) -> PluginError {
        PluginError::unsupported(format!(
            "snapshots are not supported by the plugin '{}' (built against plugin-api {}, before snapshots)",
            self.info().name,
            self.api_version
        ))
    }

    /// Creates a session with the given id and config.
    pub fn initialize(
        &self,
        session_id: &str,
        config: &serde_json::Value,
    ) -> Result<(), PluginError> {
        let config = config.to_string();
        unit((self.module.initialize())(
            RStr::from_str(session_id),
            RStr::from_str(&config),
        ))
    }

    /// Ends a session.
    pub fn cleanup(&self, session_id: &str) -> Result<(), PluginError> {
        unit((self.module.cleanup())(RStr::from_str(session_id)))
    }

    /// Runs a tool. `session_id` is `None` for shared plugins. Blocks until the
    /// plugin returns; run it on a blocking thread and set `cancel` to ask it to
    /// stop. Returns the result as JSON text, so that the caller can check its
    /// size before parsing it.
    pub fn call(
        &self,
        session_id: Option<&str>,
        worker_id: &str,
        tool: &str,
        params: &serde_json::Value,
        control: &CallControl<'_>,
    ) -> Result<String, PluginError> {
        let params = params.to_string();
        let ctx = FfiCallContext {
            cancel: control.cancel,
            deadline_unix_ms: unix_ms(control.deadline),
            worker_id: RStr::from_str(worker_id),
        };
        let (sid, tool, params) = (
            RStr::from_str(session_id.unwrap_or("")),
            RStr::from_str(tool),
            RStr::from_str(&params),
        );
        match (control.emitter, self.module.call_streaming()) {
            (Some(emitter), Some(call_streaming)) => {
                let sink = HostSink {
                    ffi: FfiChunkSink { emit: host_emit },
                    emitter,
                };
                text(call_streaming(sid, tool, params, &ctx, &sink.ffi))
            }
            // Not streaming, or a library from before streaming: the chunks
            // are not seen, the result still carries the whole output.
            _ => text((self.module.call())(sid, tool, params, &ctx)),
        }
    }
}
