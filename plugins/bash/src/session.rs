//! A bash session: its directory, its shell, one command at a time, and the
//! rules for replacing the shell when it is lost.
//!
//! The shell is replaced (fresh state: starting directory, configured
//! environment, no functions, no background jobs) when it exits during a
//! command (`exit`, a signal), when it died between calls, or when a command
//! that ran out of time could not be stopped without killing it. The next
//! result says so with `shell_restarted: true`. If a new shell cannot be
//! started, calls fail with "session broken" until one can.
//!
//! The session also owns its background processes (`background.rs`): they
//! start in the current shell's sandbox and directory, may start while a
//! command holds the shell, and end with the session.
//!
//! Snapshots (`snapshot.rs`) run their own commands in the shell
//! ([`BashSession::run_internal`]), between the session's commands.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::background::{Background, BackgroundError, NewProcess, Started};
use crate::launch::{self, JoinTarget, LaunchSpec};
use crate::output::Tap;
use crate::process::Killer;
use crate::shell::{Output, RunOutcome, Shell, StartError};
use crate::snapshot::Origin;
use crate::spawner::Spawner;
use crate::workspace::SessionDir;

/// How long a new shell may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long cleanup waits for a running call to notice its shell was killed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a call waiting for the shell looks at its cancel flag.
const TICK: Duration = Duration::from_millis(20);

/// A command that finished.
#[derive(Debug)]
pub struct Finished {
    /// What it wrote.
    pub output: Output,
    /// Its return code; for a command that ended the shell, the shell's.
    pub return_code: i32,
    /// The shell's working directory afterwards.
    pub cwd: String,
    /// The shell was replaced since the previous result (state was reset).
    pub shell_restarted: bool,
}

/// Why a command did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It ran out of time or was cancelled; what it started was killed.
    /// `shell_kept`: the shell survived with its state (else it was replaced).
    #[error("the command was stopped")]
    Stopped { output: Output, shell_kept: bool },
    /// Another command of this session held the shell until the deadline.
    #[error("the session's shell was busy with another command until the deadline")]
    Busy,
    /// The session cannot run commands (ended, or no shell can be started).
    #[error("{0}")]
    Broken(String),
    /// Talking to the shell failed.
    #[error("talking to the shell failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A session of the bash plugin.
#[derive(Debug)]
pub struct BashSession {
    dir: SessionDir,
    launch: LaunchSpec,
    /// OOM kills of the session's cgroup already reported.
    oom_reported: std::sync::atomic::AtomicU64,
    spawner: Arc<Spawner>,
    output_limit: usize,
    state: Mutex<State>,
    idle: Condvar,
    background: Background,
    /// Its config and former directories, for snapshots of it.
    origin: Origin,
}

#[derive(Debug, Default)]
struct State {
    /// The idle shell (`None` while a call uses it, or after it was lost).
    shell: Option<Shell>,
    /// A call is using the shell.
    busy: bool,
    /// Kills the shell a call is using (for cleanup).
    running: Option<Killer>,
    /// The session has been cleaned up.
    closed: bool,
    /// The shell was replaced and no result has said so yet.
    restarted: bool,
    /// The shell's working directory as it last reported it.
    cwd: String,
    /// The current shell, whose sandbox background processes join (`None`
    /// without a sandbox, or while the shell is replaced).
    join_target: Option<JoinTarget>,
}

impl BashSession {
    /// Starts the session's shell in `dir`. Output is kept up to
    /// `output_limit` bytes per stream (per command; for background
    /// processes, their newest bytes); at most `max_background` background
    /// processes may be unfinished at a time. `origin` is kept for snapshots.
    pub fn start(
        dir: SessionDir,
        launch: LaunchSpec,
        spawner: Arc<Spawner>,
        output_limit: usize,
        max_background: usize,
        origin: Origin,
    ) -> Result<Self, StartError> {
        let shell = Shell::start(&spawner, &launch, Instant::now() + START_TIMEOUT);
        let shell = match shell {
            Ok(shell) => shell,
            Err(e) => {
                let _ = dir.remove();
                return Err(e);
            }
        };
        Ok(Self {
            dir,
            launch,
            oom_reported: std::sync::atomic::AtomicU64::new(0),
            spawner,
            output_limit,
            state: Mutex::new(State {
                cwd: shell.cwd().to_string(),
                join_target: shell.join_target(),
                shell: Some(shell),
                ..State::default()
            }),
            idle: Condvar::new(),
            background: Background::new(max_background, output_limit),
            origin,
        })
    }

    /// Where the session came from (its config, its former directories).
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Runs `script` in the shell for the plugin itself (snapshots), once no
    /// other command holds the shell (until `deadline`), keeping `limit`
    /// bytes of each stream; the result is the plugin's, not a result of the
    /// session's (a replaced shell is still reported to the session's next
    /// command). `then` runs while the shell is still held, so no command of
    /// the session runs meanwhile.
    pub fn run_internal<R>(
        &self,
        script: &str,
        limit: usize,
        deadline: Instant,
        then: impl FnOnce(&Shell) -> R,
    ) -> Result<(Finished, R), RunError> {
        let mut lease = self.acquire(deadline, &|| false)?;
        let spared = || self.background.session_ids();
        let shell = lease.shell_mut()?;
        match shell.run(script, limit, deadline, &|| false, &spared, None) {
            Ok(RunOutcome::Finished {
                output,
                return_code,
                cwd,
            }) => {
                let then = then(shell);
                let finished = Finished {
                    output,
                    return_code,
                    cwd,
                    shell_restarted: false,
                };
                Ok((finished, then))
            }
            Ok(RunOutcome::ShellExited { output, .. }) => {
                let _ = lease.replace_shell();
                Err(RunError::Broken(format!(
                    "the session's shell ended (it was replaced by a fresh one): {}",
                    output.stderr.to_text().trim()
                )))
            }
            Ok(RunOutcome::Stopped { output, shell_kept }) => {
                if !shell_kept {
                    let _ = lease.replace_shell();
                }
                Err(RunError::Stopped { output, shell_kept })
            }
            Err(e) => {
                let _ = lease.replace_shell();
                Err(RunError::Io(e))
            }
        }
    }

    /// The session's background processes.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Starts `command` as a background process: `bash -c <command>` in the
    /// shell's sandbox and current directory, with the session's configured
    /// environment (not variables later commands exported: those live in
    /// the shell's memory only). It does not wait for the shell.
    pub fn start_background(
        &self,
        command: &str,
        name: Option<String>,
    ) -> Result<Started, BackgroundError> {
        let (cwd, target) = {
            let state = self.lock();
            if state.closed {
                return Err(BackgroundError::Ended);
            }
            (state.cwd.clone(), state.join_target.clone())
        };
        let mut spec = self.launch.clone();
        spec.args = vec![
            crate::protocol::SHELL_ARGS[0].to_string(),
            "-c".to_string(),
            command.to_string(),
        ];
        spec.cwd = PathBuf::from(&cwd);
        let new = NewProcess {
            command: command.to_string(),
            name,
            cwd,
        };
        self.background
            .start(new, |fds| match (&spec.sandbox, &target) {
                (Some(_), Some(target)) => Ok(launch::join(&self.spawner, &spec, target, fds)?),
                (Some(_), None) => Err(BackgroundError::NoShell),
                (None, _) => Ok(launch::launch(&self.spawner, &spec, fds)?),
            })
    }

    /// The session's directory.
    pub fn dir(&self) -> &SessionDir {
        &self.dir
    }

    /// The directories with a writable layer of the session's own.
    pub fn layered(&self) -> Vec<String> {
        self.launch
            .sandbox
            .as_ref()
            .map(|s| s.layered())
            .unwrap_or_default()
    }

    /// How many processes the kernel killed at the session's memory limit
    /// since the last time this was asked, and the limit (`None` without a
    /// sandbox).
    pub fn new_oom_kills(&self) -> Option<(u64, u64)> {
        let sandbox = self.launch.sandbox.as_ref()?;
        let total = sandbox.oom_kills();
        let seen = self
            .oom_reported
            .swap(total, std::sync::atomic::Ordering::Relaxed);
        Some((total.saturating_sub(seen), sandbox.limits().memory_bytes))
    }

    /// The operator's image the session runs on (`None`: the host's base).
    pub fn image(&self) -> Option<String> {
        self.launch
            .sandbox
            .as_ref()
            .and_then(|s| s.image().map(str::to_string))
    }

    /// The session's sandbox limits (`None` without a sandbox).
    pub fn sandbox_limits(&self) -> Option<sandbox::Limits> {
        self.launch.sandbox.as_ref().map(|s| *s.limits())
    }

    /// Runs `command` until it finishes, `deadline` passes or `cancelled()`;
    /// `tap` passes its output on as it comes (a streaming call).
    pub fn run(
        &self,
        command: &str,
        deadline: Instant,
        cancelled: &dyn Fn() -> bool,
        tap: Option<&mut Tap<'_>>,
    ) -> Result<Finished, RunError> {
        let mut lease = self.acquire(deadline, cancelled)?;
        let spared = || self.background.session_ids();
        let outcome = lease.shell_mut()?.run(
            command,
            self.output_limit,
            deadline,
            cancelled,
            &spared,
            tap,
        );
        match outcome {
            Ok(RunOutcome::Finished {
                output,
                return_code,
                cwd,
            }) => Ok(Finished {
                output,
                return_code,
                cwd,
                shell_restarted: lease.take_restarted(),
            }),
            Ok(RunOutcome::ShellExited {
                output,
                return_code,
            }) => {
                lease.replace_shell()?;
                let cwd = lease
                    .shell_mut()
                    .map(|s| s.cwd().to_string())
                    .unwrap_or_default();
                Ok(Finished {
                    output,
                    return_code,
                    cwd,
                    shell_restarted: lease.take_restarted(),
                })
            }
            Ok(RunOutcome::Stopped { output, shell_kept }) => {
                if !shell_kept {
                    // The error goes out now; the next result reports the restart.
                    let _ = lease.replace_shell();
                }
                Err(RunError::Stopped { output, shell_kept })
            }
            Err(e) => {
                let _ = lease.replace_shell();
                Err(RunError::Io(e))
            }
        }
    }

    /// Ends the session: kills its background processes, the shell and
    /// everything it started (ending a running call), then deletes the
    /// session's directory.
    pub fn close(&self) -> std::io::Result<()> {
        self.background.close();
        let mut state = self.lock();
        state.closed = true;
        let give_up = Instant::now() + CLOSE_TIMEOUT;
        while state.busy && Instant::now() < give_up {
            if let Some(killer) = &state.running {
                killer.kill();
            }
            state = self
                .idle
                .wait_timeout(state, TICK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let shell = state.shell.take();
        drop(state);
        drop(shell); // kills and reaps
        if let Some(sandbox) = &self.launch.sandbox {
            // Whatever the shell's end left (it ends its namespace already).
            sandbox.kill_all();
        }
        self.dir.remove()
    }

    /// Waits until no other call uses the shell, then takes it.
    fn acquire(
        &self,
        deadline: Instant,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Lease<'_>, RunError> {
        let mut state = self.lock();
        while state.busy {
            if Instant::now() >= deadline || cancelled() {
                return Err(RunError::Busy);
            }
            state = self
                .idle
                .wait_timeout(state, TICK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if state.closed {
            return Err(RunError::Broken("the session has ended".into()));
        }
        state.busy = true;
        let mut shell = state.shell.take();
        drop(state);
        // A shell that died while idle (killed from outside, OOM) is replaced
        // before the command runs, so the command is not blamed for it.
        if let Some(s) = shell.as_mut() {
            if s.has_exited() {
                shell = None;
                self.lock().restarted = true;
            }
        }
        let mut lease = Lease {
            session: self,
            shell: None,
        };
        match shell {
            Some(shell) => lease.install(shell),
            None => lease.start_shell()?,
        }
        Ok(lease)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for BashSession {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// One call's exclusive use of the shell; gives it back when dropped.
struct Lease<'a> {
    session: &'a BashSession,
    shell: Option<Shell>,
}

impl Lease<'_> {
    fn shell_mut(&mut self) -> Result<&mut Shell, RunError> {
        self.shell
            .as_mut()
            .ok_or_else(|| RunError::Broken("the session has no shell".into()))
    }

    /// Makes `shell` the one this call uses (and cleanup can kill, and
    /// background processes join).
    fn install(&mut self, shell: Shell) {
        let mut state = self.session.lock();
        state.running = Some(shell.killer());
        state.join_target = shell.join_target();
        state.cwd = shell.cwd().to_string();
        drop(state);
        self.shell = Some(shell);
    }

    /// Starts a fresh shell unless the session has ended.
    fn start_shell(&mut self) -> Result<(), RunError> {
        if self.session.lock().closed {
            return Err(RunError::Broken("the session has ended".into()));
        }
        let session = self.session;
        let started = Shell::start(
            &session.spawner,
            &session.launch,
            Instant::now() + START_TIMEOUT,
        );
        match started {
            Ok(shell) => {
                self.install(shell);
                Ok(())
            }
            Err(e) => Err(RunError::Broken(format!(
                "the session's shell is gone and a new one could not be started: {e}"
            ))),
        }
    }

    /// Drops the current shell (killing what is left of it) and starts a new one.
    fn replace_shell(&mut self) -> Result<(), RunError> {
        self.shell = None;
        {
            let mut state = self.session.lock();
            state.running = None;
            state.join_target = None;
            state.restarted = true;
        }
        self.start_shell()
    }

    /// Whether the shell was replaced since the last result said so; resets it.
    fn take_restarted(&mut self) -> bool {
        std::mem::take(&mut self.session.lock().restarted)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.session.lock();
        state.busy = false;
        state.running = None;
        if let Some(shell) = &self.shell {
            state.cwd = shell.cwd().to_string();
        }
        if state.closed {
            let shell = self.shell.take();
            drop(state);
            drop(shell);
        } else {
            state.shell = self.shell.take();
            drop(state);
        }
        self.session.idle.notify_all();
    }
}
