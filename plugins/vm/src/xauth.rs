//! The X authorization of a session: a random MIT-MAGIC-COOKIE-1 in an
//! Xauthority file of the session's own. Xvfb reads it (`-auth`), the
//! session's programs find it through `XAUTHORITY`, and the plugin presents
//! it when it connects. Without it any local user could connect to a
//! session's display, watch its screen and type into it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The authorization protocol the cookie is for.
pub const PROTOCOL: &str = "MIT-MAGIC-COOKIE-1";

/// The Xauthority family that matches any address (libXau's `FamilyWild`).
const FAMILY_WILD: u16 = 0xffff;

/// A session's secret.
pub struct Cookie([u8; 16]);

impl Cookie {
    /// 16 bytes from the kernel's random source.
    pub fn generate() -> io::Result<Self> {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            let rest = &mut bytes[filled..];
            // SAFETY: the pointer and length describe `rest`, which outlives the call.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            filled += n as usize;
        }
        Ok(Self(bytes))
    }

    /// The cookie's bytes, as sent to the X server.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Writes an Xauthority file (mode 0600) with one entry for any address
    /// and any display number: the display is only known once Xvfb has
    /// started, and the file is the session's alone.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        let mut entry = Vec::with_capacity(64);
        entry.extend_from_slice(&FAMILY_WILD.to_be_bytes());
        for field in [&b""[..], b"", PROTOCOL.as_bytes(), &self.0] {
            let len = u16::try_from(field.len()).map_err(io::Error::other)?;
            entry.extend_from_slice(&len.to_be_bytes());
            entry.extend_from_slice(field);
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // No fsync: Xvfb reads it from the page cache, and it dies with the session.
        file.write_all(&entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_one_wildcard_entry_readable_only_by_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let path =
            std::env::temp_dir().join(format!("agentflow-xauth-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let cookie = Cookie::generate().expect("random bytes");
        cookie.write_file(&path).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        let mut expected = vec![0xff, 0xff, 0, 0, 0, 0, 0, 18];
        expected.extend_from_slice(b"MIT-MAGIC-COOKIE-1");
        expected.extend_from_slice(&[0, 16]);
        expected.extend_from_slice(cookie.bytes());
        assert_eq!(bytes, expected);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(Cookie::generate().expect("random").bytes(), cookie.bytes());
        let _ = std::fs::remove_file(&path);
    }
}
