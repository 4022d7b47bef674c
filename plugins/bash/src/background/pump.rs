//! The thread that keeps a session's background processes flowing: it reads
//! their stdout and stderr as they write (a process must never block on a
//! full pipe because nobody called `output`) into their streams, and notices
//! when they exit.
//!
//! One thread per session that started a background process, waiting on
//! every pipe and pidfd at once with `poll`, plus a wake-up pipe through
//! which new processes and the session's end are announced. Bytes are read
//! without the table's lock and added under it, once per round.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::Shared;
use crate::fd::{poll, poll_fd, set_nonblocking};
use crate::output::bytes_in_pipe;
use crate::process::pipe;

/// Most bytes taken from one pipe per round, so that one chatty process
/// cannot keep the others waiting.
const ROUND_BYTES: usize = 1024 * 1024;
/// Size of one read.
const CHUNK: usize = 64 * 1024;
/// A round ends at the latest after this, even with nothing to do (a
/// safety net: every change also writes to the wake-up pipe).
const IDLE: Duration = Duration::from_secs(1);

/// What the pump watches of one process.
#[derive(Debug)]
pub(super) struct Watch {
    id: String,
    /// stdout and stderr, until end-of-file.
    pipes: [Option<File>; 2],
    /// The process's pidfd (a copy), until it exited.
    pidfd: Option<OwnedFd>,
}

impl Watch {
    /// Watches process `id` through its output pipes (nonblocking) and a
    /// copy of its pidfd.
    pub(super) fn new(id: String, stdout: File, stderr: File, pidfd: OwnedFd) -> Self {
        Self {
            id,
            pipes: [Some(stdout), Some(stderr)],
            pidfd: Some(pidfd),
        }
    }

    fn is_done(&self) -> bool {
        self.pipes.iter().all(Option::is_none) && self.pidfd.is_none()
    }
}

/// What one round found for one process.
#[derive(Debug)]
pub(super) struct Update {
    pub(super) id: String,
    /// Bytes read from stdout and stderr.
    pub(super) data: [Vec<u8>; 2],
    /// The stream reached end-of-file.
    pub(super) closed: [bool; 2],
    /// The process exited (all it wrote is in `data` or was read before).
    pub(super) exited: bool,
}

/// The running pump of one session.
#[derive(Debug)]
pub(super) struct Pump {
    thread: JoinHandle<()>,
    wake: File,
}

impl Pump {
    /// Starts the thread; it ends once the table is closed and it is woken.
    pub(super) fn start(shared: Arc<Shared>) -> io::Result<Self> {
        let (wake_reader, wake) = pipe()?;
        set_nonblocking(&wake_reader)?;
        set_nonblocking(&wake)?;
        let thread = thread::Builder::new()
            .name("agentflow-bash-background".into())
            .spawn(move || run(&shared, wake_reader))?;
        Ok(Self { thread, wake })
    }

    /// Makes the thread look at the table again (new processes, the end).
    pub(super) fn wake(&self) {
        // A full pipe means a wake-up is pending already.
        let _ = (&self.wake).write(&[1]);
    }

    /// Wakes the thread (the table must be closed) and waits for it to end.
    pub(super) fn stop(self) {
        self.wake();
        let _ = self.thread.join();
    }
}

fn run(shared: &Shared, mut wake: File) {
    let mut watches: Vec<Watch> = Vec::new();
    loop {
        {
            let mut table = shared.lock();
            if table.closed {
                return;
            }
            watches.append(&mut table.new_watches);
        }
        let mut fds = vec![poll_fd(wake.as_fd(), libc::POLLIN)];
        for watch in &watches {
            for pipe in &watch.pipes {
                fds.push(poll_entry(pipe.as_ref().map(AsFd::as_fd)));
            }
            fds.push(poll_entry(watch.pidfd.as_ref().map(AsFd::as_fd)));
        }
        if poll(&mut fds, IDLE).is_err() {
            // Cannot happen with valid descriptors; do not spin if it does.
            thread::sleep(Duration::from_millis(100));
            continue;
        }
        if fds[0].revents != 0 {
            let _ = wake.read(&mut [0u8; 64]);
        }
        let ready = |i: usize| fds[i].revents != 0;
        let mut updates = Vec::new();
        for (i, watch) in watches.iter_mut().enumerate() {
            let base = 1 + 3 * i;
            if let Some(update) = pump_one(watch, [ready(base), ready(base + 1)], ready(base + 2)) {
                updates.push(update);
            }
        }
        watches.retain(|watch| !watch.is_done());
        if !updates.is_empty() {
            let mut table = shared.lock();
            for update in updates {
                table.apply(update);
            }
            drop(table);
            shared.changed.notify_all();
        }
    }
}

/// Reads what process `watch` wrote and notes its exit.
fn pump_one(watch: &mut Watch, readable: [bool; 2], exited: bool) -> Option<Update> {
    let mut update = Update {
        id: watch.id.clone(),
        data: [Vec::new(), Vec::new()],
        closed: [false, false],
        exited,
    };
    for (i, slot) in watch.pipes.iter_mut().enumerate() {
        let Some(pipe) = slot else { continue };
        if !readable[i] && !exited {
            continue;
        }
        // Once it exited, everything it wrote is queued: take exactly that
        // (a child it left behind may go on writing; later rounds read it).
        let budget = match exited {
            true => bytes_in_pipe(pipe).unwrap_or(0).max(1),
            false => ROUND_BYTES,
        };
        if read_some(pipe, &mut update.data[i], budget) {
            update.closed[i] = true;
            *slot = None;
        }
    }
    if exited {
        watch.pidfd = None;
    }
    let changed =
        exited || update.closed.contains(&true) || update.data.iter().any(|d| !d.is_empty());
    changed.then_some(update)
}

/// Reads up to `budget` bytes that are there now. True at end-of-file (or a
/// read error, which would otherwise repeat every round).
fn read_some(pipe: &mut File, into: &mut Vec<u8>, budget: usize) -> bool {
    let mut chunk = [0u8; CHUNK];
    let mut left = budget;
    while left > 0 {
        match pipe.read(&mut chunk[..left.min(CHUNK)]) {
            Ok(0) => return true,
            Ok(n) => {
                into.extend_from_slice(&chunk[..n]);
                left -= n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

/// A `poll` entry, skipped when there is nothing to watch.
fn poll_entry(fd: Option<BorrowedFd<'_>>) -> libc::pollfd {
    match fd {
        Some(fd) => poll_fd(fd, libc::POLLIN),
        None => libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        },
    }
}
