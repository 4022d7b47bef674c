//! `POST /api/v1/warmup` and `GET /api/v1/warmup/status` (bare answers;
//! warmup always answers 200 and reports failures per backend).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::envelope::bare;
use super::extract::{optional, Checked, Field, Kind, Model};
use crate::core::ident;
use crate::web::AppState;

#[derive(Deserialize)]
pub struct WarmupBody {
    #[serde(default)]
    backends: Option<Vec<String>>,
}

impl Model for WarmupBody {
    const FIELDS: &'static [Field] = &[optional("backends", Kind::StrList)];
}

fn summary(total: usize, warmed_up: usize) -> Value {
    json!({"total": total, "warmed_up": warmed_up, "pending": total - warmed_up})
}

pub async fn warmup(State(state): State<AppState>, Checked(body): Checked<WarmupBody>) -> Response {
    let mut results: BTreeMap<String, bool> = BTreeMap::new();
    let mut errors = Map::new();
    // A name no plugin could have is simply unknown; it never reaches the core.
    let (valid, invalid): (Vec<String>, Vec<String>) = body
        .backends
        .unwrap_or_default()
        .into_iter()
        .partition(|n| ident::check("backends", n).is_ok());
    for name in invalid {
        errors.insert(name.clone(), json!(format!("Unknown backend: {name}")));
        results.insert(name, false);
    }
    let asked_none = valid.is_empty() && results.is_empty();
    if asked_none || !valid.is_empty() {
        for (name, r) in state
            .core
            .warmup(Some(valid).filter(|v| !v.is_empty()))
            .await
        {
            if let (false, Some(e)) = (r.warmed_up, &r.error) {
                errors.insert(name.clone(), json!(e));
            }
            results.insert(name, r.warmed_up);
        }
    }
    let warmed = results.values().filter(|ok| **ok).count();
    let mut body = json!({
        "status": if warmed == results.len() { "success" } else { "partial_error" },
        "results": results,
        "summary": summary(results.len(), warmed),
    });
    if !errors.is_empty() {
        body["errors"] = Value::Object(errors);
    }
    bare(StatusCode::OK, body)
}

pub async fn status(State(state): State<AppState>) -> Response {
    let backends: Map<String, Value> = state
        .core
        .warmup_status()
        .into_iter()
        .map(|(name, b)| {
            (
                name,
                json!({"loaded": b.loaded, "warmed_up": b.warmed_up, "state": b.state, "error": b.error}),
            )
        })
        .collect();
    let warmed = backends
        .values()
        .filter(|b| b["warmed_up"] == json!(true))
        .count();
    bare(
        StatusCode::OK,
        json!({"summary": summary(backends.len(), warmed), "backends": backends}),
    )
}
