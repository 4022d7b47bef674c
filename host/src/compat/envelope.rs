//! The compat envelope `{code, message, data, meta}` with every meta key
//! present, and the bare answers some endpoints give.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::codes::{self, Code, Mapped};
use crate::core::error::CoreError;
use crate::core::executor::ExecMeta;
use crate::http::request_id::RequestId;

/// What `meta` says about one answer.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub tool: Option<String>,
    pub resource_type: Option<String>,
    pub session_id: Option<String>,
    pub execution_time_ms: f64,
    /// Shown (as `true`) only when a temporary session served the call.
    pub temporary_session: bool,
}

fn millis_since(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

impl Meta {
    /// Meta of an endpoint that is not a tool call (`session:create`, …).
    pub fn endpoint(tool: &str, resource_type: Option<&str>, started: Instant) -> Self {
        Self {
            tool: Some(tool.to_string()),
            resource_type: resource_type.map(str::to_string),
            execution_time_ms: millis_since(started),
            ..Self::default()
        }
    }

    pub fn session(mut self, id: Option<&str>) -> Self {
        self.session_id = id.map(str::to_string);
        self
    }

    /// Meta of a tool call; `tool` is the full name, or the name as asked
    /// for when it did not resolve.
    pub fn call(m: &ExecMeta, requested: &str) -> Self {
        Self {
            tool: Some(m.full_name.clone().unwrap_or_else(|| requested.to_string())),
            resource_type: m.resource_type.clone(),
            session_id: m.session_id.clone(),
            execution_time_ms: m.execution_time_ms,
            temporary_session: m.temporary_session,
        }
    }

    fn json(&self, trace: &RequestId) -> Value {
        let mut meta = json!({
            "tool": self.tool,
            "execution_time_ms": self.execution_time_ms,
            "resource_type": self.resource_type,
            "session_id": self.session_id,
            "trace_id": trace.0,
        });
        if self.temporary_session {
            meta["temporary_session"] = json!(true);
        }
        meta
    }
}

/// The envelope body.
pub fn body(code: Code, message: &str, data: Value, meta: &Meta, trace: &RequestId) -> Value {
    // Built by moving `data` in: `json!` would copy it.
    let mut body = serde_json::Map::new();
    body.insert("code".into(), Value::from(code.as_u32()));
    body.insert("message".into(), Value::from(message));
    body.insert("data".into(), data);
    body.insert("meta".into(), meta.json(trace));
    Value::Object(body)
}

/// The envelope of a mapped error.
pub fn error_body(err: &Mapped, meta: &Meta, trace: &RequestId) -> Value {
    body(err.code, &err.message, err.data.clone(), meta, trace)
}

/// 200 with code 0.
pub fn success(data: Value, meta: &Meta, trace: &RequestId) -> Response {
    Json(body(Code::Success, "success", data, meta, trace)).into_response()
}

/// An envelope with an explicit status (207 batches, 500 init failures).
pub fn with_status(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A surface-raised or mapped error.
pub fn failure(err: &Mapped, meta: &Meta, trace: &RequestId) -> Response {
    with_status(err.status, error_body(err, meta, trace))
}

/// A core error as this surface answers it.
pub fn core_failure(err: &CoreError, meta: &Meta, trace: &RequestId) -> Response {
    failure(&codes::map(err), meta, trace)
}

/// A bare (no envelope) JSON answer.
pub fn bare(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}
