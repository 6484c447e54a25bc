//! What GitHub sends: a `workflow_job` delivery, its signature, and the fields the controller
//! reads. Field names and actions are GitHub's (docs.github.com, "Webhook events and payloads",
//! `workflow_job`: actions `queued`, `waiting`, `in_progress`, `completed`; `runner_name` is
//! null until a runner takes the job).

use std::fmt::Write as _;

use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The largest body accepted. GitHub caps deliveries at 25 MB (docs.github.com, "Webhook events
/// and payloads": "Payloads are capped at 25 MB"); a `workflow_job` payload is a few kB, so
/// anything near the cap is not one, and is refused before it is read whole.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a delivery's signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// A header that is not `sha256=<64 hex digits>`.
    Malformed,
    /// A well-formed signature that does not match the body.
    Mismatch,
}

impl std::fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureProblem::Missing => {
                "no X-Hub-Signature-256 header: set the webhook's secret in GitHub to the controller's"
            }
            SignatureProblem::Malformed => "X-Hub-Signature-256 is not `sha256=<hex>`",
            SignatureProblem::Mismatch => {
                "X-Hub-Signature-256 does not match the body: the webhook's secret differs from the controller's"
            }
        })
    }
}

/// The webhook secret, as a key for checking signatures.
pub struct WebhookSecret {
    key: hmac::Key,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// The key for `secret`.
    pub fn new(secret: &SecretString) -> WebhookSecret {
        WebhookSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes()),
        }
    }

    /// Checks `header` (the `X-Hub-Signature-256` value) against `body`: the HMAC-SHA256 of the
    /// body under the secret, hex, after `sha256=` (docs.github.com, "Validating webhook
    /// deliveries"). The comparison takes the same time however many bytes match
    /// (`ring::hmac::verify`).
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureProblem> {
        let header = header.ok_or(SignatureProblem::Missing)?;
        let hex = header
            .strip_prefix(b"sha256=")
            .ok_or(SignatureProblem::Malformed)?;
        let tag = decode_hex(hex).ok_or(SignatureProblem::Malformed)?;
        hmac::verify(&self.key, body, &tag).map_err(|_| SignatureProblem::Mismatch)
    }

    /// The `X-Hub-Signature-256` value for `body`, as GitHub computes it (for fakes and tests).
    pub fn sign(&self, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key, body);
        let mut text = String::with_capacity(7 + 64);
        text.push_str("sha256=");
        for byte in tag.as_ref() {
            let _ = write!(text, "{byte:02x}");
        }
        text
    }
}

fn decode_hex(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A `workflow_job` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Waiting for a runner.
    Queued,
    /// Waiting for an environment's approval: needs no runner yet.
    Waiting,
    /// A runner took it.
    InProgress,
    /// Done (succeeded, failed, cancelled, skipped).
    Completed,
}

/// A `workflow_job` delivery, the fields the controller reads.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowJobEvent {
    /// What happened.
    pub action: JobAction,
    /// The job.
    pub workflow_job: WorkflowJob,
    /// Its repository.
    pub repository: Repository,
}

/// The job of a `workflow_job` delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowJob {
    /// The job's id (a re-run gets a new one).
    pub id: u64,
    /// Its run.
    pub run_id: u64,
    /// Its name.
    pub name: String,
    /// Its `runs-on` labels.
    pub labels: Vec<String>,
    /// The runner that took it, once one did.
    pub runner_name: Option<String>,
    /// `success`, `failure`, `cancelled`, `skipped`, … once completed.
    pub conclusion: Option<String>,
}

/// The repository of a delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    /// `owner/repo`.
    pub full_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> WebhookSecret {
        WebhookSecret::new(&SecretString::from(text))
    }

    /// GitHub's own test values (docs.github.com, "Validating webhook deliveries", "Testing
    /// the webhook payload validation").
    #[test]
    fn githubs_documented_example_verifies() {
        let key = secret("It's a Secret to Everybody");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(key.sign(b"Hello, World!"), header);
        assert_eq!(
            key.verify(Some(header.as_bytes()), b"Hello, World!"),
            Ok(())
        );
        assert_eq!(
            key.verify(
                Some(header.to_uppercase().replace("SHA256", "sha256").as_bytes()),
                b"Hello, World!"
            ),
            Ok(()),
            "hex in either case"
        );
        assert_eq!(
            key.verify(Some(header.as_bytes()), b"Hello, World?"),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(
            secret("another").verify(Some(header.as_bytes()), b"Hello, World!"),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(key.verify(None, b"x"), Err(SignatureProblem::Missing));
        for bad in ["757107ea", "sha1=757107ea", "sha256=zz", "sha256="] {
            assert_eq!(
                key.verify(Some(bad.as_bytes()), b"Hello, World!"),
                Err(SignatureProblem::Malformed),
                "{bad}"
            );
        }
        assert_eq!(format!("{key:?}"), "WebhookSecret([redacted])");
    }

    #[test]
    fn a_queued_delivery_reads_with_its_runner_still_null() {
        let body = r#"{"action":"queued","workflow_job":{"id":29679449,"run_id":10479226,"run_attempt":1,
            "name":"train","status":"queued","conclusion":null,"labels":["self-hosted","gpu"],
            "runner_id":null,"runner_name":null,"runner_group_id":null,"created_at":"2026-12-01T10:00:00Z"},
            "repository":{"id":1,"name":"gpu","full_name":"octo/gpu"},"sender":{"login":"octo"}}"#;
        let event: WorkflowJobEvent = serde_json::from_str(body).unwrap();
        assert_eq!(event.action, JobAction::Queued);
        assert_eq!(event.workflow_job.labels, ["self-hosted", "gpu"]);
        assert_eq!(event.workflow_job.runner_name, None);
        assert_eq!(event.repository.full_name, "octo/gpu");
    }
}
