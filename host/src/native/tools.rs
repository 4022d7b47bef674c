//! `GET /tools?include_hidden=…`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::envelope::{ok, ApiError, Envelope};
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

/// One tool as `/tools` lists it.
#[derive(Serialize, ToSchema)]
pub struct ToolInfo {
    /// `resource:action`.
    name: String,
    description: String,
    resource_type: String,
    /// The JSON Schema of the tool's `params`.
    #[schema(value_type = Object)]
    parameters: Value,
    hidden: bool,
}

/// `data` of `/tools`.
#[derive(Serialize, ToSchema)]
pub struct ToolList {
    tools: Vec<ToolInfo>,
    count: usize,
}

/// Every tool of every loaded plugin, with its parameter schema.
#[utoipa::path(get, path = "/tools", operation_id = "tools", tag = "tools",
    params(("include_hidden" = Option<String>, Query,
        description = "Also list hidden tools: true/false, 1/0, yes/no, on/off (any case); empty is false",
        pattern = "^(|[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0|[Yy][Ee][Ss]|[Nn][Oo]|[Oo][Nn]|[Oo][Ff][Ff])$")),
    responses(
        (status = 200, description = "Success", body = Envelope<ToolList>),
        (status = "4XX", description = "Refused: the envelope names the problem (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<Value>),
    ))]
pub async fn list(
    State(state): State<AppState>,
    id: RequestId,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let include_hidden = match parse_flag("include_hidden", query.get("include_hidden")) {
        Ok(v) => v,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let tools: Vec<ToolInfo> = state
        .core
        .tool_list(include_hidden)
        .into_iter()
        .map(|t| ToolInfo {
            name: t.full_name,
            description: t.description,
            resource_type: t.resource_type,
            parameters: t.parameters,
            hidden: t.hidden,
        })
        .collect();
    let count = tools.len();
    ok(&id, ToolList { tools, count }, Map::new())
}
