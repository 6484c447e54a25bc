//! Text the API sends or accepts that must not end up in logs: user data (which carries runner
//! registration tokens), Jupyter tokens and URLs, and generated private keys.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A string whose `Debug` and `Display` never show its content.
///
/// Use [`Redacted::expose`] where the value is really needed. Unlike `secrecy::SecretString` it
/// serializes, because these values are part of request and response bodies.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl Redacted {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Redacted(value.into())
    }

    /// The value itself. Call it only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The length in bytes, which is safe to show.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redacted({} bytes)", self.0.len())
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Redacted {
    fn from(value: String) -> Self {
        Redacted(value)
    }
}

impl From<&str> for Redacted {
    fn from(value: &str) -> Self {
        Redacted(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::Redacted;

    #[test]
    fn debug_and_display_hide_the_value() {
        let value = Redacted::new("ghs_registration_token_value");
        assert_eq!(format!("{value:?}"), "Redacted(28 bytes)");
        assert_eq!(value.to_string(), "[redacted]");
        assert_eq!(value.expose(), "ghs_registration_token_value");
    }

    #[test]
    fn serializes_as_plain_string() {
        let value = Redacted::new("abc");
        assert_eq!(serde_json::to_string(&value).unwrap(), "\"abc\"");
        let back: Redacted = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back, value);
    }
}
