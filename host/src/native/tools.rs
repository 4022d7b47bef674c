//! `GET /tools?include_hidden=…`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::envelope::{ok, ApiError};
use crate::core::error::CoreError;
use crate::web::AppState;
use crate::web::RequestId;

/// Parses a boolean query flag: true/false/1/0/yes/no/on/off, any case.
pub fn parse_flag(name: &str, value: Option<&String>) -> Result<bool, CoreError> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(CoreError::InvalidParams(format!(
                "Parameter '{name}' must be true or false, got \"{v}\""
            ))),
        },
    }
}

pub async fn list(
    State(state): State<AppState>,
    id: RequestId,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let include_hidden = match parse_flag("include_hidden", query.get("include_hidden")) {
        Ok(v) => v,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let tools: Vec<Value> = state
        .core
        .tool_list(include_hidden)
        .into_iter()
        .map(|t| {
            json!({
                "name": t.full_name,
                "description": t.description,
                "resource_type": t.resource_type,
                "parameters": t.parameters,
                "hidden": t.hidden,
            })
        })
        .collect();
    ok(
        &id,
        json!({"tools": tools, "count": tools.len()}),
        Map::new(),
    )
}
