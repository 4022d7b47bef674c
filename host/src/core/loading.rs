//! Loading plugin library files into the registry: at startup, and later from
//! `/warmup` for files discovered in the plugin directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::Backend;
use super::handle::PluginHandle;
use super::library::{self, LibraryFile};
use super::registry::FileRecord;
use super::Core;
use crate::config::PluginMode;
use crate::isolation::child::IsolatedPlugin;

/// What happened to one library file.
pub enum LoadOutcome {
    Loaded(Arc<Backend>),
    /// The same content is already serving.
    AlreadyLoaded,
    Disabled(String),
    Refused(String),
}

impl Core {
    /// Loads every library in the plugin directory and every plugin the config
    /// names with a `path`. Bad libraries are recorded with their reason and
    /// never stop the host.
    pub async fn load_startup_plugins(self: &Arc<Self>) {
        let dir = self.config.server.plugin_dir.clone();
        library::remove_stale_partials(&self.copies_dir);
        if !dir.is_dir() {
            tracing::warn!(dir = %dir.display(), "plugin directory does not exist; no plugins loaded from it");
        }
        let mut files: Vec<PathBuf> = library::scan(&dir);
        files.extend(
            self.config
                .plugins
                .values()
                .filter(|p| p.enabled)
                .filter_map(|p| p.path.clone()),
        );
        for path in files {
            match self.load_file(&path, false).await {
                LoadOutcome::Loaded(b) => {
                    tracing::info!(plugin = %b.name, version = %b.info.version, file = %path.display(), tools = b.tools().len(), "plugin loaded")
                }
                LoadOutcome::AlreadyLoaded => {}
                LoadOutcome::Disabled(name) => {
                    tracing::info!(plugin = %name, "plugin disabled in config; not loaded")
                }
                LoadOutcome::Refused(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "plugin refused")
                }
            }
        }
    }

    /// Loads one library file. With `upgrade`, a file for a plugin that is
    /// already loaded replaces it (the old version drains); without, it is refused.
    pub async fn load_file(self: &Arc<Self>, path: &Path, upgrade: bool) -> LoadOutcome {
        let core = self.clone();
        let path_owned = path.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || core.load_blocking(&path_owned)).await;
        let (file, result) = match loaded {
            Ok(Ok(pair)) => pair,
            Ok(Err(outcome)) => return outcome,
            Err(e) => return LoadOutcome::Refused(format!("loading crashed: {e}")),
        };
        let backend = match result {
            Ok(b) => Arc::new(b),
            Err(reason) => {
                self.registry
                    .record_file(FileRecord::new(&file, Some(reason.clone())));
                return LoadOutcome::Refused(reason);
            }
        };
        if !self.config.plugin(&backend.name).enabled {
            self.registry.forget_file(&file.path);
            return LoadOutcome::Disabled(backend.name.clone());
        }
        match self.registry.install(backend.clone(), upgrade) {
            Ok(Some(old)) => {
                tracing::info!(plugin = %backend.name, from = %old.info.version, to = %backend.info.version, sessions_on_old = old.open_sessions(), "plugin upgraded");
                if old.open_sessions() == 0 {
                    self.retire_drained(&old).await;
                }
                LoadOutcome::Loaded(backend)
            }
            Ok(None) => LoadOutcome::Loaded(backend),
            Err(reason) => {
                self.registry
                    .record_file(FileRecord::new(&file, Some(reason.clone())));
                LoadOutcome::Refused(reason)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn load_blocking(
        &self,
        path: &Path,
    ) -> Result<(LibraryFile, Result<Backend, String>), LoadOutcome> {
        let (file, bytes) = match LibraryFile::read(path) {
            Ok(pair) => pair,
            Err(e) => {
                return Err(LoadOutcome::Refused(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        if self.registry.is_loaded(&file) {
            return Err(LoadOutcome::AlreadyLoaded);
        }
        let provisional = file.provisional_name();
        if self
            .config
            .plugins
            .get(&provisional)
            .is_some_and(|p| !p.enabled)
        {
            return Err(LoadOutcome::Disabled(provisional));
        }
        let checked = path
            .parent()
            .map(library::check_not_writable_by_others)
            .unwrap_or(Ok(()))
            .and_then(|()| library::check_not_writable_by_others(path));
        let result = checked
            .and_then(|()| library::check_complete_elf(&bytes))
            .and_then(|()| {
                let plugin: Box<dyn PluginHandle> = match self.config.plugin(&provisional).mode {
                    PluginMode::InProcess => Box::new(
                        library::load_copy(&file, &bytes, &self.copies_dir)
                            .map_err(|e| e.to_string())?,
                    ),
                    PluginMode::Isolated => {
                        let copy = library::copy(&file, &bytes, &self.copies_dir)
                            .map_err(|e| e.to_string())?;
                        let memory = self.config.plugin(&provisional).memory_bytes;
                        Box::new(IsolatedPlugin::start(&copy, memory)?)
                    }
                };
                let settings = self.config.plugin(&plugin.info().name);
                Backend::new(
                    plugin,
                    settings,
                    file.clone(),
                    self.config.server.max_inflight_per_plugin,
                    self.metrics.clone(),
                )
            });
        Ok((file, result))
    }
}
