//! The one place where a core outcome becomes an MCP answer: tool results
//! become content a model can read plus `structuredContent`; tool failures
//! become `isError` results carrying the native API's message; a request the
//! server cannot route (an unknown tool) is a protocol error.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, ContentBlock, ErrorCode};
use rmcp::ErrorData;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::core::error::{CoreError, CoreResult};
use crate::core::executor::ToolOutput;
use crate::web::RequestId;

/// Maps the outcome of one call.
pub fn call_result(outcome: CoreResult<ToolOutput>) -> Result<CallToolResult, ErrorData> {
    match outcome {
        Ok(output) => Ok(success(&output)),
        Err(e) => failure(e),
    }
}

/// A failure: protocol error when the request names nothing callable or the
/// server cannot serve it, else a result the model reads.
pub fn failure(err: CoreError) -> Result<CallToolResult, ErrorData> {
    match &err {
        CoreError::ToolNotFound(name) => Err(ErrorData::invalid_params(
            err.to_string(),
            Some(json!({ "tool": name })),
        )),
        CoreError::AmbiguousTool { name, candidates } => Err(ErrorData::invalid_params(
            err.to_string(),
            Some(json!({ "tool": name, "candidates": candidates })),
        )),
        CoreError::ShuttingDown => Err(ErrorData::internal_error(err.to_string(), None)),
        _ => Ok(CallToolResult::error(vec![ContentBlock::text(
            err.to_string(),
        )])),
    }
}

/// A request refused before it reached the MCP transport (no or a wrong
/// token, the server stopping, a body too large): the HTTP status says what
/// happened, and the body is a JSON-RPC error a client can show.
pub fn refusal(err: CoreError, id: &RequestId) -> Response {
    let status = match &err {
        CoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        CoreError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::InvalidParams(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let code = match &err {
        CoreError::InvalidParams(_) | CoreError::BodyTooLarge { .. } => ErrorCode::INVALID_REQUEST,
        _ => ErrorCode::INTERNAL_ERROR,
    };
    jsonrpc_error(status, code, &err.to_string(), id)
}

/// A path under `/mcp` the transport does not serve.
pub fn not_routed(status: StatusCode, req: &Request, id: &RequestId) -> Response {
    let message = format!(
        "{} {} is not an MCP endpoint; use {}",
        req.method(),
        req.uri().path(),
        super::PATH
    );
    jsonrpc_error(status, ErrorCode::INVALID_REQUEST, &message, id)
}

fn jsonrpc_error(status: StatusCode, code: ErrorCode, message: &str, id: &RequestId) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code.0, "message": message, "data": {"request_id": id.0}},
    });
    (status, axum::Json(body)).into_response()
}

fn success(output: &RawValue) -> CallToolResult {
    let value: Value = match serde_json::from_str(output.get()) {
        Ok(v) => v,
        // The core checked it is JSON; keep the text if it somehow is not.
        Err(_) => return CallToolResult::success(vec![ContentBlock::text(output.get())]),
    };
    let Value::Object(mut fields) = value else {
        // `structuredContent` must be an object; other JSON is text only.
        return CallToolResult::success(vec![ContentBlock::text(output.get())]);
    };
    let content = if let Some(png) = take_png(&mut fields) {
        vec![
            ContentBlock::image(png, "image/png"),
            ContentBlock::text(Value::Object(fields.clone()).to_string()),
        ]
    } else if let Some(text) = command_text(&fields) {
        vec![ContentBlock::text(text)]
    } else {
        vec![ContentBlock::text(output.get())]
    };
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(Value::Object(fields));
    result
}

/// A screenshot (`{"image": <base64>, "format": "png", …}`): the image moves
/// into an image content block, so it is not sent twice.
fn take_png(fields: &mut Map<String, Value>) -> Option<String> {
    let is_png = fields.get("format").and_then(Value::as_str) == Some("png")
        && fields.get("image").is_some_and(Value::is_string);
    if !is_png {
        return None;
    }
    match fields.remove("image") {
        Some(Value::String(data)) => Some(data),
        _ => None,
    }
}

/// A command's outcome (`stdout`, `stderr`, `return_code`) as a terminal
/// would show it, with the exit code stated.
fn command_text(fields: &Map<String, Value>) -> Option<String> {
    let stdout = fields.get("stdout")?.as_str()?;
    let stderr = fields.get("stderr")?.as_str()?;
    let code = fields.get("return_code")?;
    let mut text = String::with_capacity(stdout.len() + stderr.len() + 32);
    text.push_str(stdout);
    if !stdout.is_empty() && !stdout.ends_with('\n') {
        text.push('\n');
    }
    if !stderr.is_empty() {
        text.push_str("[stderr]\n");
        text.push_str(stderr);
        if !stderr.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str(&format!("[exit code {code}]"));
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(v: Value) -> CoreResult<ToolOutput> {
        Ok(RawValue::from_string(v.to_string()).unwrap())
    }

    fn text_of(block: &ContentBlock) -> &str {
        match block {
            ContentBlock::Text(t) => &t.text,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn a_command_reads_as_output_then_stderr_then_exit_code() {
        let r = call_result(out(
            json!({"stdout": "hi\n", "stderr": "oops", "return_code": 3, "cwd": "/w"}),
        ))
        .unwrap();
        assert_eq!(r.is_error, Some(false));
        assert_eq!(text_of(&r.content[0]), "hi\n[stderr]\noops\n[exit code 3]");
        assert_eq!(r.structured_content.unwrap()["cwd"], "/w");
    }

    #[test]
    fn a_screenshot_is_an_image_block_and_not_repeated_in_structured_content() {
        let r = call_result(out(
            json!({"image": "iVBO", "format": "png", "width": 8, "height": 4}),
        ))
        .unwrap();
        match &r.content[0] {
            ContentBlock::Image(i) => {
                assert_eq!(i.data, "iVBO");
                assert_eq!(i.mime_type, "image/png");
            }
            other => panic!("{other:?}"),
        }
        let s = r.structured_content.unwrap();
        assert_eq!(s["width"], 8);
        assert!(s.get("image").is_none());
    }

    #[test]
    fn other_results_are_their_json_text_and_non_objects_have_no_structured_content() {
        let r = call_result(out(json!({"a": 1}))).unwrap();
        assert_eq!(text_of(&r.content[0]), r#"{"a":1}"#);
        let r = call_result(out(json!([1, 2]))).unwrap();
        assert!(r.structured_content.is_none());
    }

    #[test]
    fn tool_failures_are_results_with_the_native_message() {
        let e = CoreError::InvalidParams("Parameter 'command' is required".into());
        let r = failure(e.clone()).unwrap();
        assert_eq!(r.is_error, Some(true));
        assert_eq!(text_of(&r.content[0]), e.to_string());
        let r = failure(CoreError::Timeout { seconds: 2.0 }).unwrap();
        assert!(text_of(&r.content[0]).contains("timed out after 2s"));
    }

    #[test]
    fn unknown_tools_and_shutdown_are_protocol_errors() {
        let e = failure(CoreError::ToolNotFound("nope".into())).unwrap_err();
        assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(e.message.contains("nope"));
        assert!(failure(CoreError::ShuttingDown).is_err());
    }
}
