//! Provisioning end to end: the Lambda provider against the simulator, GitHub as a stateful
//! fake at its REST surface. Success brings runners online; every failure leaves no machine
//! billing and no runner registered.

use gha_runner_core::tags;
use std::time::Duration;

use gha_runner_core::{
    CapacityPolicy, GitHub, LaunchPlan, MachineId, ProvisionRequest, Provisioner, RunnerScope,
    agent_config::AgentTimings, boot_log::MachineAccess, boot_script::AgentDownload,
    boot_script::AgentSource, boot_script::RunnerPrivileges, naming::RunnerNaming,
    plan::candidates, provisioner::BootSettings, provisioner::MachineTemplate,
    provisioner::RunnerMode, reaper::ReapPolicy, reaper::ReapReason, reaper::reap,
    runner_release::RunnerVersion,
};
use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{Scenario, Sim};
use lambda_gha_tests::FakeGitHub;
use secrecy::SecretString;

struct Fixture {
    sim: Sim,
    provider: LambdaProvider,
    github: GitHub,
    fake: FakeGitHub,
}

async fn world(scenario: Scenario, online_on_register: bool) -> Fixture {
    let (sim, provider) = crate::sim::lambda_on_sim(scenario).await;
    let fake = FakeGitHub::start(online_on_register).await;
    let scope = RunnerScope::Repo {
        owner: "octo".into(),
        repo: "gpu".into(),
    };
    let github = GitHub::new(
        &SecretString::from("ghp_test"),
        Some(&fake.uri()),
        None,
        scope,
    )
    .unwrap();
    Fixture {
        sim,
        provider,
        github,
        fake,
    }
}

fn request(types: &str, count: usize, registration_timeout_seconds: u64) -> ProvisionRequest {
    ProvisionRequest {
        plan: LaunchPlan::new(
            candidates(types, "us-east-1").unwrap(),
            count,
            CapacityPolicy::FailFast,
        )
        .unwrap(),
        naming: RunnerNaming::with_label("lambda-77-test").unwrap(),
        runners_per_instance: 1,
        mode: RunnerMode::Jit,
        extra_labels: vec!["cuda".into()],
        machine: MachineTemplate {
            ssh_key: Some("ci".into()),
            ..MachineTemplate::default()
        },
        boot: BootSettings {
            version: "0.1.0".into(),
            agent: AgentSource::x86_64(AgentDownload {
                url: "https://example.invalid/lambda-gha".into(),
                sha256: "0".repeat(64),
            }),
            runner: RunnerVersion::Served,
            runner_releases_api: "https://example.invalid/releases".into(),
            runner_download_base: "https://example.invalid/download".into(),
            privileges: RunnerPrivileges::default(),
            user_script: None,
            agent_api_url: None,
            agent_api_key: Some(SecretString::from("agent-key")),
            self_terminate: true,
            timings: AgentTimings {
                registration_timeout_seconds,
                ..AgentTimings::default()
            },
            gpu_gate: gha_runner_core::health::GpuGate::default(),
        },
        replace_unhealthy: 1,
        access: MachineAccess::Unavailable {
            why: "a test".into(),
        },
        gpus: std::collections::BTreeMap::new(),
        cache: None,
        online_poll: Duration::from_millis(50),
        online_timeout: Duration::from_secs(registration_timeout_seconds),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_machines_come_up_with_their_runners_online() {
    let w = world(Scenario::default(), true).await;
    let provisioned = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap();
    assert_eq!(provisioned.outputs.label, "lambda-77-test");
    assert_eq!(provisioned.outputs.mtx.len(), 2);
    assert_eq!(
        provisioned.outputs.instance_id, None,
        "two machines have no single instance id"
    );
    assert_eq!(w.fake.names(), ["lambda-77-test-0-0", "lambda-77-test-1-0"]);
    let tagged =
        gha_runner_core::CloudProvider::list_tagged(&w.provider, tags::RUN, Some("lambda-77-test"))
            .await
            .unwrap();
    assert_eq!(tagged.len(), 2);
    assert_eq!(
        tagged[0].tags.get("lambda-gha:machine").map(String::as_str),
        Some("lambda-77-test-0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_online_wait_asks_by_name_for_a_few_runners_and_lists_many() {
    for (runners, by_name) in [(2, true), (12, false)] {
        let w = world(Scenario::default(), true).await;
        let mut request = request("gpu_1x_a10", 2, 30);
        request.runners_per_instance = runners / 2;
        Provisioner::new(&w.provider, &w.github)
            .provision(&request)
            .await
            .unwrap();
        let (named, listed) = w.fake.runner_lookups().await;
        if by_name {
            assert!(
                named >= runners && listed == 0,
                "{named} by name, {listed} listings"
            );
        } else {
            assert!(
                named == 0 && listed >= 1,
                "{named} by name, {listed} listings"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runners_that_never_come_online_leave_nothing_behind() {
    let w = world(Scenario::default(), false).await;
    let failure = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10", 2, 1))
        .await
        .unwrap_err();
    assert!(
        failure
            .reason
            .contains("2 of 2 runner(s) did not come online within 1s"),
        "{failure}"
    );
    assert_eq!(failure.cleanup.terminated.len(), 2);
    assert_eq!(failure.cleanup.runners_deleted.len(), 2);
    assert!(failure.cleanup.is_complete());
    assert!(w.sim.ledger().still_billing.is_empty(), "nothing billing");
    assert!(w.fake.names().is_empty(), "nothing registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_listed_without_capacity_costs_neither_a_launch_nor_a_registration() {
    let scenario = Scenario::default().with_capacity("gpu_1x_a10", "us-east-1", &[(0, 0)]);
    let w = world(scenario, true).await;
    let provisioned = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10,gpu_1x_a6000", 1, 30))
        .await
        .unwrap();
    assert_eq!(
        provisioned.launched[0].candidate.instance_type,
        "gpu_1x_a6000"
    );
    assert_eq!(provisioned.attempts.len(), 1, "{:?}", provisioned.attempts);
    assert_eq!(w.fake.jit_requests(), 1, "one registration, for the launch");
    assert_eq!(w.fake.names(), ["lambda-77-test-0-0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capacity_miss_keeps_its_registration_relabelled_for_the_next_candidate() {
    // The listing showed capacity that was gone by the launch (it goes stale): Lambda answers
    // the launch with insufficient capacity.
    let stale = lambda_cloud_sim::FaultSpec::error(
        "launchInstance",
        400,
        "instance-operations/launch/insufficient-capacity",
    )
    .on_calls([1]);
    let w = world(Scenario::default().with_fault(stale), true).await;
    let provisioned = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10,gpu_1x_a6000", 1, 30))
        .await
        .unwrap();
    assert_eq!(provisioned.attempts.len(), 2, "{:?}", provisioned.attempts);
    assert_eq!(
        provisioned.launched[0].candidate.instance_type,
        "gpu_1x_a6000"
    );
    assert_eq!(
        w.fake.jit_requests(),
        1,
        "registered once, for both attempts"
    );
    assert_eq!(w.fake.relabels(), 1);
    let runners = w.fake.runners();
    assert_eq!(runners.len(), 1);
    assert!(
        runners[0].labels.contains(&"gpu_1x_a6000".to_owned())
            && !runners[0].labels.contains(&"gpu_1x_a10".to_owned()),
        "labelled for the machine it runs on: {:?}",
        runners[0].labels
    );
    assert!(provisioned.outputs.instance_id.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_second_launch_terminates_the_first_and_deletes_every_runner() {
    let quota = crate::sim::quota_on_launch(2);
    let w = world(Scenario::default().with_fault(quota), true).await;
    let provisioner = Provisioner::new(&w.provider, &w.github);
    let failure = provisioner
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap_err();
    assert!(failure.reason.contains("Quota exceeded"), "{failure}");
    assert_eq!(failure.cleanup.terminated.len(), 1);
    assert!(w.sim.ledger().still_billing.is_empty());
    assert!(w.fake.names().is_empty());

    // A second cleanup finds nothing left to do and does no harm.
    let again = provisioner
        .cleanup(
            &RunnerNaming::with_label("lambda-77-test").unwrap(),
            &failure.cleanup.terminated,
        )
        .await;
    assert!(again.is_complete());
    assert!(again.runners_deleted.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_by_one_machine_ends_its_whole_launch_and_its_runners() {
    let w = world(Scenario::default(), true).await;
    let runners = Provisioner::new(&w.provider, &w.github);
    let provisioned = runners
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap();
    let unrelated = w.fake.register("someone-elses-runner", true);
    let first = provisioned.launched[0].machine.clone();
    let report = runners
        .stop(
            &[first, MachineId::new("0123456789abcdef0123456789abcdef")],
            &[],
        )
        .await;
    assert_eq!(report.labels, ["lambda-77-test"]);
    assert_eq!(report.stopped.len(), 2, "both machines of the launch");
    assert_eq!(report.not_found.len(), 1, "the unknown id is reported");
    assert!(report.cleanup.is_complete());
    assert_eq!(report.cleanup.runners_deleted.len(), 2);
    assert!(w.sim.ledger().still_billing.is_empty());
    assert_eq!(
        w.fake.runners().iter().map(|r| r.id).collect::<Vec<_>>(),
        [unrelated],
        "only our runners are deleted"
    );
    // Stopping again (the machines are terminating or gone) is harmless.
    let again = runners
        .stop(&[provisioned.launched[1].machine.clone()], &[])
        .await;
    assert!(again.cleanup.is_complete());
    assert!(again.cleanup.runners_deleted.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_ends_expired_machines_and_ghost_runners_only() {
    let w = world(Scenario::default(), true).await;
    Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10", 1, 30))
        .await
        .unwrap();
    let ghost = w.fake.register("lambda-9-gone00-0-0", false);
    let live_foreign = w.fake.register("lambda-9-gone00-build-box", false);

    // Now: nothing is expired; only the ghost (no machine of its launch) goes.
    let now = ReapPolicy {
        dry_run: true,
        ..ReapPolicy::now()
    };
    let report = reap(&w.provider, Some(&w.github), now).await.unwrap();
    assert_eq!(report.examined, 1);
    assert!(report.reaped.is_empty());
    assert_eq!(
        report.ghost_runners,
        [(ghost, "lambda-9-gone00-0-0".into())]
    );
    assert!(report.cleanup.runners_deleted.is_empty(), "a dry run");

    // Three hours later the machine is past its 2 h lifetime.
    let later = ReapPolicy {
        now: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3),
        ..ReapPolicy::now()
    };
    let report = reap(&w.provider, Some(&w.github), later).await.unwrap();
    assert_eq!(report.reaped.len(), 1);
    assert!(matches!(report.reaped[0].1, ReapReason::Expired { .. }));
    assert!(report.cleanup.is_complete());
    assert!(w.sim.ledger().still_billing.is_empty());
    assert_eq!(
        w.fake.runners().iter().map(|r| r.id).collect::<Vec<_>>(),
        [live_foreign],
        "the reaped launch's runner and the ghost are deleted; a name not ours stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_that_cannot_list_machines_terminates_the_named_ones_directly() {
    let listing_down =
        lambda_cloud_sim::FaultSpec::error("listInstances", 503, "provider/internal-unavailable")
            .message("down");
    let w = world(Scenario::default().with_fault(listing_down), true).await;
    let runners = Provisioner::new(&w.provider, &w.github);
    let provisioned = runners
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap();
    let named: Vec<MachineId> = provisioned
        .launched
        .iter()
        .map(|l| l.machine.clone())
        .collect();
    let report = runners.stop(&named, &["lambda-77-test".to_owned()]).await;
    assert!(report.unlisted.is_some(), "the listing failed");
    assert!(report.cleanup.is_complete(), "{:?}", report.cleanup);
    assert_eq!(report.cleanup.terminated, named);
    assert_eq!(
        report.cleanup.runners_deleted.len(),
        2,
        "by the label given"
    );
    assert!(w.sim.ledger().still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_whose_answer_was_lost_is_found_not_launched_twice() {
    let dropped = lambda_cloud_sim::FaultSpec::dropped("launchInstance").on_calls([1]);
    let w = world(Scenario::default().with_fault(dropped), true).await;
    let provisioned = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10", 1, 30))
        .await
        .unwrap();
    let ledger = w.sim.ledger();
    assert_eq!(ledger.entries.len(), 1, "one launch, found by its tag");
    assert_eq!(
        ledger.entries[0].instance_id.as_str(),
        provisioned.launched[0].machine.as_str()
    );
}

/// Reusable runners on `count` machines whose runners never come online (a 1 s wait), with
/// tokens that last `lifetime`: the registration tokens asked for.
async fn registration_tokens_for(count: usize, lifetime: Duration) -> usize {
    let w = world(Scenario::default(), false).await;
    w.fake.token_lifetime(lifetime);
    let mut request = request("gpu_1x_a10", count, 1);
    request.mode = RunnerMode::Reusable;
    let failure = Provisioner::new(&w.provider, &w.github)
        .provision(&request)
        .await
        .unwrap_err();
    assert!(failure.cleanup.is_complete(), "{failure}");
    w.fake.tokens_issued()
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_share_a_registration_token_only_while_it_outlives_their_boot() {
    assert_eq!(
        registration_tokens_for(2, Duration::from_secs(3600)).await,
        1,
        "an hour outlives a 1 s boot budget: one token serves both"
    );
    assert_eq!(
        registration_tokens_for(2, Duration::ZERO).await,
        2,
        "a token that expires within the boot budget is not handed to the next machine"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reusable_org_runners_join_their_group_by_name() {
    let (sim, provider) = crate::sim::lambda_on_sim(Scenario::default()).await;
    let fake = FakeGitHub::start(false).await;
    let github = GitHub::new(
        &SecretString::from("ghp_test"),
        Some(&fake.uri()),
        None,
        RunnerScope::Org {
            org: "octo".into(),
            group_id: Some(5),
        },
    )
    .unwrap();
    let mut request = request("gpu_1x_a10", 1, 1);
    request.mode = RunnerMode::Reusable;
    let _ = Provisioner::new(&provider, &github)
        .provision(&request)
        .await;
    let id = &sim.ledger().entries[0].instance_id;
    let script = sim.launched_user_data(id).unwrap();
    assert!(
        script.contains("RUNNER_GROUP='group-5'"),
        "the group's name"
    );
    assert!(script.contains("--no-default-labels"));
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_by_label_alone_ends_the_launch() {
    let w = world(Scenario::default(), true).await;
    let runners = Provisioner::new(&w.provider, &w.github);
    runners
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap();
    let report = runners.stop(&[], &["lambda-77-test".to_owned()]).await;
    assert_eq!(report.stopped.len(), 2, "both machines of the launch");
    assert!(report.cleanup.is_complete());
    assert_eq!(report.cleanup.runners_deleted.len(), 2);
    assert!(w.sim.ledger().still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reaper_for_one_repository_leaves_another_s_launches_alone() {
    // One Lambda account, two repositories, each with its own runners on GitHub.
    let (sim, provider) = crate::sim::lambda_on_sim(Scenario::default()).await;
    let mut repos = Vec::new();
    for (repo, label) in [("one", "lambda-1-aaaaaa"), ("two", "lambda-2-bbbbbb")] {
        let fake = FakeGitHub::start(true).await;
        let github = GitHub::new(
            &SecretString::from("ghp_test"),
            Some(&fake.uri()),
            None,
            RunnerScope::Repo {
                owner: "octo".into(),
                repo: repo.into(),
            },
        )
        .unwrap();
        let mut launch = request("gpu_1x_a10", 1, 30);
        launch.naming = RunnerNaming::with_label(label).unwrap();
        Provisioner::new(&provider, &github)
            .provision(&launch)
            .await
            .unwrap();
        repos.push((fake, github));
    }
    // An hour on: repository one's launch still has its runner; two's runner is invisible
    // to one's GitHub, which once made its machine look orphaned.
    let later = ReapPolicy {
        now: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
        ..ReapPolicy::now()
    };
    let report = reap(&provider, Some(&repos[0].1), later).await.unwrap();
    assert_eq!(
        report.examined, 1,
        "only repository one's machine is judged"
    );
    assert!(report.reaped.is_empty(), "{:?}", report.reaped);
    assert!(report.ghost_runners.is_empty());
    assert_eq!(sim.ledger().still_billing.len(), 2, "both launches run on");
    assert_eq!(repos[1].0.runners().len(), 1, "two's runner is untouched");
    let owners: Vec<String> =
        gha_runner_core::CloudProvider::list_tagged(&provider, gha_runner_core::tags::OWNER, None)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| m.tags.get(gha_runner_core::tags::OWNER).cloned())
            .collect();
    assert_eq!(owners.len(), 2);
    assert!(
        owners.contains(&"repo:octo/one".to_owned())
            && owners.contains(&"repo:octo/two".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_busy_when_its_launch_is_stopped_is_deleted_once_let_go_or_left_to_the_reaper() {
    // GitHub keeps a runner killed mid-job busy for a while, and refuses to delete it (422).
    let w = world(Scenario::default(), true).await;
    let runners = Provisioner::new(&w.provider, &w.github);
    runners
        .provision(&request("gpu_1x_a10", 1, 30))
        .await
        .unwrap();
    let id = w.fake.runners()[0].id;
    w.fake.busy_for(id, Duration::from_secs(3));
    let report = runners.stop(&[], &["lambda-77-test".to_owned()]).await;
    assert!(report.cleanup.is_complete(), "{:?}", report.cleanup);
    assert_eq!(
        report.cleanup.runners_deleted,
        [id],
        "deleted once no longer busy"
    );

    // Busy past the wait: named, not deleted; the reaper's job.
    let w = world(Scenario::default(), true).await;
    let github = w.github.clone().with_busy_wait(Duration::from_secs(1));
    let runners = Provisioner::new(&w.provider, &github);
    runners
        .provision(&request("gpu_1x_a10", 1, 30))
        .await
        .unwrap();
    let id = w.fake.runners()[0].id;
    w.fake.busy_for(id, Duration::from_secs(60));
    let report = runners.stop(&[], &["lambda-77-test".to_owned()]).await;
    assert!(
        w.sim.ledger().still_billing.is_empty(),
        "the machine ends anyway"
    );
    let (not_deleted, why) = &report.cleanup.runners_not_deleted[0];
    assert_eq!(*not_deleted, id);
    assert!(
        why.contains("still running a job") && why.contains("reaper"),
        "{why}"
    );
}
