//! Hot-plug discovery: library files that appear in the plugin directory
//! while the host runs. They are recorded (name, size, hash) without being
//! loaded; `/warmup` loads them, or the host does at once with `auto_load`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::library::{self, LibraryFile};
use super::loading::LoadOutcome;
use super::registry::FileRecord;
use super::Core;

/// What the periodic rescan saw of a file last time: a file is only taken
/// once its size and modification time held still for one interval, so a
/// copy in progress is never picked up.
#[derive(Default)]
pub struct ScanMemory {
    seen: Mutex<HashMap<PathBuf, (u64, SystemTime, bool)>>,
}

impl Core {
    /// A file in the plugin directory was completely written or renamed into place.
    pub async fn file_arrived(self: &Arc<Self>, path: &Path) {
        if path.extension().is_none_or(|e| e != "so") || !path.is_file() {
            return;
        }
        let read = {
            let p = path.to_path_buf();
            tokio::task::spawn_blocking(move || {
                LibraryFile::read(&p).map(|(f, bytes)| (f, library::check_complete_elf(&bytes)))
            })
            .await
        };
        let (file, elf_check) = match read {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read discovered file");
                return;
            }
            Err(_) => return,
        };
        if self.registry.is_loaded(&file) {
            // Same content as what already runs (a `touch`, a re-copy): nothing new.
            self.registry.forget_file(&file.path);
            return;
        }
        if self
            .registry
            .files()
            .iter()
            .any(|f| f.path == file.path && f.hash == file.hash)
        {
            return;
        }
        let error = elf_check.err();
        tracing::info!(file = %file.file_name(), size = file.size, hash = %&file.hash[..12], error = ?error, "plugin file discovered");
        self.registry
            .record_file(FileRecord::new(&file, error.clone()));
        if self.config.server.auto_load && error.is_none() {
            match self.load_file(&file.path, true).await {
                LoadOutcome::Loaded(b) => {
                    let _ = b
                        .ensure_warm(super::secs(self.config.server.warmup_timeout))
                        .await;
                    tracing::info!(plugin = %b.name, version = %b.info.version, "auto-loaded");
                }
                LoadOutcome::Refused(reason) => {
                    tracing::warn!(file = %file.file_name(), %reason, "auto-load refused")
                }
                LoadOutcome::AlreadyLoaded | LoadOutcome::Disabled(_) => {}
            }
        }
    }

    /// A file left the plugin directory: forget it if it was only discovered.
    /// A loaded plugin keeps running from its own copy.
    pub fn file_removed(&self, path: &Path) {
        if self.registry.files().iter().any(|f| f.path == path) {
            tracing::info!(file = %path.display(), "discovered plugin file removed");
            self.registry.forget_file(path);
        }
    }

    /// Looks at the whole directory (inotify can drop events, and does not
    /// work on every filesystem).
    pub async fn rescan(self: &Arc<Self>, memory: &ScanMemory) {
        let dir = self.config.server.plugin_dir.clone();
        let files = library::scan(&dir);
        let mut ready = Vec::new();
        {
            let mut seen = memory.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.retain(|p, _| files.contains(p));
            for path in &files {
                let Ok(meta) = std::fs::metadata(path) else {
                    continue;
                };
                let stamp = (
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                );
                match seen.get_mut(path) {
                    Some(entry) if (entry.0, entry.1) == stamp => {
                        if !entry.2 {
                            entry.2 = true;
                            ready.push(path.clone());
                        }
                    }
                    _ => {
                        seen.insert(path.clone(), (stamp.0, stamp.1, false));
                    }
                }
            }
        }
        for record in self.registry.files() {
            if record.path.parent() == Some(dir.as_path()) && !files.contains(&record.path) {
                self.file_removed(&record.path);
            }
        }
        for path in ready {
            self.file_arrived(&path).await;
        }
    }
}
