//! The MCP surface: `tools/call` of the trivial tool over `/mcp` (Streamable
//! HTTP, one MCP session per client) against `/execute` of the same tool on
//! the same server, at concurrency 1 and 64.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, ACCEPT};
use hyper::Method;
use serde_json::{json, Value};

use super::Ctx;
use crate::client::{envelope_ok, Conn};
use crate::figure::Fig;
use crate::load::{self, MakeReq, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};
use crate::stats::Outcome;

const CONCURRENCY: [usize; 2] = [1, 64];
/// How many times longer than the plan's window each load here is measured
/// (as in the host section, whose `/execute` figures these sit beside).
const LONGER: u32 = 2;
/// The protocol revision the client speaks (one with `initialize` and sessions).
const PROTOCOL: &str = "2025-06-18";
const PATH: &str = "/mcp";
const ECHO: &str = "fixture:echo";
const MCP_ECHO: &str = "fixture_echo";
/// The longest one setup exchange (initialize, first call) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let fixture = cx.artifacts.plugin("fixture")?;
    section.note(format!(
        "Trivial tool: `{ECHO} {{\"text\": \"hi\"}}` from `tests/fixture-plugin`, alone on its \
         server, as in the host section: over MCP it is `tools/call` of `{MCP_ECHO}`, natively \
         `POST /execute`. Each MCP client has its own MCP session (`initialize` answered with \
         an `Mcp-Session-Id`, then `notifications/initialized`), whose first call opened its \
         worker's fixture session before any timing, so every timed call runs on an explicit \
         session, like the baseline's: each `/execute` client has its own worker and explicit \
         session. Every MCP call is `POST {PATH}` with `Mcp-Session-Id`, \
         `MCP-Protocol-Version: {PROTOCOL}` and `Accept: application/json, text/event-stream` \
         and a fresh JSON-RPC id; the answer is an SSE stream (a priming event, then the \
         JSON-RPC response) read to its end. A call counts as a success only with HTTP 200 \
         and a JSON-RPC result that is not `isError: true`; an `/execute` call only with \
         HTTP 200 and `code: 0`."
    ));
    let (window, rounds) = (cx.plan.window * LONGER, cx.plan.rounds * LONGER as usize);
    section.note(format!(
        "At each concurrency the two loads run in {} alternating slices of {} ms each \
         ({} s each in total, {LONGER}× the other sections' windows, as in the host section), \
         so background load hits MCP and its `/execute` baseline alike.",
        rounds,
        (window / rounds.max(1) as u32).as_millis(),
        window.as_secs_f64()
    ));
    let server = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("fixture", fixture),
    )
    .await?;
    let api = server.api();
    api.warmup(&["fixture"]).await?;

    let max = CONCURRENCY.iter().copied().max().unwrap_or(1);
    for w in 0..max {
        api.create_session(&execute_worker(w), "fixture", json!({}))
            .await?;
    }
    let mut sessions = Vec::with_capacity(max);
    for _ in 0..max {
        sessions.push(open_session(&server).await?);
    }
    check_sessions(&server, &sessions).await?;

    let execute_reqs = (0..max).map(|w| execute(execute_worker(w))).collect();
    let loads = [
        load::per_worker(execute_reqs),
        mcp_calls(&sessions, max as u64 + 1),
    ];
    let mut runs = Vec::new();
    for c in CONCURRENCY {
        eprintln!("  c={c}: /execute explicit session, MCP tools/call");
        let p = cx.plan;
        let mut measured = load::interleaved(server.addr, c, p.warmup, window, rounds, &loads)
            .await
            .into_iter();
        let (Some(native), Some(mcp)) = (measured.next(), measured.next()) else {
            bail!("the load generator returned too few results");
        };
        native.require_no_errors(&format!("/execute at c={c}"))?;
        mcp.require_no_errors(&format!("MCP tools/call at c={c}"))?;
        runs.push((c, native, mcp));
    }
    for (c, native, mcp) in &runs {
        rows(section, *c, native, mcp);
    }
    let stalled = runs
        .iter()
        .map(|(_, _, mcp)| mcp.total().latency_ms(0.5))
        .any(|p50| (30.0..60.0).contains(&p50));
    if stalled {
        section.note(STALL);
    }
    for session in &sessions {
        close_session(&server, session).await?;
    }
    server.stop().await?;
    Ok(())
}

/// Why MCP calls take about 40 ms each while the server does not set `TCP_NODELAY`.
const STALL: &str = "MCP calls here take about 40 ms each whatever the concurrency: that is a \
     TCP stall, not work. An MCP answer is a chunked SSE stream the server writes in \
     several small writes (headers and the priming event, then the response event and \
     the last chunk); the server does not set `TCP_NODELAY` on its connections, so Nagle's \
     algorithm holds the second write until the first is acknowledged, and the client, \
     having nothing to send, delays that acknowledgement (40 ms minimum on Linux). \
     `/execute` answers in one write and does not stall. (When this note was written, \
     timing the chunks of one call showed the priming event after 0.6 ms and the response \
     event after 44 ms; with `TCP_QUICKACK` set on the client socket the whole answer took \
     0.2 ms.)";

fn execute_worker(w: usize) -> String {
    format!("bench-mcp-execute-{w}")
}

fn execute(worker: String) -> Req {
    Req::post(
        "execute",
        "/execute",
        &json!({"worker_id": worker, "action": ECHO, "params": {"text": "hi"}}),
    )
    .check(envelope_ok)
}

/// One MCP session: its id and the headers every request of it carries.
struct McpSession {
    id: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The headers of a request outside or inside an MCP session.
fn mcp_headers(session: Option<&str>) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    let mut headers = vec![
        (
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        ),
        (
            HeaderName::from_static("mcp-protocol-version"),
            HeaderValue::from_static(PROTOCOL),
        ),
    ];
    if let Some(id) = session {
        headers.push((
            HeaderName::from_static("mcp-session-id"),
            HeaderValue::from_str(id).context("session id header")?,
        ));
    }
    Ok(headers)
}

fn call_body(id: u64) -> Bytes {
    Bytes::from(
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {"name": MCP_ECHO, "arguments": {"text": "hi"}},
        })
        .to_string(),
    )
}

/// `POST /mcp` on `conn`, with a time limit; returns status, headers, body.
async fn post(
    conn: &mut Conn,
    headers: &[(HeaderName, HeaderValue)],
    body: Value,
) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
    let what = body["method"].as_str().unwrap_or("?").to_owned();
    tokio::time::timeout(
        SETUP_TIMEOUT,
        conn.send_with(&Method::POST, PATH, headers, Bytes::from(body.to_string())),
    )
    .await
    .with_context(|| format!("MCP {what} did not answer"))?
    .with_context(|| format!("MCP {what}"))
}

/// `initialize`, `notifications/initialized`, then one `tools/call` that opens
/// the session's fixture session (untimed).
async fn open_session(server: &Server) -> anyhow::Result<McpSession> {
    let mut conn = Conn::open(server.addr).await?;
    let initialize = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "agentflow-xtask-bench", "version": "0"},
        },
    });
    let (status, headers, body) = post(&mut conn, &mcp_headers(None)?, initialize).await?;
    ensure!(
        status == 200,
        "MCP initialize answered HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let id = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("MCP initialize answered without an Mcp-Session-Id")?
        .to_owned();
    let result = rpc_result(&body).map_err(anyhow::Error::msg)?;
    ensure!(
        result["protocolVersion"] == PROTOCOL,
        "MCP initialize negotiated another protocol: {result}"
    );
    let headers = mcp_headers(Some(&id))?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, body) = post(&mut conn, &headers, initialized).await?;
    ensure!(
        status == 202,
        "MCP notifications/initialized answered HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let call = serde_json::from_slice(&call_body(1))?;
    let (status, _, body) = post(&mut conn, &headers, call).await?;
    ensure!(
        status == 200,
        "MCP tools/call answered HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let result = rpc_result(&body).map_err(anyhow::Error::msg)?;
    ensure!(
        result["structuredContent"]["text"] == "hi",
        "MCP tools/call of {MCP_ECHO} answered {result}"
    );
    Ok(McpSession { id, headers })
}

/// `DELETE /mcp`: the client ends its MCP session (and with it the worker's
/// fixture session), as a well-behaved client does before the server stops.
async fn close_session(server: &Server, session: &McpSession) -> anyhow::Result<()> {
    let mut conn = Conn::open(server.addr).await?;
    let (status, _, body) = tokio::time::timeout(
        SETUP_TIMEOUT,
        conn.send_with(&Method::DELETE, PATH, &session.headers, Bytes::new()),
    )
    .await
    .context("MCP session DELETE did not answer")??;
    ensure!(
        (200..300).contains(&status),
        "MCP session DELETE answered HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// The calls do what the rows claim: each MCP session is a worker with an
/// explicit fixture session, as each `/execute` client is.
async fn check_sessions(server: &Server, sessions: &[McpSession]) -> anyhow::Result<()> {
    let api = server.api();
    let native = api
        .execute(&execute_worker(0), ECHO, json!({"text": "hi"}))
        .await?;
    ensure!(
        native["meta"]["temporary_session"] == Value::Bool(false),
        "an /execute client's call did not use its session: {native}"
    );
    let first = sessions.first().context("no MCP session")?;
    let listed = api
        .post(
            "/session/list",
            json!({"worker_id": format!("mcp-{}", first.id)}),
        )
        .await?;
    let held = listed["data"]["sessions"].as_array().map_or(0, Vec::len);
    ensure!(
        held == 1,
        "an MCP session's worker does not hold one fixture session: {listed}"
    );
    Ok(())
}

/// Worker `w` calls the tool in MCP session `w % len`; every call has its own
/// JSON-RPC id (ids must not repeat within a session, and the load runs of the
/// interleaved slices reuse the sessions).
fn mcp_calls(sessions: &[McpSession], first_id: u64) -> MakeReq {
    let headers: Vec<Arc<[(HeaderName, HeaderValue)]>> =
        sessions.iter().map(|s| s.headers.clone().into()).collect();
    let next_id = Arc::new(AtomicU64::new(first_id));
    let template = Req::post("mcp", PATH, &Value::Null).check(mcp_call_ok);
    Arc::new(move |w, _| {
        let mut req = template.clone();
        req.headers = headers[w % headers.len()].clone();
        req.body = call_body(next_id.fetch_add(1, Ordering::Relaxed));
        req
    })
}

/// The JSON-RPC message of an MCP answer: the body itself when it is JSON,
/// else the `data` of the SSE event that carries a response (events whose data
/// is empty, such as the priming event, are skipped).
fn rpc_message(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|_| "a body that is not UTF-8".to_owned())?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("a body that is not JSON ({e})"));
    }
    let mut data = String::new();
    // A blank line ends an event; the sentinel ends the last one.
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        } else if line.is_empty() && !data.trim().is_empty() {
            let message: Value = serde_json::from_str(&data)
                .map_err(|e| format!("an SSE event that is not JSON ({e}): {data}"))?;
            if message.get("result").is_some() || message.get("error").is_some() {
                return Ok(message);
            }
            data.clear();
        } else if line.is_empty() {
            data.clear();
        }
    }
    Err(format!(
        "no JSON-RPC response in the answer: {}",
        &text[..text.len().min(300)]
    ))
}

/// The `result` of a successful JSON-RPC response.
fn rpc_result(body: &[u8]) -> Result<Value, String> {
    let mut message = rpc_message(body)?;
    if let Some(error) = message.get("error") {
        return Err(format!("a JSON-RPC error: {error}"));
    }
    Ok(message["result"].take())
}

/// A `tools/call` answer that succeeded: a result, and not `isError: true`.
fn mcp_call_ok(body: &[u8]) -> Result<(), String> {
    let result = rpc_result(body)?;
    if !result.is_object() {
        return Err(format!("a result that is not an object: {result}"));
    }
    if result.get("isError") == Some(&Value::Bool(true)) {
        return Err(format!("a tool error: {result}"));
    }
    Ok(())
}

fn rows(section: &mut Section, c: usize, native: &Outcome, mcp: &Outcome) {
    let n = native.total();
    let n_rate = Fig::rate(native.total_rate(), "req/s");
    let n_p50 = Fig::ms(n.latency_ms(0.5));
    let n_p99 = Fig::ms(n.latency_ms(0.99));
    section.row(Row::new(
        format!("`/execute` explicit session c={c} throughput"),
        n_rate,
    ));
    section.row(Row::new(
        format!("`/execute` explicit session c={c} p50"),
        n_p50,
    ));
    section.row(Row::new(
        format!("`/execute` explicit session c={c} p99"),
        n_p99,
    ));
    let base = format!("/execute c={c}");
    let m = mcp.total();
    let rate = Fig::rate(mcp.total_rate(), "req/s");
    section.row(
        Row::new(format!("MCP `tools/call` c={c} throughput"), rate)
            .vs(&base, n_rate)
            .target("≥ 0.5× /execute", rate.value >= 0.5 * n_rate.value),
    );
    section.row(
        Row::new(
            format!("MCP `tools/call` c={c} p50"),
            Fig::ms(m.latency_ms(0.5)),
        )
        .vs(&base, n_p50),
    );
    section.row(
        Row::new(
            format!("MCP `tools/call` c={c} p99"),
            Fig::ms(m.latency_ms(0.99)),
        )
        .vs(&base, n_p99),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_found_after_the_priming_event() {
        let body = b"id: 0\nretry: 3000\ndata: \n\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],\"isError\":false}}\n\n";
        assert_eq!(mcp_call_ok(body), Ok(()));
        let crlf = b"data:\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n";
        assert_eq!(mcp_call_ok(crlf), Ok(()));
    }

    #[test]
    fn tool_errors_protocol_errors_and_empty_streams_fail() {
        let tool = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"isError\":true}}\n\n";
        assert!(mcp_call_ok(tool).unwrap_err().contains("tool error"));
        let rpc = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602}}\n\n";
        assert!(mcp_call_ok(rpc).unwrap_err().contains("JSON-RPC error"));
        assert!(mcp_call_ok(b"id: 0\ndata: \n\n").is_err());
    }

    #[test]
    fn envelopes_need_code_zero() {
        assert_eq!(envelope_ok(br#"{"code":0,"data":{}}"#), Ok(()));
        assert!(envelope_ok(br#"{"code":4001}"#).is_err());
    }
}
