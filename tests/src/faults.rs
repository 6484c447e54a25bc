//! The fault matrix (`cargo xtask e2e --faults`): the action's start/stop flow and the CLI's
//! `run` flow against the simulator and the fake GitHub, one fault per scenario, followed by
//! the backstops a real deployment has: the machine's own agent, then `lambda-gha reap`. Each
//! scenario reports how the flow ended, who ended what it made, and what was still billing,
//! registered or left in the account at the end. Every output a scenario produced (stdout,
//! stderr, `GITHUB_OUTPUT`, step summary, the machines' logs, the simulator's request log) is
//! scanned for that scenario's unique secrets.

pub mod controller;
pub mod runpod;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_cloud_sim::{FaultSpec, InstanceBehavior, Scenario as CloudScenario};

use crate::rig::{
    HOLD, KillWhen, Left, Machines, Rig, files_where, quick_boot_scenario, run_program,
    run_program_signalled,
};
use crate::{FakeInternet, GitHubFailure, GitHubFault, GitHubRoute, TokenPermission};

/// The programs under test.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `lambda-gha-action`.
    pub action: PathBuf,
    /// `lambda-gha` (the CLI, the agent and the reaper).
    pub cli: PathBuf,
}

impl Programs {
    /// Both, built once for this process (see [`crate::program`]).
    pub fn build() -> Programs {
        Programs {
            action: crate::program(crate::Program::Action),
            cli: crate::program(crate::Program::Cli),
        }
    }
}

/// Which flow a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The action: `mode: start`, then (when it succeeded) `mode: stop`, as `runner.yml` does.
    Action,
    /// `lambda-gha run --cmd 'echo ok'` on a simulated machine.
    Run,
    /// The action with `provider: runpod` against the RunPod fake, its pods booting as real
    /// root (see [`runpod`]).
    RunPod,
    /// `lambda-gha serve` through a burst of jobs (see [`controller`]).
    Controller,
}

impl Flow {
    fn label(self) -> &'static str {
        match self {
            Flow::Action => "action",
            Flow::Run => "run",
            Flow::RunPod => "runpod",
            Flow::Controller => "serve",
        }
    }

    /// The operations the flow uses (Lambda's, or RunPod's), each faulted in turn. The fault-free scenario of
    /// each flow checks that these are exactly the ones it called.
    pub fn operations(self) -> &'static [&'static str] {
        match self {
            Flow::Action => &[
                "listInstanceTypes",
                "listRegions",
                "listSSHKeys",
                "addSSHKey",
                "launchInstance",
                "getInstance",
                "deleteSSHKey",
                "listInstances",
                "terminateInstance",
            ],
            Flow::RunPod => &runpod::OPERATIONS,
            Flow::Controller => &controller::OPERATIONS,
            Flow::Run => &[
                "listInstanceTypes",
                "listRegions",
                "listSSHKeys",
                "addSSHKey",
                "launchInstance",
                "deleteSSHKey",
                "getInstance",
                "terminateInstance",
            ],
        }
    }
}

/// How a Lambda call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaFault {
    /// 429 `global/rate-limited`.
    RateLimited,
    /// 500 `global/internal-error`.
    Internal,
    /// 503 `provider/internal-unavailable`.
    Unavailable,
    /// No answer within the client's timeout.
    Timeout,
    /// The call happens, then the connection drops before the answer.
    Dropped,
}

impl LambdaFault {
    /// Every kind.
    pub const ALL: [LambdaFault; 5] = [
        LambdaFault::RateLimited,
        LambdaFault::Internal,
        LambdaFault::Unavailable,
        LambdaFault::Timeout,
        LambdaFault::Dropped,
    ];

    fn label(self) -> &'static str {
        match self {
            LambdaFault::RateLimited => "429",
            LambdaFault::Internal => "500",
            LambdaFault::Unavailable => "503 internal-unavailable",
            LambdaFault::Timeout => "timeout",
            LambdaFault::Dropped => "dropped connection",
        }
    }

    fn spec(self, operation: &str, every_call: bool) -> FaultSpec {
        let (status, code) = match self {
            LambdaFault::RateLimited => (Some(429), "global/rate-limited"),
            LambdaFault::Internal => (Some(500), "global/internal-error"),
            LambdaFault::Unavailable => (Some(503), "provider/internal-unavailable"),
            LambdaFault::Timeout | LambdaFault::Dropped => (None, ""),
        };
        FaultSpec {
            operation: operation.to_owned(),
            status,
            code: code.to_owned(),
            message: "Injected by the fault matrix.".to_owned(),
            on_calls: if every_call { Vec::new() } else { vec![1] },
            probability: None,
            // Past the client's time-scaled timeout (its 2 s floor).
            latency_ms: if self == LambdaFault::Timeout {
                3_000
            } else {
                0
            },
            drop_connection: self == LambdaFault::Dropped,
        }
    }
}

/// Where the action process is killed (SIGKILL): inside a call held open for 3 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Checked the request, making the launch's SSH key.
    MakingKey,
    /// Made the key, launching.
    Launching,
    /// Launched, waiting for the runners to come online.
    WaitingForRunners,
    /// Runners online, deleting the launch key (just before the outputs).
    DeletingKey,
    /// The stop job, terminating.
    Stopping,
}

impl Moment {
    /// Every moment.
    pub const ALL: [Moment; 5] = [
        Moment::MakingKey,
        Moment::Launching,
        Moment::WaitingForRunners,
        Moment::DeletingKey,
        Moment::Stopping,
    ];

    fn label(self) -> &'static str {
        match self {
            Moment::MakingKey => "start killed making the SSH key",
            Moment::Launching => "start killed launching",
            Moment::WaitingForRunners => "start killed waiting for runners",
            Moment::DeletingKey => "start killed with runners online",
            Moment::Stopping => "stop killed terminating",
        }
    }

    fn held_operation(self) -> &'static str {
        match self {
            Moment::MakingKey => "addSSHKey",
            Moment::Launching => "launchInstance",
            Moment::WaitingForRunners => "getInstance",
            Moment::DeletingKey => "deleteSSHKey",
            Moment::Stopping => "terminateInstance",
        }
    }
}

/// What can be wrong with the cache's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheFault {
    /// It cannot be made (Lambda refuses `createFilesystem` for the account's quota).
    CannotBeMade,
    /// It is gone by the launch (deleted meanwhile): Lambda answers the launch 404.
    MissingAtLaunch,
    /// Its name is taken by a filesystem in another region.
    InAnotherRegion,
    /// It is full: the machines boot without it.
    Full,
}

impl CacheFault {
    /// Every cache fault.
    pub const ALL: [CacheFault; 4] = [
        CacheFault::CannotBeMade,
        CacheFault::MissingAtLaunch,
        CacheFault::InAnotherRegion,
        CacheFault::Full,
    ];

    fn label(self) -> &'static str {
        match self {
            CacheFault::CannotBeMade => "cache filesystem cannot be made (quota)",
            CacheFault::MissingAtLaunch => "cache filesystem gone by the launch",
            CacheFault::InAnotherRegion => "cache filesystem's name taken in another region",
            CacheFault::Full => "cache filesystem full",
        }
    }
}

/// The cache's filesystem in us-east-1 for the rows' repository (`octo/gpu`).
const CACHE_FILESYSTEM: &str = "gha-cache-octo-gpu-us-east-1";

/// The one thing that goes wrong in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: the baseline.
    None,
    /// A RunPod operation fails.
    RunPod {
        /// The operation (its `operationId`).
        operation: &'static str,
        /// How.
        fault: runpod::RunPodFault,
        /// Every call (until the outage ends), not just the first.
        every_call: bool,
    },
    /// A Lambda operation fails.
    Lambda {
        /// The operation.
        operation: &'static str,
        /// How.
        fault: LambdaFault,
        /// Every call (until the outage ends), not just the first.
        every_call: bool,
    },
    /// A GitHub call fails.
    GitHub(GitHubFault),
    /// The action process is killed.
    Killed(Moment),
    /// The action is cancelled (SIGTERM, as a cancelled workflow sends it).
    Cancelled(Moment),
    /// The instance never leaves `booting`.
    NeverActive,
    /// The instance goes `unhealthy` after becoming active.
    Unhealthy,
    /// The runner never comes online.
    NeverRegisters,
    /// A machine boots with one of its GPUs missing, so its health gate fails.
    GpuMissing {
        /// Every machine launched, not just the first.
        every_launch: bool,
    },
    /// No capacity anywhere, for the whole capacity wait.
    NoCapacity,
    /// Capacity is listed, but the launch is refused for capacity.
    CapacityVanishes {
        /// Every launch, not just the first.
        every_call: bool,
    },
    /// The agent's terminate calls fail for a while.
    AgentTerminateFails,
    /// GitHub does not know the token (401 "Bad credentials" on every call).
    GitHubTokenUnknown,
    /// The token may read runners but not register or delete them (403 on writes).
    GitHubTokenReadOnly,
    /// Webhook deliveries go wrong (the controller's rows).
    Webhooks(controller::WebhookFault),
    /// The controller is killed with SIGKILL while it launches, and started again.
    ControllerKilled,
    /// Something is wrong with the cache's filesystem (`cache_filesystem: true`).
    Cache(CacheFault),
}

impl Fault {
    fn label(self) -> String {
        let when = |every: bool| if every { "every call" } else { "first call" };
        match self {
            Fault::None => "none".to_owned(),
            Fault::Lambda {
                operation,
                fault,
                every_call,
            } => format!("`{operation}` {}, {}", fault.label(), when(every_call)),
            Fault::RunPod {
                operation,
                fault,
                every_call,
            } => format!("`{operation}` {}, {}", fault.label(), when(every_call)),
            Fault::GitHub(fault) => {
                let route = match fault.route {
                    GitHubRoute::JitConfig => "generate-jitconfig",
                    GitHubRoute::RegistrationToken => "registration-token",
                    GitHubRoute::ListRunners => "list runners",
                    GitHubRoute::DeleteRunner => "delete runner",
                    GitHubRoute::SetLabels => "set runner labels",
                    GitHubRoute::RunnerDownloads => "runner downloads",
                    GitHubRoute::ListRuns => "list workflow runs",
                    GitHubRoute::ListRunJobs => "list a run's jobs",
                };
                let how = match fault.failure {
                    GitHubFailure::Status(status) => status.to_string(),
                    GitHubFailure::Hang => "timeout".to_owned(),
                    GitHubFailure::RateLimited {
                        status,
                        retry_after,
                    } => format!("secondary rate limit {status} (retry-after {retry_after} s)"),
                };
                format!("GitHub {route} {how}, {}", when(fault.every_call))
            }
            Fault::Killed(moment) => format!("SIGKILL: {}", moment.label()),
            Fault::Cancelled(moment) => {
                format!("SIGTERM: {}", moment.label().replace("killed", "cancelled"))
            }
            Fault::NeverActive => "instance never leaves booting".to_owned(),
            Fault::Unhealthy => "instance goes unhealthy".to_owned(),
            Fault::NeverRegisters => "runner never registers".to_owned(),
            Fault::GpuMissing { every_launch } => format!(
                "a GPU missing on {} machine",
                if every_launch { "every" } else { "the first" }
            ),
            Fault::NoCapacity => "no capacity for the whole wait".to_owned(),
            Fault::CapacityVanishes { every_call } => {
                format!("capacity vanishes before the launch, {}", when(every_call))
            }
            Fault::AgentTerminateFails => "agent's terminate fails 8 times".to_owned(),
            Fault::GitHubTokenUnknown => "GitHub token unknown to GitHub (401)".to_owned(),
            Fault::GitHubTokenReadOnly => {
                "GitHub token can only read runners (403 on writes)".to_owned()
            }
            Fault::Webhooks(controller::WebhookFault::AllLost) => {
                "every webhook delivery lost".to_owned()
            }
            Fault::Webhooks(controller::WebhookFault::Tripled) => {
                "every webhook delivered three times".to_owned()
            }
            Fault::ControllerKilled => "SIGKILL mid-burst, restarted".to_owned(),
            Fault::Cache(fault) => fault.label().to_owned(),
        }
    }

    /// Whether the machine's runner reports itself online once it runs (a machine that
    /// turns unhealthy does so before its runner gets that far, and its replacement's does).
    fn runner_reports(self) -> bool {
        self != Fault::NeverRegisters
    }
}

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// The flow.
    pub flow: Flow,
    /// What goes wrong.
    pub fault: Fault,
}

/// Every scenario, baselines first.
pub fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    for flow in [Flow::Action, Flow::Run] {
        all.push(Scenario {
            flow,
            fault: Fault::None,
        });
        for operation in flow.operations() {
            for fault in LambdaFault::ALL {
                for every_call in [false, true] {
                    all.push(Scenario {
                        flow,
                        fault: Fault::Lambda {
                            operation,
                            fault,
                            every_call,
                        },
                    });
                }
            }
        }
    }
    let action = |fault| Scenario {
        flow: Flow::Action,
        fault,
    };
    for route in [
        GitHubRoute::JitConfig,
        GitHubRoute::RegistrationToken,
        GitHubRoute::ListRunners,
        GitHubRoute::DeleteRunner,
        GitHubRoute::RunnerDownloads,
    ] {
        for failure in [
            GitHubFailure::Status(401),
            GitHubFailure::Status(403),
            GitHubFailure::Status(422),
            GitHubFailure::Status(502),
            GitHubFailure::Hang,
        ] {
            all.push(action(Fault::GitHub(GitHubFault {
                route,
                failure,
                // A hang is one 30 s timeout; on every call it is the same path, slower.
                every_call: failure != GitHubFailure::Hang,
            })));
        }
        // A secondary rate limit, once: waited out as GitHub asks.
        for status in [403, 429] {
            all.push(action(Fault::GitHub(GitHubFault {
                route,
                failure: GitHubFailure::RateLimited {
                    status,
                    retry_after: 1,
                },
                every_call: false,
            })));
        }
    }
    all.extend([Fault::GitHubTokenUnknown, Fault::GitHubTokenReadOnly].map(action));
    all.extend(Moment::ALL.map(|moment| action(Fault::Killed(moment))));
    all.extend([Moment::Launching, Moment::WaitingForRunners].map(|m| action(Fault::Cancelled(m))));
    all.extend(
        [
            Fault::NeverActive,
            Fault::Unhealthy,
            Fault::GpuMissing {
                every_launch: false,
            },
            Fault::GpuMissing { every_launch: true },
            Fault::NeverRegisters,
            Fault::NoCapacity,
            Fault::CapacityVanishes { every_call: false },
            Fault::CapacityVanishes { every_call: true },
            Fault::AgentTerminateFails,
        ]
        .map(action),
    );
    all.extend(CacheFault::ALL.map(|fault| action(Fault::Cache(fault))));
    all.extend(runpod::scenarios());
    all.extend(controller::scenarios());
    all.extend(
        [
            Fault::NeverActive,
            Fault::Unhealthy,
            Fault::GpuMissing {
                every_launch: false,
            },
            Fault::NoCapacity,
            Fault::CapacityVanishes { every_call: false },
            Fault::CapacityVanishes { every_call: true },
        ]
        .map(|fault| Scenario {
            flow: Flow::Run,
            fault,
        }),
    );
    all
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// How the flow ended: `ok`, or the exit code and the error, ids masked.
    pub outcome: String,
    /// Who ended what the flow made, in order (`start`, `stop`, `run`, `agent`, `reaper`).
    pub ended_by: Vec<&'static str>,
    /// What the flow itself left behind.
    pub left_by_flow: Left,
    /// What was left at the end, after the backstops.
    pub left: Left,
    /// Secrets found in the scenario's outputs (place: which secret).
    pub secret_hits: Vec<String>,
    /// Places scanned for secrets.
    pub places_scanned: usize,
    /// Lambda operations the flow called.
    pub operations: BTreeSet<String>,
    /// Problems with the scenario itself (a kill that found no moment to land in).
    pub problems: Vec<String>,
    /// Real seconds it took.
    pub seconds: f64,
}

/// The whole matrix's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// One row per scenario, in scenario order.
    pub rows: Vec<Row>,
}

impl Report {
    /// Machines, registrations and keys left at the end, over all scenarios.
    pub fn leaked(&self) -> Left {
        self.rows.iter().fold(Left::default(), |sum, row| Left {
            machines: sum.machines + row.left.machines,
            runners: sum.runners + row.left.runners,
            keys: sum.keys + row.left.keys,
        })
    }

    /// Secret hits over all scenarios.
    pub fn secret_hits(&self) -> usize {
        self.rows.iter().map(|r| r.secret_hits.len()).sum()
    }

    /// Places scanned over all scenarios.
    pub fn places_scanned(&self) -> usize {
        self.rows.iter().map(|r| r.places_scanned).sum()
    }

    /// What is wrong with the matrix itself: a baseline that failed, or called operations
    /// other than those its flow's scenarios fault; scenarios that could not do their part.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for row in &self.rows {
            let name = format!(
                "{} / {}",
                row.scenario.flow.label(),
                row.scenario.fault.label()
            );
            problems.extend(row.problems.iter().map(|p| format!("{name}: {p}")));
            if row.scenario.fault != Fault::None {
                continue;
            }
            if row.outcome.contains("exit") || row.outcome.contains("killed") {
                problems.push(format!("{name}: the baseline failed: {}", row.outcome));
            }
            let faulted: BTreeSet<String> = row
                .scenario
                .flow
                .operations()
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            if faulted != row.operations {
                problems.push(format!(
                    "{name}: the flow calls {:?} but the matrix faults {:?}",
                    row.operations, faulted
                ));
            }
        }
        problems
    }

    /// The table for the documentation: deterministic columns only.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| # | Flow | Fault | Outcome | Ended by | Left at the end (machines / runners / keys) |\n\
             |---|---|---|---|---|---|\n",
        );
        for (i, row) in self.rows.iter().enumerate() {
            let ended = if row.ended_by.is_empty() {
                "nothing was made".to_owned()
            } else {
                row.ended_by.join(" + ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} / {} / {} |",
                i + 1,
                row.scenario.flow.label(),
                row.scenario.fault.label(),
                row.outcome.replace('|', "\\|"),
                ended,
                row.left.machines,
                row.left.runners,
                row.left.keys
            );
        }
        let leaked = self.leaked();
        let _ = write!(
            out,
            // How many outputs were scanned varies with the logs machines wrote: not here.
            "\n{} scenarios; left at the end: {} machines, {} runner registrations, {} SSH keys; \
             secrets found in the captured outputs: {}.\n",
            self.rows.len(),
            leaked.machines,
            leaked.runners,
            leaked.keys,
            self.secret_hits()
        );
        out
    }
}

/// Runs every scenario, `parallel` at a time, printing a line per scenario as it ends.
pub async fn run_matrix(programs: &Programs, scenarios: &[Scenario], parallel: usize) -> Report {
    let work = std::env::temp_dir().join(format!("fault-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("create the matrix's work directory");
    let internet = Arc::new(FakeInternet::start(&programs.cli, &work).await);
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for (index, scenario) in scenarios.iter().copied().enumerate() {
        let (programs, internet, permits) = (programs.clone(), internet.clone(), permits.clone());
        let dir = work.join(format!("s{index}"));
        tasks.push(tokio::spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let row = match scenario.flow {
                Flow::RunPod => {
                    runpod::run_scenario(scenario, index, &programs, &internet, &dir).await
                }
                Flow::Controller => controller::run_scenario(scenario, &programs).await,
                Flow::Action | Flow::Run => {
                    run_scenario(scenario, index, &programs, &internet, &dir).await
                }
            };
            if std::env::var_os("FAULT_MATRIX_KEEP").is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let leak = if row.left.is_clear() { "" } else { "  LEAK" };
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "  {:>3} {:<6} {:<60} {:>5.1}s  {}{leak}",
                    index + 1,
                    scenario.flow.label(),
                    scenario.fault.label(),
                    row.seconds,
                    row.outcome
                );
            }
            row
        }));
    }
    let mut rows = Vec::new();
    for task in tasks {
        rows.push(task.await.expect("a scenario panicked"));
    }
    if std::env::var_os("FAULT_MATRIX_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Report { rows }
}

/// The simulated world of a scenario with `fault`.
fn cloud_for(fault: Fault) -> CloudScenario {
    let mut world = quick_boot_scenario();
    match fault {
        Fault::Lambda {
            operation,
            fault,
            every_call,
        } => world = world.with_fault(fault.spec(operation, every_call)),
        Fault::Killed(moment) | Fault::Cancelled(moment) => {
            world =
                world.with_fault(FaultSpec::delayed(moment.held_operation(), HOLD).on_calls([1]));
        }
        Fault::NeverActive => world = world.with_behavior(1, InstanceBehavior::NeverActive),
        Fault::Unhealthy => {
            world = world.with_behavior(1, InstanceBehavior::UnhealthyAfter { seconds: 5.0 });
        }
        Fault::GpuMissing { every_launch } => {
            for launch in 1..=if every_launch { 3 } else { 1 } {
                world = world.with_behavior(launch, InstanceBehavior::GpusMissing { count: 1 });
            }
        }
        Fault::NoCapacity => {
            for ty in ["gpu_1x_a10", "gpu_1x_a6000"] {
                world = world.with_capacity(ty, "us-east-1", &[(0, 0)]);
            }
        }
        Fault::CapacityVanishes { every_call } => {
            let vanishes = FaultSpec::error(
                "launchInstance",
                400,
                "instance-operations/launch/insufficient-capacity",
            )
            .message("Not enough capacity to fulfill launch request.");
            world = world.with_fault(if every_call {
                vanishes
            } else {
                vanishes.on_calls([1])
            });
        }
        Fault::AgentTerminateFails => {
            world = world.with_fault(
                FaultSpec::error("terminateInstance", 500, "global/internal-error")
                    .message("Injected by the fault matrix.")
                    .on_calls(1..=8),
            );
        }
        Fault::Cache(CacheFault::CannotBeMade) => {
            world = world.with_fault(
                FaultSpec::error("createFilesystem", 400, "global/quota-exceeded")
                    .message("Quota exceeded."),
            );
        }
        Fault::Cache(CacheFault::MissingAtLaunch) => {
            // What the simulator answers a launch naming a filesystem that does not exist.
            world = world.with_fault(
                FaultSpec::error("launchInstance", 404, "global/object-does-not-exist")
                    .message(&format!("filesystem {CACHE_FILESYSTEM:?} does not exist."))
                    .on_calls([1]),
            );
        }
        Fault::Cache(CacheFault::InAnotherRegion | CacheFault::Full)
        | Fault::None
        | Fault::RunPod { .. }
        | Fault::GitHub(_)
        | Fault::NeverRegisters
        | Fault::GitHubTokenUnknown
        | Fault::GitHubTokenReadOnly
        | Fault::Webhooks(_)
        | Fault::ControllerKilled => {}
    }
    world
}

async fn run_scenario(
    scenario: Scenario,
    index: usize,
    programs: &Programs,
    internet: &FakeInternet,
    dir: &Path,
) -> Row {
    let started = Instant::now();
    let setup = Rig::start(
        cloud_for(scenario.fault),
        dir,
        format!("{}", 7000 + index),
        scenario.fault.runner_reports(),
        match scenario.flow {
            // (RunPod rows are run by `runpod_faults`, on their own rig.)
            Flow::Action | Flow::RunPod | Flow::Controller => Machines::Root,
            Flow::Run => Machines::Sandbox,
        },
    )
    .await;
    match scenario.fault {
        Fault::GitHub(fault) => setup.github.inject(fault),
        Fault::GitHubTokenUnknown => setup.github.require_token(
            "a-token-github-issued-to-someone-else",
            TokenPermission::Write,
        ),
        Fault::GitHubTokenReadOnly => setup
            .github
            .require_token(&setup.pat, TokenPermission::Read),
        _ => {}
    }
    let _full = match scenario.fault {
        Fault::Cache(CacheFault::InAnotherRegion) => {
            make_filesystem(&setup, "us-west-1").await;
            None
        }
        Fault::Cache(CacheFault::Full) => Some(FullFilesystem::make(&setup).await),
        _ => None,
    };
    let mut places: Vec<(String, String)> = Vec::new();
    let mut ended_by: Vec<&'static str> = Vec::new();
    let mut problems = Vec::new();
    let fault = scenario.fault;
    let outcome = match scenario.flow {
        Flow::Action | Flow::RunPod | Flow::Controller => {
            let mut inputs = vec![
                ("instance_type", "gpu_1x_a10,gpu_1x_a6000"),
                ("region", "us-east-1"),
                // 12 s real, for the action and the machine alike.
                ("runner_registration_timeout", "10m"),
                // 54 s real: longer than any wait a fault causes (a 30 s GitHub timeout), so
                // no machine ends itself while its start is still going.
                ("runner_initial_grace_period", "45m"),
            ];
            if let Fault::Cache(_) = fault {
                inputs.push(("cache_filesystem", "true"));
            }
            match fault {
                Fault::NoCapacity => inputs.push(("capacity_wait", "5m")),
                // Reusable runners are the default; JIT configurations are asked for only
                // in JIT mode.
                Fault::GitHub(GitHubFault {
                    route: GitHubRoute::JitConfig,
                    ..
                }) => inputs.push(("runner_mode", "jit")),
                _ => {}
            }
            let (moment, signal) = match fault {
                Fault::Killed(moment) => (Some(moment), "KILL"),
                Fault::Cancelled(moment) => (Some(moment), "TERM"),
                _ => (None, "KILL"),
            };
            let kill_start: Option<KillWhen<'_>> = match moment {
                Some(Moment::MakingKey) => Some(Box::new(|out: &str| out.contains("worst case:"))),
                Some(Moment::Launching) => Some(Box::new(|out: &str| out.contains("made SSH key"))),
                Some(Moment::WaitingForRunners) => {
                    let sim = &setup.sim;
                    Some(Box::new(move |_: &str| !sim.ledger().entries.is_empty()))
                }
                Some(Moment::DeletingKey) => {
                    let github = &setup.github;
                    Some(Box::new(move |_: &str| {
                        let runners = github.runners();
                        !runners.is_empty() && runners.iter().all(|r| r.online)
                    }))
                }
                Some(Moment::Stopping) | None => None,
            };
            let start = run_program_signalled(
                &programs.action,
                &[],
                setup.action_env(internet, &inputs),
                dir,
                "start",
                kill_start,
                signal,
            )
            .await;
            places.extend(start.places("start"));
            let mut outcome = format!("start {}", start.outcome());
            if matches!(fault, Fault::Killed(_))
                && fault != Fault::Killed(Moment::Stopping)
                && !start.killed
            {
                problems.push("the start ended before the kill".to_owned());
            }
            if matches!(fault, Fault::Cancelled(_))
                && !start.stdout.contains("::warning title=Cancelled")
            {
                problems.push("the start ended before it was cancelled".to_owned());
            }
            let mut last = "start";
            // The stop job runs when the start wrote its label (`if: always()`, as the README
            // has it), with the `mtx` when there is one; an agent test leaves the machine to
            // its agent.
            let output = |name: &str| {
                start
                    .output
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}=")))
                    .map(str::to_owned)
            };
            let (label, mtx) = (output("label"), output("mtx"));
            if let (true, Some(label)) = (fault != Fault::AgentTerminateFails, label) {
                let mut inputs = vec![("mode", "stop"), ("label", label.as_str())];
                if let Some(mtx) = &mtx {
                    inputs.push(("mtx", mtx));
                }
                let kill_stop: Option<KillWhen<'_>> = (fault == Fault::Killed(Moment::Stopping))
                    .then(|| -> KillWhen<'_> {
                        Box::new(|out: &str| out.contains("::group::Stopping"))
                    });
                let stop = run_program(
                    &programs.action,
                    &[],
                    setup.action_env(internet, &inputs),
                    dir,
                    "stop",
                    kill_stop,
                )
                .await;
                places.extend(stop.places("stop"));
                let _ = write!(outcome, "; stop {}", stop.outcome());
                if fault == Fault::Killed(Moment::Stopping) && !stop.killed {
                    problems.push("the stop ended before the kill".to_owned());
                }
                // A stop that found nothing to end ended nothing: what the start made, the
                // start ended (its own cleanup).
                if !stop
                    .stdout
                    .contains("stopped 0 machine(s), deleted 0 runner registration(s)")
                {
                    last = "stop";
                }
            }
            if setup.made_anything() {
                ended_by.push(last);
            }
            outcome
        }
        Flow::Run => {
            let project = dir.join("project");
            std::fs::create_dir_all(&project).expect("create the project");
            std::fs::write(project.join("train.sh"), "echo trained > out.txt\n")
                .expect("write the project");
            let types = "gpu_1x_a10,gpu_1x_a6000";
            let sandbox = dir.join("machines").display().to_string();
            let project_arg = project.display().to_string();
            let mut args = vec![
                "run",
                "train.sh",
                "--type",
                types,
                "--region",
                "us-east-1",
                "--sim-sandbox",
                &sandbox,
                "--project",
                &project_arg,
                "--boot-timeout",
                "60s",
            ];
            if fault == Fault::NoCapacity {
                // The CLI waits on its own clock.
                args.extend(["--capacity-wait", "5s"]);
            }
            let run = run_program(&programs.cli, &args, setup.cli_env(), dir, "run", None).await;
            places.extend(run.places("run"));
            if setup.made_anything() {
                ended_by.push("run");
            }
            let outcome = format!("run {}", run.outcome());
            // A machine the run could not end is printed with the command that ends it; a
            // person runs it once the outage is over.
            let printed = regex::Regex::new(r"`lambda-gha terminate ([0-9a-f]{32})`")
                .expect("a valid pattern")
                .captures(&format!("{}\n{}", run.stdout, run.stderr))
                .map(|c| c[1].to_owned());
            if let Some(id) = printed {
                setup.end_outage();
                ended_by.clear();
                let terminate = run_program(
                    &programs.cli,
                    &["terminate", &id],
                    setup.cli_env(),
                    dir,
                    "terminate",
                    None,
                )
                .await;
                places.extend(terminate.places("terminate"));
                if terminate.success() {
                    ended_by.push("the printed command");
                }
            }
            outcome
        }
    };
    if matches!(fault, Fault::Killed(_) | Fault::Cancelled(_)) {
        // A call held when its caller died may still complete.
        tokio::time::sleep(HOLD + Duration::from_millis(500)).await;
    }
    setup.end_outage();
    let left_by_flow = setup.left().await;
    let mut left = left_by_flow;
    if !left.is_clear() {
        ended_by.clear();
    }
    if !left.is_clear() {
        // An agent ends its machine when no job comes (the initial grace: 18 s).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !setup.sim.ledger().still_billing.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // GitHub sees a dead machine's runner go offline a few seconds later.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let after = setup.left().await;
        if after.machines < left.machines {
            ended_by.push("agent");
        }
        left = after;
    }
    if !left.is_clear() {
        let reap = reap(
            programs,
            &[],
            setup.cli_env(),
            &setup.pat,
            &setup.github,
            dir,
        )
        .await;
        places.extend(reap.places("reap"));
        let after = setup.left().await;
        if after != left {
            ended_by.push("reaper");
        }
        left = after;
    }
    let machine_places = machine_logs(&dir.join("machines"));
    if fault == Fault::Cache(CacheFault::Full)
        && !machine_places
            .iter()
            .any(|(_, text)| text.contains("is full") && text.contains("going on without it"))
    {
        problems.push("no machine said its cache was full".to_owned());
    }
    let request_log = setup.sim.request_log();
    places.push((
        "the simulator's request log".to_owned(),
        request_log.join("\n"),
    ));
    places.extend(machine_places);
    let secret_hits = secret_hits(&places, &setup.canaries());
    let operations = operations_called(&request_log);
    setup.sim.shutdown().await;
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

/// Makes the rows' cache filesystem in `region`; its directory on this computer.
async fn make_filesystem(setup: &Rig, region: &str) -> PathBuf {
    let client = setup.sim.client().expect("a client of the simulator");
    let fs = client
        .filesystems()
        .create(CACHE_FILESYSTEM, region)
        .await
        .expect("make the cache filesystem");
    setup
        .sim
        .filesystem_dir(&fs.id)
        .expect("machines boot for real")
}

/// The rows' cache filesystem, made full: its directory is a 64 KiB tmpfs (what a volume out
/// of space shows `df` and writers), unmounted when dropped.
struct FullFilesystem(PathBuf);

impl FullFilesystem {
    async fn make(setup: &Rig) -> FullFilesystem {
        let dir = make_filesystem(setup, "us-east-1").await;
        std::fs::create_dir_all(&dir).expect("make the filesystem's directory");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "lambda-gha-full-cache"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mounting a tmpfs needs root, as root machines do");
        FullFilesystem(dir)
    }
}

impl Drop for FullFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// `lambda-gha [PROVIDER ARGS] reap` for the scenario's repository, orphans at once: the last
/// backstop once an outage is over.
async fn reap(
    programs: &Programs,
    provider: &[&str],
    cli_env: Vec<(String, String)>,
    pat: &str,
    github: &crate::FakeGitHub,
    dir: &Path,
) -> crate::rig::Captured {
    let mut args = provider.to_vec();
    args.extend([
        "reap",
        "--github-repository",
        "octo/gpu",
        "--orphan-after",
        "0s",
    ]);
    let mut env = cli_env;
    env.push(("GH_PAT".to_owned(), pat.to_owned()));
    env.push(("GITHUB_API_URL".to_owned(), github.uri()));
    run_program(&programs.cli, &args, env, dir, "reap", None).await
}

/// The Lambda operations a simulator's request log shows were called.
fn operations_called(request_log: &[String]) -> BTreeSet<String> {
    request_log
        .iter()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let (method, uri) = (parts.next()?, parts.next()?);
            let path = uri.split('?').next()?;
            lambda_cloud::operations::find(method, path).map(|op| op.id.to_owned())
        })
        .collect()
}

/// Where a scenario's canaries were found: `place: which secret`.
fn secret_hits(places: &[(String, String)], canaries: &[(&'static str, String)]) -> Vec<String> {
    let mut hits = Vec::new();
    for (place, text) in places {
        for (what, canary) in canaries {
            if text.contains(canary.as_str()) {
                hits.push(format!("{place}: {what}"));
            }
        }
    }
    hits
}

/// The machines' logs (boot script, agent, runner): every `.log` and `.jsonl` file in their
/// sandboxes.
fn machine_logs(root: &Path) -> Vec<(String, String)> {
    files_under(&[root.to_owned()], &["log", "jsonl"])
        .into_iter()
        .map(|path| {
            (
                format!(
                    "machine log {}",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ),
                std::fs::read_to_string(&path).unwrap_or_default(),
            )
        })
        .collect()
}

/// Every file under `roots` whose extension is one of `extensions`.
fn files_under(roots: &[PathBuf], extensions: &[&str]) -> Vec<PathBuf> {
    files_where(roots, |path| {
        path.extension()
            .is_some_and(|e| extensions.iter().any(|wanted| e == *wanted))
    })
}

/// The prefixes every test's secrets start with (`LAMBDACANARY…` and `RUNPODCANARY…` keys,
/// `PATCANARY…` tokens, the fake GitHub's `GHCANARY…` tokens, `WHCANARY…` webhook secrets): none may be in a file kept in the repository.
pub const CANARY_PREFIXES: [&str; 5] = [
    "LAMBDACANARY",
    "RUNPODCANARY",
    "PATCANARY",
    "GHCANARY",
    "WHCANARY",
];

/// Scans the repository's snapshots and documentation for test secrets: returns the files
/// scanned and the hits (`file: prefix`).
pub fn scan_repository() -> (usize, Vec<String>) {
    let root = crate::workspace_root();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    files.extend(files_under(
        &[root.join("crates"), root.join("docs"), root.join("tests")],
        &["snap", "md"],
    ));
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for prefix in CANARY_PREFIXES {
            if text.contains(prefix) {
                let name = file.strip_prefix(&root).unwrap_or(file);
                hits.push(format!("{}: {prefix}", name.display()));
            }
        }
    }
    (files.len(), hits)
}
