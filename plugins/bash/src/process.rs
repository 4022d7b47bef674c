//! A child process owned through a pidfd: signals and waits can never reach
//! an unrelated process that reused its pid, and `poll` can wait for its exit
//! alongside pipes.
//!
//! Its pid (and so the number of the process group it may lead) stays
//! reserved until it is reaped, and only [`Process`] reaps it: that is what
//! makes [`Process::signal_group`] safe.

use std::ffi::c_int;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::Arc;

/// A started child process.
#[derive(Debug)]
pub struct Process {
    pid: i32,
    pidfd: Arc<OwnedFd>,
    /// Set once reaped.
    exit: Option<Exit>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status (-1: someone else reaped it, status unknown).
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// The return code a shell reports: the status, or 128 + the signal.
    pub fn return_code(self) -> i32 {
        match self {
            Self::Code(code) => code,
            Self::Signal(signal) => 128 + signal,
        }
    }
}

/// A handle that can kill a [`Process`] from another thread.
#[derive(Debug, Clone)]
pub struct Killer(Arc<OwnedFd>);

impl Killer {
    /// Sends SIGKILL (ignored if the process is already gone).
    pub fn kill(&self) {
        let _ = send_signal(self.0.as_fd(), libc::SIGKILL);
    }
}

impl Process {
    /// Takes ownership of child `pid` through its `pidfd`.
    pub fn from_pidfd(pid: i32, pidfd: OwnedFd) -> Self {
        Self {
            pid,
            pidfd: Arc::new(pidfd),
            exit: None,
        }
    }

    /// The process id, as the host sees it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pidfd: readable (for `poll`) once the process has exited.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// A handle to kill this process from elsewhere.
    pub fn killer(&self) -> Killer {
        Killer(self.pidfd.clone())
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: c_int) -> io::Result<()> {
        send_signal(self.pidfd.as_fd(), signal)
    }

    /// Sends SIGKILL (ignored if the process is already gone).
    pub fn kill(&self) {
        let _ = self.signal(libc::SIGKILL);
    }

    /// The return code if the process has exited (reaping it), else `None`.
    pub fn try_wait(&mut self) -> io::Result<Option<i32>> {
        Ok(self.reap_with(libc::WNOHANG)?.map(Exit::return_code))
    }

    /// Waits for the process to exit and returns its return code: the exit
    /// status, or 128 + the signal that killed it (as shells report it);
    /// -1 if someone else reaped it.
    pub fn wait(&mut self) -> io::Result<i32> {
        Ok(self.reap()?.return_code())
    }

    /// Waits for the process to exit, reaps it and says how it ended.
    pub fn reap(&mut self) -> io::Result<Exit> {
        Ok(self.reap_with(0)?.unwrap_or(Exit::Code(-1)))
    }

    /// How the process ended, if it has, without reaping it: its pid stays
    /// reserved, so its process group can still be signalled safely.
    pub fn peek_exit(&self) -> io::Result<Option<Exit>> {
        match self.exit {
            Some(exit) => Ok(Some(exit)),
            None => match self.waitid(libc::WNOHANG | libc::WNOWAIT)? {
                None => Ok(Some(Exit::Code(-1))), // reaped elsewhere
                Some(exit) => Ok(exit),
            },
        }
    }

    /// True once the process has been reaped.
    pub fn is_reaped(&self) -> bool {
        self.exit.is_some()
    }

    /// Sends `signal` to the process group this process leads (it must
    /// have called `setsid` or `setpgid(0, 0)`). Refused once it is reaped:
    /// the group's number could then belong to someone else.
    pub fn signal_group(&self, signal: c_int) -> io::Result<()> {
        if self.exit.is_some() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        // SAFETY: kill(2) on a process group whose leader is our unreaped
        // child, so its number cannot have been reused.
        if unsafe { libc::kill(-self.pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn reap_with(&mut self, flags: c_int) -> io::Result<Option<Exit>> {
        if let Some(exit) = self.exit {
            return Ok(Some(exit));
        }
        let exit = match self.waitid(flags)? {
            // Reaped elsewhere (e.g. SIGCHLD set to SIG_IGN by the host).
            None => Exit::Code(-1),
            Some(None) => return Ok(None),
            Some(Some(exit)) => exit,
        };
        self.exit = Some(exit);
        Ok(Some(exit))
    }

    /// `waitid` with `WEXITED | flags`: `None` when the process is not ours
    /// to wait for any more (ECHILD), `Some(None)` while it runs (WNOHANG).
    fn waitid(&self, flags: c_int) -> io::Result<Option<Option<Exit>>> {
        loop {
            // SAFETY: siginfo_t is plain data; waitid fills it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: a valid pidfd and a valid siginfo_t pointer.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | flags,
                )
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => return Ok(None),
                    _ => return Err(e),
                }
            }
            // SAFETY: waitid succeeded, so si_pid/si_status are initialized.
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if pid == 0 {
                return Ok(Some(None)); // WNOHANG and still running
            }
            return Ok(Some(Some(match info.si_code {
                libc::CLD_EXITED => Exit::Code(status),
                _ => Exit::Signal(status),
            })));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.kill();
            let _ = self.wait();
        }
    }
}

/// Sends `signal` through a pidfd (or a `/proc/<pid>` directory handle).
pub fn send_signal(pidfd: BorrowedFd<'_>, signal: c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a valid fd, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A pidfd for process `pid` (which must be known to be alive and ours).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open with no flags returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}
