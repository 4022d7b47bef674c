//! Outbound network for a sandbox (`network = "egress"`): slirp4netns (Debian
//! package `slirp4netns`) gives the sandbox's network namespace a `tap0`
//! interface with a default route and DNS, relaying connections through the
//! host's network stack in user space. `--disable-host-loopback` keeps the
//! host's `127.0.0.1` (the server's port among others) out of reach; the
//! sandbox's own loopback stays its own. slirp4netns confines itself
//! (`--enable-sandbox`, `--enable-seccomp`), runs in the session's cgroup, and
//! exits when its exit pipe closes: when the shell it serves is replaced, the
//! session ends, or the server dies.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long slirp4netns may take to configure the interface.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Descriptor numbers in slirp4netns.
const EXIT_FD: i32 = 3;
const READY_FD: i32 = 4;
const USERNS_FD: i32 = 5;
/// `NS_GET_USERNS` from <linux/nsfs.h>: the user namespace owning a namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;

/// A running slirp4netns for one network namespace; stopped on drop.
#[derive(Debug)]
pub struct Egress {
    child: Child,
    /// Closing it tells slirp4netns to exit.
    exit: Option<OwnedFd>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Egress {
    /// Connects the network namespace of host process `pid` to the outside,
    /// running `slirp4netns` in the cgroup whose `cgroup.procs` files are
    /// `procs`.
    pub fn connect(slirp: &Path, pid: i32, procs: Vec<std::ffi::CString>) -> io::Result<Self> {
        // slirp4netns joins a user namespace before the network namespace; by
        // default the process's own, but bubblewrap nests that one inside the
        // namespace that owns the network, where joining gives no right to it.
        let userns = network_owner(pid)?;
        let (exit_read, exit_write) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        let mut command = Command::new(slirp);
        command
            .args([
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
            ])
            .arg(format!("--exit-fd={EXIT_FD}"))
            .arg(format!("--ready-fd={READY_FD}"))
            .arg(format!("--userns-path=/proc/self/fd/{USERNS_FD}"))
            .arg(pid.to_string())
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let (exit_fd, ready_fd, userns_fd) = (
            exit_read.as_raw_fd(),
            ready_write.as_raw_fd(),
            userns.as_raw_fd(),
        );
        // SAFETY: only open/write/close/dup2, all async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                for file in &procs {
                    let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                // Copies above the targets first, so that moving one cannot
                // overwrite the other.
                let targets = [
                    (exit_fd, EXIT_FD),
                    (ready_fd, READY_FD),
                    (userns_fd, USERNS_FD),
                ];
                let mut high = [0; 3];
                for (i, &(source, _)) in targets.iter().enumerate() {
                    high[i] = libc::fcntl(source, libc::F_DUPFD_CLOEXEC, 10);
                    if high[i] < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                for (i, &(_, target)) in targets.iter().enumerate() {
                    if libc::dup2(high[i], target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop((exit_read, ready_write, userns));
        let mut egress = Self {
            child,
            exit: Some(exit_write),
        };
        if let Err(e) = wait_ready(ready_read) {
            egress.stop();
            let mut stderr = String::new();
            if let Some(mut err) = egress.child.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            return Err(io::Error::other(format!(
                "slirp4netns did not configure the network: {e}: {}",
                stderr.trim()
            )));
        }
        Ok(egress)
    }

    fn stop(&mut self) {
        self.exit.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The user namespace that owns the network namespace of process `pid`.
fn network_owner(pid: i32) -> io::Result<OwnedFd> {
    let net = File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: NS_GET_USERNS on a namespace descriptor returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(net.as_raw_fd(), NS_GET_USERNS as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until slirp4netns writes to its ready descriptor.
fn wait_ready(ready: OwnedFd) -> io::Result<()> {
    let give_up = Instant::now() + READY_TIMEOUT;
    let mut file = File::from(ready);
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
        }
        let mut poll = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, left.as_millis().min(1000) as libc::c_int) };
        if poll.revents != 0 {
            let mut byte = [0u8; 1];
            return match file.read(&mut byte)? {
                0 => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "it exited before it was ready",
                )),
                _ => Ok(()),
            };
        }
    }
}
