//! rag: warmup (build, then reopen) of a synthetic corpus, search latency per
//! mode, `rag:index` throughput, and retrieval quality on the labelled
//! questions of the default corpus.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use super::Ctx;
use crate::figure::Fig;
use crate::load::{self, Req};
use crate::procs;
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};

/// Distinct queries cycled through in the latency runs.
const QUERIES: u64 = 200;
/// Documents per `rag:index` call.
const INDEX_BATCH: usize = 64;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let lib = cx.artifacts.plugin("rag")?;
    let gen = cx
        .artifacts
        .gen_corpus
        .as_deref()
        .context("the corpus generator (agentflow-rag example gen_corpus) was not built")?;
    let n = cx.plan.rag_passages;
    let work = tempfile::Builder::new()
        .prefix("agentflow-bench-rag-")
        .tempdir()?;
    let corpus = work.path().join("corpus.jsonl");
    let index = work.path().join("index");
    generate(gen, n, &corpus).await?;
    section.note(format!(
        "Synthetic corpus of {n} passages (~100 words each) from `plugins/rag/examples/gen_corpus.rs`, \
         dense embeddings (all-MiniLM-L6-v2 on the CPU) and BM25, plugin defaults otherwise. {} \
         Warmup is `POST /warmup` on a fresh server: first building the index from the corpus, \
         then reopening it in a new server. Peak memory is the server's peak resident set \
         (VmHWM). Queries are a title plus six words of a passage, {QUERIES} of them cycled, \
         one client. `rag:index` sends new passages {INDEX_BATCH} per call. Compute-bound \
         figures are compared with the CPU reference.",
        size_note(cx, n)
    ));
    let spec = ServerSpec::new()
        .plugin("rag", lib)
        .toml(&rag_table(&index, &corpus));

    eprintln!("  build the index of {n} passages");
    let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let api = server.api();
    let started = Instant::now();
    api.warmup(&["rag"]).await?;
    let build = started.elapsed();
    let build_peak = procs::peak_rss_mib(server.pid).unwrap_or(f64::NAN);
    let stats = api.execute("bench-rag", "rag:stats", json!({})).await?["data"].clone();
    ensure!(
        stats["documents"] == n,
        "the index holds {} documents, not {n}",
        stats["documents"]
    );
    let modes = modes(&stats);
    section.row(
        Row::new(
            format!("warmup, building the index ({n} passages)"),
            Fig::secs(build.as_secs_f64()),
        )
        .vs("CPU reference", cx.cpu_ms()),
    );
    section.row(
        Row::new(
            "build throughput",
            Fig::rate(n as f64 / build.as_secs_f64(), "passages/s"),
        )
        .vs("CPU reference", cx.cpu_rate()),
    );
    section.row(Row::new("peak memory while building", Fig::mib(build_peak)));
    if let Some(bytes) = stats["index_size_bytes"].as_f64() {
        section.row(Row::new(
            "index size on disk",
            Fig::mib(bytes / 1024.0 / 1024.0),
        ));
    }

    let queries = Arc::new(queries(&corpus, n)?);
    for mode in &modes {
        eprintln!("  search, mode {mode}");
        let q = queries.clone();
        let mode_name: &'static str = leak(mode);
        let o = load::run(
            server.addr,
            cx.spec(1),
            Arc::new(move |_, i| {
                let query = &q[i as usize % q.len()];
                Req::post("search", "/execute", &json!({"worker_id": "bench-rag", "action": "rag:search", "params": {"query": query, "mode": mode_name, "top_k": 10}}))
            }),
        )
        .await;
        o.require_no_errors(&format!("rag:search mode {mode}"))?;
        let s = o.total();
        section.row(
            Row::new(
                format!("`rag:search` {mode} p50 (top 10)"),
                Fig::ms(s.latency_ms(0.5)),
            )
            .vs("CPU reference", cx.cpu_ms()),
        );
        section.row(
            Row::new(
                format!("`rag:search` {mode} p99 (top 10)"),
                Fig::ms(s.latency_ms(0.99)),
            )
            .vs("CPU reference", cx.cpu_ms()),
        );
    }

    eprintln!("  rag:index {} passages", cx.plan.rag_index_docs);
    let docs = new_documents(&corpus, cx.plan.rag_index_docs)?;
    let started = Instant::now();
    for batch in docs.chunks(INDEX_BATCH) {
        api.execute("bench-rag", "rag:index", json!({"documents": batch}))
            .await?;
    }
    let rate = docs.len() as f64 / started.elapsed().as_secs_f64();
    section.row(
        Row::new(
            format!(
                "`rag:index` ({} passages, {INDEX_BATCH} per call)",
                docs.len()
            ),
            Fig::rate(rate, "docs/s"),
        )
        .vs("CPU reference", cx.cpu_rate()),
    );
    server.stop().await?;

    eprintln!("  reopen the index");
    let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let started = Instant::now();
    server.api().warmup(&["rag"]).await?;
    let reopen = started.elapsed();
    let reopen_peak = procs::peak_rss_mib(server.pid).unwrap_or(f64::NAN);
    server.stop().await?;
    section.row(
        Row::new(
            "warmup, reopening the built index",
            Fig::secs(reopen.as_secs_f64()),
        )
        .vs("CPU reference", cx.cpu_ms()),
    );
    section.row(Row::new(
        "peak memory after reopening",
        Fig::mib(reopen_peak),
    ));

    eprintln!("  quality on the labelled questions");
    quality(cx, lib, work.path(), section).await
}

/// hit@1 and hit@5 per mode: the labelled questions against `default.jsonl`.
async fn quality(
    cx: &Ctx<'_>,
    lib: &Path,
    work: &Path,
    section: &mut Section,
) -> anyhow::Result<()> {
    let dir = cx.root.join("plugins/rag/corpus");
    let corpus = dir.join("default.jsonl");
    let questions: Vec<(String, String)> = read_jsonl(&dir.join("questions.jsonl"))?
        .into_iter()
        .filter_map(|q| {
            Some((
                q["question"].as_str()?.to_string(),
                q["answer_id"].as_str()?.to_string(),
            ))
        })
        .collect();
    ensure!(
        !questions.is_empty(),
        "no labelled questions in {}",
        dir.display()
    );
    let spec = ServerSpec::new()
        .plugin("rag", lib)
        .toml(&rag_table(&work.join("quality-index"), &corpus));
    let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
    let api = server.api();
    api.warmup(&["rag"]).await?;
    let stats = api.execute("bench-rag", "rag:stats", json!({})).await?["data"].clone();
    for mode in modes(&stats) {
        let (mut at1, mut at5) = (0, 0);
        for (question, answer) in &questions {
            let r = api
                .execute(
                    "bench-rag",
                    "rag:search",
                    json!({"query": question, "mode": mode, "top_k": 5}),
                )
                .await?;
            let ids: Vec<&str> = r["data"]["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["id"].as_str())
                .collect();
            at1 += usize::from(ids.first() == Some(&answer.as_str()));
            at5 += usize::from(ids.contains(&answer.as_str()));
        }
        let total = questions.len() as f64;
        section.row(Row::new(
            format!(
                "hit@1 {mode} ({} labelled questions, default corpus)",
                questions.len()
            ),
            Fig::percent(at1 as f64 / total),
        ));
        section.row(Row::new(
            format!("hit@5 {mode}"),
            Fig::percent(at5 as f64 / total),
        ));
    }
    server.stop().await?;
    Ok(())
}

fn size_note(cx: &Ctx<'_>, n: u64) -> String {
    if n >= 100_000 {
        String::new()
    } else if cx.plan.mode == "full" {
        format!(
            "The target size is 100 000 passages; embedding them on this machine's {} cores \
             takes longer than the 10-minute budget of the whole run, so the full run uses \
             {n} (`cargo xtask bench --rag-passages 100000` measures the full size).",
            cx.machine.cores
        )
    } else {
        "Quick mode: a small corpus.".into()
    }
}

async fn generate(gen: &Path, n: u64, out: &Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(gen)
        .arg(n.to_string())
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    ensure!(status.success(), "gen_corpus {n} failed ({status})");
    Ok(())
}

/// The `[plugins.rag.config]` table of an index built from `corpus`.
pub(super) fn rag_table(index: &Path, corpus: &Path) -> String {
    format!(
        "[plugins.rag.config]\nindex_path = {}\ncorpus_path = {}\n",
        toml_string(index),
        toml_string(corpus)
    )
}

/// A TOML basic string (JSON string syntax is a subset of it for paths).
fn toml_string(p: &Path) -> String {
    Value::String(p.display().to_string()).to_string()
}

fn modes(stats: &Value) -> Vec<String> {
    let listed: Vec<String> = stats["modes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(String::from))
        .collect();
    if listed.is_empty() {
        vec!["bm25".into()]
    } else {
        listed
    }
}

/// Mode names live for the whole run; the load closures need `'static`.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn passage_text(v: &Value) -> String {
    ["contents", "content", "text"]
        .iter()
        .find_map(|k| v[*k].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Realistic lookups for a synthetic corpus: a passage's title and six of its words.
fn queries(corpus: &Path, n: u64) -> anyhow::Result<Vec<String>> {
    let passages = read_jsonl(corpus)?;
    ensure!(!passages.is_empty(), "the corpus is empty");
    Ok((0..QUERIES.min(n))
        .map(|i| {
            let p = &passages[(i * 7919 % n) as usize % passages.len()];
            let text = passage_text(p);
            let words: Vec<&str> = text.split_whitespace().skip(3).take(6).collect();
            format!(
                "{} {}",
                p["title"].as_str().unwrap_or_default(),
                words.join(" ")
            )
        })
        .collect())
}

/// Passages of the corpus under new ids, to add with `rag:index`.
fn new_documents(corpus: &Path, count: usize) -> anyhow::Result<Vec<Value>> {
    let passages = read_jsonl(corpus)?;
    ensure!(!passages.is_empty(), "the corpus is empty");
    Ok((0..count)
        .map(|k| {
            let p = &passages[k % passages.len()];
            json!({"id": format!("bench-new-{k}"), "title": p["title"], "content": passage_text(p)})
        })
        .collect())
}
