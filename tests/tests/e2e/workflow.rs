//! Whole workflows on launched runners, as GitHub runs them: the fake GitHub queues a workflow
//! run's jobs once the jobs they need are done and hands each to an idle runner whose labels
//! match; fake runners on root machines take them from that queue.

use std::time::Duration;

use lambda_gha_tests::rig::{Captured, quick_boot_scenario};
use lambda_gha_tests::{FakeJob, JobStatus};

use crate::gpus::Stage;

/// The README's example grown into a real workflow: three jobs one after another, then two
/// side by side, all on the launch's label.
fn five_jobs(label: &str) -> Vec<FakeJob> {
    vec![
        FakeJob::new("build", &[label], &[], 60),
        FakeJob::new("test", &[label], &["build"], 60),
        FakeJob::new("package", &[label], &["test"], 30),
        FakeJob::new("eval-a", &[label], &["package"], 45),
        FakeJob::new("eval-b", &[label], &["package"], 45),
    ]
}

fn output<'a>(started: &'a Captured, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    started
        .output
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no `{name}` output:\n{}", started.output))
}

/// The start's outputs and its label, once it succeeded.
fn started_with_label(started: Captured) -> (Captured, String) {
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);
    let label = output(&started, "label").to_owned();
    (started, label)
}

/// Waits (up to `limit`) until no job is waiting, queued or running.
async fn settled(stage: &Stage, limit: Duration) -> Vec<(FakeJob, JobStatus)> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let jobs = stage.rig.github.jobs();
        let open = jobs.iter().any(|(_, status)| {
            matches!(
                status,
                JobStatus::Waiting | JobStatus::Queued | JobStatus::Running(_)
            )
        });
        if !open || tokio::time::Instant::now() >= deadline {
            return jobs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_five_job_workflow_completes_on_one_machine_with_default_inputs() {
    let stage = Stage::new("workflow", quick_boot_scenario(), "9400", true).await;
    let rig = &stage.rig;
    // What the README's example sets, and nothing else.
    let (started, label) = started_with_label(
        stage
            .start_with_only(&[("instance_type", "gpu_1x_a10"), ("region", "us-east-1")])
            .await,
    );
    // The run's other jobs are queued once the launch job is done, as GitHub does.
    rig.github.queue_workflow(five_jobs(&label));

    let jobs = settled(&stage, Duration::from_secs(120)).await;
    let runners: Vec<String> = rig.github.names();
    assert_eq!(runners.len(), 1, "one machine, one runner: {runners:?}");
    for (job, status) in &jobs {
        assert_eq!(
            *status,
            JobStatus::Done {
                runner: runners[0].clone(),
                succeeded: true
            },
            "{}: {jobs:?}",
            job.name
        );
    }
    // The launch's labels only, none of `config.sh`'s defaults: a `runs-on: self-hosted` job
    // of another repository cannot land here.
    let labels = &rig.github.runners()[0].labels;
    assert!(labels.contains(&label), "{labels:?}");
    assert!(
        !labels
            .iter()
            .any(|l| ["self-hosted", "Linux", "X64"].contains(&l.as_str())),
        "{labels:?}"
    );
    assert_eq!(rig.sim.ledger().entries.len(), 1, "one machine launched");

    // Idle after the last job, the machine ends itself; the stop job removes the runner.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !rig.sim.ledger().still_billing.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle machine did not end itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stage.stop(&started).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jit_runner_serves_one_job_and_leaves_the_rest_queued() {
    let stage = Stage::new("workflow-jit", quick_boot_scenario(), "9500", true).await;
    let rig = &stage.rig;
    let (started, label) = started_with_label(
        stage
            .start_with_only(&[
                ("instance_type", "gpu_1x_a10"),
                ("region", "us-east-1"),
                ("runner_mode", "jit"),
            ])
            .await,
    );
    rig.github.queue_workflow(five_jobs(&label));

    // The one runner takes `build`, and GitHub unregisters it after that job.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs = rig.github.jobs();
        if rig.github.runners().is_empty()
            && matches!(jobs[0].1, JobStatus::Done { .. })
            && jobs[1].1 == JobStatus::Queued
        {
            break jobs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{jobs:?}");
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
    // `test` stays queued: no runner carries the label any more (GitHub would drop it after
    // a day). This is what `instance_count` or `reusable` runners are for.
    assert!(
        jobs[2..].iter().all(|(_, s)| *s == JobStatus::Waiting),
        "{jobs:?}"
    );
    stage.stop(&started).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_while_a_job_runs_ends_the_machine_and_deletes_the_runner_once_let_go() {
    let stage = Stage::new("workflow-stop", quick_boot_scenario(), "9600", true).await;
    let rig = &stage.rig;
    let (started, label) = started_with_label(
        stage
            .start_with_only(&[("instance_type", "gpu_1x_a10"), ("region", "us-east-1")])
            .await,
    );
    // A job far longer than the test: the stop lands in the middle of it.
    rig.github
        .queue_workflow(vec![FakeJob::new("train", &[&label], &[], 36_000)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !matches!(rig.github.jobs()[0].1, JobStatus::Running(_)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rig.github.runners()[0].busy, "GitHub sees the runner busy");

    // The stop terminates the machine; GitHub refuses to delete the runner (422) until it
    // gives up on the job, and the stop deletes it then. `Stage::stop` checks that nothing is
    // left: no machine, no registration, no key.
    stage.stop(&started).await;
    assert!(
        rig.github.busy_refusals() > 0,
        "the stop met the busy runner"
    );
    let jobs = rig.github.jobs();
    assert!(
        matches!(
            jobs[0].1,
            JobStatus::Done {
                succeeded: false,
                ..
            }
        ),
        "the job failed with its machine: {jobs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_a_ref_with_no_release_the_launcher_delivers_the_agent_and_no_machine_compiles() {
    let stage = Stage::new("workflow-delivered", quick_boot_scenario(), "9700", true).await;
    let rig = &stage.rig;
    let (started, label) = started_with_label(
        stage
            .start_without_release(&[
                ("instance_type", "gpu_1x_a10"),
                ("region", "us-east-1"),
                ("instance_count", "2"),
            ])
            .await,
    );
    for entry in rig.sim.ledger().entries {
        let log = std::fs::read_to_string(
            rig.dir
                .join("machines")
                .join(entry.instance_id.as_str())
                .join("var/log/lambda-gha-boot.log"),
        )
        .unwrap();
        let arrived = log
            .lines()
            .find(|l| l.contains("agent delivered by the launcher, verified"))
            .unwrap_or_else(|| panic!("no delivery in the boot log:\n{log}"));
        // What the delivery adds to a boot, in real seconds (the simulator's machines are up
        // within 0.2 s; the launcher polls every 0.1 s here, every 5 s on a real cloud).
        println!("{}: {arrived}", entry.instance_id);
        assert!(
            !log.contains("fetching the lambda-gha agent")
                && !log.contains("cargo")
                && !log.contains("rustup"),
            "{log}"
        );
    }
    assert_eq!(
        stage.internet.agent_downloads().await,
        0,
        "no machine downloaded an agent"
    );
    assert!(
        !std::path::Path::new(gha_runner_core::boot_script::AGENT_DELIVERY_PATH).exists(),
        "nothing was delivered around a machine, onto the host"
    );
    // The delivered agent runs the machine: a job runs, and the idle machine ends itself.
    rig.github
        .queue_workflow(vec![FakeJob::new("check", &[&label], &[], 30)]);
    let jobs = settled(&stage, Duration::from_secs(60)).await;
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
    stage.stop(&started).await;
}
