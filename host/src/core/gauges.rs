//! The gauges of `/metrics` that describe the core's state now — sessions
//! held, plugin states, calls in flight, the call pool, the process — read
//! when `/metrics` is scraped rather than kept up to date on every call.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{call_pool, Core};
use crate::metrics::{PluginLabel, PluginStateLabel, ResourceLabel};

/// The states `agentflow_plugin_state` has a series for, per plugin.
pub const PLUGIN_STATES: [&str; 4] = ["loaded", "warm", "draining", "failed"];

impl Core {
    /// The Prometheus text of every metric, gauges refreshed first; `None`
    /// with `server.metrics = false`.
    pub fn render_metrics(&self) -> Option<String> {
        let m = self.metrics.as_ref()?;
        let mut by_type: BTreeMap<Arc<str>, i64> = BTreeMap::new();
        for s in self.sessions.all() {
            *by_type.entry(s.resource_type.as_str().into()).or_default() += 1;
        }
        // Cleared first: a resource type with no session left shows none.
        m.sessions.active.clear();
        for (rt, n) in by_type {
            m.sessions
                .active
                .get_or_create(&ResourceLabel { resource_type: rt })
                .set(n);
        }

        m.plugins.state.clear();
        for (name, status) in self.warmup_status() {
            let plugin: Arc<str> = name.into();
            let on = [
                status.loaded,
                status.state == "warm",
                !status.draining.is_empty(),
                matches!(status.state, "warmup_failed" | "failed"),
            ];
            for (state, on) in PLUGIN_STATES.into_iter().zip(on) {
                let label = PluginStateLabel {
                    plugin: plugin.clone(),
                    state,
                };
                m.plugins.state.get_or_create(&label).set(i64::from(on));
            }
        }

        m.plugins.inflight.clear();
        m.plugins.inflight_limit.clear();
        for b in self.registry.backends() {
            let (running, limit) = b.calls_in_flight();
            let label = PluginLabel {
                plugin: b.name.as_str().into(),
            };
            m.plugins.inflight.get_or_create(&label).set(running as i64);
            m.plugins
                .inflight_limit
                .get_or_create(&label)
                .set(limit as i64);
        }

        let pool = call_pool::load();
        m.pool.queued.set(pool.queued as i64);
        m.pool.busy.set(pool.busy as i64);
        m.pool.threads.set(pool.threads as i64);
        m.process.refresh();
        Some(m.render())
    }
}
