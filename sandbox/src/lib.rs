//! Sandboxes for the processes of plugin sessions (the bash plugin's shells,
//! the vm plugin's programs): commands written by a language model must not
//! reach the host, the server or other sessions.
//!
//! # Why bubblewrap
//!
//! The sandbox is built by [bubblewrap](https://github.com/containers/bubblewrap)
//! (`bwrap`, Debian package `bubblewrap`): a small, audited, widely deployed
//! (Flatpak) tool that creates the namespaces and mounts and applies a seccomp
//! filter, and, with `--die-with-parent`, dies with the server: no process of
//! a session outlives the server, even one killed with SIGKILL. Its start
//! costs a few milliseconds. An OCI runtime (`crun`) would also do cgroups,
//! but it leaves containers running when its caller is killed, and needs a
//! bundle on disk per session.
//!
//! What bubblewrap does not do, this crate adds, each with an existing
//! mechanism: a **disk** per workspace (`disk.rs`), **writable layers** over
//! `/usr` and `/opt` (kernel overlayfs on idmapped mounts, `layers.rs`),
//! per-session **cgroups** (memory, processes, CPU; `cgroup.rs`),
//! the **seccomp** deny list (`seccomp.rs`, compiled with `seccompiler`), and
//! running bubblewrap as an **unprivileged host user** when the server is root
//! (`enter.rs`), so that root inside the sandbox is nobody outside.
//!
//! What a sandboxed program sees is listed in `bwrap.rs`.
//!
//! # What is not isolated
//!
//! * The kernel is shared (as with every container): a kernel exploit escapes.
//! * The host's `/usr`, `/etc` and `/opt` are readable (not writable): world-
//!   readable secrets there are visible.
//! * `/etc` is read-only (no layer: an idmapped view would show root's
//!   secrets as the sandbox user's); writes to `/usr` and `/opt` go to the
//!   session's layer (`layers.rs`) only when the server runs as root and the
//!   session has a disk; otherwise they are refused.
//! * The workspace is a disk of its own (`disk.rs`) of `limits.disk_bytes`;
//!   `/tmp` is a tmpfs limited in size and counted as the session's memory.
//! * With `network = "host"`, the host's network and every port on it,
//!   the server's included.
//!
//! # What the host needs
//!
//! `bwrap` 0.8+ (`scripts/setup.sh` installs it), unprivileged user namespaces
//! (`user.max_user_namespaces` > 0; on Debian also
//! `kernel.unprivileged_userns_clone = 1`), cgroups with the memory, pids
//! and cpu controllers that the server may create groups in (see `cgroup.rs`),
//! and for workspace disks loop devices, `mkfs.ext4` and `mount` (`disk.rs`).
//! When any is missing, [`Sandbox::prepare`] fails with one line naming it.

mod bwrap;
pub mod cgroup;
mod config;
pub mod disk;
mod egress;
mod enter;
pub mod layers;
pub mod seccomp;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde::Serialize;

pub use crate::bwrap::{Bind, Jail};
use crate::cgroup::{Cgroups, SessionCgroup};
pub use crate::config::{Isolation, Limits, Network, SandboxConfig};
pub use crate::disk::{Disks, SessionDisk};
pub use crate::egress::Egress;
pub use crate::enter::{Entry, EntryStep};
use crate::layers::{BaseViews, SessionLayers};

/// Why a sandbox cannot be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The operator's settings are wrong.
    #[error("sandbox config {0}")]
    Config(String),
    /// A session named an image the operator did not list.
    #[error("{0}")]
    UnknownImage(String),
    /// `bwrap` is not installed.
    #[error(
        "bubblewrap (`{0}`) is not installed: install the Debian package `bubblewrap` \
         (scripts/setup.sh does), or set sandbox.isolation = \"none\" to run without a sandbox"
    )]
    RuntimeMissing(String),
    /// `slirp4netns` is not installed (needed for `network = "egress"`).
    #[error(
        "slirp4netns (`{0}`) is not installed, and network = \"egress\" needs it: install the \
         Debian package `slirp4netns` (scripts/setup.sh does)"
    )]
    SlirpMissing(String),
    /// `bwrap` runs but cannot build a sandbox here.
    #[error("bubblewrap cannot build a sandbox on this host: {0}")]
    RuntimeFailed(String),
    /// Workspace disks cannot be made.
    #[error("{0}")]
    Disk(String),
    /// Writable layers cannot be made.
    #[error(transparent)]
    Layers(#[from] layers::LayerError),
    /// Cgroups are missing or not writable.
    #[error("cgroups: {0}")]
    Cgroup(#[from] cgroup::CgroupError),
    /// The seccomp filter could not be compiled.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    /// Plumbing failed.
    #[error("sandbox: {0}")]
    Io(#[from] io::Error),
}

/// A prepared sandbox runtime for one plugin: checked, with its filter
/// compiled. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    bwrap: PathBuf,
    /// With `network = "egress"`.
    slirp4netns: Option<PathBuf>,
    /// The host's base, then the operator's images by name.
    host: BaseRoot,
    images: std::collections::BTreeMap<String, BaseRoot>,
    seccomp: Vec<u8>,
    cgroups: Cgroups,
    identity: Option<(u32, u32)>,
}

/// What a session's root is made of, and the lower layers of its writable
/// layers (only when the server is root: idmapped views need it).
#[derive(Debug)]
struct BaseRoot {
    base: bwrap::Base,
    views: Option<BaseViews>,
}

impl BaseRoot {
    fn prepare(base: bwrap::Base, identity: Option<(u32, u32)>) -> Result<Self, SandboxError> {
        let views = match identity {
            Some(owner) => Some(BaseViews::prepare(
                &std::env::temp_dir(),
                base.layered(),
                owner,
            )?),
            None => None,
        };
        Ok(Self { base, views })
    }
}

/// What status pages show about a plugin's sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxStatus {
    /// `bubblewrap` or `none`.
    pub isolation: &'static str,
    /// `none` or `host` (absent without a sandbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'static str>,
    /// Host uid/gid the sandboxes run as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_uid: Option<u32>,
    /// Host gid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_gid: Option<u32>,
    /// `v1` or `v2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<&'static str>,
    /// The operator's per-session limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The names of the operator's images sessions may choose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// A warning for the operator (with `isolation = "none"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
}

/// The warning shown when sessions run without a sandbox.
pub const NO_SANDBOX_WARNING: &str = "sandbox.isolation = \"none\": session commands run as the \
     server's user with the host's filesystem, network and processes in reach";

impl SandboxStatus {
    /// The status of a plugin configured with `isolation = "none"`.
    pub fn none() -> Self {
        Self {
            isolation: Isolation::None.name(),
            network: None,
            host_uid: None,
            host_gid: None,
            cgroup: None,
            limits: None,
            images: Vec::new(),
            warning: Some(NO_SANDBOX_WARNING),
        }
    }
}

impl Sandbox {
    /// The plugin's sandbox as its config says: prepared for `bubblewrap`,
    /// `None` (with the warning on stderr) for an explicit `none`.
    pub fn from_config(plugin: &str, config: &SandboxConfig) -> Result<Option<Self>, SandboxError> {
        match config.isolation {
            Isolation::Bubblewrap => Self::prepare(plugin, config).map(Some),
            Isolation::None => {
                eprintln!("agentflow-{plugin}: warning: {NO_SANDBOX_WARNING}");
                Ok(None)
            }
        }
    }

    /// Checks that sandboxes can be built here (bubblewrap, user namespaces,
    /// cgroups) by running one, and compiles the seccomp filter. `plugin`
    /// names the plugin's cgroups.
    pub fn prepare(plugin: &str, config: &SandboxConfig) -> Result<Self, SandboxError> {
        if config.isolation == Isolation::None {
            return Err(SandboxError::Config(
                "isolation = \"none\" has no sandbox to prepare".into(),
            ));
        }
        config.limits.check().map_err(SandboxError::Config)?;
        let wanted = config.bwrap.clone().unwrap_or_else(|| "bwrap".into());
        let bwrap = find_program(&wanted)
            .ok_or_else(|| SandboxError::RuntimeMissing(wanted.display().to_string()))?;
        let slirp4netns = match config.network {
            Network::Egress => {
                let wanted = config
                    .slirp4netns
                    .clone()
                    .unwrap_or_else(|| "slirp4netns".into());
                Some(
                    find_program(&wanted)
                        .ok_or_else(|| SandboxError::SlirpMissing(wanted.display().to_string()))?,
                )
            }
            _ => None,
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let identity = root.then_some((config.uid, config.gid));
        if root && config.uid == 0 {
            return Err(SandboxError::Config(
                "uid: must not be 0 (the sandbox would be root on the host)".into(),
            ));
        }
        let mut images = std::collections::BTreeMap::new();
        for (name, root) in &config.images {
            let base = bwrap::Base::image(root).map_err(|e| {
                SandboxError::Config(format!(
                    "images.{name}: '{}' is not a readable directory: {e}",
                    root.display()
                ))
            })?;
            if !root.join("usr").is_dir() && !root.join("bin").exists() {
                return Err(SandboxError::Config(format!(
                    "images.{name}: '{}' holds no root filesystem (no usr/ or bin/)",
                    root.display()
                )));
            }
            images.insert(name.clone(), BaseRoot::prepare(base, identity)?);
        }
        let sandbox = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                bwrap,
                slirp4netns,
                host: BaseRoot::prepare(bwrap::Base::host(), identity)?,
                images,
                seccomp: seccomp::compile()?,
                cgroups: Cgroups::discover(plugin)?,
                identity,
            }),
        };
        sandbox.probe()?;
        Ok(sandbox)
    }

    /// The operator's settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Host `(uid, gid)` of sandboxed processes, when it differs from the
    /// server's: the files a plugin makes for a session must belong to it.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.inner.identity
    }

    /// Disks for the sessions' workspaces, their images kept in `dir`
    /// (`None` with `limits.disk_bytes = 0`).
    pub fn disks(&self, dir: &Path) -> Result<Option<Disks>, SandboxError> {
        let bytes = self.inner.config.limits.disk_bytes;
        if bytes == 0 {
            return Ok(None);
        }
        // SAFETY: getuid/getgid have no preconditions.
        let owner = self
            .inner
            .identity
            .unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
        Disks::prepare(dir, bytes, owner).map(Some).map_err(|e| {
            SandboxError::Disk(format!(
                "{e} (workspaces are disks of their own; set sandbox.limits.disk_bytes = 0 \
                     to keep them on the host's disk, unlimited)"
            ))
        })
    }

    /// What status pages show.
    pub fn status(&self) -> SandboxStatus {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = self
            .inner
            .identity
            .unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
        SandboxStatus {
            isolation: Isolation::Bubblewrap.name(),
            network: Some(self.inner.config.network.name()),
            host_uid: Some(uid),
            host_gid: Some(gid),
            cgroup: Some(self.inner.cgroups.version().name()),
            limits: Some(self.inner.config.limits),
            images: self.inner.images.keys().cloned().collect(),
            warning: if self.inner.config.network == Network::Host {
                Some("sandbox.network = \"host\": sessions reach the host's network and the server's port")
            } else if self.inner.config.network == Network::Egress {
                Some("sandbox.network = \"egress\": sessions reach outside networks (not the host's loopback)")
            } else if self.inner.config.limits.disk_bytes == 0 {
                Some("sandbox.limits.disk_bytes = 0: workspaces can fill the host's disk")
            } else {
                None
            },
        }
    }

    /// Creates a session's cgroup with `limits` (already checked against the
    /// operator's with [`Limits::tightened_by`]); its root is the host's
    /// base or the operator's image named `image`.
    pub fn session(
        &self,
        limits: Limits,
        image: Option<&str>,
    ) -> Result<SessionSandbox, SandboxError> {
        if let Some(name) = image {
            if !self.inner.images.contains_key(name) {
                let known: Vec<&str> = self.inner.images.keys().map(String::as_str).collect();
                return Err(SandboxError::UnknownImage(format!(
                    "session config image: no image named '{name}' (this server has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let cgroup = self.inner.cgroups.create(&limits)?;
        Ok(SessionSandbox {
            sandbox: self.clone(),
            cgroup,
            limits,
            image: image.map(str::to_string),
            layers: None,
        })
    }

    /// Runs `true` in a sandbox: the one way to know that bubblewrap, user
    /// namespaces and cgroups all work together.
    fn probe(&self) -> Result<(), SandboxError> {
        let session = self.session(self.inner.config.limits, None)?;
        let workspace = TempDir::new_for(self.owner())?;
        let jail = Jail {
            argv: vec!["true".into()],
            workspace: workspace.path.clone(),
            cwd: PathBuf::from("/"),
            binds: Vec::new(),
            as_pid_1: false,
            inside_id: 0,
        };
        let command = session.command(&jail, 3)?;
        let output = command
            .into_std(3)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| SandboxError::RuntimeFailed(format!("cannot run bwrap: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let hint = if stderr.contains("namespace") || stderr.contains("No space left") {
            " (unprivileged user namespaces must be enabled: sysctl user.max_user_namespaces=15000 \
             and, on Debian, kernel.unprivileged_userns_clone=1)"
        } else {
            ""
        };
        Err(SandboxError::RuntimeFailed(format!(
            "a test sandbox failed ({}): {stderr}{hint}",
            output.status
        )))
    }
}

/// Fails, naming the directory and the `setting` to change, unless the
/// sandbox's user `owner` may pass through `dir` and every directory above it
/// (bubblewrap runs as that user and opens what it binds by path).
pub fn ensure_passable(dir: &Path, owner: (u32, u32), setting: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = owner;
    for dir in dir.ancestors() {
        let meta = std::fs::metadata(dir)?;
        let mode = meta.mode();
        let passable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !passable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the sandbox's user (uid {uid}) cannot pass through {} (mode {:o}): \
                     allow it (chmod o+x) or choose another {setting}",
                    dir.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// A temporary directory owned by the sandbox's user, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new_for(owner: Option<(u32, u32)>) -> io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "agentflow-sandbox-probe-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

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
}

impl SessionSandbox {
    /// The session's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Gives the session writable layers over the host's `/usr` and `/opt`,
    /// kept on `disk` (nothing when the server is not root: no idmapped
    /// views, the directories stay read-only).
    pub fn mount_layers(&mut self, disk: &SessionDisk) -> Result<(), SandboxError> {
        let Some(views) = &self.root().views else {
            return Ok(());
        };
        let owner = self.sandbox.inner.identity.unwrap_or((0, 0));
        self.layers = Some(SessionLayers::mount(
            views,
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

    /// Host pids of every process of the session (bubblewrap's included).
    pub fn pids(&self) -> Vec<i32> {
        self.cgroup.pids()
    }

    /// Times the kernel killed a process of the session for memory.
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

fn text(path: &Path) -> Result<&str, SandboxError> {
    path.to_str()
        .ok_or_else(|| SandboxError::Config(format!("path {} is not UTF-8", path.display())))
}

/// `name` if it is a path, else the first executable `name` on `PATH`.
fn find_program(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.components().count() > 1 {
        return executable(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}
