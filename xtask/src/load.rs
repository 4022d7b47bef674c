//! The load generator: a fixed number of workers, each with its own keep-alive
//! connection, sending requests back to back for a fixed time and recording
//! every latency. Also the same loop for a local baseline (no HTTP).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::client::Conn;

/// One request a worker sends; `kind` groups the statistics.
#[derive(Clone)]
pub struct Req {
    pub kind: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub body: Bytes,
}

impl Req {
    pub fn get(kind: &'static str, path: &'static str) -> Self {
        Self {
            kind,
            method: Method::GET,
            path,
            body: Bytes::new(),
        }
    }

    pub fn post(kind: &'static str, path: &'static str, body: &Value) -> Self {
        Self {
            kind,
            method: Method::POST,
            path,
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Makes request number `iteration` of worker `worker`.
pub type MakeReq = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

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

/// What happened to the requests of one kind.
#[derive(Default, Clone)]
pub struct Stats {
    /// HTTP 200 answers in the timed window.
    pub ok: u64,
    /// Every other status over the whole run (warm-up included), by status.
    pub failed: BTreeMap<u16, u64>,
    /// Connection errors over the whole run.
    pub transport: u64,
    /// Requests that did not answer within `hung_after`.
    pub hung: u64,
    /// Latencies of the timed successes, in microseconds, sorted after the run.
    pub latencies_us: Vec<u32>,
    /// A few error bodies, for the log.
    pub samples: Vec<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        for (s, n) in other.failed {
            *self.failed.entry(s).or_default() += n;
        }
        self.transport += other.transport;
        self.hung += other.hung;
        self.latencies_us.extend(other.latencies_us);
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
    }

    /// Every request that did not succeed.
    pub fn errors(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.transport + self.hung
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.failed.range(500..600).map(|(_, n)| n).sum()
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds (nearest rank).
    pub fn latency_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies_us, q)
    }

    fn record_error(&mut self, sample: String) {
        if self.samples.len() < 5 {
            self.samples.push(sample);
        }
    }
}

/// The `q` quantile of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[i]) / 1000.0
}

/// The result of one load run.
pub struct Outcome {
    /// The timed window as it really was (until the last timed answer).
    pub elapsed: Duration,
    pub kinds: BTreeMap<&'static str, Stats>,
}

impl Outcome {
    /// All kinds together.
    pub fn total(&self) -> Stats {
        let mut all = Stats::default();
        for s in self.kinds.values() {
            all.merge(s.clone());
        }
        all.latencies_us.sort_unstable();
        all
    }

    /// Statistics of one kind (empty when none was sent).
    pub fn kind(&self, kind: &str) -> Stats {
        self.kinds.get(kind).cloned().unwrap_or_default()
    }

    /// Timed successes of `kind` per second.
    pub fn rate(&self, kind: &str) -> f64 {
        self.kind(kind).ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Timed successes of every kind per second.
    pub fn total_rate(&self) -> f64 {
        self.total().ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Fails with the first error samples when any request failed.
    pub fn require_no_errors(&self, what: &str) -> anyhow::Result<()> {
        let total = self.total();
        if total.errors() > 0 {
            anyhow::bail!(
                "{what}: {} of the requests failed (statuses {:?}, transport {}, hung {}); e.g. {:?}",
                total.errors(),
                total.failed,
                total.transport,
                total.hung,
                total.samples
            );
        }
        Ok(())
    }
}

/// Runs `spec.concurrency` workers against `addr` for the warm-up plus the window.
pub async fn run(addr: SocketAddr, spec: Spec, make: MakeReq) -> Outcome {
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
        let answer =
            tokio::time::timeout(spec.hung_after, c.send(&req.method, req.path, req.body)).await;
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
            Ok(Ok((200, _))) => {
                if sent >= timed_from {
                    s.ok += 1;
                    s.latencies_us
                        .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok(Ok((status, body))) => {
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
