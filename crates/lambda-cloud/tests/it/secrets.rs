//! Secrets stay secret: the API key and user data appear in no error, `Debug` output or trace,
//! even when requests fail and are retried. And the traces say what happened.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_cloud::{Client, RateLimits, RetryPolicy};
use wiremock::matchers::{any, header};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "secret_0123456789abcdef_api_key";
const USER_DATA: &str = "#!/bin/bash\nexport RUNNER_TOKEN=AAAAsecret-registration-token\n";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Routes this thread's traces here until the guard drops.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn each_call_has_a_span_with_operation_status_retries_and_duration() {
    let captured = Captured::default();
    let _guard = captured.install();
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": []})))
        .mount(&server)
        .await;
    crate::support::client_for(&server)
        .ssh_keys()
        .list()
        .await
        .unwrap();
    let traces = captured.text();
    let close = traces
        .lines()
        .find(|line| line.contains("lambda_cloud.request") && line.contains("close"))
        .unwrap_or_else(|| panic!("no closed span in:\n{traces}"));
    for field in [
        "operation=\"listSSHKeys\"",
        "status=\"ok\"",
        "retries=0",
        "duration_ms=",
    ] {
        assert!(close.contains(field), "`{field}` missing from {close}");
    }
}

#[tokio::test]
async fn no_secret_reaches_errors_debug_output_or_traces() {
    let captured = Captured::default();
    let _guard = captured.install();

    let server = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            serde_json::json!({"error": {"code": "global/rate-limited", "message": "slow down"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(418))
        .mount(&server)
        .await;

    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .rate_limits(RateLimits::UNLIMITED)
        .retry_policy(RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_elapsed: Duration::from_secs(5),
            jitter: false,
        })
        .build()
        .unwrap();
    let launch = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "k")
        .user_data(USER_DATA);
    let builder_debug = format!("{launch:?}");
    let error = launch.send().await.unwrap_err();
    assert_eq!(
        error.status(),
        Some(429),
        "the key was sent: the server matched it"
    );
    assert_eq!(error.retries(), 2);

    let traces = captured.text();
    assert!(
        traces.contains("lambda_cloud.request"),
        "spans were recorded:\n{traces}"
    );
    assert!(traces.contains("launchInstance"));
    assert!(traces.contains("retrying Lambda Cloud request"));
    for (what, text) in [
        ("error display", error.to_string()),
        ("error debug", format!("{error:?}")),
        ("client debug", format!("{client:?}")),
        ("launch builder debug", builder_debug),
        ("traces", traces),
    ] {
        assert!(!text.contains(KEY), "the API key leaked into the {what}");
        assert!(
            !text.contains("secret-registration-token"),
            "user data leaked into the {what}"
        );
    }
}
