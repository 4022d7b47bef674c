//! The `bash` plugin: one long-lived, sandboxed bash shell per session.
//!
//! # Tools
//!
//! * `run {command, timeout?}` → `{stdout, stderr, return_code, cwd, timed_out,
//!   truncated, shell_restarted, memory_limit_reached?}`. The command runs in
//!   the session's shell, so `cd`, variables and functions persist. A
//!   non-zero exit is a result, not an error; when the kernel killed one of
//!   its processes at the session's memory limit, the result says so
//!   (`memory_limit_reached`, and a line in stderr). Output is captured per stream up to `output_limit_bytes` (the rest
//!   is read and dropped, `truncated: true`) and returned as text: invalid
//!   UTF-8 is replaced with U+FFFD (lossy; move binary data with `read_file`).
//!   Commands read stdin from `/dev/null`.
//! * `write_file {path, content, encoding: utf8|base64}` and
//!   `read_file {path, max_bytes?}` move files in and out of the session's
//!   directory, binary-safe (`read_file` answers utf8 when the bytes are valid
//!   UTF-8, else base64). Paths that lead outside the directory (absolute
//!   elsewhere, `..`, symbolic links) are refused as invalid params.
//! * `start {command, name?}` → `{id, name, command, pid, cwd}`, and
//!   `output {id, since?}`, `wait {id, timeout, since?}`, `kill {id, signal?}`,
//!   `write_stdin {id, data, encoding?, eof?}`, `processes {}`: long-running
//!   processes in the session's sandbox (servers, builds) that a client
//!   comes back to. See `background.rs` and `tools/background.rs`.
//! * `info` (hidden): isolation mode, directories and limits.
//!
//! # Snapshots (capability `snapshots`)
//!
//! A session can be snapshotted and any number of sessions started from the
//! snapshot (the host's `/session/snapshot`, `/session/fork`, `from_snapshot`):
//! they get the session's files (workspace, `$HOME`, what was installed into
//! its writable layers) and its shell's state (working directory,
//! variables, functions, aliases, options), not its processes. Restoring
//! copies no files. See `snapshot.rs`; not with `isolation = "none"`.
//!
//! # Time limits
//!
//! A command may run for `min(timeout param or default_timeout_secs, the
//! call's deadline)`. Then every process it started is killed (its process
//! groups, see `processes.rs`; background processes of `start` are spared,
//! even one started while the command ran), a command running inside the
//! shell itself (a builtin `while` loop) is interrupted by a signal trap,
//! and the call fails with a timeout error quoting the end of the output.
//! The shell keeps its state. If it cannot be brought back within a second, it is killed and
//! replaced by a fresh one; the error says so and the next result has
//! `shell_restarted: true`. The same happens when a command ends the shell
//! (`exit`): the result carries the shell's exit code. Calls never hang on a
//! lost shell: they get a result, a timeout, or "session broken" when no new
//! shell can be started.
//!
//! # Isolation (the `agentflow-sandbox` crate, `launch.rs`)
//!
//! Each session has its own directory (mode 0700) under the workspace root,
//! deleted at cleanup. By default (`[plugins.bash.config.sandbox]`,
//! `isolation = "bubblewrap"`) its shell runs in a bubblewrap sandbox:
//!
//! * the host's `/usr`, `/etc`, `/opt` read-only, its own `/proc`, a minimal
//!   `/dev`, its own `/tmp` and `/var/tmp` (size-limited tmpfs), the session's
//!   directory read-write at its host path (also `$HOME`), nothing else: no
//!   `/root`, `/home`, server directories or other sessions;
//! * root of its own user namespace, unprivileged on the host (uid `nobody`
//!   when the server runs as root), no capabilities, `no_new_privs`, a seccomp
//!   deny list (mount, kernel modules, keyrings, bpf, ...);
//! * its own network namespace with only a loopback interface (the server's
//!   port is unreachable) unless the operator sets `network = "host"`;
//! * a cgroup per session limiting memory (its tmpfs included), processes
//!   and CPU, and the session's directory on a disk of its own
//!   (`sandbox.limits`, `disk_bytes`; a client may tighten them with `limits`
//!   in its session config, never loosen them);
//! * the shell is PID 1 of its PID namespace: no process of the session
//!   survives it, at cleanup, at host shutdown, and when the host is SIGKILLed
//!   (the shell's parent, bubblewrap, gets `PR_SET_PDEATHSIG(SIGKILL)` from a
//!   dedicated spawner thread, see `spawner.rs`, and passes it on with
//!   `--die-with-parent`; the kernel then empties the namespace). The kernel
//!   does not deliver signals without a handler to PID 1 from inside: `kill
//!   -9 $$` does nothing (use `exit`); `kill -9 -1` kills everything else.
//!
//! `read_file` and `write_file` act as the sandbox's user (`setfsuid`), so
//! they reach exactly what the shell reaches in its directory, and the files
//! they write belong to the session. What is *not* isolated is listed in the
//! sandbox crate's docs (shared kernel, readable `/usr` and `/etc`, no
//! writable layer over the system directories).
//!
//! When the sandbox cannot be built (bubblewrap missing, no user namespaces,
//! no cgroup controllers), warmup fails with one line saying what is missing.
//! `isolation = "none"` runs shells on the host as the server's user, with a
//! warning at warmup and in `info`: the shell only leads its own process
//! session; cleanup and timeouts kill the processes of that session, but a
//! process that calls `setsid` leaves it and is not found, the host's death
//! kills only the shell, and each call scans the host's `/proc`.
//!
//! # Configuration
//!
//! See `PluginConfig` (plugin-wide, from `plugins.toml`) and `SessionConfig`
//! (`cwd`, `env`, `limits`) in `config.rs`. The shell does not inherit the
//! host's environment (it may hold secrets): it gets `PATH`, `HOME` (the
//! session directory), `SHELL`, `TERM=dumb`, `LANG`, then the session's `env`.
//!
//! Requires Linux 5.11+ (`clone3`, pidfds, `openat2`, `close_range`).
//!
//! # Code map
//!
//! * `lib.rs`: the `Plugin` impl: warmup (config, sandbox, workspace root,
//!   spawner thread, a probe session), session creation, tool registration.
//! * `tools.rs`: tool params and results (the schemas derive from them) and
//!   the handlers that translate between the API and a session.
//! * `config.rs`: plugin and session config, defaults, validation.
//! * `session.rs`: one session: its directory, its shell, one command at a
//!   time, replacing a lost shell.
//! * `shell.rs`: one bash process: start it, run a command, stop a command
//!   that ran out of time.
//! * `protocol.rs`: the lines of script and the status records exchanged with bash.
//! * `output.rs`: capped capture of stdout and stderr.
//! * `launch.rs`, `launch/child.rs`: starting the shell, in its sandbox or
//!   not, with rlimits (the code between `clone3` and `execve`).
//! * `background.rs` (with `background/stream.rs`, `background/pump.rs`): a
//!   session's background processes, their output streams and the thread
//!   that reads them; `launch/join.rs`: starting a program inside the
//!   running shell's sandbox.
//! * `fd.rs`: `poll` and nonblocking mode.
//! * `process.rs`: a child process owned through a pidfd.
//! * `processes.rs`: a session's processes in procfs (timeouts, cleanup
//!   without namespaces).
//! * `spawner.rs`: the thread that forks every shell.
//! * `workspace.rs`: session directories and file access confined with `openat2`.
//! * `snapshot.rs`: snapshots and sessions restored from them;
//!   `shell_state.rs`: a shell's state as a script of builtins.

mod background;
mod config;
mod fd;
mod launch;
mod output;
mod process;
mod processes;
mod protocol;
mod session;
mod shell;
mod shell_state;
mod snapshot;
mod spawner;
mod tools;
mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use plugin_api::{export_plugin, Plugin, PluginError, PluginInfo, SessionModel, Tools};
use sandbox::{Disks, Freezer, Frozen, Sandbox, SandboxStatus};
use serde_json::Value;

pub use crate::config::{PluginConfig, ResourceLimits, SessionConfig};
use crate::launch::{LaunchSpec, SANDBOX_PATH};
pub use crate::session::BashSession;
use crate::snapshot::{Origin, Snapshots};
use crate::spawner::Spawner;
use crate::workspace::{NewDisk, WorkspaceRoot};

/// The bash plugin: what its warmup established.
#[derive(Debug)]
pub struct BashPlugin {
    settings: Arc<Settings>,
    snapshots: Snapshots,
}

/// What warmup established; sessions are created from it.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: PluginConfig,
    pub(crate) root: WorkspaceRoot,
    pub(crate) shell: PathBuf,
    /// `None` with `isolation = "none"`.
    pub(crate) sandbox: Option<Sandbox>,
    /// Workspace disks (`None` without a sandbox or with `disk_bytes = 0`).
    pub(crate) disks: Option<Disks>,
    /// Freezes disks for snapshots (`None` without disks).
    pub(crate) freezer: Option<Freezer>,
    pub(crate) spawner: Arc<Spawner>,
}

impl Plugin for BashPlugin {
    type Session = BashSession;

    fn info() -> PluginInfo {
        PluginInfo::new(
            "bash",
            env!("CARGO_PKG_VERSION"),
            "A persistent bash shell per session, in a sandbox of its own",
            SessionModel::PerWorker,
        )
        .with_capability(PluginInfo::SNAPSHOTS)
    }

    fn tools() -> Tools<Self> {
        Tools::new()
            .tool(
                "run",
                "Run a shell command in the session's persistent bash shell (cd, variables and \
                 functions persist between calls). Returns stdout, stderr, return_code and cwd; \
                 a non-zero return_code is not an error.",
                tools::run,
            )
            .destructive()
            .tool(
                "write_file",
                "Write a file (text, or binary as base64) into the session's directory, \
                 creating parent directories.",
                tools::write_file,
            )
            .destructive()
            .tool(
                "read_file",
                "Read a file from the session's directory: text if it is valid UTF-8, else base64.",
                tools::read_file,
            )
            .read_only()
            .tool(
                "start",
                "Start a long-running command in the background (a server, a build, a watcher) and \
                 return at once with its id (\"p1\", ...). It runs as `bash -c <command>` in the \
                 session's sandbox, in the shell's current directory, with the session's \
                 configured environment (not variables exported later by `run`), as a process \
                 group of its own with stdin a pipe (see write_stdin) and stdout and stderr \
                 captured apart (see output, wait). Do not end the command with `&`. It keeps \
                 running while other tools are called, and ends with the session.",
                tools::background::start,
            )
            .destructive()
            .tool(
                "output",
                "New output of a background process: stdout and stderr since the last read (or \
                 since the byte offsets in `since`), the offsets to pass next time \
                 (stdout_offset, stderr_offset), bytes dropped because only the newest \
                 output_limit_bytes per stream are kept (stdout_dropped_bytes, \
                 stderr_dropped_bytes), and running / exit_code / signal (exit_code is null \
                 while it runs and when a signal killed it; signal names that signal).",
                tools::background::output,
            )
            .read_only()
            .tool(
                "wait",
                "Wait until a background process exits or `timeout` seconds pass, then answer \
                 as output does (running: true means the timeout passed first).",
                tools::background::wait,
            )
            .read_only()
            .tool(
                "kill",
                "Send a signal to a background process's process group: TERM (default), KILL, \
                 INT, HUP, QUIT, USR1, USR2, or a number 1-31. Returns at once; use wait to see \
                 it end.",
                tools::background::kill,
            )
            .destructive()
            .tool(
                "write_stdin",
                "Write to a background process's stdin (text, or bytes as base64); `eof: true` \
                 closes stdin afterwards (programs like cat then finish).",
                tools::background::write_stdin,
            )
            .destructive()
            .tool(
                "processes",
                "List the session's background processes: id, name, command, pid, cwd, running, \
                 exit_code, signal, started_at, and bytes written and unread per stream.",
                tools::background::processes,
            )
            .read_only()
            .hidden_tool(
                "info",
                "How this session is isolated, where its directory is, and its limits.",
                tools::info,
            )
            .read_only()
            // Answers from memory: the host may run it without a thread hand-off.
            .non_blocking()
    }

    fn warmup(config: &Value) -> Result<Self, PluginError> {
        let config = PluginConfig::parse(config).map_err(PluginError::invalid_params)?;
        let shell = find_shell(config.shell.as_deref())?;
        let sandbox = Sandbox::from_config("bash", &config.sandbox)
            .map_err(|e| PluginError::unavailable(e.to_string()))?;
        let owner = sandbox.as_ref().and_then(Sandbox::owner);
        let root_path = config.workspace_root();
        let root = WorkspaceRoot::prepare(&root_path, owner).map_err(|e| {
            PluginError::unavailable(format!(
                "workspace_root '{}' cannot be created: {e}",
                root_path.display()
            ))
        })?;
        let disks = match &sandbox {
            Some(sandbox) => sandbox
                .disks(&root.path().join(".disks"))
                .map_err(|e| PluginError::unavailable(e.to_string()))?,
            None => None,
        };
        // Also when there are no disks: it removes what a killed server left.
        let freezer = Freezer::prepare(&root.path().join(".snapshots"))
            .map_err(|e| PluginError::unavailable(e.to_string()))?;
        let freezer = disks.is_some().then_some(freezer);
        let spawner =
            Arc::new(Spawner::start().map_err(|e| {
                PluginError::internal(format!("cannot start the spawner thread: {e}"))
            })?);
        let settings = Settings {
            config,
            root,
            shell,
            sandbox,
            disks,
            freezer,
            spawner,
        };
        settings.probe()?;
        // Dropping the plugin after shutdown ends the spawner thread once no
        // session holds the settings.
        Ok(Self {
            settings: Arc::new(settings),
            snapshots: Snapshots::default(),
        })
    }

    fn shutdown(&self) {
        self.snapshots.clear();
        if let Some(freezer) = &self.settings.freezer {
            freezer.close();
        }
    }

    fn initialize(&self, session_id: &str, config: &Value) -> Result<BashSession, PluginError> {
        let settings = self.settings();
        let config = SessionConfig::parse(config).map_err(PluginError::invalid_params)?;
        let origin = Origin {
            config,
            former_dirs: Vec::new(),
        };
        settings.start_session(session_id, origin, None)
    }

    fn snapshot(&self, session: &BashSession, snapshot_id: &str) -> Result<Value, PluginError> {
        self.snapshots.take(&self.settings, session, snapshot_id)
    }

    fn restore(
        &self,
        session_id: &str,
        snapshot_id: &str,
        config: &Value,
    ) -> Result<BashSession, PluginError> {
        self.snapshots
            .restore(&self.settings, session_id, snapshot_id, config)
    }

    fn drop_snapshot(&self, snapshot_id: &str) -> Result<(), PluginError> {
        self.snapshots.forget(snapshot_id);
        Ok(())
    }

    fn cleanup(&self, session: &BashSession) -> Result<(), PluginError> {
        session.close().map_err(|e| {
            PluginError::internal(format!(
                "the session's processes were stopped, but removing {} failed: {e}",
                session.dir().path().display()
            ))
        })
    }
}

export_plugin!(BashPlugin);

impl BashPlugin {
    /// What warmup established.
    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }
}

impl Settings {
    /// Creates a session: its sandbox, its directory, then its shell; with
    /// `from`, its files start as those frozen there and its shell starts in
    /// its directory (the caller restores the shell's state).
    pub(crate) fn start_session(
        &self,
        session_id: &str,
        origin: Origin,
        from: Option<&Arc<Frozen>>,
    ) -> Result<BashSession, PluginError> {
        let config = &origin.config;
        let mut sandbox = match &self.sandbox {
            Some(sandbox) => {
                let limits = config
                    .sandbox_limits(&sandbox.config().limits)
                    .map_err(PluginError::invalid_params)?;
                let session =
                    sandbox
                        .session(limits, config.image.as_deref())
                        .map_err(|e| match e {
                            sandbox::SandboxError::UnknownImage(message) => {
                                PluginError::invalid_params(message)
                            }
                            e => PluginError::unavailable(format!(
                                "cannot create the session's sandbox: {e}"
                            )),
                        })?;
                Some(session)
            }
            None if !config.limits.is_null() || config.image.is_some() => {
                return Err(PluginError::invalid_params(
                    "session config limits/image: this server runs bash without a sandbox \
                     (sandbox.isolation = \"none\"), so neither can be applied",
                ))
            }
            None => None,
        };
        let disk = match (&self.disks, &sandbox) {
            (Some(disks), Some(sandbox)) if sandbox.limits().disk_bytes > 0 => Some(NewDisk {
                disks,
                bytes: sandbox.limits().disk_bytes,
                from: from.cloned(),
            }),
            _ if from.is_some() => {
                return Err(PluginError::unsupported(
                    "a session restored from a snapshot needs a workspace disk, and this \
                     server has none (sandbox.limits.disk_bytes = 0)",
                ))
            }
            _ => None,
        };
        let dir = self
            .root
            .create_session_dir(session_id, disk)
            .map_err(|e| {
                PluginError::unavailable(format!(
                    "cannot create a session directory in {}: {e}",
                    self.root.path().display()
                ))
            })?;
        if let Some(sandbox) = sandbox.as_mut() {
            if let Err(e) = dir.mount_layers(sandbox) {
                let _ = dir.remove();
                return Err(PluginError::unavailable(format!(
                    "cannot give the session its writable layers: {e}"
                )));
            }
            // Absolute paths in the snapshot's files lead to the workspace.
            sandbox.show_workspace_also_at(origin.former_dirs.clone());
        }
        let sandbox = sandbox.map(Arc::new);
        let cwd = match &config.cwd {
            Some(_) if from.is_some() => dir.path().to_path_buf(),
            None => dir.path().to_path_buf(),
            Some(cwd) => match dir.create_dir(cwd) {
                Ok(path) => path,
                Err(e) => {
                    let _ = dir.remove();
                    return Err(PluginError::invalid_params(format!(
                        "session config cwd: {e}"
                    )));
                }
            },
        };
        let launch = self.launch_spec(sandbox, dir.path(), cwd, &config.env);
        BashSession::start(
            dir,
            launch,
            self.spawner.clone(),
            self.config.output_limit_bytes,
            self.config.max_background_processes,
            origin,
        )
        .map_err(|e| PluginError::unavailable(format!("cannot start the session's shell: {e}")))
    }

    /// What `info` shows about the sandbox.
    pub(crate) fn sandbox_status(&self) -> SandboxStatus {
        self.sandbox
            .as_ref()
            .map_or_else(SandboxStatus::none, Sandbox::status)
    }

    fn launch_spec(
        &self,
        sandbox: Option<Arc<sandbox::SessionSandbox>>,
        session_dir: &Path,
        cwd: PathBuf,
        extra_env: &BTreeMap<String, String>,
    ) -> LaunchSpec {
        let host =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        // A sandbox gets nothing of the host's environment, not even its PATH.
        let path = match sandbox {
            Some(_) => SANDBOX_PATH.to_string(),
            None => host("PATH", SANDBOX_PATH),
        };
        let mut env = BTreeMap::from([
            ("PATH".to_string(), path),
            (
                "HOME".to_string(),
                session_dir.to_string_lossy().into_owned(),
            ),
            (
                "SHELL".to_string(),
                self.shell.to_string_lossy().into_owned(),
            ),
            ("TERM".to_string(), "dumb".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ]);
        env.extend(extra_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        LaunchSpec {
            sandbox,
            program: self.shell.clone(),
            args: protocol::SHELL_ARGS.iter().map(|s| s.to_string()).collect(),
            env: env.into_iter().collect(),
            cwd,
            session_dir: session_dir.to_path_buf(),
            limits: self.config.limits,
        }
    }

    /// Starts (and ends) a real session: checks the shell, the workspace root
    /// and the sandbox at once, so that warmup fails rather than the first call.
    fn probe(&self) -> Result<(), PluginError> {
        let session = self
            .start_session("warmup-probe", Origin::default(), None)
            .map_err(|e| {
                PluginError::new(
                    e.kind,
                    format!(
                        "isolation = \"{}\": {}",
                        self.config.sandbox.isolation.name(),
                        e.message
                    ),
                )
            })?;
        session.close().map_err(|e| {
            PluginError::internal(format!("cannot remove the warmup probe's directory: {e}"))
        })
    }
}

/// The shell program: the configured one, or `bash` on `PATH`.
fn find_shell(configured: Option<&Path>) -> Result<PathBuf, PluginError> {
    let wanted = configured.unwrap_or(Path::new("bash"));
    let candidates: Vec<PathBuf> = if wanted.is_absolute() {
        vec![wanted.to_path_buf()]
    } else {
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(wanted))
                    .collect()
            })
            .unwrap_or_default()
    };
    candidates
        .into_iter()
        .find(|path| is_executable(path))
        .ok_or_else(|| {
            PluginError::unavailable(format!(
                "shell '{}' not found or not executable (set `shell` in the bash plugin config)",
                wanted.display()
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
