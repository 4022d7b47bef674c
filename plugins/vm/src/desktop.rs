//! A session's live X connection and what the plugin knows about the screen.
//! Input (input.rs), capture (capture.rs) and the window tree (tree.rs) are
//! further `impl Desktop` blocks.

use std::time::Duration;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, ImageOrder, Mapping, Window};
use x11rb::protocol::{xfixes, xtest, Event};

use crate::connection::{self, XConn};
use crate::error::{VmError, VmResult};
use crate::keymap::Keymap;
use crate::shm::ShmSegment;
use crate::xauth::Cookie;

/// The X side of a session.
pub struct Desktop {
    pub(crate) conn: XConn,
    pub(crate) root: Window,
    pub(crate) width: u16,
    pub(crate) height: u16,
    pub(crate) keymap: Keymap,
    /// Shared memory for screenshots; `None` when MIT-SHM is unavailable.
    pub(crate) shm: Option<ShmSegment>,
    /// Screenshots favour small files over speed.
    pub(crate) png_small: bool,
}

impl Desktop {
    /// Connects to display `:display` and checks the extensions the tools need.
    pub fn connect(
        display: u32,
        cookie: &Cookie,
        timeout: Duration,
        png_small: bool,
    ) -> VmResult<Self> {
        let conn = connection::connect(display, cookie, timeout)?;
        for ext in [xtest::X11_EXTENSION_NAME, xfixes::X11_EXTENSION_NAME] {
            if conn.extension_information(ext)?.is_none() {
                return Err(VmError::Internal(format!(
                    "the X server on :{display} lacks the {ext} extension"
                )));
            }
        }
        // XFixes answers nothing before the client announced its version.
        conn.xfixes_query_version(5, 0)?.reply()?;
        let screen = conn
            .setup()
            .roots
            .first()
            .ok_or_else(|| VmError::Internal("the X server reports no screen".into()))?;
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        check_pixel_format(&conn, screen.root_depth)?;
        let keymap = Keymap::load(&conn)?;
        let shm = ShmSegment::attach(&conn, usize::from(width) * usize::from(height) * 4)?;
        Ok(Self {
            conn,
            root,
            width,
            height,
            keymap,
            shm,
            png_small,
        })
    }

    /// Screen width and height.
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// Keycodes currently borrowed for keysyms the keymap lacks, and how many
    /// spare keycodes there are in all.
    pub fn borrowed_keycodes(&self) -> (usize, usize) {
        (self.keymap.borrowed(), self.keymap.spare_count())
    }

    /// Whether screenshots use MIT-SHM.
    pub fn uses_shm(&self) -> bool {
        self.shm.is_some()
    }

    /// Checks that (`x`, `y`) is on the screen; the names are the params' names.
    pub fn point(&self, (xn, x): (&str, i64), (yn, y): (&str, i64)) -> VmResult<(i16, i16)> {
        let check = |name: &str, v: i64, limit: u16| {
            if (0..i64::from(limit)).contains(&v) {
                i16::try_from(v).map_err(|_| VmError::invalid(format!("{name}={v} is too large")))
            } else {
                Err(VmError::invalid(format!(
                    "{name}={v} is outside the screen ({name} must be in 0..={}; the screen is {}x{})",
                    i64::from(limit) - 1,
                    self.width,
                    self.height
                )))
            }
        };
        Ok((check(xn, x, self.width)?, check(yn, y, self.height)?))
    }

    /// Waits until the server has processed every request sent so far (and
    /// surfaces errors of requests that have no reply).
    pub fn sync(&self) -> VmResult<()> {
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Reads queued events; a keyboard MappingNotify (another client changed
    /// the keymap, or the plugin did) re-reads the keymap.
    pub fn drain_events(&mut self) -> VmResult<()> {
        let mut remap = false;
        while let Some(ev) = self.conn.poll_for_event()? {
            if let Event::MappingNotify(m) = ev {
                remap |= m.request == Mapping::KEYBOARD;
            }
        }
        if remap {
            self.keymap.reload(&self.conn)?;
        }
        Ok(())
    }

    /// Waits until a window manager runs: it has set `_NET_SUPPORTING_WM_CHECK`
    /// (EWMH; done once it is ready to manage windows), or has owned the
    /// `WM_S0` selection (ICCCM; taken early in its startup) for a while.
    /// Programs mapped while a window manager is still starting can stay
    /// unmanaged for seconds, so they are started after this. `false` on timeout.
    pub fn wait_for_window_manager(&self, timeout: Duration) -> VmResult<bool> {
        /// How long a WM_S0 owner without EWMH gets to finish starting.
        const ICCCM_SETTLE: Duration = Duration::from_millis(500);
        let wm_s0 = self.conn.intern_atom(false, b"WM_S0")?.reply()?.atom;
        let check = self
            .conn
            .intern_atom(false, b"_NET_SUPPORTING_WM_CHECK")?
            .reply()?
            .atom;
        let start = std::time::Instant::now();
        let mut owned_since = None;
        loop {
            let owner = self.conn.get_selection_owner(wm_s0)?;
            let prop = self
                .conn
                .get_property(false, self.root, check, AtomEnum::WINDOW, 0, 1)?;
            if !prop.reply()?.value.is_empty() {
                return Ok(true);
            }
            if owner.reply()?.owner != x11rb::NONE {
                let since = *owned_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= ICCCM_SETTLE {
                    return Ok(true);
                }
            }
            if start.elapsed() >= timeout {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends buffered requests without waiting.
    pub fn flush(&self) -> VmResult<()> {
        self.conn.flush()?;
        Ok(())
    }
}

/// Screenshots read 32-bit little-endian pixels with 8-bit channels; Xvfb at
/// depth 24 always gives that, anything else is refused up front.
fn check_pixel_format(conn: &XConn, depth: u8) -> VmResult<()> {
    let setup = conn.setup();
    let bpp = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == depth)
        .map(|f| f.bits_per_pixel);
    let visual = setup.roots.first().and_then(|s| {
        s.allowed_depths
            .iter()
            .flat_map(|d| d.visuals.iter())
            .find(|v| v.visual_id == s.root_visual)
    });
    let masks = visual.map(|v| (v.red_mask, v.green_mask, v.blue_mask));
    if depth == 24
        && bpp == Some(32)
        && setup.image_byte_order == ImageOrder::LSB_FIRST
        && masks == Some((0xff_0000, 0xff00, 0xff))
    {
        Ok(())
    } else {
        Err(VmError::Internal(format!(
            "unsupported pixel format: depth {depth}, {bpp:?} bits per pixel, masks {masks:?}"
        )))
    }
}
