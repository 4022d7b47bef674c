use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CallContext, Plugin, PluginError};

/// A tool as the host sees it: the part of a tool that crosses the ABI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The action name, without the plugin prefix (`run` for `bash:run`).
    pub name: String,
    /// What the tool does, for agents choosing a tool.
    pub description: String,
    /// Hidden tools are left out of tool listings by default but can be called.
    pub hidden: bool,
    /// JSON Schema of the params object.
    pub parameters: Value,
    /// The tool promises to return at once without blocking (see
    /// [`Tools::non_blocking`]). Absent in JSON from older plugins: `false`.
    #[serde(default)]
    pub non_blocking: bool,
    /// The tool only looks: it changes nothing in its session or elsewhere
    /// (see [`Tools::read_only`]). Shown to MCP clients as `readOnlyHint`.
    #[serde(default)]
    pub read_only: bool,
    /// The tool may change or delete things beyond adding to them (see
    /// [`Tools::destructive`]). Shown to MCP clients as `destructiveHint`.
    #[serde(default)]
    pub destructive: bool,
}

/// Params of a tool that takes none.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
pub struct NoParams {}

/// Takes the params as JSON text and returns the result as JSON text: typed
/// values are read from and written to text directly, without an interim
/// `Value` tree (a screenshot's result is megabytes of base64).
type Handler<P> = Box<
    dyn Fn(&P, &CallContext<'_, <P as Plugin>::Session>, &str) -> Result<String, PluginError>
        + Send
        + Sync,
>;

pub(crate) struct ToolEntry<P: Plugin> {
    pub(crate) info: ToolInfo,
    pub(crate) handler: Handler<P>,
}

/// The tools of a plugin: each a name, a description and a typed handler whose
/// params type gives the tool its JSON Schema.
pub struct Tools<P: Plugin> {
    pub(crate) entries: Vec<ToolEntry<P>>,
}

impl<P: Plugin> Default for Tools<P> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<P: Plugin> Tools<P> {
    /// No tools yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a visible tool. `A` is the params type: its `JsonSchema` is the
    /// tool's schema and the host validates params against it before the call;
    /// `R` is serialized to JSON as the call's result.
    pub fn tool<A, R, F>(self, name: &str, description: &str, handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&P, &CallContext<'_, P::Session>, A) -> Result<R, PluginError>
            + Send
            + Sync
            + 'static,
    {
        self.add(name, description, false, handler)
    }

    /// Adds a tool that is left out of tool listings unless asked for, but can be called.
    pub fn hidden_tool<A, R, F>(self, name: &str, description: &str, handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&P, &CallContext<'_, P::Session>, A) -> Result<R, PluginError>
            + Send
            + Sync
            + 'static,
    {
        self.add(name, description, true, handler)
    }

    fn add<A, R, F>(mut self, name: &str, description: &str, hidden: bool, handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(&P, &CallContext<'_, P::Session>, A) -> Result<R, PluginError>
            + Send
            + Sync
            + 'static,
    {
        let parameters = serde_json::to_value(schemars::schema_for!(A))
            .unwrap_or_else(|_| serde_json::json!({"type": "object"}));
        let handler: Handler<P> = Box::new(move |plugin, cx, params| {
            let params: A = serde_json::from_str(if params.is_empty() { "{}" } else { params })
                .map_err(|e| PluginError::invalid_params(format!("invalid params: {e}")))?;
            let result = handler(plugin, cx, params)?;
            serde_json::to_string(&result)
                .map_err(|e| PluginError::internal(format!("result is not JSON: {e}")))
        });
        self.entries.push(ToolEntry {
            info: ToolInfo {
                name: name.to_string(),
                description: description.to_string(),
                hidden,
                parameters,
                non_blocking: false,
                read_only: false,
                destructive: false,
            },
            handler,
        });
        self
    }

    /// Marks the tool added last as non-blocking: it answers in microseconds
    /// from memory — no I/O, no sleeping, no waiting on locks that slow work
    /// holds. The host may then run it directly on its async threads, saving
    /// the hand-off to a call thread (most of the host's own cost per call).
    /// Leave it off when in doubt: a non-blocking tool cannot be interrupted
    /// at its deadline, and one the host finds slow is moved back to call
    /// threads with a warning in the log.
    pub fn non_blocking(mut self) -> Self {
        if let Some(last) = self.entries.last_mut() {
            last.info.non_blocking = true;
        }
        self
    }

    /// Marks the tool added last as read-only: it observes (a search, a
    /// screenshot, reading a file) and changes nothing. Clients may call it
    /// without asking their user.
    pub fn read_only(mut self) -> Self {
        if let Some(last) = self.entries.last_mut() {
            last.info.read_only = true;
        }
        self
    }

    /// Marks the tool added last as destructive: it may overwrite or delete
    /// (running a shell command can do anything). Clients may ask their user
    /// before calling it.
    pub fn destructive(mut self) -> Self {
        if let Some(last) = self.entries.last_mut() {
            last.info.destructive = true;
        }
        self
    }

    /// The tools' descriptions, in the order they were added.
    pub fn infos(&self) -> Vec<ToolInfo> {
        self.entries.iter().map(|e| e.info.clone()).collect()
    }
}

impl<P: Plugin> Tools<P> {
    /// Runs tool `name` in-process with JSON params, as the host would through
    /// the ABI (for plugin unit tests).
    pub fn call(
        &self,
        plugin: &P,
        cx: &CallContext<'_, P::Session>,
        name: &str,
        params: Value,
    ) -> Result<Value, PluginError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.info.name == name)
            .ok_or_else(|| {
                PluginError::new(crate::ErrorKind::UnknownTool, format!("no tool '{name}'"))
            })?;
        let text = (entry.handler)(plugin, cx, &params.to_string())?;
        serde_json::from_str(&text)
            .map_err(|e| PluginError::internal(format!("result is not JSON: {e}")))
    }
}
