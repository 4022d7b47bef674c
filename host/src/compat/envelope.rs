//! The compat envelope `{code, message, data, meta}` with every meta key
//! present, and the bare answers some endpoints give.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::codes::{self, Code, Mapped};
use crate::core::error::CoreError;
use crate::core::executor::ExecMeta;
pub use crate::web::envelope::Envelope;
use crate::web::{node, RequestId};

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

    fn json(&self, trace: &RequestId) -> Map<String, Value> {
        let mut meta = Map::new();
        meta.insert("tool".into(), json!(self.tool));
        meta.insert("execution_time_ms".into(), json!(self.execution_time_ms));
        meta.insert("resource_type".into(), json!(self.resource_type));
        meta.insert("session_id".into(), json!(self.session_id));
        meta.insert("trace_id".into(), json!(trace.0));
        meta.insert("node".into(), json!(node::name()));
        if self.temporary_session {
            meta.insert("temporary_session".into(), json!(true));
        }
        meta
    }
}

/// The envelope body.
pub fn body<D>(code: Code, message: &str, data: D, meta: &Meta, trace: &RequestId) -> Envelope<D> {
    Envelope {
        code: code.as_u32(),
        message: message.to_string(),
        data,
        meta: meta.json(trace),
    }
}

/// The envelope of a mapped error.
pub fn error_body(err: &Mapped, meta: &Meta, trace: &RequestId) -> Envelope<Value> {
    body(err.code, &err.message, err.data.clone(), meta, trace)
}

/// 200 with code 0.
pub fn success(data: impl Serialize, meta: &Meta, trace: &RequestId) -> Response {
    Json(body(Code::Success, "success", data, meta, trace)).into_response()
}

/// An envelope with an explicit status (207 batches, 500 init failures).
pub fn with_status(status: StatusCode, body: impl Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// Code, HTTP status and message of a batch answer (`/execute/batch`,
/// `/init/batch`): 200 when none of `total` failed, 500 when all did, else 207.
pub fn batch_outcome(
    failed: usize,
    total: usize,
    all_failed: &str,
    what: &str,
) -> (Code, StatusCode, String) {
    if failed == 0 {
        (Code::Success, StatusCode::OK, "success".to_string())
    } else if failed == total {
        (
            Code::AllFailed,
            Code::AllFailed.status(),
            all_failed.to_string(),
        )
    } else {
        (
            Code::PartialFailure,
            StatusCode::MULTI_STATUS,
            format!("{failed} out of {total} {what} failed"),
        )
    }
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
