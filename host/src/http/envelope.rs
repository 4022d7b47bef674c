//! The native response envelope: `{code, message, data, meta}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::request_id::RequestId;
use super::status::status_for;
use crate::core::error::CoreError;
use crate::core::executor::ExecMeta;

/// A successful envelope with extra `meta` keys.
pub fn ok(request_id: &RequestId, data: Value, meta: Map<String, Value>) -> Response {
    Json(ok_body(request_id, data, meta)).into_response()
}

/// The body of a successful envelope. Built by moving `data` in: `json!`
/// would copy it (and a tool's result can be megabytes).
pub fn ok_body(request_id: &RequestId, data: Value, mut meta: Map<String, Value>) -> Value {
    meta.insert("request_id".into(), Value::String(request_id.0.clone()));
    let mut body = Map::new();
    body.insert("code".into(), Value::from(0));
    body.insert("message".into(), Value::from("success"));
    body.insert("data".into(), data);
    body.insert("meta".into(), Value::Object(meta));
    Value::Object(body)
}

/// `data` of a batch answer on both surfaces; `results` are moved in, not copied.
pub fn batch_data(results: Vec<Value>, total: usize, executed: usize, failed: usize) -> Value {
    let mut data = Map::new();
    data.insert("results".into(), Value::Array(results));
    data.insert("total".into(), Value::from(total));
    data.insert("executed".into(), Value::from(executed));
    data.insert("success_count".into(), Value::from(executed - failed));
    Value::Object(data)
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
    pub fn body(&self) -> Value {
        let mut meta = self.meta.clone();
        meta.insert("request_id".into(), json!(self.request_id));
        meta.insert("error_type".into(), json!(self.error.error_type()));
        json!({
            "code": self.error.code().as_u32(),
            "message": self.error.to_string(),
            "data": self.error.data(),
            "meta": meta,
        })
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
            "meta": {"request_id": request_id.0, "error_type": error},
        })),
    )
        .into_response()
}
