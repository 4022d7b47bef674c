//! The native response envelope: `{code, message, data, meta}` (shape in
//! [`crate::web::envelope`]), filled the native way.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::codes::{self, status_for};
use crate::core::error::CoreError;
use crate::core::executor::ExecMeta;
pub use crate::web::envelope::{raw, BatchData, Envelope};
use crate::web::{node, RequestId};

/// A successful envelope with extra `meta` keys.
pub fn ok<D: Serialize>(request_id: &RequestId, data: D, meta: Map<String, Value>) -> Response {
    Json(ok_body(request_id, data, meta)).into_response()
}

/// The body of a successful envelope.
pub fn ok_body<D>(request_id: &RequestId, data: D, mut meta: Map<String, Value>) -> Envelope<D> {
    meta.insert("request_id".into(), Value::String(request_id.0.clone()));
    meta.insert("node".into(), Value::from(node::name()));
    Envelope {
        code: 0,
        message: "success".into(),
        data,
        meta,
    }
}

/// An error as a client sees it: the envelope, with the status for its code.
#[derive(Debug)]
pub struct ApiError {
    pub error: CoreError,
    pub request_id: String,
    pub meta: Map<String, Value>,
}

impl ApiError {
    pub fn new(error: CoreError, request_id: &RequestId) -> Self {
        Self {
            error,
            request_id: request_id.0.clone(),
            meta: Map::new(),
        }
    }

    pub fn with_meta(mut self, meta: Map<String, Value>) -> Self {
        self.meta = meta;
        self
    }

    /// The envelope body (also used for batch entries).
    pub fn body(self) -> Envelope<Box<RawValue>> {
        self.body_with(|e| raw(&codes::data(e)))
    }

    /// The envelope with `data` chosen by the caller.
    pub fn body_with<D>(mut self, data: impl FnOnce(&CoreError) -> D) -> Envelope<D> {
        self.meta
            .insert("request_id".into(), Value::String(self.request_id));
        self.meta
            .insert("error_type".into(), json!(codes::error_type(&self.error)));
        self.meta.insert("node".into(), Value::from(node::name()));
        Envelope {
            code: codes::code(&self.error).as_u32(),
            message: self.error.to_string(),
            data: data(&self.error),
            meta: self.meta,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status_for(&self.error), Json(self.body())).into_response()
    }
}

/// `meta` of an execute answer.
pub fn exec_meta(meta: &ExecMeta) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("execution_time_ms".into(), json!(meta.execution_time_ms));
    m.insert("tool".into(), json!(meta.tool));
    m.insert("resource_type".into(), json!(meta.resource_type));
    m.insert("session_id".into(), json!(meta.session_id));
    m.insert("temporary_session".into(), json!(meta.temporary_session));
    m
}

/// A plain JSON error for paths and methods that do not exist.
pub fn not_routed(status: StatusCode, request_id: &RequestId, message: &str) -> Response {
    let error = if status == StatusCode::METHOD_NOT_ALLOWED {
        "MethodNotAllowed"
    } else {
        "NotFound"
    };
    (
        status,
        Json(json!({
            "code": if status == StatusCode::METHOD_NOT_ALLOWED { 1002 } else { 1001 },
            "message": message,
            "data": null,
            "meta": {"request_id": request_id.0, "error_type": error, "node": node::name()},
        })),
    )
        .into_response()
}
