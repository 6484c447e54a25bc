//! `lambda-gha serve` as several replicas over one PostgreSQL database
//! (`lambda_gha_tests::replica_rig`), and the two stores side by side. Needs `DATABASE_URL`:
//! `cargo xtask ci` starts a throwaway cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use gha_runner_controller::store::{JobRecord, JobStatus, LaunchState, Millis, Store};
use gha_runner_controller::{PgStore, SqliteStore};
use lambda_gha_tests::postgres::TestDatabase;
use lambda_gha_tests::replica_rig::{ReplicaOptions, ReplicaRig};
use lambda_gha_tests::{FakeJob, JobStatus as FakeJobStatus, WebhookDelivery};

const POOL: &str = r#"
[[pool]]
name = "a10"
labels = ["self-hosted", "gpu-a10"]
types = ["gpu_1x_a10", "gpu_1x_a6000"]
regions = ["us-east-1", "us-west-1"]
ssh_key = "ci"
max_machines = 12
idle_grace = "2s"
"#;

fn labels() -> Vec<String> {
    vec!["self-hosted".to_owned(), "gpu-a10".to_owned()]
}

/// What a store says after a sequence, in one comparable value.
async fn summary(store: &dyn Store) -> String {
    let live: Vec<(String, &str, usize)> = store
        .live_launches()
        .await
        .unwrap()
        .iter()
        .map(|l| (l.label.clone(), l.state.word(), l.runners_used))
        .collect();
    format!(
        "queued {:?}\njobs {:?}\nlive {live:?}\nfinished {:?}\ntotals {:?}\ndeliveries {}\ndecisions {:?}",
        store.queued_by_pool().await.unwrap(),
        store.jobs_by_status().await.unwrap(),
        store.finished_runners().await.unwrap(),
        store.launch_totals().await.unwrap(),
        store.deliveries().await.unwrap(),
        store
            .recent_decisions(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.text.clone())
            .collect::<Vec<_>>(),
    )
}

/// One sequence of deliveries (duplicates, out of order), a listing, launches and their ends.
async fn play(store: &dyn Store) {
    let labels = labels();
    let job = |id: u64, status: JobStatus, runner: Option<&'static str>| JobRecord {
        id,
        run_id: 9,
        repository: "octo/gpu",
        name: "train",
        labels: &labels,
        pool: "a10",
        status,
        runner_name: runner,
    };
    let at = |t: Millis| 1_000_000 + t;
    store.lead("test").await.unwrap().expect("the lead");
    for (i, (id, status, runner)) in [
        (1, JobStatus::Queued, None),
        (2, JobStatus::Queued, None),
        (3, JobStatus::Queued, None),
        (1, JobStatus::Completed, Some("lambda-a10-ca-0-0")),
        (1, JobStatus::InProgress, Some("lambda-a10-ca-0-0")),
        (2, JobStatus::InProgress, Some("lambda-a10-cb-0-0")),
    ]
    .into_iter()
    .enumerate()
    {
        let record = job(id, status, runner);
        let delivery = format!("d{i}");
        store
            .record_delivery(&delivery, Some(&record), at(i64::try_from(i).unwrap()))
            .await
            .unwrap();
        // The same delivery again: nothing changes.
        store
            .record_delivery(&delivery, Some(&record), at(50))
            .await
            .unwrap();
    }
    store
        .record_delivery("no-pool", None, at(60))
        .await
        .unwrap();
    assert_eq!(store.claim_deliveries(at(70)).await.unwrap().len(), 6);
    assert!(
        store.claim_deliveries(at(71)).await.unwrap().is_empty(),
        "claimed once"
    );
    store
        .new_launch("lambda-a10-ca", "a10", 1, Some(75), at(0))
        .await
        .unwrap();
    store
        .new_launch("lambda-a10-cb", "a10", 1, Some(75), at(1))
        .await
        .unwrap();
    store
        .new_launch("lambda-a10-cc", "a10", 1, None, at(2))
        .await
        .unwrap();
    store
        .launch_running(
            "lambda-a10-cb",
            "i-2",
            "gpu_1x_a10",
            "us-east-1",
            None,
            at(80),
        )
        .await
        .unwrap();
    store.set_usage("lambda-a10-cb", 1, None).await.unwrap();
    store
        .set_usage("lambda-a10-cb", 0, Some(at(90)))
        .await
        .unwrap();
    store
        .end_launch("lambda-a10-cc", LaunchState::Failed, "no capacity", at(95))
        .await
        .unwrap();
    // Job 3's later events were lost, and GitHub lists job 4 queued.
    let listed = [job(4, JobStatus::Queued, None)];
    assert_eq!(
        store
            .record_listing("octo/gpu", &listed, at(100), at(110))
            .await
            .unwrap(),
        (1, 1)
    );
    assert_eq!(store.expire_jobs(at(0), at(120)).await.unwrap(), 0);
    store
        .decide(Some("a10"), "launch lambda-a10-ca: 3 job(s) queued", at(3))
        .await
        .unwrap();
    store
        .decide(None, "reaped machine i-9", at(4))
        .await
        .unwrap();
    assert_eq!(
        store.decisions_containing("lambda-a10-ca").await.unwrap(),
        1
    );
    assert_eq!(
        store
            .launch("lambda-a10-cb")
            .await
            .unwrap()
            .map(|l| l.runners_used),
        Some(1),
        "runners used never go down"
    );
    assert_eq!(
        store.launch_state("lambda-a10-cc").await.unwrap(),
        Some(LaunchState::Failed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_keep_the_same_state_through_the_same_sequence() {
    let dir = std::env::temp_dir().join(format!("lgc-parity-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = SqliteStore::open(&dir.join("state.db")).unwrap();
    let database = TestDatabase::create().await;
    let postgres = PgStore::connect(&database.url, None).await.unwrap();
    assert_eq!(postgres.schema_version().await.unwrap(), 3);
    play(&sqlite).await;
    play(&postgres).await;
    let (a, b) = (summary(&sqlite).await, summary(&postgres).await);
    assert_eq!(a, b, "SQLite:\n{a}\nPostgreSQL:\n{b}");
    assert!(
        a.contains(
            "live [(\"lambda-a10-ca\", \"launching\", 1), (\"lambda-a10-cb\", \"running\", 1)]"
        ),
        "{a}"
    );
    postgres.resign().await;
    drop(postgres);
    database.remove().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// One replica leads at a time; a launch is recorded only under the current term; a
/// resigned lead is taken by another; launch slots are spaced across replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_one_replica_leads_launches_are_fenced_and_slots_spaced() {
    let database = TestDatabase::create().await;
    let a = PgStore::connect(&database.url, None).await.unwrap();
    let b = PgStore::connect(&database.url, None).await.unwrap();
    let term = a
        .lead("a")
        .await
        .unwrap()
        .expect("the first asks, the first leads");
    assert_eq!(b.lead("b").await.unwrap(), None, "one leader at a time");
    a.new_launch("lambda-a10-c1", "a10", 1, None, 0)
        .await
        .unwrap();
    let refused = b
        .new_launch("lambda-a10-c2", "a10", 1, None, 0)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no longer leads"), "{refused}");
    assert!(a.renew().await.unwrap());
    a.resign().await;
    let next = b
        .lead("b")
        .await
        .unwrap()
        .expect("taken after the resignation");
    assert!(next.epoch > term.epoch);
    assert!(!a.renew().await.unwrap(), "a resigned term is not renewed");
    let refused = a
        .new_launch("lambda-a10-c3", "a10", 1, None, 0)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no longer leads"), "{refused}");
    // Slots: each is one interval after the one before, whoever asks, and each reservation
    // waits about an interval more (the reservations' own answers, not times measured here).
    let interval = Duration::from_secs(12);
    let mut slots = Vec::new();
    for store in [&a, &b, &a, &b] {
        slots.push(store.reserve_launch(interval).await.unwrap());
    }
    for pair in slots.windows(2) {
        let (first, next) = (pair[0].at.unwrap(), pair[1].at.unwrap());
        assert_eq!(
            next - first,
            12_000,
            "slots {slots:?} are an interval apart"
        );
        let step = pair[1].wait.saturating_sub(pair[0].wait);
        assert!(
            step > Duration::from_secs(11) && step <= interval,
            "slots {slots:?}: each waits an interval more"
        );
    }
    b.resign().await;
    drop((a, b));
    database.remove().await;
}

/// A cloud whose machines take `seconds` (simulated) to boot, with room for a burst of 100.
fn booting_for(seconds: f64) -> lambda_cloud_sim::Scenario {
    lambda_cloud_sim::Scenario {
        default_capacity: 100,
        ..lambda_cloud_sim::Scenario::default()
    }
    .with_boot_seconds(seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_run_200_jobs_through_a_kill_9_and_a_partition_with_no_double_launch() {
    let database = TestDatabase::create().await;
    let mut rig = ReplicaRig::start(
        ReplicaOptions {
            replicas: 3,
            pools: POOL.to_owned(),
            scenario: booting_for(60.0),
            // Every delivery twice: the balancer sends the copy to another replica.
            delivery: WebhookDelivery {
                duplicates: 1,
                ..WebhookDelivery::default()
            },
            poll_jobs_every: "5s",
            binary: None,
        },
        &database,
    )
    .await;
    let first = rig
        .wait_for_leader(&[], Duration::from_secs(20))
        .await
        .expect("a leader");
    let jobs: Vec<FakeJob> = (0..200)
        .map(|i| FakeJob::new(&format!("burst-{i}"), &["self-hosted", "gpu-a10"], &[], 30))
        .collect();
    rig.github.queue_workflow(jobs);
    assert!(
        rig.wait_until(Duration::from_secs(60), |rig| rig
            .sim
            .ledger()
            .entries
            .len()
            >= 40)
            .await,
        "launches under way: {:#?}",
        rig.logs()
            .iter()
            .map(|(n, l)| format!("{n}: {}", &l[l.len().saturating_sub(3000)..]))
            .collect::<Vec<_>>()
    );
    println!(
        "kill -9 replica {first} (leading) at {} machines",
        rig.sim.ledger().entries.len()
    );
    rig.kill(first);
    let second = rig
        .wait_for_leader(&[first], Duration::from_secs(20))
        .await
        .expect("a replica takes over from the killed one");
    let launched_at_kill = rig.sim.ledger().entries.len();
    assert!(
        rig.wait_until(Duration::from_secs(90), |rig| {
            rig.sim.ledger().entries.len() >= launched_at_kill + 40
        })
        .await,
        "the second leader launches"
    );
    println!(
        "replica {second} leads; cut off from the database at {} machines",
        rig.sim.ledger().entries.len()
    );
    rig.cut_off(second);
    let third = rig
        .wait_for_leader(&[first, second], Duration::from_secs(30))
        .await
        .expect("the last replica takes over from the one cut off");
    println!(
        "replica {third} leads at {} machines, {} jobs done",
        rig.sim.ledger().entries.len(),
        rig.jobs_succeeded()
    );
    let settled = rig
        .wait_until(Duration::from_secs(180), |rig| {
            rig.all_jobs_finished()
                && rig.sim.ledger().still_billing.is_empty()
                && rig.github.runners().is_empty()
        })
        .await;
    let store = rig.store().await;
    let decisions: Vec<String> = store
        .recent_decisions(30)
        .await
        .unwrap()
        .iter()
        .map(|d| d.text.clone())
        .collect();
    assert!(
        settled,
        "not settled: {} of 200 jobs ran, {} billing, runners {:?}\ndecisions {decisions:#?}",
        rig.jobs_succeeded(),
        rig.sim.ledger().still_billing.len(),
        rig.github.names()
    );
    assert_eq!(rig.jobs_succeeded(), 200);
    // Launches paced across the replicas, judged on the senders' own decisions: every machine
    // the cloud launched took a slot of the shared pacing first, and the slots are the launch
    // interval apart whichever replica took them, through the kill and the partition. (When
    // a launch arrives depends on how loaded this machine is: one that arrives late earns a
    // 429 its client answers by waiting — no pacing decision of ours, so only more than
    // arrival jitter explains fails.)
    rig.sim.rate_limited_within_jitter().unwrap();
    let slots = rig.launch_slots();
    let interval_ms = i64::try_from(
        Duration::from_secs(12)
            .div_f64(lambda_gha_tests::rig::SCALE.factor())
            .as_millis(),
    )
    .unwrap();
    let too_close: Vec<_> = slots
        .windows(2)
        .filter(|w| w[1].1 - w[0].1 < interval_ms)
        .collect();
    assert!(
        too_close.is_empty(),
        "launch slots under {interval_ms} ms apart: {too_close:?}"
    );
    let slotted: std::collections::BTreeSet<&str> =
        slots.iter().map(|(name, _)| name.as_str()).collect();
    let unpaced: Vec<String> = rig
        .sim
        .ledger()
        .entries
        .into_iter()
        .filter_map(|e| e.name)
        .filter(|name| !slotted.contains(name.as_str()))
        .collect();
    assert!(
        unpaced.is_empty(),
        "launched without a slot of the shared pacing: {unpaced:?}"
    );
    // No double launch: no job ran on two machines, no machine ran two jobs (one runner
    // each), and every machine beyond one per job is one the store records as ended unused —
    // a demand that went away while it booted (counted, not pinned: the listing can say a job
    // left the queue before the delivery naming its runner arrives) or a failed launch.
    let mut machines_used: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status) in rig.github.jobs() {
        if let FakeJobStatus::Done { runner, .. } = status {
            let label = runner.rsplitn(3, '-').nth(2).unwrap_or_default().to_owned();
            *machines_used.entry(label).or_default() += 1;
        }
    }
    let launched = rig.sim.ledger().entries.len();
    let adopted = store
        .decisions_containing("adopted from the last leader")
        .await
        .unwrap();
    let ended_unlaunched = store
        .decisions_containing("restarted while it was being launched")
        .await
        .unwrap();
    let ended_unused = store
        .decisions_containing("no queued job needs it any more")
        .await
        .unwrap();
    let failed: usize = store
        .launch_totals()
        .await
        .unwrap()
        .values()
        .map(|(_, f)| f)
        .sum();
    let summary = format!(
        "200 jobs over 3 replicas: replica {first} led (killed), then {second} (cut off), then {third}; \
         {launched} machines launched, {} ran a job; {adopted} launches adopted, {ended_unlaunched} ended before their machine, \
         {ended_unused} ended unused while booting, {failed} failed; {} launch slots; {} requests \
         arrived late (429, retried); deliveries sent {}, refused {}",
        machines_used.len(),
        slots.len(),
        rig.sim.rate_limited_requests(),
        rig.deliveries.sent(),
        rig.deliveries.refused().len()
    );
    println!("{summary}");
    assert!(
        machines_used.values().all(|&n| n == 1),
        "{machines_used:?}\n{summary}"
    );
    assert_eq!(machines_used.len(), 200, "one machine per job: {summary}");
    assert!(
        launched <= 200 + ended_unused + failed,
        "a machine launched that no job and no recorded decision accounts for: {summary}\ndecisions {decisions:#?}"
    );
    assert!(
        rig.deliveries.refused().is_empty(),
        "the balancer found a replica for every delivery: {:?}",
        rig.deliveries.refused()
    );
    for (place, text) in rig.logs() {
        for (name, secret) in &rig.canaries {
            assert!(!text.contains(secret.as_str()), "{name} in {place}");
        }
    }
    drop(store);
    rig.stop().await;
    database.remove().await;
}
