//! Three `lambda-gha serve` replicas on one PostgreSQL database under load: 600 deliveries a
//! second for 60 s, spread over the replicas in turn (as a load balancer spreads them), the
//! delivery mix of the `serve` bench. PostgreSQL is the server at `DATABASE_URL`
//! (`cargo xtask bench serve-replicas` starts a throwaway cluster when it is unset).
//!
//! Figures: webhook → decision, from a delivery's receipt by whichever replica took it to the
//! end of the leader's decision pass that claimed it (both stamped in the database, to the
//! millisecond: the leader's `lambda_gha_decision_latency_seconds`); each delivery's round
//! trip as the sender saw it; peak RSS of each replica. Baseline in the same run, same
//! processes, same rate: `GET /healthz` spread the same way, which reads the database once.
//! Target: p99 < 50 ms; printed, never asserted.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod load;

use lambda_gha_tests::postgres::TestDatabase;
use lambda_gha_tests::replica_rig::{ReplicaOptions, ReplicaRig};
use load::{POOL, deliver, load, metric, peak_rss_kib};

const RATE: u64 = 600;
const REPLICAS: usize = 3;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("LAMBDA_GHA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let database = TestDatabase::create().await;
    let rig = ReplicaRig::start(
        ReplicaOptions {
            replicas: REPLICAS,
            pools: POOL.to_owned(),
            scenario: lambda_gha_tests::rig::quick_boot_scenario(),
            delivery: lambda_gha_tests::WebhookDelivery::default(),
            poll_jobs_every: "1m",
            binary: Some(env!("CARGO_BIN_EXE_lambda-gha").into()),
        },
        &database,
    )
    .await;
    let leader = rig
        .wait_for_leader(&[], std::time::Duration::from_secs(20))
        .await
        .expect("a leader");
    let urls: Vec<String> = rig.replicas.iter().map(|r| r.url.clone()).collect();
    let idle_rss: Vec<u64> = rig.pids().into_iter().map(peak_rss_kib).collect();
    let baseline = load(RATE, seconds, |n| {
        let health = format!("{}/healthz", urls[usize::try_from(n).unwrap() % REPLICAS]);
        async move { lambda_gha_tests::http_get(&health).await.unwrap().0 }
    })
    .await;
    let secret = rig.canaries[2].1.clone();
    let round_trips = load(RATE, seconds, |n| {
        let webhook = format!("{}/webhook", urls[usize::try_from(n).unwrap() % REPLICAS]);
        deliver(webhook, secret.clone(), n)
    })
    .await;
    // The last passes claim what arrived last.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (_, metrics) = lambda_gha_tests::http_get(&format!("{}/metrics", urls[leader]))
        .await
        .unwrap();
    let rss: Vec<u64> = rig.pids().into_iter().map(peak_rss_kib).collect();
    let quantile = |q: &str| {
        metric(
            &metrics,
            &format!("lambda_gha_decision_latency_seconds{{quantile=\"{q}\"}}"),
        )
    };
    let decided = metric(&metrics, "lambda_gha_decision_latency_seconds_count");
    let ms = |s: f64| s * 1000.0;
    #[allow(clippy::cast_precision_loss)]
    let mb = |kib: &[u64]| {
        kib.iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "deliveries: {} in {seconds} s ({RATE}/s over {REPLICAS} replicas; replica {leader} leads), {decided} decided",
        round_trips.len()
    );
    println!(
        "webhook → decision (any replica's receipt → the leader's pass): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms (target p99 < 50 ms; millisecond stamps)",
        ms(quantile("0.5")),
        ms(quantile("0.9")),
        ms(quantile("0.99"))
    );
    let q = gha_runner_controller::metrics::quantile;
    println!(
        "delivery round trip (sender): p50 {:.2} ms, p99 {:.2} ms; /healthz baseline p50 {:.2} ms, p99 {:.2} ms; ratio p99 {:.1}×",
        ms(q(&round_trips, 0.5)),
        ms(q(&round_trips, 0.99)),
        ms(q(&baseline, 0.5)),
        ms(q(&baseline, 0.99)),
        q(&round_trips, 0.99) / q(&baseline, 0.99)
    );
    println!(
        "peak RSS per replica: {} MB under load, {} MB idle",
        mb(&rss),
        mb(&idle_rss)
    );
    rig.stop().await;
    database.remove().await;
}
