//! Where a trajectory's files are: one directory per session under
//! `server.trajectory_dir`, named by the session id.
//!
//! ```text
//! <trajectory_dir>/<session_id>/
//!     trajectory.jsonl     the log: one JSON object per line (schema.rs)
//!     meta.json            who and when, rewritten when the session ends
//!     images/<sha256>.png  each distinct screenshot once, by content hash
//!     screen.mp4           the screen video, when the session asked for one
//! ```

use std::path::{Path, PathBuf};

use crate::core::error::{CoreError, CoreResult};

pub const LOG: &str = "trajectory.jsonl";
pub const META: &str = "meta.json";
pub const IMAGES: &str = "images";
pub const VIDEO: &str = "screen.mp4";

/// The directory of one session's trajectory.
pub fn session_dir(root: &Path, session_id: &str) -> PathBuf {
    root.join(session_id)
}

/// Checks a session id taken from a URL before it names a directory: the
/// characters session ids are made of (`session.rs`), so never `.` or `/`.
pub fn check_session_id(id: &str) -> CoreResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidParams(format!(
            "Parameter 'session_id' must be a session id (ASCII letters, digits, '_' and '-'), got \"{}\"",
            id.chars().take(60).collect::<String>()
        )))
    }
}

/// The file name of an image: `<64 hex>.png`.
pub fn image_file(hash: &str) -> String {
    format!("{hash}.png")
}

/// Checks an image file name taken from a URL.
pub fn check_image_name(name: &str) -> CoreResult<()> {
    let ok = name.strip_suffix(".png").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidParams(format!(
            "Parameter 'image' must be a stored image's name (<sha256 hex>.png), got \"{}\"",
            name.chars().take(80).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_session_ids_and_image_names_name_files() {
        assert!(check_session_id("bash_w1_001_0a1b2c3d").is_ok());
        for bad in ["", "..", "a/b", "a.b", "x\0"] {
            assert!(check_session_id(bad).is_err(), "{bad:?}");
        }
        let hash = "0123456789abcdef".repeat(4);
        assert!(check_image_name(&image_file(&hash)).is_ok());
        for bad in [
            "x.png",
            "../a.png",
            &format!("{hash}.jpg"),
            &hash.to_uppercase(),
        ] {
            assert!(check_image_name(bad).is_err(), "{bad:?}");
        }
    }
}
