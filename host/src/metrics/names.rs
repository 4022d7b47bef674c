//! The name of every metric (counters get `_total` appended when rendered).

pub const HTTP_REQUESTS: &str = "agentflow_http_requests";
pub const HTTP_REQUEST_DURATION: &str = "agentflow_http_request_duration_seconds";
pub const TOOL_CALLS: &str = "agentflow_tool_calls";
pub const TOOL_CALL_DURATION: &str = "agentflow_tool_call_duration_seconds";
pub const SESSIONS_ACTIVE: &str = "agentflow_sessions_active";
pub const SESSIONS_CREATED: &str = "agentflow_sessions_created";
pub const SESSIONS_DESTROYED: &str = "agentflow_sessions_destroyed";
pub const SESSIONS_EXPIRED: &str = "agentflow_sessions_expired";
pub const PLUGIN_STATE: &str = "agentflow_plugin_state";
pub const PLUGIN_WARMUP_DURATION: &str = "agentflow_plugin_warmup_duration_seconds";
pub const PLUGIN_INFLIGHT: &str = "agentflow_plugin_inflight_calls";
pub const PLUGIN_INFLIGHT_LIMIT: &str = "agentflow_plugin_inflight_limit";
pub const CALL_POOL_QUEUED: &str = "agentflow_call_pool_queued_calls";
pub const CALL_POOL_BUSY: &str = "agentflow_call_pool_busy_threads";
pub const CALL_POOL_THREADS: &str = "agentflow_call_pool_threads";
pub const REFUSALS: &str = "agentflow_refusals";
/// The standard process metric names, which dashboards already know.
pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
