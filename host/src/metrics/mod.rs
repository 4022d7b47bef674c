//! Prometheus metrics: what the host counts, and the text `GET /metrics`
//! answers with. The web layer records requests and refusals, the core records
//! tool calls, sessions and warmups; gauges that describe the current state
//! (sessions held, plugin states, the call pool, calls in flight, the process)
//! are read from the core when `/metrics` is scraped, so they cost nothing
//! between scrapes.
//!
//! Library: `prometheus-client`, the Prometheus project's own Rust client,
//! rather than `metrics` + `metrics-exporter-prometheus`: it keeps an explicit
//! registry (no process-wide recorder, so every [`crate::core::Core`] and every
//! unit test owns its own), typed label sets, and handles that are made once
//! and kept, so a call increments a counter it already holds instead of
//! building label strings and looking them up; and it is four small crates
//! where the exporter brings `metrics-util`, `quanta` and crossbeam.
//!
//! Every metric is named here ([`names`]), never as a literal elsewhere.

pub mod http;
pub mod names;
pub mod process;
pub mod tools;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use http::Requests;
pub use tools::ToolMetrics;

/// The `Content-Type` of the answer to `/metrics` (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets in seconds, for requests and tool calls alike: from a
/// trivial call (well under a millisecond) to a long build or a VM boot.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Why a request was refused before anything ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The body was larger than `server.body_limit`.
    BodyLimit,
    /// A missing or wrong bearer token.
    Unauthorized,
    /// The host is draining.
    ShuttingDown,
    /// A plugin had `server.max_inflight_per_plugin` calls running.
    PluginBusy,
    /// `server.max_sessions` or `server.max_sessions_per_worker` reached.
    SessionLimit,
    /// `server.max_snapshots` reached.
    SnapshotLimit,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Self::BodyLimit,
        Self::Unauthorized,
        Self::ShuttingDown,
        Self::PluginBusy,
        Self::SessionLimit,
        Self::SnapshotLimit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::BodyLimit => "body_limit",
            Self::Unauthorized => "unauthorized",
            Self::ShuttingDown => "shutting_down",
            Self::PluginBusy => "plugin_busy",
            Self::SessionLimit => "session_limit",
            Self::SnapshotLimit => "snapshot_limit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource_type: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PluginLabel {
    pub plugin: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PluginStateLabel {
    pub plugin: Arc<str>,
    pub state: &'static str,
}

pub type FloatGauge = Gauge<f64, AtomicU64>;
pub type Counters<L> = Family<L, Counter>;

/// Named sessions by resource type (temporary per-call sessions are counted
/// as active while they live, but not as created or destroyed: they follow
/// the call rate, which `tool_calls` already shows).
pub struct SessionMetrics {
    pub active: Family<ResourceLabel, Gauge>,
    pub created: Family<ResourceLabel, Counter>,
    pub destroyed: Family<ResourceLabel, Counter>,
    pub expired: Family<ResourceLabel, Counter>,
}

impl SessionMetrics {
    /// Starts the counters of a resource type at 0, so that a dashboard
    /// shows a rate of 0 rather than no data before the first event.
    pub fn start_counting(&self, resource_type: &str) {
        let label = ResourceLabel {
            resource_type: resource_type.into(),
        };
        for family in [&self.created, &self.destroyed, &self.expired] {
            let _ = family.get_or_create_owned(&label);
        }
    }
}

/// Plugins: state, warmup, calls in flight against their cap.
pub struct PluginMetrics {
    /// 1 when the plugin is in that state (`loaded`, `warm`, `draining`,
    /// `failed`), else 0; each plugin has all four.
    pub state: Family<PluginStateLabel, Gauge>,
    /// How long the plugin's last warmup took (successful or not).
    pub warmup_seconds: Family<PluginLabel, FloatGauge>,
    pub inflight: Family<PluginLabel, Gauge>,
    pub inflight_limit: Family<PluginLabel, Gauge>,
}

/// The threads plugin code runs on (`core/call_pool.rs`).
pub struct PoolMetrics {
    pub queued: Gauge,
    pub busy: Gauge,
    pub threads: Gauge,
}

/// Every metric of one host.
pub struct Metrics {
    registry: Registry,
    pub requests: Requests,
    pub tools: tools::ToolFamilies,
    pub sessions: SessionMetrics,
    pub plugins: PluginMetrics,
    pub pool: PoolMetrics,
    refusals: Family<ReasonLabel, Counter>,
    pub process: process::ProcessMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        use names::*;
        let mut r = Registry::default();
        let requests = Requests::default();
        r.register(
            HTTP_REQUESTS,
            "HTTP requests by endpoint (route) and status",
            requests.count.clone(),
        );
        r.register(
            HTTP_REQUEST_DURATION,
            "HTTP request latency in seconds, by endpoint",
            requests.duration.clone(),
        );
        let tools = tools::ToolFamilies::default();
        r.register(
            TOOL_CALLS,
            "Tool calls by tool and result (ok or the error kind)",
            tools.calls.clone(),
        );
        r.register(
            TOOL_CALL_DURATION,
            "Tool call latency in seconds, by tool",
            tools.duration.clone(),
        );
        let sessions = SessionMetrics {
            active: Family::default(),
            created: Family::default(),
            destroyed: Family::default(),
            expired: Family::default(),
        };
        r.register(
            SESSIONS_ACTIVE,
            "Sessions held now, by resource type",
            sessions.active.clone(),
        );
        r.register(
            SESSIONS_CREATED,
            "Named sessions created, by resource type",
            sessions.created.clone(),
        );
        r.register(
            SESSIONS_DESTROYED,
            "Named sessions destroyed on request, by resource type",
            sessions.destroyed.clone(),
        );
        r.register(
            SESSIONS_EXPIRED,
            "Named sessions ended by their TTL, by resource type",
            sessions.expired.clone(),
        );
        let plugins = PluginMetrics {
            state: Family::default(),
            warmup_seconds: Family::default(),
            inflight: Family::default(),
            inflight_limit: Family::default(),
        };
        r.register(
            PLUGIN_STATE,
            "1 when the plugin is in the state (loaded, warm, draining, failed)",
            plugins.state.clone(),
        );
        r.register(
            PLUGIN_WARMUP_DURATION,
            "Seconds the plugin's last warmup took",
            plugins.warmup_seconds.clone(),
        );
        r.register(
            PLUGIN_INFLIGHT,
            "Calls running in the plugin now",
            plugins.inflight.clone(),
        );
        r.register(
            PLUGIN_INFLIGHT_LIMIT,
            "Most calls the plugin may run at once (server.max_inflight_per_plugin)",
            plugins.inflight_limit.clone(),
        );
        let pool = PoolMetrics {
            queued: Gauge::default(),
            busy: Gauge::default(),
            threads: Gauge::default(),
        };
        r.register(
            CALL_POOL_QUEUED,
            "Plugin calls waiting for a call thread",
            pool.queued.clone(),
        );
        r.register(
            CALL_POOL_BUSY,
            "Call threads running plugin code",
            pool.busy.clone(),
        );
        r.register(
            CALL_POOL_THREADS,
            "Call threads alive",
            pool.threads.clone(),
        );
        let refusals = Family::<ReasonLabel, Counter>::default();
        // Every reason shows from the start, at 0: a dashboard's rate is then
        // defined before the first refusal.
        for why in Refusal::ALL {
            let _ = refusals.get_or_create_owned(&ReasonLabel {
                reason: why.label(),
            });
        }
        r.register(
            REFUSALS,
            "Requests refused before anything ran, by reason",
            refusals.clone(),
        );
        let process = process::ProcessMetrics::default();
        r.register(
            PROCESS_RSS,
            "Resident memory of the host process",
            process.rss_bytes.clone(),
        );
        r.register(
            PROCESS_OPEN_FDS,
            "Open file descriptors of the host process",
            process.open_fds.clone(),
        );
        Self {
            registry: r,
            requests,
            tools,
            sessions,
            plugins,
            pool,
            refusals,
            process,
        }
    }

    pub fn refused(&self, why: Refusal) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: why.label(),
            })
            .inc();
    }

    /// The Prometheus text of every metric (gauges as last refreshed).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_tool_calls_show_in_the_text() {
        let m = Metrics::new();
        m.refused(Refusal::BodyLimit);
        m.refused(Refusal::BodyLimit);
        let t = m.tools.for_tool("bash:run");
        t.record(Ok(()), std::time::Duration::from_millis(3));
        t.record(Err("timeout"), std::time::Duration::from_secs(2));
        let text = m.render();
        assert!(
            text.contains("agentflow_refusals_total{reason=\"body_limit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("agentflow_tool_calls_total{tool=\"bash:run\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("agentflow_tool_calls_total{tool=\"bash:run\",result=\"timeout\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "agentflow_tool_call_duration_seconds_bucket{le=\"0.005\",tool=\"bash:run\"} 1"
            ) || text.contains(
                "agentflow_tool_call_duration_seconds_bucket{tool=\"bash:run\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
    }
}
