//! The one place where a core error becomes the native API's wire form: its
//! code (`docs/api.md`), HTTP status, `meta.error_type` and `data`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::core::error::CoreError;

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

/// The code of an error.
pub fn code(err: &CoreError) -> ErrorCode {
    use CoreError as E;
    match err {
        E::ToolNotFound(_) | E::AmbiguousTool { .. } => ErrorCode::ToolNotFound,
        E::InvalidParams(_) | E::BodyTooLarge { .. } | E::Unsupported(_) => ErrorCode::Parameter,
        E::SessionNotFound(_) | E::SessionBroken(_) | E::SessionNotHere { .. } => {
            ErrorCode::Session
        }
        E::WorkerNotFound(_) => ErrorCode::WorkerNotFound,
        E::ResourceNotFound(_) => ErrorCode::ResourceNotFound,
        E::Unauthorized(_) => ErrorCode::Permission,
        E::Backend(_) => ErrorCode::Backend,
        E::Timeout { .. } | E::PluginTimeout(_) | E::Cancelled => ErrorCode::Timeout,
        E::NotWarmedUp(_) => ErrorCode::NotWarmedUp,
        E::Unavailable(_) => ErrorCode::Unavailable,
        E::Internal(_) => ErrorCode::Internal,
        E::ShuttingDown => ErrorCode::ShuttingDown,
    }
}

/// The Python-style exception name clients see as `meta.error_type`.
pub fn error_type(err: &CoreError) -> &'static str {
    use CoreError as E;
    match err {
        E::ToolNotFound(_) | E::AmbiguousTool { .. } => "ToolNotFoundError",
        E::InvalidParams(_) | E::BodyTooLarge { .. } => "ParameterError",
        E::Unsupported(_) => "NotSupportedError",
        E::SessionNotFound(_) | E::SessionBroken(_) | E::SessionNotHere { .. } => "SessionError",
        E::WorkerNotFound(_) => "WorkerNotFoundError",
        E::ResourceNotFound(_) => "ResourceNotFoundError",
        E::Unauthorized(_) => "PermissionError",
        E::Backend(_) => "BackendError",
        E::Timeout { .. } | E::PluginTimeout(_) => "TimeoutError",
        E::Cancelled => "CancelledError",
        E::NotWarmedUp(_) => "WarmupError",
        E::Unavailable(_) => "ResourceUnavailableError",
        E::Internal(_) => "InternalError",
        E::ShuttingDown => "ServiceUnavailableError",
    }
}

/// Extra structured data for the error response, if any.
pub fn data(err: &CoreError) -> Value {
    use CoreError as E;
    match err {
        E::AmbiguousTool { candidates, .. } => json!({ "candidates": candidates }),
        E::ToolNotFound(action) => json!({ "action": action }),
        E::Timeout { seconds } => json!({ "timeout": seconds }),
        E::SessionNotHere { session, .. } => {
            json!({ "session_id": session, "retry": "create_session" })
        }
        _ => Value::Null,
    }
}

/// The HTTP status of an error.
pub fn status_for(err: &CoreError) -> StatusCode {
    match err {
        CoreError::ToolNotFound(_) | CoreError::AmbiguousTool { .. } => StatusCode::NOT_FOUND,
        CoreError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::InvalidParams(_) => StatusCode::BAD_REQUEST,
        CoreError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        CoreError::SessionNotFound(_) | CoreError::SessionNotHere { .. } => StatusCode::NOT_FOUND,
        CoreError::SessionBroken(_) => StatusCode::CONFLICT,
        CoreError::WorkerNotFound(_) | CoreError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
        CoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        CoreError::Backend(_) => StatusCode::BAD_GATEWAY,
        CoreError::Timeout { .. } | CoreError::PluginTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        // Only MCP clients cancel; a native client that went away hears nothing.
        CoreError::Cancelled => StatusCode::GATEWAY_TIMEOUT,
        CoreError::NotWarmedUp(_) | CoreError::Unavailable(_) | CoreError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in `docs/api.md`: code, status and error type per error.
    #[test]
    fn each_error_has_its_documented_code_status_and_type() {
        let cases = [
            (
                CoreError::ToolNotFound("x".into()),
                1001,
                404,
                "ToolNotFoundError",
            ),
            (
                CoreError::InvalidParams("x".into()),
                1002,
                400,
                "ParameterError",
            ),
            (
                CoreError::BodyTooLarge { limit: 1 },
                1002,
                413,
                "ParameterError",
            ),
            (
                CoreError::SessionNotFound("x".into()),
                1003,
                404,
                "SessionError",
            ),
            (
                CoreError::SessionNotHere {
                    session: "s".into(),
                    worker: "w".into(),
                },
                1003,
                404,
                "SessionError",
            ),
            (
                CoreError::SessionBroken("x".into()),
                1003,
                409,
                "SessionError",
            ),
            (
                CoreError::WorkerNotFound("x".into()),
                1004,
                404,
                "WorkerNotFoundError",
            ),
            (
                CoreError::ResourceNotFound("x".into()),
                1005,
                404,
                "ResourceNotFoundError",
            ),
            (
                CoreError::Unauthorized("x".into()),
                1006,
                401,
                "PermissionError",
            ),
            (CoreError::Backend("x".into()), 2001, 502, "BackendError"),
            (
                CoreError::Unsupported("x".into()),
                1002,
                501,
                "NotSupportedError",
            ),
            (
                CoreError::Timeout { seconds: 1.0 },
                2002,
                504,
                "TimeoutError",
            ),
            (CoreError::Cancelled, 2002, 504, "CancelledError"),
            (CoreError::NotWarmedUp("x".into()), 2003, 503, "WarmupError"),
            (
                CoreError::Unavailable("x".into()),
                2004,
                503,
                "ResourceUnavailableError",
            ),
            (CoreError::Internal("x".into()), 5000, 500, "InternalError"),
            (
                CoreError::ShuttingDown,
                5002,
                503,
                "ServiceUnavailableError",
            ),
        ];
        for (err, want_code, want_status, want_type) in cases {
            assert_eq!(code(&err).as_u32(), want_code, "{err:?}");
            assert_eq!(status_for(&err).as_u16(), want_status, "{err:?}");
            assert_eq!(error_type(&err), want_type, "{err:?}");
        }
    }

    #[test]
    fn data_carries_the_tool_candidates_and_timeout() {
        let e = CoreError::AmbiguousTool {
            name: "run".into(),
            candidates: vec!["a:run".into(), "b:run".into()],
        };
        assert_eq!(data(&e)["candidates"][1], "b:run");
        assert_eq!(data(&CoreError::Timeout { seconds: 2.5 })["timeout"], 2.5);
        assert!(data(&CoreError::Backend("x".into())).is_null());
    }
}
