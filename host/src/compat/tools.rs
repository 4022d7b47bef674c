//! `GET /api/v1/tools` and `GET /api/v1/tools/{name}/schema` (bare answers).

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::envelope::bare;
use super::extract::{parse_bool, unprocessable};
use crate::core::catalog::ToolEntry;
use crate::web::AppState;

fn tool_json(t: &ToolEntry) -> Value {
    // As the Python server: hidden tools (listed only when asked for) say so
    // in their description.
    let description = if t.hidden {
        format!("[HIDDEN] {}", t.description)
    } else {
        t.description.clone()
    };
    json!({
        "name": t.action,
        "full_name": t.full_name,
        "resource_type": t.resource_type,
        // The Python server's `stateless` is "has no resource type": false
        // for every `resource:action` tool, shared plugins' included.
        "stateless": false,
        "description": description,
    })
}

/// `include_hidden` as FastAPI reads a bool query parameter (`True`, `false`, `1`, `off`, …).
/// The error is the 422 detail entry.
fn include_hidden(query: &HashMap<String, String>) -> Result<bool, Value> {
    match query.get("include_hidden") {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| {
            json!({
                "type": "bool_parsing",
                "loc": ["query", "include_hidden"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": v,
            })
        }),
    }
}

pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let hidden = match include_hidden(&query) {
        Ok(h) => h,
        Err(detail) => return unprocessable(vec![detail]),
    };
    let tools: Vec<Value> = state.core.tool_list(hidden).iter().map(tool_json).collect();
    bare(
        StatusCode::OK,
        json!({"count": tools.len(), "tools": tools}),
    )
}

/// An exact full name, or an action name exactly one tool has. Hidden tools
/// are included: they can always be executed.
fn find<'a>(tools: &'a [ToolEntry], name: &str) -> Option<&'a ToolEntry> {
    if let Some(t) = tools.iter().find(|t| t.full_name == name) {
        return Some(t);
    }
    let mut by_action = tools
        .iter()
        .filter(|t| !name.contains(':') && t.action == name);
    match (by_action.next(), by_action.next()) {
        (Some(t), None) => Some(t),
        _ => None,
    }
}

pub async fn schema(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match name {
        Ok(Path(n)) => n,
        Err(e) => e.body_text(),
    };
    let tools = state.core.tool_list(true);
    match find(&tools, &name) {
        Some(t) => {
            let mut body = tool_json(t);
            body["parameters"] = t.parameters.clone();
            bare(StatusCode::OK, body)
        }
        None => bare(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "message": format!("Tool not found: {name}")}),
        ),
    }
}
