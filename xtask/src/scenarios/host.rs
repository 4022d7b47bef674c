//! Host overhead: `/execute` of a trivial tool against `GET /health` on the
//! same server, at concurrency 1 and 64, on explicit and temporary sessions.

use anyhow::ensure;
use serde_json::{json, Value};

use super::Ctx;
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};
use crate::stats::Outcome;

const CONCURRENCY: [usize; 2] = [1, 64];
/// How many times longer than the plan's window each load here is measured.
const LONGER: u32 = 2;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let fixture = cx.artifacts.plugin("fixture")?;
    section.note(
        "Trivial tool: `fixture:echo {\"text\": \"hi\"}` from `tests/fixture-plugin` \
         (crate agentflow-fixture), alone on its server: it returns its params and \
         session id, so what is timed is the host (HTTP, JSON, schema validation, \
         session lookup and the plugin ABI). `fixture:echo` is declared non-blocking \
         (`Tools::non_blocking`), so the host calls it on its async threads; \
         `fixture:echo_blocking` is the same tool without that declaration, so each \
         call is also handed to a call thread and back, as every bash, vm and rag tool \
         is. Each client of an explicit-session run has its own worker and session; \
         each call of a temporary-session run creates and destroys a session.",
    );
    let (window, rounds) = (cx.plan.window * LONGER, cx.plan.rounds * LONGER as usize);
    section.note(format!(
        "At each concurrency the four loads run in {} alternating slices of {} ms each \
         ({} s each in total, {LONGER}× the other sections' windows: a p99 over a few \
         seconds moves with every hiccup of a shared machine), so background load hits a \
         figure and its baseline alike.",
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
        api.create_session(&explicit_worker(w), "fixture", json!({}))
            .await?;
    }
    check_sessions(&server).await?;

    let explicit_reqs = (0..max).map(|w| echo(explicit_worker(w), ECHO)).collect();
    let blocking_reqs = (0..max)
        .map(|w| echo(explicit_worker(w), ECHO_BLOCKING))
        .collect();
    let temporary_reqs = (0..max)
        .map(|w| echo(format!("bench-temp-{w}"), ECHO))
        .collect();
    let loads = [
        load::per_worker(vec![Req::get("health", "/health")]),
        load::per_worker(explicit_reqs),
        load::per_worker(blocking_reqs),
        load::per_worker(temporary_reqs),
    ];
    let mut runs = Vec::new();
    for c in CONCURRENCY {
        eprintln!("  c={c}: /health, /execute explicit (inline, call thread), /execute temporary");
        let p = cx.plan;
        let mut measured = load::interleaved(server.addr, c, p.warmup, window, rounds, &loads)
            .await
            .into_iter();
        let (Some(health), Some(explicit), Some(blocking), Some(temporary)) = (
            measured.next(),
            measured.next(),
            measured.next(),
            measured.next(),
        ) else {
            anyhow::bail!("the load generator returned too few results");
        };
        for (what, o) in [
            ("/health", &health),
            ("explicit", &explicit),
            ("explicit on a call thread", &blocking),
            ("temporary", &temporary),
        ] {
            o.require_no_errors(&format!("{what} at c={c}"))?;
        }
        runs.push((c, health, [explicit, blocking, temporary]));
    }
    for (c, health, [explicit, blocking, temporary]) in &runs {
        rows(section, *c, health, [explicit, blocking, temporary]);
        if *c > 1 {
            section.note(little(*c, explicit.total_rate()));
        }
    }
    section.note(
        "At c=1 the host's own work is not what sets the pace: between two requests the \
         machine's CPUs go idle, and waking an idle CPU (on a virtual machine, a trip \
         through the hypervisor) dominates each round trip. A call thread that has just \
         finished spins up to 200 us before it sleeps, which keeps a CPU awake for the next \
         request; that is why the call-thread and temporary-session rows (temporary sessions are \
         created and destroyed on call threads) can beat `/health` itself at c=1. \
         (When this note was written, `wrk -t1 -c1` against `/health` on a 2-core VM gave \
         about 6k req/s with the other CPU idle and about 22k req/s with a busy loop on it.)",
    );
    server.stop().await?;
    Ok(())
}

fn explicit_worker(w: usize) -> String {
    format!("bench-explicit-{w}")
}

const ECHO: &str = "fixture:echo";
const ECHO_BLOCKING: &str = "fixture:echo_blocking";

fn echo(worker: String, tool: &str) -> Req {
    Req::post(
        "execute",
        "/execute",
        &json!({"worker_id": worker, "action": tool, "params": {"text": "hi"}}),
    )
}

/// The calls do what the rows claim: an explicit worker's call runs on its
/// session, another worker's call on a temporary one.
async fn check_sessions(server: &Server) -> anyhow::Result<()> {
    let api = server.api();
    let on_session = api
        .execute(&explicit_worker(0), ECHO, json!({"text": "hi"}))
        .await?;
    let temporary = api
        .execute("bench-temp-check", ECHO, json!({"text": "hi"}))
        .await?;
    ensure!(
        on_session["data"]["text"] == "hi",
        "fixture:echo answered {on_session}"
    );
    ensure!(
        on_session["meta"]["temporary_session"] == Value::Bool(false),
        "an explicit worker's call did not use its session: {on_session}"
    );
    ensure!(
        temporary["meta"]["temporary_session"] == Value::Bool(true),
        "a worker without a session did not get a temporary one: {temporary}"
    );
    let listed = api
        .post("/session/list", json!({"worker_id": "bench-temp-check"}))
        .await?;
    let left = listed["data"]["sessions"].as_array().map_or(0, Vec::len);
    ensure!(left == 0, "a temporary session outlived its call: {listed}");
    Ok(())
}

fn rows(
    section: &mut Section,
    c: usize,
    health: &Outcome,
    [explicit, blocking, temporary]: [&Outcome; 3],
) {
    let h = health.total();
    let h_rate = Fig::rate(health.total_rate(), "req/s");
    let h_p50 = Fig::ms(h.latency_ms(0.5));
    let h_p99 = Fig::ms(h.latency_ms(0.99));
    section.row(Row::new(format!("`GET /health` c={c} throughput"), h_rate));
    section.row(Row::new(format!("`GET /health` c={c} p50"), h_p50));
    section.row(Row::new(format!("`GET /health` c={c} p99"), h_p99));
    let base = format!("/health c={c}");
    for (label, o) in [
        ("explicit session", explicit),
        ("explicit session, call thread", blocking),
        ("temporary session", temporary),
    ] {
        let s = o.total();
        let rate = Fig::rate(o.total_rate(), "req/s");
        let p99 = s.latency_ms(0.99);
        let mut rate_row =
            Row::new(format!("`/execute` {label} c={c} throughput"), rate).vs(&base, h_rate);
        let mut p99_row =
            Row::new(format!("`/execute` {label} c={c} p99"), Fig::ms(p99)).vs(&base, h_p99);
        if c == 64 && label == "explicit session" {
            rate_row = rate_row.target("≥ 0.5× /health", rate.value >= 0.5 * h_rate.value);
            p99_row = p99_row.target("< 5 ms", p99 < 5.0);
        }
        section.row(rate_row);
        section.row(
            Row::new(
                format!("`/execute` {label} c={c} p50"),
                Fig::ms(s.latency_ms(0.5)),
            )
            .vs(&base, h_p50),
        );
        section.row(p99_row);
    }
}

/// What Little's law says about latency at a fixed concurrency: each client
/// sends again only after its answer, so mean latency = clients ÷ throughput.
fn little(c: usize, rate: f64) -> String {
    format!(
        "With {c} clients that each wait for their answer, the mean latency is {c} ÷ \
         throughput (Little's law): {:.1} ms at this run's `/execute` explicit-session \
         throughput; a mean under 5 ms, let alone a p99, needs more than {:.0} req/s.",
        c as f64 / rate * 1000.0,
        c as f64 / 0.005
    )
}
