//! The `/ready` answer (served by the compat surface, which owns `/ready`
//! for the AgentFlow SDK; described in the native OpenAPI document too).

use axum::http::StatusCode;
use serde::Serialize;

use crate::core::readiness::Readiness;
use crate::core::Core;

/// The body of `/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyBody {
    /// `ready`, `warming` (startup warmup running), `warmup_failed` (a
    /// backend of `server.warmup` failed to load or warm) or `draining`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub tools_count: usize,
    pub active_workers: usize,
    pub total_sessions: usize,
    /// With `warmup_failed`: the backends that failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub failed: Vec<String>,
}

/// 200 when ready, else 503, with the body.
pub fn answer(core: &Core) -> (StatusCode, ReadyBody) {
    let readiness = core.readiness();
    let status = if readiness == Readiness::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let failed = match &readiness {
        Readiness::WarmupFailed(names) => names.clone(),
        _ => Vec::new(),
    };
    (
        status,
        ReadyBody {
            status: readiness.word(),
            tools_count: core.tool_list(false).len(),
            active_workers: core.sessions.worker_count(),
            total_sessions: core.sessions.all().len(),
            failed,
        },
    )
}
