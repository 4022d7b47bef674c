//! Benchmarks of the rag plugin, driven in-process through its tools.
//!
//! ```text
//! bench build CORPUS.jsonl INDEX_DIR [bm25]  # build time, docs/s, peak RSS
//! bench search INDEX_DIR [QUERIES] [bm25]     # open time, latency per mode, peak RSS
//! bench embed N                              # `index` throughput for N synthetic passages
//! ```
//! Build in release for production numbers: `cargo run --release -p agentflow-rag --example bench -- ...`.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use agentflow_rag::{synth, RagPlugin};
use plugin_api::{CallContext, Plugin};
use serde_json::{json, Value};

fn call(plugin: &RagPlugin, tool: &str, params: Value) -> Result<Value, String> {
    let cancel = AtomicBool::new(false);
    let cx = CallContext::new(
        None,
        "",
        "bench",
        &cancel,
        SystemTime::now() + Duration::from_secs(86_400),
    );
    RagPlugin::tools()
        .call(plugin, &cx, tool, params)
        .map_err(|e| format!("{tool}: {:?}: {}", e.kind, e.message))
}

/// Peak resident set size of this process so far, from /proc.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) this process used so far, in seconds: on a
/// shared machine a steadier measure of work than wall-clock time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The 1-minute load average, to judge how shared the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_default()
}

fn warm(config: Value) -> Result<RagPlugin, String> {
    RagPlugin::warmup(&config).map_err(|e| format!("warmup: {:?}: {}", e.kind, e.message))
}

fn build(corpus: &str, index: &str, bm25_only: bool) -> Result<(), String> {
    let started = Instant::now();
    let cpu = cpu_seconds();
    let plugin = warm(json!({"index_path": index, "corpus_path": corpus, "dense": !bm25_only}))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let stats = call(&plugin, "stats", json!({}))?;
    let docs = stats["documents"].as_f64().unwrap_or(0.0);
    println!(
        "build: {docs} documents in {seconds:.1} s ({:.1} docs/s; {cpu:.1} CPU-s, {:.1} docs per CPU-s; load {}), peak RSS {:.0} MB, index {:.1} MB on disk",
        docs / seconds,
        docs / cpu.max(1e-9),
        load_average(),
        peak_rss_mb(),
        stats["index_size_bytes"].as_f64().unwrap_or(0.0) / 1e6
    );
    println!("stats: {stats}");
    Ok(())
}

fn search(index: &str, queries: usize, bm25_only: bool) -> Result<(), String> {
    let started = Instant::now();
    let plugin = warm(json!({"index_path": index, "dense": !bm25_only}))?;
    println!(
        "open: {:.2} s (model + index + embeddings), peak RSS {:.0} MB",
        started.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
    let stats = call(&plugin, "stats", json!({}))?;
    let modes: Vec<String> = stats["modes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(String::from))
        .collect();
    // Titles and words of synthetic passages: realistic lookups for a synthetic corpus.
    let texts: Vec<String> = (0..queries as u64)
        .map(|i| {
            let p = synth::passage(i * 7919 % 10_000);
            let words: Vec<&str> = p.text.split_whitespace().skip(3).take(6).collect();
            format!("{} {}", p.title, words.join(" "))
        })
        .collect();
    for mode in &modes {
        let mut latencies = Vec::new();
        for q in &texts {
            let t = Instant::now();
            call(
                &plugin,
                "search",
                json!({"query": q, "mode": mode, "top_k": 10}),
            )?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(f64::total_cmp);
        let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
        println!(
            "search {mode:>6}: {} queries, mean {mean:.1} ms, p50 {:.1} ms, p95 {:.1} ms",
            latencies.len(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 95 / 100]
        );
        let t = Instant::now();
        call(
            &plugin,
            "batch_search",
            json!({"queries": texts, "mode": mode, "top_k": 10}),
        )?;
        println!(
            "batch_search {mode:>6}: {} queries in {:.1} ms",
            texts.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    println!("peak RSS {:.0} MB", peak_rss_mb());
    Ok(())
}

fn embed(n: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("rag-bench-embed-{}", std::process::id()));
    let plugin = warm(json!({"index_path": dir}))?;
    let documents: Vec<Value> = (0..n as u64)
        .map(|i| {
            let p = synth::passage(i);
            json!({"id": p.id, "title": p.title, "content": p.text})
        })
        .collect();
    let started = Instant::now();
    let cpu = cpu_seconds();
    for chunk in documents.chunks(256) {
        call(&plugin, "index", json!({"documents": chunk}))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    println!(
        "index (embed + commit): {n} passages in {seconds:.1} s = {:.1} passages/s; {cpu:.1} CPU-s = {:.1} passages per CPU-s; load {}",
        n as f64 / seconds,
        n as f64 / cpu.max(1e-9),
        load_average()
    );
    drop(plugin);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let result = match (arg(0), arg(1), arg(2)) {
        (Some("build"), Some(corpus), Some(index)) => build(corpus, index, arg(3) == Some("bm25")),
        (Some("search"), Some(index), _) => {
            search(index, arg(2).and_then(|n| n.parse().ok()).unwrap_or(100), arg(3) == Some("bm25"))
        }
        (Some("embed"), Some(n), _) => match n.parse() {
            Ok(n) => embed(n),
            Err(_) => Err(format!("not a number: {n}")),
        },
        _ => Err(
            "usage: bench build CORPUS INDEX [bm25] | bench search INDEX [QUERIES] [bm25] | bench embed N"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
