//! Dynamic batching of concurrent queries: many workers searching at once
//! share one forward pass of the encoder instead of taking turns, as the
//! Python server's batcher does. A query waits in a queue; one thread encodes
//! a batch as soon as `batch_trigger` queries wait or the first has waited
//! `batch_max_wait_ms`, at most `batch_max` at once. Queries that arrive while
//! a batch is encoded form the next one, so under load batches grow without
//! anyone waiting on purpose.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{RagError, RagResult};

/// When a batch is made.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// A batch starts once this many queries wait…
    pub trigger: usize,
    /// …with at most this many in it…
    pub max: usize,
    /// …or once the first has waited this long.
    pub max_wait: Duration,
}

/// The work done for a whole batch: the queries and the largest `k` any of
/// them asked for, giving one result per query, in order.
pub type BatchWork<R> = dyn Fn(&[&str], usize) -> RagResult<Vec<R>> + Send + Sync;

/// One query waiting for its result.
struct Job<R> {
    text: String,
    k: usize,
    reply: Sender<RagResult<R>>,
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    batches: AtomicU64,
    largest: AtomicU64,
}

/// The queue and the thread that empties it (it ends when the batcher goes).
pub struct Batcher<R> {
    queue: Mutex<Sender<Job<R>>>,
    settings: BatchSettings,
    counters: Arc<Counters>,
}

impl<R: Send + 'static> Batcher<R> {
    /// Starts the thread that runs `work` on each batch.
    pub fn start(work: Arc<BatchWork<R>>, settings: BatchSettings) -> RagResult<Self> {
        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let seen = counters.clone();
        std::thread::Builder::new()
            .name("rag-batcher".into())
            .spawn(move || run(work.as_ref(), &jobs, settings, &seen))
            .map_err(|e| RagError::Embedding(format!("cannot start the query batcher: {e}")))?;
        Ok(Self {
            queue: Mutex::new(queue),
            settings,
            counters,
        })
    }

    /// The result of each of `texts`, in order, each computed in some batch;
    /// `check` is polled while waiting, so a cancelled call stops waiting.
    pub fn run(
        &self,
        texts: &[&str],
        k: usize,
        check: &dyn Fn() -> RagResult<()>,
    ) -> RagResult<Vec<R>> {
        let mut waiting = Vec::with_capacity(texts.len());
        {
            let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            for text in texts {
                let (reply, answer) = mpsc::channel();
                queue
                    .send(Job {
                        text: (*text).to_string(),
                        k,
                        reply,
                    })
                    .map_err(|_| RagError::Embedding("the query batcher stopped".into()))?;
                waiting.push(answer);
            }
        }
        waiting
            .into_iter()
            .map(|answer| wait(&answer, check))
            .collect()
    }

    /// Settings and counters, for `rag:stats`.
    pub fn stats(&self) -> Value {
        let c = &self.counters;
        let (queries, batches) = (
            c.queries.load(Ordering::Relaxed),
            c.batches.load(Ordering::Relaxed),
        );
        json!({
            "enabled": true,
            "trigger": self.settings.trigger,
            "max": self.settings.max,
            "max_wait_ms": self.settings.max_wait.as_secs_f64() * 1000.0,
            "queries": queries,
            "batches": batches,
            "largest_batch": c.largest.load(Ordering::Relaxed),
            "mean_batch": if batches == 0 { 0.0 } else { queries as f64 / batches as f64 },
        })
    }
}

fn wait<R>(answer: &Receiver<RagResult<R>>, check: &dyn Fn() -> RagResult<()>) -> RagResult<R> {
    loop {
        match answer.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) => check()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(RagError::Embedding("the query batcher stopped".into()))
            }
        }
    }
}

/// The batcher's thread: waits for a first query, gathers more until the
/// trigger or the wait is reached, runs them together, answers each.
fn run<R>(work: &BatchWork<R>, jobs: &Receiver<Job<R>>, s: BatchSettings, counters: &Counters) {
    while let Ok(first) = jobs.recv() {
        let until = Instant::now() + s.max_wait;
        let mut batch = vec![first];
        while batch.len() < s.trigger {
            let left = until.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Whatever else is already waiting rides along, up to the maximum.
        while batch.len() < s.max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        let k = batch.iter().map(|j| j.k).max().unwrap_or(1);
        let n = batch.len() as u64;
        counters.queries.fetch_add(n, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.largest.fetch_max(n, Ordering::Relaxed);
        match work(&texts, k) {
            Ok(results) if results.len() == batch.len() => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Ok(results) => {
                let message = format!("{} results for {} queries", results.len(), batch.len());
                for job in batch {
                    let _ = job.reply.send(Err(RagError::Embedding(message.clone())));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(RagError::Embedding(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_queries_share_batches_and_keep_their_order() {
        let work: Arc<BatchWork<String>> = Arc::new(|texts: &[&str], k: usize| {
            Ok(texts.iter().map(|t| format!("{t}/{k}")).collect())
        });
        let settings = BatchSettings {
            trigger: 4,
            max: 8,
            max_wait: Duration::from_millis(200),
        };
        let batcher = Arc::new(Batcher::start(work, settings).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let b = batcher.clone();
                std::thread::spawn(move || b.run(&[&format!("q{i}")], i + 1, &|| Ok(())).unwrap())
            })
            .collect();
        let answers: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (i, answer) in answers.iter().enumerate() {
            assert!(answer[0].starts_with(&format!("q{i}/")), "{answer:?}");
        }
        let stats = batcher.stats();
        assert_eq!(stats["queries"], 4);
        assert!(stats["batches"].as_u64().unwrap() < 4, "{stats}");
    }
}
