//! `POST /execute` and `POST /execute/batch`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::{exec_meta, ok, ok_body, ApiError, BatchData, Envelope};
use super::extract::Body;
use crate::core::error::CoreError;
use crate::core::executor::{BatchRequest, ExecReport, ExecRequest, ToolOutput};
use crate::core::ident::Id;
use crate::core::trajectory::Origin;
use crate::web::{AppState, RequestId, Routing};

#[derive(Deserialize)]
pub struct ExecuteBody {
    /// Or the `X-Worker-ID` header.
    #[serde(default)]
    worker_id: Option<Id>,
    /// The session the call expects (or the `X-Session-ID` header).
    #[serde(default)]
    session_id: Option<Id>,
    action: Id,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    timeout: Option<f64>,
}

#[derive(Deserialize)]
pub struct BatchAction {
    action: Id,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    timeout: Option<f64>,
}

#[derive(Deserialize)]
pub struct BatchBody {
    #[serde(default)]
    worker_id: Option<Id>,
    /// The session every action expects.
    #[serde(default)]
    session_id: Option<Id>,
    actions: Vec<BatchAction>,
    #[serde(default)]
    parallel: bool,
    #[serde(default = "yes")]
    stop_on_error: bool,
}

fn yes() -> bool {
    true
}

/// One call's envelope, and its error if it failed.
fn report_body(report: ExecReport, id: &RequestId) -> (Envelope<ToolOutput>, Option<CoreError>) {
    let meta = exec_meta(&report.meta);
    match report.result {
        Ok(data) => (ok_body(id, data, meta), None),
        Err(e) => (ApiError::new(e.clone(), id).with_meta(meta).body(), Some(e)),
    }
}

/// The worker and expected session of a request: the body's or the headers'.
fn target(
    routing: &Routing,
    worker: Option<Id>,
    session: Option<Id>,
) -> Result<(String, Option<String>), CoreError> {
    let worker = routing.worker_id(worker)?.into_string();
    let session = routing.session_id(session)?.map(Id::into_string);
    Ok((worker, session))
}

/// Where a call of this surface came from (for recorded sessions' steps).
fn origin(id: &RequestId) -> Origin {
    Origin {
        request_id: Some(id.0.clone()),
        trace_id: None,
        surface: Some("native"),
    }
}

/// The call an `/execute` (or `/execute/stream`) body asks for.
pub fn request(
    routing: &Routing,
    body: ExecuteBody,
    id: &RequestId,
) -> Result<ExecRequest, CoreError> {
    let (worker_id, session) = target(routing, body.worker_id, body.session_id)?;
    Ok(ExecRequest {
        worker_id,
        action: body.action.into_string(),
        params: body.params,
        timeout: body.timeout,
        cancel: None,
        session,
        chunks: None,
        origin: origin(id),
    })
}

/// The answer `/execute` gives for a finished call: status and envelope.
pub fn answer(report: ExecReport, id: &RequestId) -> (StatusCode, Envelope<ToolOutput>) {
    let meta = exec_meta(&report.meta);
    match report.result {
        Ok(data) => (StatusCode::OK, ok_body(id, data, meta)),
        Err(e) => (
            super::codes::status_for(&e),
            ApiError::new(e, id).with_meta(meta).body(),
        ),
    }
}

pub async fn execute(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<ExecuteBody>,
) -> Response {
    let req = match request(&routing, body, &id) {
        Ok(r) => r,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let report = state.core.execute(req).await;
    match report.result {
        Ok(data) => ok(&id, data, exec_meta(&report.meta)),
        Err(e) => ApiError::new(e, &id)
            .with_meta(exec_meta(&report.meta))
            .into_response(),
    }
}

pub async fn batch(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<BatchBody>,
) -> Response {
    let (worker, session) = match target(&routing, body.worker_id, body.session_id) {
        Ok(t) => t,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let mut actions = Vec::with_capacity(body.actions.len());
    for a in body.actions {
        actions.push(ExecRequest {
            worker_id: worker.clone(),
            action: a.action.into_string(),
            params: a.params,
            timeout: a.timeout,
            cancel: None,
            session: session.clone(),
            chunks: None,
            origin: origin(&id),
        });
    }
    let total = actions.len();
    let reports = match state
        .core
        .execute_batch(BatchRequest {
            worker_id: worker,
            actions,
            parallel: body.parallel,
            stop_on_error: body.stop_on_error,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    let executed = reports.len();
    let mut results = Vec::with_capacity(executed);
    let mut first_error = None;
    let mut failed = 0;
    for r in reports {
        let (body, err) = report_body(r, &id);
        if let Some(e) = err {
            failed += 1;
            first_error.get_or_insert(e);
        }
        results.push(body);
    }
    let data = BatchData::new(results, total, failed);
    match first_error {
        None => ok(&id, data, Map::new()),
        Some(e) => {
            let status = super::codes::status_for(&e);
            let message = format!("{failed} of {} actions failed", data.executed);
            let mut body = ApiError::new(e, &id).body_with(|_| data);
            body.message = message;
            (status, Json(body)).into_response()
        }
    }
}
