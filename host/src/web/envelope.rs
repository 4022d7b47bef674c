//! The `{code, message, data, meta}` envelope both HTTP JSON surfaces answer
//! with (each fills it its own way), and the batch `data` they share.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Serialized straight from this struct, so a tool's result text is copied
/// into the answer as is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<D> {
    /// 0 on success, else the error's code.
    pub code: u32,
    pub message: String,
    pub data: D,
    #[schema(value_type = EnvelopeMeta)]
    pub meta: Map<String, Value>,
}

/// What `meta` holds (for the API description; answers build it as a map,
/// and a surface may add keys of its own).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EnvelopeMeta {
    /// From the `X-Request-Id` header, else generated.
    request_id: String,
    /// The host that answered (`server.node_name`).
    #[schema(required = false)]
    node: String,
    /// Errors only: the error's type name (`ParameterError`, …).
    #[schema(required = false)]
    error_type: String,
}

/// `data` of a batch answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchData<R> {
    pub results: Vec<R>,
    pub total: usize,
    pub executed: usize,
    pub success_count: usize,
}

impl<R> BatchData<R> {
    pub fn new(results: Vec<R>, total: usize, failed: usize) -> Self {
        let executed = results.len();
        Self {
            results,
            total,
            executed,
            success_count: executed - failed,
        }
    }
}

/// JSON for `data` in an answer built from typed parts (never fails for the
/// maps and values this host builds; `null` if it somehow did).
pub fn raw(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}
