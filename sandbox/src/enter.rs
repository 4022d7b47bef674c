//! What a freshly forked child does before it executes bubblewrap: join the
//! session's cgroup (while it still may), give up the server's identity, and
//! ask to be killed with its parent.
//!
//! It runs between `fork` and `exec` in a copy of a multi-threaded process, so
//! it only makes system calls on data prepared before the fork.

use std::ffi::CString;
use std::io;

/// The steps of [`Entry::enter`], as reported on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStep {
    /// Writing to the session group's `cgroup.procs`.
    JoinCgroup,
    /// `setgroups`/`setgid`/`setuid` to the sandbox's host identity.
    DropIdentity,
    /// `PR_SET_NO_NEW_PRIVS` and `PR_SET_PDEATHSIG`.
    Prctl,
}

impl EntryStep {
    /// What the step does, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::JoinCgroup => "joining the session's cgroup",
            Self::DropIdentity => "switching to the sandbox's user (setuid)",
            Self::Prctl => "setting no_new_privs and the parent-death signal",
        }
    }
}

/// Prepared in the parent, run in the child.
#[derive(Debug)]
pub struct Entry {
    pub(crate) procs: Vec<CString>,
    /// `(uid, gid)` to switch to; `None` when the server is not root.
    pub(crate) identity: Option<(u32, u32)>,
}

impl Entry {
    /// Joins the cgroup, drops to the sandbox's identity, sets no_new_privs and
    /// re-arms `PR_SET_PDEATHSIG(SIGKILL)` (a change of credentials clears it).
    ///
    /// # Safety
    /// Call only in a forked child before `exec`: it changes the calling
    /// process's cgroup and credentials. It is async-signal-safe.
    pub unsafe fn enter(&self) -> Result<(), (EntryStep, io::Error)> {
        let last = |step| (step, io::Error::last_os_error());
        for procs in &self.procs {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(last(EntryStep::JoinCgroup));
            }
            let written = libc::write(fd, c"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(last(EntryStep::JoinCgroup));
            }
        }
        if let Some((uid, gid)) = self.identity {
            // Raw system calls, not libc's wrappers: glibc's setuid family
            // takes its thread-list lock to change every thread's identity.
            // In a child cloned from the multi-threaded server, that lock may
            // have been held by another thread at the moment of the clone, and
            // the child would wait for it forever (a session creation hung
            // until the host's timeout this way).
            if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
            {
                return Err(last(EntryStep::DropIdentity));
            }
        }
        let parent = libc::getppid();
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
        {
            return Err(last(EntryStep::Prctl));
        }
        // The parent may have died before the signal was armed.
        if libc::getppid() != parent {
            libc::_exit(127);
        }
        Ok(())
    }
}
