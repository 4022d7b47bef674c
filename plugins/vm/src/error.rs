//! The plugin's internal error type and its mapping onto the API's error kinds.

use plugin_api::PluginError;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};

/// What went wrong inside the vm plugin; converted to a [`PluginError`] at the tool boundary.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A parameter or config value the plugin cannot accept (the message names it).
    #[error("{0}")]
    InvalidParams(String),
    /// A program the plugin needs is missing (the message names the package).
    #[error("{0}")]
    Unavailable(String),
    /// The session's X server is gone or not answering; the session must be recreated.
    #[error("{0}")]
    Broken(String),
    /// Any other failure.
    #[error("{0}")]
    Internal(String),
    /// The call was cancelled or ran past its deadline (already a host error).
    #[error("{0}")]
    Stopped(PluginError),
}

impl VmError {
    /// An invalid-params error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidParams(msg.into())
    }
}

impl From<VmError> for PluginError {
    fn from(e: VmError) -> Self {
        match e {
            VmError::InvalidParams(m) => PluginError::invalid_params(m),
            VmError::Unavailable(m) => PluginError::unavailable(m),
            VmError::Broken(m) => PluginError::session_broken(m),
            VmError::Internal(m) => PluginError::internal(m),
            VmError::Stopped(e) => e,
        }
    }
}

impl From<PluginError> for VmError {
    fn from(e: PluginError) -> Self {
        Self::Stopped(e)
    }
}

impl From<ConnectionError> for VmError {
    fn from(e: ConnectionError) -> Self {
        // Every connection error (EOF, reset, our poll timeout) means the X
        // server can no longer be trusted to answer: the session is broken.
        match e {
            ConnectionError::IoError(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                Self::Broken("the X server did not answer in time".into())
            }
            other => Self::Broken(format!("the connection to the X server was lost: {other}")),
        }
    }
}

impl From<ReplyError> for VmError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::ConnectionError(c) => c.into(),
            ReplyError::X11Error(x) => Self::Internal(format!(
                "the X request {} failed with {:?} (value {})",
                x.request_name.unwrap_or("(unknown)"),
                x.error_kind,
                x.bad_value
            )),
        }
    }
}

impl From<ReplyOrIdError> for VmError {
    fn from(e: ReplyOrIdError) -> Self {
        match e {
            ReplyOrIdError::ConnectionError(c) => c.into(),
            ReplyOrIdError::X11Error(x) => ReplyError::X11Error(x).into(),
            ReplyOrIdError::IdsExhausted => {
                Self::Internal("the X connection ran out of resource ids".into())
            }
        }
    }
}

/// Result type of the plugin's internals.
pub type VmResult<T> = Result<T, VmError>;
