//! Screenshots: the whole screen (MIT-SHM, else GetImage), the pointer drawn
//! in from XFixes' cursor image, encoded as PNG.

use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xfixes::{ConnectionExt as _, GetCursorImageReply};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

use crate::desktop::Desktop;
use crate::error::{VmError, VmResult};
use crate::shm::ShmSegment;

/// A captured screen.
pub struct Screenshot {
    /// The PNG file.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// PNG settings, chosen by measurement (see the crate's measure example): on
/// desktop screens fdeflate's fast mode with the Up filter takes 1-2 ms where
/// the crate's default (balanced, adaptive) takes 50-60 ms for a file about 3x smaller.
const PNG_FAST: (png::Compression, png::Filter) = (png::Compression::Fast, png::Filter::Up);
const PNG_SMALL: (png::Compression, png::Filter) =
    (png::Compression::Balanced, png::Filter::Adaptive);

impl Desktop {
    /// Captures the screen with the pointer and encodes it as PNG.
    pub fn screenshot(&mut self) -> VmResult<Screenshot> {
        let rgb = self.capture_rgb()?;
        let (compression, filter) = if self.png_small { PNG_SMALL } else { PNG_FAST };
        encode_png_with(
            &rgb,
            u32::from(self.width),
            u32::from(self.height),
            compression,
            filter,
        )
    }

    /// The screen as packed RGB, pointer included.
    pub fn capture_rgb(&mut self) -> VmResult<Vec<u8>> {
        let (w, h) = (self.width, self.height);
        // Ask for the cursor first so both replies travel in one round trip.
        let cursor = self.conn.xfixes_get_cursor_image()?;
        let via_shm = match &self.shm {
            Some(seg) => capture_shm(self, seg)?,
            None => None,
        };
        let refused = self.shm.is_some() && via_shm.is_none();
        let mut rgb = match via_shm {
            Some(rgb) => rgb,
            None => {
                let reply = self
                    .conn
                    .get_image(ImageFormat::Z_PIXMAP, self.root, 0, 0, w, h, !0)?
                    .reply()?;
                bgrx_to_rgb(&reply.data, usize::from(w) * usize::from(h))?
            }
        };
        let cursor = cursor.reply()?;
        draw_cursor(&mut rgb, usize::from(w), usize::from(h), &cursor);
        if refused {
            // The server refused shared memory once; use GetImage from now on.
            self.shm = None;
        }
        Ok(rgb)
    }
}

/// Captures through shared memory; `None` when the server refuses it.
fn capture_shm(d: &Desktop, seg: &ShmSegment) -> VmResult<Option<Vec<u8>>> {
    let (w, h) = (d.width, d.height);
    let z_pixmap = u8::from(ImageFormat::Z_PIXMAP);
    match d
        .conn
        .shm_get_image(d.root, 0, 0, w, h, !0, z_pixmap, seg.id(), 0)?
        .reply()
    {
        Ok(_) => Ok(Some(bgrx_to_rgb(
            seg.bytes(),
            usize::from(w) * usize::from(h),
        )?)),
        Err(x11rb::errors::ReplyError::X11Error(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Converts `pixels` 32-bit BGRX pixels to packed RGB.
fn bgrx_to_rgb(data: &[u8], pixels: usize) -> VmResult<Vec<u8>> {
    let data = data.get(..pixels * 4).ok_or_else(|| {
        VmError::Internal(format!(
            "the X server sent {} bytes for {pixels} pixels",
            data.len()
        ))
    })?;
    let mut rgb = vec![0u8; pixels * 3];
    for (out, px) in rgb.chunks_exact_mut(3).zip(data.chunks_exact(4)) {
        out[0] = px[2];
        out[1] = px[1];
        out[2] = px[0];
    }
    Ok(rgb)
}

/// Alpha-blends the cursor image (premultiplied ARGB) at its hotspot position.
fn draw_cursor(rgb: &mut [u8], w: usize, h: usize, c: &GetCursorImageReply) {
    let left = i32::from(c.x) - i32::from(c.xhot);
    let top = i32::from(c.y) - i32::from(c.yhot);
    let cw = usize::from(c.width);
    for (i, &argb) in c.cursor_image.iter().enumerate() {
        let a = argb >> 24;
        if a == 0 || cw == 0 {
            continue;
        }
        let (px, py) = (left + (i % cw) as i32, top + (i / cw) as i32);
        let (Ok(px), Ok(py)) = (usize::try_from(px), usize::try_from(py)) else {
            continue;
        };
        if px >= w || py >= h {
            continue;
        }
        let o = (py * w + px) * 3;
        let src = [(argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff];
        for (d, s) in rgb[o..o + 3].iter_mut().zip(src) {
            // Premultiplied "over": out = src + dst * (1 - alpha).
            let v = s + (u32::from(*d) * (255 - a) + 127) / 255;
            *d = v.min(255) as u8;
        }
    }
}

/// Encodes packed RGB as PNG with the fast settings.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> VmResult<Screenshot> {
    encode_png_with(rgb, width, height, PNG_FAST.0, PNG_FAST.1)
}

/// Encodes packed RGB as PNG with explicit settings (for measurements).
pub fn encode_png_with(
    rgb: &[u8],
    width: u32,
    height: u32,
    compression: png::Compression,
    filter: png::Filter,
) -> VmResult<Screenshot> {
    let fail = |e: png::EncodingError| VmError::Internal(format!("PNG encoding failed: {e}"));
    let mut out = Vec::with_capacity(rgb.len() / 16);
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(compression);
        enc.set_filter(filter);
        let mut writer = enc.write_header().map_err(fail)?;
        writer.write_image_data(rgb).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(Screenshot {
        png: out,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_blends_over_the_screen() {
        let mut rgb = vec![100u8; 4 * 4 * 3];
        // A 2x1 cursor at (1, 1), hotspot (0, 0): opaque red, then half-transparent white.
        let c = GetCursorImageReply {
            sequence: 0,
            length: 0,
            x: 1,
            y: 1,
            width: 2,
            height: 1,
            xhot: 0,
            yhot: 0,
            cursor_serial: 1,
            cursor_image: vec![0xffff_0000, 0x8080_8080],
        };
        draw_cursor(&mut rgb, 4, 4, &c);
        let px = |x: usize, y: usize| &rgb[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3];
        assert_eq!(px(1, 1), &[255, 0, 0]);
        assert_eq!(px(2, 1), &[128 + 50, 128 + 50, 128 + 50]);
        assert_eq!(px(0, 0), &[100, 100, 100]);
    }

    #[test]
    fn png_round_trips() {
        let rgb: Vec<u8> = (0..8 * 5 * 3).map(|i| (i * 7) as u8).collect();
        let shot = encode_png(&rgb, 8, 5).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(shot.png));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (8, 5));
        assert_eq!(&buf[..rgb.len()], &rgb[..]);
    }
}
