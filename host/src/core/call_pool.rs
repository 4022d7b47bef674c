//! The threads plugin code runs on.
//!
//! Plugin calls block (a shell command, a screenshot), so they run off the
//! async runtime. Tokio's blocking pool would do, but it parks an idle thread
//! the moment its queue is empty and wakes one with a futex for every job: for
//! a stream of short calls that is two context switches per call, and it cost
//! about 40 % of the server's CPU in the host-overhead benchmark. Here an idle
//! thread first spins briefly (yielding its core) watching for the next job,
//! so under load jobs pass from thread to thread without waking anyone; only
//! when no thread is spinning is a parked one woken, or a new one started.
//! Threads are unbounded like tokio's (a hung call holds its thread; the
//! per-plugin call limit bounds how many) and exit after idling a while.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long an idle thread watches for the next job before parking. Long
/// enough to bridge the gap between calls of a busy server, short enough that
/// an idle one stops spinning at once.
const SPIN: Duration = Duration::from_micros(200);
/// How long a parked thread waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A job that did not produce its value: it panicked outside the plugin's own
/// guard, or its thread could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobFailed(String);

/// Runs `f` on a call thread; await the receiver for its value.
pub fn spawn<T, F>(f: F) -> impl std::future::Future<Output = Result<T, JobFailed>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    // The job runs in the caller's span (the request's), so what plugin code
    // logs on this thread carries the request id.
    let span = tracing::Span::current();
    let submitted = pool().submit(Box::new(move || {
        let _in_caller_span = span.enter();
        let out = std::panic::catch_unwind(AssertUnwindSafe(f))
            .map_err(|_| JobFailed("the job panicked".into()));
        let _ = tx.send(out);
    }));
    async move {
        submitted?;
        rx.await
            .map_err(|_| JobFailed("the job ended without an answer".into()))?
    }
}

/// How busy the pool is, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Jobs waiting for a thread.
    pub queued: usize,
    /// Threads running a job.
    pub busy: usize,
    /// Threads alive (busy, spinning or parked).
    pub threads: usize,
}

/// The pool's load now (read under its lock: call it per scrape, not per call).
pub fn load() -> Load {
    let st = pool().lock();
    Load {
        queued: st.queue.len(),
        busy: st.threads.saturating_sub(st.spinning + st.parked),
        threads: st.threads,
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            queued: AtomicUsize::new(0),
            // One spinner per core at most, and none on a single core, where
            // spinning would only take the core from the thread submitting.
            max_spinning: cores.saturating_sub(1),
        }
    })
}

struct Pool {
    state: Mutex<State>,
    wake: Condvar,
    /// `state.queue.len()`, readable by spinning threads without the lock.
    queued: AtomicUsize,
    max_spinning: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Idle threads watching `queued`; each re-checks the queue under the
    /// lock before it parks, so a job counted on them is never stranded.
    spinning: usize,
    parked: usize,
    /// Threads alive.
    threads: usize,
    /// Parked threads already woken for a job but not yet running.
    notified: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock and catch their panics: it cannot be poisoned
        // by one, and the state stays consistent if it somehow were.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn submit(&'static self, job: Job) -> Result<(), JobFailed> {
        let mut st = self.lock();
        st.queue.push_back(job);
        self.queued.store(st.queue.len(), Ordering::Release);
        if st.queue.len() <= st.spinning {
            return Ok(());
        }
        if st.parked > st.notified {
            st.notified += 1;
            self.wake.notify_one();
            return Ok(());
        }
        st.threads += 1;
        drop(st);
        let started = std::thread::Builder::new()
            .name("plugin-call".into())
            .spawn(move || self.work());
        if let Err(e) = started {
            // Take the job back out so its caller hears why (the receiver errs).
            let mut st = self.lock();
            st.threads -= 1;
            st.queue.pop_back();
            self.queued.store(st.queue.len(), Ordering::Release);
            return Err(JobFailed(format!("cannot start a call thread: {e}")));
        }
        Ok(())
    }

    fn pop(&self, st: &mut State) -> Option<Job> {
        let job = st.queue.pop_front();
        self.queued.store(st.queue.len(), Ordering::Release);
        job
    }

    fn work(&self) {
        while let Some(job) = self.next_job() {
            job();
        }
    }

    /// The next job, or `None` when the thread has idled long enough to exit.
    fn next_job(&self) -> Option<Job> {
        let mut st = self.lock();
        if let Some(job) = self.pop(&mut st) {
            return Some(job);
        }
        if st.spinning < self.max_spinning {
            st.spinning += 1;
            drop(st);
            let until = Instant::now() + SPIN;
            while self.queued.load(Ordering::Acquire) == 0 && Instant::now() < until {
                std::thread::yield_now();
            }
            st = self.lock();
            st.spinning -= 1;
            if let Some(job) = self.pop(&mut st) {
                return Some(job);
            }
        }
        loop {
            st.parked += 1;
            let (guard, waited) = self
                .wake
                .wait_timeout(st, KEEP_ALIVE)
                .unwrap_or_else(|p| p.into_inner());
            st = guard;
            st.parked -= 1;
            let was_notified = st.notified > 0;
            st.notified = st.notified.saturating_sub(1);
            if let Some(job) = self.pop(&mut st) {
                return Some(job);
            }
            if waited.timed_out() && !was_notified {
                st.threads -= 1;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_jobs_do_not_wait_behind_blocked_ones() {
        // The blocked jobs hold their threads until every short job has
        // answered: if a short one queued behind them, this would never end.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Arc::new(Mutex::new(held));
        let blocked: Vec<_> = (0..4)
            .map(|_| {
                let held = held.clone();
                spawn(move || {
                    let rx = held.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = rx.recv();
                })
            })
            .collect();
        let short: Vec<_> = (0..200).map(|i| spawn(move || i * 2)).collect();
        let answers = tokio::time::timeout(Duration::from_secs(60), async {
            let mut out = Vec::new();
            for s in short {
                out.push(s.await.unwrap());
            }
            out
        })
        .await
        .expect("short jobs were stuck behind blocked ones");
        assert_eq!(answers, (0..200).map(|i| i * 2).collect::<Vec<_>>());
        drop(release);
        for b in blocked {
            b.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_pool_goes_on() {
        let err = spawn(|| panic!("boom")).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(spawn(|| 7).await.unwrap(), 7);
    }
}
