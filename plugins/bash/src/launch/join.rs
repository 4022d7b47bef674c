//! Joining the sandbox of a running shell: how `bash:start` runs a program
//! in the very sandbox of the session's shell (its files, `/tmp`, network,
//! processes and cgroup) rather than a new one, which is all bubblewrap
//! builds.
//!
//! The child does what `nsenter` does, then what bubblewrap does last:
//!
//! * on the host side ([`sandbox::Entry`], as for the shell): join the
//!   session's cgroup, switch to the sandbox's host user, `no_new_privs`;
//! * join the shell's namespaces (`setns`), in the order the kernel's
//!   permission checks allow: the outermost of the shell's user namespaces
//!   below ours first (bubblewrap nests one more for `--disable-userns`, and
//!   the mount, PID and network namespaces belong to the outer one), then
//!   mount, PID, network, IPC, UTS and cgroup, then the inner user
//!   namespaces down to the shell's. Those the host shares with the sandbox
//!   (the network with `network = "host"`) are left alone;
//! * fork (not dumpable until `execve`, so nothing in the sandbox can
//!   ptrace it while it still holds capabilities there): joining a PID
//!   namespace only applies to children. The fork uses
//!   `CLONE_PARENT`, so the program is the host's child (a pidfd, its exit
//!   status) while living in the sandbox's PID namespace, where the shell
//!   (PID 1) reaps its orphans and ends it with the session;
//! * in the program's process: as bubblewrap does for `--cap-drop ALL` and
//!   `--seccomp`, drop every capability (bounding, ambient, inheritable,
//!   permitted, effective) and apply the sandbox's seccomp filter, whose
//!   bytes come from the sandbox crate exactly as bubblewrap gets them.
//!
//! The namespaces are opened in the parent through `/proc/<shell>/ns/*` and
//! checked against the shell's pidfd afterwards: they cannot be those of a
//! process that reused the shell's pid.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libc::c_int;
use sandbox::Entry;

use super::child::Step;
use super::JoinTarget;
use crate::process::send_signal;

/// The namespaces besides the user namespace, with their `setns` types.
const KINDS: [(&str, c_int); 6] = [
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// More nested user namespaces than any sandbox makes: a loop guard.
const MAX_USER_DEPTH: usize = 8;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Everything the child needs to join a running sandbox, prepared in the parent.
pub(crate) struct Joining {
    /// The host-side steps (cgroup, identity, no_new_privs).
    pub(super) entry: Entry,
    /// Namespaces to join, in order.
    namespaces: Vec<(OwnedFd, c_int)>,
    /// The sandbox's seccomp filter.
    filter: Vec<libc::sock_filter>,
}

impl Joining {
    /// Opens the namespaces of `target` and reads the sandbox's seccomp
    /// filter (`seccomp`: a pipe holding it, as handed to bubblewrap).
    pub(super) fn prepare(target: &JoinTarget, entry: Entry, seccomp: OwnedFd) -> io::Result<Self> {
        let namespaces = namespaces_of(target.pid)?;
        // Alive after its namespaces were opened: they were the shell's.
        send_signal(target.pidfd.as_fd(), 0)
            .map_err(|_| io::Error::other("the session's shell has exited"))?;
        Ok(Self {
            entry,
            namespaces,
            filter: read_filter(seccomp)?,
        })
    }

    /// Paths to try for `program` inside the sandbox: its own path (the
    /// host's `/usr` is the sandbox's), then its name in each directory of
    /// the sandbox's `PATH` (an image may keep it elsewhere).
    pub(super) fn programs(program: &Path) -> Vec<PathBuf> {
        let mut paths = vec![program.to_path_buf()];
        if let Some(name) = program.file_name() {
            for dir in std::env::split_paths(sandbox::PATH) {
                let path = dir.join(name);
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        paths
    }

    /// Joins the namespaces, in order. In the child; async-signal-safe.
    pub(super) unsafe fn enter_namespaces(&self) -> Result<(), c_int> {
        // Between its fork and execve the program's process is visible in
        // the sandbox while it still holds capabilities there: nothing in
        // the sandbox may ptrace it. Inherited by the fork; execve resets it.
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(errno());
        }
        for (fd, kind) in &self.namespaces {
            if libc::setns(fd.as_raw_fd(), *kind) != 0 {
                return Err(errno());
            }
        }
        Ok(())
    }

    /// Drops every capability and applies the seccomp filter, as bubblewrap
    /// does for the shell. In the program's process, right before `execve`;
    /// async-signal-safe.
    pub(super) unsafe fn confine(&self) -> Result<(), (Step, c_int)> {
        drop_capabilities().map_err(|e| (Step::DropCapabilities, e))?;
        let program = libc::sock_fprog {
            len: self.filter.len() as libc::c_ushort,
            filter: self.filter.as_ptr().cast_mut(),
        };
        // no_new_privs is set (Entry), so no privilege is needed for this.
        let rc = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &program as *const libc::sock_fprog,
        );
        if rc != 0 {
            return Err((Step::Seccomp, errno()));
        }
        Ok(())
    }
}

/// The namespaces of process `pid` to join, in the order they can be
/// joined (see the module docs).
fn namespaces_of(pid: i32) -> io::Result<Vec<(OwnedFd, c_int)>> {
    let open = |who: &str, kind: &str| -> io::Result<OwnedFd> {
        Ok(File::open(format!("/proc/{who}/ns/{kind}"))?.into())
    };
    let pid = pid.to_string();
    // The shell's user namespace and its ancestors up to (not including) ours.
    let ours = identity(&open("self", "user")?)?;
    let mut users = Vec::new();
    let mut user = open(&pid, "user")?;
    while identity(&user)? != ours {
        if users.len() >= MAX_USER_DEPTH {
            return Err(io::Error::other(
                "the shell's user namespace is not below the server's",
            ));
        }
        let parent = parent_namespace(&user)?;
        users.push(user);
        user = parent;
    }
    users.reverse(); // outermost first
    let mut users = users.into_iter();
    let mut ordered: Vec<(OwnedFd, c_int)> = Vec::new();
    if let Some(outer) = users.next() {
        ordered.push((outer, libc::CLONE_NEWUSER));
    }
    for (kind, flag) in KINDS {
        let theirs = open(&pid, kind)?;
        if identity(&theirs)? != identity(&open("self", kind)?)? {
            ordered.push((theirs, flag));
        }
    }
    ordered.extend(users.map(|user| (user, libc::CLONE_NEWUSER)));
    Ok(ordered)
}

/// What tells namespaces apart: the device and inode of their nsfs file.
fn identity(namespace: &OwnedFd) -> io::Result<(u64, u64)> {
    let meta = File::from(namespace.try_clone()?).metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// The parent of a user namespace (`NS_GET_PARENT`).
fn parent_namespace(user: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_PARENT takes no argument and returns a new descriptor.
    let fd = unsafe { libc::ioctl(user.as_raw_fd(), libc::NS_GET_PARENT) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The filter's `struct sock_filter`s from the pipe the sandbox filled.
fn read_filter(seccomp: OwnedFd) -> io::Result<Vec<libc::sock_filter>> {
    let mut bytes = Vec::new();
    File::from(seccomp).read_to_end(&mut bytes)?;
    if bytes.is_empty() || bytes.len() % 8 != 0 || bytes.len() / 8 > usize::from(u16::MAX) {
        return Err(io::Error::other(format!(
            "the sandbox's seccomp filter has an unexpected size ({} bytes)",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// Empties every capability set. The bounding set goes first: dropping from
/// it needs CAP_SETPCAP, which the last step removes. Async-signal-safe.
unsafe fn drop_capabilities() -> Result<(), c_int> {
    for cap in 0..64 {
        if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
            match errno() {
                libc::EINVAL => break, // past the kernel's last capability
                e => return Err(e),
            }
        }
    }
    let cleared = libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    );
    if cleared != 0 {
        return Err(errno());
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let none = [
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    if libc::syscall(libc::SYS_capset, &header as *const Header, none.as_ptr()) != 0 {
        return Err(errno());
    }
    Ok(())
}

fn errno() -> c_int {
    // SAFETY: errno location is thread-local and always valid.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_tried_at_their_path_then_on_the_sandbox_path() {
        let paths = Joining::programs(Path::new("/opt/bash/bin/bash"));
        assert_eq!(paths[0], Path::new("/opt/bash/bin/bash"));
        assert!(paths.contains(&PathBuf::from("/usr/bin/bash")));
        let paths = Joining::programs(Path::new("/usr/bin/bash"));
        assert_eq!(
            paths
                .iter()
                .filter(|p| *p == Path::new("/usr/bin/bash"))
                .count(),
            1
        );
    }
}
