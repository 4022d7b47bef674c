//! Starting a session's shell, sandboxed or not, and owning it afterwards.
//!
//! With a sandbox (the default) the process started is bubblewrap, which
//! builds the sandbox and runs the shell in it as PID 1 of the session's PID
//! namespace (see the `agentflow-sandbox` crate for what is isolated). Before
//! `execve` the child joins the session's cgroup and switches to the
//! sandbox's host user (`sandbox::Entry`).
//!
//! With `isolation = "none"` the shell runs directly and only leads a new
//! process session; see [`crate::processes`] for what that can and cannot
//! clean up.
//!
//! In both cases the process gets `PR_SET_PDEATHSIG(SIGKILL)` (see
//! [`crate::spawner`]; bubblewrap's `--die-with-parent` passes it on to the
//! shell), the configured rlimits, default signal dispositions, and exactly
//! the file descriptors it is given.
//!
//! [`join`] starts a program inside the sandbox of a running shell instead
//! (background processes, `bash:start`): see `launch/join.rs`.
//!
//! Between `clone3` and `execve` the child is a copy of a multi-threaded
//! process, so it may only make async-signal-safe calls: everything it needs
//! (C strings, pointer arrays, descriptors) is prepared before the clone, and
//! a failure is reported to the parent as `(step, errno)` through a
//! close-on-exec pipe that reads empty once `execve` succeeded.

mod child;
mod join;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sandbox::{Jail, SandboxedCommand, SessionSandbox};

use crate::config::ResourceLimits;
use crate::process::{pidfd_open, pipe, Process};
use crate::spawner::{Spawner, SpawnerGone};

use child::{ChildPlan, Mode, Sandboxed, Step, PID_RECORD};
use join::Joining;

/// The PATH of sandboxed shells.
pub use sandbox::PATH as SANDBOX_PATH;

/// The descriptor number bubblewrap reads the seccomp filter from.
const SECCOMP_FD: i32 = 4;

/// What to start, where, and how confined.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The session's sandbox (`None`: `isolation = "none"`).
    pub sandbox: Option<Arc<SessionSandbox>>,
    /// Absolute path of the program.
    pub program: PathBuf,
    /// `argv`, including `argv[0]`.
    pub args: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Starting directory (the session directory is used if it is gone).
    pub cwd: PathBuf,
    /// The session's directory (its workspace; the only one a sandbox shows).
    pub session_dir: PathBuf,
    /// Resource limits.
    pub limits: ResourceLimits,
}

/// A running process whose sandbox new programs can join: a session's
/// sandboxed shell (PID 1 of its namespaces).
#[derive(Debug, Clone)]
pub struct JoinTarget {
    /// Its host pid.
    pub pid: i32,
    /// Its pidfd.
    pub pidfd: Arc<OwnedFd>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Preparing descriptors or strings failed in the plugin.
    #[error("cannot prepare the process: {0}")]
    Prepare(io::Error),
    /// The sandbox's command could not be made.
    #[error("cannot prepare the sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    /// The kernel refused to create the process.
    #[error("cannot create the process (clone3): {0}")]
    Clone(io::Error),
    /// The child failed at one step before running the program.
    #[error("starting the process failed while {step}: {error}")]
    Child {
        step: &'static str,
        error: io::Error,
    },
    /// The spawner thread is gone.
    #[error(transparent)]
    SpawnerGone(#[from] SpawnerGone),
}

/// Starts `spec` with `fds[i]` as its descriptor `i`; all other descriptors
/// are closed in the child. The fork itself happens on `spawner`'s thread.
pub fn launch(
    spawner: &Spawner,
    spec: &LaunchSpec,
    fds: Vec<OwnedFd>,
) -> Result<Process, LaunchError> {
    let (report_reader, report_writer) = pipe().map_err(LaunchError::Prepare)?;
    let mut fds = fds;
    let mode = match &spec.sandbox {
        Some(sandbox) => {
            let jail = Jail {
                argv: sandbox_argv(&spec.program, &spec.args),
                workspace: spec.session_dir.clone(),
                cwd: spec.cwd.clone(),
                binds: Vec::new(),
                as_pid_1: true,
                inside_id: 0,
            };
            let SandboxedCommand {
                program,
                argv,
                seccomp,
                entry,
            } = sandbox.command(&jail, SECCOMP_FD)?;
            // fds[i] becomes descriptor i: the filter must be at SECCOMP_FD.
            if fds.len() != SECCOMP_FD as usize {
                return Err(LaunchError::Prepare(io::Error::other(
                    "the shell's descriptors do not leave room for the seccomp filter",
                )));
            }
            fds.push(seccomp);
            Mode::Bubblewrap(Sandboxed {
                program,
                argv,
                entry,
            })
        }
        None => Mode::Direct,
    };
    let plan = ChildPlan::new(spec, fds, report_writer, mode).map_err(LaunchError::Prepare)?;
    // The plan (with the child's ends of every pipe) is dropped on the spawner
    // thread right after the clone, so only the child keeps those ends.
    let (pid, pidfd) = spawner
        .run(move || plan.clone_child())?
        .map_err(LaunchError::Clone)?;
    let mut process = Process::from_pidfd(pid, pidfd);
    match read_records(report_reader).map(|records| records.first().copied()) {
        Ok(None) => Ok(process),
        Ok(Some((step, errno))) => {
            let _ = process.wait();
            Err(LaunchError::Child {
                step: Step::describe(step),
                error: io::Error::from_raw_os_error(errno),
            })
        }
        Err(e) => {
            process.kill();
            let _ = process.wait();
            Err(LaunchError::Prepare(e))
        }
    }
}

/// Starts `spec` (which must name the session's sandbox) inside the sandbox
/// `target` runs in, with `fds[i]` as its descriptor `i`, as the leader of a
/// process session of its own. The program is this process's child.
pub fn join(
    spawner: &Spawner,
    spec: &LaunchSpec,
    target: &JoinTarget,
    fds: Vec<OwnedFd>,
) -> Result<Process, LaunchError> {
    let Some(sandbox) = &spec.sandbox else {
        return Err(LaunchError::Prepare(io::Error::other(
            "the session has no sandbox to join",
        )));
    };
    let (report_reader, report_writer) = pipe().map_err(LaunchError::Prepare)?;
    // Of bubblewrap's command only the entry steps and the seccomp filter
    // are used: the namespaces exist already.
    let jail = Jail {
        argv: spec.args.clone(),
        workspace: spec.session_dir.clone(),
        cwd: spec.cwd.clone(),
        binds: Vec::new(),
        as_pid_1: false,
        inside_id: 0,
    };
    let command = sandbox.command(&jail, SECCOMP_FD)?;
    let joining =
        Joining::prepare(target, command.entry, command.seccomp).map_err(LaunchError::Prepare)?;
    let plan = ChildPlan::new(spec, fds, report_writer, Mode::Join(joining))
        .map_err(LaunchError::Prepare)?;
    let (pid, pidfd) = spawner
        .run(move || plan.clone_child())?
        .map_err(LaunchError::Clone)?;
    // This child only enters the sandbox and forks the program; it exits then.
    let mut entering = Process::from_pidfd(pid, pidfd);
    let records = read_records(report_reader);
    let _ = entering.wait();
    let records = records.map_err(LaunchError::Prepare)?;
    let program = records
        .iter()
        .find(|(kind, _)| *kind == PID_RECORD)
        .map(|&(_, pid)| adopt(pid))
        .transpose()
        .map_err(LaunchError::Prepare)?;
    let failure = records.iter().find(|(kind, _)| *kind != PID_RECORD);
    match (program, failure) {
        (Some(program), None) => Ok(program),
        (program, Some(&(step, errno))) => {
            if let Some(mut program) = program {
                let _ = program.wait();
            }
            Err(LaunchError::Child {
                step: Step::describe(step),
                error: io::Error::from_raw_os_error(errno),
            })
        }
        (None, None) => Err(LaunchError::Prepare(io::Error::other(
            "the process entering the sandbox ended without starting the program",
        ))),
    }
}

/// Takes ownership of `pid`, a child of this process (forked with
/// `CLONE_PARENT`) that only this process can reap, so the pid is its.
fn adopt(pid: i32) -> io::Result<Process> {
    match pidfd_open(pid) {
        Ok(pidfd) => Ok(Process::from_pidfd(pid, pidfd)),
        Err(e) => {
            // SAFETY: kill and waitpid on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            Err(e)
        }
    }
}

/// The shell's `argv` inside the sandbox: as given (`bash`, found on the
/// sandbox's PATH, so messages read `bash: ...`) when that finds the same
/// program, else with the program's path first.
fn sandbox_argv(program: &Path, args: &[String]) -> Vec<String> {
    let by_name = args
        .first()
        .filter(|name| {
            std::env::split_paths(SANDBOX_PATH)
                .map(|dir| dir.join(name.as_str()))
                .find(|p| p.exists())
                .and_then(|p| p.canonicalize().ok())
                == program.canonicalize().ok()
        })
        .is_some();
    let mut argv = args.to_vec();
    if !by_name {
        match argv.first_mut() {
            Some(first) => *first = program.to_string_lossy().into_owned(),
            None => argv.push(program.to_string_lossy().into_owned()),
        }
    }
    argv
}

/// Reads the child's reports until every copy of the pipe is closed (the
/// program's by `execve`): 8-byte `(step, errno)` failure records, and in a
/// join the `(PID_RECORD, pid)` of the program. Empty: `execve` succeeded.
fn read_records(mut reader: File) -> io::Result<Vec<(u32, i32)>> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    if bytes.len() % 8 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a short report from the child process",
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|r| {
            (
                u32::from_ne_bytes([r[0], r[1], r[2], r[3]]),
                i32::from_ne_bytes([r[4], r[5], r[6], r[7]]),
            )
        })
        .collect())
}
