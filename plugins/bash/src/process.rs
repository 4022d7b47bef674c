//! A child process owned through a pidfd: signals and waits can never reach
//! an unrelated process that reused its pid, and `poll` can wait for its exit
//! alongside pipes.

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
    return_code: Option<i32>,
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
            return_code: None,
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
        self.wait_with(libc::WNOHANG)
    }

    /// Waits for the process to exit and returns its return code: the exit
    /// status, or 128 + the signal that killed it (as shells report it);
    /// -1 if someone else reaped it.
    pub fn wait(&mut self) -> io::Result<i32> {
        Ok(self.wait_with(0)?.unwrap_or(-1))
    }

    fn wait_with(&mut self, flags: c_int) -> io::Result<Option<i32>> {
        if let Some(code) = self.return_code {
            return Ok(Some(code));
        }
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
                    // Reaped elsewhere (e.g. SIGCHLD set to SIG_IGN by the host).
                    Some(libc::ECHILD) => {
                        self.return_code = Some(-1);
                        return Ok(self.return_code);
                    }
                    _ => return Err(e),
                }
            }
            // SAFETY: waitid succeeded, so si_pid/si_status are initialized.
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if pid == 0 {
                return Ok(None); // WNOHANG and still running
            }
            let code = match info.si_code {
                libc::CLD_EXITED => status,
                _ => 128 + status,
            };
            self.return_code = Some(code);
            return Ok(Some(code));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.return_code.is_none() {
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
