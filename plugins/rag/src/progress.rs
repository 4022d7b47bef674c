//! Progress lines for long indexing work: done / total, rate, time left.

use std::time::{Duration, Instant};

use crate::logging;

/// How often a progress line is logged.
const EVERY: Duration = Duration::from_secs(5);

/// Counts work done and logs it every few seconds.
pub struct Progress {
    what: String,
    unit: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    last_logged: Instant,
}

impl Progress {
    /// Starts counting `total` units of `what` (`total` may be an estimate).
    pub fn new(what: impl Into<String>, total: usize) -> Self {
        Self::counting(what, total, "documents")
    }

    /// Like [`new`](Self::new), counting `unit`s (e.g. "MB") instead of documents.
    pub fn counting(what: impl Into<String>, total: usize, unit: &'static str) -> Self {
        let now = Instant::now();
        Self {
            what: what.into(),
            unit,
            total,
            done: 0,
            started: now,
            last_logged: now,
        }
    }

    /// Records `n` more units done, logging when a line is due.
    pub fn advance(&mut self, n: usize) {
        self.done += n;
        if self.last_logged.elapsed() >= EVERY {
            self.last_logged = Instant::now();
            logging::info(&self.line());
        }
    }

    /// Units done so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Documents per second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn line(&self) -> String {
        let rate = self.rate();
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 {
            format!(", ~{:.0} s left", left as f64 / rate)
        } else {
            String::new()
        };
        format!(
            "{}: {}/{} {unit} ({:.0}%), {:.1} {unit}/s{eta}",
            self.what,
            self.done,
            self.total,
            100.0 * self.done as f64 / self.total.max(1) as f64,
            rate,
            unit = self.unit
        )
    }
}
