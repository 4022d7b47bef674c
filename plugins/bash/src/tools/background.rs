//! The background process tools: `start`, `output`, `wait`, `kill`,
//! `write_stdin` and `processes` — their params (the schemas derive from
//! these structs and their doc comments), results, and handlers that
//! translate between the plugin API and the session's process table
//! (`background.rs`).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plugin_api::{CallContext, ErrorKind, NoParams, PluginError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{decode, Encoding};
use crate::background::{BackgroundError, Output, Status, Summary};
use crate::fd::{poll, poll_fd};
use crate::process::Exit;
use crate::session::BashSession;
use crate::BashPlugin;

/// Longest `name` accepted.
const MAX_NAME_CHARS: usize = 200;
/// How often a blocked `write_stdin` looks at its cancel flag.
const TICK: Duration = Duration::from_millis(20);

/// The signals `kill` accepts by name.
const SIGNALS: [(&str, i32); 7] = [
    ("TERM", libc::SIGTERM),
    ("KILL", libc::SIGKILL),
    ("INT", libc::SIGINT),
    ("HUP", libc::SIGHUP),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
];

/// Params of `start`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartParams {
    /// The command, run as `bash -c <command>` in the session's sandbox, in
    /// the shell's current directory, with the session's configured
    /// environment. It already runs in the background: do not end it with `&`.
    pub command: String,
    /// A label of your choosing, shown by `processes`.
    #[serde(default)]
    pub name: Option<String>,
}

/// Result of `start`.
#[derive(Debug, Serialize)]
pub struct StartResult {
    /// The process's id in this session ("p1", "p2", ...): pass it to the other tools.
    pub id: String,
    /// The label given, if any.
    pub name: Option<String>,
    /// The command.
    pub command: String,
    /// Its process id as the session sees it (e.g. in `ps` from `run`).
    pub pid: i32,
    /// The directory it runs in.
    pub cwd: String,
}

/// Byte offsets into a process's output, counted from its first byte.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Since {
    /// Return stdout from this offset on (a `stdout_offset` an earlier answer
    /// gave; 0: from the start). Omitted: from where the last read ended.
    #[serde(default)]
    pub stdout: Option<u64>,
    /// Return stderr from this offset on (a `stderr_offset` an earlier answer
    /// gave; 0: from the start). Omitted: from where the last read ended.
    #[serde(default)]
    pub stderr: Option<u64>,
}

/// Params of `output`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputParams {
    /// The process's id, as `start` returned it.
    pub id: String,
    /// Where to start reading each stream. Omitted: from where the last read
    /// of this process ended (so each byte is returned once).
    #[serde(default)]
    pub since: Since,
}

/// Params of `wait`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// The process's id, as `start` returned it.
    pub id: String,
    /// Seconds to wait at most (0: do not wait). The call's own deadline also applies.
    pub timeout: f64,
    /// Where to start reading each stream, as in `output`.
    #[serde(default)]
    pub since: Since,
}

/// A signal, by name or number.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Signal {
    /// A signal number, 1-31.
    Number(i64),
    /// TERM, KILL, INT, HUP, QUIT, USR1 or USR2 (a SIG prefix and any case are accepted).
    Name(String),
}

/// Params of `kill`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillParams {
    /// The process's id, as `start` returned it.
    pub id: String,
    /// The signal (default TERM), sent to the process's whole process group.
    #[serde(default)]
    pub signal: Option<Signal>,
}

/// Params of `write_stdin`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteStdinParams {
    /// The process's id, as `start` returned it.
    pub id: String,
    /// What to write, encoded as `encoding` says (a line needs its "\n").
    pub data: String,
    /// `utf8` (default) or `base64` for bytes.
    #[serde(default)]
    pub encoding: Encoding,
    /// Close stdin after writing (the program reads end-of-file).
    #[serde(default)]
    pub eof: bool,
}

/// Result of `output` and `wait`.
#[derive(Debug, Serialize)]
pub struct OutputResult {
    /// The process's id.
    pub id: String,
    /// Standard output from the requested offset on; invalid UTF-8 is
    /// replaced with U+FFFD.
    pub stdout: String,
    /// Standard error from the requested offset on.
    pub stderr: String,
    /// Where stdout read up to: pass it as `since.stdout` to go on from here.
    pub stdout_offset: u64,
    /// Where stderr read up to: pass it as `since.stderr` to go on from here.
    pub stderr_offset: u64,
    /// Bytes of stdout from the requested offset on that were dropped (only
    /// the newest output_limit_bytes are kept); 0 when nothing was lost.
    pub stdout_dropped_bytes: u64,
    /// Bytes of stderr from the requested offset on that were dropped.
    pub stderr_dropped_bytes: u64,
    /// The process has not exited.
    pub running: bool,
    /// Its exit status; null while it runs and when a signal killed it.
    pub exit_code: Option<i32>,
    /// The signal that killed it (9: KILL, 15: TERM); null otherwise.
    pub signal: Option<i32>,
}

/// Result of `kill`.
#[derive(Debug, Serialize)]
pub struct KillResult {
    /// The process's id.
    pub id: String,
    /// The signal number sent.
    pub signal: i32,
    /// False when the process had ended already and nothing was sent.
    pub sent: bool,
    /// The process has not exited yet (the signal may take a moment: see `wait`).
    pub running: bool,
}

/// Result of `write_stdin`.
#[derive(Debug, Serialize)]
pub struct WriteStdinResult {
    /// The process's id.
    pub id: String,
    /// Bytes written.
    pub bytes_written: usize,
    /// Whether stdin stays open for more.
    pub stdin_open: bool,
}

/// One process in `processes`.
#[derive(Debug, Serialize)]
pub struct ProcessInfo {
    /// The process's id.
    pub id: String,
    /// The label given at start, if any.
    pub name: Option<String>,
    /// The command.
    pub command: String,
    /// Its process id as the session sees it.
    pub pid: i32,
    /// The directory it started in.
    pub cwd: String,
    /// It has not exited.
    pub running: bool,
    /// Its exit status; null while it runs and when a signal killed it.
    pub exit_code: Option<i32>,
    /// The signal that killed it; null otherwise.
    pub signal: Option<i32>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Bytes it wrote to stdout in all (the offset a complete read ends at).
    pub stdout_bytes: u64,
    /// Bytes it wrote to stderr in all.
    pub stderr_bytes: u64,
    /// Bytes of stdout written since the last read ended.
    pub stdout_unread_bytes: u64,
    /// Bytes of stderr written since the last read ended.
    pub stderr_unread_bytes: u64,
}

/// Result of `processes`.
#[derive(Debug, Serialize)]
pub struct ProcessesResult {
    /// The session's background processes, oldest first. Finished ones are
    /// kept until room is needed.
    pub processes: Vec<ProcessInfo>,
    /// How many may be unfinished at once (max_background_processes).
    pub max_processes: usize,
}

/// `start`: starts a background process.
pub fn start(
    _plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: StartParams,
) -> Result<StartResult, PluginError> {
    let session = cx.session()?;
    cx.check()?; // never start a process for a call that is already over
    if params.command.contains('\0') {
        return Err(PluginError::invalid_params(
            "command: contains a NUL character, which no shell command can",
        ));
    }
    if params.command.trim().is_empty() {
        return Err(PluginError::invalid_params("command: is empty"));
    }
    if let Some(name) = &params.name {
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(PluginError::invalid_params(format!(
                "name: longer than {MAX_NAME_CHARS} characters"
            )));
        }
    }
    let started = session
        .start_background(&params.command, params.name.clone())
        .map_err(background_error)?;
    Ok(StartResult {
        id: started.id,
        name: params.name,
        command: params.command,
        pid: started.pid,
        cwd: started.cwd,
    })
}

/// `output`: new output of a background process, and its status.
pub fn output(
    _plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: OutputParams,
) -> Result<OutputResult, PluginError> {
    let session = cx.session()?;
    read(session, &params.id, params.since)
}

/// `wait`: waits for a background process to exit, at most `timeout`
/// seconds and never past the call's deadline, then answers as `output`.
pub fn wait(
    _plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: WaitParams,
) -> Result<OutputResult, PluginError> {
    let session = cx.session()?;
    if !(params.timeout.is_finite() && params.timeout >= 0.0) {
        return Err(PluginError::invalid_params(format!(
            "timeout: must be a number of seconds, 0 or more, got {}",
            params.timeout
        )));
    }
    let limit = Duration::from_secs_f64(params.timeout.min(1e9)).min(cx.remaining());
    let until = Instant::now() + limit;
    let status = if cx.is_streaming() {
        wait_streaming(session, cx, &params, until)?
    } else {
        session
            .background()
            .wait(&params.id, until, &|| cx.is_cancelled())
            .map_err(background_error)?
    };
    if status.running {
        // The deadline or a cancellation ended the wait, not the timeout.
        cx.check()?;
    }
    read(session, &params.id, params.since)
}

/// How often a streaming `wait` passes on new output.
const STREAM_EVERY: Duration = Duration::from_millis(100);

/// `wait` for a streaming call: passes on the output as it comes, from where
/// the result will start, without moving the last-read place.
fn wait_streaming(
    session: &BashSession,
    cx: &CallContext<'_, BashSession>,
    params: &WaitParams,
    until: Instant,
) -> Result<Status, PluginError> {
    let background = session.background();
    let mut at = [params.since.stdout, params.since.stderr];
    loop {
        let slice = (Instant::now() + STREAM_EVERY).min(until);
        let status = background
            .wait(&params.id, slice, &|| cx.is_cancelled())
            .map_err(background_error)?;
        let out = background.peek(&params.id, at).map_err(background_error)?;
        for (i, name) in ["stdout", "stderr"].into_iter().enumerate() {
            if !out.streams[i].text.is_empty() {
                cx.emit(name, &out.streams[i].text);
            }
            at[i] = Some(out.streams[i].end);
        }
        if !status.running || Instant::now() >= until || cx.is_cancelled() {
            return Ok(status);
        }
    }
}

/// `kill`: sends a signal to a background process's group.
pub fn kill(
    _plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: KillParams,
) -> Result<KillResult, PluginError> {
    let session = cx.session()?;
    let signal = signal_number(params.signal)?;
    let signalled = session
        .background()
        .signal(&params.id, signal)
        .map_err(background_error)?;
    Ok(KillResult {
        id: params.id,
        signal,
        sent: signalled.sent,
        running: signalled.status.running,
    })
}

/// `write_stdin`: writes to a background process's stdin, closing it on `eof`.
pub fn write_stdin(
    _plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    params: WriteStdinParams,
) -> Result<WriteStdinResult, PluginError> {
    let session = cx.session()?;
    cx.check()?;
    let bytes = decode(params.data, params.encoding, "data")?;
    let background = session.background();
    let mut stdin = background
        .take_stdin(&params.id)
        .map_err(background_error)?;
    let id = params.id;
    match write_all(&mut stdin, &bytes, cx) {
        Ok(()) => {
            background.return_stdin(&id, (!params.eof).then_some(stdin));
            Ok(WriteStdinResult {
                id,
                bytes_written: bytes.len(),
                stdin_open: !params.eof,
            })
        }
        Err(Stopped::Closed(written)) => {
            background.return_stdin(&id, None);
            Err(PluginError::unavailable(format!(
                "'{id}' no longer reads its stdin (it exited or closed it); {written} of {} \
                 bytes were written",
                bytes.len()
            )))
        }
        Err(Stopped::Time(written)) => {
            background.return_stdin(&id, Some(stdin));
            let kind = match cx.check() {
                Err(e) => e.kind,
                Ok(()) => ErrorKind::Timeout,
            };
            Err(PluginError::new(
                kind,
                format!(
                    "{written} of {} bytes were written before the call's deadline: '{id}' is \
                     not reading its stdin; stdin stays open",
                    bytes.len()
                ),
            ))
        }
        Err(Stopped::Io(e)) => {
            background.return_stdin(&id, None);
            Err(PluginError::internal(format!(
                "writing to the stdin of '{id}' failed: {e}"
            )))
        }
    }
}

/// `processes`: every background process of the session.
pub fn processes(
    _plugin: &BashPlugin,
    cx: &CallContext<'_, BashSession>,
    _params: NoParams,
) -> Result<ProcessesResult, PluginError> {
    let background = cx.session()?.background();
    Ok(ProcessesResult {
        processes: background.list().into_iter().map(process_info).collect(),
        max_processes: background.max_processes(),
    })
}

fn read(session: &BashSession, id: &str, since: Since) -> Result<OutputResult, PluginError> {
    let Output {
        id,
        streams: [stdout, stderr],
        status,
    } = session
        .background()
        .read(id, [since.stdout, since.stderr])
        .map_err(background_error)?;
    let (exit_code, signal) = exit_fields(status);
    Ok(OutputResult {
        id,
        stdout: stdout.text,
        stderr: stderr.text,
        stdout_offset: stdout.end,
        stderr_offset: stderr.end,
        stdout_dropped_bytes: stdout.dropped,
        stderr_dropped_bytes: stderr.dropped,
        running: status.running,
        exit_code,
        signal,
    })
}

fn process_info(summary: Summary) -> ProcessInfo {
    let (exit_code, signal) = exit_fields(summary.status);
    ProcessInfo {
        id: summary.id,
        name: summary.name,
        command: summary.command,
        pid: summary.pid,
        cwd: summary.cwd,
        running: summary.status.running,
        exit_code,
        signal,
        started_at: rfc3339(summary.started_at),
        stdout_bytes: summary.written[0],
        stderr_bytes: summary.written[1],
        stdout_unread_bytes: summary.unread[0],
        stderr_unread_bytes: summary.unread[1],
    }
}

/// `(exit_code, signal)` as results show them.
fn exit_fields(status: Status) -> (Option<i32>, Option<i32>) {
    match status.exit {
        None => (None, None),
        Some(Exit::Code(code)) => (Some(code), None),
        Some(Exit::Signal(signal)) => (None, Some(signal)),
    }
}

/// The signal `kill` was asked for (TERM when none).
fn signal_number(signal: Option<Signal>) -> Result<i32, PluginError> {
    let names = || {
        SIGNALS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match signal {
        None => Ok(libc::SIGTERM),
        Some(Signal::Number(n)) => match i32::try_from(n) {
            Ok(n @ 1..=31) => Ok(n),
            _ => Err(PluginError::invalid_params(format!(
                "signal: {n} is not a signal number (1-31); names: {}",
                names()
            ))),
        },
        Some(Signal::Name(name)) => {
            let upper = name.trim().to_ascii_uppercase();
            let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
            SIGNALS
                .iter()
                .find(|(known, _)| *known == bare)
                .map(|&(_, number)| number)
                .ok_or_else(|| {
                    PluginError::invalid_params(format!(
                        "signal: unknown signal '{name}'; use one of {} or a number 1-31",
                        names()
                    ))
                })
        }
    }
}

/// Why a write to stdin stopped short.
enum Stopped {
    /// The reading end is closed; so many bytes were written before.
    Closed(usize),
    /// The call's deadline passed or it was cancelled; so many were written.
    Time(usize),
    Io(io::Error),
}

/// Writes all of `bytes` to the nonblocking `stdin`, waiting while the pipe
/// is full, but not past the call's deadline.
fn write_all(
    stdin: &mut File,
    bytes: &[u8],
    cx: &CallContext<'_, BashSession>,
) -> Result<(), Stopped> {
    let mut written = 0;
    while written < bytes.len() {
        match stdin.write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                return Err(Stopped::Closed(written))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if cx.is_cancelled() {
                    return Err(Stopped::Time(written));
                }
                let mut fds = [poll_fd(stdin.as_fd(), libc::POLLOUT)];
                poll(&mut fds, cx.remaining().min(TICK)).map_err(Stopped::Io)?;
            }
            Err(e) => return Err(Stopped::Io(e)),
        }
    }
    Ok(())
}

/// The API's view of a table error: the client's mistakes are invalid
/// params naming the field.
fn background_error(e: BackgroundError) -> PluginError {
    match &e {
        BackgroundError::UnknownId { .. } => PluginError::invalid_params(format!("id: {e}")),
        BackgroundError::PastEnd { stream, .. } => {
            PluginError::invalid_params(format!("since.{stream}: {e}"))
        }
        BackgroundError::Ended => PluginError::session_broken(e.to_string()),
        BackgroundError::Io(_) => PluginError::internal(e.to_string()),
        BackgroundError::Full { .. }
        | BackgroundError::Disabled
        | BackgroundError::NoShell
        | BackgroundError::StdinClosed { .. }
        | BackgroundError::StdinBusy { .. }
        | BackgroundError::Launch(_) => PluginError::unavailable(e.to_string()),
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.250Z`).
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_millis(1_709_251_199_250);
        assert_eq!(rfc3339(leap_day), "2024-02-29T23:59:59.250Z");
        let y2k = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(y2k), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn signals_by_name_and_number() {
        let name = |s: &str| signal_number(Some(Signal::Name(s.into())));
        assert_eq!(signal_number(None).unwrap(), libc::SIGTERM);
        assert_eq!(name("KILL").unwrap(), 9);
        assert_eq!(name("sigint").unwrap(), libc::SIGINT);
        assert_eq!(signal_number(Some(Signal::Number(10))).unwrap(), 10);
        for bad in [
            name("STOPIT"),
            signal_number(Some(Signal::Number(0))),
            signal_number(Some(Signal::Number(64))),
        ] {
            let e = bad.unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParams);
            assert!(e.message.starts_with("signal: "), "{}", e.message);
        }
    }
}
