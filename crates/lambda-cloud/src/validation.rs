//! The rules the spec puts on request fields, checked before a request is sent.
//!
//! The same checks serve the simulator, which answers `global/invalid-parameters` where they
//! fail, so that client and simulator cannot disagree about what is valid.

use crate::error::ValidationError;

/// A request whose fields the spec constrains.
pub trait Validate {
    /// Checks every rule; the first broken one is returned.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// Length in characters, as JSON Schema counts it.
pub(crate) fn length(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len < min {
        let rule = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters long (got {len})")
        };
        return Err(ValidationError::new(field, rule));
    }
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters long (got {len})"),
        ));
    }
    Ok(())
}

/// Checks that every character satisfies `allowed` and the first satisfies `first`; `rule`
/// describes the pattern for the message.
pub(crate) fn characters(
    field: &str,
    value: &str,
    first: impl Fn(char) -> bool,
    allowed: impl Fn(char) -> bool,
    rule: &str,
) -> Result<(), ValidationError> {
    let mut chars = value.chars();
    let ok = chars.next().is_some_and(&first) && chars.all(allowed);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{rule} (got {value:?})"),
        ))
    }
}

pub(crate) fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(length("name", "ééé", 1, 3).is_ok());
        assert_eq!(
            length("name", "", 1, 3).unwrap_err().to_string(),
            "invalid `name`: must not be empty"
        );
        assert_eq!(
            length("name", "abcd", 0, 3).unwrap_err().to_string(),
            "invalid `name`: must be at most 3 characters long (got 4)"
        );
    }

    #[test]
    fn characters_checks_first_and_rest() {
        let check = |v: &str| {
            characters(
                "hostname",
                v,
                is_lower_alnum,
                |c| is_lower_alnum(c) || c == '-',
                "must be lowercase",
            )
        };
        assert!(check("node-1").is_ok());
        assert!(check("-node").is_err());
        assert!(check("Node").is_err());
        assert!(check("").is_err());
    }
}
