//! Opens a Faiss index file exactly as the rag plugin does
//! ([`FaissIndex::open`]: memory-mapped where Faiss allows it) and searches
//! it one query at a time, for the Faiss benchmark
//! (`cargo xtask bench --only faiss`); `faiss_search.py` beside it does the
//! same with the Python `faiss` package, so both print comparable figures.
//!
//! ```text
//! faiss_search INDEX QUERIES.f32 WARM.f32 K FIRST COUNT LABELS_OUT
//! ```
//!
//! The query files hold little-endian f32 vectors of the index's dimension.
//! The WARM queries are searched first, untimed; then queries FIRST..FIRST+COUNT
//! one by one, each timed. LABELS_OUT receives their K labels each
//! (little-endian i64, -1 where Faiss found fewer). One JSON line on stdout:
//! open time, per-query latencies, resident memory before and after.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use agentflow_rag::faiss_index::FaissIndex;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faiss_search: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let [index, queries, warm, k, first, count, labels_out] = args else {
        return Err(
            "usage: faiss_search INDEX QUERIES.f32 WARM.f32 K FIRST COUNT LABELS_OUT".into(),
        );
    };
    let number = |name: &str, text: &str| {
        text.parse::<usize>()
            .map_err(|e| format!("{name} '{text}': {e}"))
    };
    let (k, first, count) = (
        number("K", k)?,
        number("FIRST", first)?,
        number("COUNT", count)?,
    );
    let rss_before = memory("VmRSS:");
    let started = Instant::now();
    let index = FaissIndex::open(Path::new(index)).map_err(|e| e.to_string())?;
    let open_seconds = started.elapsed().as_secs_f64();
    let rss_open = memory("VmRSS:");
    let dims = index.dims();
    let queries = vectors(queries, dims)?;
    let warm = vectors(warm, dims)?;
    if (first + count) * dims > queries.len() {
        return Err(format!(
            "queries {first}..{} asked, the file holds {}",
            first + count,
            queries.len() / dims
        ));
    }
    for query in warm.chunks(dims) {
        index.search(query, k).map_err(|e| e.to_string())?;
    }
    let mut latencies_us = Vec::with_capacity(count);
    let mut labels = Vec::with_capacity(count * k * 8);
    for query in queries[first * dims..(first + count) * dims].chunks(dims) {
        let started = Instant::now();
        let found = index.search(query, k).map_err(|e| e.to_string())?;
        latencies_us.push(started.elapsed().as_secs_f64() * 1e6);
        let hits = found.into_iter().next().unwrap_or_default();
        for i in 0..k {
            let label = hits.get(i).map_or(-1, |(label, _)| *label);
            labels.extend_from_slice(&label.to_le_bytes());
        }
    }
    std::fs::write(labels_out, labels).map_err(|e| format!("{labels_out}: {e}"))?;
    Ok(serde_json::json!({
        "kind": index.kind(),
        "vectors": index.len(),
        "dims": dims,
        "mapped": index.mapped(),
        "open_seconds": open_seconds,
        "latencies_us": latencies_us,
        "rss_before_kib": rss_before,
        "rss_after_open_kib": rss_open,
        "rss_kib": memory("VmRSS:"),
        "peak_rss_kib": memory("VmHWM:"),
    })
    .to_string())
}

/// Whole vectors of `dims` little-endian floats from `path`.
fn vectors(path: &str, dims: usize) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if dims == 0 || !bytes.len().is_multiple_of(4 * dims) {
        return Err(format!(
            "{path}: {} bytes are not whole vectors of {dims} floats",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A `/proc/self/status` field in KiB (0 when unreadable).
fn memory(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
