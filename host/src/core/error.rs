//! The host's errors. Every failure a client can see is a [`CoreError`]: what
//! went wrong and about what (tool, field, plugin), never a wire code. Each
//! surface maps it to its own format in one place (`native/codes.rs`,
//! `compat/codes.rs`, `mcp/results.rs`).

use plugin_api::{ErrorKind, PluginError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    #[error("Tool not found: {0}")]
    ToolNotFound(String),
    #[error("Ambiguous tool name '{name}'. Multiple matches: {candidates:?}. Please use full name with prefix.")]
    AmbiguousTool {
        name: String,
        candidates: Vec<String>,
    },
    #[error("{0}")]
    InvalidParams(String),
    #[error("Request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    SessionNotFound(String),
    #[error("Session broken: {0}")]
    SessionBroken(String),
    /// The call named a session this host does not hold: the host that had
    /// it went away, or a balancer moved the worker here.
    #[error("Session '{session}' is not on this host (worker '{worker}'): its host went away or the worker was moved to another host; create the session again")]
    SessionNotHere { session: String, worker: String },
    #[error("Worker not found on this host: {0} has no sessions here")]
    WorkerNotFound(String),
    #[error("Resource type not found: {0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Backend(String),
    #[error("Tool execution timed out after {seconds}s")]
    Timeout { seconds: f64 },
    /// The plugin itself stopped the work at its own time limit.
    #[error("{0}")]
    PluginTimeout(String),
    /// The client cancelled the call (MCP `notifications/cancelled`).
    #[error("Cancelled by the client")]
    Cancelled,
    #[error("{0}")]
    NotWarmedUp(String),
    #[error("{0}")]
    Unavailable(String),
    /// The plugin does not do what was asked (snapshots of a plugin without them).
    #[error("{0}")]
    Unsupported(String),
    #[error("Internal error: {0}")]
    Internal(String),
    #[error("Service unavailable: the server is shutting down")]
    ShuttingDown,
}

impl CoreError {
    /// A stable name of what went wrong, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ToolNotFound(_) => "tool_not_found",
            Self::AmbiguousTool { .. } => "ambiguous_tool",
            Self::InvalidParams(_) => "invalid_params",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::SessionNotFound(_) => "session_not_found",
            Self::SessionBroken(_) => "session_broken",
            Self::SessionNotHere { .. } => "session_not_here",
            Self::WorkerNotFound(_) => "worker_not_found",
            Self::ResourceNotFound(_) => "resource_not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::Backend(_) => "backend",
            Self::Timeout { .. } => "timeout",
            Self::PluginTimeout(_) => "plugin_timeout",
            Self::Cancelled => "cancelled",
            Self::NotWarmedUp(_) => "not_warmed_up",
            Self::Unavailable(_) => "unavailable",
            Self::Unsupported(_) => "unsupported",
            Self::Internal(_) => "internal",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// Wraps a plugin's error, naming the plugin where the message does not.
    pub fn from_plugin(plugin: &str, e: PluginError) -> Self {
        let msg = e.message;
        match e.kind {
            ErrorKind::InvalidParams => Self::InvalidParams(msg),
            ErrorKind::UnknownTool => Self::ToolNotFound(format!("{plugin}: {msg}")),
            ErrorKind::Cancelled | ErrorKind::Timeout => {
                Self::PluginTimeout(format!("{plugin}: {msg}"))
            }
            ErrorKind::NotWarmedUp => Self::NotWarmedUp(format!("{plugin}: {msg}")),
            ErrorKind::Unavailable => Self::Unavailable(format!("{plugin}: {msg}")),
            ErrorKind::SessionBroken => Self::SessionBroken(format!("{plugin}: {msg}")),
            ErrorKind::NoSession => Self::SessionNotFound(format!("{plugin}: {msg}")),
            ErrorKind::Unsupported => Self::Unsupported(msg),
            ErrorKind::Internal | ErrorKind::Panicked => Self::Backend(format!("{plugin}: {msg}")),
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
