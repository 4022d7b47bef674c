//! The load generator: a fixed number of workers, each with its own keep-alive
//! connection, sending requests back to back for a fixed time and recording
//! every latency. Also the same loop for a local baseline (no HTTP).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;
use serde_json::Value;

use crate::client::Conn;
use crate::stats::{Outcome, Stats};

/// Checks the body of a 200 answer; an error counts the request as rejected.
pub type CheckBody = fn(&[u8]) -> Result<(), String>;

/// One request a worker sends; `kind` groups the statistics.
#[derive(Clone)]
pub struct Req {
    pub kind: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub body: Bytes,
    /// Extra headers (an MCP session id); shared, so a clone per request is cheap.
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    /// What a 200 answer must also satisfy (a JSON-RPC result, not an error).
    pub check: Option<CheckBody>,
}

impl Req {
    pub fn get(kind: &'static str, path: &'static str) -> Self {
        Self {
            kind,
            method: Method::GET,
            path,
            body: Bytes::new(),
            headers: Arc::new([]),
            check: None,
        }
    }

    pub fn post(kind: &'static str, path: &'static str, body: &Value) -> Self {
        Self {
            kind,
            method: Method::POST,
            path,
            body: Bytes::from(body.to_string()),
            headers: Arc::new([]),
            check: None,
        }
    }

    /// Counts a 200 answer as a success only when `check` accepts its body.
    pub fn check(mut self, check: CheckBody) -> Self {
        self.check = Some(check);
        self
    }
}

/// Makes request number `iteration` of worker `worker`.
pub type MakeReq = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

/// Worker `w` sends the requests of `scripts[w % len]` in turn, forever.
/// Requests are built (and their JSON serialized) once, up front: the client
/// shares the machine with the server, so its own work per request stays minimal.
pub fn scripted(scripts: Vec<Vec<Req>>) -> MakeReq {
    Arc::new(move |w, i| {
        let script = &scripts[w % scripts.len()];
        script[i as usize % script.len()].clone()
    })
}

/// Worker `w` always sends `reqs[w % len]`.
pub fn per_worker(reqs: Vec<Req>) -> MakeReq {
    scripted(reqs.into_iter().map(|r| vec![r]).collect())
}

/// Every worker sends `reqs` in turn.
pub fn cycle(reqs: Vec<Req>) -> MakeReq {
    scripted(vec![reqs])
}

/// How to load the server.
#[derive(Clone, Copy)]
pub struct Spec {
    pub concurrency: usize,
    /// Requests before this are not timed (connections, caches, pools warm up).
    pub warmup: Duration,
    /// The timed window.
    pub duration: Duration,
    /// A request that takes longer counts as hung (and its connection is dropped).
    pub hung_after: Duration,
}

impl Spec {
    pub fn new(concurrency: usize, warmup: Duration, duration: Duration) -> Self {
        Self {
            concurrency,
            warmup,
            duration,
            hung_after: Duration::from_secs(60),
        }
    }
}

/// Runs `spec.concurrency` workers against `addr` for the warm-up plus the window.
///
/// The workers share one OS thread (a current-thread runtime of their own), as
/// `wrk -t1` does: the server and the client share the machine's cores, and a
/// second client thread would take CPU from the server's threads and show up as
/// scheduling delay in the tail latencies measured.
pub async fn run(addr: SocketAddr, spec: Spec, make: MakeReq) -> Outcome {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(run_workers(addr, spec, make)));
            // The receiver only goes away if the bench was interrupted.
            let _ = tx.send(outcome);
        });
    let received = match spawned {
        Ok(_) => rx
            .await
            .map_err(|_| "the load thread ended early".to_owned()),
        Err(e) => Err(format!("cannot start the load thread: {e}")),
    };
    match received {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::failed(spec.duration, format!("load runtime: {e}")),
        Err(e) => Outcome::failed(spec.duration, e),
    }
}

async fn run_workers(addr: SocketAddr, spec: Spec, make: MakeReq) -> Outcome {
    let start = Instant::now();
    let timed_from = start + spec.warmup;
    let end = timed_from + spec.duration;
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|w| {
            let make = make.clone();
            tokio::spawn(worker(addr, w, spec, make, timed_from, end))
        })
        .collect();
    let mut kinds: BTreeMap<&'static str, Stats> = BTreeMap::new();
    let mut last = timed_from;
    for w in workers {
        // A worker task only ends by returning; a join error means it panicked.
        if let Ok((stats, finished)) = w.await {
            last = last.max(finished);
            for (k, s) in stats {
                kinds.entry(k).or_default().merge(s);
            }
        }
    }
    for s in kinds.values_mut() {
        s.latencies_us.sort_unstable();
    }
    Outcome {
        elapsed: last
            .saturating_duration_since(timed_from)
            .max(spec.duration),
        kinds,
    }
}

async fn worker(
    addr: SocketAddr,
    index: usize,
    spec: Spec,
    make: MakeReq,
    timed_from: Instant,
    end: Instant,
) -> (BTreeMap<&'static str, Stats>, Instant) {
    let mut stats: BTreeMap<&'static str, Stats> = BTreeMap::new();
    let mut conn: Option<Conn> = None;
    let mut iteration = 0u64;
    let mut finished = timed_from;
    while Instant::now() < end {
        let req = make(index, iteration);
        iteration += 1;
        let s = stats.entry(req.kind).or_default();
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    s.transport += 1;
                    s.record_error(format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(
            spec.hung_after,
            c.send_with(&req.method, req.path, &req.headers, req.body),
        )
        .await;
        let latency = sent.elapsed();
        finished = Instant::now();
        match answer {
            Err(_) => {
                s.hung += 1;
                s.record_error(format!("{} {} hung", req.method, req.path));
                conn = None;
            }
            Ok(Err(e)) => {
                s.transport += 1;
                s.record_error(format!("{} {}: {e:#}", req.method, req.path));
                conn = None;
            }
            Ok(Ok((200, _, body))) => match req.check.map_or(Ok(()), |check| check(&body)) {
                Ok(()) => {
                    if sent >= timed_from {
                        s.ok += 1;
                        s.latencies_us
                            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                    }
                }
                Err(why) => {
                    s.rejected += 1;
                    s.record_error(format!("{} {} -> 200 but {why}", req.method, req.path));
                }
            },
            Ok(Ok((status, _, body))) => {
                *s.failed.entry(status).or_default() += 1;
                s.record_error(format!(
                    "{} {} -> {status}: {}",
                    req.method,
                    req.path,
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
        }
    }
    (stats, finished)
}

/// Runs the loads one after the other, `rounds` times, each round timing
/// `window / rounds` of each, and merges every load's rounds. On a shared
/// machine a figure and its baseline then see the same background load.
pub async fn interleaved(
    addr: SocketAddr,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    rounds: usize,
    loads: &[MakeReq],
) -> Vec<Outcome> {
    let targets: Vec<(SocketAddr, MakeReq)> =
        loads.iter().map(|make| (addr, make.clone())).collect();
    interleaved_on(&targets, concurrency, warmup, window, rounds).await
}

/// [`interleaved`] with each load sent to a server of its own (a figure and
/// its baseline measured on two servers started side by side).
pub async fn interleaved_on(
    targets: &[(SocketAddr, MakeReq)],
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    rounds: usize,
) -> Vec<Outcome> {
    let rounds = rounds.max(1);
    let slice = window / rounds as u32;
    let mut merged: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    for round in 0..rounds {
        // The first round warms connections and pools; later ones just refill the pipeline.
        let warm = if round == 0 { warmup } else { warmup / 5 };
        for ((addr, make), total) in targets.iter().zip(merged.iter_mut()) {
            let o = run(*addr, Spec::new(concurrency, warm, slice), make.clone()).await;
            match total {
                Some(t) => t.absorb(o),
                None => *total = Some(o),
            }
        }
    }
    merged.into_iter().flatten().collect()
}

/// The same timed loop for a local operation (a baseline without HTTP), on a
/// blocking thread. `op` returns an error to count a failure.
pub async fn run_local<F>(warmup: Duration, duration: Duration, op: F) -> anyhow::Result<Outcome>
where
    F: FnMut() -> anyhow::Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut op = op;
        let start = Instant::now();
        let timed_from = start + warmup;
        let end = timed_from + duration;
        let mut s = Stats::default();
        let mut finished = timed_from;
        while Instant::now() < end {
            let sent = Instant::now();
            op()?;
            finished = Instant::now();
            if sent >= timed_from {
                s.ok += 1;
                let us = (finished - sent).as_micros();
                s.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
        s.latencies_us.sort_unstable();
        Ok(Outcome {
            elapsed: finished.saturating_duration_since(timed_from).max(duration),
            kinds: BTreeMap::from([("local", s)]),
        })
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_repeat_per_worker() {
        let make = scripted(vec![
            vec![Req::get("a", "/a"), Req::get("b", "/b")],
            vec![Req::get("c", "/c")],
        ]);
        let kinds: Vec<&str> = (0..3).map(|i| make(0, i).kind).collect();
        assert_eq!(kinds, ["a", "b", "a"]);
        assert_eq!(make(1, 5).kind, "c");
        assert_eq!(make(2, 1).kind, "b");
    }
}
