//! `/warmup` and `/warmup/status`: loading pending files and warming backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::backend::WarmState;
use super::handle::ProcessStatus;
use super::loading::LoadOutcome;
use super::Core;
use crate::config::PluginMode;

/// The outcome of warming one backend.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WarmupResult {
    pub loaded: bool,
    pub warmed_up: bool,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// One backend as `/warmup/status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackendStatus {
    pub loaded: bool,
    pub warmed_up: bool,
    pub version: Option<String>,
    /// `warm`, `loaded`, `warming`, `warmup_failed`, `discovered`, `pending_upgrade`, `failed`, `draining`.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub error: Option<String>,
    pub tools: Vec<String>,
    pub file: Option<FileStatus>,
    /// Older versions still serving sessions created on them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub draining: Vec<DrainingVersion>,
    /// A newer file waiting for `/warmup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub pending: Option<FileStatus>,
    /// Settings of this plugin that weaken isolation (e.g. no sandbox).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub warnings: Vec<String>,
    /// `in_process` or `isolated` (as configured for a file not loaded yet).
    pub mode: PluginMode,
    /// While its warmup runs: the last line the plugin logged (e.g. index
    /// building progress). In-process plugins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Isolated mode: the plugin's process (pid, restarts, how the last one ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub process: Option<ProcessStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileStatus {
    pub name: String,
    pub size: u64,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DrainingVersion {
    pub version: String,
    pub sessions: usize,
    pub file: FileStatus,
}

impl Core {
    /// Warms the named backends (all known ones when `None` or empty): loads a
    /// discovered or newer file first, then runs the plugin's warmup once.
    pub async fn warmup(
        self: &Arc<Self>,
        names: Option<Vec<String>>,
    ) -> BTreeMap<String, WarmupResult> {
        let names = match names.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => self.known_backend_names(),
        };
        let mut out = BTreeMap::new();
        for name in names {
            let result = self.warmup_one(&name).await;
            out.insert(name, result);
        }
        out
    }

    async fn warmup_one(self: &Arc<Self>, name: &str) -> WarmupResult {
        let mut load_error = None;
        for file in self
            .registry
            .files()
            .into_iter()
            .filter(|f| f.name == name && f.error.is_none())
        {
            match self.load_file(&file.path, true).await {
                LoadOutcome::Refused(reason) => load_error = Some(reason),
                LoadOutcome::Loaded(_) | LoadOutcome::AlreadyLoaded | LoadOutcome::Disabled(_) => {}
            }
        }
        let Some(backend) = self.registry.backend(name) else {
            let error = load_error.or_else(|| {
                self.registry
                    .files()
                    .into_iter()
                    .find(|f| f.name == name)
                    .and_then(|f| f.error)
            });
            return WarmupResult {
                loaded: false,
                warmed_up: false,
                version: None,
                error: Some(error.unwrap_or_else(|| format!("Unknown backend: {name}"))),
            };
        };
        let warmed = backend
            .ensure_warm(super::secs(self.config.server.warmup_timeout))
            .await;
        WarmupResult {
            loaded: true,
            warmed_up: warmed.is_ok(),
            version: Some(backend.info.version.clone()),
            error: warmed.err().map(|e| e.to_string()).or(load_error),
        }
    }

    /// Names of every backend the host knows: loaded or seen as a file.
    pub fn known_backend_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registry
            .backends()
            .iter()
            .map(|b| b.name.clone())
            .collect();
        names.extend(self.registry.files().into_iter().map(|f| f.name));
        names.sort();
        names.dedup();
        names
    }

    /// Every backend the host knows, with its state.
    pub fn warmup_status(&self) -> BTreeMap<String, BackendStatus> {
        let mut out = BTreeMap::new();
        for b in self.registry.backends() {
            let (state, error) = match b.warm_state() {
                WarmState::Warm => ("warm", None),
                WarmState::Cold => ("loaded", None),
                WarmState::Warming => ("warming", None),
                WarmState::Failed(e) => ("warmup_failed", Some(e)),
            };
            let draining = self
                .registry
                .retired()
                .into_iter()
                .filter(|r| r.name == b.name)
                .map(|r| DrainingVersion {
                    version: r.info.version.clone(),
                    sessions: r.open_sessions(),
                    file: file_status(&r.file.file_name(), r.file.size, &r.file.hash),
                })
                .collect();
            out.insert(
                b.name.clone(),
                BackendStatus {
                    loaded: true,
                    warmed_up: state == "warm",
                    version: Some(b.info.version.clone()),
                    state,
                    error,
                    tools: b
                        .tools()
                        .iter()
                        .map(|t| format!("{}:{}", b.name, t.name))
                        .collect(),
                    file: Some(file_status(&b.file.file_name(), b.file.size, &b.file.hash)),
                    draining,
                    pending: None,
                    warnings: self.config.plugin(&b.name).isolation_warnings(),
                    mode: if b.plugin.isolated().is_some() {
                        PluginMode::Isolated
                    } else {
                        PluginMode::InProcess
                    },
                    process: b.plugin.isolated(),
                    progress: (state == "warming")
                        .then(|| b.plugin.warmup_progress())
                        .flatten(),
                },
            );
        }
        for f in self.registry.files() {
            let status = file_status(&f.file, f.size, &f.hash);
            match (out.get_mut(&f.name), &f.error) {
                (Some(existing), None) => {
                    existing.pending = Some(status);
                    if existing.state != "warmup_failed" {
                        existing.state = "pending_upgrade";
                    }
                }
                (Some(existing), Some(e)) => {
                    existing
                        .error
                        .get_or_insert_with(|| format!("{}: {e}", f.file));
                }
                (None, error) => {
                    // A refused or discovered file under a name nothing serves:
                    // key it by file name when the name is taken by another file.
                    let key = if out.contains_key(&f.name) {
                        f.file.clone()
                    } else {
                        f.name.clone()
                    };
                    out.insert(
                        key,
                        BackendStatus {
                            loaded: false,
                            warmed_up: false,
                            version: None,
                            state: if error.is_some() {
                                "failed"
                            } else {
                                "discovered"
                            },
                            error: error.clone(),
                            tools: Vec::new(),
                            file: Some(status),
                            draining: Vec::new(),
                            pending: None,
                            warnings: self.config.plugin(&f.name).isolation_warnings(),
                            mode: self.config.plugin(&f.name).mode,
                            process: None,
                            progress: None,
                        },
                    );
                }
            }
        }
        out
    }
}

fn file_status(name: &str, size: u64, hash: &str) -> FileStatus {
    FileStatus {
        name: name.to_string(),
        size,
        hash: hash.to_string(),
    }
}
