//! One long-lived shell process: starting it, running a command in it, and
//! stopping a command that runs out of time.
//!
//! A call writes one line of script (see [`crate::protocol`]) and then waits
//! on every pipe at once with `poll`: the rest of the script (a large command
//! may not fit in the pipe), stdout, stderr, the status pipe, and the shell's
//! pidfd (readable once it exited). Output is read as it comes, so a command
//! never blocks on a full pipe, and only the first `limit` bytes are kept.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fd::{poll, poll_fd, set_nonblocking};
use crate::launch::{self, JoinTarget, LaunchError, LaunchSpec};
use crate::output::{bytes_in_pipe, read_pipe, CappedBuffer, PipeState, Tap};
use crate::process::{self, Killer, Process};
use crate::processes::{SessionProcesses, Snapshot};
use crate::protocol::{self, Status, StatusReader};
use crate::spawner::Spawner;

/// How often a waiting call looks at its cancel flag.
const TICK: Duration = Duration::from_millis(20);
/// How long a command that ran out of time gets to stop before the shell is
/// replaced (enough for the kernel to kill processes and for the interrupt
/// trap to break out of a builtin loop).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Why a shell could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The process could not be created.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The process started but did not become ready.
    #[error("the shell did not start: {0}")]
    NotReady(String),
    /// Plumbing failed.
    #[error("cannot set up the shell's pipes: {0}")]
    Io(#[from] io::Error),
    /// The sandbox's outbound network could not be set up.
    #[error("cannot connect the sandbox's network: {0}")]
    Network(#[from] sandbox::SandboxError),
}

/// What a command wrote.
#[derive(Debug)]
pub struct Output {
    /// Standard output (capped).
    pub stdout: CappedBuffer,
    /// Standard error (capped).
    pub stderr: CappedBuffer,
}

impl Output {
    fn new(limit: usize) -> Self {
        Self {
            stdout: CappedBuffer::new(limit),
            stderr: CappedBuffer::new(limit),
        }
    }

    /// True when either stream was cut at the limit.
    pub fn is_truncated(&self) -> bool {
        self.stdout.is_truncated() || self.stderr.is_truncated()
    }
}

/// How a command ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// The command finished; the shell is ready for the next one.
    Finished {
        output: Output,
        return_code: i32,
        cwd: String,
    },
    /// The shell itself ended (`exit`, a signal): it must be replaced.
    ShellExited { output: Output, return_code: i32 },
    /// The deadline passed or the call was cancelled; everything the command
    /// started was killed. `shell_kept`: the shell survived with its state;
    /// otherwise it was killed and must be replaced.
    Stopped { output: Output, shell_kept: bool },
}

/// What ended one round of waiting.
enum Event {
    Status(Status),
    ShellExited(i32),
    TimeUp,
}

/// A running shell and the plugin's ends of its pipes.
#[derive(Debug)]
pub struct Shell {
    /// What was started: the shell, or bubblewrap running it.
    process: Process,
    /// In a sandbox: the shell itself (signals to bubblewrap would end the
    /// sandbox, not reach the shell; background processes join its namespaces).
    sandboxed_shell: Option<JoinTarget>,
    /// With `network = "egress"`: the shell's namespace's way out.
    egress: Option<sandbox::Egress>,
    processes: SessionProcesses,
    script: File,
    status: File,
    stdout: File,
    stderr: File,
    status_reader: StatusReader,
    next_seq: u64,
    cwd: String,
}

impl Shell {
    /// Starts a shell as `spec` says and waits until it is ready.
    pub fn start(
        spawner: &Spawner,
        spec: &LaunchSpec,
        deadline: Instant,
    ) -> Result<Self, StartError> {
        // The descriptor layout is described in `protocol`.
        let (script_child, script) = process::pipe()?;
        let (stdout, stdout_child) = process::pipe()?;
        let (stderr, stderr_child) = process::pipe()?;
        let (status, status_child) = process::pipe()?;
        let child_fds: Vec<OwnedFd> = vec![
            script_child.into(),
            stdout_child.into(),
            stderr_child.into(),
            status_child.into(),
        ];
        let process = launch::launch(spawner, spec, child_fds)?;
        for pipe in [&stdout, &stderr, &script, &status] {
            set_nonblocking(pipe)?;
        }
        let mut shell = Self {
            processes: SessionProcesses::new(false, process.pid()),
            sandboxed_shell: None,
            egress: None,
            process,
            script,
            status,
            stdout,
            stderr,
            status_reader: StatusReader::default(),
            next_seq: 1,
            cwd: String::new(),
        };
        let mut output = Output::new(64 * 1024);
        let mut script = Script::new(protocol::BOOTSTRAP);
        match shell.wait_for(0, &mut script, &mut output, deadline, &|| false, &mut None)? {
            Event::Status(status) => {
                shell.cwd = status.cwd;
                if let Some(sandbox) = &spec.sandbox {
                    // The shell answered, so it runs: it is bubblewrap's only child.
                    let pid = only_child(shell.process.pid())?;
                    shell.sandboxed_shell = Some(JoinTarget {
                        pid,
                        pidfd: Arc::new(process::pidfd_open(pid)?),
                    });
                    shell.processes = SessionProcesses::new(true, pid);
                    shell.egress = sandbox.connect_network(pid)?;
                }
                Ok(shell)
            }
            Event::ShellExited(code) => Err(StartError::NotReady(format!(
                "it exited with code {code}: {}",
                output.stderr.to_text().trim()
            ))),
            Event::TimeUp => Err(StartError::NotReady(format!(
                "no answer in time: {}",
                output.stderr.to_text().trim()
            ))),
        }
    }

    /// The working directory the shell reported last.
    pub fn cwd(&self) -> &str {
        &self.cwd
    }

    /// True if the shell process has ended (it is reaped then).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.process.try_wait(), Ok(None))
    }

    /// A handle that kills the shell (and with namespaces, its whole session)
    /// from another thread.
    pub fn killer(&self) -> Killer {
        self.process.killer()
    }

    /// The session's processes, as this shell sees them.
    pub fn processes(&self) -> &SessionProcesses {
        &self.processes
    }

    /// In a sandbox, the shell as a process whose namespaces others can join.
    pub fn join_target(&self) -> Option<JoinTarget> {
        self.sandboxed_shell.clone()
    }

    /// Runs `command`, keeping at most `output_limit` bytes per stream, until
    /// it finishes, `deadline` passes or `cancelled()` returns true. A
    /// command that is stopped spares the process sessions `spared()` names
    /// (background processes, see [`SessionProcesses::kill_started_since`]).
    pub fn run(
        &mut self,
        command: &str,
        output_limit: usize,
        deadline: Instant,
        cancelled: &dyn Fn() -> bool,
        spared: &dyn Fn() -> Vec<i32>,
        tap: Option<&mut Tap<'_>>,
    ) -> io::Result<RunOutcome> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let before = self.processes.snapshot();
        let mut script = Script::new(&protocol::command_line(seq, command));
        let mut output = Output::new(output_limit);
        let mut tap = tap;
        match self.wait_for(seq, &mut script, &mut output, deadline, cancelled, &mut tap)? {
            Event::Status(status) => {
                self.cwd = status.cwd.clone();
                Ok(RunOutcome::Finished {
                    output,
                    return_code: status.return_code,
                    cwd: status.cwd,
                })
            }
            Event::ShellExited(return_code) => Ok(RunOutcome::ShellExited {
                output,
                return_code,
            }),
            Event::TimeUp => {
                let shell_kept = self.stop(seq, &mut script, &mut output, &before, spared)?;
                Ok(RunOutcome::Stopped { output, shell_kept })
            }
        }
    }

    /// Stops the command with sequence number `seq`: interrupt the shell (for
    /// builtin loops) and kill what the command started, every tick, until
    /// the shell reports back. Returns false if the shell had to be killed.
    fn stop(
        &mut self,
        seq: u64,
        script: &mut Script,
        output: &mut Output,
        before: &Snapshot,
        spared: &dyn Fn() -> Vec<i32>,
    ) -> io::Result<bool> {
        let give_up = Instant::now() + STOP_GRACE;
        loop {
            // Signal first: bash runs the trap as soon as the child it waits for dies.
            let _ = self.signal_shell(protocol::INTERRUPT_SIGNAL);
            self.processes.kill_started_since(before, &spared());
            let until = (Instant::now() + TICK).min(give_up);
            match self.wait_for(seq, script, output, until, &|| false, &mut None)? {
                Event::Status(status) => {
                    self.cwd = status.cwd;
                    return Ok(true);
                }
                Event::ShellExited(_) => return Ok(false),
                Event::TimeUp if Instant::now() >= give_up => {
                    self.terminate();
                    return Ok(false);
                }
                Event::TimeUp => {}
            }
        }
    }

    /// Sends `signal` to the shell itself.
    fn signal_shell(&self, signal: libc::c_int) -> io::Result<()> {
        match &self.sandboxed_shell {
            Some(shell) => process::send_signal(shell.pidfd.as_fd(), signal),
            None => self.process.signal(signal),
        }
    }

    /// Kills the shell and everything it started, and reaps it.
    pub fn terminate(&mut self) {
        // Killing PID 1 of the sandbox kills its whole namespace.
        let _ = self.signal_shell(libc::SIGKILL);
        self.process.kill();
        let _ = self.process.wait();
        if self.sandboxed_shell.is_none() {
            // Without a PID namespace the shell's death kills nothing else.
            self.processes.kill_all();
        }
    }

    /// Feeds `script` to the shell and collects output until the status of
    /// command `seq` arrives, the shell exits, or the time is up.
    fn wait_for(
        &mut self,
        seq: u64,
        script: &mut Script,
        output: &mut Output,
        until: Instant,
        cancelled: &dyn Fn() -> bool,
        tap: &mut Option<&mut Tap<'_>>,
    ) -> io::Result<Event> {
        // A pipe that reached EOF stays readable; stop polling it.
        let mut streams_open = [true, true];
        let mut status_open = true;
        script.write_some(&mut self.script); // usually all of it, no poll needed
        loop {
            while let Some(status) = self.status_reader.next_status() {
                // Records of earlier, abandoned commands are skipped.
                if status.seq == seq {
                    self.drain_queued(output)?;
                    pass_on(tap, output);
                    return Ok(Event::Status(status));
                }
            }
            let now = Instant::now();
            if now >= until || cancelled() {
                return Ok(Event::TimeUp);
            }
            let mut fds = [
                poll_fd(self.process.pidfd(), libc::POLLIN),
                poll_fd(
                    self.status.as_fd(),
                    if status_open { libc::POLLIN } else { 0 },
                ),
                poll_fd(
                    self.stdout.as_fd(),
                    if streams_open[0] { libc::POLLIN } else { 0 },
                ),
                poll_fd(
                    self.stderr.as_fd(),
                    if streams_open[1] { libc::POLLIN } else { 0 },
                ),
                poll_fd(
                    self.script.as_fd(),
                    if script.is_done() { 0 } else { libc::POLLOUT },
                ),
            ];
            let timeout = (until - now).min(TICK);
            poll(&mut fds, timeout)?;
            let ready = |i: usize| fds[i].revents != 0;
            if ready(4) {
                script.write_some(&mut self.script);
            }
            for (i, (pipe, buffer)) in [
                (&mut self.stdout, &mut output.stdout),
                (&mut self.stderr, &mut output.stderr),
            ]
            .into_iter()
            .enumerate()
            {
                if ready(2 + i) && read_pipe(pipe, buffer, None)? == PipeState::Closed {
                    streams_open[i] = false;
                }
            }
            pass_on(tap, output);
            if ready(1) && self.read_status()? == PipeState::Closed {
                status_open = false;
            }
            if ready(0) {
                let code = self.process.wait()?;
                self.drain_queued(output)?;
                pass_on(tap, output);
                return Ok(Event::ShellExited(code));
            }
        }
    }

    /// Reads status bytes until the pipe is empty.
    fn read_status(&mut self) -> io::Result<PipeState> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.status.read(&mut chunk) {
                Ok(0) => return Ok(PipeState::Closed),
                Ok(n) => self.status_reader.push(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(PipeState::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what is in the output pipes right now, and no more: a background
    /// process that keeps writing must not keep the call going.
    fn drain_queued(&mut self, output: &mut Output) -> io::Result<()> {
        for (pipe, buffer) in [
            (&mut self.stdout, &mut output.stdout),
            (&mut self.stderr, &mut output.stderr),
        ] {
            let queued = bytes_in_pipe(pipe)?;
            read_pipe(pipe, buffer, Some(queued))?;
        }
        Ok(())
    }
}

/// Passes on what the output buffers gained, for a streaming call.
fn pass_on(tap: &mut Option<&mut Tap<'_>>, output: &Output) {
    if let Some(tap) = tap {
        tap.pass(0, &output.stdout);
        tap.pass(1, &output.stderr);
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The part of a line of script not yet written to the shell.
struct Script {
    bytes: Vec<u8>,
    written: usize,
    /// The shell closed its end: stop writing (its exit shows on the pidfd).
    broken: bool,
}

impl Script {
    fn new(text: &str) -> Self {
        Self {
            bytes: text.as_bytes().to_vec(),
            written: 0,
            broken: false,
        }
    }

    fn is_done(&self) -> bool {
        self.broken || self.written == self.bytes.len()
    }

    /// Writes as much as the pipe takes without blocking. Rust programs
    /// ignore SIGPIPE, so a dead shell shows up as EPIPE here, not as a signal.
    fn write_some(&mut self, pipe: &mut File) {
        while !self.is_done() {
            match pipe.write(&self.bytes[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.broken = true,
            }
        }
    }
}

/// The one child of process `pid` (bubblewrap's: the sandboxed shell).
fn only_child(pid: i32) -> Result<i32, StartError> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
    children
        .split_whitespace()
        .next()
        .and_then(|child| child.parse().ok())
        .ok_or_else(|| StartError::NotReady("the sandbox has no shell process".into()))
}
