//! Everything that can go wrong talking to Lambda Cloud, and whether trying again can help.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The machine-readable code of an API error: one variant per `ApiError*` schema of the spec,
/// `provider/*` errors from Lambda's upstream providers, and anything newer kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub enum ErrorCode {
    /// `global/account-inactive`: the account has no verified e-mail or payment method.
    AccountInactive,
    /// `global/conflict`: the request conflicts with the current state of the resource.
    Conflict,
    /// `global/duplicate`: a resource with that name already exists.
    Duplicate,
    /// `instance-operations/launch/file-system-in-wrong-region`: the filesystem lives in
    /// another region than the instance.
    FileSystemInWrongRegion,
    /// `filesystems/filesystem-in-use`: a mounted filesystem cannot be deleted.
    FilesystemInUse,
    /// `firewall-rulesets/firewall-ruleset-in-use`: a ruleset used by instances cannot be deleted.
    FirewallRulesetInUse,
    /// `global/forbidden`: the key may not do this.
    Forbidden,
    /// `instance-operations/launch/insufficient-capacity`: no machine of that type is free in
    /// that region right now. Not retried by the client: fall back to another type or region.
    InsufficientCapacity,
    /// `global/internal-error`: Lambda failed internally.
    InternalError,
    /// `global/invalid-address`: the billing address is invalid.
    InvalidBillingAddress,
    /// `global/invalid-api-key`: the API key is invalid, expired or deleted.
    InvalidApiKey,
    /// `global/invalid-parameters`: the request data is invalid.
    InvalidParameters,
    /// `global/not-found`: the endpoint or resource was not found.
    NotFound,
    /// `global/object-does-not-exist`: the named instance, filesystem, ruleset, image or other
    /// resource does not exist.
    ObjectDoesNotExist,
    /// `global/quota-exceeded`: an account quota is exhausted.
    QuotaExceeded,
    /// `provider/<detail>`: an upstream provider failed (outage, unavailability, exhaustion).
    /// Retryable. Holds the part after `provider/`.
    Provider(String),
    /// A code this crate does not know; kept verbatim.
    Unknown(String),
}

const CODES: &[(ErrorCode, &str)] = &[
    (ErrorCode::AccountInactive, "global/account-inactive"),
    (ErrorCode::Conflict, "global/conflict"),
    (ErrorCode::Duplicate, "global/duplicate"),
    (
        ErrorCode::FileSystemInWrongRegion,
        "instance-operations/launch/file-system-in-wrong-region",
    ),
    (ErrorCode::FilesystemInUse, "filesystems/filesystem-in-use"),
    (
        ErrorCode::FirewallRulesetInUse,
        "firewall-rulesets/firewall-ruleset-in-use",
    ),
    (ErrorCode::Forbidden, "global/forbidden"),
    (
        ErrorCode::InsufficientCapacity,
        "instance-operations/launch/insufficient-capacity",
    ),
    (ErrorCode::InternalError, "global/internal-error"),
    (ErrorCode::InvalidBillingAddress, "global/invalid-address"),
    (ErrorCode::InvalidApiKey, "global/invalid-api-key"),
    (ErrorCode::InvalidParameters, "global/invalid-parameters"),
    (ErrorCode::NotFound, "global/not-found"),
    (
        ErrorCode::ObjectDoesNotExist,
        "global/object-does-not-exist",
    ),
    (ErrorCode::QuotaExceeded, "global/quota-exceeded"),
];

const PROVIDER_PREFIX: &str = "provider/";

impl ErrorCode {
    /// Every code the specification defines (without `provider/*`, which is open-ended).
    pub fn known() -> impl Iterator<Item = &'static ErrorCode> {
        CODES.iter().map(|(code, _)| code)
    }

    /// Parses a code as the API spells it.
    pub fn parse(code: &str) -> ErrorCode {
        if let Some((known, _)) = CODES.iter().find(|(_, text)| *text == code) {
            return known.clone();
        }
        match code.strip_prefix(PROVIDER_PREFIX) {
            Some(detail) => ErrorCode::Provider(detail.to_owned()),
            None => ErrorCode::Unknown(code.to_owned()),
        }
    }

    /// The code as the API spells it.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ErrorCode::Provider(detail) => format!("{PROVIDER_PREFIX}{detail}").into(),
            ErrorCode::Unknown(code) => code.as_str().into(),
            known => CODES
                .iter()
                .find(|(code, _)| code == known)
                .map_or("", |(_, text)| *text)
                .into(),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&code))
    }
}

/// The body of an error response: `{"error": {"code", "message", "suggestion"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct ErrorBody {
    /// The machine-readable code. Branch on this, never on the text.
    pub code: ErrorCode,
    /// An explanation of the error.
    pub message: String,
    /// How to address the error, when the API has a suggestion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The envelope of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct ErrorEnvelope {
    /// The code, message and suggestion Lambda answered with.
    pub error: ErrorBody,
}

/// An error the API answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// The machine-readable code.
    pub code: ErrorCode,
    /// The explanation the API gave.
    pub message: String,
    /// The API's suggestion, if any.
    pub suggestion: Option<String>,
    /// How long the API asked us to wait (`Retry-After`), if it said.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} `{}`: {}", self.status, self.code, self.message)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " ({suggestion})")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Whether waiting and sending the same request again can succeed: rate limiting (429),
    /// server errors (5xx), `provider/*` and `global/internal-error`. Insufficient capacity is
    /// deliberately not retryable: the caller should fall back to another type or region.
    pub fn is_retryable(&self) -> bool {
        if self.code == ErrorCode::InsufficientCapacity {
            return false;
        }
        self.status == 429
            || self.status >= 500
            || matches!(self.code, ErrorCode::Provider(_) | ErrorCode::InternalError)
    }

    /// Whether the API certainly did not act on the request, so that even a request that
    /// creates something (a launch) can be sent again without risking a duplicate.
    pub(crate) fn request_was_rejected_unprocessed(&self) -> bool {
        self.status == 429 || matches!(self.code, ErrorCode::Provider(_))
    }
}

/// A request that breaks a rule of the spec, caught before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {rule}")]
pub struct ValidationError {
    /// The field, as a path into the request (`tags[0].key`).
    pub field: String,
    /// The rule it breaks, phrased so that it says what to do.
    pub rule: String,
}

impl ValidationError {
    /// Makes an error for `field` breaking `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// What went wrong. One variant per failure mode, each with a message that says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The API answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The request never got an HTTP answer (DNS, connect, TLS, reset).
    #[error("could not reach the Lambda Cloud API: {0}")]
    Transport(#[source] TransportError),
    /// No answer within the configured timeout.
    #[error("the Lambda Cloud API did not answer within {after:?}")]
    Timeout {
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The answer did not match the spec.
    #[error("could not decode the answer (HTTP {status}): {source}")]
    Decode {
        /// The HTTP status of the answer.
        status: u16,
        /// What did not match.
        #[source]
        source: serde_json::Error,
    },
    /// The request breaks a rule of the spec; nothing was sent.
    #[error("{0}; nothing was sent")]
    Validation(#[from] ValidationError),
    /// The client is not configured well enough to send anything.
    #[error("{0}")]
    Config(String),
}

/// A request that got no HTTP answer: DNS, connect, TLS or a reset connection. Its
/// [`source`](std::error::Error::source) chain says which; the HTTP library behind it is not
/// part of this crate's API.
#[derive(Debug)]
pub struct TransportError(pub(crate) reqwest::Error);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl TransportError {
    /// Whether no connection was made, so the server cannot have seen the request.
    pub fn is_connect(&self) -> bool {
        self.0.is_connect()
    }
}

/// An error from the Lambda Cloud client: what went wrong, which operation, and how often it
/// was retried first.
pub struct Error {
    kind: Box<ErrorKind>,
    operation: &'static str,
    retries: u32,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, operation: &'static str) -> Self {
        Error {
            kind: Box::new(kind),
            operation,
            retries: 0,
        }
    }

    pub(crate) fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Takes the kind out.
    pub fn into_kind(self) -> ErrorKind {
        *self.kind
    }

    /// The spec's `operationId` of the call that failed (empty for client configuration).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// How many times the request was retried before giving up.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The API's answer, when the failure is one.
    pub fn api(&self) -> Option<&ApiError> {
        match &*self.kind {
            ErrorKind::Api(api) => Some(api),
            _ => None,
        }
    }

    /// The API's error code, when the failure is an API answer.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.api().map(|api| &api.code)
    }

    /// The HTTP status, when the failure is an API answer.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|api| api.status)
    }

    /// Whether the launch failed for lack of capacity; try another type or region.
    pub fn is_insufficient_capacity(&self) -> bool {
        self.code() == Some(&ErrorCode::InsufficientCapacity)
    }

    /// Whether the resource does not exist (`global/object-does-not-exist` or `global/not-found`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::ObjectDoesNotExist | ErrorCode::NotFound)
        )
    }

    /// Whether sending the same request again later can succeed: 429, 5xx, `provider/*`,
    /// `global/internal-error`, transport failures and timeouts. False for insufficient
    /// capacity, invalid input, authentication, decoding and validation failures.
    pub fn is_retryable(&self) -> bool {
        match &*self.kind {
            ErrorKind::Api(api) => api.is_retryable(),
            ErrorKind::Transport(_) | ErrorKind::Timeout { .. } => true,
            ErrorKind::Decode { .. } | ErrorKind::Validation(_) | ErrorKind::Config(_) => false,
        }
    }

    /// Whether a request that creates something may be sent again: only when the failure
    /// proves that nothing was created (rate limited, provider refusal, connection refused).
    pub(crate) fn is_safe_to_resend(&self) -> bool {
        match &*self.kind {
            ErrorKind::Api(api) => api.request_was_rejected_unprocessed(),
            ErrorKind::Transport(source) => source.0.is_connect(),
            _ => false,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|api| api.retry_after)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.operation.is_empty() {
            write!(f, "`{}` failed", self.operation)?;
            if self.retries > 0 {
                let plural = if self.retries == 1 {
                    "retry"
                } else {
                    "retries"
                };
                write!(f, " after {} {plural}", self.retries)?;
            }
            f.write_str(": ")?;
        }
        fmt::Display::fmt(&self.kind, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("operation", &self.operation)
            .field("retries", &self.retries)
            .field("kind", &self.kind)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.kind)
    }
}

/// The result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_text() {
        for code in ErrorCode::known() {
            assert_eq!(&ErrorCode::parse(&code.as_str()), code);
        }
        assert_eq!(
            ErrorCode::parse("provider/internal-unavailable"),
            ErrorCode::Provider("internal-unavailable".into())
        );
        assert_eq!(
            ErrorCode::Provider("x".into()).as_str(),
            "provider/x".to_owned()
        );
        assert_eq!(
            ErrorCode::parse("global/brand-new"),
            ErrorCode::Unknown("global/brand-new".into())
        );
    }

    fn api(status: u16, code: ErrorCode) -> ApiError {
        ApiError {
            status,
            code,
            message: String::new(),
            suggestion: None,
            retry_after: None,
        }
    }

    #[test]
    fn capacity_is_never_retryable() {
        assert!(!api(400, ErrorCode::InsufficientCapacity).is_retryable());
        assert!(!api(503, ErrorCode::InsufficientCapacity).is_retryable());
        assert!(api(429, ErrorCode::Unknown(String::new())).is_retryable());
        assert!(api(502, ErrorCode::Unknown(String::new())).is_retryable());
        assert!(api(400, ErrorCode::Provider("x".into())).is_retryable());
        assert!(api(500, ErrorCode::InternalError).is_retryable());
        assert!(!api(400, ErrorCode::InvalidParameters).is_retryable());
        assert!(!api(401, ErrorCode::InvalidApiKey).is_retryable());
    }

    #[test]
    fn display_names_operation_retries_and_suggestion() {
        let mut inner = api(400, ErrorCode::InsufficientCapacity);
        inner.message = "Not enough capacity".into();
        inner.suggestion = Some("Try another region".into());
        let error = Error::new(ErrorKind::Api(inner), "launchInstance").with_retries(2);
        assert_eq!(
            error.to_string(),
            "`launchInstance` failed after 2 retries: HTTP 400 \
             `instance-operations/launch/insufficient-capacity`: Not enough capacity (Try another region)"
        );
        assert!(error.is_insufficient_capacity());
    }

    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<Result<()>>() <= 32);
    }
}
