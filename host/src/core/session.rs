//! One session: a worker's private instance of a per-session plugin.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::backend::Backend;
use super::trajectory::Writer;

/// A session and the plugin version it was created on.
pub struct Session {
    pub id: String,
    pub name: String,
    pub worker_id: String,
    pub resource_type: String,
    /// Created for one call and destroyed after it.
    pub temporary: bool,
    /// `None` for a compatibility session (a resource type with no plugin).
    pub backend: Option<Arc<Backend>>,
    pub created_at: SystemTime,
    /// Where its calls are recorded, when they are (`core/trajectory/`).
    pub trajectory: Option<Arc<Writer>>,
    /// Microseconds since the Unix epoch: an atomic, as every call touches it.
    last_activity: AtomicU64,
    in_flight: AtomicUsize,
    broken: AtomicBool,
}

impl Session {
    pub fn new(
        id: String,
        name: String,
        worker_id: &str,
        resource_type: &str,
        temporary: bool,
        backend: Option<Arc<Backend>>,
        trajectory: Option<Arc<Writer>>,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            trajectory,
            id,
            name,
            worker_id: worker_id.to_string(),
            resource_type: resource_type.to_string(),
            temporary,
            backend,
            created_at: now,
            last_activity: AtomicU64::new(micros(now)),
            in_flight: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
        }
    }

    pub fn last_activity(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.last_activity.load(Ordering::Relaxed))
    }

    /// Resets the idle clock (the TTL counts from the last activity).
    pub fn touch(&self) {
        self.last_activity
            .fetch_max(micros(SystemTime::now()), Ordering::Relaxed);
    }

    pub fn expires_at(&self, ttl: Duration) -> SystemTime {
        self.last_activity() + ttl
    }

    /// Idle past its TTL with no call running.
    pub fn is_expired(&self, ttl: Duration, now: SystemTime) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && self.expires_at(ttl) <= now
    }

    /// Marks a call running on the session until the guard drops.
    pub fn begin_call(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        CallGuard(self.clone())
    }

    pub fn mark_broken(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    pub fn status(&self) -> &'static str {
        if self.broken.load(Ordering::SeqCst) {
            "broken"
        } else {
            "active"
        }
    }
}

/// Keeps a session counted as busy (and so safe from the reaper).
pub struct CallGuard(Arc<Session>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `session_name` parts: characters outside `[A-Za-z0-9_-]` become `-`, the
/// `trim` characters are stripped from both ends, and the result is cut to 32.
pub fn sanitize(s: &str, trim: &[char]) -> String {
    let replaced: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    replaced.trim_matches(trim).chars().take(32).collect()
}

/// `<rt>_<worker>_<NNN>[_<custom>]`.
pub fn session_name(resource_type: &str, worker_id: &str, n: u32, custom: Option<&str>) -> String {
    let mut worker = sanitize(worker_id, &['-']);
    if worker.is_empty() {
        worker = "worker".into();
    }
    let mut name = format!("{resource_type}_{worker}_{n:03}");
    if let Some(c) = custom
        .map(|c| sanitize(c, &['-', '_']))
        .filter(|c| !c.is_empty())
    {
        name.push('_');
        name.push_str(&c);
    }
    name
}

/// `<session_name>_<8 hex>`.
pub fn session_id(name: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{name}_{}", &hex[..8])
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_format() {
        assert_eq!(session_name("vm", "w1", 1, None), "vm_w1_001");
        assert_eq!(
            session_name("vm", "a b/c", 12, Some("my vm")),
            "vm_a-b-c_012_my-vm"
        );
        assert_eq!(
            session_name("bash", "---", 3, Some("__x__")),
            "bash_worker_003_x"
        );
        let long = "w".repeat(50);
        assert_eq!(
            session_name("rag", &long, 1, None),
            format!("rag_{}_001", "w".repeat(32))
        );
        let id = session_id("vm_w1_001");
        assert!(id.starts_with("vm_w1_001_") && id.len() == "vm_w1_001_".len() + 8);
    }
}
