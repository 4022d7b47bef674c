//! Requests by endpoint and status, and their latency. The endpoint is the
//! route that matched (`/execute`, `/api/v1/tools/{name}/schema`), never the
//! raw path, so a scanner probing random paths adds one series
//! (`unmatched`), not one per path.

use std::collections::HashSet;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::LATENCY_BUCKETS;

/// The endpoint of a request no route matched.
pub const UNMATCHED: &str = "unmatched";
/// Most distinct endpoints kept (routes are a few dozen).
const MAX_ENDPOINTS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointStatus {
    pub endpoint: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Endpoint {
    pub endpoint: &'static str,
}

pub(super) fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Requests {
    pub(super) count: Family<EndpointStatus, Counter>,
    pub(super) duration: Family<Endpoint, Histogram, fn() -> Histogram>,
    /// Route templates seen, as `'static` labels made once each.
    endpoints: RwLock<HashSet<&'static str>>,
}

impl Default for Requests {
    fn default() -> Self {
        Self {
            count: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            endpoints: RwLock::default(),
        }
    }
}

impl Requests {
    /// Records one answered request; `route` is the matched route template.
    pub fn record(&self, route: Option<&str>, status: u16, took: Duration) {
        let endpoint = route.map_or(UNMATCHED, |r| self.endpoint(r));
        self.count
            .get_or_create(&EndpointStatus { endpoint, status })
            .inc();
        self.duration
            .get_or_create(&Endpoint { endpoint })
            .observe(took.as_secs_f64());
    }

    /// The label for a route template: made (and kept for the process's
    /// life) the first time the route answers, looked up after that.
    fn endpoint(&self, route: &str) -> &'static str {
        if let Some(e) = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return e;
        }
        let mut set = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = set.get(route) {
            return e;
        }
        if set.len() >= MAX_ENDPOINTS {
            return UNMATCHED;
        }
        let label: &'static str = Box::leak(route.to_string().into_boxed_str());
        set.insert(label);
        label
    }
}
