//! rag over a Faiss index, at the size (1M × 384 synthetic vectors):
//! search latency, memory and open time of flat, HNSW and IVF indexes through
//! this project's Faiss binding (`plugins/rag/examples/faiss_search.rs`) beside
//! the Python `faiss` package (`faiss_search.py`) on the same files and query
//! vectors; then `rag:search` throughput through the real server at c=1 and
//! c=32, with query batching on and off.
//!
//! The vectors, indexes and corpus are made once and kept under the target
//! directory (`<target>/bench-faiss/n<N>/`): building HNSW takes minutes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use super::Ctx;
use crate::client::envelope_ok;
use crate::figure::Fig;
use crate::load::{self, MakeReq, Req, Spec};
use crate::procs;
use crate::report::{Row, Section};
use crate::server::{Server, ServerSpec};
use crate::stats::Outcome;

/// Hits per query, everywhere in this section.
const K: usize = 10;
/// Concurrent clients of the high-concurrency throughput runs.
const MANY: usize = 32;
/// Distinct query texts cycled through the server.
const TEXTS: usize = 200;
/// Threads each side may use for one search (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS).
const SEARCH_THREADS: &str = "1";

pub async fn run(cx: &Ctx<'_>, section: &mut Section) -> anyhow::Result<()> {
    let lib = cx.artifacts.plugin("rag")?;
    let search = cx
        .artifacts
        .faiss_search
        .as_deref()
        .context("the agentflow-rag example faiss_search was not built")?;
    let gen = cx
        .artifacts
        .gen_corpus
        .as_deref()
        .context("the corpus generator (agentflow-rag example gen_corpus) was not built")?;
    let n = cx.plan.faiss_vectors;
    let dir = cache_dir(cx, n);
    eprintln!("  data in {}", dir.display());
    let manifest = make_data(cx.root, &dir, n).await?;
    let corpus = make_corpus(gen, &dir, n).await?;
    describe(cx, section, &manifest, n);
    compare(cx, section, search, &dir).await?;
    let small = manifest["params"]["small_vectors"]
        .as_u64()
        .unwrap_or(n / 10);
    for (file, vectors) in [("flat.index", n), ("flat_small.index", small)] {
        throughput(cx, section, lib, &dir.join(file), vectors, &corpus).await?;
    }
    Ok(())
}

/// `<target>/bench-faiss/n<N>`: the target directory is the one the server
/// binary was built into (`<target>/release/agentflow`).
fn cache_dir(cx: &Ctx<'_>, n: u64) -> PathBuf {
    let target = cx
        .artifacts
        .agentflow
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| cx.root.join("target"), Path::to_path_buf);
    target.join("bench-faiss").join(format!("n{n}"))
}

/// Runs `faiss_bench_data.py` (which reuses what it made before) and reads its manifest.
async fn make_data(root: &Path, dir: &Path, n: u64) -> anyhow::Result<Value> {
    let script = root.join("plugins/rag/examples/faiss_bench_data.py");
    let status = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(n.to_string())
        .stdout(Stdio::null())
        .status()
        .await
        .context("cannot run python3 (scripts/setup.sh installs it with faiss-cpu and numpy)")?;
    ensure!(status.success(), "{} failed ({status})", script.display());
    let text = std::fs::read_to_string(dir.join("manifest.json"))?;
    Ok(serde_json::from_str(&text)?)
}

/// A synthetic corpus of `n` passages beside the indexes (label i is line i).
async fn make_corpus(gen: &Path, dir: &Path, n: u64) -> anyhow::Result<PathBuf> {
    let corpus = dir.join(format!("corpus-{n}.jsonl"));
    if corpus.exists() {
        return Ok(corpus);
    }
    let partial = dir.join(format!("corpus-{n}.jsonl.partial"));
    let status = tokio::process::Command::new(gen)
        .arg(n.to_string())
        .arg(&partial)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    ensure!(status.success(), "gen_corpus {n} failed ({status})");
    std::fs::rename(&partial, &corpus)?;
    Ok(corpus)
}

fn describe(cx: &Ctx<'_>, section: &mut Section, manifest: &Value, n: u64) {
    let p = &manifest["params"];
    let built = &manifest["build_seconds"];
    let secs = |name: &str| built[name].as_f64().unwrap_or(f64::NAN);
    section.note(format!(
        "Data: {n} synthetic unit vectors of {dims} dimensions and {queries} query vectors from \
         the same distribution, made by `plugins/rag/examples/faiss_bench_data.py` (seeded numpy: \
         each vector is one of {centres} random unit centres plus Gaussian noise, normalised, so \
         the data has neighbourhoods as embeddings do; uniform random vectors in 384 dimensions \
         have none) and written by the Python `faiss` package {version} as `IndexFlatIP`, \
         `IndexHNSWFlat` (M = {m}, efConstruction = {efc}, efSearch = {efs} stored in the file) \
         and `IndexIVFFlat` ({nlist} lists trained on {train} vectors, nprobe = {nprobe} stored \
         in the file), all inner product. They are made once and kept under the target directory \
         (`target/bench-faiss/`, never committed); building them on this machine's {cores} cores \
         took: flat {flat:.0} s, IVF {ivf:.0} s (training and adding), HNSW {hnsw:.0} s \
         ({when}{load}).",
        dims = p["dims"],
        queries = p["queries"],
        centres = p["centres"],
        version = manifest["faiss_version"].as_str().unwrap_or("?"),
        m = p["hnsw_m"],
        efc = p["hnsw_ef_construction"],
        efs = p["hnsw_ef_search"],
        nlist = p["ivf_nlist"],
        train = p["ivf_train"],
        nprobe = p["ivf_nprobe"],
        cores = cx.machine.cores,
        flat = secs("flat"),
        ivf = secs("ivf"),
        hnsw = secs("hnsw"),
        when = manifest["built_at"].as_str().unwrap_or("?"),
        load = manifest["load_average"]
            .as_str()
            .map(|l| format!(", load average {l} when done"))
            .unwrap_or_default(),
    ));
}

/// What one search process reported.
struct Side {
    open_seconds: Vec<f64>,
    latencies_us: Vec<f64>,
    rss_kib: Vec<f64>,
    index_kib: Vec<f64>,
    labels: Vec<i64>,
    mapped: bool,
}

impl Side {
    fn new() -> Self {
        Self {
            open_seconds: Vec::new(),
            latencies_us: Vec::new(),
            rss_kib: Vec::new(),
            index_kib: Vec::new(),
            labels: Vec::new(),
            mapped: false,
        }
    }

    fn latency_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied().unwrap_or(f64::NAN) / 1000.0
    }
}

fn middle(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Flat, HNSW and IVF: this project's binding beside Python's, in
/// alternating processes over slices of the same queries.
async fn compare(
    cx: &Ctx<'_>,
    section: &mut Section,
    search: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    let rounds = cx.plan.rounds.clamp(1, 3);
    let script = cx.root.join("plugins/rag/examples/faiss_search.py");
    section.note(format!(
        "Search, open and memory: for each index, `plugins/rag/examples/faiss_search.rs` \
         (this project: `agentflow_rag::faiss_index::FaissIndex`, the plugin's binding of Debian's \
         libfaiss) and `plugins/rag/examples/faiss_search.py` (the Python `faiss` package, opening \
         the file as the AgentFlow Python server does: `faiss.read_index(path, IO_FLAG_MMAP | \
         IO_FLAG_READ_ONLY)`, falling back to a plain read) run as separate processes on the same \
         file and query vectors, {rounds} times each, alternating, each time over the next slice \
         of the queries ({flat} for flat, whose every query reads all the vectors; {other} for \
         HNSW and IVF), after {warm} untimed warm-up queries. One query per `search` call, k = {K}, \
         `OMP_NUM_THREADS={SEARCH_THREADS}` and `OPENBLAS_NUM_THREADS={SEARCH_THREADS}` on both \
         sides (a single query runs on one thread in Faiss anyway; pinning both makes the \
         comparison one core against one core). Latency is timed inside each process around the \
         `search` call. Open time is the `read_index` call (median of the runs); the files were \
         written minutes before or read by the previous run, so they come from the page cache, not \
         the disk. RSS is the process's resident memory after opening and searching (median); \
         \"of which the index\" is the growth of RSS over opening it (the Python process starts \
         with the interpreter, numpy and faiss loaded). Debian's libfaiss 1.7.3 is compiled for \
         the x86-64 baseline (its `distances_simd.cpp.o` has no AVX instruction), while the \
         Python faiss-cpu wheel picks AVX-512 code on this CPU: flat search, a pure scan of \
         the vectors, shows the difference most.",
        flat = cx.plan.faiss_flat_queries,
        other = cx.plan.faiss_queries,
        warm = 20,
    ));
    let mut flat_labels: Option<(Vec<i64>, Vec<i64>)> = None;
    for (name, file, count) in [
        ("flat", "flat.index", cx.plan.faiss_flat_queries),
        ("HNSW", "hnsw.index", cx.plan.faiss_queries),
        ("IVF", "ivf.index", cx.plan.faiss_queries),
    ] {
        eprintln!("  {name}: {count} queries each side");
        let index = dir.join(file);
        let (mut ours, mut python) = (Side::new(), Side::new());
        for round in 0..rounds {
            let first = round * count / rounds;
            let slice = (round + 1) * count / rounds - first;
            let mut rust_cmd = tokio::process::Command::new(search);
            let mut py_cmd = tokio::process::Command::new("python3");
            py_cmd.arg(&script);
            let runs = [(&mut rust_cmd, &mut ours), (&mut py_cmd, &mut python)];
            // Alternate which side goes first, so neither always follows the other.
            let order: Vec<_> = if round % 2 == 0 {
                runs.into_iter().collect()
            } else {
                runs.into_iter().rev().collect()
            };
            for (cmd, side) in order {
                search_once(cmd, &index, dir, first, slice, side).await?;
            }
        }
        let at = format!("{name}, {} vectors", cx.plan.faiss_vectors);
        let py = "Python faiss";
        section.row(
            Row::new(
                format!(
                    "open {at}{}",
                    if ours.mapped {
                        " (memory-mapped)"
                    } else {
                        " (read into memory)"
                    }
                ),
                Fig::ms(middle(&ours.open_seconds) * 1000.0),
            )
            .vs(py, Fig::ms(middle(&python.open_seconds) * 1000.0)),
        );
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            section.row(
                Row::new(
                    format!("search {at}, one query, {label}"),
                    Fig::ms(ours.latency_ms(q)),
                )
                .vs(py, Fig::ms(python.latency_ms(q))),
            );
        }
        section.row(
            Row::new(
                format!("RSS after open + searches, {at}"),
                Fig::mib(middle(&ours.rss_kib) / 1024.0),
            )
            .vs(py, Fig::mib(middle(&python.rss_kib) / 1024.0)),
        );
        section.row(
            Row::new(
                format!("of which the index (RSS growth over opening), {at}"),
                Fig::mib(middle(&ours.index_kib) / 1024.0),
            )
            .vs(py, Fig::mib(middle(&python.index_kib) / 1024.0)),
        );
        let same = ours
            .labels
            .chunks(K)
            .zip(python.labels.chunks(K))
            .filter(|(a, b)| a == b)
            .count();
        let queries = ours.labels.len() / K;
        section.row(Row::text(
            format!("top-{K} labels equal to Python's, in order, {at}"),
            format!("{same} of {queries} queries"),
        ));
        match &flat_labels {
            None => flat_labels = Some((ours.labels, python.labels)),
            Some((exact_ours, exact_python)) => {
                section.row(
                    Row::new(
                        format!(
                            "recall@{K} against flat, {at} (first {} queries)",
                            exact_ours.len() / K
                        ),
                        Fig::percent(recall(&ours.labels, exact_ours)),
                    )
                    .vs(py, Fig::percent(recall(&python.labels, exact_python))),
                );
            }
        }
    }
    Ok(())
}

/// Runs one search process over queries `first..first + count`.
async fn search_once(
    cmd: &mut tokio::process::Command,
    index: &Path,
    dir: &Path,
    first: usize,
    count: usize,
    side: &mut Side,
) -> anyhow::Result<()> {
    let labels = tempfile::NamedTempFile::new()?;
    let out = cmd
        .arg(index)
        .arg(dir.join("queries.f32"))
        .arg(dir.join("warm.f32"))
        .arg(K.to_string())
        .arg(first.to_string())
        .arg(count.to_string())
        .arg(labels.path())
        .env("OMP_NUM_THREADS", SEARCH_THREADS)
        .env("OPENBLAS_NUM_THREADS", SEARCH_THREADS)
        .stdin(Stdio::null())
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "{:?} failed ({}): {}",
        cmd.as_std().get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{:?} printed no JSON", cmd.as_std().get_program()))?;
    let kib = |field: &str| report[field].as_f64().unwrap_or(f64::NAN);
    side.open_seconds
        .push(report["open_seconds"].as_f64().unwrap_or(f64::NAN));
    side.latencies_us.extend(
        report["latencies_us"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64),
    );
    side.rss_kib.push(kib("rss_kib"));
    side.index_kib
        .push(kib("rss_after_open_kib") - kib("rss_before_kib"));
    side.mapped = report["mapped"].as_bool().unwrap_or(false);
    let bytes = std::fs::read(labels.path())?;
    ensure!(
        bytes.len() == count * K * 8,
        "{} bytes of labels for {count} queries",
        bytes.len()
    );
    side.labels.extend(
        bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]))),
    );
    Ok(())
}

/// Mean share of the exact top-K found, over the queries both lists have.
fn recall(found: &[i64], exact: &[i64]) -> f64 {
    let pairs: Vec<(&[i64], &[i64])> = found.chunks(K).zip(exact.chunks(K)).collect();
    let hits: usize = pairs
        .iter()
        .map(|(f, e)| f.iter().filter(|l| **l >= 0 && e.contains(l)).count())
        .sum();
    hits as f64 / (pairs.len() * K).max(1) as f64
}

/// One server configuration of the throughput runs.
struct Config {
    label: &'static str,
    toml: &'static str,
}

const DEFAULTS: Config = Config {
    label: "batching on",
    toml: "batching = true\n",
};
const OFF: Config = Config {
    label: "batching off",
    toml: "batching = false\n",
};

/// `rag:search` (mode dense) through servers side by side, batching on and
/// off, at c=1 and c=MANY.
async fn throughput(
    cx: &Ctx<'_>,
    section: &mut Section,
    lib: &Path,
    index: &Path,
    vectors: u64,
    corpus: &Path,
) -> anyhow::Result<()> {
    let at = format!("flat, {vectors} vectors");
    let full = vectors == cx.plan.faiss_vectors;
    eprintln!("  rag:search throughput, {at}");
    let configs = [&DEFAULTS, &OFF];
    let mut servers = Vec::new();
    for config in &configs {
        let toml = format!(
            "[plugins.rag.config]\nindex_path = {}\ncorpus_path = {}\nbm25 = false\n{}",
            Value::String(index.display().to_string()),
            Value::String(corpus.display().to_string()),
            config.toml,
        );
        let spec = ServerSpec::new().plugin("rag", lib).toml(&toml);
        let server = Server::start(&cx.artifacts.agentflow, &spec).await?;
        let started = Instant::now();
        server.api().warmup(&["rag"]).await?;
        let took = started.elapsed();
        let stats = rag_stats(&server).await?;
        let batching = config.toml.contains("batching = true");
        ensure!(
            stats["index"]["vectors"] == vectors && stats["batching"]["enabled"] == batching,
            "the {} server serves {} (batching {})",
            config.label,
            stats["index"],
            stats["batching"]
        );
        if config.label == DEFAULTS.label {
            section.row(Row::new(
                format!("server warmup: open the index, the corpus and the model, {at}"),
                Fig::duration(took),
            ));
            if full {
                note_throughput(cx, section, &stats);
            }
        }
        servers.push(server);
    }
    let texts = Arc::new(query_texts(corpus, TEXTS)?);
    // Per config: c=1 outcome, c=MANY outcome, mean batch at c=MANY.
    let mut one: Vec<Option<Outcome>> = configs.iter().map(|_| None).collect();
    let mut many: Vec<Option<(Outcome, f64)>> = configs.iter().map(|_| None).collect();
    for c in [1, MANY] {
        let measured: Vec<usize> = (0..configs.len()).collect();
        let mut before = Vec::new();
        for i in &measured {
            before.push(rag_stats(&servers[*i]).await?);
        }
        let targets: Vec<(SocketAddr, MakeReq)> = measured
            .iter()
            .map(|i| (servers[*i].addr, requests(&texts, c)))
            .collect();
        let outcomes = alternate(&targets, c, warmup(cx), cx.plan.faiss_window).await;
        ensure!(
            outcomes.len() == measured.len(),
            "the load generator returned too few results"
        );
        for ((i, o), before) in measured.iter().zip(outcomes).zip(before) {
            o.require_no_errors(&format!("rag:search {} c={c}", configs[*i].label))?;
            let after = rag_stats(&servers[*i]).await?;
            let count = |v: &Value, f: &str| v["batching"][f].as_f64().unwrap_or(f64::NAN);
            let mean_batch = (count(&after, "queries") - count(&before, "queries"))
                / (count(&after, "batches") - count(&before, "batches"));
            if c == 1 {
                one[*i] = Some(o);
            } else {
                many[*i] = Some((o, mean_batch));
            }
        }
    }
    // Little's law: each of c clients always has one call outstanding.
    let rate = |o: &Outcome, c: usize| {
        let s = o.total();
        let mean_us = s.latencies_us.iter().map(|us| f64::from(*us)).sum::<f64>()
            / s.latencies_us.len() as f64;
        Fig::rate(c as f64 * 1e6 / mean_us, "calls/s")
    };
    let name = |what: &str, c: usize| format!("`rag:search` dense, {what}, c={c}, {at}");
    let base_one = one[0].as_ref().map(|o| rate(o, 1));
    let base_many = many[1].as_ref().map(|(o, _)| rate(o, MANY));
    for (i, config) in configs.iter().enumerate() {
        let what = config.label;
        let mine_one = one[i].as_ref().map(|o| rate(o, 1));
        if let Some(o) = &one[i] {
            let mut row = Row::new(format!("{} throughput", name(what, 1)), rate(o, 1));
            if i > 0 {
                if let Some(b) = base_one {
                    row = row.vs("batching on c=1", b);
                }
            }
            section.row(row);
            section.row(Row::new(
                format!("{} p50", name(what, 1)),
                Fig::ms(o.total().latency_ms(0.5)),
            ));
        }
        let Some((o, mean_batch)) = &many[i] else {
            continue;
        };
        let r = rate(o, MANY);
        let mut row = Row::new(format!("{} throughput", name(what, MANY)), r);
        if let Some(own) = mine_one {
            row = row.vs(&format!("{what} c=1"), own);
            if config.label == DEFAULTS.label {
                row = row.target("≥ 3× c=1", r.value >= 3.0 * own.value);
            }
        }
        section.row(row);
        if config.label != OFF.label {
            if let Some(off) = base_many {
                section.row(
                    Row::new(format!("{} throughput", name(what, MANY)), r)
                        .vs(&format!("batching off c={MANY}"), off),
                );
            }
        }
        section.row(Row::new(
            format!("{} p50", name(what, MANY)),
            Fig::ms(o.total().latency_ms(0.5)),
        ));
        if config.label != OFF.label {
            section.row(Row::new(
                format!("mean batch, {what}, c={MANY} (`rag:stats`), {at}"),
                Fig::rate(*mean_batch, "queries/batch"),
            ));
        }
    }
    section.row(Row::new(
        format!("server RSS after the load, batching on, {at}"),
        Fig::mib(procs::rss_mib(servers[0].pid).unwrap_or(f64::NAN)),
    ));
    for server in servers {
        server.stop().await?;
    }
    Ok(())
}

fn note_throughput(cx: &Ctx<'_>, section: &mut Section, stats: &Value) {
    section.note(format!(
        "Throughput: `rag:search` in mode `dense`, top {K}, through the real server over HTTP \
         (the load generator above), each client its own worker, cycling {TEXTS} queries (a \
         passage's title and six of its words, encoded by all-MiniLM-L6-v2, 384 dimensions: the \
         hits are meaningless on synthetic vectors, the work is the real work). Servers run side \
         by side from the same build with the flat index and a {corpus}-passage synthetic corpus \
         (`plugins/rag/examples/gen_corpus.rs`, read lazily through its offsets file), \
         `bm25 = false`: one with query batching on (the defaults: trigger {trigger}, max {max}, \
         wait {wait} ms), one with `batching = false` (each call encodes and searches on its own \
         call thread). The plugin has Faiss search a flat index with one matrix product (BLAS, \
         Debian's OpenBLAS) per block of 131072 vectors for any number of queries (Faiss's default \
         scans the vectors once per query below 20 queries), so a batch of queries reads the \
         vectors once (`plugins/rag/faiss/shim.cpp`). Each load runs {ROUNDS} slices of {slice:.0} s alternating with the other \
         servers' (each after {warm:.1} s untimed); the servers use both cores (OpenMP's \
         default). A throughput is c ÷ the mean latency of the timed calls (Little's law: each \
         client sends its next call when its answer arrives, so it always has one outstanding; \
         counting answers in a window instead would be coarse here, where 32 calls of a batch \
         answer together seconds apart); mean batch is the queries ÷ batches the server counted (`rag:stats`) over the \
         c={MANY} run. The same is then measured over a flat index of the first tenth of the \
         vectors, where scanning the vectors is a smaller part of a call.",
        corpus = cx.plan.faiss_vectors,
        trigger = stats["batching"]["trigger"],
        max = stats["batching"]["max"],
        wait = stats["batching"]["max_wait_ms"],
        slice = cx.plan.faiss_window.as_secs_f64() / ROUNDS as f64,
        warm = warmup(cx).as_secs_f64(),
    ));
}

/// Alternating slices of each server's load.
const ROUNDS: usize = 2;

fn warmup(cx: &Ctx<'_>) -> Duration {
    cx.plan.warmup * 4
}

/// Each load in ROUNDS slices, alternating, each slice after its own
/// untimed warm-up (a c=32 call can take seconds: the pipeline must refill).
async fn alternate(
    targets: &[(SocketAddr, MakeReq)],
    c: usize,
    warm: Duration,
    window: Duration,
) -> Vec<Outcome> {
    let slice = window / ROUNDS as u32;
    let mut merged: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    for _ in 0..ROUNDS {
        for ((addr, make), total) in targets.iter().zip(merged.iter_mut()) {
            let o = load::run(*addr, Spec::new(c, warm, slice), make.clone()).await;
            match total {
                Some(t) => t.absorb(o),
                None => *total = Some(o),
            }
        }
    }
    merged.into_iter().flatten().collect()
}

/// Client `w` is worker `bench-faiss-<w>` and starts at query `w`.
fn requests(texts: &Arc<Vec<String>>, clients: usize) -> MakeReq {
    let scripts = (0..clients)
        .map(|w| {
            (0..texts.len())
                .map(|i| {
                    let q = &texts[(w + i) % texts.len()];
                    Req::post(
                        "search",
                        "/execute",
                        &json!({"worker_id": format!("bench-faiss-{w}"), "action": "rag:search",
                                "params": {"query": q, "mode": "dense", "top_k": K}}),
                    )
                    .check(envelope_ok)
                })
                .collect()
        })
        .collect();
    load::scripted(scripts)
}

async fn rag_stats(server: &Server) -> anyhow::Result<Value> {
    Ok(server
        .api()
        .execute("bench-faiss", "rag:stats", json!({}))
        .await?["data"]
        .clone())
}

/// A passage's title and six of its words, for the first `count` passages.
fn query_texts(corpus: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(corpus).with_context(|| corpus.display().to_string())?;
    let texts: Vec<String> = BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .take(count)
        .map(|p| {
            let text = p["contents"].as_str().or(p["text"].as_str()).unwrap_or("");
            let words: Vec<&str> = text.split_whitespace().skip(3).take(6).collect();
            format!(
                "{} {}",
                p["title"].as_str().unwrap_or_default(),
                words.join(" ")
            )
        })
        .collect();
    ensure!(!texts.is_empty(), "no passages in {}", corpus.display());
    Ok(texts)
}
