//! `POST /api/v1/execute` and `POST /api/v1/execute/batch`.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::codes::{self, Code, Mapped};
use super::envelope::{self, Envelope, Meta};
use super::extract::{check_text, optional, required, Checked, Field, Kind, Model};
use crate::core::error::{CoreError, CoreResult};
use crate::core::executor::{BatchRequest, ExecReport, ExecRequest, ToolOutput};
use crate::core::trajectory::Origin;
use crate::web::envelope::{raw, BatchData};
use crate::web::{AppState, RequestId, Routing};

#[derive(Deserialize)]
pub struct ExecuteBody {
    worker_id: String,
    action: String,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    timeout: Option<i64>,
}

impl Model for ExecuteBody {
    const FIELDS: &'static [Field] = &[
        required("worker_id", Kind::Str),
        required("action", Kind::Str),
        optional("params", Kind::Object),
        optional("timeout", Kind::Int),
    ];
}

#[derive(Deserialize)]
pub struct BatchAction {
    action: String,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    timeout: Option<i64>,
}

const ACTION_FIELDS: &[Field] = &[
    required("action", Kind::Str),
    optional("params", Kind::Object),
    optional("timeout", Kind::Int),
];

#[derive(Deserialize)]
pub struct BatchBody {
    worker_id: String,
    actions: Vec<BatchAction>,
    #[serde(default)]
    parallel: bool,
    #[serde(default = "yes")]
    stop_on_error: bool,
}

impl Model for BatchBody {
    const FIELDS: &'static [Field] = &[
        required("worker_id", Kind::Str),
        required("actions", Kind::Records(ACTION_FIELDS)),
        optional("parallel", Kind::Bool),
        optional("stop_on_error", Kind::Bool),
    ];
}

fn yes() -> bool {
    true
}

/// One call as the core takes it. An action with control characters cannot
/// name a tool: it is "not found" without reaching the core (or its logs).
/// The routing headers must agree with the body; `X-Session-ID` names the
/// session the call expects.
fn request(
    routing: &Routing,
    worker: &str,
    action: String,
    params: Value,
    timeout: Option<i64>,
    trace: &RequestId,
) -> CoreResult<ExecRequest> {
    check_text("worker_id", worker)?;
    routing.worker(Some(worker))?;
    let session = routing.session(None)?;
    if check_text("action", &action).is_err() {
        return Err(CoreError::ToolNotFound(action));
    }
    Ok(ExecRequest {
        worker_id: worker.to_string(),
        action,
        params,
        timeout: timeout.map(|t| t as f64),
        cancel: None,
        session,
        chunks: None,
        // This surface answers with the request id as `meta.trace_id`.
        origin: Origin {
            request_id: Some(trace.0.clone()),
            trace_id: Some(trace.0.clone()),
            surface: Some("api_v1"),
        },
    })
}

/// The envelope of one call, and whether it succeeded.
fn report_body(
    report: ExecReport,
    action: &str,
    trace: &RequestId,
) -> (Envelope<ToolOutput>, Result<(), Mapped>) {
    let meta = Meta::call(&report.meta, action);
    match report.result {
        Ok(data) => (
            envelope::body(Code::Success, "success", data, &meta, trace),
            Ok(()),
        ),
        Err(e) => {
            let mapped = codes::map(&e);
            let body = envelope::body(
                mapped.code,
                &mapped.message,
                raw(&mapped.data),
                &meta,
                trace,
            );
            (body, Err(mapped))
        }
    }
}

pub async fn execute(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<ExecuteBody>,
) -> Response {
    let started = Instant::now();
    let action = body.action.clone();
    let req = match request(
        &routing,
        &body.worker_id,
        body.action,
        body.params,
        body.timeout,
        &trace,
    ) {
        Ok(r) => r,
        Err(e) => {
            return envelope::core_failure(&e, &Meta::endpoint(&action, None, started), &trace)
        }
    };
    let report = state.core.execute(req).await;
    match report_body(report, &action, &trace) {
        (body, Ok(())) => envelope::with_status(StatusCode::OK, body),
        (body, Err(mapped)) => envelope::with_status(mapped.status, body),
    }
}

pub async fn batch(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<BatchBody>,
) -> Response {
    let started = Instant::now();
    let meta = || Meta::endpoint("batch:execute", None, started);
    let mut actions = Vec::with_capacity(body.actions.len());
    let mut names = Vec::with_capacity(body.actions.len());
    for a in body.actions {
        names.push(a.action.clone());
        match request(
            &routing,
            &body.worker_id,
            a.action,
            a.params,
            a.timeout,
            &trace,
        ) {
            Ok(r) => actions.push(r),
            Err(e) => return envelope::core_failure(&e, &meta(), &trace),
        }
    }
    let total = actions.len();
    let reports = match state
        .core
        .execute_batch(BatchRequest {
            worker_id: body.worker_id,
            actions,
            parallel: body.parallel,
            stop_on_error: body.stop_on_error,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return envelope::core_failure(&e, &meta(), &trace),
    };
    let executed = reports.len();
    let mut results = Vec::with_capacity(executed);
    let mut failed = 0;
    for (report, name) in reports.into_iter().zip(&names) {
        let (body, outcome) = report_body(report, name, &trace);
        results.push(body);
        failed += usize::from(outcome.is_err());
    }
    let data = BatchData::new(results, total, failed);
    let (code, status, message) =
        envelope::batch_outcome(failed, executed, "All actions failed", "actions");
    envelope::with_status(
        status,
        envelope::body(code, &message, data, &meta(), &trace),
    )
}
