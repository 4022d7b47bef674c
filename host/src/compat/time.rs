//! Timestamps as the Python server wrote them: naive UTC `isoformat()`.

use std::time::SystemTime;

/// `2024-05-01T12:30:00.123456` (no zone suffix; the fraction is left out
/// when it is zero, as Python's `datetime.isoformat()` does).
pub fn iso(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_micros(t).to_string();
    let s = s.strip_suffix('Z').unwrap_or(&s);
    s.strip_suffix(".000000").unwrap_or(s).to_string()
}

pub fn now() -> String {
    iso(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn matches_python_isoformat() {
        let t = UNIX_EPOCH + Duration::new(1_714_566_600, 123_456_000);
        assert_eq!(super::iso(t), "2024-05-01T12:30:00.123456");
        let t = UNIX_EPOCH + Duration::new(1_714_566_600, 0);
        assert_eq!(super::iso(t), "2024-05-01T12:30:00");
    }
}
