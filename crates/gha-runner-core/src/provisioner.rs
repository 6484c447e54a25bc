//! Provisioning: a launch plan whose machines boot registered runners, then waiting until
//! every runner is online. Any failure after the first launch terminates every machine this
//! provisioning launched and deletes every runner it registered, before it is reported.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::agent_config::{AgentConfig, AgentTimings};
use crate::boot_log::{BOOT_LOG_LINES, MachineAccess};
use crate::boot_script::{AgentSource, BootScript, RunnerBoot, RunnerCredential, RunnerPrivileges};
use crate::cache::{CacheVolumes, Volume};
use crate::error::{Field, InputError};
use crate::github::{GitHub, JitRunner, RegistrationToken, RunnerScope};
use crate::gpus::GpuLayout;
use crate::health::GpuGate;
use crate::naming::RunnerNaming;
use crate::outputs::Outputs;
use crate::plan::{Attempt, Candidate, LaunchPlan, LaunchSetup, Launched, terminate_all};
use crate::provider::{CloudProvider, Machine, MachineId, MachineKey, MachineSpec, MachineState};
use crate::runner_release::{RunnerPackage, RunnerVersion};
use crate::tags;

/// Up to this many runners missing, the online wait asks for each by name; more, and it lists
/// the scope's runners instead.
pub const ONLINE_BY_NAME: usize = 10;

/// How runners register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerMode {
    /// Just-in-time: one job per runner, no token on the machine that could register more.
    Jit,
    /// Registered with a token; runs jobs until the machine ends.
    Reusable,
}

impl RunnerMode {
    /// Reads `jit` or `reusable`.
    pub fn parse(input: &str) -> Result<RunnerMode, InputError> {
        match input.trim() {
            "jit" => Ok(RunnerMode::Jit),
            "reusable" => Ok(RunnerMode::Reusable),
            other => Err(InputError::new(
                Field::RunnerMode,
                format!("{other:?} must be `jit` or `reusable`"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            RunnerMode::Jit => "jit",
            RunnerMode::Reusable => "reusable",
        }
    }
}

/// What every machine is launched with, besides its type, region and boot script.
#[derive(Debug, Clone, Default)]
pub struct MachineTemplate {
    /// Image family or id.
    pub image: Option<String>,
    /// The SSH key to install.
    pub ssh_key: Option<String>,
    /// Volumes to attach (Lambda's filesystems, RunPod's network volume).
    pub volumes: Vec<String>,
    /// Firewall rulesets.
    pub firewall_rulesets: Vec<String>,
    /// The machines' name, with `{idx}` replaced by the machine's index (0-based); without
    /// one, `<label>-<idx>`.
    pub name_template: Option<String>,
    /// Extra tags.
    pub tags: BTreeMap<String, String>,
}

/// What goes into each machine's boot script.
pub struct BootSettings {
    /// This project's version.
    pub version: String,
    /// Where machines get the agent.
    pub agent: AgentSource,
    /// Which GitHub runner machines get.
    pub runner: RunnerVersion,
    /// Where a pinned runner version is described ([`RUNNER_RELEASES_API`](crate::runner_release::RUNNER_RELEASES_API)).
    pub runner_releases_api: String,
    /// Where a pinned runner version is downloaded from
    /// ([`RUNNER_DOWNLOAD_BASE`](crate::runner_release::RUNNER_DOWNLOAD_BASE)).
    pub runner_download_base: String,
    /// Extra privileges for the runner user.
    pub privileges: RunnerPrivileges,
    /// The user's own boot script.
    pub user_script: Option<String>,
    /// The provider API the agent terminates through, and its key.
    pub agent_api_url: Option<String>,
    /// The provider API key for self-termination, for a provider whose machines get the
    /// launcher's key ([`MachineKey::Launchers`]).
    pub agent_api_key: Option<SecretString>,
    /// Whether machines may end themselves: with `agent_api_key`, or with the key their
    /// provider gives them ([`MachineKey::ProvidedOnMachine`]).
    pub self_terminate: bool,
    /// The agent's timings.
    pub timings: AgentTimings,
    /// The GPU health gate each machine runs before its runners start.
    pub gpu_gate: GpuGate,
}

/// A complete request.
pub struct ProvisionRequest {
    /// Where and how many.
    pub plan: LaunchPlan,
    /// The launch's label and names.
    pub naming: RunnerNaming,
    /// Runners per machine.
    pub runners_per_instance: usize,
    /// How runners register.
    pub mode: RunnerMode,
    /// Labels added to every runner.
    pub extra_labels: Vec<String>,
    /// Machine settings.
    pub machine: MachineTemplate,
    /// Boot script settings.
    pub boot: BootSettings,
    /// How each candidate type's GPUs are shared among its runners ([`gpu_layouts`]); a type
    /// not in it gets no pinning.
    ///
    /// [`gpu_layouts`]: crate::gpus::gpu_layouts
    pub gpus: BTreeMap<String, GpuLayout>,
    /// How many machines whose health gate failed (or that the provider reports unhealthy)
    /// are replaced, each by a new machine of the next candidate, before the launch fails.
    pub replace_unhealthy: u32,
    /// How to reach the machines for their boot logs when they fail.
    pub access: MachineAccess,
    /// The cache's volume in each region ([`crate::cache::prepare`]): mounted on every
    /// machine of its region. The plan's candidates should be in those regions only.
    pub cache: Option<CacheVolumes>,
    /// How often to check that runners came online.
    pub online_poll: Duration,
    /// How long to wait for them: the registration timeout, on this process's clock (a
    /// simulator's runs faster).
    pub online_timeout: Duration,
}

/// A provisioning that succeeded: every runner is online.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// What later jobs need.
    pub outputs: Outputs,
    /// Every machine, in index order, with the candidate it was launched on.
    pub launched: Vec<Launched>,
    /// Every launch attempt.
    pub attempts: Vec<Attempt>,
    /// Machines that were replaced, and why.
    pub diagnoses: Vec<Diagnosis>,
}

/// A machine the launch gave up on: why, what its boot log said, and what took its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// Which of the N machines it was.
    pub instance_index: usize,
    /// The machine given up on.
    pub machine: MachineId,
    /// Where it ran.
    pub candidate: Candidate,
    /// Why it was given up on.
    pub why: String,
    /// The end of its boot log, or why it could not be read.
    pub boot_log: Result<String, String>,
    /// The machine launched in its place, if any.
    pub replaced_by: Option<MachineId>,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "machine {} {} ({}): {}",
            self.instance_index, self.machine, self.candidate, self.why
        )?;
        match &self.replaced_by {
            Some(id) => write!(f, "; terminated and replaced by {id}"),
            None => Ok(()),
        }
    }
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Machines terminated.
    pub terminated: Vec<MachineId>,
    /// Machines that could not be terminated, with why: they may be billing.
    pub not_terminated: Vec<(MachineId, String)>,
    /// Runner registrations deleted.
    pub runners_deleted: Vec<u64>,
    /// Runner registrations that could not be deleted, with why.
    pub runners_not_deleted: Vec<(u64, String)>,
}

impl CleanupReport {
    /// Whether everything was cleaned up.
    pub fn is_complete(&self) -> bool {
        self.not_terminated.is_empty() && self.runners_not_deleted.is_empty()
    }
}

/// A provisioning that failed, after cleaning up.
#[derive(Debug, Clone)]
pub struct ProvisionFailure {
    /// What went wrong.
    pub reason: String,
    /// Every launch attempt.
    pub attempts: Vec<Attempt>,
    /// What the cleanup did.
    pub cleanup: CleanupReport,
    /// Machines given up on (replaced, unhealthy, or whose runners never came online), with
    /// their boot logs.
    pub diagnoses: Vec<Diagnosis>,
}

impl ProvisionFailure {
    /// A failure before anything was launched or registered: nothing to clean up.
    pub fn before_launch(reason: String) -> ProvisionFailure {
        ProvisionFailure {
            reason,
            attempts: Vec::new(),
            cleanup: CleanupReport::default(),
            diagnoses: Vec::new(),
        }
    }
}

impl fmt::Display for ProvisionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.reason)?;
        for attempt in &self.attempts {
            writeln!(f, "  {attempt}")?;
        }
        for diagnosis in &self.diagnoses {
            writeln!(f, "  {diagnosis}")?;
        }
        let c = &self.cleanup;
        if !c.terminated.is_empty() {
            let ids: Vec<&str> = c.terminated.iter().map(MachineId::as_str).collect();
            writeln!(f, "  terminated: {}", ids.join(", "))?;
        }
        if !c.runners_deleted.is_empty() {
            writeln!(
                f,
                "  deleted {} runner registration(s)",
                c.runners_deleted.len()
            )?;
        }
        for (id, why) in &c.not_terminated {
            writeln!(
                f,
                "  COULD NOT TERMINATE {id} ({why}); terminate it by hand, it may be billing"
            )?;
        }
        for (id, why) in &c.runners_not_deleted {
            writeln!(
                f,
                "  could not delete runner {id} ({why}); remove it in the repository settings"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ProvisionFailure {}

/// Prepares each machine: registrations, boot script, spec. Remembers the JIT runners it
/// registered, per machine, so that a machine that was not launched can be undone.
struct Registrar<'a> {
    provider: &'static str,
    /// The runner every machine of this launch installs.
    runner: RunnerPackage,
    /// The provider's way for a machine to end itself without the agent.
    self_terminate: Option<&'static str>,
    /// Which key machines end themselves with.
    machine_key: MachineKey,
    github: &'a GitHub,
    request: &'a ProvisionRequest,
    /// The JIT runners registered for each machine's latest attempt (or its machine).
    registered: BTreeMap<usize, Vec<JitRunner>>,
    /// JIT runners of an attempt that found no capacity, kept for the machine's next attempt.
    spare: BTreeMap<usize, Vec<JitRunner>>,
    token: Option<RegistrationToken>,
    /// The org runner group's name, for reusable runners (`config.sh --runnergroup`).
    runner_group: Option<String>,
    /// How many machines replaced each machine so far.
    replacements: BTreeMap<usize, u32>,
    /// Where the outputs for the machines launched so far go.
    report: Option<&'a tokio::sync::watch::Sender<Outputs>>,
    /// The machines launched so far, by index (a replacement takes its machine's place).
    machines: BTreeMap<usize, Launched>,
}

impl Registrar<'_> {
    /// The cache volume of `region`, when the launch has a cache.
    fn cache_volume(&self, region: &str) -> Option<&Volume> {
        self.request.cache.as_ref()?.volume(region)
    }

    fn machine_tag(&self, index: usize) -> String {
        let replacement = self.replacements.get(&index).copied().unwrap_or(0);
        self.request.naming.replacement_tag(index, replacement)
    }
}

impl Registrar<'_> {
    /// A JIT runner named `name` with `labels`: `kept`, registered for a candidate that had no
    /// capacity, relabelled for this one (one call where deleting it and registering again
    /// take two); registered afresh when none was kept or it is gone (GitHub removes a JIT
    /// runner that never connected after a day).
    async fn jit_runner(
        &self,
        kept: Option<JitRunner>,
        name: &str,
        labels: &[String],
    ) -> Result<JitRunner, String> {
        if let Some(runner) = kept {
            match self.github.set_labels(runner.id, labels).await {
                Ok(()) => return Ok(runner),
                Err(error) if error.status == Some(404) => {}
                Err(error) => {
                    // Not reused: deleted, so that nothing is left registered under its name.
                    let _ = self.github.delete_runner(runner.id).await;
                    return Err(error.to_string());
                }
            }
        }
        self.github
            .jit_config(name, labels)
            .await
            .map_err(|e| e.to_string())
    }

    async fn credentials(
        &mut self,
        index: usize,
        names: &[String],
        labels: &[Vec<String>],
    ) -> Result<Vec<RunnerCredential>, String> {
        match self.request.mode {
            RunnerMode::Jit => {
                let mut spare = self.spare.remove(&index).unwrap_or_default();
                let mut credentials = Vec::new();
                for (name, labels) in names.iter().zip(labels) {
                    let kept = spare
                        .iter()
                        .position(|r| &r.name == name)
                        .map(|at| spare.swap_remove(at));
                    let runner = self.jit_runner(kept, name, labels).await?;
                    let config = runner.config.clone();
                    self.registered.entry(index).or_default().push(runner);
                    credentials.push(RunnerCredential::Jit(config));
                }
                // What a spare had beyond this attempt's runners is not needed.
                self.registered.entry(index).or_default().extend(spare);
                Ok(credentials)
            }
            RunnerMode::Reusable => {
                // One token serves every machine while it outlives the machine's boot budget
                // (an hour: a long capacity wait or replacements outlast it).
                let budget = jiff::SignedDuration::try_from(self.request.online_timeout)
                    .unwrap_or(jiff::SignedDuration::MAX);
                let needed = jiff::Timestamp::now()
                    .checked_add(budget)
                    .unwrap_or(jiff::Timestamp::MAX);
                let token = match &self.token {
                    Some(held) if held.expires_at > needed => held.token.clone(),
                    _ => {
                        let fresh = self
                            .github
                            .registration_token()
                            .await
                            .map_err(|e| e.to_string())?;
                        let token = fresh.token.clone();
                        self.token = Some(fresh);
                        token
                    }
                };
                Ok(names
                    .iter()
                    .map(|_| RunnerCredential::RegistrationToken(token.clone()))
                    .collect())
            }
        }
    }

    /// The spec of machine `index` on `candidate`, but for its user data: the template's
    /// settings, its name, and the tags that find it again (run, machine, owner, lifetime).
    fn machine_spec(&self, index: usize, candidate: &Candidate) -> MachineSpec {
        let request = self.request;
        let naming = &request.naming;
        let boot = &request.boot;
        let template = &request.machine;
        let mut spec = MachineSpec::new(&candidate.instance_type, &candidate.region);
        spec.image.clone_from(&template.image);
        spec.ssh_key.clone_from(&template.ssh_key);
        spec.volumes.clone_from(&template.volumes);
        if let Some(cache) = self.cache_volume(&candidate.region)
            && !spec.volumes.contains(&cache.name)
        {
            spec.volumes.push(cache.name.clone());
        }
        spec.firewall_rulesets
            .clone_from(&template.firewall_rulesets);
        spec.name = Some(match &template.name_template {
            Some(name) => name.replace("{idx}", &index.to_string()),
            None => self.machine_tag(index),
        });
        spec.tags.clone_from(&template.tags);
        spec.tags
            .insert(tags::RUN.to_owned(), naming.label().to_owned());
        spec.tags
            .insert(tags::MACHINE.to_owned(), self.machine_tag(index));
        spec.tags
            .insert(tags::OWNER.to_owned(), self.github.scope().owner());
        let life =
            Duration::from_secs(boot.timings.max_lifetime_seconds) + crate::agent::TERMINATE_MARGIN;
        spec.tags.extend(tags::lifetime_tags(life));
        spec
    }
}

#[async_trait]
impl LaunchSetup for Registrar<'_> {
    async fn prepare(
        &mut self,
        index: usize,
        candidate: &Candidate,
    ) -> Result<MachineSpec, String> {
        let request = self.request;
        let naming = &request.naming;
        let names: Vec<String> = (0..request.runners_per_instance)
            .map(|r| naming.runner_name(index, r))
            .collect();
        let gpus = request
            .gpus
            .get(&candidate.instance_type)
            .copied()
            .unwrap_or(GpuLayout {
                gpus: 0,
                runners: request.runners_per_instance,
                per_runner: None,
            });
        let labels: Vec<Vec<String>> = (0..request.runners_per_instance)
            .map(|r| {
                let mut labels = naming.labels(index, r, candidate, &request.extra_labels);
                if let Some(label) = gpus.label()
                    && !labels.contains(&label)
                {
                    labels.push(label);
                }
                labels
            })
            .collect();
        let credentials = self.credentials(index, &names, &labels).await?;
        let boot = &request.boot;
        // A machine whose provider gives it its own key may end itself with that key.
        let key_variable = match self.machine_key {
            MachineKey::ProvidedOnMachine { key_variable, .. } if boot.self_terminate => {
                Some(key_variable.to_owned())
            }
            _ => None,
        };
        let may_end_itself = boot.agent_api_key.is_some() || key_variable.is_some();
        let agent_config = AgentConfig {
            version: boot.version.clone(),
            provider: self.provider.to_owned(),
            api_url: boot.agent_api_url.clone(),
            api_key: boot.agent_api_key.clone(),
            key_variable,
            machine_tag: (tags::MACHINE.to_owned(), self.machine_tag(index)),
            run_label: naming.label().to_owned(),
            runner_count: request.runners_per_instance,
            runner_mode: request.mode.as_str().to_owned(),
            timings: boot.timings,
            health: boot
                .gpu_gate
                .for_machine(&candidate.instance_type, gpus.gpus),
        };
        let script = BootScript {
            version: boot.version.clone(),
            run_label: naming.label().to_owned(),
            machine_tag: self.machine_tag(index),
            registration_url: self.github.registration_url(),
            runner: self.runner.clone(),
            agent: boot.agent.clone(),
            agent_config: agent_config.to_json(),
            runners: names
                .into_iter()
                .zip(labels)
                .zip(credentials)
                .enumerate()
                .map(|(runner, ((name, labels), credential))| RunnerBoot {
                    name,
                    labels,
                    credential,
                    gpu_devices: gpus.devices(runner),
                })
                .collect(),
            privileges: boot.privileges,
            user_script: boot.user_script.clone(),
            runner_group: self.runner_group.clone(),
            // Without a key on the machine nothing there can end it.
            self_terminate: self
                .self_terminate
                .filter(|_| may_end_itself)
                .map(str::to_owned),
            max_lifetime_seconds: boot.timings.max_lifetime_seconds,
            cache_mount: self
                .cache_volume(&candidate.region)
                .map(|v| v.mount_point.clone()),
        };
        let user_data = script.render().map_err(|e| e.to_string())?;
        let mut spec = self.machine_spec(index, candidate);
        spec.boot_script = Some(user_data);
        Ok(spec)
    }

    async fn not_launched(&mut self, index: usize) {
        if let Some(runners) = self.registered.remove(&index) {
            self.spare.entry(index).or_default().extend(runners);
        }
    }

    async fn abandon(&mut self, index: usize) {
        let registered = self.registered.remove(&index).unwrap_or_default();
        let spare = self.spare.remove(&index).unwrap_or_default();
        for runner in registered.into_iter().chain(spare) {
            if let Err(error) = self.github.delete_runner(runner.id).await {
                tracing::warn!(runner = runner.id, %error, "could not delete an unused JIT runner");
            }
        }
    }
    async fn launched(&mut self, machine: &Launched) {
        self.machines
            .insert(machine.instance_index, machine.clone());
        if let Some(report) = self.report {
            let so_far: Vec<Launched> = self.machines.values().cloned().collect();
            report.send_replace(Outputs::new(
                &self.request.naming,
                &so_far,
                self.request.runners_per_instance,
            ));
        }
    }
}

/// A provisioning's state while it waits for runners: the machines (a replacement takes its
/// machine's slot), every attempt, and what was given up on.
struct Waiting<'r, 'l> {
    /// When the first plan started (its attempts' clock).
    started: Instant,
    registrar: Registrar<'r>,
    launched: &'l mut Vec<Launched>,
    attempts: &'l mut Vec<Attempt>,
    diagnoses: Vec<Diagnosis>,
    replaced: u32,
    /// Machines the launcher's agent was delivered to.
    delivered: std::collections::BTreeSet<MachineId>,
    /// Why the last delivery to each machine failed (it is tried again at the next poll).
    delivery_failures: BTreeMap<MachineId, String>,
}

impl Waiting<'_, '_> {
    /// `attempts` of a plan started at `at`, timed from the first plan's start.
    fn since_start(&self, mut attempts: Vec<Attempt>, at: Instant) -> Vec<Attempt> {
        let offset = at.duration_since(self.started).as_secs_f64();
        for attempt in &mut attempts {
            attempt.at_seconds += offset;
        }
        attempts
    }
}

/// Runs provisionings for one provider and one GitHub scope.
pub struct Provisioner<'a> {
    provider: &'a dyn CloudProvider,
    github: &'a GitHub,
    machines: Option<&'a tokio::sync::watch::Sender<Outputs>>,
}

impl<'a> Provisioner<'a> {
    /// A provisioner that launches on `provider` and registers runners with `github`.
    pub fn new(provider: &'a dyn CloudProvider, github: &'a GitHub) -> Self {
        Provisioner {
            provider,
            github,
            machines: None,
        }
    }

    /// Sends the outputs for the machines launched so far each time one is launched or
    /// replaced, before their runners are online: a caller that is cancelled mid-way has
    /// already handed on what a stop needs.
    #[must_use]
    pub fn reporting_machines(mut self, to: &'a tokio::sync::watch::Sender<Outputs>) -> Self {
        self.machines = Some(to);
        self
    }

    /// The runner every machine of the launch installs, and the name of its runner group.
    async fn runner_for(
        &self,
        request: &ProvisionRequest,
    ) -> Result<(RunnerPackage, Option<String>), ProvisionFailure> {
        // Once per launch, before any: every machine gets the same runner, and a runner that
        // cannot be had stops the launch while nothing is billing yet.
        let runner = match &request.boot.runner {
            RunnerVersion::Served => self.github.served_runner().await,
            RunnerVersion::Pinned(version) => {
                GitHub::pinned_runner(
                    version,
                    &request.boot.runner_releases_api,
                    &request.boot.runner_download_base,
                )
                .await
            }
        };
        let runner = runner.map_err(|e| ProvisionFailure::before_launch(e.to_string()))?;
        // `config.sh` takes the group's name; the input is its id.
        let runner_group = match (&request.mode, self.github.scope()) {
            (
                RunnerMode::Reusable,
                RunnerScope::Org {
                    group_id: Some(id), ..
                },
            ) => Some(
                self.github
                    .runner_group_name(*id)
                    .await
                    .map_err(|e| ProvisionFailure::before_launch(e.to_string()))?,
            ),
            _ => None,
        };
        Ok((runner, runner_group))
    }

    /// Launches the machines, waits until every runner is online (up to the registration
    /// timeout), replacing machines that turn out unhealthy (up to `replace_unhealthy`), and
    /// returns the outputs; or cleans up everything and says why not.
    pub async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<Provisioned, ProvisionFailure> {
        let (runner, runner_group) = self.runner_for(request).await?;
        let mut registrar = Registrar {
            provider: self.provider.name(),
            runner,
            self_terminate: self.provider.self_terminate_script(),
            machine_key: self.provider.capabilities().machine_key,
            github: self.github,
            request,
            registered: BTreeMap::new(),
            spare: BTreeMap::new(),
            token: None,
            runner_group,
            replacements: BTreeMap::new(),
            report: self.machines,
            machines: BTreeMap::new(),
        };
        let (mut launched, mut attempts) =
            match request.plan.execute(self.provider, &mut registrar).await {
                Ok(result) => result,
                Err(failure) => {
                    let mut cleanup = self.cleanup(&request.naming, &[]).await;
                    // The sweep finds the machines the plan already ended, still `terminating`.
                    cleanup
                        .terminated
                        .retain(|id| !failure.terminated.contains(id));
                    cleanup.terminated.extend(failure.terminated);
                    cleanup.not_terminated.extend(failure.not_terminated);
                    return Err(ProvisionFailure {
                        reason: failure.reason,
                        attempts: failure.attempts,
                        cleanup,
                        diagnoses: Vec::new(),
                    });
                }
            };
        let mut waiting = Waiting {
            // The plan's attempts are timed from its start: as long ago as the last one.
            started: {
                let since = attempts.last().map_or(Duration::ZERO, |a| {
                    Duration::try_from_secs_f64(a.at_seconds).unwrap_or_default()
                });
                Instant::now()
                    .checked_sub(since)
                    .unwrap_or_else(Instant::now)
            },
            registrar,
            launched: &mut launched,
            attempts: &mut attempts,
            diagnoses: Vec::new(),
            replaced: 0,
            delivered: std::collections::BTreeSet::new(),
            delivery_failures: BTreeMap::new(),
        };
        if let Err(reason) = self.wait_online(request, &mut waiting).await {
            let diagnoses = waiting.diagnoses;
            let machines: Vec<MachineId> = launched.iter().map(|l| l.machine.clone()).collect();
            let cleanup = self.cleanup(&request.naming, &machines).await;
            return Err(ProvisionFailure {
                reason,
                attempts,
                cleanup,
                diagnoses,
            });
        }
        let diagnoses = waiting.diagnoses;
        let outputs = Outputs::new(&request.naming, &launched, request.runners_per_instance);
        Ok(Provisioned {
            outputs,
            launched,
            attempts,
            diagnoses,
        })
    }

    /// A diagnosis, with its boot log, for each machine in `slots` whose runners stayed offline.
    async fn diagnose_offline(
        &self,
        request: &ProvisionRequest,
        waiting: &mut Waiting<'_, '_>,
        slots: &[usize],
        why: &str,
    ) {
        for &slot in slots {
            let launched = waiting.launched[slot].clone();
            let boot_log = self.boot_log(request, &launched.machine).await;
            let why = match waiting.delivery_failures.get(&launched.machine) {
                Some(failed) => {
                    format!("{why} (the agent could not be delivered: {failed})")
                }
                None => why.to_owned(),
            };
            waiting.diagnoses.push(Diagnosis {
                instance_index: launched.instance_index,
                machine: launched.machine,
                candidate: launched.candidate,
                why,
                boot_log,
                replaced_by: None,
            });
        }
    }

    async fn wait_online(
        &self,
        request: &ProvisionRequest,
        waiting: &mut Waiting<'_, '_>,
    ) -> Result<(), String> {
        let timeout = request.online_timeout;
        let mut deadline = Instant::now() + timeout;
        // Runners seen online: not asked for again.
        let mut online: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        loop {
            for slot in 0..waiting.launched.len() {
                let launched = waiting.launched[slot].clone();
                match self.provider.describe(&launched.machine).await {
                    Ok(m) if m.health_failure.is_some() || m.state == MachineState::Unhealthy => {
                        let why = match &m.health_failure {
                            Some(why) => format!("failed its GPU health gate: {why}"),
                            None => format!("is reported unhealthy by {}", self.provider.name()),
                        };
                        self.replace(request, waiting, slot, &m, why).await?;
                        let index = waiting.launched[slot].instance_index;
                        for r in 0..request.runners_per_instance {
                            online.remove(&request.naming.runner_name(index, r));
                        }
                        // The replacement gets the whole registration timeout.
                        deadline = deadline.max(Instant::now() + timeout);
                    }
                    Ok(m) if matches!(m.state, MachineState::Gone | MachineState::Stopping) => {
                        return Err(format!(
                            "machine {} ({}) became {:?} before its runners came online",
                            m.id, launched.candidate, m.state
                        ));
                    }
                    Ok(m) => self.deliver_agent(request, waiting, &m).await,
                    Err(error) if error.kind == crate::provider::ProviderErrorKind::NotFound => {
                        return Err(format!(
                            "machine {} disappeared before its runners came online",
                            launched.machine
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not describe a machine; still waiting");
                    }
                }
            }
            let expected: Vec<(usize, String)> = waiting
                .launched
                .iter()
                .enumerate()
                .flat_map(|(slot, l)| {
                    (0..request.runners_per_instance)
                        .map(move |r| (slot, request.naming.runner_name(l.instance_index, r)))
                })
                .collect();
            match self.ask_online(&expected, &mut online).await {
                Ok(()) => {
                    let missing: Vec<&(usize, String)> = expected
                        .iter()
                        .filter(|(_, name)| !online.contains(name))
                        .collect();
                    if missing.is_empty() {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        let why = format!(
                            "its runners did not come online within {}s",
                            timeout.as_secs()
                        );
                        let mut slots: Vec<usize> = missing.iter().map(|(slot, _)| *slot).collect();
                        slots.dedup();
                        self.diagnose_offline(request, waiting, &slots, &why).await;
                        let names: Vec<&str> = missing.iter().map(|(_, n)| n.as_str()).collect();
                        return Err(format!(
                            "{} of {} runner(s) did not come online within {}s: {}",
                            missing.len(),
                            expected.len(),
                            timeout.as_secs(),
                            names.join(", ")
                        ));
                    }
                }
                Err(error) if error.is_permanent() || Instant::now() >= deadline => {
                    return Err(error.to_string());
                }
                Err(error) => tracing::warn!(%error, "could not list runners; still waiting"),
            }
            tokio::time::sleep(request.online_poll).await;
        }
    }

    /// Delivers the launcher's agent to `machine` once it is up, when the agent comes that way
    /// ([`AgentSource::Delivered`]); a failure (its SSH server not answering yet) is tried
    /// again at the next poll, and named in the diagnosis if its runners never come online.
    async fn deliver_agent(
        &self,
        request: &ProvisionRequest,
        waiting: &mut Waiting<'_, '_>,
        machine: &Machine,
    ) {
        let AgentSource::Delivered { path, .. } = &request.boot.agent else {
            return;
        };
        if machine.state != MachineState::Running || waiting.delivered.contains(&machine.id) {
            return;
        }
        let started = Instant::now();
        match request
            .access
            .deliver(machine, path, crate::boot_script::AGENT_DELIVERY_PATH)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    machine = %machine.id,
                    seconds = started.elapsed().as_secs_f64(),
                    "delivered the agent"
                );
                waiting.delivered.insert(machine.id.clone());
                waiting.delivery_failures.remove(&machine.id);
            }
            Err(why) => {
                tracing::info!(machine = %machine.id, %why, "could not deliver the agent yet");
                waiting.delivery_failures.insert(machine.id.clone(), why);
            }
        }
    }

    /// Asks GitHub for each of `expected`'s runners not yet in `online`, and adds those that
    /// are online now: by name (GitHub's `name` filter, one small answer each) while few are
    /// missing; past [`ONLINE_BY_NAME`], one listing of the scope's runners (pages of 100) costs
    /// fewer calls.
    async fn ask_online(
        &self,
        expected: &[(usize, String)],
        online: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), crate::error::GitHubError> {
        let missing: Vec<&String> = expected
            .iter()
            .map(|(_, name)| name)
            .filter(|name| !online.contains(*name))
            .collect();
        if missing.len() > ONLINE_BY_NAME {
            let runners = self.github.list_runners().await?;
            for runner in runners.iter().filter(|r| r.is_online()) {
                if missing.contains(&&runner.name) {
                    online.insert(runner.name.clone());
                }
            }
            return Ok(());
        }
        for name in missing {
            if self
                .github
                .runner_named(name)
                .await?
                .is_some_and(|r| r.is_online())
            {
                online.insert(name.clone());
            }
        }
        Ok(())
    }

    /// The end of `id`'s boot log, or why it cannot be read.
    async fn boot_log(&self, request: &ProvisionRequest, id: &MachineId) -> Result<String, String> {
        let machine = self
            .provider
            .describe(id)
            .await
            .map_err(|e| format!("cannot describe {id}: {e}"))?;
        request.access.boot_log_tail(&machine, BOOT_LOG_LINES).await
    }

    /// Gives up on the unhealthy machine in `slot`: reads its boot log, terminates it, deletes
    /// its runners, and launches a machine in its place when replacements are left.
    async fn replace(
        &self,
        request: &ProvisionRequest,
        waiting: &mut Waiting<'_, '_>,
        slot: usize,
        machine: &Machine,
        why: String,
    ) -> Result<(), String> {
        let old = waiting.launched[slot].clone();
        let index = old.instance_index;
        tracing::warn!(machine = %old.machine, %why, "giving up on a machine");
        let boot_log = request.access.boot_log_tail(machine, BOOT_LOG_LINES).await;
        let mut diagnosis = Diagnosis {
            instance_index: index,
            machine: old.machine.clone(),
            candidate: old.candidate.clone(),
            why: why.clone(),
            boot_log,
            replaced_by: None,
        };
        let (_, not_terminated) =
            terminate_all(self.provider, std::slice::from_ref(&old.machine)).await;
        waiting.registrar.abandon(index).await;
        let mut deleted = CleanupReport::default();
        let prefix = format!("{}-{index}", request.naming.label());
        delete_runners(self.github, &[prefix.as_str()], &mut deleted).await;
        if let Some((id, error)) = not_terminated.first() {
            waiting.diagnoses.push(diagnosis);
            return Err(format!(
                "machine {index} {id} ({}) {why}, and terminating it failed: {error}",
                old.candidate
            ));
        }
        if waiting.replaced >= request.replace_unhealthy {
            waiting.diagnoses.push(diagnosis);
            return Err(format!(
                "machine {index} {} ({}) {why}; {} replacement(s) allowed \
                 (`replace_unhealthy`), {} used",
                old.machine, old.candidate, request.replace_unhealthy, waiting.replaced
            ));
        }
        waiting.replaced += 1;
        *waiting.registrar.replacements.entry(index).or_default() += 1;
        let plan = request.plan.replacement(index, &old.candidate);
        let replan = Instant::now();
        match plan.execute(self.provider, &mut waiting.registrar).await {
            Ok((mut launched, attempts)) => {
                waiting
                    .attempts
                    .extend(waiting.since_start(attempts, replan));
                let new = launched.remove(0);
                tracing::info!(machine = %new.machine, replaces = %old.machine, "replacement launched");
                diagnosis.replaced_by = Some(new.machine.clone());
                waiting.diagnoses.push(diagnosis);
                waiting.launched[slot] = new;
                Ok(())
            }
            Err(failure) => {
                waiting
                    .attempts
                    .extend(waiting.since_start(failure.attempts, replan));
                waiting.diagnoses.push(diagnosis);
                Err(format!(
                    "machine {index} {} ({}) {why}, and no machine could replace it: {}",
                    old.machine, old.candidate, failure.reason
                ))
            }
        }
    }

    /// Terminates `machines`, and any other machine tagged with the launch's label (a launch
    /// whose answer was lost still made one), and deletes every runner registered under the
    /// label. Idempotent: what is already gone counts as done.
    pub async fn cleanup(&self, naming: &RunnerNaming, machines: &[MachineId]) -> CleanupReport {
        let mut ids = machines.to_vec();
        match self
            .provider
            .list_tagged(tags::RUN, Some(naming.label()))
            .await
        {
            Ok(tagged) => {
                for machine in tagged {
                    if machine.state.may_bill() && !ids.contains(&machine.id) {
                        ids.push(machine.id);
                    }
                }
            }
            // The known machines are still terminated; the listing was only a sweep.
            Err(error) => tracing::warn!(%error, "could not list this launch's machines"),
        }
        let (terminated, not_terminated) = terminate_all(self.provider, &ids).await;
        let mut report = CleanupReport {
            terminated,
            not_terminated,
            ..CleanupReport::default()
        };
        delete_runners(self.github, &[naming.label()], &mut report).await;
        report
    }

    /// Ends earlier launches named by any of their machines or by their labels (the action's
    /// `stop` mode): terminates every machine of those launches and deletes every runner
    /// registered under their labels.
    /// Only machines this project tagged are touched; ids that are not (or no longer) among
    /// them are reported, not an error, so a `stop` after the machines ended themselves
    /// succeeds. When the machines cannot be listed, the named ones are terminated directly.
    pub async fn stop(&self, machines: &[MachineId], labels: &[String]) -> StopReport {
        // The caller's labels name whole launches too (a start killed before its outputs).
        let mut report = StopReport {
            labels: labels.to_vec(),
            stopped: Vec::new(),
            not_found: Vec::new(),
            unlisted: None,
            cleanup: CleanupReport::default(),
        };
        let ids: Vec<MachineId> = match self.provider.list_tagged(tags::RUN, None).await {
            Ok(ours) => {
                for id in machines {
                    match ours
                        .iter()
                        .find(|m| &m.id == id)
                        .and_then(|m| m.tags.get(tags::RUN))
                    {
                        Some(label) if !report.labels.contains(label) => {
                            report.labels.push(label.clone());
                        }
                        Some(_) => {}
                        None => report.not_found.push(id.clone()),
                    }
                }
                report.stopped = ours
                    .into_iter()
                    .filter(|m| {
                        m.state.may_bill()
                            && m.tags
                                .get(tags::RUN)
                                .is_some_and(|label| report.labels.contains(label))
                    })
                    .collect();
                report.stopped.iter().map(|m| m.id.clone()).collect()
            }
            Err(error) => {
                report.unlisted = Some(error.to_string());
                machines.to_vec()
            }
        };

        let (terminated, not_terminated) = terminate_all(self.provider, &ids).await;
        report.cleanup.terminated = terminated;
        report.cleanup.not_terminated = not_terminated;
        let label_refs: Vec<&str> = report.labels.iter().map(String::as_str).collect();
        delete_runners(self.github, &label_refs, &mut report.cleanup).await;
        report
    }
}

/// What a `stop` did.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// The launches ended.
    pub labels: Vec<String>,
    /// Their machines that were still alive, as they were before the terminate call.
    pub stopped: Vec<Machine>,
    /// Named machines that are not ours or already gone from the provider's listing.
    pub not_found: Vec<MachineId>,
    /// Why the machines could not be listed, when they could not: the named machines were
    /// then terminated directly.
    pub unlisted: Option<String>,
    /// The terminate calls and runner deletions.
    pub cleanup: CleanupReport,
}

/// Deletes every runner whose name starts with one of `labels` followed by `-`.
pub(crate) async fn delete_runners(github: &GitHub, labels: &[&str], report: &mut CleanupReport) {
    if labels.is_empty() {
        return;
    }
    let prefixes: Vec<String> = labels.iter().map(|l| format!("{l}-")).collect();
    match github.list_runners().await {
        Ok(runners) => {
            for runner in runners
                .into_iter()
                .filter(|r| prefixes.iter().any(|p| r.name.starts_with(p)))
            {
                match github.delete_runner(runner.id).await {
                    Ok(()) => report.runners_deleted.push(runner.id),
                    Err(error) => report
                        .runners_not_deleted
                        .push((runner.id, error.to_string())),
                }
            }
        }
        Err(error) => report
            .runners_not_deleted
            .push((0, format!("could not list runners to delete: {error}"))),
    }
}
