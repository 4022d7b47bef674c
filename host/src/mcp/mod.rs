//! The MCP surface (`docs/mcp.md`): every tool of every loaded plugin over the
//! Model Context Protocol's Streamable HTTP transport at `/mcp`.
//!
//! The transport, sessions (`Mcp-Session-Id`), protocol negotiation and
//! cancellation are `rmcp`'s, the official Rust SDK; this module maps the
//! core onto it. One MCP session is one worker ([`identity`]); its calls run
//! through the same core path as `/execute` ([`handler`]); results and errors
//! become MCP results in one place ([`results`]).

mod catalog;
mod handler;
mod identity;
mod progress;
mod results;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use axum::http::HeaderMap;
use axum::Router;

use crate::core::{secs, Core};
use crate::web::Surface;
use handler::McpSession;

/// The path the surface is served at.
pub const PATH: &str = "/mcp";

/// The MCP surface.
pub fn surface(core: Arc<Core>) -> Surface {
    Surface {
        name: "mcp",
        routes: Router::new().nest_service(PATH, service(core)),
        owns: |path: &str, _: &HeaderMap| {
            path == PATH || path.strip_prefix(PATH).is_some_and(|r| r.starts_with('/'))
        },
        health: None,
        not_routed: results::not_routed,
        refusal: results::refusal,
    }
}

/// The `/mcp` service, to be nested in the application router (which puts
/// auth, request ids and refusal while stopping in front of it).
fn service(core: Arc<Core>) -> StreamableHttpService<McpSession, LocalSessionManager> {
    let server = &core.config.server;
    let mut sessions = LocalSessionManager::default();
    // An idle MCP session ends after the same TTL as a native session; its
    // tool sessions end with it.
    sessions.session_config.keep_alive = Some(secs(server.session_ttl));
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(server.body_limit)
        .with_cancellation_token(core.stopping_token());
    let loopback = server
        .host
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(server.host == "localhost");
    if !loopback {
        // The SDK's default accepts only loopback `Host` headers, against DNS
        // rebinding of a local server. A server reachable from elsewhere is
        // protected by its bearer token instead (startup refuses a remote
        // listener without one unless told so), and sits behind proxies that
        // set their own `Host`.
        config = config.disable_allowed_hosts();
    }
    let factory_core = core.clone();
    StreamableHttpService::new(
        move || Ok(McpSession::new(factory_core.clone())),
        Arc::new(sessions),
        config,
    )
}
