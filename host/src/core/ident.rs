//! Identifiers clients send (`worker_id`, `resource_type`, `action`,
//! `custom_name`): checked before they reach logs, names or plugins.

use super::error::{CoreError, CoreResult};

/// The rule, stated in every error message.
pub const RULE: &str = "1–128 characters of ASCII letters, digits and . _ - : @";

/// Checks one identifier field.
pub fn check(field: &str, value: &str) -> CoreResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        let shown: String = value.chars().take(40).collect();
        Err(CoreError::InvalidParams(format!(
            "Parameter '{field}' must be {RULE}, got \"{shown}\"{}",
            if value.chars().count() > 40 {
                "…"
            } else {
                ""
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accepts_the_documented_alphabet_only() {
        assert!(super::check("worker_id", "w-1.a_b:c@d").is_ok());
        for bad in ["", "a b", "x/y", "é", &"a".repeat(129)] {
            let e = super::check("worker_id", bad).unwrap_err().to_string();
            assert!(e.contains("'worker_id'") && e.contains("1–128"), "{e}");
        }
    }
}
