//! Drives a plugin in-process the way the host does, for a plugin's own
//! tests (feature `testkit`, as a dev-dependency): warmup from a config,
//! sessions from configs, calls whose params are checked against the tool's
//! JSON Schema first (as the host checks them), with a deadline and a cancel
//! flag, and cleanup and shutdown when the kit is dropped.
//!
//! ```ignore
//! let kit = Kit::<MyPlugin>::warm(json!({"root": dir}))?;
//! let s = kit.session(json!({}))?;
//! let out = kit.call(&s, "run", json!({"command": "echo hi"}))?;
//! let err = kit.call(&s, "run", json!({"command": 5})).unwrap_err(); // InvalidParams, naming `command`
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::{CallContext, ErrorKind, Plugin, PluginError, Tools};

/// The default time a call may take, as the host's default timeout.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// A warmed-up plugin, driven as the host drives it.
pub struct Kit<P: Plugin> {
    plugin: Option<P>,
    tools: Tools<P>,
    schemas: HashMap<String, jsonschema::Validator>,
    next_session: AtomicU32,
}

/// A session the kit created; cleaned up when dropped (or by [`Kit::end`]).
pub struct Session<'k, P: Plugin> {
    kit: &'k Kit<P>,
    id: String,
    state: Option<P::Session>,
}

impl<P: Plugin> Session<'_, P> {
    /// The session id the plugin was given.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plugin's state of this session.
    pub fn state(&self) -> Option<&P::Session> {
        self.state.as_ref()
    }
}

impl<P: Plugin> Drop for Session<'_, P> {
    fn drop(&mut self) {
        if let (Some(state), Some(plugin)) = (self.state.take(), self.kit.plugin.as_ref()) {
            let _ = plugin.cleanup(&state);
        }
    }
}

impl<P: Plugin> Kit<P> {
    /// Warms the plugin up with `config`, as the host does with the plugin's
    /// `[plugins.<name>.config]` table; compiles every tool's schema.
    pub fn warm(config: Value) -> Result<Self, PluginError> {
        let tools = P::tools();
        let mut schemas = HashMap::new();
        for info in tools.infos() {
            let validator = jsonschema::validator_for(&info.parameters).map_err(|e| {
                PluginError::internal(format!("tool '{}' has an invalid schema: {e}", info.name))
            })?;
            schemas.insert(info.name.clone(), validator);
        }
        let plugin = P::warmup(&config)?;
        Ok(Self {
            plugin: Some(plugin),
            tools,
            schemas,
            next_session: AtomicU32::new(1),
        })
    }

    /// The plugin itself.
    pub fn plugin(&self) -> &P {
        // Only `Drop` takes it.
        self.plugin.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Shuts the plugin down and drops it, as the host does when it stops
    /// (dropping the kit does the same).
    pub fn shutdown(self) {}

    /// A new session with `config` (the plugin's session defaults and the
    /// client's config already merged, as the host passes it).
    pub fn session(&self, config: Value) -> Result<Session<'_, P>, PluginError> {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}_kit_{n:03}", P::info().name);
        let state = self.plugin().initialize(&id, &config)?;
        Ok(Session {
            kit: self,
            id,
            state: Some(state),
        })
    }

    /// Freezes `session` as snapshot `snapshot_id` (as `/session/snapshot`).
    pub fn snapshot(
        &self,
        session: &Session<'_, P>,
        snapshot_id: &str,
    ) -> Result<Value, PluginError> {
        let state = session
            .state
            .as_ref()
            .ok_or_else(|| PluginError::new(ErrorKind::NoSession, "the session has ended"))?;
        self.plugin().snapshot(state, snapshot_id)
    }

    /// A new session started from snapshot `snapshot_id` (as `/session/create`
    /// with `from_snapshot`).
    pub fn restore(&self, snapshot_id: &str, config: Value) -> Result<Session<'_, P>, PluginError> {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}_kit_{n:03}", P::info().name);
        let state = self.plugin().restore(&id, snapshot_id, &config)?;
        Ok(Session {
            kit: self,
            id,
            state: Some(state),
        })
    }

    /// Ends a session now, returning what the plugin's cleanup said.
    pub fn end(&self, mut session: Session<'_, P>) -> Result<(), PluginError> {
        match session.state.take() {
            Some(state) => self.plugin().cleanup(&state),
            None => Ok(()),
        }
    }

    /// Calls `tool` in `session` with the default deadline.
    pub fn call(
        &self,
        session: &Session<'_, P>,
        tool: &str,
        params: Value,
    ) -> Result<Value, PluginError> {
        let state = session.state.as_ref().map(|s| (session.id.as_str(), s));
        self.call_with(state, tool, params, DEFAULT_DEADLINE, None)
    }

    /// Calls a tool of a shared plugin (no session).
    pub fn call_shared(&self, tool: &str, params: Value) -> Result<Value, PluginError> {
        self.call_with(None, tool, params, DEFAULT_DEADLINE, None)
    }

    /// Calls `tool` in a session (its id and state, for sessions a test
    /// made itself) with a deadline `within` from now; when `cancel_after` is
    /// given, the call's cancel flag is set that long after it starts, as the
    /// host sets it when a client cancels.
    pub fn call_with(
        &self,
        session: Option<(&str, &P::Session)>,
        tool: &str,
        params: Value,
        within: Duration,
        cancel_after: Option<Duration>,
    ) -> Result<Value, PluginError> {
        self.call_inner(session, tool, params, within, cancel_after, None)
    }

    /// Calls `tool` as a streaming call (`/execute/stream`): `on_chunk`
    /// receives each `(stream, text)` the tool emits, as it emits it.
    pub fn call_streaming(
        &self,
        session: &Session<'_, P>,
        tool: &str,
        params: Value,
        on_chunk: &dyn Fn(&str, &str),
    ) -> Result<Value, PluginError> {
        let state = session.state.as_ref().map(|s| (session.id.as_str(), s));
        self.call_inner(state, tool, params, DEFAULT_DEADLINE, None, Some(on_chunk))
    }

    fn call_inner(
        &self,
        session: Option<(&str, &P::Session)>,
        tool: &str,
        params: Value,
        within: Duration,
        cancel_after: Option<Duration>,
        on_chunk: Option<crate::context::Emit<'_>>,
    ) -> Result<Value, PluginError> {
        let schema = self
            .schemas
            .get(tool)
            .ok_or_else(|| PluginError::new(ErrorKind::UnknownTool, format!("no tool '{tool}'")))?;
        let params = match params {
            Value::Null => Value::Object(Default::default()),
            p => p,
        };
        if let Some(error) = schema.iter_errors(&params).next() {
            let at = error.instance_path().to_string();
            let field = at.trim_start_matches('/');
            return Err(PluginError::invalid_params(if field.is_empty() {
                format!("params: {error}")
            } else {
                format!("Parameter '{field}': {error}")
            }));
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let timer = cancel_after.map(|after| {
            let flag = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(after);
                flag.store(true, Ordering::SeqCst);
            })
        });
        let (id, state) = match session {
            Some((id, state)) => (id, Some(state)),
            None => ("", None),
        };
        let mut cx = CallContext::new(state, id, "kit-worker", &cancel, SystemTime::now() + within);
        if let Some(f) = on_chunk {
            cx = cx.with_emitter(f);
        }
        let result = self.tools.call(self.plugin(), &cx, tool, params);
        drop(timer);
        result
    }
}

/// The kit stands for its plugin: its own methods (`initialize`, `cleanup`,
/// helpers of the plugin type) are reachable through it.
impl<P: Plugin> std::ops::Deref for Kit<P> {
    type Target = P;
    fn deref(&self) -> &P {
        self.plugin()
    }
}

impl<P: Plugin> Drop for Kit<P> {
    fn drop(&mut self) {
        if let Some(plugin) = self.plugin.take() {
            plugin.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::{PluginInfo, SessionModel};

    static CLEANED: AtomicUsize = AtomicUsize::new(0);

    #[derive(Deserialize, JsonSchema)]
    struct Say {
        text: String,
    }

    struct Parrot {
        prefix: String,
    }

    impl Plugin for Parrot {
        type Session = String;
        fn info() -> PluginInfo {
            PluginInfo::new("parrot", "1.0.0", "repeats", SessionModel::PerWorker)
        }
        fn tools() -> Tools<Self> {
            Tools::new()
                .tool(
                    "say",
                    "Repeat",
                    |p: &Parrot, cx: &CallContext<'_, String>, a: Say| {
                        Ok(json!({"text": format!("{}{}{}", p.prefix, cx.session()?, a.text)}))
                    },
                )
                .tool(
                    "wait",
                    "Wait for the cancel flag",
                    |_: &Parrot, cx: &CallContext<'_, String>, _: crate::NoParams| {
                        while cx.check().is_ok() {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        cx.check().map(|()| json!({}))
                    },
                )
        }
        fn warmup(config: &Value) -> Result<Self, PluginError> {
            let prefix = config["prefix"].as_str().unwrap_or_default().to_string();
            Ok(Parrot { prefix })
        }
        fn initialize(&self, _id: &str, config: &Value) -> Result<String, PluginError> {
            Ok(config["name"].as_str().unwrap_or("?").to_string())
        }
        fn cleanup(&self, _session: &String) -> Result<(), PluginError> {
            CLEANED.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_call_goes_through_warmup_session_and_schema_like_the_hosts() {
        let kit = Kit::<Parrot>::warm(json!({"prefix": ">"})).unwrap();
        let before = CLEANED.load(Ordering::SeqCst);
        {
            let s = kit.session(json!({"name": "polly:"})).unwrap();
            let out = kit.call(&s, "say", json!({"text": "hi"})).unwrap();
            assert_eq!(out["text"], ">polly:hi");
            let e = kit.call(&s, "say", json!({"text": 5})).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParams);
            assert!(e.message.contains("'text'"), "{}", e.message);
            let e = kit.call(&s, "nope", json!({})).unwrap_err();
            assert_eq!(e.kind, ErrorKind::UnknownTool);
        }
        assert_eq!(
            CLEANED.load(Ordering::SeqCst),
            before + 1,
            "a dropped session is cleaned up"
        );
    }

    #[test]
    fn cancel_after_sets_the_calls_flag() {
        let kit = Kit::<Parrot>::warm(json!({})).unwrap();
        let s = kit.session(json!({})).unwrap();
        let state = s.state().map(|st| (s.id(), st));
        let e = kit
            .call_with(
                state,
                "wait",
                json!({}),
                Duration::from_secs(30),
                Some(Duration::from_millis(20)),
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Cancelled, "{e:?}");
    }
}
