//! Which worker an MCP session is: the client's `X-Worker-ID` when it sends
//! one (so its sessions can be inspected or shared over the native API), else
//! one derived from the MCP session id.

use axum::http::request::Parts;

use crate::core::error::CoreResult;
use crate::core::ident;
use crate::web::routing::WORKER_HEADER;

/// The header the MCP transport carries its session id in.
const SESSION_HEADER: &str = "mcp-session-id";

/// The worker id for a request of this MCP session.
pub fn worker_of(parts: Option<&Parts>) -> CoreResult<String> {
    let header = |name: &str| {
        parts
            .and_then(|p| p.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(worker) = header(WORKER_HEADER) {
        ident::check("X-Worker-ID", worker)?;
        return Ok(worker.to_string());
    }
    let worker = match header(SESSION_HEADER) {
        Some(session) => format!("mcp-{session}"),
        // Only a request outside any MCP session gets here; it still gets a
        // worker of its own.
        None => format!("mcp-{}", uuid::Uuid::new_v4()),
    };
    ident::check("Mcp-Session-Id", &worker)?;
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut req = axum::http::Request::builder();
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_worker_header_wins_over_the_session_id() {
        let p = parts(&[("x-worker-id", "w-1"), ("mcp-session-id", "abc")]);
        assert_eq!(worker_of(Some(&p)).unwrap(), "w-1");
        let p = parts(&[("mcp-session-id", "abc")]);
        assert_eq!(worker_of(Some(&p)).unwrap(), "mcp-abc");
    }

    #[test]
    fn a_bad_worker_header_is_refused_naming_it() {
        let p = parts(&[("x-worker-id", "a b")]);
        let e = worker_of(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("'X-Worker-ID'"), "{e}");
    }
}
