//! `lambda-gha serve` end to end: the controller against the Lambda simulator and a fake GitHub
//! that delivers signed `workflow_job` webhooks and runs jobs on online runners (see
//! `lambda_gha_tests::controller_rig`). Each test asserts on what the controller decided and
//! what the world holds after, never on when things arrived.

use std::time::Duration;

use lambda_gha_tests::controller_rig::{ControllerRig, Host, RigOptions};
use lambda_gha_tests::{FakeJob, WebhookDelivery};

/// `count` jobs on `runs_on`, each taking `seconds` (simulated), one workflow run.
fn jobs(prefix: &str, count: usize, runs_on: &[&str], seconds: u32) -> Vec<FakeJob> {
    (0..count)
        .map(|i| FakeJob::new(&format!("{prefix}-{i}"), runs_on, &[], seconds))
        .collect()
}

/// A cloud whose machines take `seconds` (simulated) to boot.
fn booting_for(seconds: f64) -> lambda_cloud_sim::Scenario {
    lambda_cloud_sim::Scenario::default().with_boot_seconds(seconds)
}

/// What must hold once a run of the controller is over: every job ran, nothing bills,
/// nothing is registered, and the simulator refused no more calls for their rate than
/// arrival jitter explains.
async fn assert_settled(rig: &ControllerRig, expected_jobs: usize) {
    let settled = rig
        .wait_until(Duration::from_secs(120), |rig| {
            rig.all_jobs_finished() && rig.billing() == 0 && rig.github.runners().is_empty()
        })
        .await;
    let (_, status) = lambda_gha_tests::http_get(&format!("{}/status.json", rig.url))
        .await
        .unwrap();
    let jobs: Vec<String> = rig
        .github
        .jobs()
        .iter()
        .map(|(j, s)| format!("{} {s:?}", j.name))
        .collect();
    assert!(
        settled,
        "not settled: jobs {jobs:?}\nbilling {}\nrunners {:?}\nstatus {status}",
        rig.billing(),
        rig.github.names(),
    );
    assert_eq!(
        rig.jobs_succeeded(),
        expected_jobs,
        "jobs {jobs:?}\nstatus {status}"
    );
    if let Err(why) = rig.sim.rate_limited_within_jitter() {
        panic!("{why}\nstatus {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_jobs_over_two_pools_runs_every_job_and_leaves_nothing() {
    let rig = ControllerRig::start(RigOptions::default()).await;
    let mut burst = jobs("a10", 25, &["self-hosted", "gpu-a10"], 30);
    burst.extend(jobs("a100", 25, &["self-hosted", "gpu-a100"], 30));
    // A job no pool serves is left alone: it stays queued, nothing is launched for it.
    burst.push(FakeJob::new("elsewhere", &["ubuntu-latest"], &[], 5));
    rig.github.queue_workflow(burst);
    let ran = rig
        .wait_until(Duration::from_secs(120), |rig| rig.jobs_succeeded() == 50)
        .await;
    assert!(ran, "{} of 50 jobs ran", rig.jobs_succeeded());
    rig.github.cancel("elsewhere");
    assert_settled(&rig, 50).await;
    let launched = rig.launched();
    assert!(
        (50..=56).contains(&launched),
        "one machine per job, and a few a cancelled demand ended: {launched}"
    );
    let store = rig.store();
    println!(
        "50 jobs: {launched} machines launched, {} deliveries sent; decisions: {:#?}",
        rig.deliveries.sent(),
        store
            .recent_decisions(12)
            .unwrap()
            .iter()
            .map(|d| d.text.clone())
            .collect::<Vec<_>>()
    );
    assert!(
        rig.deliveries.refused().is_empty(),
        "{:?}",
        rig.deliveries.refused()
    );
    let totals = store.launch_totals().unwrap();
    assert_eq!(
        totals["a10"].0 + totals["a100"].0,
        launched,
        "every machine was decided and recorded"
    );
    assert_eq!(store.live_launches().unwrap().len(), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_30_percent_of_webhooks_lost_every_job_still_runs() {
    let rig = ControllerRig::start(RigOptions {
        delivery: WebhookDelivery {
            drop_fraction: 0.3,
            duplicates: 0,
            seed: 7,
        },
        poll_jobs_every: "1s",
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("lossy", 16, &["self-hosted", "gpu-a10"], 30));
    assert_settled(&rig, 16).await;
    assert!(rig.deliveries.dropped() > 0, "some deliveries were lost");
    let store = rig.store();
    assert!(
        store.decisions_containing("found by listing").unwrap() > 0,
        "the listing recovered lost jobs"
    );
    assert!(
        rig.launched() <= 18,
        "{} machines for 16 jobs",
        rig.launched()
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_duplicate_deliveries_launch_nothing_more() {
    let rig = ControllerRig::start(RigOptions::default()).await;
    rig.github
        .queue_workflow(jobs("dup", 4, &["self-hosted", "gpu-a100"], 20));
    assert_settled(&rig, 4).await;
    let store = rig.store();
    let (launched, recorded) = (rig.launched(), store.deliveries().unwrap());
    let made = rig.deliveries.made();
    assert_eq!(
        made.len(),
        12,
        "queued, in_progress, completed for each job"
    );
    let url = format!("{}/webhook", rig.url);
    let replays: Vec<_> = (0..8)
        .map(|worker| {
            let (url, made) = (url.clone(), made.clone());
            tokio::spawn(async move {
                let mut refused = Vec::new();
                for n in (worker..10_000).step_by(8) {
                    let (id, signature, body) = &made[n % made.len()];
                    let headers = [
                        ("X-GitHub-Event", "workflow_job"),
                        ("X-GitHub-Delivery", id.as_str()),
                        ("X-Hub-Signature-256", signature.as_str()),
                    ];
                    let (status, text) =
                        lambda_gha_tests::post_webhook(&url, &headers, body.as_bytes())
                            .await
                            .unwrap();
                    if status != 200 {
                        refused.push((status, text));
                    }
                }
                refused
            })
        })
        .collect();
    for replay in replays {
        assert_eq!(replay.await.unwrap(), Vec::<(u16, String)>::new());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.launched(), launched, "no extra launch");
    assert_eq!(store.deliveries().unwrap(), recorded, "nothing new stored");
    assert_eq!(
        rig.controller().metrics().deliveries().get("duplicate"),
        Some(&10_000)
    );
    let (status, metrics) = lambda_gha_tests::http_get(&format!("{}/metrics", rig.url))
        .await
        .unwrap();
    assert_eq!(status, 200);
    for line in [
        "lambda_gha_webhook_deliveries_total{outcome=\"duplicate\"} 10000".to_owned(),
        "lambda_gha_webhook_deliveries_total{outcome=\"accepted\"} 12".to_owned(),
        format!("lambda_gha_launches_total{{pool=\"a100\"}} {launched}"),
        "lambda_gha_machines{pool=\"a100\",state=\"running\"} 0".to_owned(),
        "lambda_gha_queued_jobs{pool=\"a100\"} 0".to_owned(),
        "lambda_gha_jobs{status=\"completed\"} 4".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} not in /metrics:\n{metrics}"
        );
    }
    assert_eq!(store.live_launches().unwrap().len(), 0);
    rig.stop().await;
}

/// A bad delivery: what is wrong, the headers besides event and delivery id, the body, the
/// status wanted.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_are_refused_with_their_status_and_leave_no_trace() {
    let rig = ControllerRig::start(RigOptions::default()).await;
    rig.deliveries.stop();
    let url = format!("{}/webhook", rig.url);
    let good = serde_json::json!({
        "action": "queued",
        "workflow_job": {"id": 1, "run_id": 2, "name": "x", "labels": ["self-hosted", "gpu-a10"], "runner_name": null, "conclusion": null},
        "repository": {"full_name": "octo/gpu"}
    })
    .to_string();
    let sign = |body: &[u8]| lambda_gha_tests::webhook_signature(&rig.secret, body);
    let huge = vec![b' '; 30 << 20];
    let cases: Vec<Case<'_>> = vec![
        (
            "a wrong signature",
            vec![(
                "X-Hub-Signature-256",
                lambda_gha_tests::webhook_signature("not-the-secret", good.as_bytes()),
            )],
            good.clone().into_bytes(),
            401,
        ),
        ("no signature", vec![], good.clone().into_bytes(), 401),
        (
            "malformed JSON",
            vec![("X-Hub-Signature-256", sign(b"{\"action\": \"queued\", "))],
            b"{\"action\": \"queued\", ".to_vec(),
            400,
        ),
        (
            "a 30 MB body",
            vec![("X-Hub-Signature-256", sign(&huge))],
            huge.clone(),
            413,
        ),
    ];
    for (what, extra, body, wanted) in cases {
        let mut headers = vec![
            ("X-GitHub-Event", "workflow_job".to_owned()),
            ("X-GitHub-Delivery", format!("bad-{what}")),
        ];
        headers.extend(extra);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, text) = lambda_gha_tests::post_webhook(&url, &headers, &body)
            .await
            .unwrap();
        assert_eq!(status, wanted, "{what}: {text}");
    }
    let signed = sign(good.as_bytes());
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "unknown-event"),
        ("X-Hub-Signature-256", signed.as_str()),
    ];
    let (status, text) = lambda_gha_tests::post_webhook(&url, &headers, good.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("subscribe the webhook to \"Workflow jobs\""),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let store = rig.store();
    assert_eq!(store.deliveries().unwrap(), 0, "nothing stored");
    assert!(store.jobs_by_status().unwrap().is_empty());
    assert_eq!(rig.launched(), 0, "nothing launched");
    let counted = rig.controller().metrics().deliveries();
    assert_eq!(counted.get("bad_signature"), Some(&2));
    assert_eq!(counted.get("malformed"), Some(&1));
    assert_eq!(counted.get("unknown_event"), Some(&1));
    // The same payload, properly signed, is taken: the refusals were for what they said.
    let headers = [
        ("X-GitHub-Event", "workflow_job"),
        ("X-GitHub-Delivery", "good-one"),
        ("X-Hub-Signature-256", signed.as_str()),
    ];
    let (status, _) = lambda_gha_tests::post_webhook(&url, &headers, good.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 202);
    assert_eq!(store.deliveries().unwrap(), 1);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cancelled_before_their_machines_boot_get_those_machines_terminated() {
    // Boots of an hour (72 s here): the machines are still booting when the jobs are
    // cancelled, however loaded the machine running the test.
    let scenario = booting_for(3600.0);
    let rig = ControllerRig::start(RigOptions {
        scenario,
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("doomed", 3, &["self-hosted", "gpu-a10"], 30));
    let launched = rig
        .wait_until(Duration::from_secs(30), |rig| rig.launched() == 3)
        .await;
    assert!(launched, "three machines launched: {}", rig.launched());
    for i in 0..3 {
        assert!(rig.github.cancel(&format!("doomed-{i}")));
    }
    let ended = rig
        .wait_until(Duration::from_secs(30), |rig| rig.billing() == 0)
        .await;
    assert!(ended, "{} still billing", rig.billing());
    assert_eq!(rig.launched(), 3, "nothing launched in their place");
    assert!(rig.github.runners().is_empty(), "{:?}", rig.github.names());
    let store = rig.store();
    assert_eq!(
        store
            .decisions_containing("no queued job needs it any more (it was booting)")
            .unwrap(),
        3
    );
    assert_eq!(rig.jobs_succeeded(), 0);
    rig.stop().await;
}

/// The most machines billing at once, from the simulator's own ledger.
fn peak_machines(rig: &ControllerRig, instance_type_prefix: &str) -> usize {
    let ledger = rig.sim.ledger();
    let spans: Vec<(f64, f64)> = ledger
        .entries
        .iter()
        .filter(|e| e.instance_type.as_str().starts_with(instance_type_prefix))
        .map(|e| (e.launched_at, e.billing_ended_at.unwrap_or(f64::MAX)))
        .collect();
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_a_cache_mounts_its_regions_filesystem_on_every_machine() {
    // The first region has no capacity for either type: the pool's machines go to the second,
    // with that region's cache filesystem.
    let scenario = lambda_gha_tests::rig::quick_boot_scenario()
        .with_capacity("gpu_1x_a10", "us-east-1", &[(0, 0)])
        .with_capacity("gpu_1x_a6000", "us-east-1", &[(0, 0)]);
    let pools = lambda_gha_tests::controller_rig::TWO_POOLS.replacen(
        "max_machines = 8\n",
        "max_machines = 8\ncache_filesystem = \"true\"\n",
        1,
    );
    let rig = ControllerRig::start(RigOptions {
        scenario,
        pools,
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("cached", 3, &["self-hosted", "gpu-a10"], 10));
    assert_settled(&rig, 3).await;
    let client = rig.sim.client().unwrap();
    let mut names: Vec<String> = client
        .filesystems()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|f| format!("{} in {}", f.name, f.region.name))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "gha-cache-octo-gpu-us-east-1 in us-east-1",
            "gha-cache-octo-gpu-us-west-1 in us-west-1"
        ],
        "made once per region of the pool"
    );
    let launched = client.instances().list().await.unwrap();
    assert!(!launched.is_empty());
    for instance in &launched {
        assert_eq!(
            instance.file_system_names,
            ["gha-cache-octo-gpu-us-west-1"],
            "{} in {}",
            instance.id,
            instance.region.name
        );
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_for_a_pools_first_type_falls_back_and_a_full_pool_makes_jobs_wait() {
    let scenario = lambda_gha_tests::rig::quick_boot_scenario()
        .with_capacity("gpu_1x_a10", "us-east-1", &[(0, 0)])
        .with_capacity("gpu_1x_a10", "us-west-1", &[(0, 0)]);
    let pools = lambda_gha_tests::controller_rig::TWO_POOLS.replace(
        "max_machines = 8\nidle_grace = \"2s\"\n[[pool]]",
        "max_machines = 2\nidle_grace = \"2s\"\n[[pool]]",
    );
    let rig = ControllerRig::start(RigOptions {
        scenario,
        pools,
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("narrow", 6, &["self-hosted", "gpu-a10"], 30));
    assert_settled(&rig, 6).await;
    let ledger = rig.sim.ledger();
    assert!(
        ledger
            .entries
            .iter()
            .all(|e| e.instance_type.as_str() == "gpu_1x_a6000"),
        "every machine on the fallback type"
    );
    assert_eq!(peak_machines(&rig, "gpu_1x"), 2, "the pool's max");
    let store = rig.store();
    assert!(
        store
            .decisions_containing("the pool is at its 2 machine(s)")
            .unwrap()
            >= 1
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_gha_serve_killed_with_sigkill_mid_burst_and_restarted_runs_every_job_and_leaks_nothing()
 {
    // Boots of a simulated minute (1.2 s here): launches are in flight at the crash.
    let scenario = booting_for(60.0);
    let mut rig = ControllerRig::start(RigOptions {
        host: Host::Process,
        scenario,
        poll_jobs_every: "2s",
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("crash", 20, &["self-hosted", "gpu-a10"], 40));
    let mid = rig
        .wait_until(Duration::from_secs(30), |rig| {
            rig.launched() >= 5
                && rig
                    .store()
                    .live_launches()
                    .unwrap()
                    .iter()
                    .any(|l| l.state == gha_runner_controller::store::LaunchState::Launching)
        })
        .await;
    assert!(mid, "launches under way");
    rig.crash_and_restart().await;
    assert_settled(&rig, 20).await;
    let store = rig.store();
    let ended = store
        .decisions_containing("the controller restarted while it was being launched")
        .unwrap();
    let adopted = store
        .decisions_containing("adopted from the last leader")
        .unwrap();
    assert!(ended + adopted >= 1, "the crash caught launches in flight");
    assert!(
        rig.launched() <= 20 + ended,
        "{} machines for 20 jobs; {ended} launches ended at the restart, {adopted} adopted",
        rig.launched()
    );
    rig.stop().await;
}

/// The page as headless Chromium renders it (`--dump-dom`: the DOM after load), with the
/// flags a machine without a network needs (no background connections).
fn rendered_in_chromium(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("chromium-{:08x}", fastrand::u32(..)));
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("chromium (Debian's package `chromium`; `cargo xtask ci` installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_headless_chromium_with_pools_machines_and_decisions() {
    // Boots of an hour (72 s here): the machines are still booting while the page is read.
    let scenario = booting_for(3600.0);
    let rig = ControllerRig::start(RigOptions {
        scenario,
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("shown", 2, &["self-hosted", "gpu-a100"], 30));
    assert!(
        rig.wait_until(Duration::from_secs(30), |rig| rig.launched() == 2)
            .await
    );
    let url = format!("{}/", rig.url);
    let dom = tokio::task::spawn_blocking(move || rendered_in_chromium(&url))
        .await
        .unwrap();
    for wanted in [
        "<title>lambda-gha serve: rig</title>",
        "<table id=\"pools\">",
        "<td>a100</td><td>self-hosted, gpu-a100</td><td>2</td><td>2</td>",
        "<table id=\"machines\">",
        "<td>launching</td>",
        "launch lambda-a100-c",
    ] {
        assert!(
            dom.contains(wanted),
            "{wanted:?} not in the rendered page:\n{dom}"
        );
    }
    for (what, canary) in rig.canaries() {
        assert!(!dom.contains(&canary), "{what} on the status page");
    }
    for i in 0..2 {
        rig.github.cancel(&format!("shown-{i}"));
    }
    assert!(
        rig.wait_until(Duration::from_secs(30), |rig| rig.billing() == 0)
            .await
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_at_its_daily_cost_cap_makes_jobs_wait_and_runs_them_as_machines_end() {
    // $1.70 a day, and the pool's dearest type costs $0.80 an hour: two machines at a time
    // (each must fit its next hour under the cap).
    let pools = lambda_gha_tests::controller_rig::TWO_POOLS.replacen(
        "max_machines = 8\nidle_grace = \"2s\"\n",
        "max_machines = 8\nidle_grace = \"2s\"\ndaily_cost_cap_usd = 1.7\n",
        1,
    );
    let rig = ControllerRig::start(RigOptions {
        pools,
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("capped", 5, &["self-hosted", "gpu-a10"], 30));
    assert_settled(&rig, 5).await;
    assert_eq!(peak_machines(&rig, "gpu_1x"), 2, "the cap's two machines");
    let store = rig.store();
    assert!(
        store
            .decisions_containing("the pool's daily cost cap of $1.70 is reached")
            .unwrap()
            >= 1
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_github_app_the_controller_replaces_installation_tokens_before_they_expire() {
    // Tokens that enter their last five minutes (when the controller replaces them) 2 s after
    // they are issued; the fake takes only unexpired installation tokens of the App.
    let rig = ControllerRig::start(RigOptions {
        app_token_lifetime: Some(Duration::from_secs(5 * 60 + 2)),
        ..RigOptions::default()
    })
    .await;
    rig.github
        .queue_workflow(jobs("app", 6, &["self-hosted", "gpu-a100"], 240));
    assert_settled(&rig, 6).await;
    let (issued, refused) = rig.github.app_tokens();
    assert!(
        issued >= 2,
        "{issued} installation token(s): the first was replaced"
    );
    assert_eq!(refused, 0, "every JWT was accepted");
    let places = rig.places().await;
    for (what, canary) in rig.canaries() {
        for (place, text) in &places {
            assert!(!text.contains(&canary), "{what} in {place}");
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_left_launching_without_its_task_stops_counting_and_the_job_runs() {
    let rig = ControllerRig::start(RigOptions::default()).await;
    // After the start's recovery (which ends what a dead process left launching): /healthz
    // answers once a decision pass ran, and recovery comes before the first.
    let health = format!("{}/healthz", rig.url);
    while lambda_gha_tests::http_get(&health).await.unwrap().0 != 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = rig.store();
    // As if its task had ended 200 s ago without recording how (the rig's registration
    // timeout is 60 s): it would count as a booting machine for the job below forever.
    let long_ago = gha_runner_controller::store::now_millis() - 200_000;
    store
        .new_launch("lambda-a10-cstuck1", "a10", 1, Some(75), long_ago)
        .unwrap();
    rig.github
        .queue_workflow(jobs("unblocked", 1, &["self-hosted", "gpu-a10"], 30));
    assert_settled(&rig, 1).await;
    assert_eq!(
        store.launch_state("lambda-a10-cstuck1").unwrap(),
        Some(gha_runner_controller::store::LaunchState::Ended)
    );
    let decisions: Vec<String> = store
        .recent_decisions(20)
        .unwrap()
        .into_iter()
        .map(|d| d.text)
        .collect();
    assert_eq!(
        store
            .decisions_containing("end lambda-a10-cstuck1: its launch ended without recording how")
            .unwrap(),
        1,
        "{decisions:#?}"
    );
    rig.stop().await;
}
