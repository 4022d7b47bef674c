//! One MCP session: its worker, the tool sessions it opened, and the task
//! that tells its client when the tool list changes. The SDK makes one
//! [`McpSession`] per MCP session and drops it when the session ends (HTTP
//! `DELETE`, idle past the TTL, or the server stopping).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use super::{catalog, identity, progress, results};
use crate::core::error::CoreError;
use crate::core::executor::ExecRequest;
use crate::core::trajectory::Origin;
use crate::core::Core;
use crate::web::RequestId;

pub struct McpSession {
    core: Arc<Core>,
    /// Fixed by the first call (see [`identity::worker_of`]).
    worker: OnceLock<String>,
    /// Resource types this MCP session opened a tool session for.
    opened: Arc<Mutex<BTreeSet<String>>>,
    /// Stops the list-change task when the session ends.
    _stop_watching: DropGuard,
    watching: CancellationToken,
}

impl McpSession {
    pub fn new(core: Arc<Core>) -> Self {
        let watching = CancellationToken::new();
        Self {
            core,
            worker: OnceLock::new(),
            opened: Arc::default(),
            _stop_watching: watching.clone().drop_guard(),
            watching,
        }
    }

    fn worker(&self, parts: Option<&Parts>) -> Result<&str, CoreError> {
        if let Some(w) = self.worker.get() {
            return Ok(w);
        }
        let worker = identity::worker_of(parts)?;
        Ok(self.worker.get_or_init(|| worker))
    }

    /// Runs one call; a per-session plugin gets the worker's session first,
    /// so state persists across calls of this MCP session.
    async fn call(
        &self,
        request: CallToolRequestParams,
        worker: String,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some((backend, tool)) = catalog::resolve(&self.core, &request.name) else {
            return results::failure(CoreError::ToolNotFound(request.name.to_string()));
        };
        let params = Value::Object(request.arguments.unwrap_or_default());
        // Bad params get their message before a sandbox is made for nothing.
        if let Err(e) = backend.check_params(&tool, &params) {
            return results::failure(e);
        }
        if backend.per_session() && self.core.sessions.get(&worker, &backend.name).is_none() {
            if let Err(e) = self
                .core
                .create_session(&worker, &backend.name, &Value::Null, None, false)
                .await
            {
                return results::failure(e);
            }
            self.opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(backend.name.clone());
        }
        let progress = progress::relay(context);
        let (chunks, relaying) = match progress {
            Some((tx, task)) => (Some(tx), Some(task)),
            None => (None, None),
        };
        let report = self
            .core
            .execute(ExecRequest {
                worker_id: worker.clone(),
                action: format!("{}:{tool}", backend.name),
                params,
                timeout: None,
                cancel: Some(context.ct.clone()),
                // Tool sessions live as long as the MCP session that made
                // them, and both live on one host: a client whose host went
                // away is told its MCP session is unknown and starts anew.
                session: None,
                chunks,
                origin: Origin {
                    request_id: context
                        .extensions
                        .get::<Parts>()
                        .and_then(|p| p.extensions.get::<RequestId>())
                        .map(|id| id.0.clone()),
                    trace_id: None,
                    surface: Some("mcp"),
                },
            })
            .await;
        // Every progress notification goes out before the result.
        if let Some(task) = relaying {
            let _ = task.await;
        }
        results::call_result(report.result)
    }
}

impl ServerHandler for McpSession {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("agentflow", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Tools of the plugins loaded in this AgentFlow server, named plugin_tool. \
             Tools of per-session plugins (bash, vm) keep their state for the whole MCP session.",
        )
    }

    /// Versions with an `initialize` handshake only: the tools keep state per
    /// session (a shell's directory, a desktop), which the sessionless
    /// 2026-07-28 protocol has no place for. SDK clients that try it first
    /// fall back to `initialize`.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(
            &ProtocolVersion::LATEST_WITH_INITIALIZE,
        ))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        let (tools, next) = catalog::page(catalog::tools(&self.core), cursor)
            .map_err(|e| ErrorData::invalid_params(format!("Parameter 'cursor': {e}"), None))?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let worker = match self.worker(context.extensions.get::<Parts>()) {
            Ok(w) => w.to_string(),
            Err(e) => return results::failure(e).map(CallToolResponse::from),
        };
        let span = tracing::info_span!(
            "mcp",
            request_id = %context.id,
            worker = %worker,
            tool = %request.name,
        );
        self.call(request, worker, &context)
            .instrument(span)
            .await
            .map(CallToolResponse::from)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        tokio::spawn(tell_list_changes(
            self.core.clone(),
            context.peer,
            self.watching.clone(),
        ));
    }
}

/// Sends `notifications/tools/list_changed` whenever a plugin is loaded,
/// upgraded or refused, until the session ends.
async fn tell_list_changes(core: Arc<Core>, peer: Peer<RoleServer>, stop: CancellationToken) {
    let mut changes = core.registry.subscribe();
    changes.mark_unchanged();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        if peer.notify_tool_list_changed().await.is_err() {
            return;
        }
    }
}

impl Drop for McpSession {
    /// The MCP session ended: so do the tool sessions it opened (their
    /// processes, desktops and disks).
    fn drop(&mut self) {
        let Some(worker) = self.worker.get().cloned() else {
            return;
        };
        let opened =
            std::mem::take(&mut *self.opened.lock().unwrap_or_else(PoisonError::into_inner));
        if opened.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let core = self.core.clone();
        runtime.spawn(async move {
            for rt in opened {
                match core.destroy_session(&worker, &rt).await {
                    Ok(_) => tracing::info!(worker = %worker, resource_type = %rt, "MCP session ended; its session was destroyed"),
                    // Already gone (destroyed over the native API, by the
                    // TTL, or by the server stopping).
                    Err(CoreError::SessionNotFound(_) | CoreError::WorkerNotFound(_)) => {}
                    Err(e) => tracing::warn!(worker = %worker, resource_type = %rt, error = %e, "could not destroy the session of an ended MCP session"),
                }
            }
        });
    }
}
