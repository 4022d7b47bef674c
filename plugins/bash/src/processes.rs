//! The processes of one session, seen through procfs: which ones a timed-out
//! command started (to kill them), and, without namespaces, which ones to
//! kill at cleanup.
//!
//! Background processes (`bash:start`, see `background.rs`) each lead a
//! process session of their own; a timeout spares those sessions, so a
//! server started while a command runs survives that command's timeout. In
//! a sandbox they are also recognisable before the plugin has recorded them
//! (while they start): their parent is outside the namespace (parent pid 0).
//!
//! In a sandbox the session has its own `/proc` (reachable from the host as
//! `/proc/<shell>/root/proc`): every entry there belongs to the session and
//! the shell is PID 1. Without (`isolation = "none"`), the host's `/proc` is scanned for processes
//! whose session id is the shell's; a process that calls `setsid` leaves that
//! set and cannot be found, which is one reason the sandbox is the default. That
//! scan reads every process of the host at the start of each call (about
//! 1.5 ms with 100 processes on a loaded 2-core machine, against 25 µs for
//! the namespace's own `/proc`).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::send_signal;

/// One process: its id, process group and session, numbered as in the
/// scope's `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessEntry {
    /// Process id.
    pub pid: i32,
    /// Process group id.
    pub pgid: i32,
    /// Session id.
    pub session: i32,
    /// Parent process id (0: the parent is outside the scope's namespace).
    pub parent: i32,
}

/// The processes of a session at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pids: HashSet<i32>,
    groups: HashSet<i32>,
}

/// Finds and kills the processes of one session.
#[derive(Debug)]
pub struct SessionProcesses {
    proc_dir: PathBuf,
    /// The shell's pid in `proc_dir`'s numbering; also its process group
    /// and session id, since it leads both.
    shell: i32,
    namespace: bool,
}

impl SessionProcesses {
    /// The processes of the session whose shell has host pid `shell_pid`
    /// (`sandboxed`: the shell is PID 1 of the session's PID namespace).
    pub fn new(sandboxed: bool, shell_pid: i32) -> Self {
        match sandboxed {
            true => Self {
                proc_dir: PathBuf::from(format!("/proc/{shell_pid}/root/proc")),
                shell: 1,
                namespace: true,
            },
            false => Self {
                proc_dir: PathBuf::from("/proc"),
                shell: shell_pid,
                namespace: false,
            },
        }
    }

    /// The session's live processes other than the shell (zombies are dead
    /// already; with namespaces the list is empty once the shell is gone).
    pub fn list(&self) -> Vec<ProcessEntry> {
        let Ok(entries) = fs::read_dir(&self.proc_dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != self.shell)
            .filter_map(|pid| {
                let stat = fs::read_to_string(self.proc_dir.join(format!("{pid}/stat"))).ok()?;
                let stat = parse_stat(&stat)?;
                let ours = self.namespace || stat.session == self.shell;
                (ours && stat.alive).then_some(ProcessEntry {
                    pid,
                    pgid: stat.pgid,
                    session: stat.session,
                    parent: stat.parent,
                })
            })
            .collect()
    }

    /// The command line of process `pid` (its arguments joined by spaces;
    /// empty for a kernel thread or a process that is gone).
    pub fn command_line(&self, pid: i32) -> String {
        let bytes = fs::read(self.proc_dir.join(format!("{pid}/cmdline"))).unwrap_or_default();
        bytes
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What exists now, to compare against later.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for process in self.list() {
            snapshot.pids.insert(process.pid);
            snapshot.groups.insert(process.pgid);
        }
        snapshot
    }

    /// Kills what a command started since `before`: every process that did not
    /// exist then, unless it belongs to a process group (other than the
    /// shell's own) that did, or to one of `spared_sessions` (background
    /// processes, which may start while the command runs). So background
    /// jobs of earlier commands survive, even the children they keep forking,
    /// while the command's own jobs, pipelines, command substitutions and
    /// daemons die. Returns how many processes were signalled.
    pub fn kill_started_since(&self, before: &Snapshot, spared_sessions: &[i32]) -> usize {
        let processes = self.list();
        // Started from outside the sandbox: background processes.
        let from_outside: HashSet<i32> = processes
            .iter()
            .filter(|p| self.namespace && p.parent == 0)
            .map(|p| p.pid)
            .collect();
        let doomed: Vec<i32> = processes
            .into_iter()
            .filter(|p| {
                let old_group = p.pgid != self.shell && before.groups.contains(&p.pgid);
                let spared = spared_sessions.contains(&p.session)
                    || from_outside.contains(&p.pid)
                    || from_outside.contains(&p.session);
                !before.pids.contains(&p.pid) && !old_group && !spared
            })
            .map(|p| p.pid)
            .collect();
        doomed.iter().filter(|&&pid| self.kill(pid).is_ok()).count()
    }

    /// Kills every process of the session except the shell, and returns once
    /// none is left alive (or after a second: a process may fork between
    /// listing and killing, hence rounds).
    pub fn kill_all(&self) {
        let give_up = Instant::now() + Duration::from_secs(1);
        loop {
            let alive = self.list();
            if alive.is_empty() || Instant::now() >= give_up {
                return;
            }
            for process in alive {
                let _ = self.kill(process.pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL through a `/proc/<pid>` directory handle, which works as a
    /// pidfd: the signal cannot hit a process that reused the number.
    fn kill(&self, pid: i32) -> io::Result<()> {
        let handle = File::open(self.proc_dir.join(pid.to_string()))?;
        send_signal(handle.as_fd(), libc::SIGKILL)
    }
}

/// What `processes` needs from a `/proc/<pid>/stat` line.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    alive: bool,
    parent: i32,
    pgid: i32,
    session: i32,
}

fn parse_stat(stat: &str) -> Option<Stat> {
    // "pid (comm) state ppid pgrp session ...": comm may contain spaces and ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?;
    Some(Stat {
        // Z: zombie, X: dead.
        alive: !matches!(state, "Z" | "X"),
        parent: fields.next()?.parse().ok()?,
        pgid: fields.next()?.parse().ok()?,
        session: fields.next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "42 (a) b (c) S 1 40 30 0 -1 4194560 0 0";
        let stat = Stat {
            alive: true,
            parent: 1,
            pgid: 40,
            session: 30,
        };
        assert_eq!(parse_stat(line), Some(stat));
        let zombie = parse_stat("7 (x) Z 1 7 7 0").unwrap();
        assert!(!zombie.alive);
        assert_eq!(parse_stat("garbage"), None);
    }
}
