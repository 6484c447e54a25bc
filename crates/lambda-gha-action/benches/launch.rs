//! Time to a working runner, phase by phase: the action's `start` against the simulator, its
//! machines booting as real root and running the real boot script, for 1 and 4 machines; as it
//! behaved before (the availability listing not consulted: every candidate tried in order),
//! as it behaves now, and with a cache on a Lambda filesystem, cold and warm. Ratios against
//! the first in the same run; nothing asserted on timing.
//!
//! The model, and where its numbers come from:
//! - Boot: 180 simulated s per machine, the middle of the simulator's default 120–240 s
//!   (Lambda documents "a few minutes"); fixed, so that configurations differ only in what
//!   they do.
//! - Capacity: the first type, `gpu_1x_a10`, listed with none in any of the 4 regions (the
//!   case found against an independent fake); `gpu_1x_a6000` comes and goes in `us-east-1`
//!   (2 machines, none from the 20th simulated second, 4 from the 120th) and has 4 in each
//!   other region.
//! - Launches: one per 12 s, other calls one per second (Lambda's documented limits).
//! - Downloads: the GitHub runner 200 MB (actions-runner-linux-x64 2.330), the agent 12 MB (a
//!   release's musl binary), at 50 MB/s from the internet (an assumption for a cloud machine
//!   fetching from GitHub's release CDN); served late by that long, on the simulated clock.
//!   The cache's filesystem is a directory of this computer: a read from it costs what a local
//!   copy costs, faster than Lambda's NFS — the warm figures are a lower bound.
//! - The simulated clock runs 50× real time: what the boot script spends in real processes
//!   (useradd, tar, the agent's start) counts 50× too, alike in every configuration.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use lambda_cloud_sim::{FaultSpec, Scenario};
use lambda_gha_tests::rig::{Machines, Rig, SCALE, run_program};
use lambda_gha_tests::{FakeInternet, FakeJob, JobStatus, Program, program};

const TYPES: &str = "gpu_1x_a10,gpu_1x_a6000";
const REGIONS: &str = "us-east-1,us-west-1,us-south-1,europe-central-1";
const BOOT_SECONDS: f64 = 180.0;
const RUNNER_MB: f64 = 200.0;
const AGENT_MB: f64 = 12.0;
const INTERNET_MB_PER_S: f64 = 50.0;

/// How a configuration launches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    /// As before: the listing unread during the plan, so every candidate is tried in order.
    Before,
    /// Listed candidates first; no cache.
    Now,
    /// With `cache_filesystem`, on a fresh filesystem.
    CacheCold,
    /// With `cache_filesystem`, after a start that filled it.
    CacheWarm,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Before => "before (every candidate in order)",
            Config::Now => "now (listed first), no cache",
            Config::CacheCold => "now, cache cold",
            Config::CacheWarm => "now, cache warm",
        }
    }
}

/// One start's figures, simulated seconds.
#[derive(Default)]
struct Figures {
    attempts: usize,
    failed: usize,
    /// Start → first launch attempt: preflight, the launch key, the first registration.
    preflight: f64,
    /// First attempt → last machine launched.
    launches: f64,
    /// Per machine, medians: launch → boot script running; runner and agent fetched (or read
    /// from the cache); the health gate; runners started.
    boot: f64,
    runner: f64,
    agent: f64,
    gate: f64,
    runners: f64,
    /// Start → every runner online (the start returns then).
    online: f64,
    /// Start's end → a queued job running on every machine.
    picked: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The world of the model: machines boot in 180 s, no `gpu_1x_a10` anywhere.
fn world(config: Config) -> Scenario {
    let mut world = Scenario::default().with_boot_seconds(BOOT_SECONDS);
    for region in REGIONS.split(',') {
        world = world.with_capacity("gpu_1x_a10", region, &[(0, 0)]);
    }
    world = world.with_capacity("gpu_1x_a6000", "us-east-1", &[(0, 2), (20, 0), (120, 4)]);
    if config == Config::Before {
        // The plan's listing reads fail (not retried): it tries every candidate in order, as
        // it did before; the preflight's first read works.
        world = world.with_fault(
            FaultSpec::error("listInstanceTypes", 400, "global/invalid-parameters")
                .message("the listing is not consulted in this configuration")
                .on_calls(2..=10_000),
        );
    }
    world
}

/// Boot-log step times on the simulated clock: the log's wall-clock stamps, mapped through one
/// (wall, simulated) pair.
struct Clock {
    wall: SystemTime,
    sim: f64,
}

impl Clock {
    fn sim_at(&self, stamp: &str) -> Option<f64> {
        let (h, rest) = stamp.split_once(':')?;
        let (m, s) = rest.split_once(':')?;
        let of_day = h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + s.parse::<f64>().ok()?;
        let wall = self
            .wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let mut delta = of_day - wall.rem_euclid(86_400.0);
        if delta < -43_200.0 {
            delta += 86_400.0;
        }
        Some(self.sim + delta * SCALE.factor())
    }

    /// When the first boot-log line containing `text` was written.
    fn step(&self, log: &str, text: &str) -> Option<f64> {
        let line = log.lines().find(|l| l.contains(text))?;
        let stamp = line.strip_prefix("[lambda-gha boot ")?.split(']').next()?;
        self.sim_at(stamp)
    }
}

/// A machine's boot phases: (boot, runner, agent, gate, runners).
fn machine_phases(clock: &Clock, log: &str, launched_at: f64) -> Option<[f64; 5]> {
    let first = clock.step(log, "machine ")?;
    let runner = clock.step(log, "fetching the GitHub runner")?;
    let agent = clock.step(log, "fetching the lambda-gha agent")?;
    let gate = clock.step(log, "checking the GPUs")?;
    let started = clock.step(log, "starting the agent")?;
    let complete = clock.step(log, "boot complete")?;
    Some([
        first - launched_at,
        agent - runner,
        gate - agent,
        started - gate,
        complete - started,
    ])
}

/// One start (named `name`: its outputs and summary go to files of that name), a job per
/// machine, and the stop.
async fn measure(
    rig: &Rig,
    internet: &FakeInternet,
    machines: usize,
    config: Config,
    name: &str,
) -> Figures {
    let count = machines.to_string();
    let mut inputs = vec![
        ("instance_type", TYPES),
        ("region", REGIONS),
        ("instance_count", count.as_str()),
        ("runner_registration_timeout", "30m"),
        ("runner_initial_grace_period", "60m"),
    ];
    if matches!(config, Config::CacheCold | Config::CacheWarm) {
        inputs.push(("cache_filesystem", "true"));
    }
    let clock = Clock {
        wall: SystemTime::now(),
        sim: rig.sim.now(),
    };
    let launched_before = rig.sim.ledger().entries.len();
    let action = program(Program::Action);
    let start = run_program(
        &action,
        &[],
        rig.action_env(internet, &inputs),
        &rig.dir,
        &format!("{name}-start"),
        None,
    )
    .await;
    assert!(start.success(), "{}\n{}", start.stdout, start.stderr);
    let end = rig.sim.now();
    let label = start
        .output
        .lines()
        .find_map(|l| l.strip_prefix("label="))
        .unwrap()
        .to_owned();

    // A job for each machine, picked up by its runner.
    let jobs: Vec<FakeJob> = (0..machines)
        .map(|i| FakeJob::new(&format!("train-{i}"), &[label.as_str()], &[], 5))
        .collect();
    rig.github.queue_workflow(jobs);
    let queued_at = rig.sim.now();
    let mut picked = f64::NAN;
    for _ in 0..6000 {
        let waiting = rig.github.jobs().iter().any(|(spec, status)| {
            spec.runs_on.contains(&label)
                && matches!(status, JobStatus::Queued | JobStatus::Waiting)
        });
        if !waiting {
            picked = rig.sim.now() - queued_at;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut figures = figures_from(&start.summary, rig, &clock, launched_before);
    figures.online = end - clock.sim;
    figures.picked = picked;
    let stop = run_program(
        &action,
        &[],
        rig.action_env(internet, &[("mode", "stop"), ("label", &label)]),
        &rig.dir,
        &format!("{name}-stop"),
        None,
    )
    .await;
    assert!(stop.success(), "{}\n{}", stop.stdout, stop.stderr);
    figures
}

/// Attempts from the step summary, launches from the simulator's ledger, boot phases from the
/// machines' boot logs.
fn figures_from(summary: &str, rig: &Rig, clock: &Clock, launched_before: usize) -> Figures {
    // `| # | machine | type | region | at | result | detail |`, `at` in real seconds since
    // the plan started.
    let attempts: Vec<(f64, bool)> = summary
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(" s | "))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let at = cells.get(5)?.strip_suffix(" s")?.parse::<f64>().ok()?;
            Some((at * SCALE.factor(), cells.get(6)? == &"launched"))
        })
        .collect();
    let ledger = rig.sim.ledger();
    let launched = &ledger.entries[launched_before..];
    let mut figures = Figures {
        attempts: attempts.len(),
        failed: attempts.iter().filter(|(_, ok)| !ok).count(),
        ..Figures::default()
    };
    // The plan's start on the simulated clock: the last launch, less its `at`.
    if let (Some((last_at, _)), Some(last)) = (attempts.last(), launched.last()) {
        let plan_start = last.launched_at - last_at;
        let first = plan_start + attempts[0].0;
        figures.preflight = first - clock.sim;
        figures.launches = last.launched_at - first;
    }
    let mut phases: [Vec<f64>; 5] = Default::default();
    for entry in launched {
        let log = std::fs::read_to_string(
            rig.dir
                .join("machines")
                .join(entry.instance_id.as_str())
                .join("var/log/lambda-gha-boot.log"),
        )
        .unwrap_or_default();
        if let Some(each) = machine_phases(clock, &log, entry.launched_at) {
            for (all, value) in phases.iter_mut().zip(each) {
                all.push(value);
            }
        }
    }
    let [boot, runner, agent, gate, runners] = phases.map(median);
    Figures {
        boot,
        runner,
        agent,
        gate,
        runners,
        ..figures
    }
}

async fn configuration(machines: usize, config: Config, dir: &Path) -> Figures {
    let dir = dir.join(format!("{machines}-{}", config as u8));
    std::fs::create_dir_all(&dir).unwrap();
    let delay = |mb: f64| Duration::from_secs_f64(mb / INTERNET_MB_PER_S / SCALE.factor());
    let internet = FakeInternet::start_modelled(
        &program(Program::Cli),
        &dir,
        delay(RUNNER_MB),
        delay(AGENT_MB),
    )
    .await;
    let rig = Rig::start(world(config), &dir, "8123".into(), true, Machines::Root).await;
    if config == Config::CacheWarm {
        // A start that fills the cache, then the measured one.
        measure(&rig, &internet, machines, Config::CacheCold, "filling").await;
    }
    let figures = measure(&rig, &internet, machines, config, "measured").await;
    rig.sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("bench-launch-{}", std::process::id()));
    println!(
        "launch: the action's start, simulated seconds (boot {BOOT_SECONDS} s; {TYPES} in {REGIONS}, \
         none of the first type anywhere; runner {RUNNER_MB} MB, agent {AGENT_MB} MB at \
         {INTERNET_MB_PER_S} MB/s; clock ×{})",
        SCALE.factor()
    );
    println!(
        "{:<36} {:>2} {:>9} {:>9} {:>8} {:>6} {:>7} {:>6} {:>6} {:>8} {:>8} {:>7}",
        "configuration",
        "n",
        "attempts",
        "preflight",
        "launches",
        "boot",
        "runner",
        "agent",
        "gate",
        "runners",
        "online",
        "job"
    );
    for machines in [1, 4] {
        let mut before = f64::NAN;
        let mut cold = f64::NAN;
        for config in [
            Config::Before,
            Config::Now,
            Config::CacheCold,
            Config::CacheWarm,
        ] {
            let f = configuration(machines, config, &dir).await;
            let ratio = match config {
                Config::Before => {
                    before = f.online;
                    String::new()
                }
                Config::CacheWarm => format!(
                    "  ×{:.2} of before, ×{:.2} of cold",
                    f.online / before,
                    f.online / cold
                ),
                Config::CacheCold => {
                    cold = f.online;
                    format!("  ×{:.2} of before", f.online / before)
                }
                Config::Now => format!("  ×{:.2} of before", f.online / before),
            };
            println!(
                "{:<36} {:>2} {:>4} ({:>2}) {:>9.1} {:>8.1} {:>6.1} {:>7.1} {:>6.1} {:>6.1} {:>8.1} {:>8.1} {:>7.1}{ratio}",
                config.name(),
                machines,
                f.attempts,
                f.failed,
                f.preflight,
                f.launches,
                f.boot,
                f.runner,
                f.agent,
                f.gate,
                f.runners,
                f.online,
                f.picked,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
