use std::time::SystemTime;

/// RFC 3339 UTC with a `Z` suffix, millisecond precision.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
