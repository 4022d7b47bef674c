//! Tool calls by tool and result, and their latency. Each loaded tool gets
//! its [`ToolMetrics`] when its plugin is loaded: a successful call
//! increments a counter and observes a histogram it already holds; a failed
//! one looks its series up by the error's static kind name.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::http::latency_histogram;

/// The result label of a call that succeeded (failures carry the error's
/// kind: `timeout`, `invalid_params`, `backend`, …).
pub const OK: &str = "ok";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ToolResult {
    pub tool: Arc<str>,
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Tool {
    pub tool: Arc<str>,
}

pub struct ToolFamilies {
    pub(super) calls: Family<ToolResult, Counter>,
    pub(super) duration: Family<Tool, Histogram, fn() -> Histogram>,
}

impl Default for ToolFamilies {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl ToolFamilies {
    /// The handles of one tool (`resource:action`); the same series for
    /// every version of its plugin.
    pub fn for_tool(&self, full_name: &str) -> ToolMetrics {
        let tool: Arc<str> = Arc::from(full_name);
        ToolMetrics {
            ok: self.calls.get_or_create_owned(&ToolResult {
                tool: tool.clone(),
                result: OK,
            }),
            duration: self
                .duration
                .get_or_create_owned(&Tool { tool: tool.clone() }),
            calls: self.calls.clone(),
            tool,
        }
    }
}

/// One tool's handles.
#[derive(Clone)]
pub struct ToolMetrics {
    tool: Arc<str>,
    ok: Counter,
    duration: Histogram,
    calls: Family<ToolResult, Counter>,
}

impl ToolMetrics {
    /// Records a finished call: `Err` carries the error's kind.
    pub fn record(&self, result: Result<(), &'static str>, took: Duration) {
        match result {
            Ok(()) => {
                self.ok.inc();
            }
            Err(kind) => {
                self.calls
                    .get_or_create(&ToolResult {
                        tool: self.tool.clone(),
                        result: kind,
                    })
                    .inc();
            }
        }
        self.duration.observe(took.as_secs_f64());
    }
}
