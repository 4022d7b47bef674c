//! Which host answered: `server.node_name` (default the machine's hostname)
//! in every answer's `X-AgentFlow-Node` header and in the envelopes' `meta.node`,
//! so a client and an operator behind a balancer see where a worker lives.
//! One process is one node, so the name is set once, when the app is built.

use std::sync::OnceLock;

use axum::http::HeaderValue;
use axum::response::Response;

pub const HEADER: &str = "x-agentflow-node";

static NAME: OnceLock<(String, HeaderValue)> = OnceLock::new();

/// Sets the node's name (the first call wins; config validation made it
/// header-safe).
pub fn set(name: &str) {
    let value = HeaderValue::from_str(name).unwrap_or(HeaderValue::from_static("unnamed"));
    let _ = NAME.set((name.to_string(), value));
}

/// The node's name.
pub fn name() -> &'static str {
    NAME.get().map_or("unnamed", |(n, _)| n.as_str())
}

/// Names the node on an answer.
pub fn stamp(res: &mut Response) {
    if let Some((_, v)) = NAME.get() {
        res.headers_mut().insert(HEADER, v.clone());
    }
}
