//! The action binary's own cost for a 1-instance launch: wall time and peak RSS, against the
//! simulator (instant boot, no rate limits, so no time is the simulator's waiting) and a fake
//! GitHub whose runners come online at once. Baseline in the same run: the binary answering
//! `--version` (process start-up alone). Targets: < 1 s and < 30 MB.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use lambda_cloud_sim::{Scenario, Sim};
use lambda_gha_tests::FakeGitHub;

const RUNS: usize = 10;

/// Runs `command` under GNU time; returns (wall time, peak RSS in KiB, stdout).
fn measure(command: &mut Command) -> (Duration, u64, String) {
    let rss_file = std::env::temp_dir().join(format!("bench-rss-{}", std::process::id()));
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(program)
        .args(args)
        .env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    let started = Instant::now();
    let out = timed.output().expect("GNU time (apt-get install time)");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rss: u64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (took, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let binary = env!("CARGO_BIN_EXE_lambda-gha-action");
    let scenario = Scenario {
        default_capacity: 1000,
        ..Scenario::default()
    }
    .with_boot_seconds(0.0);
    let sim = Sim::builder()
        .scenario(scenario)
        .rate_limits(false)
        .api_key("bench-key")
        .start()
        .await
        .unwrap();
    let github = FakeGitHub::start(true).await;
    let dir = std::env::temp_dir().join(format!("bench-action-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sums = dir.join("SHA256SUMS");
    std::fs::write(
        &sums,
        format!("{}  lambda-gha-x86_64-unknown-linux-musl\n", "a".repeat(64)),
    )
    .unwrap();

    let (mut base_wall, mut base_rss) = (Vec::new(), Vec::new());
    let (mut wall, mut rss) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (took, kib, _) = measure(Command::new(binary).arg("--version"));
        base_wall.push(took.as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        base_rss.push(kib as f64 / 1024.0);

        let mut command = Command::new(binary);
        command
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LAMBDA_API_KEY", "bench-key")
            .env("LAMBDA_API_URL", sim.base_url())
            // Pacing is the simulator's waiting, not the binary's work: scale it away.
            .env("LAMBDA_API_TIME_SCALE", "1000000")
            .env("GH_PAT", "bench-pat")
            .env("GITHUB_API_URL", github.uri())
            .env("GITHUB_REPOSITORY", "octo/gpu")
            .env("GITHUB_RUN_ID", run.to_string())
            .env("LAMBDA_GHA_SHA256SUMS", &sums)
            .env("LAMBDA_GHA_RELEASE_URL", "https://example.invalid/v0")
            .env("INPUT_INSTANCE_TYPE", "gpu_1x_a10")
            .env("INPUT_REGION", "us-east-1");
        let (took, kib, stdout) = measure(&mut command);
        assert!(stdout.contains("runner(s) online"), "{stdout}");
        wall.push(took.as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        rss.push(kib as f64 / 1024.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (w, r) = (median(wall), median(rss));
    let (bw, br) = (median(base_wall), median(base_rss));
    println!("action: 1-instance launch, median of {RUNS} runs");
    println!(
        "  wall time  {:>8.1} ms   baseline (--version) {:>6.1} ms   ratio {:>5.1}x   target < 1000 ms: {}",
        w * 1000.0,
        bw * 1000.0,
        w / bw,
        if w < 1.0 { "met" } else { "MISSED" }
    );
    println!(
        "  peak RSS   {:>8.1} MB   baseline (--version) {:>6.1} MB   ratio {:>5.1}x   target < 30 MB: {}",
        r,
        br,
        r / br,
        if r < 30.0 { "met" } else { "MISSED" }
    );
}
