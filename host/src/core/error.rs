//! The host's errors and the API error codes they carry. Every failure a client
//! can see is a [`CoreError`]; both HTTP surfaces map its [`ErrorCode`].

use plugin_api::{ErrorKind, PluginError};
use serde_json::{json, Value};

/// The native API's error codes (see `docs/api.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ToolNotFound = 1001,
    Parameter = 1002,
    Session = 1003,
    WorkerNotFound = 1004,
    ResourceNotFound = 1005,
    Permission = 1006,
    Backend = 2001,
    Timeout = 2002,
    NotWarmedUp = 2003,
    Unavailable = 2004,
    Internal = 5000,
    // 5001 (configuration error) never reaches a client: a bad config stops
    // the server at startup with a message naming the key.
    ShuttingDown = 5002,
}

impl ErrorCode {
    pub fn as_u32(self) -> u32 {
        self as u32
    }
}

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
    #[error("Worker not found: {0}")]
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
    #[error("Internal error: {0}")]
    Internal(String),
    #[error("Service unavailable: the server is shutting down")]
    ShuttingDown,
}

impl CoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ToolNotFound(_) | Self::AmbiguousTool { .. } => ErrorCode::ToolNotFound,
            Self::InvalidParams(_) | Self::BodyTooLarge { .. } => ErrorCode::Parameter,
            Self::SessionNotFound(_) | Self::SessionBroken(_) => ErrorCode::Session,
            Self::WorkerNotFound(_) => ErrorCode::WorkerNotFound,
            Self::ResourceNotFound(_) => ErrorCode::ResourceNotFound,
            Self::Unauthorized(_) => ErrorCode::Permission,
            Self::Backend(_) => ErrorCode::Backend,
            Self::Timeout { .. } | Self::PluginTimeout(_) | Self::Cancelled => ErrorCode::Timeout,
            Self::NotWarmedUp(_) => ErrorCode::NotWarmedUp,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }

    /// The Python-style exception name clients see as `meta.error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::ToolNotFound(_) | Self::AmbiguousTool { .. } => "ToolNotFoundError",
            Self::InvalidParams(_) | Self::BodyTooLarge { .. } => "ParameterError",
            Self::SessionNotFound(_) | Self::SessionBroken(_) => "SessionError",
            Self::WorkerNotFound(_) => "WorkerNotFoundError",
            Self::ResourceNotFound(_) => "ResourceNotFoundError",
            Self::Unauthorized(_) => "PermissionError",
            Self::Backend(_) => "BackendError",
            Self::Timeout { .. } | Self::PluginTimeout(_) => "TimeoutError",
            Self::Cancelled => "CancelledError",
            Self::NotWarmedUp(_) => "WarmupError",
            Self::Unavailable(_) => "ResourceUnavailableError",
            Self::Internal(_) => "InternalError",
            Self::ShuttingDown => "ServiceUnavailableError",
        }
    }

    /// Extra structured data for the error response, if any.
    pub fn data(&self) -> Value {
        match self {
            Self::AmbiguousTool { candidates, .. } => json!({ "candidates": candidates }),
            Self::ToolNotFound(action) => json!({ "action": action }),
            Self::Timeout { seconds } => json!({ "timeout": seconds }),
            _ => Value::Null,
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
            ErrorKind::Internal | ErrorKind::Panicked => Self::Backend(format!("{plugin}: {msg}")),
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
