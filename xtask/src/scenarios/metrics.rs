//! The cost of metrics: trivial `/execute` calls at c=64 on a server that
//! records metrics (the default) beside one with `server.metrics = false`,
//! started side by side and loaded in alternating slices.

use anyhow::ensure;
use serde_json::json;

use super::Ctx;
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

const CONCURRENCY: usize = 64;
/// How many times longer than the plan's window the load is measured (as in
/// the host-overhead section: a ratio near 1 needs a steady figure).
const LONGER: u32 = 2;
const ECHO: &str = "fixture:echo";

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let fixture = cx.artifacts.plugin("fixture")?;
    section.note(
        "`fixture:echo {\"text\": \"hi\"}` (the host-overhead section's trivial tool) at \
         c=64, each client on its own worker and session, on two servers started side by \
         side: one recording metrics (the default: per-route request counters and \
         latency histogram, per-tool call counters and latency histogram), one with \
         `server.metrics = false`. Gauges cost nothing per call: they are read when \
         `/metrics` is scraped, which nothing does during the load.",
    );
    let (window, rounds) = (cx.plan.window * LONGER, cx.plan.rounds * LONGER as usize);
    let spec = ServerSpec::new().plugin("fixture", fixture);
    let on = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let off = Server::start(
        &cx.artifacts.agentflow,
        &spec.clone().server("metrics = false"),
    )
    .await?;
    let mut loads = Vec::new();
    for server in [&on, &off] {
        let api = server.api();
        api.warmup(&["fixture"]).await?;
        for w in 0..CONCURRENCY {
            api.create_session(&worker(w), "fixture", json!({})).await?;
        }
        let reqs = (0..CONCURRENCY).map(|w| echo(worker(w))).collect();
        loads.push((server.addr, load::per_worker(reqs)));
    }
    let (status, _) = off
        .api()
        .request(hyper::Method::GET, "/metrics", None)
        .await?;
    ensure!(
        status == 404,
        "the server without metrics answered /metrics with {status}"
    );

    eprintln!("  c={CONCURRENCY}: /execute with metrics, without");
    let p = cx.plan;
    let mut measured = load::interleaved_on(&loads, CONCURRENCY, p.warmup, window, rounds)
        .await
        .into_iter();
    let (Some(with), Some(without)) = (measured.next(), measured.next()) else {
        anyhow::bail!("the load generator returned too few results");
    };
    with.require_no_errors("with metrics")?;
    without.require_no_errors("without metrics")?;

    // The calls were counted.
    let (status, text) = on
        .api()
        .request(hyper::Method::GET, "/metrics", None)
        .await?;
    let text = text["raw"].as_str().unwrap_or_default().to_string();
    ensure!(status == 200, "/metrics answered {status}");
    let counted = text
        .lines()
        .find(|l| l.starts_with("agentflow_tool_calls_total{tool=\"fixture:echo\",result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    ensure!(
        counted >= with.total().ok as f64,
        "/metrics counted {counted} calls, the load made at least {}",
        with.total().ok
    );

    let base = "metrics off";
    let off_rate = Fig::rate(without.total_rate(), "req/s");
    let on_rate = Fig::rate(with.total_rate(), "req/s");
    let off_p99 = Fig::ms(without.total().latency_ms(0.99));
    let on_p99 = Fig::ms(with.total().latency_ms(0.99));
    section.row(Row::new(
        format!("`/execute` c={CONCURRENCY} throughput, metrics off"),
        off_rate,
    ));
    section.row(
        Row::new(
            format!("`/execute` c={CONCURRENCY} throughput, metrics on"),
            on_rate,
        )
        .vs(base, off_rate)
        .target("≥ 0.95× off", on_rate.value >= 0.95 * off_rate.value),
    );
    section.row(Row::new(
        format!("`/execute` c={CONCURRENCY} p99, metrics off"),
        off_p99,
    ));
    section.row(
        Row::new(
            format!("`/execute` c={CONCURRENCY} p99, metrics on"),
            on_p99,
        )
        .vs(base, off_p99),
    );
    on.stop().await?;
    off.stop().await?;
    Ok(())
}

fn worker(w: usize) -> String {
    format!("bench-metrics-{w}")
}

fn echo(worker: String) -> Req {
    Req::post(
        "execute",
        "/execute",
        &json!({"worker_id": worker, "action": ECHO, "params": {"text": "hi"}}),
    )
}
