//! The host's side of an isolated plugin: a [`PluginHandle`] whose plugin
//! code runs in a runner process.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plugin_api::{ErrorKind, PluginError, PluginInfo, ToolInfo};
use serde::Serialize;
use serde_json::Value;

use super::protocol::{Greeting, Op, Outcome, Reply, Request, PROGRESS};
use crate::core::handle::{CallControl, PluginHandle};

/// How long a runner may take to load its library and greet.
const GREETING_TIMEOUT: Duration = Duration::from_secs(60);
/// A call told to stop that still has not answered after this long means a
/// runner that no longer listens: it is killed (and started again).
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// A first death restarts at once; after deaths in a row the restart waits
/// this long, doubling up to the cap, so a plugin that dies on every start
/// does not spin.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A runner that lived this long resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `/warmup/status` shows of the process.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProcessStatus {
    /// The running runner's pid (none between a death and the restart).
    pub pid: Option<u32>,
    /// Runners started after the first.
    pub restarts: u64,
    /// How the last runner ended, if one did.
    pub last_exit: Option<String>,
}

/// One runner process.
struct Runner {
    pid: u32,
    /// The plugin's name, for the log records it sends.
    plugin: String,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    /// Calls waiting for their reply, by request id.
    waiting: Mutex<HashMap<u64, mpsc::Sender<Outcome>>>,
    /// Set (once) when the process is gone: how it ended.
    died: OnceLock<String>,
    /// Sessions created in this process.
    sessions: Mutex<HashSet<String>>,
    started: Instant,
}

impl Runner {
    fn write(&self, request: &Request) -> Result<(), PluginError> {
        let mut line = serde_json::to_string(request)
            .map_err(|e| PluginError::internal(format!("cannot encode a request: {e}")))?;
        line.push('\n');
        let mut stdin = lock(&self.stdin);
        let pipe = stdin.as_mut().ok_or_else(|| self.death())?;
        pipe.write_all(line.as_bytes())
            .and_then(|()| pipe.flush())
            .map_err(|_| self.death())
    }

    fn death(&self) -> PluginError {
        let how = self.died.get().cloned().unwrap_or_else(|| "exited".into());
        PluginError::internal(format!("plugin process died ({how})"))
    }

    fn kill(&self) {
        let _ = lock(&self.child).kill();
    }
}

struct State {
    current: Option<Arc<Runner>>,
    /// Sessions whose process died: their next call is told so.
    broken: HashMap<String, String>,
    restarts: u64,
    deaths_in_row: u32,
    not_before: Instant,
    last_exit: Option<String>,
    stopped: bool,
}

/// A plugin library served by a runner process.
pub struct IsolatedPlugin {
    library: PathBuf,
    memory_bytes: Option<u64>,
    info: PluginInfo,
    tools: Vec<ToolInfo>,
    /// The config of the last successful warmup, to warm a new runner with.
    warm_config: Mutex<Option<Value>>,
    /// The last line the runner reported during the current or last warmup.
    progress: Mutex<Option<String>>,
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl IsolatedPlugin {
    /// Starts a runner for `library` and reads what it serves.
    pub fn start(library: &Path, memory_bytes: Option<u64>) -> Result<Self, String> {
        let (runner, info, tools) = spawn(library, memory_bytes)?;
        Ok(Self {
            library: library.to_path_buf(),
            memory_bytes,
            info,
            tools,
            warm_config: Mutex::new(None),
            progress: Mutex::new(None),
            state: Mutex::new(State {
                current: Some(runner),
                broken: HashMap::new(),
                restarts: 0,
                deaths_in_row: 0,
                not_before: Instant::now(),
                last_exit: None,
                stopped: false,
            }),
            next_id: AtomicU64::new(1),
        })
    }

    pub fn status(&self) -> ProcessStatus {
        let st = lock(&self.state);
        ProcessStatus {
            pid: st
                .current
                .as_ref()
                .filter(|r| r.died.get().is_none())
                .map(|r| r.pid),
            restarts: st.restarts,
            last_exit: st.last_exit.clone(),
        }
    }

    /// Notices a dead runner: its sessions become broken and the back-off
    /// before the next start begins.
    fn reap(&self, st: &mut State) {
        let Some(r) = st.current.clone() else { return };
        let Some(how) = r.died.get().cloned() else {
            return;
        };
        let lived = r.started.elapsed();
        for s in lock(&r.sessions).drain() {
            st.broken.insert(s, how.clone());
        }
        st.current = None;
        st.last_exit = Some(how.clone());
        st.deaths_in_row = if lived > STABLE_AFTER {
            1
        } else {
            st.deaths_in_row + 1
        };
        let backoff = match st.deaths_in_row {
            0 | 1 => Duration::ZERO,
            n => BACKOFF_START
                .saturating_mul(1 << (n - 2).min(7))
                .min(BACKOFF_CAP),
        };
        st.not_before = Instant::now() + backoff;
        tracing::warn!(plugin = %self.info.name, pid = r.pid, how = %how, restart_in_ms = backoff.as_millis() as u64, "plugin process died");
    }

    /// The live runner, starting a new one (warmed up again) after a death.
    fn live(&self) -> Result<Arc<Runner>, PluginError> {
        let mut st = lock(&self.state);
        self.reap(&mut st);
        if let Some(r) = &st.current {
            return Ok(r.clone());
        }
        if st.stopped {
            return Err(PluginError::unavailable(format!(
                "plugin '{}' was shut down",
                self.info.name
            )));
        }
        let wait = st.not_before.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            return Err(PluginError::unavailable(format!(
                "plugin '{}' is restarting after its process died ({}); retry in {} ms",
                self.info.name,
                st.last_exit.as_deref().unwrap_or("exited"),
                wait.as_millis()
            )));
        }
        let (runner, _, _) =
            spawn(&self.library, self.memory_bytes).map_err(PluginError::unavailable)?;
        if let Some(config) = lock(&self.warm_config).clone() {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = exchange(&runner, id, Op::Warmup { config }, None, None) {
                runner.kill();
                return Err(PluginError::unavailable(format!(
                    "plugin '{}' restarted but its warmup failed: {}",
                    self.info.name, e.message
                )));
            }
        }
        st.restarts += 1;
        tracing::info!(plugin = %self.info.name, pid = runner.pid, restarts = st.restarts, "plugin process started again");
        st.current = Some(runner.clone());
        Ok(runner)
    }

    fn request(
        &self,
        op: Op,
        cancel: Option<&AtomicBool>,
    ) -> Result<(Arc<Runner>, String), PluginError> {
        let runner = self.live()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = exchange(&runner, id, op, cancel, None)?;
        Ok((runner, text))
    }

    fn broken(&self, session: &str) -> Option<String> {
        lock(&self.state).broken.get(session).cloned()
    }
}

/// Sends one request and waits for its reply, passing a cancel on and
/// killing a runner that ignores one.
fn exchange(
    runner: &Runner,
    id: u64,
    op: Op,
    cancel: Option<&AtomicBool>,
    emit: Option<plugin_api::Emit<'_>>,
) -> Result<String, PluginError> {
    let (tx, rx) = mpsc::channel();
    lock(&runner.waiting).insert(id, tx);
    if runner.died.get().is_some() {
        lock(&runner.waiting).remove(&id);
        return Err(runner.death());
    }
    if let Err(e) = runner.write(&Request { id, op }) {
        lock(&runner.waiting).remove(&id);
        return Err(e);
    }
    let mut cancelled_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Outcome::Chunk { stream, text }) => {
                if let Some(emit) = emit {
                    emit(&stream, &text);
                }
                continue;
            }
            // Logged here, on the caller's thread, in the call's span.
            Ok(Outcome::Log {
                level,
                module,
                message,
            }) => {
                plugin_loader::log_record(level, &runner.plugin, &module, &message);
                continue;
            }
            Ok(outcome) => return outcome.into_result(),
            Err(RecvTimeoutError::Disconnected) => return Err(runner.death()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        let asked = cancel.is_some_and(|c| c.load(Ordering::SeqCst));
        match cancelled_at {
            None if asked => {
                cancelled_at = Some(Instant::now());
                let _ = runner.write(&Request {
                    id: 0,
                    op: Op::Cancel { call: id },
                });
            }
            Some(at) if at.elapsed() > CANCEL_GRACE => {
                tracing::warn!(
                    pid = runner.pid,
                    "a cancelled call did not stop within {} s; killing its plugin process",
                    CANCEL_GRACE.as_secs()
                );
                runner.kill();
                lock(&runner.waiting).remove(&id);
                return Err(PluginError::new(
                    ErrorKind::Cancelled,
                    format!("the call did not stop within {} s of being cancelled; its plugin process was killed", CANCEL_GRACE.as_secs()),
                ));
            }
            _ => {}
        }
    }
}

/// The thread runners are started from. The kernel's parent-death signal
/// follows the thread that forked, not the process, so the forking thread
/// must live as long as the host (call threads come and go).
type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let _ = std::thread::Builder::new()
            .name("plugin-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    })
}

fn spawn(
    library: &Path,
    memory_bytes: Option<u64>,
) -> Result<(Arc<Runner>, PluginInfo, Vec<ToolInfo>), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the agentflow binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("plugin-runner")
        .arg("--library")
        .arg(library)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec only async-signal-safe calls (prctl,
    // setrlimit), no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Dies with the host, even when the host is killed with SIGKILL.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(bytes) = memory_bytes {
                let limit = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    lock(spawner())
        .send((cmd, tx))
        .map_err(|_| "the plugin spawner thread is gone".to_string())?;
    let mut child = rx
        .recv()
        .map_err(|_| "the plugin spawner thread is gone".to_string())?
        .map_err(|e| format!("cannot start a plugin process: {e}"))?;
    let pid = child.id();
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err("a plugin process has no pipes".into());
    };
    let (greeting, lines) = read_greeting(BufReader::new(stdout), &mut child)?;
    let (info, tools) = match greeting {
        Greeting::Loaded { info, tools } => (info, tools),
        Greeting::LoadFailed { message } => {
            let _ = child.wait();
            return Err(message);
        }
    };
    let runner = Arc::new(Runner {
        pid,
        plugin: info.name.clone(),
        child: Mutex::new(child),
        stdin: Mutex::new(Some(stdin)),
        waiting: Mutex::new(HashMap::new()),
        died: OnceLock::new(),
        sessions: Mutex::new(HashSet::new()),
        started: Instant::now(),
    });
    let reader = runner.clone();
    std::thread::Builder::new()
        .name(format!("plugin-{pid}"))
        .spawn(move || read_replies(&reader, lines))
        .map_err(|e| format!("cannot start a reader thread: {e}"))?;
    Ok((runner, info, tools))
}

type Lines = BufReader<ChildStdout>;

/// The runner's first line, within [`GREETING_TIMEOUT`].
fn read_greeting(mut lines: Lines, child: &mut Child) -> Result<(Greeting, Lines), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let r = lines.read_line(&mut first).map(|_| first);
        let _ = tx.send((r, lines));
    });
    let Ok((line, lines)) = rx.recv_timeout(GREETING_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "the plugin process did not load its library within {} s",
            GREETING_TIMEOUT.as_secs()
        ));
    };
    let line = line.map_err(|e| format!("cannot read from the plugin process: {e}"))?;
    if line.is_empty() {
        let status = child.wait().map(describe).unwrap_or_else(|e| e.to_string());
        return Err(format!(
            "the plugin process ended before loading its library ({status})"
        ));
    }
    let greeting = serde_json::from_str(&line)
        .map_err(|e| format!("the plugin process said something unreadable: {e}"))?;
    Ok((greeting, lines))
}

/// Routes replies to their callers until the runner's stdout closes, then
/// records how the process ended and fails every call still waiting.
fn read_replies(runner: &Runner, lines: Lines) {
    for line in lines.lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Reply>(&line) {
            // A chunk or a log record leaves its call waiting for more;
            // anything else ends it.
            Ok(reply) if matches!(reply.outcome, Outcome::Chunk { .. } | Outcome::Log { .. }) => {
                let unrouted = match lock(&runner.waiting).get(&reply.id) {
                    Some(tx) => tx.send(reply.outcome).err().map(|e| e.0),
                    None => Some(reply.outcome),
                };
                // From a thread of the plugin's own, or after its call
                // ended: logged without a call's span.
                if let Some(Outcome::Log {
                    level,
                    module,
                    message,
                }) = unrouted
                {
                    plugin_loader::log_record(level, &runner.plugin, &module, &message);
                }
            }
            Ok(reply) => {
                if let Some(tx) = lock(&runner.waiting).remove(&reply.id) {
                    let _ = tx.send(reply.outcome);
                }
            }
            Err(e) => {
                tracing::warn!(pid = runner.pid, error = %e, "unreadable line from a plugin process")
            }
        }
    }
    // No more replies can come: make sure the process is gone, then say how.
    let status = {
        let mut child = lock(&runner.child);
        let _ = child.kill();
        child.wait()
    };
    let how = status.map(describe).unwrap_or_else(|e| e.to_string());
    let _ = runner.died.set(how);
    lock(&runner.stdin).take();
    // Dropping the senders wakes every waiting call with "died".
    lock(&runner.waiting).clear();
}

/// "signal 11 (SIGSEGV)", "exit code 3".
fn describe(status: std::process::ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGBUS => " (SIGBUS)",
            libc::SIGILL => " (SIGILL)",
            libc::SIGFPE => " (SIGFPE)",
            _ => "",
        };
        format!("signal {sig}{name}")
    } else {
        format!("exit code {}", status.code().unwrap_or(-1))
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PluginHandle for IsolatedPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn tools(&self) -> &[ToolInfo] {
        &self.tools
    }

    fn warmup(&self, config: &Value) -> Result<(), PluginError> {
        *lock(&self.progress) = None;
        let runner = self.live()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let keep = |stream: &str, line: &str| {
            if stream == PROGRESS {
                *lock(&self.progress) = Some(line.to_string());
            }
        };
        let op = Op::Warmup {
            config: config.clone(),
        };
        exchange(&runner, id, op, None, Some(&keep))?;
        *lock(&self.warm_config) = Some(config.clone());
        Ok(())
    }

    fn warmup_progress(&self) -> Option<String> {
        lock(&self.progress).clone()
    }

    fn shutdown(&self) -> Result<(), PluginError> {
        let runner = {
            let mut st = lock(&self.state);
            st.stopped = true;
            st.current.take()
        };
        let Some(runner) = runner else { return Ok(()) };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let result = exchange(&runner, id, Op::Shutdown, None, None).map(|_| ());
        // Closing stdin ends the runner; one that lingers is killed.
        lock(&runner.stdin).take();
        let deadline = Instant::now() + Duration::from_secs(5);
        while runner.died.get().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        runner.kill();
        result
    }

    fn initialize(&self, session_id: &str, config: &Value) -> Result<(), PluginError> {
        let op = Op::Initialize {
            session: session_id.into(),
            config: config.clone(),
        };
        let (runner, _) = self.request(op, None)?;
        lock(&runner.sessions).insert(session_id.to_string());
        Ok(())
    }

    fn cleanup(&self, session_id: &str) -> Result<(), PluginError> {
        // A session whose process died has nothing left to clean up.
        {
            let mut st = lock(&self.state);
            self.reap(&mut st);
            if st.broken.remove(session_id).is_some() {
                return Ok(());
            }
        }
        let (runner, _) = self.request(
            Op::Cleanup {
                session: session_id.into(),
            },
            None,
        )?;
        lock(&runner.sessions).remove(session_id);
        Ok(())
    }

    fn call(
        &self,
        session_id: Option<&str>,
        worker_id: &str,
        tool: &str,
        params: &Value,
        control: &CallControl<'_>,
    ) -> Result<String, PluginError> {
        let runner = self.live()?;
        if let Some(how) = session_id.and_then(|s| self.broken(s)) {
            return Err(PluginError::new(
                ErrorKind::SessionBroken,
                format!("the plugin process died ({how}) and this session's state went with it; destroy the session and create a new one"),
            ));
        }
        let op = Op::Call {
            session: session_id.map(str::to_string),
            worker: worker_id.into(),
            tool: tool.into(),
            params: params.clone(),
            deadline_ms: unix_ms(control.deadline),
            stream: control.emitter.is_some(),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        exchange(&runner, id, op, Some(control.cancel), control.emitter)
    }

    fn isolated(&self) -> Option<ProcessStatus> {
        Some(self.status())
    }

    // A snapshot lives in the runner process: it goes with a crash, as the
    // sessions do (restoring from it then fails with the runner's death).
    fn snapshot(&self, session_id: &str, snapshot_id: &str) -> Result<String, PluginError> {
        let op = Op::Snapshot {
            session: session_id.into(),
            snapshot: snapshot_id.into(),
        };
        self.request(op, None).map(|(_, report)| report)
    }

    fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &Value,
    ) -> Result<(), PluginError> {
        let op = Op::Restore {
            session: session_id.into(),
            snapshot: snapshot_id.into(),
            config: config.clone(),
        };
        let (runner, _) = self.request(op, None)?;
        lock(&runner.sessions).insert(session_id.to_string());
        Ok(())
    }

    fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        let op = Op::DropSnapshot {
            snapshot: snapshot_id.into(),
        };
        self.request(op, None).map(drop)
    }
}
