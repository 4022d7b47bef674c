//! Starting a process in a session's sandbox, and owning it afterwards.
//!
//! With [`Isolation::Namespaces`] the process is cloned into
//! * a new **PID namespace**, where it is PID 1. When it dies, the kernel kills
//!   every other process in the namespace: background jobs, `nohup`, `setsid`
//!   and double-forked daemons alike. `/proc` is remounted, so the session sees
//!   only its own processes (and no `/proc/<pid>/root` of the host's);
//! * a new **mount namespace** (private propagation) in which a small tmpfs
//!   covers the workspace root and only the session's own directory is
//!   bind-mounted back at its usual path: other sessions' directories do not
//!   exist from inside. `CAP_SYS_ADMIN` is dropped from the bounding set, so even
//!   a root shell cannot unmount the cover or mount anything else.
//!
//! With [`Isolation::ProcessGroup`] (no privileges for namespaces) the process
//! only leads a new process session; see [`crate::processes`] for what that
//! can and cannot clean up.
//!
//! In both modes the process gets `PR_SET_PDEATHSIG(SIGKILL)` (see
//! [`crate::spawner`]), the configured rlimits, default signal dispositions,
//! and exactly the file descriptors it is given.
//!
//! Between `clone3` and `execve` the child is a copy of a multi-threaded
//! process, so it may only make async-signal-safe calls: everything it needs
//! (C strings, pointer arrays, descriptors) is prepared before the clone, and
//! a failure is reported to the parent as `(step, errno)` through a
//! close-on-exec pipe that reads empty once `execve` succeeded.

mod child;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::config::ResourceLimits;
use crate::process::{pipe, Process};
use crate::spawner::{Spawner, SpawnerGone};

use child::{ChildPlan, Step};

/// How a session is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// PID + mount namespace per session (needs CAP_SYS_ADMIN, i.e. root).
    Namespaces,
    /// The shell leads its own process session; nothing else.
    ProcessGroup,
}

impl Isolation {
    /// The name used in config and in the `info` tool.
    pub fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::ProcessGroup => "process_group",
        }
    }
}

/// What to start, where, and how confined.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// How the process is isolated.
    pub isolation: Isolation,
    /// Absolute path of the program.
    pub program: PathBuf,
    /// `argv`, including `argv[0]`.
    pub args: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Starting directory (the session directory is used if it is gone).
    pub cwd: PathBuf,
    /// The session's directory (the only one visible under the workspace root).
    pub session_dir: PathBuf,
    /// The directory holding all session directories.
    pub workspace_root: PathBuf,
    /// Resource limits.
    pub limits: ResourceLimits,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Preparing descriptors or strings failed in the plugin.
    #[error("cannot prepare the shell's sandbox: {0}")]
    Prepare(io::Error),
    /// The kernel refused to create the process (EPERM: no right to create namespaces).
    #[error("cannot create the shell process (clone3): {0}")]
    Clone(io::Error),
    /// The child failed at one step before running the program.
    #[error("starting the shell failed while {step}: {error}")]
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
    let plan = ChildPlan::new(spec, fds, report_writer).map_err(LaunchError::Prepare)?;
    // The plan (with the child's ends of every pipe) is dropped on the spawner
    // thread right after the clone, so only the child keeps those ends.
    let (pid, pidfd) = spawner
        .run(move || plan.clone_child())?
        .map_err(LaunchError::Clone)?;
    let mut process = Process::from_pidfd(pid, pidfd);
    match read_report(report_reader) {
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

/// Reads the child's failure report: `None` when `execve` succeeded.
fn read_report(mut reader: File) -> io::Result<Option<(u32, i32)>> {
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        match reader.read(&mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    match got {
        0 => Ok(None),
        8 => Ok(Some((
            u32::from_ne_bytes([report[0], report[1], report[2], report[3]]),
            i32::from_ne_bytes([report[4], report[5], report[6], report[7]]),
        ))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short report from the shell's child process",
        )),
    }
}
