//! A shared-memory segment (MIT-SHM 1.2, memfd passed to the server) that
//! screenshots are written into, saving the copy through the socket.

use std::os::fd::{FromRawFd, OwnedFd};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::shm::{self, ConnectionExt as _};

use crate::connection::XConn;
use crate::error::{VmError, VmResult};

/// A memfd mapped into this process and attached to the X server.
pub struct ShmSegment {
    seg: shm::Seg,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (nothing else holds the
// pointer) and is only read through `&self`; moving it between threads is fine.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    /// A segment of `len` bytes attached to the server, or `None` when the
    /// server has no MIT-SHM 1.2 or refuses it (screenshots then use GetImage).
    pub fn attach(conn: &XConn, len: usize) -> VmResult<Option<Self>> {
        if conn
            .extension_information(shm::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Ok(None);
        }
        let v = conn.shm_query_version()?.reply()?;
        if (v.major_version, v.minor_version) < (1, 2) {
            return Ok(None);
        }
        let Some((fd, ptr)) = map_memfd(len) else {
            return Ok(None);
        };
        let mut segment = Self { seg: 0, ptr, len };
        let seg = conn.generate_id()?;
        // The server writes the image into the segment, so it must not be read-only.
        match conn.shm_attach_fd(seg, fd, false)?.check() {
            Ok(()) => {
                segment.seg = seg;
                Ok(Some(segment))
            }
            Err(x11rb::errors::ReplyError::X11Error(_)) => Ok(None),
            Err(e) => Err(VmError::from(e)),
        }
    }

    /// The segment id to name in ShmGetImage.
    pub fn id(&self) -> shm::Seg {
        self.seg
    }

    /// The segment's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` bytes until drop; the server
        // writes only while a ShmGetImage is in flight, and callers read after its reply.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map_memfd`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Creates a memfd of `len` bytes and maps it shared and readable.
fn map_memfd(len: usize) -> Option<(OwnedFd, *mut u8)> {
    // SAFETY: memfd_create with a static NUL-terminated name; the fd is owned below.
    let raw = unsafe { libc::memfd_create(c"agentflow-vm-screen".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = libc::off_t::try_from(len).ok()?;
    // SAFETY: plain system calls on our own descriptor; mmap's result is checked.
    unsafe {
        if libc::ftruncate(raw, size) != 0 {
            return None;
        }
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            raw,
            0,
        );
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some((fd, ptr.cast()))
    }
}
