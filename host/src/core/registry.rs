//! The registry: which plugin versions are loaded, which library files were
//! discovered or refused, and the tool index. Knows nothing of HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;

use super::backend::Backend;
use super::error::{CoreError, CoreResult};
use super::library::LibraryFile;
use super::names;

/// A library file that is known but not serving: discovered and waiting for
/// `/warmup`, or refused with a reason.
#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    pub file: String,
    pub path: PathBuf,
    pub size: u64,
    pub hash: String,
    /// The plugin name the file is expected to provide.
    pub name: String,
    /// Why it was refused (`None` while merely discovered).
    pub error: Option<String>,
}

impl FileRecord {
    pub fn new(file: &LibraryFile, error: Option<String>) -> Self {
        Self {
            file: file.file_name(),
            path: file.path.clone(),
            size: file.size,
            hash: file.hash.clone(),
            name: file.provisional_name(),
            error,
        }
    }
}

#[derive(Default)]
struct State {
    /// The current version of each plugin, by name.
    backends: BTreeMap<String, Arc<Backend>>,
    /// Old versions still serving sessions created on them.
    retired: Vec<Arc<Backend>>,
    /// Files seen in the plugin directory and not loaded, by path.
    files: BTreeMap<PathBuf, FileRecord>,
}

/// All plugins the host knows.
pub struct Registry {
    state: RwLock<State>,
    /// Bumped whenever the tool catalog may have changed (a plugin loaded,
    /// upgraded or refused), so surfaces can tell their clients.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes when the catalog may have changed (see [`Registry::install`] and
    /// [`Registry::record_file`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Installs a backend, all or nothing. Tool names are `plugin:action`, so
    /// two libraries clash exactly when they claim the same plugin name: with
    /// `upgrade` the new one replaces the old (returned, retired, and kept
    /// serving its sessions); without, the new one is refused.
    pub fn install(
        &self,
        backend: Arc<Backend>,
        upgrade: bool,
    ) -> Result<Option<Arc<Backend>>, String> {
        let mut state = self.write();
        if let Some(existing) = state.backends.get(&backend.name) {
            if !upgrade {
                return Err(format!(
                    "plugin '{}' is already loaded from {}; its tools ({}) would clash",
                    backend.name,
                    existing.file.file_name(),
                    existing
                        .tools()
                        .iter()
                        .map(|t| format!("{}:{}", existing.name, t.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        state.files.remove(&backend.file.path);
        let old = state.backends.insert(backend.name.clone(), backend);
        if let Some(old) = &old {
            old.retire();
            if old.open_sessions() > 0 {
                state.retired.push(old.clone());
            }
        }
        drop(state);
        self.changed();
        Ok(old)
    }

    /// Records a discovered or refused file.
    pub fn record_file(&self, record: FileRecord) {
        let refused = record.error.is_some();
        self.write().files.insert(record.path.clone(), record);
        if refused {
            self.changed();
        }
    }

    /// Forgets a file record (the file was removed or loaded).
    pub fn forget_file(&self, path: &Path) {
        self.write().files.remove(path);
    }

    pub fn files(&self) -> Vec<FileRecord> {
        self.read().files.values().cloned().collect()
    }

    /// Drops a retired version from the list once it has shut down.
    pub fn drop_retired(&self, backend: &Arc<Backend>) {
        self.write().retired.retain(|b| !Arc::ptr_eq(b, backend));
    }

    pub fn retired(&self) -> Vec<Arc<Backend>> {
        self.read().retired.clone()
    }

    /// The current version of a plugin.
    pub fn backend(&self, name: &str) -> Option<Arc<Backend>> {
        self.read().backends.get(name).cloned()
    }

    pub fn backends(&self) -> Vec<Arc<Backend>> {
        self.read().backends.values().cloned().collect()
    }

    /// Is this file (by hash) what a current backend was loaded from?
    pub fn is_loaded(&self, file: &LibraryFile) -> bool {
        self.read()
            .backends
            .values()
            .any(|b| b.file.hash == file.hash)
    }

    /// Resolves a tool name (see [`names::resolve`]) to its backend and action.
    pub fn resolve(&self, action: &str) -> CoreResult<(Arc<Backend>, String)> {
        let state = self.read();
        // The common case, a registered `plugin:tool`, without listing every tool.
        if let Some((plugin, tool)) = action.split_once(':') {
            if let Some(b) = state.backends.get(plugin).filter(|b| b.has_tool(tool)) {
                return Ok((b.clone(), tool.to_string()));
            }
        }
        let full_names: Vec<String> = state
            .backends
            .values()
            .flat_map(|b| {
                b.tools()
                    .iter()
                    .map(move |t| format!("{}:{}", b.name, t.name))
            })
            .collect();
        let full = names::resolve(action, full_names.iter().map(String::as_str))?;
        let (plugin, tool) = full
            .split_once(':')
            .ok_or_else(|| CoreError::ToolNotFound(action.to_string()))?;
        let backend = state
            .backends
            .get(plugin)
            .cloned()
            .ok_or_else(|| CoreError::ToolNotFound(action.to_string()))?;
        Ok((backend, tool.to_string()))
    }
}
