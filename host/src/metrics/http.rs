//! Requests by endpoint and status, and their latency. The endpoint is the
//! route that matched (`/execute`, `/api/v1/tools/{name}/schema`), never the
//! raw path, so a scanner probing random paths adds one series
//! (`unmatched`), not one per path.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
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
    /// Each route's handles, found with one lookup per request.
    routes: RwLock<HashMap<Box<str>, Arc<Route>>>,
    unmatched: Arc<Route>,
}

/// One route's handles: its latency histogram and a counter per status,
/// made the first time the route answers with it.
struct Route {
    endpoint: &'static str,
    duration: Histogram,
    /// Indexed by status - 100.
    statuses: Box<[OnceLock<Counter>]>,
}

impl Route {
    fn new(
        endpoint: &'static str,
        duration: &Family<Endpoint, Histogram, fn() -> Histogram>,
    ) -> Self {
        Self {
            endpoint,
            duration: duration.get_or_create_owned(&Endpoint { endpoint }),
            statuses: (100..600).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl Default for Requests {
    fn default() -> Self {
        let duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        Self {
            count: Family::default(),
            unmatched: Arc::new(Route::new(UNMATCHED, &duration)),
            duration,
            routes: RwLock::default(),
        }
    }
}

impl Requests {
    /// Records one answered request; `route` is the matched route template.
    pub fn record(&self, route: Option<&str>, status: u16, took: Duration) {
        let record = |route: &Route| {
            let slot = usize::from(status.clamp(100, 599) - 100);
            route.statuses[slot]
                .get_or_init(|| {
                    self.count.get_or_create_owned(&EndpointStatus {
                        endpoint: route.endpoint,
                        status,
                    })
                })
                .inc();
            route.duration.observe(took.as_secs_f64());
        };
        let Some(route) = route else {
            return record(&self.unmatched);
        };
        // The usual case: the route is known; no handle is cloned.
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return record(r);
        }
        record(&self.add(route));
    }

    /// A route's handles, made (its label kept for the process's life) the
    /// first time it answers.
    fn add(&self, route: &str) -> Arc<Route> {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = routes.get(route) {
            return r.clone();
        }
        if routes.len() >= MAX_ENDPOINTS {
            return self.unmatched.clone();
        }
        let label: &'static str = Box::leak(route.to_string().into_boxed_str());
        let handles = Arc::new(Route::new(label, &self.duration));
        routes.insert(route.into(), handles.clone());
        handles
    }
}
