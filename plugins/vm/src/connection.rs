//! The X connection of a session: x11rb's Rust connection over a Unix socket
//! whose every wait is bounded, so a hung or stopped X server turns into an
//! error instead of a call that never returns.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use x11rb::rust_connection::{DefaultStream, PollMode, RustConnection, Stream};
use x11rb::utils::RawFdContainer;

use crate::error::{VmError, VmResult};
use crate::sys;
use crate::xauth::{self, Cookie};

/// The connection type every module uses.
pub type XConn = RustConnection<TimedStream>;

/// x11rb's default stream with a timeout on every poll.
#[derive(Debug)]
pub struct TimedStream {
    inner: DefaultStream,
    timeout: Duration,
}

impl Stream for TimedStream {
    fn poll(&self, mode: PollMode) -> io::Result<()> {
        let mut events = 0;
        if mode.readable() {
            events |= libc::POLLIN;
        }
        if mode.writable() {
            events |= libc::POLLOUT;
        }
        if sys::poll_fd(self.inner.as_raw_fd(), events, self.timeout)? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the X server did not answer within {:?}", self.timeout),
            ))
        }
    }

    fn read(&self, buf: &mut [u8], fd_storage: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.read(buf, fd_storage)
    }

    fn write(&self, buf: &[u8], fds: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.write(buf, fds)
    }

    fn write_vectored(
        &self,
        bufs: &[IoSlice<'_>],
        fds: &mut Vec<RawFdContainer>,
    ) -> io::Result<usize> {
        self.inner.write_vectored(bufs, fds)
    }
}

/// Connects to display `:display` through its Unix socket, presenting the
/// session's cookie.
pub fn connect(display: u32, cookie: &Cookie, timeout: Duration) -> VmResult<XConn> {
    let path = format!("/tmp/.X11-unix/X{display}");
    let socket = UnixStream::connect(&path)
        .map_err(|e| VmError::Internal(format!("cannot connect to the X server at {path}: {e}")))?;
    let (inner, _peer) = DefaultStream::from_unix_stream(socket)
        .map_err(|e| VmError::Internal(format!("cannot set up the X socket {path}: {e}")))?;
    RustConnection::connect_to_stream_with_auth_info(
        TimedStream { inner, timeout },
        0,
        xauth::PROTOCOL.as_bytes().to_vec(),
        cookie.bytes().to_vec(),
    )
    .map_err(|e| {
        VmError::Internal(format!(
            "the X server on :{display} refused the connection: {e}"
        ))
    })
}
