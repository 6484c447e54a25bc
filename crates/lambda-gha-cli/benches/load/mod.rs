//! What the `serve` benches share: GitHub's delivery mix and a clock-paced load generator.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The benches' one pool, capped so that launches stay few while every delivery is decided.
pub(crate) const POOL: &str = r#"
[[pool]]
name = "bench"
labels = ["self-hosted", "gpu-bench"]
types = ["gpu_1x_a10"]
regions = ["us-east-1", "us-west-1"]
ssh_key = "ci"
max_machines = 4
"#;

/// Peak RSS of process `pid` (VmHWM), in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The `delivery`th payload: job `delivery / 3`'s queued, in_progress or completed event.
pub(crate) fn payload(delivery: u64) -> (String, String) {
    let job = delivery / 3 + 1;
    let (action, runner, conclusion) = match delivery % 3 {
        0 => ("queued", "null".to_owned(), "null"),
        1 => ("in_progress", format!("\"elsewhere-{job}\""), "null"),
        _ => ("completed", format!("\"elsewhere-{job}\""), "\"success\""),
    };
    let body = format!(
        r#"{{"action":"{action}","workflow_job":{{"id":{job},"run_id":{},"name":"job-{job}","status":"{action}","conclusion":{conclusion},"labels":["self-hosted","gpu-bench"],"runner_name":{runner}}},"repository":{{"full_name":"octo/gpu"}}}}"#,
        job / 10 + 1
    );
    (format!("bench-{delivery}"), body)
}

/// Sends `rate` requests a second for `seconds`, each made by `request(n)`; returns each
/// request's round trip in seconds. Paced by the clock: a slow answer delays no later send.
pub(crate) async fn load<F, Fut>(rate: u64, seconds: u64, request: F) -> Vec<f64>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut sends = Vec::new();
    for n in 0..rate * seconds {
        tick.tick().await;
        let sent = Instant::now();
        let answer = request(n);
        let times = Arc::clone(&times);
        sends.push(tokio::spawn(async move {
            let status = answer.await;
            assert!((200..300).contains(&status), "status {status}");
            times.lock().unwrap().push(sent.elapsed().as_secs_f64());
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
    let mut times = Arc::try_unwrap(times).unwrap().into_inner().unwrap();
    times.sort_by(f64::total_cmp);
    times
}

pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Sends the `n`th delivery of the mix to `webhook`, signed with `secret`; its HTTP status.
pub(crate) async fn deliver(webhook: String, secret: String, n: u64) -> u16 {
    let (id, body) = payload(n);
    let signature = lambda_gha_tests::webhook_signature(&secret, body.as_bytes());
    let headers = [
        ("X-GitHub-Event", "workflow_job"),
        ("X-GitHub-Delivery", id.as_str()),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    lambda_gha_tests::post_webhook(&webhook, &headers, body.as_bytes())
        .await
        .unwrap()
        .0
}
