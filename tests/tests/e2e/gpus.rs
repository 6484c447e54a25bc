//! GPU-first runners, end to end: the real action starts machines in the simulator whose boot
//! scripts fetch a fake runner and the real agent, and the fake runner records what its jobs
//! would see. Pinning: runners on an 8-GPU machine get disjoint devices.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lambda_gha_tests::FakeInternet;
use lambda_gha_tests::faults::Programs;
use lambda_gha_tests::rig::{Captured, Rig, quick_boot_world, run_program};

/// A fresh directory for one test, removed when it ends (however it ends).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(name: &str) -> WorkDir {
        let dir = std::env::temp_dir().join(format!("gpus-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("GPUS_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The action's start inputs every test shares: registration within 10 simulated minutes,
/// and no machine ending itself before its start is over.
const BASE_INPUTS: [(&str, &str); 3] = [
    ("region", "us-east-1"),
    ("runner_registration_timeout", "10m"),
    ("runner_initial_grace_period", "45m"),
];

async fn start(
    rig: &Rig,
    programs: &Programs,
    internet: &FakeInternet,
    inputs: &[(&str, &str)],
) -> Captured {
    let mut all: Vec<(&str, &str)> = BASE_INPUTS.to_vec();
    all.extend_from_slice(inputs);
    run_program(
        &programs.action,
        &[],
        rig.action_env(internet, &all),
        &rig.dir,
        "start",
        None,
    )
    .await
}

async fn stop(rig: &Rig, programs: &Programs, internet: &FakeInternet, start: &Captured) {
    let mtx = start
        .output
        .lines()
        .find_map(|l| l.strip_prefix("mtx="))
        .expect("the start wrote mtx");
    let stop = run_program(
        &programs.action,
        &[],
        rig.action_env(internet, &[("mode", "stop"), ("mtx", mtx)]),
        &rig.dir,
        "stop",
        None,
    )
    .await;
    assert!(stop.success(), "{}\n{}", stop.stdout, stop.stderr);
    assert!(rig.left().await.is_clear(), "{:?}", rig.left().await);
}

/// Every file named `name` under `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn runners_on_an_8_gpu_machine_get_disjoint_devices() {
    let programs = Programs::build();
    let work = WorkDir::new("pinning");
    let internet = FakeInternet::start(&programs.cli, &work.0).await;
    let rig = Rig::start(quick_boot_world(), &work.0.join("run"), "9100".into(), true).await;

    let started = start(
        &rig,
        &programs,
        &internet,
        &[
            ("instance_type", "gpu_8x_h100_sxm5"),
            ("runners_per_instance", "4"),
        ],
    )
    .await;
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);

    // What each runner was started with, from the runner itself.
    let seen: Vec<String> = files_named(&rig.dir.join("machines"), "cuda-visible-devices")
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().trim().to_owned())
        .collect();
    assert_eq!(seen, ["0,1", "2,3", "4,5", "6,7"], "runner-0 … runner-3");
    let devices: Vec<&str> = seen.iter().flat_map(|s| s.split(',')).collect();
    let distinct: BTreeSet<&str> = devices.iter().copied().collect();
    assert_eq!(devices.len(), distinct.len(), "no device is shared");
    assert_eq!(distinct.len(), 8, "every GPU is used");

    // The label says the slice size, so a job can ask for it.
    let runners = rig.github.runners();
    assert_eq!(runners.len(), 4);
    assert!(
        runners
            .iter()
            .all(|r| r.labels.iter().any(|l| l == "gpus-2")),
        "{runners:?}"
    );
    stop(&rig, &programs, &internet, &started).await;
    rig.sim.shutdown().await;
}
