//! Isolated plugins: `/execute` of a trivial tool on a server running the
//! fixture plugin in a runner process (`mode = "isolated"`) against the same
//! call on a server running it in process, both started side by side and
//! measured in alternating slices at concurrency 1 and 64; then the time from
//! a crash of the runner to serving again.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::{median, Ctx};
use crate::client::{envelope_ok, Api, Conn};
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};
use crate::stats::Outcome;

const CONCURRENCY: [usize; 2] = [1, 64];
/// How many times longer than the plan's window each load here is measured
/// (as in the host section, whose `/execute` figures these sit beside).
const LONGER: u32 = 2;
const ECHO_BLOCKING: &str = "fixture:echo_blocking";
const SEGFAULT: &str = "fixture:segfault";
/// The config table that moves the fixture into a runner process.
const ISOLATED: &str = "[plugins.fixture]\nmode = \"isolated\"";
/// The host's restart back-off after a second death in a row
/// (`BACKOFF_START` in `host/src/isolation/child.rs`; a first death restarts
/// at once).
const BACKOFF_MS: f64 = 250.0;
/// How long a crashed plugin may take to serve again before the run fails.
const SERVE_AGAIN_LIMIT: Duration = Duration::from_secs(30);
/// The longest one call of the crash rounds may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The worker of the crash rounds: no explicit session, so every call gets a
/// temporary one (an explicit session opened before a crash is broken after it).
const CRASH_WORKER: &str = "bench-crash";

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let fixture = cx.artifacts.plugin("fixture")?;
    section.note(format!(
        "Two servers run side by side in this section, from the same build, each with the \
         fixture plugin (`tests/fixture-plugin`) alone: one loads it in process (the default \
         `mode = \"in_process\"`), the other has `[plugins.fixture] mode = \"isolated\"`, so \
         the fixture's code runs in a child process (`agentflow plugin-runner --library …`) \
         that the server talks to over pipes with JSON lines (one server cannot hold both: \
         they are the same plugin name). The tool is `{ECHO_BLOCKING} {{\"text\": \"hi\"}}`, \
         not `fixture:echo`: `echo` is declared non-blocking, which in process the host calls \
         inline on its async threads, but it never does so for an isolated plugin (its calls \
         wait on a pipe), so `echo_blocking`, the same tool without that declaration, compares \
         like with like: on both servers each call goes to a call thread and back, and the \
         isolated one adds the round trip to the runner (the request and the reply as JSON \
         lines, a call thread in the runner, the host's reader thread). Each client has \
         its own worker and explicit session on each server, created before any timing. A call \
         counts as a success only with HTTP 200 and `code: 0`."
    ));
    let (window, rounds) = (cx.plan.window * LONGER, cx.plan.rounds * LONGER as usize);
    section.note(format!(
        "At each concurrency the two loads run in {} alternating slices of {} ms each ({} s \
         each in total, {LONGER}× the other sections' windows, as in the host section), one \
         server after the other (the one not measured is idle), so background load hits the \
         isolated figures and their in-process baseline alike. The overhead per call at c=1 \
         is given twice: as the difference of the p50 latencies, and as the difference of the \
         mean latencies, which with one client that sends each request when the previous \
         answer arrives is 1 ÷ throughput.",
        rounds,
        (window / rounds.max(1) as u32).as_millis(),
        window.as_secs_f64()
    ));
    let runs = calls(cx, fixture, window, rounds).await?;
    for (c, in_process, isolated) in &runs {
        rows(section, *c, in_process, isolated);
    }

    section.note(format!(
        "Crash to serving again: {} rounds, each on a fresh isolated server (so each crash is \
         its first one): start it, `/warmup` the fixture, call `{ECHO_BLOCKING}` once (the \
         baseline, spawn → listening → `/warmup` → first answer), then call `{SEGFAULT}`, \
         which ends the runner with SIGSEGV and must answer HTTP 502 with code 2001, then call \
         `{ECHO_BLOCKING}` back to back on one keep-alive connection (HTTP 503, code 2004, \
         while the plugin waits to restart) until it answers 200. The clock starts when the \
         `{SEGFAULT}` call is sent (the runner dies within microseconds of reading it) and \
         stops at that first 200. These calls come from a worker without an explicit session \
         (each gets a temporary one): an explicit session opened before a crash is reported \
         broken (HTTP 409) after it, by design. The host restarts a runner when a call needs \
         it, not before: at once after a first death, and after a back-off when deaths come \
         in a row ({BACKOFF_MS:.0} ms after the second, doubling while the runner that died \
         lived less than 60 s: `BACKOFF_START`, `STABLE_AFTER` in \
         `host/src/isolation/child.rs`), so crashes repeated on one server would time the \
         back-off, not the restart; hence a fresh server per round, where each crash is a \
         first one. The times below are the restart (starting `agentflow plugin-runner`, \
         loading the library, warming it up again with the last `/warmup` config) and the \
         call. Each round also checks that \
         `/warmup/status` then shows a new runner pid, `restarts: 1` and a SIGSEGV as the \
         last exit.",
        cx.plan.repeats
    ));
    let mut crashes = Vec::new();
    for round in 0..cx.plan.repeats {
        let crash = crash_round(cx, fixture).await?;
        eprintln!(
            "  crash {}: 502 after {:.2} ms, serving again after {:.1} ms ({} polls); cold start {:.0} ms",
            round + 1,
            crash.answered.as_secs_f64() * 1000.0,
            crash.serving.as_secs_f64() * 1000.0,
            crash.polls,
            crash.cold.as_secs_f64() * 1000.0
        );
        crashes.push(crash);
    }
    crash_rows(section, &crashes);
    Ok(())
}

/// Both servers, their sessions, and the interleaved loads at each concurrency:
/// `(c, in process, isolated)`.
async fn calls(
    cx: &Ctx<'_>,
    fixture: &std::path::Path,
    window: Duration,
    rounds: usize,
) -> anyhow::Result<Vec<(usize, Outcome, Outcome)>> {
    let in_process = Server::start(
        &cx.artifacts.agentflow,
        &ServerSpec::new().plugin("fixture", fixture),
    )
    .await?;
    let isolated = Server::start(&cx.artifacts.agentflow, &isolated_spec(fixture)).await?;
    let max = CONCURRENCY.iter().copied().max().unwrap_or(1);
    for (server, mode) in [(&in_process, "in_process"), (&isolated, "isolated")] {
        prepare(server, mode, max).await?;
    }
    let reqs = || (0..max).map(|w| echo(worker(w))).collect::<Vec<_>>();
    let targets = [
        (in_process.addr, load::per_worker(reqs())),
        (isolated.addr, load::per_worker(reqs())),
    ];
    let mut runs = Vec::new();
    for c in CONCURRENCY {
        eprintln!("  c={c}: /execute {ECHO_BLOCKING} in process, isolated");
        let mut measured = load::interleaved_on(&targets, c, cx.plan.warmup, window, rounds)
            .await
            .into_iter();
        let (Some(inp), Some(iso)) = (measured.next(), measured.next()) else {
            bail!("the load generator returned too few results");
        };
        inp.require_no_errors(&format!("in process at c={c}"))?;
        iso.require_no_errors(&format!("isolated at c={c}"))?;
        runs.push((c, inp, iso));
    }
    // The runner served every call: still the first one, never restarted.
    let process = fixture_status(&isolated.api()).await?["process"].clone();
    ensure!(
        process["restarts"] == 0 && process["pid"].is_u64(),
        "the isolated fixture's runner restarted during the measurements: {process}"
    );
    in_process.stop().await?;
    isolated.stop().await?;
    Ok(runs)
}

fn isolated_spec(fixture: &std::path::Path) -> ServerSpec {
    ServerSpec::new().plugin("fixture", fixture).toml(ISOLATED)
}

fn worker(w: usize) -> String {
    format!("bench-isolated-{w}")
}

fn echo(worker: String) -> Req {
    Req::post("execute", "/execute", &execute_body(&worker, ECHO_BLOCKING)).check(envelope_ok)
}

fn execute_body(worker: &str, action: &str) -> Value {
    json!({"worker_id": worker, "action": action, "params": {"text": "hi"}})
}

/// Warms the fixture, checks it runs where the rows say, and opens a session
/// for each client's worker.
async fn prepare(server: &Server, mode: &str, workers: usize) -> anyhow::Result<()> {
    let api = server.api();
    api.warmup(&["fixture"]).await?;
    let status = fixture_status(&api).await?;
    ensure!(
        status["mode"] == mode,
        "the fixture should run {mode}: {status}"
    );
    if mode == "isolated" {
        let pid = status["process"]["pid"].as_u64();
        ensure!(
            pid.is_some_and(|p| p != u64::from(server.pid)),
            "the isolated fixture has no runner process of its own: {status}"
        );
    }
    for w in 0..workers {
        api.create_session(&worker(w), "fixture", json!({})).await?;
    }
    let answer = api
        .execute(&worker(0), ECHO_BLOCKING, json!({"text": "hi"}))
        .await?;
    ensure!(
        answer["data"]["text"] == "hi",
        "{ECHO_BLOCKING} ({mode}) answered {answer}"
    );
    ensure!(
        answer["meta"]["temporary_session"] == Value::Bool(false),
        "a client's call ({mode}) did not use its session: {answer}"
    );
    Ok(())
}

async fn fixture_status(api: &Api) -> anyhow::Result<Value> {
    let status = api.get("/warmup/status").await?;
    let fixture = status["data"]["backends"]["fixture"].clone();
    ensure!(
        fixture.is_object(),
        "/warmup/status does not list the fixture: {status}"
    );
    Ok(fixture)
}

fn rows(section: &mut Section, c: usize, in_process: &Outcome, isolated: &Outcome) {
    let n = in_process.total();
    let n_rate = Fig::rate(in_process.total_rate(), "req/s");
    let n_p50 = Fig::ms(n.latency_ms(0.5));
    let n_p99 = Fig::ms(n.latency_ms(0.99));
    let label = format!("`/execute` `{ECHO_BLOCKING}`");
    section.row(Row::new(
        format!("in process: {label} c={c} throughput"),
        n_rate,
    ));
    section.row(Row::new(format!("in process: {label} c={c} p50"), n_p50));
    section.row(Row::new(format!("in process: {label} c={c} p99"), n_p99));
    let base = format!("in process c={c}");
    let s = isolated.total();
    let rate = Fig::rate(isolated.total_rate(), "req/s");
    let p50 = Fig::ms(s.latency_ms(0.5));
    let mut rate_row =
        Row::new(format!("isolated: {label} c={c} throughput"), rate).vs(&base, n_rate);
    if c == 64 {
        rate_row = rate_row.target("≥ 0.5× in process", rate.value >= 0.5 * n_rate.value);
    }
    section.row(rate_row);
    section.row(Row::new(format!("isolated: {label} c={c} p50"), p50).vs(&base, n_p50));
    section.row(
        Row::new(
            format!("isolated: {label} c={c} p99"),
            Fig::ms(s.latency_ms(0.99)),
        )
        .vs(&base, n_p99),
    );
    if c == 1 {
        let by_p50 = (p50.value - n_p50.value) * 1000.0;
        section.row(
            Row::new(
                "isolated overhead per call c=1: p50 isolated − p50 in process",
                Fig::us(by_p50),
            )
            .vs("in process p50", n_p50)
            .target("< 50 µs", by_p50 < 50.0),
        );
        let mean = |rate: f64| 1e6 / rate.max(1e-9);
        let n_mean = mean(n_rate.value);
        let by_mean = mean(rate.value) - n_mean;
        section.row(
            Row::new(
                "isolated overhead per call c=1: mean isolated − mean in process (1 ÷ throughput)",
                Fig::us(by_mean),
            )
            .vs("in process mean", Fig::us(n_mean))
            .target("< 50 µs", by_mean < 50.0),
        );
    }
}

/// One crash round's timings.
struct Crash {
    /// `fixture:segfault` sent → its 502 answer.
    answered: Duration,
    /// `fixture:segfault` sent → the first successful call after it.
    serving: Duration,
    /// Server spawned → its first successful call (the baseline).
    cold: Duration,
    /// Calls sent after the crash, the successful one included.
    polls: u64,
}

/// A fresh isolated server, one crash, and the time until it serves again.
async fn crash_round(cx: &Ctx<'_>, fixture: &std::path::Path) -> anyhow::Result<Crash> {
    let server = Server::start(&cx.artifacts.agentflow, &isolated_spec(fixture)).await?;
    let crash = crash_on(&server).await;
    server.stop().await?;
    crash
}

async fn crash_on(server: &Server) -> anyhow::Result<Crash> {
    let api = server.api();
    api.warmup(&["fixture"]).await?;
    let mut conn = Conn::open(server.addr).await?;
    let (status, answer) = call(&mut conn, ECHO_BLOCKING).await?;
    ensure!(
        status == 200 && answer["code"] == 0,
        "{ECHO_BLOCKING} on a fresh isolated server answered HTTP {status}: {answer}"
    );
    let cold = server.spawned.elapsed();
    let before = fixture_status(&api).await?["process"].clone();
    let first_pid = before["pid"]
        .as_u64()
        .with_context(|| format!("no runner pid in /warmup/status: {before}"))?;

    let sent = Instant::now();
    let (status, answer) = call(&mut conn, SEGFAULT).await?;
    let answered = sent.elapsed();
    ensure!(
        status == 502 && answer["code"] == 2001,
        "{SEGFAULT} answered HTTP {status} (expected 502, code 2001): {answer}"
    );
    let mut polls = 0u64;
    let serving = loop {
        if sent.elapsed() > SERVE_AGAIN_LIMIT {
            bail!(
                "the isolated fixture did not serve again within {} s of a crash",
                SERVE_AGAIN_LIMIT.as_secs()
            );
        }
        polls += 1;
        let (status, answer) = match call(&mut conn, ECHO_BLOCKING).await {
            Ok(answer) => answer,
            Err(e) => {
                eprintln!("  poll after the crash: {e:#}; reconnecting");
                conn = Conn::open(server.addr).await?;
                continue;
            }
        };
        match status {
            200 if answer["code"] == 0 => break sent.elapsed(),
            503 => {}
            _ => bail!("{ECHO_BLOCKING} after a crash answered HTTP {status}: {answer}"),
        }
    };
    let after = fixture_status(&api).await?["process"].clone();
    let restarted = after["restarts"] == 1
        && after["pid"].as_u64().is_some_and(|p| p != first_pid)
        && after["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("SIGSEGV"));
    ensure!(
        restarted,
        "after the crash /warmup/status should show a new runner, restarts 1 and a SIGSEGV: before {before}, after {after}"
    );
    Ok(Crash {
        answered,
        serving,
        cold,
        polls,
    })
}

/// `POST /execute` of `action` for the crash worker on `conn`; status and envelope.
async fn call(conn: &mut Conn, action: &str) -> anyhow::Result<(u16, Value)> {
    let body = Bytes::from(execute_body(CRASH_WORKER, action).to_string());
    let (status, bytes) =
        tokio::time::timeout(CALL_TIMEOUT, conn.send(&Method::POST, "/execute", body))
            .await
            .with_context(|| format!("{action} did not answer"))??;
    let envelope = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes).into_owned() }));
    Ok((status, envelope))
}

fn crash_rows(section: &mut Section, crashes: &[Crash]) {
    let pick = |f: fn(&Crash) -> Duration| crashes.iter().map(f).collect::<Vec<_>>();
    let mut serving = pick(|c| c.serving);
    let mut cold = pick(|c| c.cold);
    let mut answered = pick(|c| c.answered);
    let max = |v: &[Duration]| Fig::duration(v.iter().copied().max().unwrap_or_default());
    let n = crashes.len();
    section.row(
        Row::new(
            format!(
                "crash → serving again p50 of {n} (first crash on a fresh server: no back-off)"
            ),
            Fig::duration(median(&mut serving)),
        )
        .vs(
            "isolated server cold start → first call p50",
            Fig::duration(median(&mut cold)),
        ),
    );
    section.row(
        Row::new(format!("crash → serving again max of {n}"), max(&serving))
            .vs("cold start max", max(&cold)),
    );
    section.row(Row::new(
        format!("of which `{SEGFAULT}` sent → its 502 answer p50"),
        Fig::duration(median(&mut answered)),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_need_code_zero() {
        assert_eq!(envelope_ok(br#"{"code":0,"data":{}}"#), Ok(()));
        assert!(envelope_ok(br#"{"code":2001}"#).is_err());
        assert!(envelope_ok(b"not json").is_err());
    }
}
