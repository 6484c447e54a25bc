//! `lambda-gha serve` under load: webhook → decision latency and peak RSS at 200 deliveries a
//! second for 60 s on loopback, against the simulator and the fake GitHub. The load generator
//! stops by itself after its time (`LAMBDA_GHA_BENCH_SECONDS` shortens it for a trial).
//!
//! The mix is GitHub's for a busy repository: each job is delivered `queued`, then
//! `in_progress`, then `completed`, jobs interleaved, all for one pool whose machines are
//! capped, so every delivery leads to a decision pass and launches stay few.
//!
//! Figures: the controller's own measure, from the moment a delivery is recorded to the end of
//! the decision pass that claimed it, both stamped in the store to the millisecond
//! (`lambda_gha_decision_latency_seconds` in `/metrics`), and the round trip of each delivery as the sender saw it. Baseline in the same
//! run, same process, same rate: `GET /healthz`, which does no work. Peak RSS from
//! `/proc/<pid>/status` (VmHWM), against the same process idle before the load. Targets:
//! p99 < 20 ms, RSS < 50 MB; printed, never asserted.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use gha_runner_controller::metrics::quantile;
use lambda_gha_tests::controller_rig::{ControllerRig, Host, RigOptions};

const RATE: u64 = 200;

mod load;
use load::{POOL, deliver, load, metric, peak_rss_kib};

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("LAMBDA_GHA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rig = ControllerRig::start(RigOptions {
        host: Host::Process,
        pools: POOL.to_owned(),
        binary: Some(env!("CARGO_BIN_EXE_lambda-gha").into()),
        ..RigOptions::default()
    })
    .await;
    let pid = rig.serve_pid().unwrap();
    let idle_rss = peak_rss_kib(pid);
    let url = rig.url.clone();
    let health = format!("{url}/healthz");
    let baseline = load(RATE, seconds, |_| {
        let health = health.clone();
        async move { lambda_gha_tests::http_get(&health).await.unwrap().0 }
    })
    .await;
    let webhook = format!("{url}/webhook");
    let secret = rig.secret.clone();
    let round_trips = load(RATE, seconds, |n| {
        deliver(webhook.clone(), secret.clone(), n)
    })
    .await;
    let (_, metrics) = lambda_gha_tests::http_get(&format!("{url}/metrics"))
        .await
        .unwrap();
    let rss = peak_rss_kib(pid);
    let p50 = metric(
        &metrics,
        "lambda_gha_decision_latency_seconds{quantile=\"0.5\"}",
    );
    let p99 = metric(
        &metrics,
        "lambda_gha_decision_latency_seconds{quantile=\"0.99\"}",
    );
    let decisions = metric(&metrics, "lambda_gha_decision_latency_seconds_count");
    let ms = |s: f64| s * 1000.0;
    #[allow(clippy::cast_precision_loss)]
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "deliveries: {} in {seconds} s ({RATE}/s), {decisions} decided",
        round_trips.len()
    );
    println!(
        "webhook → decision (server): p50 {:.0} ms, p99 {:.0} ms (target p99 < 20 ms; millisecond stamps)",
        ms(p50),
        ms(p99)
    );
    println!(
        "delivery round trip (sender): p50 {:.2} ms, p99 {:.2} ms; /healthz baseline p50 {:.2} ms, p99 {:.2} ms; ratio p99 {:.1}×",
        ms(quantile(&round_trips, 0.5)),
        ms(quantile(&round_trips, 0.99)),
        ms(quantile(&baseline, 0.5)),
        ms(quantile(&baseline, 0.99)),
        quantile(&round_trips, 0.99) / quantile(&baseline, 0.99)
    );
    println!(
        "peak RSS: {:.1} MB under load, {:.1} MB idle (target < 50 MB)",
        mb(rss),
        mb(idle_rss)
    );
    rig.stop().await;
}
