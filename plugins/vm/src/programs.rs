//! Programs started on a session's display: the window manager and the
//! startup programs of the session config, each a `sh -c` command line.
//!
//! With a sandbox (the default) each program runs in a bubblewrap sandbox of
//! the session (see the `agentflow-sandbox` crate): it sees the host's system
//! directories read-only, the session's directory read-write (its workspace
//! and `HOME`), and of the X server only the session's socket file and cookie,
//! bound read-only at their host paths. The sandbox has no network (unless the
//! operator set `network = "host"`), so X clients reach the display through the
//! socket file `/tmp/.X11-unix/X<N>`, not the abstract socket.
//!
//! Bubblewrap ends a sandbox when the program it started exits. So that
//! background processes and daemons a command line starts live on as they
//! would without a sandbox, the command runs under a small `sh` wrapper that
//! stays until the last other process of its sandbox has gone.
//!
//! Inside their sandbox programs are `nobody` (uid 65534), not root of
//! their user namespace (see [`INSIDE_ID`]).
//!
//! Programs never inherit the host's environment: they get `PATH`, `HOME` (the
//! session's directory), `LANG`, `DISPLAY`, `XAUTHORITY`, the session's `env`
//! and the session marker [`SESSION_ENV`].

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sandbox::{Bind, Jail, SessionSandbox};

use crate::display::find_in_path;
use crate::error::{VmError, VmResult};
use crate::spawner::Spawner;
use crate::sys;

/// Environment variable set on every process of a session (inherited by
/// their descendants): the session id, so its processes can be found.
pub const SESSION_ENV: &str = "AGENTFLOW_VM_SESSION";

/// The `PATH` of sandboxed programs, and the fallback when the host has none.
pub use sandbox::PATH as SANDBOX_PATH;

/// The descriptor bubblewrap reads its seccomp filter from.
const SECCOMP_FD: i32 = 3;

/// Runs the command line (`$1`), then stays while any other process of the
/// sandbox's PID namespace is left (PID 1 is bubblewrap's init, `$$` this
/// shell), and exits with the command's status. The loop forks nothing but
/// `sleep`, which is reaped before the next look.
const KEEP_ALIVE: &str = r#"/bin/sh -c "$1"
status=$?
while :; do
  others=
  for p in /proc/[0-9]*; do
    case ${p#/proc/} in 1|$$) ;; *) others=1; break ;; esac
  done
  [ -z "$others" ] && exit $status
  sleep 1
done"#;

/// The user and group sandboxed programs are inside their sandbox: `nobody`
/// (host side they are the sandbox's user either way). The sandbox crate makes
/// them root of their user namespace, but X programs that call `initgroups`
/// when root (xterm) then die: `setgroups` is denied in such a namespace.
const INSIDE_ID: u32 = 65534;

/// Host directories a sandboxed program can run programs from.
const SANDBOX_VISIBLE: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// What every program of one session is started with.
pub struct LaunchEnv<'a> {
    /// Display number (`DISPLAY=:N`).
    pub display: u32,
    /// The session's Xauthority file (`XAUTHORITY`).
    pub xauthority: &'a Path,
    /// Session id (value of [`SESSION_ENV`]).
    pub session_id: &'a str,
    /// The session's directory: `HOME`, and the sandbox's workspace.
    pub workspace: &'a Path,
    /// Working directory (inside the workspace when sandboxed).
    pub cwd: &'a Path,
    /// Extra environment variables.
    pub env: &'a BTreeMap<String, String>,
    /// The file that collects the programs' stdout and stderr, opened once
    /// before any program runs (the session's directory is theirs to change).
    pub log: &'a File,
    /// The session's sandbox (`None`: `isolation = "none"`).
    pub sandbox: Option<&'a SessionSandbox>,
}

impl LaunchEnv<'_> {
    /// The programs' environment, complete.
    fn environment(&self) -> BTreeMap<String, String> {
        // A sandbox gets nothing of the host's environment, not even its PATH.
        let path = match self.sandbox {
            Some(_) => SANDBOX_PATH.to_string(),
            None => std::env::var("PATH").unwrap_or_else(|_| SANDBOX_PATH.to_string()),
        };
        let mut env = BTreeMap::from([
            ("PATH".to_string(), path),
            (
                "HOME".to_string(),
                self.workspace.to_string_lossy().into_owned(),
            ),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("DISPLAY".to_string(), format!(":{}", self.display)),
            (
                "XAUTHORITY".to_string(),
                self.xauthority.to_string_lossy().into_owned(),
            ),
        ]);
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Last: the session's env cannot hide a process from cleanup.
        env.insert(SESSION_ENV.to_string(), self.session_id.to_string());
        env
    }
}

/// The host path of the socket file of display `:N`.
pub fn x_socket(display: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{display}"))
}

/// A program running on the display.
pub struct Program {
    child: Child,
}

impl Program {
    /// Starts `command` (a shell command line). `role` names it in errors
    /// ("window_manager" or "programs[i]").
    pub fn start(
        spawner: &Spawner,
        command: &str,
        role: &str,
        launch: &LaunchEnv<'_>,
    ) -> VmResult<Self> {
        let env = launch.environment();
        check_installed(
            command,
            role,
            env.get("PATH").map(String::as_str),
            launch.sandbox.map(|_| launch.workspace),
        )?;
        let log = launch
            .log
            .try_clone()
            .map_err(|e| VmError::Internal(format!("cannot reopen the program log: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| VmError::Internal(format!("cannot reopen the program log: {e}")))?;
        let mut cmd = match launch.sandbox {
            Some(sandbox) => sandboxed(sandbox, command, role, launch)?,
            None => {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(command).current_dir(launch.cwd);
                cmd
            }
        };
        cmd.env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // The spawner adds its own pre_exec (PR_SET_PDEATHSIG, setsid) after
        // the sandbox's (cgroup, setuid, which re-arms the death signal): both
        // orders work, as the death signal survives an unprivileged setsid.
        let child = spawner
            .spawn(cmd)
            .map_err(|e| VmError::Internal(format!("cannot start {role} `{command}`: {e}")))?;
        Ok(Self { child })
    }

    /// The process id: of bubblewrap when sandboxed, else of the `sh -c`
    /// (which usually execs the program).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the program's whole process group and reaps it. (A sandbox ends
    /// with its bubblewrap; the session's cgroup catches anything left.)
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // The spawner made each program a process-group leader.
            sys::signal_group(self.child.id(), libc::SIGKILL);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bubblewrap command that runs `command` in the session's sandbox.
fn sandboxed(
    sandbox: &SessionSandbox,
    command: &str,
    role: &str,
    launch: &LaunchEnv<'_>,
) -> VmResult<Command> {
    let socket = x_socket(launch.display);
    if !socket.exists() {
        return Err(VmError::Internal(format!(
            "the X server made no socket file {} (sandboxed programs cannot reach its \
             abstract socket): is the configured xvfb started with `-nolisten local`?",
            socket.display()
        )));
    }
    let mut binds = vec![Bind {
        path: socket,
        writable: false,
    }];
    // Read-only, also when it lies in the (writable) workspace: programs
    // must not replace the cookie.
    binds.push(Bind {
        path: launch.xauthority.to_path_buf(),
        writable: false,
    });
    let jail = Jail {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            KEEP_ALIVE.into(),
            "sh".into(),
            command.into(),
        ],
        workspace: launch.workspace.to_path_buf(),
        cwd: launch.cwd.to_path_buf(),
        binds,
        as_pid_1: false,
        inside_id: INSIDE_ID,
    };
    let sandboxed = sandbox.command(&jail, SECCOMP_FD).map_err(|e| {
        VmError::Internal(format!(
            "cannot prepare the sandbox of {role} `{command}`: {e}"
        ))
    })?;
    Ok(sandboxed.into_std(SECCOMP_FD))
}

/// SIGKILLs every process whose environment carries this session's marker:
/// descendants that left their process group (`setsid`, daemons) when the
/// session has no PID namespace to take them down. Returns how many were hit.
pub fn kill_marked(session_id: &str) -> usize {
    let marker = format!("{SESSION_ENV}={session_id}");
    let mut hit = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if pid != std::process::id() && env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) {
            sys::signal(pid, libc::SIGKILL);
            hit.push(pid);
        }
    }
    // SIGKILL is asynchronous: return once they are dead (zombies count).
    let start = std::time::Instant::now();
    while hit.iter().any(|&p| sys::is_running(p)) && start.elapsed() < KILL_WAIT {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    hit.len()
}

/// How long `kill_marked` waits for the killed processes to die.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Shell words after which the first word is not a program to look up.
const SHELL_WORDS: &[&str] = &[
    "cd", "exec", "export", "env", "eval", "if", "for", "while", "until", "case", "{", "(", "!",
    "nohup", "setsid", "sleep", "echo", "true", "false", "test", "[", ".", "command", "set",
    "unset", "umask", "ulimit",
];

/// Fails early, with the package to install, when the first word of a simple
/// command line is a program that does not exist (`sh -c` would only exit 127).
/// With `sandbox_workspace` (sandboxed programs), a program given by an
/// absolute path must also be one the sandbox shows.
fn check_installed(
    command: &str,
    role: &str,
    path: Option<&str>,
    sandbox_workspace: Option<&Path>,
) -> VmResult<()> {
    let Some(first) = command.split_whitespace().next() else {
        return Err(VmError::invalid(format!("{role} is an empty command line")));
    };
    let plain = !first.contains([
        '=', '$', '`', '"', '\'', '\\', ';', '&', '|', '<', '>', '(', ')',
    ]);
    if let Some(workspace) = sandbox_workspace.filter(|_| plain && first.starts_with('/')) {
        let program = Path::new(first);
        let visible = SANDBOX_VISIBLE.iter().any(|dir| program.starts_with(dir))
            || program.starts_with(workspace);
        if !visible {
            return Err(VmError::invalid(format!(
                "{role} `{command}`: '{first}' is not visible inside the sandbox, which shows \
                 only {} and the session's directory {}",
                SANDBOX_VISIBLE.join(", "),
                workspace.display()
            )));
        }
    }
    if !plain || SHELL_WORDS.contains(&first) || find_in_path(first, path).is_some() {
        return Ok(());
    }
    let name = PathBuf::from(first);
    let name = name.file_name().and_then(|n| n.to_str()).unwrap_or(first);
    Err(VmError::Unavailable(format!(
        "{role} `{command}`: the program '{first}' was not found; install the package that provides it \
         (on Debian usually `{}`)",
        debian_package(name)
    )))
}

/// The Debian package of a few programs sessions commonly start.
fn debian_package(program: &str) -> &str {
    match program {
        "xev" | "xwininfo" | "xprop" | "xdpyinfo" => "x11-utils",
        "xeyes" | "xclock" | "xlogo" | "xcalc" => "x11-apps",
        "Xvfb" => "xvfb",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_name_the_package() {
        let e = check_installed("xev-not-here -root", "programs[0]", None, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("programs[0]") && msg.contains("xev-not-here"),
            "{msg}"
        );
        assert!(matches!(e, VmError::Unavailable(_)));
        assert!(check_installed("sh -c true", "programs[0]", None, None).is_ok());
        assert!(check_installed("cd /tmp && whatever", "programs[0]", None, None).is_ok());
        assert!(check_installed("FOO=1 whatever", "programs[0]", None, None).is_ok());
    }

    #[test]
    fn sandboxed_programs_must_be_visible_inside() {
        let ws = Path::new("/srv/vm/1-s");
        assert!(check_installed("/bin/sh -c true", "programs[0]", None, Some(ws)).is_ok());
        let e = check_installed("/root/app --x", "programs[1]", None, Some(ws)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("programs[1]") && msg.contains("/root/app") && msg.contains("sandbox"),
            "{msg}"
        );
        assert!(matches!(e, VmError::InvalidParams(_)));
    }

    #[test]
    fn the_host_environment_does_not_reach_programs() {
        let env = BTreeMap::from([
            ("LANG".to_string(), "de_DE.UTF-8".to_string()),
            (SESSION_ENV.to_string(), "other".to_string()),
        ]);
        let log = File::open("/dev/null").unwrap();
        let launch = LaunchEnv {
            display: 7,
            xauthority: Path::new("/run/vm/s/Xauthority"),
            session_id: "s1",
            workspace: Path::new("/run/vm/s"),
            cwd: Path::new("/run/vm/s"),
            env: &env,
            log: &log,
            sandbox: None,
        };
        let all = launch.environment();
        let keys: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "AGENTFLOW_VM_SESSION",
                "DISPLAY",
                "HOME",
                "LANG",
                "PATH",
                "XAUTHORITY"
            ]
        );
        assert_eq!(all["LANG"], "de_DE.UTF-8");
        assert_eq!(all[SESSION_ENV], "s1", "the marker cannot be overridden");
        assert_eq!(all["HOME"], "/run/vm/s");
        assert_eq!(all["DISPLAY"], ":7");
    }
}
