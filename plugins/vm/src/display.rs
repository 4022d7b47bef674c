//! The Xvfb process of a session: start it on a display it picks itself
//! (`-displayfd`), notice when it dies, stop it and clear what it leaves behind.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{VmError, VmResult};
use crate::spawner::Spawner;
use crate::sys;

/// How long Xvfb gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// A running Xvfb.
pub struct Xvfb {
    child: Child,
    display: u32,
    exit: Option<ExitStatus>,
}

impl Xvfb {
    /// Starts `xvfb_bin` at `width`x`height`x24, admitting only clients with
    /// a cookie of the Xauthority file `auth`, and waits (up to `timeout`)
    /// until it reports the display it chose. Its output goes to `log`.
    pub fn start(
        spawner: &Spawner,
        xvfb_bin: &str,
        session_id: &str,
        (width, height): (u32, u32),
        auth: &Path,
        log: &Path,
        timeout: Duration,
    ) -> VmResult<Self> {
        let (reader, writer) =
            cloexec_pipe().map_err(|e| VmError::Internal(format!("cannot create a pipe: {e}")))?;
        let log_file = File::create(log).map_err(|e| {
            VmError::Internal(format!("cannot create the Xvfb log {}: {e}", log.display()))
        })?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| VmError::Internal(format!("cannot reopen the Xvfb log: {e}")))?;
        let write_fd: RawFd = writer.as_raw_fd();
        let mut cmd = Command::new(xvfb_bin);
        cmd.arg("-displayfd")
            .arg(write_fd.to_string())
            .arg("-auth")
            .arg(auth)
            .args(["-nolisten", "tcp", "-noreset", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .env(crate::programs::SESSION_ENV, session_id)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        // SAFETY: fcntl is async-signal-safe; it clears close-on-exec on the
        // pipe's write end in the child only, so Xvfb inherits it.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(write_fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawner.spawn(cmd).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                missing_xvfb(xvfb_bin)
            } else {
                VmError::Internal(format!("cannot start Xvfb ({xvfb_bin}): {e}"))
            }
        })?;
        // Only Xvfb may hold the write end now, so EOF means it died.
        drop(writer);
        let mut xvfb = Self {
            child,
            display: 0,
            exit: None,
        };
        match read_display_number(reader, timeout) {
            Ok(n) => {
                xvfb.display = n;
                Ok(xvfb)
            }
            Err(e) => {
                let status = xvfb.kill_now();
                let tail = log_tail(log);
                Err(VmError::Internal(match status {
                    Some(s) if e.kind() != io::ErrorKind::TimedOut => {
                        format!("Xvfb exited during startup ({}): {tail}", describe_exit(s))
                    }
                    _ => format!("Xvfb did not report a display within {timeout:?} ({e}): {tail}"),
                }))
            }
        }
    }

    /// The display number (`:N`).
    pub fn display(&self) -> u32 {
        self.display
    }

    /// The Xvfb process id, as seen from the host.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while Xvfb runs; how it ended once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Stops Xvfb: SIGTERM (so it removes its socket file), then SIGKILL
    /// after a grace period. (With `-displayfd` Xvfb writes no lock file and
    /// finds a free display by binding the abstract socket, so a socket file
    /// left by a killed server does not hold its display number.)
    pub fn stop(&mut self) {
        if self.exit_status().is_none() {
            sys::signal(self.child.id(), libc::SIGTERM);
            let start = Instant::now();
            while self.exit_status().is_none() && start.elapsed() < TERM_GRACE {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.kill_now();
    }

    fn kill_now(&mut self) -> Option<ExitStatus> {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
        self.exit
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Unavailable error for a missing Xvfb binary.
pub fn missing_xvfb(bin: &str) -> VmError {
    VmError::Unavailable(format!(
        "the X server binary '{bin}' was not found; install the Debian package `xvfb` (apt-get install xvfb)"
    ))
}

/// Whether `bin` names an executable file (directly or through `PATH`).
pub fn find_in_path(bin: &str, path_var: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return is_exec(&p).then_some(p);
    }
    let path = path_var
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(bin))
        .find(|p| is_exec(p))
}

/// Words for how a process ended.
pub fn describe_exit(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

fn cloexec_pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two new descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { Ok((File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Reads the "N\n" Xvfb writes to the displayfd once it accepts connections.
fn read_display_number(mut reader: File, timeout: Duration) -> io::Result<u32> {
    let deadline = Instant::now() + timeout;
    let mut text = Vec::new();
    let mut buf = [0u8; 32];
    loop {
        if text.contains(&b'\n') {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !sys::wait_readable(reader.as_raw_fd(), left)? {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let s = String::from_utf8_lossy(&text);
    s.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("no display number (got {s:?})"),
        )
    })
}

/// The last lines of a log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(no output)".into()
    } else {
        tail
    }
}
