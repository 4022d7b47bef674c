//! The snapshot table: frozen session states, by name, from which new
//! sessions start (`/session/create` with `from_snapshot`, `/session/fork`).
//! The state itself is the plugin's (`Plugin::snapshot`); the host keeps the
//! name, where it came from, and when it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::backend::Backend;
use super::error::{CoreError, CoreResult};

/// One snapshot.
pub struct Snapshot {
    /// The client's name for it.
    pub name: String,
    /// The plugin's id for it (unique even when a name is reused later).
    pub id: String,
    pub resource_type: String,
    /// The plugin version that made it, which restores it.
    pub backend: Arc<Backend>,
    pub source_worker: String,
    pub source_session: String,
    pub created_at: SystemTime,
    /// `None` when pinned: it lives until deleted.
    pub expires_at: Option<SystemTime>,
    /// What the plugin said about it (for bash: processes left behind).
    pub report: Value,
}

/// Snapshots by name.
pub struct Snapshots {
    by_name: Mutex<HashMap<String, Arc<Snapshot>>>,
    max: usize,
}

impl Snapshots {
    pub fn new(max: usize) -> Self {
        Self {
            by_name: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Snapshot>>> {
        self.by_name.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses a name in use, or a full table, before the plugin does any work.
    pub fn check_room(&self, name: &str) -> CoreResult<()> {
        let t = self.table();
        if t.contains_key(name) {
            return Err(CoreError::InvalidParams(format!(
                "Parameter 'name': a snapshot named '{name}' exists; delete it or choose another name"
            )));
        }
        if t.len() >= self.max {
            return Err(CoreError::Unavailable(format!(
                "Snapshot limit reached: the server holds its maximum of {} snapshots (server.max_snapshots); delete some",
                self.max
            )));
        }
        Ok(())
    }

    /// Adds a snapshot; false if its name was taken meanwhile.
    pub fn insert(&self, snapshot: Arc<Snapshot>) -> bool {
        let mut t = self.table();
        if t.contains_key(&snapshot.name) {
            return false;
        }
        t.insert(snapshot.name.clone(), snapshot);
        true
    }

    pub fn get(&self, name: &str) -> CoreResult<Arc<Snapshot>> {
        self.table().get(name).cloned().ok_or_else(|| {
            CoreError::InvalidParams(format!(
                "Parameter 'from_snapshot': no snapshot named '{name}' on this host (it expired, was deleted, or was made on another host)"
            ))
        })
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Snapshot>> {
        self.table().remove(name)
    }

    /// Every snapshot, oldest first.
    pub fn all(&self) -> Vec<Arc<Snapshot>> {
        let mut v: Vec<_> = self.table().values().cloned().collect();
        v.sort_by_key(|s| s.created_at);
        v
    }

    /// Takes out the snapshots expired at `now`.
    pub fn take_expired(&self, now: SystemTime) -> Vec<Arc<Snapshot>> {
        let mut t = self.table();
        let names: Vec<String> = t
            .values()
            .filter(|s| s.expires_at.is_some_and(|at| at <= now))
            .map(|s| s.name.clone())
            .collect();
        names.into_iter().filter_map(|n| t.remove(&n)).collect()
    }
}

/// When a snapshot made now expires.
pub fn expiry(pinned: bool, ttl: Duration) -> Option<SystemTime> {
    (!pinned).then(|| SystemTime::now() + ttl)
}
