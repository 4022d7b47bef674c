//! The lines of a trajectory log (`docs/trajectories.md` is the contract).
//! Every line is one JSON object whose first key, `type`, says what it is:
//! `session` (the first line), `step` (one per call), `cap_reached` (the
//! size cap was hit: later calls are not recorded) and `end` (the session
//! ended). Fields are only ever added within a schema version.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The schema version, in the `session` line and `meta.json`.
pub const SCHEMA: u32 = 1;

/// The first line.
#[derive(Debug, Serialize)]
pub struct Header<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub session_id: &'a str,
    pub session_name: &'a str,
    pub worker_id: &'a str,
    pub resource_type: &'a str,
    pub temporary: bool,
    pub started_at: String,
    pub node: &'a str,
    /// The session config the plugin got (defaults overlaid by the client's).
    pub config: &'a Value,
}

/// Where a call came from, so client logs can be joined with the steps.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The request id (`X-Request-Id`, `meta.request_id`).
    pub request_id: Option<String>,
    /// `/api/v1`'s `meta.trace_id` (there, the request id).
    pub trace_id: Option<String>,
    /// The surface that took the call: `native`, `api_v1` or `mcp`.
    pub surface: Option<&'static str>,
}

/// A stored screenshot: where its base64 text was in the result, and the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRef {
    /// JSON Pointer (RFC 6901) into `result`; the value there is `file`.
    pub pointer: String,
    /// Relative to the trajectory's directory: `images/<sha256>.png`.
    pub file: String,
}

/// An error as recorded: the host's stable error kind and its message.
#[derive(Debug, Serialize)]
pub struct StepError<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// One call.
#[derive(Debug, Serialize)]
pub struct Step<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// 1, 2, … in the order the steps were written.
    pub seq: u64,
    /// `resource:action` as resolved (as asked for when it did not resolve).
    pub action: &'a str,
    pub params: &'a Value,
    pub started_at: String,
    pub duration_ms: f64,
    pub request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub surface: Option<&'a str>,
    pub ok: bool,
    /// The tool's result, screenshots replaced by their files (see `images`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError<'a>>,
    #[serde(skip_serializing_if = "<[ImageRef]>::is_empty")]
    pub images: &'a [ImageRef],
}

/// The size cap was reached.
#[derive(Debug, Serialize)]
pub struct CapReached {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The seq the first unrecorded call would have had.
    pub seq: u64,
    pub at: String,
    pub max_bytes: u64,
}

/// The last line: the session ended.
#[derive(Debug, Serialize)]
pub struct End {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub at: String,
    pub steps: u64,
    /// Calls made after the cap was reached.
    pub unrecorded_steps: u64,
    /// `screen.mp4` when the session's screen was recorded.
    pub video: Option<&'static str>,
}

/// `meta.json`: what listings show without reading the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub schema: u32,
    pub session_id: String,
    pub session_name: String,
    pub worker_id: String,
    pub resource_type: String,
    pub started_at: String,
    /// Set when the session ended (absent after a crash of the host).
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub steps: Option<u64>,
    #[serde(default)]
    pub capped: bool,
    #[serde(default)]
    pub unrecorded_steps: u64,
}

/// The prefix every step line starts with (counting steps of a log that
/// was never closed scans for it).
pub const STEP_PREFIX: &[u8] = br#"{"type":"step","#;
