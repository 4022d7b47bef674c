//! rag: warmup (build, then reopen) of a synthetic corpus, search latency per
//! mode and `rag:index` throughput — BM25 alone at the full corpus size, and
//! BM25 + dense embeddings at the size that fits the time budget — then
//! retrieval quality on the labelled questions of the default corpus.

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
const INDEX_BATCH: usize = 32;

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let lib = cx.artifacts.plugin("rag")?;
    let gen = cx
        .artifacts
        .gen_corpus
        .as_deref()
        .context("the corpus generator (agentflow-rag example gen_corpus) was not built")?;
    let (lexical, dense) = (cx.plan.rag_lexical_passages, cx.plan.rag_passages);
    section.note(format!(
        "Synthetic corpora from `plugins/rag/examples/gen_corpus.rs` (~100 words a passage), \
         plugin defaults otherwise. The target size is 100 000 passages. BM25 alone (`dense = \
         false`) is measured at {lexical} passages. {}",
        dense_size_note(cx, dense)
    ));
    section.note(
        "Warmup is `POST /warmup` on a fresh server: first building the index from the corpus, \
         then reopening it in a new server. Peak memory is the server's peak resident set \
         (VmHWM). Queries are a passage's title plus six of its words, cycled, one client. \
         `rag:index` adds passages under new ids, 32 per call. Compute-bound figures are \
         compared with the CPU reference.",
    );
    let work = tempfile::Builder::new()
        .prefix("agentflow-bench-rag-")
        .tempdir()?;
    for (n, with_dense) in [(lexical, false), (dense, true)] {
        let label = if with_dense {
            "BM25 + dense"
        } else {
            "BM25 only"
        };
        eprintln!("  {n} passages, {label}");
        let corpus = work.path().join(format!("corpus-{n}.jsonl"));
        generate(gen, n, &corpus).await?;
        let index = work.path().join(format!("index-{n}-{with_dense}"));
        let table = format!("{}dense = {with_dense}\n", rag_table(&index, &corpus));
        let setup = Setup {
            cx,
            spec: ServerSpec::new().plugin("rag", lib).toml(&table),
            corpus: &corpus,
            n,
            label,
        };
        setup.measure(section).await?;
    }
    eprintln!("  quality on the labelled questions");
    quality(cx, lib, section).await
}

/// Why the dense corpus has the size it has.
fn dense_size_note(cx: &Ctx<'_>, n: u64) -> String {
    let why = format!(
        "With dense embeddings (all-MiniLM-L6-v2 on the CPU, needed by the `dense` and \
         `hybrid` modes) every passage goes through the model, which on this machine's {} \
         cores runs at the build throughput below",
        cx.machine.cores
    );
    if n >= 100_000 {
        format!("{why}; this run measures them at the target size, {n} passages.")
    } else if cx.plan.mode == "full" {
        format!(
            "{why}, so the full run uses {n} passages to stay within its 10-minute budget \
             (`cargo xtask bench --rag-passages 100000` measures the target size)."
        )
    } else {
        format!("{why}; this quick run uses {n} passages.")
    }
}

/// One corpus size and index kind.
struct Setup<'a> {
    cx: &'a Ctx<'a>,
    spec: ServerSpec,
    corpus: &'a Path,
    n: u64,
    label: &'static str,
}

impl Setup<'_> {
    async fn measure(&self, section: &mut Section) -> anyhow::Result<()> {
        let (cx, n, label) = (self.cx, self.n, self.label);
        let server = Server::start(&cx.artifacts.agentflow, &self.spec).await?;
        let api = server.api();
        let started = Instant::now();
        api.warmup(&["rag"]).await?;
        let build = started.elapsed().as_secs_f64();
        let peak = procs::peak_rss_mib(server.pid).unwrap_or(f64::NAN);
        let stats = api.execute("bench-rag", "rag:stats", json!({})).await?["data"].clone();
        ensure!(
            stats["documents"] == n,
            "the index holds {} documents, not {n}",
            stats["documents"]
        );
        let at = format!("{n} passages, {label}");
        section.row(
            Row::new(
                format!("warmup, building the index ({at})"),
                Fig::secs(build),
            )
            .vs("CPU reference", cx.cpu_ms()),
        );
        section.row(
            Row::new(
                format!("build throughput ({at})"),
                Fig::rate(n as f64 / build, "passages/s"),
            )
            .vs("CPU reference", cx.cpu_rate()),
        );
        section.row(Row::new(
            format!("peak memory while building ({at})"),
            Fig::mib(peak),
        ));
        if let Some(bytes) = stats["index_size_bytes"].as_f64() {
            section.row(Row::new(
                format!("index size on disk ({at})"),
                Fig::mib(bytes / 1024.0 / 1024.0),
            ));
        }
        let queries = Arc::new(queries(self.corpus, n)?);
        for mode in modes(&stats) {
            let o = load::run(server.addr, cx.spec(1), search_reqs(&queries, mode)).await;
            o.require_no_errors(&format!("rag:search mode {mode}"))?;
            let s = o.total();
            section.row(
                Row::new(
                    format!("`rag:search` {mode} p50, top 10 ({at})"),
                    Fig::ms(s.latency_ms(0.5)),
                )
                .vs("CPU reference", cx.cpu_ms()),
            );
            section.row(
                Row::new(
                    format!("`rag:search` {mode} p99, top 10 ({at})"),
                    Fig::ms(s.latency_ms(0.99)),
                )
                .vs("CPU reference", cx.cpu_ms()),
            );
        }
        let docs = new_documents(self.corpus, cx.plan.rag_index_docs)?;
        let started = Instant::now();
        for batch in docs.chunks(INDEX_BATCH) {
            api.execute("bench-rag", "rag:index", json!({"documents": batch}))
                .await?;
        }
        let rate = docs.len() as f64 / started.elapsed().as_secs_f64();
        section.row(
            Row::new(
                format!("`rag:index` {} passages ({label})", docs.len()),
                Fig::rate(rate, "docs/s"),
            )
            .vs("CPU reference", cx.cpu_rate()),
        );
        server.stop().await?;

        let server = Server::start(&cx.artifacts.agentflow, &self.spec).await?;
        let started = Instant::now();
        server.api().warmup(&["rag"]).await?;
        let reopen = started.elapsed().as_secs_f64();
        let peak = procs::peak_rss_mib(server.pid).unwrap_or(f64::NAN);
        server.stop().await?;
        section.row(
            Row::new(
                format!("warmup, reopening the index ({at})"),
                Fig::secs(reopen),
            )
            .vs("CPU reference", cx.cpu_ms()),
        );
        section.row(Row::new(
            format!("peak memory after reopening ({at})"),
            Fig::mib(peak),
        ));
        Ok(())
    }
}

/// Requests cycling through the queries in one mode.
fn search_reqs(queries: &Arc<Vec<String>>, mode: &str) -> load::MakeReq {
    let reqs: Vec<Req> = queries
        .iter()
        .map(|q| {
            Req::post(
                "search",
                "/execute",
                &json!({"worker_id": "bench-rag", "action": "rag:search", "params": {"query": q, "mode": mode, "top_k": 10}}),
            )
        })
        .collect();
    load::cycle(reqs)
}

/// hit@1 and hit@5 per mode: the labelled questions against `default.jsonl`.
async fn quality(cx: &Ctx<'_>, lib: &Path, section: &mut Section) -> anyhow::Result<()> {
    let questions: Vec<(String, String)> =
        read_jsonl(&cx.root.join("plugins/rag/corpus/questions.jsonl"))?
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
        "no labelled questions in plugins/rag/corpus/questions.jsonl"
    );
    let spec = ServerSpec::new()
        .plugin("rag", lib)
        .toml(&cx.default_rag_table());
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
        let of = format!(
            "{} labelled questions, default corpus of {} passages",
            questions.len(),
            stats["documents"]
        );
        section.row(Row::new(
            format!("hit@1 {mode} ({of})"),
            Fig::percent(at1 as f64 / total),
        ));
        section.row(Row::new(
            format!("hit@5 {mode} ({of})"),
            Fig::percent(at5 as f64 / total),
        ));
    }
    server.stop().await?;
    Ok(())
}

async fn generate(gen: &Path, n: u64, out: &Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(gen)
        .arg(n.to_string())
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await?;
    ensure!(status.success(), "gen_corpus {n} failed ({status})");
    Ok(())
}

/// The `[plugins.rag.config]` table of an index built from `corpus`.
pub(super) fn rag_table(index: &Path, corpus: &Path) -> String {
    // JSON strings are valid TOML basic strings.
    format!(
        "[plugins.rag.config]\nindex_path = {}\ncorpus_path = {}\n",
        Value::String(index.display().to_string()),
        Value::String(corpus.display().to_string())
    )
}

fn modes(stats: &Value) -> Vec<&'static str> {
    // Known names only: the load closures need `'static` strings.
    let listed: Vec<&str> = stats["modes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ["hybrid", "bm25", "dense"]
        .into_iter()
        .filter(|m| listed.contains(m))
        .collect()
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
