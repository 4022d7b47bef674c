//! One session's sandbox: its cgroup, layers and network, and the commands
//! that run in it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::bwrap::{self, Jail};
use crate::cgroup::SessionCgroup;
use crate::config::Limits;
use crate::disk::SessionDisk;
use crate::egress::Egress;
use crate::enter::Entry;
use crate::layers::SessionLayers;
use crate::paths::text;
use crate::{BaseRoot, Sandbox, SandboxError};

/// One session's sandbox: its cgroup and the commands that run in it.
/// Dropping it kills every process the session has left.
#[derive(Debug)]
pub struct SessionSandbox {
    sandbox: Sandbox,
    cgroup: SessionCgroup,
    limits: Limits,
    /// The operator's image this session's root is made of (`None`: the host's).
    image: Option<String>,
    layers: Option<SessionLayers>,
    /// More paths the workspace is shown at (see [`SessionSandbox::show_workspace_also_at`]).
    aliases: Vec<PathBuf>,
}

impl SessionSandbox {
    pub(crate) fn new(
        sandbox: Sandbox,
        cgroup: SessionCgroup,
        limits: Limits,
        image: Option<String>,
    ) -> Self {
        Self {
            sandbox,
            cgroup,
            limits,
            image,
            layers: None,
            aliases: Vec::new(),
        }
    }

    /// The session's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Gives the session writable layers over the host's `/usr` and `/opt`,
    /// kept on `disk` (nothing when the server is not root: no idmapped
    /// views, the directories stay read-only). A disk started from a frozen
    /// one shows the frozen layers' files too.
    pub fn mount_layers(&mut self, disk: &SessionDisk) -> Result<(), SandboxError> {
        let Some(views) = &self.root().views else {
            return Ok(());
        };
        let owner = self.sandbox.inner.identity.unwrap_or((0, 0));
        self.layers = Some(SessionLayers::mount(
            views,
            disk.from().map(|f| &**f),
            &disk.layers_dir(),
            &disk.overlay_dir(),
            owner,
        )?);
        Ok(())
    }

    /// The base this session's root is made of.
    fn root(&self) -> &BaseRoot {
        let inner = &self.sandbox.inner;
        self.image
            .as_ref()
            .and_then(|name| inner.images.get(name))
            .unwrap_or(&inner.host)
    }

    /// Shows the session's workspace also at `paths` inside the sandbox
    /// (for sessions started from a snapshot: where the workspace was, so
    /// that absolute paths written into its files, a virtualenv's scripts
    /// say, still lead to it). Applies to programs started afterwards.
    pub fn show_workspace_also_at(&mut self, paths: Vec<PathBuf>) {
        self.aliases = paths;
    }

    /// The operator's image the session runs on (`None`: the host's base).
    pub fn image(&self) -> Option<&str> {
        self.image.as_deref()
    }

    /// The directories this session has a writable layer over.
    pub fn layered(&self) -> Vec<String> {
        self.layers
            .iter()
            .flat_map(|l| l.mounts().iter().map(|(name, _)| format!("/{name}")))
            .collect()
    }

    /// The command that runs `jail` in this session's sandbox. The child must
    /// have the returned [`SandboxedCommand::seccomp`] at descriptor
    /// `seccomp_fd` and run [`SandboxedCommand::entry`] before `exec`.
    pub fn command(&self, jail: &Jail, seccomp_fd: i32) -> Result<SandboxedCommand, SandboxError> {
        let inner = &self.sandbox.inner;
        let mut argv = vec![text(&inner.bwrap)?.to_string()];
        argv.extend(
            bwrap::arguments(
                &self.root().base,
                self.layers.as_ref().map_or(&[][..], |l| l.mounts()),
                jail,
                &self.aliases,
                inner.config.network,
                self.limits.tmp_bytes,
                seccomp_fd,
            )
            .map_err(SandboxError::Config)?,
        );
        Ok(SandboxedCommand {
            program: inner.bwrap.clone(),
            argv,
            seccomp: filter_pipe(&inner.seccomp)?,
            entry: Entry {
                procs: self.cgroup.procs_files()?,
                identity: inner.identity,
            },
        })
    }

    /// With `network = "egress"`: connects the network namespace of host
    /// process `pid` (a process of this sandbox) to the outside; the returned
    /// guard keeps it connected. `None` for other network modes.
    pub fn connect_network(&self, pid: i32) -> Result<Option<Egress>, SandboxError> {
        let Some(slirp) = &self.sandbox.inner.slirp4netns else {
            return Ok(None);
        };
        Ok(Some(Egress::connect(
            slirp,
            pid,
            self.cgroup.procs_files()?,
        )?))
    }

    /// Times the kernel killed a process of the session at its memory limit.
    pub fn oom_kills(&self) -> u64 {
        self.cgroup.oom_kills()
    }

    /// Kills every process of the session.
    pub fn kill_all(&self) {
        self.cgroup.kill_all();
    }
}

/// How to start one sandboxed program.
#[derive(Debug)]
pub struct SandboxedCommand {
    /// The program to execute: bubblewrap.
    pub program: PathBuf,
    /// Its complete `argv`.
    pub argv: Vec<String>,
    /// The read end of a pipe holding the seccomp filter.
    pub seccomp: OwnedFd,
    /// What the child does before `exec`.
    pub entry: Entry,
}

impl SandboxedCommand {
    /// A `std::process::Command` for it: `seccomp_fd` must be the number given
    /// to [`SessionSandbox::command`] (not 0, 1 or 2). The returned command
    /// owns the filter pipe until it is spawned.
    pub fn into_std(self, seccomp_fd: i32) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.argv[1..]);
        let Self { seccomp, entry, .. } = self;
        // SAFETY: dup2 and Entry::enter are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                let source = seccomp.as_raw_fd();
                // dup2 onto itself would keep close-on-exec set.
                let moved = if source == seccomp_fd {
                    libc::fcntl(source, libc::F_SETFD, 0)
                } else {
                    libc::dup2(source, seccomp_fd)
                };
                if moved < 0 {
                    return Err(io::Error::last_os_error());
                }
                entry.enter().map_err(|(step, e)| {
                    io::Error::new(e.kind(), format!("{}: {e}", step.describe()))
                })
            });
        }
        command
    }
}

/// A pipe with `bytes` written into it and its write end closed.
fn filter_pipe(bytes: &[u8]) -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new and ours.
    let (reader, mut writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // The filter (a few hundred bytes) fits the pipe's buffer: no reader needed yet.
    writer.write_all(bytes)?;
    Ok(reader)
}
