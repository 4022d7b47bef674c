//! The web layer the three surfaces share: state, request ids, auth, body
//! reading within the limit, `/health`, and answers made before or instead of
//! routing (404, 405, 401, refusal while stopping), each in the shape of the
//! surface the request is for.
//!
//! ```text
//!             web (this module): one axum app, middleware, fallbacks
//!           /              |               \
//!   native (/execute…)  compat (/api/v1…)  mcp (/mcp)     <- peers, no imports between them
//!           \              |               /
//!                 core: registry, sessions, executor (no HTTP)
//! ```
//!
//! A surface is a [`Surface`]: its routes, which requests it owns, and its
//! own wire format for errors. The surfaces never import each other.

mod auth;
pub mod body;
pub mod drain;
pub mod envelope;
mod fallback;
pub mod idempotency;
mod metrics;
pub mod node;
pub mod ready;
pub mod request_id;
pub mod routing;
mod state;
mod surface;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use axum::Router;

pub use request_id::RequestId;
pub use routing::Routing;
pub use state::AppState;
pub use surface::Surface;

/// The whole application: every surface's routes, `/health`, JSON 404/405,
/// the body limit, request ids, auth and refusal while shutting down. The
/// first surface that owns a request answers for it before routing; list the
/// catch-all surface last.
pub fn app(state: AppState, surfaces: Vec<Surface>) -> Router {
    let limit = state.core.config.server.body_limit;
    node::set(&state.core.config.server.node_name);
    let names: Vec<&str> = surfaces.iter().map(|s| s.name).collect();
    tracing::info!(surfaces = ?names, "serving");
    let surfaces = std::sync::Arc::new(surfaces);
    let mut router = Router::new().route("/health", get(fallback::health));
    if state.core.metrics.is_some() {
        router = router.route(metrics::PATH, get(metrics::serve));
        if state.core.config.server.metrics_public {
            tracing::warn!(
                "server.metrics_public = true: /metrics answers without the bearer token"
            );
        }
    }
    for s in surfaces.iter() {
        router = router.merge(s.routes.clone());
    }
    router
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::once,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            fallback::refuse_while_stopping,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), drain::track))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::Extension(surfaces))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}
