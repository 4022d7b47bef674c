//! The plugin side of the boundary: generic `extern "C"` functions that turn the
//! safe [`Plugin`] trait into the [`PluginMod`] root module. Every entry point
//! catches panics here, once, so that no plugin has to.
//!
//! Not part of the public API; used by [`export_plugin!`](crate::export_plugin).

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROk, RStr, RString};

use crate::ffi::{FfiCallContext, FfiChunkSink, FfiError, FfiResult, PluginMod, PluginModRef};
use crate::tools::ToolEntry;
use crate::{CallContext, ErrorKind, Plugin, PluginError, API_VERSION};

pub use crate::ffi::PluginModRef as RootModuleRef;
pub use abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};

/// The plugin-api version, nul-terminated, for the version symbol.
pub const API_VERSION_NUL: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The live state of the one plugin a library exports. Each `cdylib` links its
/// own copy of this crate, so this static is per library (and per loaded copy).
static RUNTIME: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

struct Runtime<P: Plugin> {
    tools: HashMap<String, ToolEntry<P>>,
    infos: Vec<crate::ToolInfo>,
    /// Read on every call, written at warmup and shutdown.
    plugin: RwLock<Option<Arc<P>>>,
    sessions: RwLock<HashMap<String, Arc<P::Session>>>,
}

fn runtime<P: Plugin>() -> Result<&'static Runtime<P>, PluginError> {
    let any = RUNTIME.get_or_init(|| {
        let tools = P::tools();
        let infos = tools.infos();
        let tools = tools
            .entries
            .into_iter()
            .map(|e| (e.info.name.clone(), e))
            .collect();
        Box::new(Runtime::<P> {
            tools,
            infos,
            plugin: RwLock::new(None),
            sessions: RwLock::new(HashMap::new()),
        })
    });
    any.downcast_ref::<Runtime<P>>()
        .ok_or_else(|| PluginError::internal("a library exported two plugin types"))
}

impl<P: Plugin> Runtime<P> {
    fn plugin(&self) -> Result<Arc<P>, PluginError> {
        self.plugin
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                PluginError::not_warmed_up(format!("plugin '{}' is not warmed up", P::info().name))
            })
    }

    fn session(&self, id: &str) -> Result<Arc<P::Session>, PluginError> {
        self.sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| PluginError::new(ErrorKind::NoSession, format!("no session '{id}'")))
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `f`, turning both its error and any panic into an [`FfiError`].
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, PluginError>) -> FfiResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(FfiError {
            code: e.kind.code(),
            message: e.message.into(),
        }),
        Err(payload) => RErr(FfiError {
            code: ErrorKind::Panicked.code(),
            message: format!("plugin panicked in {what}: {}", panic_message(&*payload)).into(),
        }),
    }
}

fn parse_json(text: RStr<'_>, what: &str) -> Result<serde_json::Value, PluginError> {
    if text.is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(text.as_str())
        .map_err(|e| PluginError::invalid_params(format!("{what} is not valid JSON: {e}")))
}

extern "C" fn api_version() -> RStr<'static> {
    RStr::from_str(API_VERSION)
}

extern "C" fn info<P: Plugin>() -> FfiResult<RString> {
    guard("info", || {
        serde_json::to_string(&P::info())
            .map(RString::from)
            .map_err(|e| PluginError::internal(e.to_string()))
    })
}

extern "C" fn tools<P: Plugin>() -> FfiResult<RString> {
    guard("tools", || {
        let rt = runtime::<P>()?;
        serde_json::to_string(&rt.infos)
            .map(RString::from)
            .map_err(|e| PluginError::internal(e.to_string()))
    })
}

extern "C" fn warmup<P: Plugin>(config: RStr<'_>) -> FfiResult<()> {
    guard("warmup", || {
        let rt = runtime::<P>()?;
        let config = parse_json(config, "plugin config")?;
        let mut slot = rt.plugin.write().unwrap_or_else(PoisonError::into_inner);
        // Warm once: the plugin is built from its config, and stays.
        if slot.is_none() {
            *slot = Some(Arc::new(P::warmup(&config)?));
        }
        Ok(())
    })
}

extern "C" fn shutdown<P: Plugin>() -> FfiResult<()> {
    guard("shutdown", || {
        let rt = runtime::<P>()?;
        let plugin = rt
            .plugin
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let sessions: Vec<_> = rt
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, s)| s)
            .collect();
        if let Some(plugin) = plugin {
            for s in &sessions {
                let _ = plugin.cleanup(s);
            }
            plugin.shutdown();
        }
        Ok(())
    })
}

extern "C" fn initialize<P: Plugin>(session_id: RStr<'_>, config: RStr<'_>) -> FfiResult<()> {
    guard("initialize", || {
        let rt = runtime::<P>()?;
        let plugin = rt.plugin()?;
        let config = parse_json(config, "session config")?;
        let session = plugin.initialize(session_id.as_str(), &config)?;
        rt.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session_id.as_str().to_string(), Arc::new(session));
        Ok(())
    })
}

extern "C" fn cleanup<P: Plugin>(session_id: RStr<'_>) -> FfiResult<()> {
    guard("cleanup", || {
        let rt = runtime::<P>()?;
        let session = rt
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id.as_str());
        match session {
            Some(s) => rt.plugin()?.cleanup(&s),
            None => Ok(()),
        }
    })
}

extern "C" fn call<P: Plugin>(
    session_id: RStr<'_>,
    tool: RStr<'_>,
    params: RStr<'_>,
    ctx: &FfiCallContext<'_>,
) -> FfiResult<RString> {
    guard("call", || {
        run_call::<P>(session_id, tool, params, ctx, None)
    })
}

extern "C" fn call_streaming<P: Plugin>(
    session_id: RStr<'_>,
    tool: RStr<'_>,
    params: RStr<'_>,
    ctx: &FfiCallContext<'_>,
    sink: &FfiChunkSink,
) -> FfiResult<RString> {
    guard("call", || {
        let emit = |stream: &str, text: &str| {
            (sink.emit)(sink, RStr::from_str(stream), RStr::from_str(text));
        };
        run_call::<P>(session_id, tool, params, ctx, Some(&emit))
    })
}

fn run_call<P: Plugin>(
    session_id: RStr<'_>,
    tool: RStr<'_>,
    params: RStr<'_>,
    ctx: &FfiCallContext<'_>,
    emitter: Option<crate::context::Emit<'_>>,
) -> Result<RString, PluginError> {
    {
        let rt = runtime::<P>()?;
        let entry = rt.tools.get(tool.as_str()).ok_or_else(|| {
            PluginError::new(
                ErrorKind::UnknownTool,
                format!("no tool '{}'", tool.as_str()),
            )
        })?;
        let plugin = rt.plugin()?;
        let session = if session_id.is_empty() {
            None
        } else {
            Some(rt.session(session_id.as_str())?)
        };
        let cx = CallContext {
            session: session.as_deref(),
            session_id: session_id.as_str(),
            worker_id: ctx.worker_id.as_str(),
            cancel: ctx.cancel,
            deadline: UNIX_EPOCH + Duration::from_millis(ctx.deadline_unix_ms),
            emitter,
        };
        (entry.handler)(&plugin, &cx, params.as_str()).map(RString::from)
    }
}

extern "C" fn snapshot<P: Plugin>(
    session_id: RStr<'_>,
    snapshot_id: RStr<'_>,
) -> FfiResult<RString> {
    guard("snapshot", || {
        let rt = runtime::<P>()?;
        let session = rt.session(session_id.as_str())?;
        let report = rt.plugin()?.snapshot(&session, snapshot_id.as_str())?;
        Ok(RString::from(report.to_string()))
    })
}

extern "C" fn restore<P: Plugin>(
    session_id: RStr<'_>,
    snapshot_id: RStr<'_>,
    config: RStr<'_>,
) -> FfiResult<()> {
    guard("restore", || {
        let rt = runtime::<P>()?;
        let plugin = rt.plugin()?;
        let config = parse_json(config, "session config")?;
        let session = plugin.restore(session_id.as_str(), snapshot_id.as_str(), &config)?;
        rt.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session_id.as_str().to_string(), Arc::new(session));
        Ok(())
    })
}

extern "C" fn drop_snapshot<P: Plugin>(snapshot_id: RStr<'_>) -> FfiResult<()> {
    guard("drop_snapshot", || {
        runtime::<P>()?
            .plugin()?
            .drop_snapshot(snapshot_id.as_str())
    })
}

extern "C" fn set_logger<P: Plugin>(sink: crate::ffi::HostLog, max_level: u8) {
    let _ = catch_unwind(|| crate::logging::install(sink, max_level, P::info().name));
}

/// Builds the root module for plugin type `P`. Called by the exported loader.
pub fn root_module<P: Plugin>() -> PluginModRef {
    PluginMod {
        api_version,
        info: info::<P>,
        tools: tools::<P>,
        warmup: warmup::<P>,
        shutdown: shutdown::<P>,
        initialize: initialize::<P>,
        cleanup: cleanup::<P>,
        call: call::<P>,
        set_logger: set_logger::<P>,
        call_streaming: call_streaming::<P>,
        snapshot: snapshot::<P>,
        restore: restore::<P>,
        drop_snapshot: drop_snapshot::<P>,
    }
    .leak_into_prefix()
}

/// Milliseconds since the Unix epoch, as the ABI carries deadlines.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Exports a [`Plugin`](crate::Plugin) type from a `cdylib`: the one line that
/// makes a crate loadable by the host.
///
/// ```ignore
/// plugin_api::export_plugin!(BashPlugin);
/// ```
///
/// It exports the plugin-api version under a plain C symbol (checked by the host
/// before anything else) and the layout-checked root module.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn agentflow_plugin_api_version() -> *const ::std::os::raw::c_char {
            $crate::export::API_VERSION_NUL.as_ptr().cast()
        }

        // The symbol name is the one `abi_stable::library::ROOT_MODULE_LOADER_NAME`
        // gives (checked by a test in plugin-api), spelled out so that plugin crates
        // need no direct dependency on the ABI crate.
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static AGENTFLOW_PLUGIN_ROOT: $crate::export::LibHeader = {
            extern "C" fn load_root_module() -> $crate::export::RootModuleResult {
                fn build() -> $crate::export::RootModuleRef {
                    $crate::export::root_module::<$plugin>()
                }
                $crate::export::__call_root_module_loader(build)
            }
            unsafe {
                $crate::export::LibHeader::from_constructor::<$crate::export::RootModuleRef>(
                    load_root_module,
                    $crate::export::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_macro_uses_the_abi_crates_symbol_name() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
