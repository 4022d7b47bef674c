//! The `{code, message, data, meta}` envelope both HTTP JSON surfaces answer
//! with (each fills it its own way), and the batch `data` they share.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Serialized straight from this struct, so a tool's result text is copied
/// into the answer as is.
#[derive(Debug, Serialize)]
pub struct Envelope<D> {
    pub code: u32,
    pub message: String,
    pub data: D,
    pub meta: Map<String, Value>,
}

/// `data` of a batch answer.
#[derive(Debug, Serialize)]
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
