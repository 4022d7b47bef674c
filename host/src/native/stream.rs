//! `POST /execute/stream`: `/execute` as Server-Sent Events. While the tool
//! runs, each chunk of output it emits is a `chunk` event
//! (`{"stream": "stdout", "text": "…"}`); then one `result` event carries the
//! envelope `/execute` would have answered (its `code` says whether the call
//! succeeded: the HTTP status of a stream is always 200). The call runs
//! inside the stream: a client that goes away drops it, which cancels the
//! call as a timeout would.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::mpsc;

use super::envelope::ApiError;
use super::execute::{answer, request, ExecuteBody};
use super::extract::Body;
use super::openapi::{SessionHeader, WorkerHeader};
use crate::core::executor::{Chunk, ExecReport};
use crate::web::envelope::Envelope;
use crate::web::{AppState, RequestId, Routing};

/// One Server-Sent Event of the stream (for the API description).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StreamEvent {
    /// `chunk` or `result`.
    event: String,
    /// JSON: `{"stream", "text"}` for a chunk, the envelope for the result.
    data: String,
}

type Call = Pin<Box<dyn std::future::Future<Output = ExecReport> + Send>>;

/// Where the stream is.
enum Phase {
    Running {
        call: Call,
        chunks: mpsc::UnboundedReceiver<Chunk>,
        id: RequestId,
    },
    /// The call returned: chunks sent just before it did, then the result.
    Finishing {
        pending: VecDeque<Chunk>,
        result: Event,
    },
    Done,
}

/// `/execute` as Server-Sent Events: `chunk` events while the tool runs,
/// then one `result` event carrying the envelope `/execute` would answer.
#[utoipa::path(post, path = "/execute/stream", operation_id = "execute_stream", tag = "execute",
    request_body = ExecuteBody,
    params(WorkerHeader, SessionHeader),
    responses(
        (status = 200, description = "`event: chunk` (`{\"stream\", \"text\"}`) events, then one `event: result` with the envelope", content_type = "text/event-stream", body = StreamEvent),
        (status = "4XX", description = "The body was refused before the stream started", body = Envelope<serde_json::Value>),
        (status = "5XX", description = "The server or a plugin failed, timed out, or is unavailable (codes in docs/api.md)", body = Envelope<serde_json::Value>),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    id: RequestId,
    routing: Routing,
    Body(body): Body<ExecuteBody>,
) -> Response {
    let mut req = match request(&routing, body, &id) {
        Ok(r) => r,
        Err(e) => return ApiError::new(e, &id).into_response(),
    };
    // What can be refused before the stream is, with its status.
    if let Err(e) = state.core.precheck(&req) {
        return ApiError::new(e, &id).into_response();
    }
    let (tx, chunks) = mpsc::unbounded_channel();
    req.chunks = Some(tx);
    let core = state.core.clone();
    let call: Call = Box::pin(async move { core.execute(req).await });
    Sse::new(events(Phase::Running { call, chunks, id }))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(start: Phase) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(start, |phase| async move {
        match phase {
            Phase::Running {
                mut call,
                mut chunks,
                id,
            } => {
                tokio::select! {
                    biased;
                    Some(chunk) = chunks.recv() => {
                        Some((Ok(json_event("chunk", &chunk)), Phase::Running { call, chunks, id }))
                    }
                    report = &mut call => {
                        // A chunk sent between the two polls is still queued:
                        // every chunk goes out before the result.
                        let mut pending = VecDeque::new();
                        while let Ok(c) = chunks.try_recv() {
                            pending.push_back(c);
                        }
                        let result = result_event(report, &id);
                        next_finishing(pending, result)
                    }
                }
            }
            Phase::Finishing { pending, result } => next_finishing(pending, result),
            Phase::Done => None,
        }
    })
}

fn next_finishing(
    mut pending: VecDeque<Chunk>,
    result: Event,
) -> Option<(Result<Event, Infallible>, Phase)> {
    match pending.pop_front() {
        Some(c) => Some((
            Ok(json_event("chunk", &c)),
            Phase::Finishing { pending, result },
        )),
        None => Some((Ok(result), Phase::Done)),
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Event::default().event(name).data(text)
}

fn result_event(report: ExecReport, id: &RequestId) -> Event {
    let (_, envelope) = answer(report, id);
    json_event("result", &envelope)
}
