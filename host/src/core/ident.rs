//! Identifiers clients send (`worker_id`, `resource_type`, `action`,
//! `custom_name`, plugin names): checked once, where they enter, so that logs,
//! session names and plugins only ever see safe text. [`Id`] is the checked
//! form: a request type with an `Id` field cannot be decoded from a bad one,
//! and the decoder's error names the field.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::error::{CoreError, CoreResult};

/// The rule, stated in every error message.
pub const RULE: &str = "1–128 characters of ASCII letters, digits and . _ - : @";

/// An identifier that follows [`RULE`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id(String);

impl Id {
    /// Checks `value` as the field `field`.
    pub fn parse(field: &str, value: &str) -> CoreResult<Id> {
        Id::try_from(value.to_string())
            .map_err(|why| CoreError::InvalidParams(format!("Parameter '{field}' {why}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for Id {
    type Error = String;

    /// The error completes "Parameter 'x' …".
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
        if ok {
            return Ok(Id(value));
        }
        let shown: String = value.chars().take(40).collect();
        let more = if value.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        Err(format!("must be {RULE}, got \"{shown}\"{more}"))
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one identifier field.
pub fn check(field: &str, value: &str) -> CoreResult<()> {
    Id::parse(field, value).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_only() {
        assert!(check("worker_id", "w-1.a_b:c@d").is_ok());
        for bad in ["", "a b", "x/y", "é", &"a".repeat(129)] {
            let e = check("worker_id", bad).unwrap_err().to_string();
            assert!(e.contains("'worker_id'") && e.contains("1–128"), "{e}");
        }
    }

    #[test]
    fn a_request_with_a_bad_id_does_not_decode() {
        #[derive(Deserialize, Debug)]
        struct Body {
            #[allow(dead_code)]
            worker_id: Id,
        }
        assert!(serde_json::from_str::<Body>(r#"{"worker_id": "w1"}"#).is_ok());
        let e = serde_json::from_str::<Body>(r#"{"worker_id": "a b"}"#).unwrap_err();
        assert!(e.to_string().contains("1–128"), "{e}");
    }
}
