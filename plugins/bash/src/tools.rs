//! The tools: typed params (their JSON Schema is derived from these structs
//! and their doc comments), results, and handlers that translate between the
//! plugin API and the session. The background process tools are in
//! `tools/background.rs`.

pub mod background;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use plugin_api::{CallContext, ErrorKind, NoParams, PluginError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::ResourceLimits;
use crate::output::{tail, Tap};
use crate::session::{BashSession, RunError};
use crate::shell::Output;
use crate::workspace::PathError;
use crate::BashPlugin;

/// How much of each stream's partial output a timeout error quotes.
const ERROR_OUTPUT_CHARS: usize = 2000;

/// Params of `run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// The command, run by the session's shell as if typed at its prompt:
    /// `cd`, exported variables and functions persist to the next call.
    pub command: String,
    /// Seconds the command may run (default from the plugin config). The
    /// call's own deadline also applies; on expiry everything the command
    /// started is killed and the call fails with a timeout.
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// Result of `run`. A command that exits non-zero is still a result.
#[derive(Debug, Serialize)]
pub struct RunResult {
    /// Standard output; invalid UTF-8 is replaced with U+FFFD.
    pub stdout: String,
    /// Standard error; invalid UTF-8 is replaced with U+FFFD.
    pub stderr: String,
    /// The command's exit status (`$?`); if the command ended the shell
    /// (`exit 3`, a signal), the shell's (3, or 128 + signal).
    pub return_code: i32,
    /// The shell's working directory after the command.
    pub cwd: String,
    /// Always false in a result: a command that runs out of time is reported
    /// as a timeout error. Kept because result formatters read it.
    pub timed_out: bool,
    /// True when stdout or stderr exceeded the output limit and was cut.
    pub truncated: bool,
    /// True when the shell was replaced by a fresh one since the previous
    /// result (the command ended it, or a timeout could not be stopped
    /// otherwise): working directory, variables, functions and background
    /// jobs were reset.
    pub shell_restarted: bool,
    /// The kernel killed a process of the command at the session's memory
    /// limit (stderr says so too). Absent when it did not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub memory_limit_reached: bool,
}

/// How file content is encoded in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The content is the text itself.
    #[default]
    Utf8,
    /// The content is the bytes in standard base64.
    Base64,
}

/// Params of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileParams {
    /// Where to write: relative to the session's directory, or absolute
    /// inside it. Parent directories are created. Must not lead outside.
    pub path: String,
    /// The file's content, encoded as `encoding` says.
    pub content: String,
    /// `utf8` (default) or `base64` for binary content.
    #[serde(default)]
    pub encoding: Encoding,
}

/// Result of `write_file`.
#[derive(Debug, Serialize)]
pub struct WriteFileResult {
    /// Absolute path of the file written.
    pub path: String,
    /// Bytes written.
    pub size: u64,
}

/// Params of `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileParams {
    /// The file: relative to the session's directory, or absolute inside it.
    pub path: String,
    /// Read at most this many bytes (default and maximum: the plugin's file limit).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// Result of `read_file`.
#[derive(Debug, Serialize)]
pub struct ReadFileResult {
    /// Absolute path of the file read.
    pub path: String,
    /// The bytes read, as text if they are valid UTF-8, else base64.
    pub content: String,
    /// `utf8` or `base64`: how `content` is encoded.
    pub encoding: Encoding,
    /// The file's full size in bytes.
    pub size: u64,
    /// True when fewer bytes than the file holds were returned.
    pub truncated: bool,
}

/// Result of the hidden `info` tool: how the plugin and this session are set up.
#[derive(Debug, Serialize)]
pub struct InfoResult {
    /// `bubblewrap` or `none`.
    pub isolation: &'static str,
    /// The plugin's sandbox: network, host uid, cgroup version, limits, and a
    /// warning when sessions are not sandboxed.
    pub sandbox: sandbox::SandboxStatus,
    /// This session's sandbox limits (absent without a sandbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_limits: Option<sandbox::Limits>,
    /// Directories the session writes to a layer of its own over (`/usr`, `/opt`).
    pub layered: Vec<String>,
    /// The operator's image the session runs on (absent: the host's base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The directory holding all session directories.
    pub workspace_root: String,
    /// This session's directory.
    pub session_dir: String,
    /// The shell program.
    pub shell: String,
    /// Bytes kept per output stream (per command; a background process's newest).
    pub output_limit_bytes: usize,
    /// Background processes a session may have unfinished at once.
    pub max_background_processes: usize,
    /// Seconds a command may run by default.
    pub default_timeout_secs: f64,
    /// Largest file content moved by `read_file`/`write_file`.
    pub file_limit_bytes: usize,
    /// Resource limits of the session's processes (0: none).
    pub limits: ResourceLimits,
}

/// `run`: runs a command in the session's shell.
pub fn run(
    plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: RunParams,
) -> Result<RunResult, PluginError> {
    let settings = plugin.settings();
    let session = cx.session()?;
    cx.check()?; // never start a command for a call that is already over
    if params.command.contains('\0') {
        return Err(PluginError::invalid_params(
            "command: contains a NUL character, which no shell command can",
        ));
    }
    let limit = match params.timeout {
        None => Duration::from_secs_f64(settings.config.default_timeout_secs),
        Some(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs.min(1e9)),
        Some(secs) => {
            return Err(PluginError::invalid_params(format!(
                "timeout: must be a positive number of seconds, got {secs}"
            )))
        }
    };
    let call_left = cx.remaining();
    let deadline = Instant::now() + limit.min(call_left);
    let emit = |stream: &str, text: &str| cx.emit(stream, text);
    let mut tap = cx.is_streaming().then(|| Tap::new(&emit));
    match session.run(&params.command, deadline, &|| cx.is_cancelled(), tap.as_mut()) {
        Ok(done) => {
            let mut stderr = done.output.stderr.to_text();
            // Only a failed command can have lost a process to the limit.
            let oom = match done.return_code {
                0 => None,
                _ => session.new_oom_kills().filter(|(kills, _)| *kills > 0),
            };
            if let Some((kills, limit)) = oom {
                stderr.push_str(&format!(
                    "\n[agentflow] the kernel killed {kills} process(es) of this command: the \
                     session reached its memory limit of {} MiB\n",
                    limit / (1024 * 1024)
                ));
            }
            Ok(RunResult {
                truncated: done.output.is_truncated(),
                stdout: done.output.stdout.to_text(),
                stderr,
                return_code: done.return_code,
                cwd: done.cwd,
                timed_out: false,
                shell_restarted: done.shell_restarted,
                memory_limit_reached: oom.is_some(),
            })
        }
        Err(RunError::Stopped { output, shell_kept }) => {
            let what = if limit <= call_left {
                format!("its timeout of {}", seconds(limit))
            } else {
                format!("the call's deadline ({})", seconds(call_left))
            };
            Err(stop_error(cx, &what, &output, shell_kept))
        }
        Err(RunError::Busy) => Err(PluginError::timeout(
            "the session's shell was busy with another command of this session until the deadline; \
             the command did not run",
        )),
        Err(RunError::Broken(message)) => Err(PluginError::session_broken(message)),
        Err(e @ RunError::Io(_)) => Err(PluginError::internal(e.to_string())),
    }
}

/// The error for a stopped command: timeout or cancellation, what happened to
/// the shell, and the end of what the command wrote.
fn stop_error(
    cx: &CallContext<'_, BashSession>,
    what: &str,
    output: &Output,
    shell_kept: bool,
) -> PluginError {
    let (kind, headline) = match cx.check() {
        Err(e) if e.kind == ErrorKind::Cancelled => (
            ErrorKind::Cancelled,
            "the command was cancelled".to_string(),
        ),
        _ => (ErrorKind::Timeout, format!("the command ran past {what}")),
    };
    let shell = if shell_kept {
        "everything it started was killed; the shell kept its state (directory, variables, functions)"
    } else {
        "the shell itself could not be brought back (a command running inside it ignored the \
         interrupt), so it was restarted: directory, variables, functions and background jobs \
         were reset"
    };
    let mut message = format!("{headline}; {shell}.");
    for (name, buffer) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = buffer.to_text();
        if !text.is_empty() {
            message.push_str(&format!(
                "\n{name} so far (end): {}",
                tail(&text, ERROR_OUTPUT_CHARS)
            ));
        }
    }
    PluginError::new(kind, message)
}

fn seconds(d: Duration) -> String {
    format!("{}s", (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// `write_file`: puts a file into the session's directory.
pub fn write_file(
    plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: WriteFileParams,
) -> Result<WriteFileResult, PluginError> {
    let settings = plugin.settings();
    let session = cx.session()?;
    let bytes = decode(params.content, params.encoding, "content")?;
    if bytes.len() > settings.config.file_limit_bytes {
        return Err(PluginError::invalid_params(format!(
            "content: {} bytes is more than the file limit of {} bytes",
            bytes.len(),
            settings.config.file_limit_bytes
        )));
    }
    let path = session
        .dir()
        .write_file(&params.path, &bytes)
        .map_err(path_error)?;
    Ok(WriteFileResult {
        path: display(&path),
        size: bytes.len() as u64,
    })
}

/// `read_file`: reads a file from the session's directory.
pub fn read_file(
    plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: ReadFileParams,
) -> Result<ReadFileResult, PluginError> {
    let settings = plugin.settings();
    let session = cx.session()?;
    let limit = settings.config.file_limit_bytes as u64;
    let max_bytes = params.max_bytes.unwrap_or(limit);
    if max_bytes > limit {
        return Err(PluginError::invalid_params(format!(
            "max_bytes: {max_bytes} is more than the file limit of {limit} bytes"
        )));
    }
    let file = session
        .dir()
        .read_file(&params.path, max_bytes)
        .map_err(path_error)?;
    let truncated = (file.bytes.len() as u64) < file.size;
    let (content, encoding) = encode(file.bytes, truncated);
    Ok(ReadFileResult {
        path: display(&file.path),
        content,
        encoding,
        size: file.size,
        truncated,
    })
}

/// The bytes `text` stands for in `encoding`; `field` names it in errors.
fn decode(text: String, encoding: Encoding, field: &str) -> Result<Vec<u8>, PluginError> {
    match encoding {
        Encoding::Utf8 => Ok(text.into_bytes()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| PluginError::invalid_params(format!("{field}: not valid base64: {e}"))),
    }
}

/// Text if the bytes are UTF-8 (allowing a character cut at the end of a
/// truncated read), base64 otherwise.
fn encode(mut bytes: Vec<u8>, truncated: bool) -> (String, Encoding) {
    if let Err(e) = std::str::from_utf8(&bytes) {
        if truncated && e.error_len().is_none() {
            bytes.truncate(e.valid_up_to());
        }
    }
    match String::from_utf8(bytes) {
        Ok(text) => (text, Encoding::Utf8),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            Encoding::Base64,
        ),
    }
}

/// `info` (hidden): isolation mode, directories and limits.
pub fn info(
    plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    _params: NoParams,
) -> Result<InfoResult, PluginError> {
    let settings = plugin.settings();
    let session = cx.session()?;
    let status = settings.sandbox_status();
    Ok(InfoResult {
        isolation: status.isolation,
        sandbox: status,
        session_limits: session.sandbox_limits(),
        layered: session.layered(),
        image: session.image(),
        workspace_root: display(settings.root.path()),
        session_dir: display(session.dir().path()),
        shell: display(&settings.shell),
        output_limit_bytes: settings.config.output_limit_bytes,
        max_background_processes: settings.config.max_background_processes,
        default_timeout_secs: settings.config.default_timeout_secs,
        file_limit_bytes: settings.config.file_limit_bytes,
        limits: settings.config.limits,
    })
}

/// Maps a path error to the API: the client's mistakes are invalid params.
pub fn path_error(e: PathError) -> PluginError {
    if e.is_client_error() {
        PluginError::invalid_params(e.to_string())
    } else {
        PluginError::internal(e.to_string())
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
