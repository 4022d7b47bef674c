//! Programs started on a session's display: the window manager and the
//! startup programs of the session config, each a `sh -c` command line.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::display::find_in_path;
use crate::error::{VmError, VmResult};
use crate::spawner::Spawner;
use crate::sys;

/// Environment variable set on every process of a session (inherited by
/// their descendants): the session id, so its processes can be found.
pub const SESSION_ENV: &str = "AGENTFLOW_VM_SESSION";

/// What every program of one session is started with.
pub struct LaunchEnv<'a> {
    /// Display number (`DISPLAY=:N`).
    pub display: u32,
    /// The session's Xauthority file (`XAUTHORITY`).
    pub xauthority: &'a Path,
    /// Session id (value of [`SESSION_ENV`]).
    pub session_id: &'a str,
    /// Working directory.
    pub cwd: &'a Path,
    /// Extra environment variables.
    pub env: &'a BTreeMap<String, String>,
    /// File that collects the programs' stdout and stderr.
    pub log: &'a Path,
}

/// A program running on the display.
pub struct Program {
    child: Child,
}

impl Program {
    /// Starts `command` (a shell command line). `role` names it in errors
    /// ("window manager" or "programs[i]").
    pub fn start(
        spawner: &Spawner,
        command: &str,
        role: &str,
        launch: &LaunchEnv<'_>,
    ) -> VmResult<Self> {
        check_installed(command, role, launch.env.get("PATH").map(String::as_str))?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(launch.log)
            .map_err(|e| VmError::Internal(format!("cannot open {}: {e}", launch.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| VmError::Internal(format!("cannot reopen the program log: {e}")))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(launch.cwd)
            .env("DISPLAY", format!(":{}", launch.display))
            .env("XAUTHORITY", launch.xauthority)
            .env(SESSION_ENV, launch.session_id)
            .env_remove("WAYLAND_DISPLAY")
            .envs(launch.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = spawner
            .spawn(cmd)
            .map_err(|e| VmError::Internal(format!("cannot start {role} `{command}`: {e}")))?;
        Ok(Self { child })
    }

    /// The process id (of the `sh -c`, which usually execs the program).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the program's whole process group and reaps it.
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
fn check_installed(command: &str, role: &str, path: Option<&str>) -> VmResult<()> {
    let Some(first) = command.split_whitespace().next() else {
        return Err(VmError::invalid(format!("{role} is an empty command line")));
    };
    let plain = !first.contains([
        '=', '$', '`', '"', '\'', '\\', ';', '&', '|', '<', '>', '(', ')',
    ]);
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
        let e = check_installed("xev-not-here -root", "programs[0]", None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("programs[0]") && msg.contains("xev-not-here"),
            "{msg}"
        );
        assert!(matches!(e, VmError::Unavailable(_)));
        assert!(check_installed("sh -c true", "programs[0]", None).is_ok());
        assert!(check_installed("cd /tmp && whatever", "programs[0]", None).is_ok());
        assert!(check_installed("FOO=1 whatever", "programs[0]", None).is_ok());
    }
}
