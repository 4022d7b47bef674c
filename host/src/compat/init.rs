//! `POST /api/v1/init/resource`, `/init/batch` and `/init/from-config`:
//! get-or-create sessions (an existing one has its TTL refreshed) and reading
//! a JSON config file on the server.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::codes::{Code, Mapped};
use super::envelope::{self, Meta};
use super::extract::{check_text, optional, present, required, Checked, Field, Kind, Model};
use super::sessions::{
    add_compatibility, check_target, init_failed, missing, BOTH_REQUIRED, WORKER_REQUIRED,
};
use crate::core::error::{CoreError, CoreResult};
use crate::core::session::Session;
use crate::core::Core;
use crate::web::{AppState, RequestId, Routing};

#[derive(Deserialize)]
pub struct ResourceBody {
    worker_id: Option<String>,
    resource_type: Option<String>,
    #[serde(default)]
    init_config: Value,
}

impl Model for ResourceBody {
    const FIELDS: &'static [Field] = &[
        optional("worker_id", Kind::Str),
        optional("resource_type", Kind::Str),
        optional("init_config", Kind::Object),
    ];
}

#[derive(Deserialize)]
pub struct BatchBody {
    worker_id: Option<String>,
    resource_configs: Map<String, Value>,
}

impl Model for BatchBody {
    const FIELDS: &'static [Field] = &[
        optional("worker_id", Kind::Str),
        required("resource_configs", Kind::Object),
    ];
}

#[derive(Deserialize)]
pub struct FromConfigBody {
    config_path: Option<String>,
    #[serde(default)]
    override_params: Map<String, Value>,
}

impl Model for FromConfigBody {
    const FIELDS: &'static [Field] = &[
        optional("worker_id", Kind::Str),
        optional("config_path", Kind::Str),
        optional("override_params", Kind::Object),
    ];
}

/// Gets the worker's session for `rt`, creating it (or a compatibility
/// session) when there is none; an existing session's TTL is refreshed.
async fn get_or_create(
    core: &Arc<Core>,
    worker: &str,
    rt: &str,
    config: &Value,
) -> CoreResult<Arc<Session>> {
    check_target(worker, rt)?;
    let (session, created) = core.create_session(worker, rt, config, None, true).await?;
    if !created {
        session.touch();
    }
    Ok(session)
}

pub async fn resource(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<ResourceBody>,
) -> Response {
    let started = Instant::now();
    let (Some(worker), Some(rt)) = (present(&body.worker_id), present(&body.resource_type)) else {
        return missing(
            BOTH_REQUIRED,
            &Meta::endpoint("init:resource", INIT_RESOURCE_TYPE, started),
            &trace,
        );
    };
    let meta = |sid: Option<&str>| {
        Meta::endpoint("init:resource", INIT_RESOURCE_TYPE, started).session(sid)
    };
    if let Err(e) = check_target(worker, rt).and_then(|()| routing.worker(Some(worker)).map(drop)) {
        return envelope::core_failure(&e, &meta(None), &trace);
    }
    match get_or_create(&state.core, worker, rt, &body.init_config).await {
        Ok(s) => {
            let mut data = json!({
                "session_id": s.id,
                "resource_type": rt,
                "session_status": s.status(),
                "error": null,
            });
            add_compatibility(&mut data, &s);
            envelope::success(data, &meta(Some(&s.id)), &trace)
        }
        Err(e @ CoreError::ShuttingDown) => envelope::core_failure(&e, &meta(None), &trace),
        Err(e) => envelope::failure(
            &init_failed("Resource initialization failed", rt, &e),
            &meta(None),
            &trace,
        ),
    }
}

/// `{content: {...}}` or the config itself.
fn init_config(entry: &Value) -> CoreResult<Value> {
    let config = match entry.get("content") {
        Some(content) => content,
        None => entry,
    };
    match config {
        Value::Object(_) => Ok(config.clone()),
        Value::Null => Ok(json!({})),
        _ => Err(CoreError::InvalidParams(
            "An init config must be an object (or {\"content\": {...}})".into(),
        )),
    }
}

pub async fn batch(
    State(state): State<AppState>,
    trace: RequestId,
    routing: Routing,
    Checked(body): Checked<BatchBody>,
) -> Response {
    let started = Instant::now();
    let meta = || Meta::endpoint("init:batch", INIT_RESOURCE_TYPE, started);
    let Some(worker) = present(&body.worker_id) else {
        return missing(WORKER_REQUIRED, &meta(), &trace);
    };
    if let Err(e) =
        check_text("worker_id", worker).and_then(|()| routing.worker(Some(worker)).map(drop))
    {
        return envelope::core_failure(&e, &meta(), &trace);
    }
    // Different resource types of one worker initialize independently.
    let mut jobs = tokio::task::JoinSet::new();
    for (rt, entry) in body.resource_configs {
        let (core, worker) = (state.core.clone(), worker.to_string());
        jobs.spawn(async move {
            let outcome = match init_config(&entry) {
                Ok(config) => get_or_create(&core, &worker, &rt, &config).await,
                Err(e) => Err(e),
            };
            (rt, outcome)
        });
    }
    let mut results = Map::new();
    let mut succeeded = 0;
    while let Some(done) = jobs.join_next().await {
        let (rt, outcome) = match done {
            Ok(pair) => pair,
            Err(e) => {
                let err =
                    CoreError::Internal(format!("resource initialization did not finish: {e}"));
                return envelope::core_failure(&err, &meta(), &trace);
            }
        };
        let result = match outcome {
            Ok(s) => {
                succeeded += 1;
                let mut r = json!({"status": "success", "session_id": s.id, "session_status": s.status(), "error": null});
                add_compatibility(&mut r, &s);
                r
            }
            Err(e) => {
                json!({"status": "error", "session_id": null, "session_status": "error", "error": e.to_string()})
            }
        };
        results.insert(rt, result);
    }
    let total = results.len();
    let failed = total - succeeded;
    let data = json!({"worker_id": worker, "results": results, "total": total, "success_count": succeeded});
    let (code, status, message) = envelope::batch_outcome(
        failed,
        total,
        "All resources failed to initialize",
        "resources",
    );
    envelope::with_status(
        status,
        envelope::body(code, &message, data, &meta(), &trace),
    )
}

pub async fn from_config(
    State(state): State<AppState>,
    trace: RequestId,
    Checked(body): Checked<FromConfigBody>,
) -> Response {
    let started = Instant::now();
    let meta = || Meta::endpoint("init:from_config", INIT_RESOURCE_TYPE, started);
    let Some(path) = present(&body.config_path) else {
        return missing("config_path required", &meta(), &trace);
    };
    let server = &state.core.config.server;
    let real = match allowed_config_path(Path::new(path), &server.compat_config_dirs) {
        Ok(real) => real,
        Err(e) => return envelope::failure(&e, &meta(), &trace),
    };
    match read_config(&real, Path::new(path), server.body_limit as u64).await {
        Ok(mut config) => {
            apply_overrides(&mut config, body.override_params);
            envelope::success(
                json!({"config_loaded": path, "config_path": path, "config": config}),
                &meta(),
                &trace,
            )
        }
        Err(e) => envelope::failure(&e, &meta(), &trace),
    }
}

/// The Python server's `meta.resource_type` on every `/init/*` answer.
const INIT_RESOURCE_TYPE: Option<&str> = Some("session");

/// The file to read for `path`, with symbolic links resolved, if it lies in
/// one of the operator's `server.compat_config_dirs` (the client names the
/// file; without the list it could read any file the server can).
fn allowed_config_path(
    path: &Path,
    dirs: &[std::path::PathBuf],
) -> Result<std::path::PathBuf, Mapped> {
    let refused = |why: &str| {
        Mapped::new(
            Code::InvalidRequest,
            format!(
                "Config file {} {why}: the server reads config files only from the \
                 directories in server.compat_config_dirs",
                path.display()
            ),
        )
        .with_status(StatusCode::FORBIDDEN)
    };
    if dirs.is_empty() {
        return Err(refused("is not read (server.compat_config_dirs is empty)"));
    }
    let Ok(real) = std::fs::canonicalize(path) else {
        // Said only of paths inside the directories: outside, nothing is told.
        return match dirs.iter().any(|d| path.starts_with(d)) {
            true => Err(Mapped::new(
                Code::InvalidRequest,
                format!("Config file not found: {}", path.display()),
            )
            .with_status(StatusCode::NOT_FOUND)),
            false => Err(refused("is outside them")),
        };
    };
    let inside = dirs.iter().any(|dir| {
        std::fs::canonicalize(dir)
            .map(|dir| real.starts_with(dir))
            .unwrap_or(false)
    });
    if inside {
        Ok(real)
    } else {
        Err(refused("is outside them"))
    }
}

/// Reads a JSON object from the regular file `path` (named `shown` in
/// messages, as the client gave it) no larger than `limit`.
async fn read_config(path: &Path, shown: &Path, limit: u64) -> Result<Map<String, Value>, Mapped> {
    let shown = shown.display();
    let invalid = |m: String| Mapped::new(Code::InvalidInput, m);
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Mapped::new(
                Code::InvalidRequest,
                format!("Config file not found: {shown}"),
            )
            .with_status(StatusCode::NOT_FOUND));
        }
        Err(e) => return Err(invalid(format!("Cannot read config file {shown}: {e}"))),
    };
    // Devices and FIFOs could block or never end.
    if !meta.is_file() {
        return Err(invalid(format!(
            "Config file {shown} is not a regular file"
        )));
    }
    if meta.len() > limit {
        return Err(invalid(format!(
            "Config file {shown} is {} bytes; at most {limit} are read (server.body_limit)",
            meta.len()
        )));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| invalid(format!("Cannot read config file {shown}: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(config)) => Ok(config),
        Ok(_) => Err(invalid(format!(
            "Config file {shown} must hold a JSON object"
        ))),
        Err(e) => Err(invalid(format!(
            "Config file {shown} is not valid JSON: {e}"
        ))),
    }
}

/// Overrides of keys the file has, as the Python server applies them: an
/// object over an object is a shallow update, anything else replaces the
/// value; a key the file does not have is ignored.
fn apply_overrides(config: &mut Map<String, Value>, overrides: Map<String, Value>) {
    for (key, value) in overrides {
        match (config.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(update)) => existing.extend(update),
            (Some(existing), value) => *existing = value,
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_update_objects_shallowly_replace_the_rest_and_skip_new_keys() {
        let mut config = json!({"vm": {"screen": [1, 2], "keep": 1}, "list": [1], "n": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let overrides =
            json!({"vm": {"screen": [3, 4], "deep": {"a": 1}}, "list": [2], "new": true})
                .as_object()
                .cloned()
                .unwrap_or_default();
        apply_overrides(&mut config, overrides);
        assert_eq!(
            Value::Object(config),
            json!({"vm": {"screen": [3, 4], "keep": 1, "deep": {"a": 1}}, "list": [2], "n": 1})
        );
    }

    #[test]
    fn batch_entries_may_wrap_their_config_in_content() {
        assert_eq!(
            init_config(&json!({"content": {"a": 1}})).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(init_config(&json!({"a": 1})).unwrap(), json!({"a": 1}));
        assert!(init_config(&json!([1])).is_err());
    }
}
