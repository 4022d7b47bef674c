use std::fmt;

/// What kind of failure a plugin reports; the host maps each kind to an API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorKind {
    /// The params were well-formed JSON but not acceptable (a bad value, a path outside the workspace).
    InvalidParams = 1,
    /// The plugin has no tool of that name.
    UnknownTool = 2,
    /// The call noticed its cancellation flag and stopped.
    Cancelled = 3,
    /// The call ran past its deadline.
    Timeout = 4,
    /// The plugin has not been warmed up, or its warmup failed.
    NotWarmedUp = 5,
    /// A resource the plugin needs is missing or exhausted (a program not installed, a limit reached).
    Unavailable = 6,
    /// Any other failure of the plugin.
    Internal = 7,
    /// The plugin panicked; the panic was caught at the ABI boundary.
    Panicked = 8,
    /// The session exists but can no longer be used (its process died); destroy and recreate it.
    SessionBroken = 9,
    /// The plugin has no session with that id.
    NoSession = 10,
    /// The plugin does not do what was asked (a snapshot of a plugin without
    /// the `snapshots` capability).
    Unsupported = 11,
}

impl ErrorKind {
    /// Converts the numeric code that crossed the ABI back; unknown codes become `Internal`.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::InvalidParams,
            2 => Self::UnknownTool,
            3 => Self::Cancelled,
            4 => Self::Timeout,
            5 => Self::NotWarmedUp,
            6 => Self::Unavailable,
            8 => Self::Panicked,
            9 => Self::SessionBroken,
            10 => Self::NoSession,
            11 => Self::Unsupported,
            _ => Self::Internal,
        }
    }

    /// The numeric code that crosses the ABI.
    pub fn code(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An error a plugin returns from any entry point: a kind and a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// A message naming what went wrong, in words a user can act on.
    pub message: String,
}

impl PluginError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// Params the plugin cannot accept; name the parameter and the problem.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }
    /// A resource the plugin needs is missing or exhausted.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// The plugin does not do what was asked.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Any other failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// The call ran past its deadline.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    /// The call was cancelled by the host.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }
    /// The session can no longer be used.
    pub fn session_broken(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::SessionBroken, message)
    }
    /// The plugin is not warmed up.
    pub fn not_warmed_up(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotWarmedUp, message)
    }
}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> Self {
        Self::internal(e.to_string())
    }
}
