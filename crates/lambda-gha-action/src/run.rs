//! The action's two modes, composed from `gha-runner-core` and the Lambda provider: `start`
//! (preflight, a launch key when none is named, provisioning, outputs, summary) and `stop`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use gha_runner_core::CloudProvider;
use gha_runner_core::cache::{self, CacheVolumes};
use gha_runner_core::provider::{MachineKey, SshAccess};
use gha_runner_core::{
    CapacityPolicy, CoreError, GitHub, LaunchPlan, ProvisionFailure, ProvisionRequest, Provisioned,
    Provisioner, RunnerScope, boot_log::MachineAccess, boot_script::AgentDownload,
    boot_script::AgentSource, gpus::GpuLayout, gpus::gpu_layouts, naming::RunnerNaming,
    outputs::Outputs, preflight::Preflight, preflight::preflight, provisioner::BootSettings,
    provisioner::Diagnosis, provisioner::MachineTemplate, runner_release::RUNNER_DOWNLOAD_BASE,
    runner_release::RUNNER_RELEASES_API, tags,
};
use gha_runner_lambda::LambdaProvider;
use gha_runner_lambda::LaunchKey;
use gha_runner_runpod::RunPodProvider;
use lambda_cloud::TimeScale;

use crate::inputs::{self, Cloud, Env, Mode, StartInputs, StopInputs};
use crate::summary::{self, MachineRow, StartSummary};
use crate::workflow::Workflow;

/// Why the action failed: an annotation title and a one-line cause that names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{title}: {message}")]
pub struct Failure {
    /// The annotation's title.
    pub title: String,
    /// The cause, with the fix.
    pub message: String,
}

impl Failure {
    fn new(title: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            title: title.into(),
            message: message.into(),
        }
    }
}

impl From<gha_runner_core::InputError> for Failure {
    fn from(error: gha_runner_core::InputError) -> Failure {
        let error = error.renamed(crate::inputs::input_name);
        Failure::new(format!("Invalid input `{}`", error.field), error.problem)
    }
}

impl From<CoreError> for Failure {
    fn from(error: CoreError) -> Failure {
        match error {
            CoreError::Input(input) => input.into(),
            CoreError::GitHub(github) => github_failure(&github),
            CoreError::Provider { provider, .. } => {
                let title = if provider == "runpod" {
                    "RunPod"
                } else {
                    "Lambda Cloud"
                };
                Failure::new(title, error.to_string())
            }
            other => Failure::new("Launch", other.to_string()),
        }
    }
}

fn github_failure(error: &gha_runner_core::GitHubError) -> Failure {
    Failure::new("GitHub", error.to_string())
}

/// The secrets the action reads, masked before anything else is printed.
const SECRET_VARS: [&str; 4] = ["LAMBDA_API_KEY", "RUNPOD_API_KEY", "GH_PAT", "GITHUB_TOKEN"];

/// Runs the action as `env` says, writing to `w`. On failure the error annotation has been
/// written and the summary says what was cleaned up.
pub async fn run<W: Write>(env: &Env, w: &mut Workflow<W>) -> Result<(), Failure> {
    for name in SECRET_VARS {
        if let Some(secret) = env.secret(name) {
            w.mask(&secret);
        }
    }
    let result = match inputs::parse(env) {
        Ok(Mode::Start(start)) => run_start(env, &start, w).await,
        Ok(Mode::Stop(stop)) => run_stop(env, &stop, w).await,
        Err(error) => Err(error.into()),
    };
    if let Err(failure) = &result {
        w.error(&failure.title, &failure.message);
    }
    result
}

/// The cloud the inputs name, with its key from the environment.
enum Provider {
    Lambda(LambdaProvider),
    RunPod(RunPodProvider),
}

impl Provider {
    /// From the `provider` input: Lambda's key and URL, or RunPod's.
    fn new(env: &Env, cloud: Cloud) -> Result<Provider, Failure> {
        match cloud {
            Cloud::Lambda => lambda(env).map(Provider::Lambda),
            Cloud::RunPod(cloud) => runpod(env, cloud).map(Provider::RunPod),
        }
    }

    fn get(&self) -> &dyn CloudProvider {
        match self {
            Provider::Lambda(lambda) => lambda,
            Provider::RunPod(runpod) => runpod,
        }
    }

    /// The provider's API URL when not its default (the agent's `api_url`).
    fn api_url<'a>(&self, env: &'a Env) -> Option<&'a str> {
        match self {
            Provider::Lambda(_) => env.var("LAMBDA_API_URL"),
            Provider::RunPod(_) => env.var("RUNPOD_API_URL"),
        }
    }
}

/// The RunPod provider, from `RUNPOD_API_KEY`, `RUNPOD_API_URL` and, for a fake with a scaled
/// clock, `LAMBDA_API_TIME_SCALE`.
fn runpod(env: &Env, cloud: gha_runner_runpod::Cloud) -> Result<RunPodProvider, Failure> {
    let key = env.secret("RUNPOD_API_KEY").ok_or_else(|| {
        Failure::new(
            "Missing RUNPOD_API_KEY",
            "create an API key in RunPod's console (Settings → API Keys), store it as the \
             repository secret RUNPOD_API_KEY, and pass it to the step: \
             `env: { RUNPOD_API_KEY: ${{ secrets.RUNPOD_API_KEY }} }`",
        )
    })?;
    let mut builder = gha_runner_runpod::Client::builder()
        .api_key(key)
        .time_scale(time_scale(env)?.factor());
    if let Some(url) = env.var("RUNPOD_API_URL") {
        builder = builder.base_url(url);
    }
    let client = builder
        .build()
        .map_err(|e| Failure::new("RunPod", e.to_string()))?;
    Ok(RunPodProvider::new(client).on_cloud(cloud))
}

/// The Lambda provider, from `LAMBDA_API_KEY`, `LAMBDA_API_URL` and, for a simulator with a
/// scaled clock, `LAMBDA_API_TIME_SCALE`.
fn lambda(env: &Env) -> Result<LambdaProvider, Failure> {
    let key = env.secret("LAMBDA_API_KEY").ok_or_else(|| {
        Failure::new(
            "Missing LAMBDA_API_KEY",
            "create an API key at https://cloud.lambda.ai/api-keys, store it as the repository \
             secret LAMBDA_API_KEY, and pass it to the step: \
             `env: { LAMBDA_API_KEY: ${{ secrets.LAMBDA_API_KEY }} }`",
        )
    })?;
    let mut builder = lambda_cloud::Client::builder()
        .api_key(key)
        .user_agent(concat!("lambda-gha-action/", env!("CARGO_PKG_VERSION")));
    if let Some(url) = env.var("LAMBDA_API_URL") {
        builder = builder.base_url(url);
    }
    builder = builder.time_scale(time_scale(env)?);
    let client = builder
        .build()
        .map_err(|e| Failure::new("Lambda Cloud", e.to_string()))?;
    Ok(LambdaProvider::new(client))
}

/// How much faster than ours the cloud's clock runs: `LAMBDA_API_TIME_SCALE` for a
/// simulator, else 1. The action's own waits on the cloud (capacity, registration) shrink by it
/// as the client's do; the machines' timings are on their clock already.
fn time_scale(env: &Env) -> Result<TimeScale, Failure> {
    TimeScale::from_env(|name| env.var(name).map(str::to_owned))
        .map_err(|problem| Failure::new("Invalid LAMBDA_API_TIME_SCALE", problem))
}

fn github(env: &Env, scope: &str, runner_group: Option<u64>) -> Result<GitHub, Failure> {
    let token = env
        .secret("GH_PAT")
        .or_else(|| env.secret("GITHUB_TOKEN"))
        .ok_or_else(|| {
            Failure::new(
                "Missing GitHub token",
                "store a token that can manage self-hosted runners as the secret GH_SA_TOKEN and \
                 pass it to the step: `env: { GH_PAT: ${{ secrets.GH_SA_TOKEN }} }`",
            )
        })?;
    let repository = env.var("GITHUB_REPOSITORY").ok_or_else(|| {
        Failure::new(
            "Missing GITHUB_REPOSITORY",
            "run inside GitHub Actions, or set GITHUB_REPOSITORY=owner/repo",
        )
    })?;
    let scope = RunnerScope::parse(scope, repository, runner_group)?;
    GitHub::new(
        &token,
        env.var("GITHUB_API_URL"),
        env.var("GITHUB_SERVER_URL"),
        scope,
    )
    .map_err(|e| github_failure(&e))
}

/// Where machines get the agent: this version's release (its `SHA256SUMS` downloaded by
/// `action.yml` next to the action binary), or, for refs with no release, the action's commit.
fn agent_source(
    env: &Env,
    start: &StartInputs,
    provider: &dyn CloudProvider,
) -> Result<AgentSource, Failure> {
    if let (Some(sums), Some(base)) = (
        env.var("LAMBDA_GHA_SHA256SUMS"),
        env.var("LAMBDA_GHA_RELEASE_URL"),
    ) {
        let text = std::fs::read_to_string(sums).map_err(|e| {
            Failure::new(
                "Release checksums",
                format!("cannot read LAMBDA_GHA_SHA256SUMS {sums:?}: {e}"),
            )
        })?;
        let asset = |target: &str| {
            let name = format!("lambda-gha-{target}");
            text.lines().find_map(|line| {
                let (sha, file) = line.split_once(char::is_whitespace)?;
                (file.trim().trim_start_matches('*') == name).then(|| AgentDownload {
                    url: format!("{}/{name}", base.trim_end_matches('/')),
                    sha256: sha.to_owned(),
                })
            })
        };
        let x86_64 = asset("x86_64-unknown-linux-musl");
        let aarch64 = asset("aarch64-unknown-linux-musl");
        if x86_64.is_none() && aarch64.is_none() {
            return Err(Failure::new(
                "Release checksums",
                format!("{sums} lists no lambda-gha agent binary"),
            ));
        }
        return Ok(AgentSource::Release { x86_64, aarch64 });
    }
    // No release for this ref: fetch-binary.sh built the agent here, once, and the launcher
    // delivers it to each machine over SSH with the launch key.
    let (Some(path), Some(sha256)) = (
        env.var("LAMBDA_GHA_AGENT_BINARY").filter(|p| !p.is_empty()),
        env.var("LAMBDA_GHA_AGENT_SHA256").filter(|s| !s.is_empty()),
    ) else {
        return Err(Failure::new(
            "No agent for the machines",
            "this ref of the action has no release and no agent was built for it: run the \
             action through its action.yml (its first step builds the agent when no release \
             matches), or use a released version (`@v0.1.0`)",
        ));
    };
    let simulated = env.var("LAMBDA_GHA_SIM_SANDBOX").is_some();
    if let SshAccess::Unavailable { why } = provider.capabilities().ssh
        && !simulated
    {
        return Err(Failure::new(
            "No agent for the machines",
            format!(
                "this ref of the action has no release, and the launcher cannot deliver the \
                 agent to {} machines over SSH ({why}): use a released version (`@v0.1.0`)",
                provider.name()
            ),
        ));
    }
    let own_key = start.ssh_key_name.is_none() && start.ssh_pubkey.is_none();
    if !own_key && !simulated {
        return Err(Failure::new(
            "Invalid input `ssh_key_name`",
            "this ref of the action has no release, so the launcher delivers the agent to each \
             machine over SSH with a launch key of its own: leave `ssh_key_name` and \
             `ssh_pubkey` empty, or use a released version (`@v0.1.0`)",
        ));
    }
    Ok(AgentSource::Delivered {
        path: path.into(),
        sha256: sha256.to_owned(),
    })
}

async fn run_start<W: Write>(
    env: &Env,
    start: &StartInputs,
    w: &mut Workflow<W>,
) -> Result<(), Failure> {
    let cloud = Provider::new(env, start.cloud)?;
    let provider = cloud.get();
    let agent = agent_source(env, start, provider)?;
    check_access(start, provider)?;
    let github = github(env, &start.scope, start.runner_group)?;
    let run = env.var("GITHUB_RUN_ID");
    let naming = RunnerNaming::for_run(run);
    let name_template = match &start.instance_name {
        Some(template) => Some(inputs::instance_name(
            template,
            naming.label(),
            run.unwrap_or(""),
            env.var("GITHUB_REPOSITORY").unwrap_or(""),
        )?),
        None => None,
    };

    w.group("Checking the request");
    let scale = time_scale(env)?;
    let (checked, gpus, plan, cache) = check_start(provider, start, scale, w).await?;

    // Before anything is made: a stop job (`if: always()`) after a start that was killed or
    // cancelled still finds the launch by its label.
    w.output("label", naming.label())
        .map_err(|e| Failure::new("Writing outputs", e.to_string()))?;
    let launch_key = match &cloud {
        Provider::Lambda(lambda) => launch_key(lambda, start, &naming, w).await?,
        Provider::RunPod(_) => None,
    };
    let access = MachineKeyFile::new(env, start, provider, launch_key.as_ref(), naming.label());
    let machine = MachineTemplate {
        image: start.image.clone(),
        ssh_key: start
            .ssh_key_name
            .clone()
            .or_else(|| launch_key.as_ref().map(|k| k.name.clone())),
        volumes: start.filesystems.clone(),
        firewall_rulesets: start.firewall_rulesets.clone(),
        name_template,
        tags: launch_tags(env, &start.tags),
    };
    let request = ProvisionRequest {
        plan,
        naming: naming.clone(),
        runners_per_instance: start.runners_per_instance,
        mode: start.runner_mode,
        extra_labels: start.extra_labels.clone(),
        machine,
        boot: boot_settings(env, start, agent, &cloud),
        gpus,
        replace_unhealthy: start.replace_unhealthy,
        access: access.access.clone(),
        cache,
        // Asked by name: a runner online is seen within 2 s, in a few small calls.
        online_poll: scale.real(Duration::from_secs(start.timings.poll_seconds.clamp(1, 2))),
        online_timeout: scale.real(start.timings.registration_timeout()),
    };

    w.group(&format!(
        "Launching {} machine(s) with {} runner(s) each",
        start.instance_count, start.runners_per_instance
    ));
    let result = provision(provider, &github, &request, start, w).await?;
    drop(access);
    if let (Some(key), Provider::Lambda(lambda)) = (&launch_key, &cloud) {
        remove_launch_key(lambda, key, w).await;
    }
    report_start(result, &checked, start, &naming, w)
}

/// Refuses inputs the provider cannot serve, named as the action names them, before anything
/// is made (the core would refuse the spec too, but in its own words, at the first launch).
fn check_access(start: &StartInputs, provider: &dyn CloudProvider) -> Result<(), Failure> {
    let capabilities = provider.capabilities();
    let name = provider.name();
    if let SshAccess::Unavailable { why } = capabilities.ssh {
        for (input, given) in [
            ("ssh_key_name", start.ssh_key_name.is_some()),
            ("ssh_pubkey", start.ssh_pubkey.is_some()),
        ] {
            if given {
                return Err(Failure::new(
                    format!("Invalid input `{input}`"),
                    format!(
                        "{name} machines take no SSH key from the launcher ({why}): leave it empty"
                    ),
                ));
            }
        }
    }
    if !start.firewall_rulesets.is_empty() && !capabilities.firewall_rulesets {
        return Err(Failure::new(
            "Invalid input `firewall_ruleset`",
            format!("{name} has no firewall rulesets: leave it empty"),
        ));
    }
    if start.filesystems.len() > capabilities.max_volumes {
        return Err(Failure::new(
            "Invalid input `filesystem`",
            format!(
                "{name} machines take at most {} volume(s): name fewer",
                capabilities.max_volumes
            ),
        ));
    }
    Ok(())
}

/// Preflight, the GPU layout of each type, and the launch plan on the cloud's clock.
async fn check_start<W: Write>(
    provider: &dyn CloudProvider,
    start: &StartInputs,
    scale: TimeScale,
    w: &mut Workflow<W>,
) -> Result<
    (
        Preflight,
        BTreeMap<String, GpuLayout>,
        LaunchPlan,
        Option<CacheVolumes>,
    ),
    Failure,
> {
    let lifetime = Duration::from_secs(start.timings.max_lifetime_seconds);
    let checked = preflight(
        provider,
        &start.instance_types,
        &start.regions,
        start.instance_count,
        lifetime,
        start.max_cost_usd,
    )
    .await?;
    let gpus = gpu_layouts(
        &checked.catalog,
        &start.instance_types,
        start.runners_per_instance,
        start.gpus_per_runner,
    )?;
    let capacity = match start.capacity {
        CapacityPolicy::WaitUntil(wait) => CapacityPolicy::WaitUntil(scale.real(wait)),
        fail_fast @ CapacityPolicy::FailFast => fail_fast,
    };
    let plan = LaunchPlan::new(checked.candidates.clone(), start.instance_count, capacity)?;
    let poll = scale.real(plan.poll_interval);
    let mut plan = plan.with_poll_interval(poll);
    let cache = prepare_cache(provider, start, &mut plan, w).await?;
    w.line(&format!(
        "{} candidate(s) in order: {}",
        plan.candidates.len(),
        plan.candidates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    w.line(&format!("worst case: {}", checked.estimate));
    let interval = provider.capabilities().launch_interval;
    if start.instance_count > 1 && !interval.is_zero() {
        let spread = interval
            .as_secs()
            .saturating_mul(u64::try_from(start.instance_count - 1).unwrap_or(u64::MAX));
        w.line(&format!(
            "{} launches, at most one per {}s ({}'s limit): the last starts {spread}s or more after the first",
            start.instance_count,
            interval.as_secs(),
            provider.name()
        ));
    }
    if !start.self_terminate {
        w.warning(
            "self_terminate is off",
            "the machines do not end themselves (on Lambda, its API key stays off them): they \
             end only by a `mode: stop` job (add one with `if: always()`) or the reaper",
        );
    }
    Ok((checked, gpus, plan, cache))
}

/// Finds or makes the cache's filesystem in each candidate region, says what it found, and
/// keeps only the candidates in regions that have it.
async fn prepare_cache<W: Write>(
    provider: &dyn CloudProvider,
    start: &StartInputs,
    plan: &mut LaunchPlan,
    w: &mut Workflow<W>,
) -> Result<Option<CacheVolumes>, Failure> {
    let Some(request) = &start.cache else {
        return Ok(None);
    };
    let volumes = cache::prepare(provider, request, &plan.candidates)
        .await
        .map_err(|why| Failure::new("Invalid input `cache_filesystem`", why))?;
    for line in volumes.to_string().lines() {
        w.line(&format!("cache: {line}"));
    }
    plan.candidates = volumes.usable(&plan.candidates);
    Ok(Some(volumes))
}

/// The SSH key made for this launch (Lambda requires one per launch), unless one is named.
async fn launch_key<W: Write>(
    provider: &LambdaProvider,
    start: &StartInputs,
    naming: &RunnerNaming,
    w: &mut Workflow<W>,
) -> Result<Option<LaunchKey>, Failure> {
    if start.ssh_key_name.is_some() {
        return Ok(None);
    }
    let key = provider
        .create_launch_key(naming.label(), start.ssh_pubkey.as_deref())
        .await
        .map_err(|e| {
            Failure::new(
                "Lambda Cloud",
                format!("creating the launch's SSH key: {e}"),
            )
        })?;
    if let Some(private) = &key.private_key {
        w.mask(private);
    }
    w.line(&format!("made SSH key {} for this launch", key.name));
    Ok(Some(key))
}

/// How the machines boot: the runner and agent they fetch, and what the agent may do.
fn boot_settings(
    env: &Env,
    start: &StartInputs,
    agent: AgentSource,
    cloud: &Provider,
) -> BootSettings {
    // The launcher's key goes to the machines only where the provider has no narrower one.
    let launchers_key = matches!(
        cloud.get().capabilities().machine_key,
        MachineKey::Launchers
    );
    BootSettings {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        agent,
        runner: start.runner_version.clone(),
        // A mirror of the runner releases (networks that cannot reach github.com).
        runner_releases_api: env
            .var("LAMBDA_GHA_RUNNER_RELEASES_API")
            .unwrap_or(RUNNER_RELEASES_API)
            .to_owned(),
        runner_download_base: env
            .var("LAMBDA_GHA_RUNNER_DOWNLOAD_BASE")
            .unwrap_or(RUNNER_DOWNLOAD_BASE)
            .to_owned(),
        privileges: start.privileges,
        user_script: start.userdata.clone(),
        agent_api_url: cloud.api_url(env).map(str::to_owned),
        agent_api_key: if start.self_terminate && launchers_key {
            env.secret("LAMBDA_API_KEY")
        } else {
            None
        },
        self_terminate: start.self_terminate,
        timings: start.timings,
        gpu_gate: start.gpu_gate.clone(),
    }
}

/// Provisions `request`, writing each machine to the outputs as soon as it exists, and ends
/// what it launched when the step is cancelled.
async fn provision<W: Write>(
    provider: &dyn CloudProvider,
    github: &GitHub,
    request: &ProvisionRequest,
    start: &StartInputs,
    w: &mut Workflow<W>,
) -> Result<Result<Provisioned, ProvisionFailure>, Failure> {
    let naming = &request.naming;
    let (machines, mut launched_so_far) =
        tokio::sync::watch::channel(Outputs::new(naming, &[], start.runners_per_instance));
    let launcher = Provisioner::new(provider, github).reporting_machines(&machines);
    let provisioning = launcher.provision(request);
    let signalled = cancelled();
    tokio::pin!(provisioning, signalled);
    Ok(loop {
        tokio::select! {
            result = &mut provisioning => break result,
            // Each machine is in the outputs as soon as it exists: the runner reads
            // `GITHUB_OUTPUT` when the step ends, however it ends, and a later line of the
            // same name wins (actions/runner src/Runner.Worker/ActionRunner.cs: ProcessFiles
            // in a `finally`; ExecutionContext.SetOutput), so a stop job with `if: always()`
            // finds the machines of a start that was cancelled or timed out.
            Ok(()) = launched_so_far.changed() => {
                let so_far = launched_so_far.borrow_and_update().clone();
                write_machine_outputs(w, &so_far)
                    .map_err(|e| Failure::new("Writing outputs", e.to_string()))?;
            }
            // A cancelled workflow (or `timeout-minutes`) signals the step: the same cleanup
            // as a failure then ends what this start launched, found by its label.
            signal = &mut signalled => {
                w.warning(
                    "Cancelled",
                    &format!("{signal}: ending what this start launched before it exits"),
                );
                break Err(ProvisionFailure {
                    reason: format!("cancelled by {signal}"),
                    attempts: Vec::new(),
                    cleanup: launcher.cleanup(naming, &[]).await,
                    diagnoses: Vec::new(),
                });
            }
        }
    })
}

/// The outputs, the job summary and the log lines of a start, however it ended.
fn report_start<W: Write>(
    result: Result<Provisioned, ProvisionFailure>,
    checked: &Preflight,
    start: &StartInputs,
    naming: &RunnerNaming,
    w: &mut Workflow<W>,
) -> Result<(), Failure> {
    let label = naming.label();
    let diagnoses = match &result {
        Ok(provisioned) => &provisioned.diagnoses,
        Err(failure) => &failure.diagnoses,
    };
    print_diagnoses(diagnoses, w);
    match result {
        Ok(provisioned) => {
            for attempt in &provisioned.attempts {
                w.line(&attempt.to_string());
            }
            let machines: Vec<MachineRow> = provisioned
                .launched
                .iter()
                .map(|l| MachineRow {
                    index: l.instance_index,
                    id: l.machine.to_string(),
                    instance_type: l.candidate.instance_type.clone(),
                    region: l.candidate.region.clone(),
                    price_cents_per_hour: checked
                        .catalog
                        .offering(&l.candidate.instance_type)
                        .map(|o| o.price_cents_per_hour),
                    runners: (0..start.runners_per_instance)
                        .map(|r| naming.runner_name(l.instance_index, r))
                        .collect(),
                })
                .collect();
            w.end_group();
            let outputs = &provisioned.outputs;
            let first = machines.first();
            let written = (|| -> std::io::Result<()> {
                write_machine_outputs(w, outputs)?;
                w.output(
                    "instance-type",
                    first.map_or("", |m| m.instance_type.as_str()),
                )?;
                w.output("region", first.map_or("", |m| m.region.as_str()))?;
                w.output(
                    "price-cents-per-hour",
                    &summary::total_cents_per_hour(&machines).to_string(),
                )?;
                w.summary(&summary::render_start(&StartSummary {
                    label,
                    attempts: &provisioned.attempts,
                    machines: &machines,
                    estimate: Some(checked.estimate),
                    failure: None,
                    diagnoses: &provisioned.diagnoses,
                }))
            })();
            written.map_err(|e| Failure::new("Writing outputs", e.to_string()))?;
            w.line(&format!(
                "{} runner(s) online with label {label}",
                outputs.mtx.len()
            ));
            Ok(())
        }
        Err(failure) => {
            for line in failure.to_string().lines() {
                w.line(line);
            }
            w.end_group();
            let _ = w.summary(&summary::render_start(&StartSummary {
                label,
                attempts: &failure.attempts,
                machines: &[],
                estimate: Some(checked.estimate),
                failure: Some((&failure.reason, &failure.cleanup)),
                diagnoses: &failure.diagnoses,
            }));
            let leaked = if failure.cleanup.is_complete() {
                ""
            } else {
                " (cleanup incomplete: see the summary)"
            };
            Err(Failure::new(
                "Launch failed",
                format!("{}{leaked}", failure.reason),
            ))
        }
    }
}

/// How the action reaches its machines for their boot logs: the launch key it made, written
/// to a private file for as long as the start runs (removed when dropped); a simulator's
/// sandboxes (`LAMBDA_GHA_SIM_SANDBOX`); or not at all, when the machines carry the user's key.
struct MachineKeyFile {
    access: MachineAccess,
    dir: Option<std::path::PathBuf>,
}

impl MachineKeyFile {
    fn new(
        env: &Env,
        start: &StartInputs,
        provider: &dyn CloudProvider,
        key: Option<&LaunchKey>,
        label: &str,
    ) -> MachineKeyFile {
        if let Some(root) = env.var("LAMBDA_GHA_SIM_SANDBOX") {
            return MachineKeyFile {
                access: MachineAccess::Sandbox { root: root.into() },
                dir: None,
            };
        }
        let unavailable = |why: String| MachineKeyFile {
            access: MachineAccess::Unavailable { why },
            dir: None,
        };
        let user = match provider.capabilities().ssh {
            SshAccess::LaunchKey { user } => user,
            SshAccess::Unavailable { why } => return unavailable(why.to_owned()),
        };
        let private = match (
            key.and_then(|k| k.private_key.as_ref()),
            &start.ssh_key_name,
        ) {
            (Some(private), _) => private,
            (None, Some(name)) => {
                return unavailable(format!("the machines carry your SSH key `{name}`"));
            }
            (None, None) => {
                return unavailable("the machines carry your `ssh_pubkey`".to_owned());
            }
        };
        let base = env
            .var("RUNNER_TEMP")
            .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
        let dir = base.join(format!("lambda-gha-{label}"));
        match write_private_key(&dir, private) {
            Ok(identity) => MachineKeyFile {
                access: MachineAccess::Ssh {
                    user: user.to_owned(),
                    port: 22,
                    identity,
                    state_dir: dir.clone(),
                },
                dir: Some(dir),
            },
            Err(error) => unavailable(format!(
                "the launch key could not be written to {} ({error})",
                dir.display()
            )),
        }
    }
}

impl Drop for MachineKeyFile {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Writes `private` to `dir/id` (the directory 0700, the file 0600) and returns its path.
fn write_private_key(
    dir: &std::path::Path,
    private: &secrecy::SecretString,
) -> std::io::Result<std::path::PathBuf> {
    use secrecy::ExposeSecret as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join("id");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    let mut text = private.expose_secret().trim_end().to_owned();
    text.push('\n');
    file.write_all(text.as_bytes())?;
    Ok(path)
}

/// Each machine given up on: a line, and its boot log in a collapsed group.
fn print_diagnoses<W: Write>(diagnoses: &[Diagnosis], w: &mut Workflow<W>) {
    for diagnosis in diagnoses {
        w.warning("Machine given up on", &diagnosis.to_string());
        w.group(&format!(
            "Boot log of machine {} {} ({})",
            diagnosis.instance_index, diagnosis.machine, diagnosis.why
        ));
        match &diagnosis.boot_log {
            // Indented: a log line must not read as a workflow command.
            Ok(tail) => {
                for line in tail.lines() {
                    w.line(&format!("  {line}"));
                }
            }
            Err(why) => w.line(&format!("boot log unavailable: {why}")),
        }
        w.end_group();
    }
}

async fn remove_launch_key<W: Write>(
    provider: &LambdaProvider,
    key: &LaunchKey,
    w: &mut Workflow<W>,
) {
    if let Err(error) = provider.delete_launch_key(key).await {
        w.warning(
            "SSH key left behind",
            &format!(
                "could not delete the launch's SSH key {} ({error}); delete it in the Lambda dashboard",
                key.name
            ),
        );
    }
}

async fn run_stop<W: Write>(
    env: &Env,
    stop: &StopInputs,
    w: &mut Workflow<W>,
) -> Result<(), Failure> {
    let cloud = Provider::new(env, stop.cloud)?;
    let provider = cloud.get();
    let github = github(env, &stop.scope, None)?;
    w.group(&format!(
        "Stopping the launches of {} machine(s)",
        stop.machines.len()
    ));
    let report = Provisioner::new(provider, &github)
        .stop(&stop.machines, &stop.labels)
        .await;
    if let Some(why) = &report.unlisted {
        w.warning(
            "Could not list the launches' machines",
            &format!("{why}; terminated the named machines directly"),
        );
    }
    let now = jiff::Timestamp::now();
    let billed: Vec<Option<Duration>> = report
        .stopped
        .iter()
        .map(|m| {
            let launched: jiff::Timestamp = m.tags.get(tags::LAUNCHED)?.parse().ok()?;
            // A clock behind the launcher's reads as nothing billed yet, not as unknown.
            Some(Duration::try_from(now.duration_since(launched)).unwrap_or(Duration::ZERO))
        })
        .collect();
    for machine in &report.stopped {
        w.line(&format!(
            "terminating {} ({})",
            machine.id, machine.instance_type
        ));
    }
    w.end_group();
    let _ = w.summary(&summary::render_stop(&report, &billed));
    if report.cleanup.is_complete() {
        w.line(&format!(
            "stopped {} machine(s), deleted {} runner registration(s)",
            report.cleanup.terminated.len(),
            report.cleanup.runners_deleted.len()
        ));
        Ok(())
    } else {
        Err(Failure::new(
            "Stop incomplete",
            format!(
                "{} machine(s) could not be terminated and {} runner(s) not deleted: see the summary",
                report.cleanup.not_terminated.len(),
                report.cleanup.runners_not_deleted.len()
            ),
        ))
    }
}

/// The user's tags, and where the launch came from (the workflow, the run's URL), as ec2-gha
/// tags its machines: what someone finding the machine in Lambda's dashboard wants to know.
/// Lambda takes values up to 128 characters; a longer one is cut, the user's own win.
fn launch_tags(
    env: &Env,
    user: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut tags = user.clone();
    let fit = |value: String| value.chars().take(128).collect::<String>();
    if let Some(workflow) = env.var("GITHUB_WORKFLOW") {
        tags.entry("lambda-gha:workflow".to_owned())
            .or_insert_with(|| fit(workflow.to_owned()));
    }
    if let (Some(repository), Some(run)) = (env.var("GITHUB_REPOSITORY"), env.var("GITHUB_RUN_ID"))
    {
        let server = env.var("GITHUB_SERVER_URL").unwrap_or("https://github.com");
        let url = format!(
            "{}/{repository}/actions/runs/{run}",
            server.trim_end_matches('/')
        );
        tags.entry("lambda-gha:run-url".to_owned())
            .or_insert_with(|| fit(url));
    }
    tags
}

/// Resolves when the job is cancelled: GitHub Actions sends the step SIGINT, SIGTERM 7.5 s
/// later, SIGKILL 2.5 s after that (actions/runner `src/Runner.Sdk/ProcessInvoker.cs`), so the
/// cleanup has about 10 s. Never, where the handlers cannot be set.
/// The `instance-id` and `mtx` outputs.
fn write_machine_outputs<W: Write>(w: &mut Workflow<W>, outputs: &Outputs) -> std::io::Result<()> {
    w.output("instance-id", outputs.instance_id.as_deref().unwrap_or(""))?;
    w.output(
        "mtx",
        &serde_json::to_string(&outputs.mtx).unwrap_or_else(|_| "[]".into()),
    )
}

async fn cancelled() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(action_ref: Option<&str>) -> StartInputs {
        let env = Env::from_pairs([("INPUT_INSTANCE_TYPE", "gpu_1x_a10")]);
        let Ok(Mode::Start(mut start)) = inputs::parse(&env) else {
            panic!("start");
        };
        start.action_ref = action_ref.map(str::to_owned);
        *start
    }

    fn lambda() -> LambdaProvider {
        LambdaProvider::new(
            lambda_cloud::Client::builder()
                .api_key("k")
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn the_agent_comes_from_the_release_sums_or_the_actions_commit() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let dir = std::env::temp_dir().join(format!("agent-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sums = dir.join("SHA256SUMS");
        std::fs::write(
            &sums,
            format!("{}  lambda-gha-aarch64-unknown-linux-musl\n{}  lambda-gha-action-x86_64-unknown-linux-musl\n", "b".repeat(64), "c".repeat(64)),
        )
        .unwrap();
        let env = Env::from_pairs([
            ("LAMBDA_GHA_SHA256SUMS", sums.to_str().unwrap()),
            ("LAMBDA_GHA_RELEASE_URL", "https://x/releases/download/v1/"),
        ]);
        let AgentSource::Release { x86_64, aarch64 } =
            agent_source(&env, &start(None), &lambda()).unwrap()
        else {
            panic!("release");
        };
        assert!(x86_64.is_none(), "the action binary is not the agent");
        let aarch64 = aarch64.unwrap();
        assert_eq!(
            aarch64.url,
            "https://x/releases/download/v1/lambda-gha-aarch64-unknown-linux-musl"
        );
        assert_eq!(aarch64.sha256, "b".repeat(64));
        let _ = std::fs::remove_dir_all(&dir);

        // No release: the agent built beside the action, delivered by the launcher; that
        // needs the launcher's own key on the machines.
        let built = [
            ("LAMBDA_GHA_AGENT_BINARY", "/tmp/lambda-gha"),
            ("LAMBDA_GHA_AGENT_SHA256", "d"),
        ];
        assert_eq!(
            agent_source(&Env::from_pairs(built), &start(None), &lambda()).unwrap(),
            AgentSource::Delivered {
                path: "/tmp/lambda-gha".into(),
                sha256: "d".into()
            }
        );
        let mut own = start(None);
        own.ssh_key_name = Some("mine".into());
        let error = agent_source(&Env::from_pairs(built), &own, &lambda()).unwrap_err();
        assert!(error.message.contains("leave `ssh_key_name`"), "{error}");
        let error = agent_source(
            &Env::from_pairs::<&str, &str>([]),
            &start(Some(sha)),
            &lambda(),
        )
        .unwrap_err();
        assert!(error.message.contains("no agent was built"), "{error}");
        // RunPod pods cannot be reached over SSH: only a release's agent reaches them.
        let runpod = RunPodProvider::new(
            gha_runner_runpod::Client::builder()
                .api_key("k")
                .build()
                .unwrap(),
        );
        let error = agent_source(&Env::from_pairs(built), &start(None), &runpod).unwrap_err();
        assert!(error.message.contains("use a released version"), "{error}");
    }
}
