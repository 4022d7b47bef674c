//! `POST /execute` and `POST /execute/batch`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::envelope::{exec_meta, ok, ok_body, ApiError, BatchData, Envelope};
use super::extract::Body;
use super::openapi::{IdempotencyHeader, SessionHeader, WorkerHeader};
use crate::core::error::CoreError;
use crate::core::executor::{BatchRequest, ExecReport, ExecRequest, ToolOutput};
use crate::core::ident::Id;
use crate::core::trajectory::Origin;
use crate::web::{AppState, RequestId, Routing};

/// `POST /execute` (and `/execute/stream`). The `params` of each tool are
/// described in `/openapi.json` as variants built from the live registry.
#[derive(Deserialize, ToSchema)]
pub struct ExecuteBody {
    /// Or the `X-Worker-ID` header.
    #[serde(default)]
    worker_id: Option<Id>,
    /// The session the call expects (or the `X-Session-ID` header).
    #[serde(default)]
    session_id: Option<Id>,
    /// `resource:action` (`bash:run`); `bash.run`, `bash_run` and a bare
    /// `run` (when only one plugin has it) resolve too.
    action: Id,
    /// The tool's parameters, checked against its JSON Schema.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    params: Value,
    /// Seconds (default `server.default_timeout`, at most `server.max_timeout`).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0)]
    timeout: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
pub struct BatchAction {
    action: Id,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    params: Value,
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0)]
    timeout: Option<f64>,
}

/// `POST /execute/batch`.
#[derive(Deserialize, ToSchema)]
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
    #[schema(default = true)]
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

/// Runs one tool call.
#[utoipa::path(post, path = "/execute", operation_id = "execute", tag = "execute",
    request_body = ExecuteBody,
    params(WorkerHeader, SessionHeader, IdempotencyHeader),
    responses(
        (status = 200, description = "The tool's own result object in `data`; `meta` adds `execution_time_ms`, `tool`, `resource_type`, `session_id`, `temporary_session`", body = Envelope<Value>),
        (status = "4XX", description = "Refused (codes in docs/api.md)", body = Envelope<Value>),
        (status = "5XX", description = "The plugin failed (2001, 502), timed out (2002, 504), or is unavailable (503)", body = Envelope<Value>),
    ))]
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

/// Runs several calls, in order or in parallel.
#[utoipa::path(post, path = "/execute/batch", operation_id = "execute_batch", tag = "execute",
    request_body = BatchBody,
    params(WorkerHeader, SessionHeader, IdempotencyHeader),
    responses(
        (status = 200, description = "Every executed action succeeded", body = Envelope<BatchData<Envelope<Value>>>),
        (status = "4XX", description = "The first failed action's code and status, every outcome in `data`; or the batch was refused", body = Envelope<Value>),
        (status = "5XX", description = "As 4XX", body = Envelope<Value>),
    ))]
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
