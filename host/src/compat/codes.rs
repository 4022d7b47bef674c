//! The one place where a core error becomes a compatibility-surface code,
//! HTTP status, message and `data` (docs/compat.md, "Codes").

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::core::error::CoreError;

/// The `/api/v1/` codes this host answers with (a subset of docs/compat.md's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success = 0,
    InvalidInput = 4000,
    /// Tool not found, ambiguous name, missing fields, config file not found.
    InvalidRequest = 4002,
    InvalidParamType = 4004,
    /// No session, or session initialization failed.
    NotInitialized = 4007,
    /// A tool failure.
    Unexpected = 5005,
    Timeout = 5006,
    AllFailed = 5009,
    PartialFailure = 5010,
    BackendNotInitialized = 5011,
    Dependency = 5012,
    Internal = 5013,
}

impl Code {
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The status docs/compat.md gives a code: 200 for 0, 400 for 4000–4999,
    /// 500 otherwise. Endpoints override it where the table says so.
    pub fn status(self) -> StatusCode {
        match self.as_u32() {
            0 => StatusCode::OK,
            4000..=4999 => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A core error as this surface reports it.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    pub data: Value,
}

impl Mapped {
    /// An error this surface raises itself (not from the core).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            data: Value::Null,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
}

/// Maps a core error. Conditions the Python server never had (a bearer
/// token, the body size limit, shutting down) keep their natural HTTP status
/// (401, 413, 503) with the nearest compat code.
pub fn map(err: &CoreError) -> Mapped {
    let mapped = |code: Code| Mapped::new(code, err.to_string());
    match err {
        CoreError::ToolNotFound(action) => mapped(Code::InvalidRequest).with_data(json!({ "action": action })),
        CoreError::AmbiguousTool { name, candidates } => Mapped::new(
            Code::InvalidRequest,
            format!(
                "Ambiguous tool name '{name}'. Multiple matches: {}. Please use full name with prefix.",
                python_list(candidates)
            ),
        )
        .with_data(json!({ "action": name, "candidates": candidates })),
        CoreError::InvalidParams(_) => mapped(Code::InvalidParamType),
        CoreError::ResourceNotFound(_) | CoreError::Unsupported(_) => mapped(Code::InvalidRequest),
        CoreError::BodyTooLarge { .. } => {
            mapped(Code::InvalidInput).with_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        CoreError::Unauthorized(_) => mapped(Code::InvalidInput).with_status(StatusCode::UNAUTHORIZED),
        CoreError::SessionNotFound(_)
        | CoreError::SessionNotHere { .. }
        | CoreError::WorkerNotFound(_) => mapped(Code::NotInitialized),
        CoreError::SessionBroken(_) | CoreError::Backend(_) => mapped(Code::Unexpected),
        CoreError::Timeout { seconds } => {
            mapped(Code::Timeout).with_data(json!({ "timeout": whole_if_integral(*seconds) }))
        }
        CoreError::PluginTimeout(_) | CoreError::Cancelled => mapped(Code::Timeout),
        CoreError::NotWarmedUp(_) => mapped(Code::BackendNotInitialized),
        CoreError::Unavailable(_) => mapped(Code::Dependency),
        CoreError::Internal(_) => mapped(Code::Internal),
        CoreError::ShuttingDown => {
            mapped(Code::Internal).with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// `['a:x', 'b:x']`, as the Python server printed the candidates.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// Compat timeouts are integers: report `5`, not `5.0`.
fn whole_if_integral(seconds: f64) -> Value {
    if seconds.fract() == 0.0 && seconds.abs() < 1e15 {
        json!(seconds as i64)
    } else {
        json!(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_resolution_errors_are_4002_with_data() {
        let m = map(&CoreError::ToolNotFound("vm:nope".into()));
        assert_eq!(
            (m.code, m.status),
            (Code::InvalidRequest, StatusCode::BAD_REQUEST)
        );
        assert_eq!(m.message, "Tool not found: vm:nope");
        assert_eq!(m.data, json!({"action": "vm:nope"}));

        // Ambiguity needs two plugins with the same action, which the
        // end-to-end fixtures cannot provide; the resolution itself is
        // covered in core::names, the mapping here.
        let full = ["a:stats", "b:stats", "c:other"];
        let err = crate::core::names::resolve("stats", full.iter().copied()).unwrap_err();
        let m = map(&err);
        assert_eq!(
            (m.code, m.status),
            (Code::InvalidRequest, StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            m.message,
            "Ambiguous tool name 'stats'. Multiple matches: ['a:stats', 'b:stats']. Please use full name with prefix."
        );
        assert_eq!(m.data["candidates"], json!(["a:stats", "b:stats"]));
    }

    #[test]
    fn failures_and_timeouts_are_500() {
        let m = map(&CoreError::Backend("fixture: boom".into()));
        assert_eq!((m.code.as_u32(), m.status.as_u16()), (5005, 500));
        assert_eq!(m.message, "fixture: boom");
        let m = map(&CoreError::Timeout { seconds: 2.0 });
        assert_eq!((m.code.as_u32(), m.status.as_u16()), (5006, 500));
        assert_eq!(m.message, "Tool execution timed out after 2s");
        assert_eq!(m.data, json!({"timeout": 2}));
        let m = map(&CoreError::InvalidParams("Parameter 'x': bad".into()));
        assert_eq!((m.code.as_u32(), m.status.as_u16()), (4004, 400));
    }

    #[test]
    fn conditions_the_python_server_lacked_keep_their_http_status() {
        let m = map(&CoreError::ShuttingDown);
        assert_eq!((m.code.as_u32(), m.status.as_u16()), (5013, 503));
        let m = map(&CoreError::Unauthorized("Invalid bearer token".into()));
        assert_eq!((m.code.as_u32(), m.status.as_u16()), (4000, 401));
        let m = map(&CoreError::BodyTooLarge { limit: 10 });
        assert_eq!((m.code.as_u32(), m.status.as_u16()), (4000, 413));
    }
}
