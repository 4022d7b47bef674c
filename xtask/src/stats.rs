//! What a load run measured: per-kind counts of successes and failures, and
//! the latencies of the timed successes.

use std::collections::BTreeMap;
use std::time::Duration;

/// What happened to the requests of one kind.
#[derive(Default, Clone)]
pub struct Stats {
    /// HTTP 200 answers in the timed window.
    pub ok: u64,
    /// Every other status over the whole run (warm-up included), by status.
    pub failed: BTreeMap<u16, u64>,
    /// HTTP 200 answers whose body said the request failed (a JSON-RPC
    /// error, an MCP `isError` result), over the whole run.
    pub rejected: u64,
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
    /// Adds another worker's or run's counts and latencies (unsorted).
    pub fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        for (s, n) in other.failed {
            *self.failed.entry(s).or_default() += n;
        }
        self.rejected += other.rejected;
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
        self.failed.values().sum::<u64>() + self.rejected + self.transport + self.hung
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.failed.range(500..600).map(|(_, n)| n).sum()
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds (nearest rank).
    pub fn latency_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies_us, q)
    }

    /// Keeps the first few error descriptions.
    pub fn record_error(&mut self, sample: String) {
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
    /// Adds another run of the same load (its window and its requests).
    pub fn absorb(&mut self, other: Outcome) {
        self.elapsed += other.elapsed;
        for (k, s) in other.kinds {
            let mine = self.kinds.entry(k).or_default();
            mine.merge(s);
            mine.latencies_us.sort_unstable();
        }
    }

    /// A run that could not take place: one transport error saying why.
    pub fn failed(window: Duration, why: String) -> Self {
        let mut s = Stats {
            transport: 1,
            ..Stats::default()
        };
        s.record_error(why);
        Self {
            elapsed: window,
            kinds: BTreeMap::from([("load", s)]),
        }
    }

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
                "{what}: {} of the requests failed (statuses {:?}, rejected 200s {}, transport {}, hung {}); e.g. {:?}",
                total.errors(),
                total.failed,
                total.rejected,
                total.transport,
                total.hung,
                total.samples
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let us: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 0.5), 50.0);
        assert_eq!(percentile_ms(&us, 0.99), 99.0);
        assert_eq!(percentile_ms(&us, 1.0), 100.0);
        assert_eq!(percentile_ms(&[7000], 0.99), 7.0);
        assert!(percentile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn failures_are_counted_by_class() {
        let mut s = Stats::default();
        s.failed.insert(404, 2);
        s.failed.insert(503, 1);
        s.hung = 1;
        s.transport = 1;
        s.rejected = 1;
        assert_eq!(s.errors(), 6);
        assert_eq!(s.server_errors(), 1);
    }
}
