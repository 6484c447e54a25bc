//! The fault matrix's controller rows: `lambda-gha serve` (the real binary) serving a burst of
//! 8 jobs over two pools while one thing goes wrong — a Lambda operation it calls failing
//! (once, or for a 4 s outage), a GitHub call failing, webhooks lost or sent three times, the
//! controller killed with SIGKILL mid-burst and restarted. The controller is its own backstop
//! (its reaper and idle ends); each row waits for the burst to settle and reports what was
//! left, and scans the controller's log, `/metrics`, `/status.json`, the status page, its
//! state file and the simulator's request log for the row's secrets.

use std::time::{Duration, Instant};

use super::{
    Fault, Flow, LambdaFault, Programs, Row, Scenario, cloud_for, operations_called, secret_hits,
};
use crate::controller_rig::{ControllerRig, Host, RigOptions};
use crate::rig::Left;
use crate::{FakeJob, GitHubFailure, GitHubFault, GitHubRoute, WebhookDelivery};

/// The Lambda operations the controller calls: the catalog (prices and GPU counts, regions),
/// launching and describing machines, listing its machines by tag, terminating them.
pub const OPERATIONS: [&str; 6] = [
    "listInstanceTypes",
    "listRegions",
    "launchInstance",
    "getInstance",
    "listInstances",
    "terminateInstance",
];

/// How webhook deliveries go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFault {
    /// None arrives: only the listing of queued jobs finds the jobs.
    AllLost,
    /// Each arrives three times.
    Tripled,
}

/// The jobs of a burst: 4 per pool.
fn burst() -> Vec<FakeJob> {
    (0..8)
        .map(|i| {
            let pool = if i % 2 == 0 { "gpu-a10" } else { "gpu-a100" };
            FakeJob::new(&format!("burst-{i}"), &["self-hosted", pool], &[], 30)
        })
        .collect()
}

/// The controller's rows.
pub fn scenarios() -> Vec<Scenario> {
    let serve = |fault| Scenario {
        flow: Flow::Controller,
        fault,
    };
    let mut all = vec![serve(Fault::None)];
    for operation in OPERATIONS {
        for (fault, every_call) in [
            (LambdaFault::Internal, false),
            (LambdaFault::Unavailable, true),
        ] {
            all.push(serve(Fault::Lambda {
                operation,
                fault,
                every_call,
            }));
        }
    }
    for fault in [LambdaFault::Timeout, LambdaFault::Dropped] {
        all.push(serve(Fault::Lambda {
            operation: "launchInstance",
            fault,
            every_call: false,
        }));
    }
    for (route, failure, every_call) in [
        (GitHubRoute::JitConfig, GitHubFailure::Status(502), false),
        (
            GitHubRoute::JitConfig,
            GitHubFailure::RateLimited {
                status: 403,
                retry_after: 1,
            },
            false,
        ),
        (GitHubRoute::ListRunners, GitHubFailure::Status(502), true),
        (GitHubRoute::DeleteRunner, GitHubFailure::Status(502), false),
        (GitHubRoute::ListRuns, GitHubFailure::Status(502), true),
        (GitHubRoute::ListRunJobs, GitHubFailure::Hang, false),
    ] {
        all.push(serve(Fault::GitHub(GitHubFault {
            route,
            failure,
            every_call,
        })));
    }
    all.push(serve(Fault::Webhooks(WebhookFault::AllLost)));
    all.push(serve(Fault::Webhooks(WebhookFault::Tripled)));
    all.push(serve(Fault::ControllerKilled));
    all
}

/// Runs one controller row.
pub(super) async fn run_scenario(scenario: Scenario, programs: &Programs) -> Row {
    let started = Instant::now();
    let fault = scenario.fault;
    let delivery = match fault {
        Fault::Webhooks(WebhookFault::AllLost) => WebhookDelivery {
            drop_fraction: 1.0,
            ..WebhookDelivery::default()
        },
        Fault::Webhooks(WebhookFault::Tripled) => WebhookDelivery {
            duplicates: 2,
            ..WebhookDelivery::default()
        },
        _ => WebhookDelivery::default(),
    };
    let mut rig = ControllerRig::start(RigOptions {
        host: Host::Process,
        scenario: cloud_for(fault),
        delivery,
        poll_jobs_every: "1s",
        binary: Some(programs.cli.clone()),
        ..RigOptions::default()
    })
    .await;
    if let Fault::GitHub(fault) = fault {
        rig.github.inject(fault);
    }
    rig.github.queue_workflow(burst());
    let mut problems = Vec::new();
    let outage = matches!(
        fault,
        Fault::Lambda {
            every_call: true,
            ..
        } | Fault::GitHub(GitHubFault {
            every_call: true,
            ..
        })
    );
    if outage {
        tokio::time::sleep(Duration::from_secs(4)).await;
        rig.sim.clear_faults();
        rig.github.clear_faults();
    }
    if fault == Fault::ControllerKilled {
        let caught = rig
            .wait_until(Duration::from_secs(30), |rig| {
                rig.store()
                    .live_launches()
                    .is_ok_and(|live| live.iter().any(|l| l.state.word() == "launching"))
            })
            .await;
        if !caught {
            problems.push("no launch was in flight to kill the controller in".to_owned());
        }
        rig.crash_and_restart().await;
    }
    let settled = rig
        .wait_until(Duration::from_secs(90), |rig| {
            rig.all_jobs_finished() && rig.billing() == 0 && rig.github.runners().is_empty()
        })
        .await;
    let ran = rig.jobs_succeeded();
    let launched = rig.launched();
    // How many machines it took is left out: it depends on when listings and deliveries
    // crossed (a lost delivery can cost a launch, ended while it boots).
    let outcome = if settled && ran == 8 {
        "ok: 8 of 8 jobs ran".to_owned()
    } else {
        format!("{ran} of 8 jobs ran")
    };
    let left = Left {
        machines: rig.billing(),
        runners: rig.github.runners().len(),
        // Pools name an existing SSH key: the controller adds none.
        keys: 0,
    };
    let places = rig.places().await;
    let secret_hits = secret_hits(&places, &rig.canaries());
    let operations = operations_called(&rig.sim.request_log());
    let ended_by = if launched > 0 {
        vec!["controller"]
    } else {
        Vec::new()
    };
    rig.stop().await;
    Row {
        scenario,
        outcome,
        ended_by,
        left_by_flow: left,
        left,
        secret_hits,
        places_scanned: places.len(),
        operations,
        problems,
        seconds: started.elapsed().as_secs_f64(),
    }
}
