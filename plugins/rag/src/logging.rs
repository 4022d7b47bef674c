//! Log lines of the plugin.
//!
//! Events go through `tracing`. A `cdylib` links its own copy of tracing's
//! global dispatcher, which the host's subscriber never reaches, so when no
//! subscriber is installed in this copy the line is also written to stderr:
//! warmup progress and warnings stay visible in the host's output either way.

/// Logs an informational line.
pub fn info(message: &str) {
    tracing::info!(target: "agentflow_rag", "{message}");
    if !tracing::dispatcher::has_been_set() {
        eprintln!("[rag] INFO {message}");
    }
}

/// Logs a warning: something was skipped or degraded, and the plugin goes on.
pub fn warn(message: &str) {
    tracing::warn!(target: "agentflow_rag", "{message}");
    if !tracing::dispatcher::has_been_set() {
        eprintln!("[rag] WARN {message}");
    }
}
