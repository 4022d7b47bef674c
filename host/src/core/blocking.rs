//! Running plugin code off the async runtime, under a deadline.

use std::time::Duration;

/// Why a blocking job produced no value.
#[derive(Debug)]
pub enum BlockingError {
    /// The deadline passed; the job may still be running.
    TimedOut(Duration),
    /// The job panicked outside the plugin's own guard (a host bug) or was cancelled.
    Failed(String),
}

impl BlockingError {
    pub fn describe(&self, what: &str) -> String {
        match self {
            Self::TimedOut(d) => format!("{what} timed out after {:.1}s", d.as_secs_f64()),
            Self::Failed(e) => format!("{what} failed: {e}"),
        }
    }
}

/// Runs `f` on a call thread and waits at most `timeout` for it.
pub async fn run_blocking<T, F>(timeout: Duration, f: F) -> Result<T, BlockingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::time::timeout(timeout, super::call_pool::spawn(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BlockingError::Failed(e.to_string())),
        Err(_) => Err(BlockingError::TimedOut(timeout)),
    }
}
