//! The action with `provider: runpod` against the RunPod fake: runners come online in booted
//! pods (containers run as real root), a job runs, the idle pod ends itself with its own
//! pod-scoped key, and `stop` leaves no pod and no registration. No secret is printed.

use std::time::Duration;

use lambda_gha_tests::faults::Programs;
use lambda_gha_tests::rig::{Captured, run_program};
use lambda_gha_tests::runpod_rig::RunPodRig;
use lambda_gha_tests::{FakeInternet, FakeJob, JobStatus};

struct WorkDir(std::path::PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn output<'a>(captured: &'a Captured, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    captured
        .output
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no `{name}` output:\n{}", captured.output))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runpod_pod_runs_a_job_ends_itself_and_stop_leaves_nothing() {
    let work = WorkDir(std::env::temp_dir().join(format!("runpod-e2e-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&work.0);
    std::fs::create_dir_all(&work.0).unwrap();
    let programs = Programs::build();
    let internet = FakeInternet::start(&programs.cli, &work.0).await;
    let rig = RunPodRig::start(
        &work.0.join("run"),
        "9700",
        runpod_fake::Scenario::default(),
        Vec::new(),
    )
    .await;

    let started = run_program(
        &programs.action,
        &[],
        rig.action_env(
            &internet,
            &[
                ("instance_type", "1x NVIDIA A40"),
                ("region", "US-TX-3"),
                ("runner_mode", "jit"),
            ],
        ),
        &rig.dir,
        "start",
        None,
    )
    .await;
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);
    let label = output(&started, "label").to_owned();
    let pod = output(&started, "instance-id").to_owned();
    assert_eq!(rig.fake.pods(), std::slice::from_ref(&pod), "one pod");
    assert_eq!(rig.github.runners().len(), 1, "its runner is online");
    let env = rig.fake.pod_env(&pod).unwrap();
    assert!(
        env.keys().all(|k| k.starts_with("LAMBDA_GHA_")),
        "only the boot script and the tags: no key of the launcher's goes to the pod: {:?}",
        env.keys().collect::<Vec<_>>()
    );

    rig.github
        .queue_workflow(vec![FakeJob::new("train", &[&label], &[], 60)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let jobs = loop {
        let jobs = rig.github.jobs();
        let done = jobs
            .iter()
            .all(|(_, status)| matches!(status, JobStatus::Done { .. }));
        if done || tokio::time::Instant::now() >= deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(
            jobs[0].1,
            JobStatus::Done {
                succeeded: true,
                ..
            }
        ),
        "{jobs:?}"
    );

    // The JIT runner's one job done, the pod's agent deletes its pod with the pod's own key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !rig.fake.pods().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod did not end itself: {}",
            rig.fake.requests().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted_by: Vec<String> = rig
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with(&format!("DELETE /v2/pods/{pod} 204")))
        .collect();
    assert_eq!(deleted_by, [format!("DELETE /v2/pods/{pod} 204 (pod key)")]);

    let stop = run_program(
        &programs.action,
        &[],
        rig.action_env(
            &internet,
            &[("mode", "stop"), ("mtx", output(&started, "mtx"))],
        ),
        &rig.dir,
        "stop",
        None,
    )
    .await;
    assert!(stop.success(), "{}\n{}", stop.stdout, stop.stderr);
    assert!(rig.left().is_clear(), "{:?}", rig.left());
    assert_eq!(rig.fake.invalid_requests(), Vec::<String>::new());

    // No secret in anything the action printed or the pods logged.
    let mut places = started.places("start");
    places.extend(stop.places("stop"));
    places.push((
        "the fake's request log".into(),
        rig.fake.requests().join("\n"),
    ));
    for log in lambda_gha_tests::rig::files_where(&[rig.dir.join("machines")], |p| {
        p.extension().is_some_and(|e| e == "log" || e == "jsonl")
    }) {
        places.push((
            log.display().to_string(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        ));
    }
    for (place, text) in &places {
        for (what, canary) in rig.canaries() {
            assert!(!text.contains(&canary), "{what} in {place}");
        }
    }
}
