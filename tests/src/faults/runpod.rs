//! The fault matrix's RunPod rows: the action with `provider: runpod` against the RunPod
//! fake, one fault per scenario — each RunPod operation the flow calls failing with a 429, a
//! 500, a 503 or a lost answer (the call took effect, its answer did not arrive), on the first
//! call or on every call until the outage ends, and no capacity anywhere — followed by the
//! same backstops as Lambda's rows: the pod's own agent, then `lambda-gha --provider runpod
//! reap`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use runpod_fake::{Fault as RunPodSpec, Operation, Scenario as RunPodWorld};

use super::{Fault, Flow, Programs, Row, Scenario, machine_logs, reap, secret_hits};
use crate::FakeInternet;
use crate::rig::run_program;
use crate::runpod_rig::RunPodRig;

/// The RunPod operations the flow calls, by `operationId`: the catalog (preflight), creating
/// and describing pods (the launch and the wait for runners), listing them by tag and deleting
/// them (the stop; the agent deletes its own pod).
pub const OPERATIONS: [&str; 6] = [
    "listGpuTypes",
    "listDataCenters",
    "createPod",
    "getPod",
    "listPods",
    "deletePod",
];

/// How a RunPod call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPodFault {
    /// 429, as over a window's quota.
    RateLimited,
    /// 500.
    Internal,
    /// 503.
    Unavailable,
    /// The call takes effect; a 502 comes back instead of its answer.
    LostAnswer,
}

impl RunPodFault {
    /// Every kind.
    pub const ALL: [RunPodFault; 4] = [
        RunPodFault::RateLimited,
        RunPodFault::Internal,
        RunPodFault::Unavailable,
        RunPodFault::LostAnswer,
    ];

    /// For the table.
    pub fn label(self) -> &'static str {
        match self {
            RunPodFault::RateLimited => "429",
            RunPodFault::Internal => "500",
            RunPodFault::Unavailable => "503",
            RunPodFault::LostAnswer => "lost answer",
        }
    }

    fn spec(self, operation: Operation, every_call: bool) -> RunPodSpec {
        let calls: &[u32] = if every_call { &[] } else { &[1] };
        match self {
            RunPodFault::RateLimited => RunPodSpec::error(operation, 429, calls),
            RunPodFault::Internal => RunPodSpec::error(operation, 500, calls),
            RunPodFault::Unavailable => RunPodSpec::error(operation, 503, calls),
            RunPodFault::LostAnswer => RunPodSpec::lost_answer(operation, calls),
        }
    }
}

/// The RunPod rows: the baseline, every operation × fault × (first call, every call), and no
/// capacity.
pub fn scenarios() -> Vec<Scenario> {
    let row = |fault| Scenario {
        flow: Flow::RunPod,
        fault,
    };
    let mut all = vec![row(Fault::None)];
    for operation in OPERATIONS {
        for fault in RunPodFault::ALL {
            for every_call in [false, true] {
                all.push(row(Fault::RunPod {
                    operation,
                    fault,
                    every_call,
                }));
            }
        }
    }
    all.push(row(Fault::NoCapacity));
    all
}

const TYPES: &str = "1x NVIDIA A40,1x NVIDIA GeForce RTX 4090";
const DATA_CENTER: &str = "US-TX-3";

fn world(fault: Fault) -> (RunPodWorld, Vec<RunPodSpec>) {
    let mut world = RunPodWorld::default();
    let mut faults = Vec::new();
    match fault {
        Fault::RunPod {
            operation,
            fault,
            every_call,
        } => {
            let operation = Operation::from_id(operation).expect("a RunPod operation");
            faults.push(fault.spec(operation, every_call));
        }
        Fault::NoCapacity => {
            for gpu in ["NVIDIA A40", "NVIDIA GeForce RTX 4090"] {
                world
                    .stock
                    .insert((gpu.to_owned(), DATA_CENTER.to_owned()), 0);
            }
        }
        _ => {}
    }
    (world, faults)
}

/// Runs one RunPod row.
pub async fn run_scenario(
    scenario: Scenario,
    index: usize,
    programs: &Programs,
    internet: &FakeInternet,
    dir: &Path,
) -> Row {
    let started = Instant::now();
    let (world, faults) = world(scenario.fault);
    let rig = RunPodRig::start(dir, &format!("{}", 8000 + index), world, faults).await;
    let mut places: Vec<(String, String)> = Vec::new();
    let mut ended_by: Vec<&'static str> = Vec::new();
    let mut inputs = vec![
        ("instance_type", TYPES),
        ("region", DATA_CENTER),
        ("runner_registration_timeout", "10m"),
        ("runner_initial_grace_period", "45m"),
    ];
    if scenario.fault == Fault::NoCapacity {
        inputs.push(("capacity_wait", "5m"));
    }
    let start = run_program(
        &programs.action,
        &[],
        rig.action_env(internet, &inputs),
        dir,
        "start",
        None,
    )
    .await;
    places.extend(start.places("start"));
    let mut outcome = format!("start {}", start.outcome());
    let output = |name: &str| {
        start
            .output
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    let mut last = "start";
    if let Some(label) = output("label") {
        let mtx = output("mtx");
        let mut stop_inputs = vec![("mode", "stop"), ("label", label.as_str())];
        if let Some(mtx) = &mtx {
            stop_inputs.push(("mtx", mtx));
        }
        let stop = run_program(
            &programs.action,
            &[],
            rig.action_env(internet, &stop_inputs),
            dir,
            "stop",
            None,
        )
        .await;
        places.extend(stop.places("stop"));
        let _ = write!(outcome, "; stop {}", stop.outcome());
        if !stop
            .stdout
            .contains("stopped 0 machine(s), deleted 0 runner registration(s)")
        {
            last = "stop";
        }
    }
    if rig
        .fake
        .requests()
        .iter()
        .any(|r| r.starts_with("POST /v2/pods 201") || r.starts_with("POST /v2/pods 502"))
    {
        ended_by.push(last);
    }
    rig.fake.clear_faults();
    rig.github.clear_faults();
    let left_by_flow = rig.left();
    let mut left = left_by_flow;
    if !left.is_clear() {
        ended_by.clear();
        // The pod's agent ends it when no job comes (the initial grace).
        let deadline = Instant::now() + Duration::from_secs(70);
        while !rig.fake.pods().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        let after = rig.left();
        if after.machines < left.machines {
            ended_by.push("agent");
        }
        left = after;
    }
    if !left.is_clear() {
        let reap = reap(
            programs,
            &["--provider", "runpod"],
            rig.cli_env(),
            &rig.pat,
            &rig.github,
            dir,
        )
        .await;
        places.extend(reap.places("reap"));
        let after = rig.left();
        if after != left {
            ended_by.push("reaper");
        }
        left = after;
    }
    let requests = rig.fake.requests();
    places.push((
        "the RunPod fake's request log".to_owned(),
        requests.join("\n"),
    ));
    places.extend(machine_logs(&dir.join("machines")));
    let secret_hits = secret_hits(&places, &rig.canaries());
    let mut problems = Vec::new();
    let invalid = rig.fake.invalid_requests();
    if !invalid.is_empty() {
        problems.push(format!(
            "requests RunPod's description refuses: {invalid:?}"
        ));
    }
    let operations = requests
        .iter()
        .filter_map(|line| Operation::of_request(line).map(|op| op.id().to_owned()))
        .collect();
    Row {
        scenario,
        outcome,
        ended_by,
        left_by_flow,
        left,
        secret_hits,
        places_scanned: places.len(),
        operations,
        problems,
        seconds: started.elapsed().as_secs_f64(),
    }
}
