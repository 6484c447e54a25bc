//! The reconcile loop: demand is the queued jobs of each pool (from deliveries, and from a
//! periodic listing of GitHub's queued jobs that recovers dropped ones); supply is the runners
//! of each pool's machines that have not taken a job yet. The difference is launched (paced by
//! the provider's own client, falling back across the pool's types and regions), and machines
//! nobody needs any more are terminated: booting ones at once, online ones after the pool's
//! idle grace. Demand is counted, not pinned to jobs: a runner launched for job A may take job
//! B with the same labels, and the count stays right.
//!
//! Three loops share the store: `decide` (on every delivery, and every few seconds: store
//! reads and launch decisions only, so a burst of deliveries is answered in milliseconds),
//! `observe` (the provider's machines and GitHub's runners: machines that ended themselves,
//! idle runners, hard timeouts, orphans) and `poll` (GitHub's queued jobs).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gha_runner_core::boot_log::MachineAccess;
use gha_runner_core::github::RunnerInfo;
use gha_runner_core::gpus::{GpusPerRunner, gpu_layouts};
use gha_runner_core::naming::RunnerNaming;
use gha_runner_core::outputs::{MatrixEntry, Outputs};
use gha_runner_core::plan::LaunchPlan;
use gha_runner_core::provider::{Catalog, Machine, MachineId, MachineState};
use gha_runner_core::provisioner::{BootSettings, MachineTemplate, RunnerMode};
use gha_runner_core::{CapacityPolicy, CloudProvider, GitHub, ProvisionRequest, Provisioner, tags};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::app::GitHubSource;
use crate::config::{ControllerConfig, Pool};
use crate::metrics::Metrics;
use crate::store::{JobRecord, JobStatus, Launch, LaunchState, Millis, Store, now_millis};

/// The boot settings every machine of a pool gets before the pool's own (lifetime, user
/// script, GPU gate): where the agent and the runner come from, the provider key for
/// self-termination.
pub type BootTemplate = Arc<dyn Fn() -> BootSettings + Send + Sync>;

/// Everything the controller is made of.
pub struct Parts {
    /// The configuration.
    pub config: ControllerConfig,
    /// The state.
    pub store: Store,
    /// The cloud.
    pub provider: Arc<dyn CloudProvider>,
    /// GitHub: a token's client, or an App's, refreshed.
    pub github: GitHubSource,
    /// The machines' boot settings.
    pub boot: BootTemplate,
    /// How to read a failed machine's boot log.
    pub access: MachineAccess,
}

/// The controller's shared state.
pub(crate) struct Inner {
    pub(crate) config: ControllerConfig,
    pub(crate) store: Store,
    provider: Arc<dyn CloudProvider>,
    github: GitHubSource,
    boot: BootTemplate,
    access: MachineAccess,
    pub(crate) wake: Notify,
    pub(crate) metrics: Metrics,
    /// The provision task of each launching launch.
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Launches whose runners are being retired or whose machine is being ended by a task.
    ending: Mutex<std::collections::HashSet<String>>,
    /// The loops' tasks, for [`Controller::kill`].
    pub(crate) loops: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Prices and GPU counts, read at start and hourly.
    catalog: Mutex<Option<(Catalog, Instant)>>,
    /// When reading the catalog last failed: not asked again for a minute.
    catalog_failed: Mutex<Option<Instant>>,
    /// Until when each pool holds its launches after a failure.
    paused: Mutex<HashMap<String, Instant>>,
    /// The last note each pool's decision wrote, so a standing situation is said once.
    notes: Mutex<HashMap<String, String>>,
    /// When `decide` last finished (for `/healthz`).
    pub(crate) last_decision: Mutex<Option<Instant>>,
}

/// The controller. Cloning shares it.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many more machines costing `hourly` dollars an hour fit under a daily `cap` when
/// `committed` dollars are spent or promised (today's cost so far and the next hour of every
/// live machine): each new machine must fit an hour of its own.
fn affordable_machines(cap: f64, committed: f64, hourly: f64) -> usize {
    if hourly <= 0.0 {
        return usize::MAX;
    }
    let left = (cap - committed).max(0.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let machines = (left / hourly).floor() as usize;
    machines
}

/// A fresh label for one of `pool`'s launches: `lambda-<pool>-c<random>`, which
/// [`RunnerNaming::label_of_runner`] reads back from its runners' names.
fn new_label(pool: &str) -> String {
    let suffix: String = (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    format!("lambda-{pool}-c{suffix}")
}

impl Controller {
    /// A controller over `parts`.
    pub fn new(parts: Parts) -> Controller {
        Controller {
            inner: Arc::new(Inner {
                config: parts.config,
                store: parts.store,
                provider: parts.provider,
                github: parts.github,
                boot: parts.boot,
                access: parts.access,
                wake: Notify::new(),
                metrics: Metrics::default(),
                tasks: Mutex::new(HashMap::new()),
                loops: Mutex::new(Vec::new()),
                ending: Mutex::new(std::collections::HashSet::new()),
                catalog: Mutex::new(None),
                catalog_failed: Mutex::new(None),
                paused: Mutex::new(HashMap::new()),
                notes: Mutex::new(HashMap::new()),
                last_decision: Mutex::new(None),
            }),
        }
    }

    /// The state.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// What this process counted.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    /// Stops every task of this controller at its next await, launches in flight included,
    /// without a word to anyone: what a killed process leaves (for tests of a restart).
    pub fn kill(&self) {
        for handle in lock(&self.inner.loops).drain(..) {
            handle.abort();
        }
        for (_, task) in lock(&self.inner.tasks).drain() {
            task.abort();
        }
    }

    /// Runs the loops until `shutdown` turns true. Launches this process left half-done when
    /// it was killed are ended first (their machines found by label), so nothing leaks and
    /// the demand they served is launched again.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        self.recover().await;
        let observe = tokio::spawn(self.clone().observe_loop(shutdown.clone()));
        let poll = tokio::spawn(self.clone().poll_loop(shutdown.clone()));
        lock(&self.inner.loops).extend([observe.abort_handle(), poll.abort_handle()]);
        let every = self.inner.config.timing.reconcile_every;
        loop {
            self.decide().await;
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        observe.abort();
        poll.abort();
        // Launches in flight stop where they are; the next start ends them (`recover`).
        for (_, task) in lock(&self.inner.tasks).drain() {
            task.abort();
        }
    }

    async fn observe_loop(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.observe().await;
            self.inner.wake.notify_one();
            tokio::select! {
                () = tokio::time::sleep(self.inner.config.timing.observe_every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn poll_loop(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.poll_jobs().await;
            tokio::select! {
                () = tokio::time::sleep(self.inner.config.timing.poll_jobs_every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn note(&self, pool: Option<&str>, text: &str) {
        if let Err(error) = self.inner.store.decide(pool, text, now_millis()) {
            tracing::error!(%error, "could not record a decision");
        }
    }

    /// Notes `text` for `pool` unless it is what the pool's last note said.
    fn note_once(&self, pool: &str, text: &str) {
        let mut notes = lock(&self.inner.notes);
        if notes.get(pool).map(String::as_str) != Some(text) {
            notes.insert(pool.to_owned(), text.to_owned());
            drop(notes);
            self.note(Some(pool), text);
        }
    }

    /// Ends the launches a killed controller left launching: their provision tasks died
    /// with it.
    async fn recover(&self) {
        let live = match self.inner.store.live_launches() {
            Ok(live) => live,
            Err(error) => {
                tracing::error!(%error, "cannot read the launches to recover");
                return;
            }
        };
        for launch in live {
            if launch.state != LaunchState::Launching {
                continue;
            }
            if self.retire_runners(&launch).await {
                self.end(
                    &launch,
                    "the controller restarted while it was being launched",
                )
                .await;
            } else {
                self.adopt(&launch).await;
            }
        }
    }

    /// Takes over a launch whose provisioning died with the last process but whose runners
    /// could not be retired (one took a job, or GitHub did not answer): its machine, found by
    /// its label, counts as running, and the idle grace and `observe` take it from there.
    async fn adopt(&self, launch: &Launch) {
        let machine = match self
            .inner
            .provider
            .list_tagged(tags::RUN, Some(&launch.label))
            .await
        {
            Ok(machines) => machines.into_iter().find(|m| m.state.may_bill()),
            Err(error) => {
                tracing::warn!(%error, "could not look up a launch's machine; trying again later");
                return;
            }
        };
        let Some(machine) = machine else {
            self.end(
                launch,
                "the controller restarted while it was being launched",
            )
            .await;
            return;
        };
        let now = now_millis();
        if let Err(error) = self.inner.store.launch_running(
            &launch.label,
            machine.id.as_str(),
            &machine.instance_type,
            &machine.region,
            machine.price_cents_per_hour,
            now,
        ) {
            tracing::error!(%error, "could not record an adopted launch");
        }
        self.note(
            Some(&launch.pool),
            &format!(
                "{}: adopted after a restart (a runner of it has a job, or GitHub could not say) on {} ({})",
                launch.label, machine.instance_type, machine.id
            ),
        );
    }

    /// One decision pass over every pool.
    pub async fn decide(&self) {
        let pending = self.inner.metrics.take_pending();
        if let Err(error) = self.decide_pools().await {
            tracing::error!(%error, "could not decide");
        }
        if let Some(since) = pending {
            self.inner.metrics.record_decision_latency(since.elapsed());
        }
        *lock(&self.inner.last_decision) = Some(Instant::now());
    }

    async fn decide_pools(&self) -> Result<(), crate::ControllerError> {
        let now = now_millis();
        let queued = self.inner.store.queued_by_pool()?;
        let live = self.inner.store.live_launches()?;
        let finished = self.inner.store.finished_runners()?;
        for pool in &self.inner.config.pools {
            let mine: Vec<&Launch> = live.iter().filter(|l| l.pool == pool.name).collect();
            // Machines whose every runner ran its job to the end: their agents end them; the
            // controller does not wait for it.
            for launch in &mine {
                if launch.state == LaunchState::Running
                    && finished.get(&launch.label).copied().unwrap_or(0) >= launch.runners
                {
                    self.end_later(launch, "its runners finished their jobs", false);
                }
            }
            let demand = queued.get(&pool.name).copied().unwrap_or(0);
            let serving: Vec<&Launch> = mine
                .iter()
                .copied()
                .filter(|l| matches!(l.state, LaunchState::Launching | LaunchState::Running))
                .filter(|l| finished.get(&l.label).copied().unwrap_or(0) < l.runners)
                .collect();
            let supply: usize = serving.iter().map(|l| l.free_runners()).sum();
            match demand.cmp(&supply) {
                std::cmp::Ordering::Greater => {
                    self.launch_for(pool, demand, supply, mine.len(), now)
                        .await?;
                }
                std::cmp::Ordering::Less => {
                    self.shed(pool, supply - demand, &serving, now);
                }
                std::cmp::Ordering::Equal => {
                    lock(&self.inner.notes).remove(&pool.name);
                }
            }
        }
        Ok(())
    }

    /// Launches machines for `demand - supply` runners, within the pool's limits.
    async fn launch_for(
        &self,
        pool: &Pool,
        demand: usize,
        supply: usize,
        alive: usize,
        now: Millis,
    ) -> Result<(), crate::ControllerError> {
        if let Some(until) = lock(&self.inner.paused).get(&pool.name)
            && Instant::now() < *until
        {
            return Ok(());
        }
        let wanted = (demand - supply).div_ceil(pool.runners_per_machine);
        let room = pool.max_machines.saturating_sub(alive);
        let price = self.price_of(pool).await;
        let affordable = match (pool.daily_cost_cap_usd, price) {
            (Some(cap), Some(cents)) => {
                let (spent, committed) = self.spent_today(&pool.name, now)?;
                affordable_machines(cap, spent + committed, f64::from(cents) / 100.0)
            }
            _ => usize::MAX,
        };
        let count = wanted.min(room).min(affordable);
        for _ in 0..count {
            let label = new_label(&pool.name);
            self.inner.store.new_launch(
                &label,
                &pool.name,
                pool.runners_per_machine,
                price,
                now,
            )?;
            self.note(
                Some(&pool.name),
                &format!(
                    "launch {label}: {demand} job(s) queued, {supply} runner(s) free or booting"
                ),
            );
            self.inner.metrics.count_launch(&pool.name);
            let task = tokio::spawn(self.clone().launch(pool.clone(), label.clone()));
            lock(&self.inner.tasks).insert(label, task);
        }
        if count < wanted {
            let waiting = (demand - supply).saturating_sub(count * pool.runners_per_machine);
            let why = if count == affordable && affordable < room {
                format!(
                    "{waiting} queued job(s) wait: the pool's daily cost cap of ${:.2} is reached",
                    pool.daily_cost_cap_usd.unwrap_or_default()
                )
            } else {
                format!(
                    "{waiting} queued job(s) wait: the pool is at its {} machine(s)",
                    pool.max_machines
                )
            };
            self.note_once(&pool.name, &why);
        } else {
            lock(&self.inner.notes).remove(&pool.name);
        }
        Ok(())
    }

    /// Ends machines nobody needs: `excess` runners more than the queued jobs. Booting
    /// machines go first, newest first (none of their runners can have a job); online ones
    /// only once their runners have idled through the pool's grace.
    fn shed(&self, pool: &Pool, excess: usize, serving: &[&Launch], now: Millis) {
        let mut left = excess;
        let grace = i64::try_from(pool.idle_grace.as_millis()).unwrap_or(i64::MAX);
        let mut unused: Vec<&Launch> = serving
            .iter()
            .copied()
            .filter(|l| l.runners_used == 0)
            .collect();
        unused.sort_by_key(|l| {
            (
                l.state != LaunchState::Launching,
                std::cmp::Reverse(l.started_at),
            )
        });
        for launch in unused {
            if launch.runners > left {
                continue;
            }
            let why = match launch.state {
                LaunchState::Launching => "no queued job needs it any more (it was booting)",
                _ if launch.idle_since.is_some_and(|t| now - t >= grace) => {
                    "no queued job needs it, and its runners idled through the pool's grace"
                }
                _ => continue,
            };
            left -= launch.runners;
            self.end_later(launch, why, true);
        }
    }

    /// Deletes the runners of a launch nobody needs, before its machine is ended, so that no
    /// job can reach them in between: GitHub refuses to delete a runner that runs a job
    /// (422, docs.github.com, "Delete a self-hosted runner from a repository"; the fake
    /// follows it), and then the machine is kept. A runner may take a job the moment its
    /// machine boots, before any delivery says so (or when the delivery is lost): asking
    /// first and deleting after would race it. `false`: keep the machine.
    async fn retire_runners(&self, launch: &Launch) -> bool {
        let Ok(naming) = RunnerNaming::with_label(&launch.label) else {
            return false;
        };
        let Some(github) = self.github().await else {
            return false;
        };
        let github = github.as_ref().clone().with_busy_wait(Duration::ZERO);
        for r in 0..launch.runners {
            let name = naming.runner_name(0, r);
            let runner = match github.runner_named(&name).await {
                Ok(Some(runner)) => runner,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "could not look up a runner; keeping its machine");
                    return false;
                }
            };
            if runner.busy {
                return false;
            }
            if let Err(error) = github.delete_runner(runner.id).await {
                tracing::info!(%error, runner = %name, "runner not deleted; keeping its machine");
                return false;
            }
        }
        true
    }

    /// Launches one machine for `pool`, waits until its runners are online, and records the
    /// outcome. The provisioner cleans up whatever a failed launch made.
    async fn launch(self, pool: Pool, label: String) {
        let started = Instant::now();
        let outcome = match self.request(&pool, &label).await {
            Ok(request) => self.provision(&request).await,
            Err(why) => Err(why),
        };
        let now = now_millis();
        match outcome {
            Ok(placed) => {
                let price = self.catalog().await.and_then(|c| {
                    c.offering(&placed.instance_type)
                        .map(|o| o.price_cents_per_hour)
                });
                if let Err(error) = self.inner.store.launch_running(
                    &label,
                    &placed.instance_id,
                    &placed.instance_type,
                    &placed.region,
                    price,
                    now,
                ) {
                    tracing::error!(%error, "could not record a launch");
                }
                self.note(
                    Some(&pool.name),
                    &format!(
                        "{label}: runners online on {} in {} ({}) after {:.1}s",
                        placed.instance_type,
                        placed.region,
                        placed.instance_id,
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            Err(reason) => {
                if let Err(error) =
                    self.inner
                        .store
                        .end_launch(&label, LaunchState::Failed, &reason, now)
                {
                    tracing::error!(%error, "could not record a failed launch");
                }
                self.inner.metrics.count_failure(&pool.name);
                lock(&self.inner.paused).insert(
                    pool.name.clone(),
                    Instant::now() + self.inner.config.timing.failed_launch_pause,
                );
                self.note(
                    Some(&pool.name),
                    &format!(
                        "{label} failed, cleaned up: {}",
                        reason.lines().next().unwrap_or_default()
                    ),
                );
            }
        }
        lock(&self.inner.tasks).remove(&label);
        self.inner.wake.notify_one();
    }

    /// Runs the provisioning, and where its machine went. A runner of the launch that takes
    /// a job (its delivery names the runner) settles it too: a short job on a just-in-time
    /// runner can start and end, and its runner be removed, between two of the
    /// provisioner's looks, which would otherwise wait for it until the registration timeout.
    async fn provision(&self, request: &ProvisionRequest) -> Result<MatrixEntry, String> {
        let (machines, seen) = watch::channel(Outputs::new(
            &request.naming,
            &[],
            request.runners_per_instance,
        ));
        let github = self.github().await.ok_or("no GitHub client: see the log")?;
        let provisioner =
            Provisioner::new(&*self.inner.provider, &github).reporting_machines(&machines);
        let provision = provisioner.provision(request);
        tokio::pin!(provision);
        let label = request.naming.label();
        loop {
            tokio::select! {
                result = &mut provision => {
                    return result
                        .map_err(|failure| failure.reason)
                        .and_then(|done| done.outputs.mtx.into_iter().next().ok_or_else(|| "the launch reported no machine".to_owned()));
                }
                () = tokio::time::sleep(request.online_poll) => {
                    let taken = self
                        .inner
                        .store
                        .launch(label)
                        .ok()
                        .flatten()
                        .is_some_and(|l| l.runners_used > 0);
                    let placed = seen.borrow().mtx.first().cloned();
                    if let (true, Some(placed)) = (taken, placed) {
                        return Ok(placed);
                    }
                }
            }
        }
    }

    /// The provisioning of one machine of `pool` under `label`.
    async fn request(&self, pool: &Pool, label: &str) -> Result<ProvisionRequest, String> {
        let timing = &self.inner.config.timing;
        let plan = LaunchPlan::new(pool.candidates.clone(), 1, CapacityPolicy::FailFast)
            .map_err(|e| e.to_string())?;
        let naming = RunnerNaming::with_label(label).map_err(|e| e.to_string())?;
        let mut boot: BootSettings = (self.inner.boot)();
        boot.timings.max_lifetime_seconds = pool.max_lifetime.as_secs();
        boot.timings.registration_timeout_seconds = timing.registration_timeout.as_secs();
        boot.user_script.clone_from(&pool.userdata);
        boot.gpu_gate = pool.gpu_gate.clone();
        let types: Vec<String> = pool
            .candidates
            .iter()
            .map(|c| c.instance_type.clone())
            .collect();
        let gpus = match self.catalog().await {
            Some(catalog) => gpu_layouts(
                &catalog,
                &types,
                pool.runners_per_machine,
                GpusPerRunner::Even,
            )
            .map_err(|e| e.to_string())?,
            None => BTreeMap::new(),
        };
        let mut machine_tags = BTreeMap::new();
        machine_tags.insert(tags::CONTROLLER.to_owned(), self.inner.config.name.clone());
        Ok(ProvisionRequest {
            plan,
            naming,
            runners_per_instance: pool.runners_per_machine,
            mode: RunnerMode::Jit,
            extra_labels: pool.labels.clone(),
            machine: MachineTemplate {
                image: pool.image.clone(),
                ssh_key: pool.ssh_key.clone(),
                volumes: pool.filesystem.iter().cloned().collect(),
                firewall_rulesets: Vec::new(),
                name_template: Some(label.to_owned()),
                tags: machine_tags,
            },
            boot,
            gpus,
            replace_unhealthy: 1,
            access: self.inner.access.clone(),
            online_poll: timing.observe_every.min(Duration::from_secs(5)),
            online_timeout: timing.registration_timeout,
        })
    }

    /// Ends `launch` in a task of its own (once at a time per launch), so that a decision pass
    /// never waits on the cloud or on GitHub. With `retire_first`, its runners are deleted
    /// first and the machine is kept when one of them has a job ([`Self::retire_runners`]).
    fn end_later(&self, launch: &Launch, why: &str, retire_first: bool) {
        if !lock(&self.inner.ending).insert(launch.label.clone()) {
            return;
        }
        let (this, launch, why) = (self.clone(), launch.clone(), why.to_owned());
        let task = tokio::spawn(async move {
            if !retire_first || this.retire_runners(&launch).await {
                this.end(&launch, &why).await;
            }
            lock(&this.inner.ending).remove(&launch.label);
            this.inner.wake.notify_one();
        });
        let mut loops = lock(&self.inner.loops);
        loops.retain(|handle| !handle.is_finished());
        loops.push(task.abort_handle());
    }

    /// Ends `launch`: stops its provisioning if it is still launching, terminates its machine
    /// (found by its label too) and deletes its runners. What cannot be ended now stays
    /// `ending` and is tried again by `observe`.
    async fn end(&self, launch: &Launch, why: &str) {
        let now = now_millis();
        if let Some(task) = lock(&self.inner.tasks).remove(&launch.label) {
            task.abort();
        }
        if let Err(error) =
            self.inner
                .store
                .end_launch(&launch.label, LaunchState::Ending, why, now)
        {
            tracing::error!(%error, "could not record an ending launch");
        }
        if launch.state != LaunchState::Ending {
            self.note(Some(&launch.pool), &format!("end {}: {why}", launch.label));
        }
        let Ok(naming) = RunnerNaming::with_label(&launch.label) else {
            return;
        };
        let machines: Vec<MachineId> = launch.machine_id.iter().map(MachineId::new).collect();
        let Some(github) = self.github().await else {
            // `observe` tries `ending` launches again.
            return;
        };
        let report = Provisioner::new(&*self.inner.provider, &github)
            .cleanup(&naming, &machines)
            .await;
        if report.not_terminated.is_empty() {
            if let Err(error) =
                self.inner
                    .store
                    .end_launch(&launch.label, LaunchState::Ended, why, now_millis())
            {
                tracing::error!(%error, "could not record an ended launch");
            }
        } else {
            tracing::warn!(label = %launch.label, ?report.not_terminated, "could not end every machine; trying again at the next observation");
        }
    }

    /// The GitHub client to call through now; `None` (said in the log) when an App's
    /// installation token cannot be had.
    async fn github(&self) -> Option<Arc<GitHub>> {
        match self.inner.github.get().await {
            Ok(github) => Some(github),
            Err(error) => {
                tracing::error!(%error, "no GitHub client");
                None
            }
        }
    }

    /// The catalog, read at most hourly.
    async fn catalog(&self) -> Option<Catalog> {
        if let Some((catalog, at)) = lock(&self.inner.catalog).as_ref()
            && at.elapsed() < Duration::from_secs(3600)
        {
            return Some(catalog.clone());
        }
        if lock(&self.inner.catalog_failed).is_some_and(|at| at.elapsed() < Duration::from_secs(60))
        {
            return lock(&self.inner.catalog).as_ref().map(|(c, _)| c.clone());
        }
        match self.inner.provider.catalog().await {
            Ok(catalog) => {
                *lock(&self.inner.catalog) = Some((catalog.clone(), Instant::now()));
                Some(catalog)
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the provider's catalog");
                *lock(&self.inner.catalog_failed) = Some(Instant::now());
                lock(&self.inner.catalog).as_ref().map(|(c, _)| c.clone())
            }
        }
    }

    /// The dearest price among the pool's types (what a new machine may cost).
    async fn price_of(&self, pool: &Pool) -> Option<u32> {
        let catalog = self.catalog().await?;
        pool.candidates
            .iter()
            .filter_map(|c| catalog.offering(&c.instance_type))
            .map(|o| o.price_cents_per_hour)
            .max()
    }

    /// What `pool` cost since the start of the UTC day, and the next hour of its live
    /// machines (what it is committed to unless they end).
    fn spent_today(&self, pool: &str, now: Millis) -> Result<(f64, f64), crate::ControllerError> {
        let day = now - now.rem_euclid(86_400_000);
        let launches = self.inner.store.launches_since(day)?;
        let mine = launches.iter().filter(|l| l.pool == pool);
        let spent = mine
            .clone()
            .map(|l| {
                let mut today = l.clone();
                today.started_at = today.started_at.max(day);
                today.cost_usd(now)
            })
            .sum();
        let committed = mine
            .filter(|l| l.state.is_live())
            .filter_map(|l| l.price_cents_per_hour)
            .map(|cents| f64::from(cents) / 100.0)
            .sum();
        Ok((spent, committed))
    }

    /// Lists the provider's machines of this controller and GitHub's runners, and acts on
    /// what changed: machines that ended themselves, runners that took jobs or idle, hard
    /// timeouts, `ending` launches not yet ended, and orphans (machines of this controller
    /// that no live launch claims; runners of launches that ended).
    pub async fn observe(&self) {
        let name = &self.inner.config.name;
        let machines = match self
            .inner
            .provider
            .list_tagged(tags::CONTROLLER, Some(name))
            .await
        {
            Ok(machines) => Some(machines),
            Err(error) => {
                tracing::warn!(%error, "could not list the machines");
                None
            }
        };
        let runners = match self.github().await {
            Some(github) => match github.list_runners().await {
                Ok(runners) => Some(runners),
                Err(error) => {
                    tracing::warn!(%error, "could not list the runners");
                    None
                }
            },
            None => None,
        };
        let live = match self.inner.store.live_launches() {
            Ok(live) => live,
            Err(error) => {
                tracing::error!(%error, "cannot read the launches");
                return;
            }
        };
        let now = now_millis();
        for launch in &live {
            self.observe_launch(launch, machines.as_deref(), runners.as_deref(), now);
        }
        if let Some(machines) = &machines {
            self.reap_orphans(machines, &live).await;
        }
        if let Some(runners) = &runners {
            self.delete_ended_runners(runners).await;
        }
        let expiry = i64::try_from(self.inner.config.timing.queued_job_expiry.as_millis())
            .unwrap_or(i64::MAX);
        match self
            .inner
            .store
            .expire_jobs(now.saturating_sub(expiry), now)
        {
            Ok(0) => {}
            Ok(n) => self.note(
                None,
                &format!(
                    "{n} job(s) queued longer than GitHub keeps a job queued: no longer counted"
                ),
            ),
            Err(error) => tracing::error!(%error, "could not expire jobs"),
        }
    }

    fn observe_launch(
        &self,
        launch: &Launch,
        machines: Option<&[Machine]>,
        runners: Option<&[RunnerInfo]>,
        now: Millis,
    ) {
        let pool = self.inner.config.pool(&launch.pool);
        let lifetime = pool.map_or(i64::MAX, |p| {
            i64::try_from(p.max_lifetime.as_millis()).unwrap_or(i64::MAX)
        });
        if now - launch.started_at > lifetime {
            self.end_later(launch, "it reached the pool's max_lifetime", false);
            return;
        }
        let machine = machines.map(|all| {
            all.iter()
                .find(|m| m.tags.get(tags::RUN) == Some(&launch.label) && m.state.may_bill())
        });
        match launch.state {
            LaunchState::Ending => {
                // Still ending: the first try failed, or it ended and the store missed it.
                self.end_later(launch, launch.reason.as_deref().unwrap_or("ending"), false);
            }
            LaunchState::Running => {
                if machine == Some(None) {
                    if let Err(error) = self.inner.store.end_launch(
                        &launch.label,
                        LaunchState::Ended,
                        "its machine ended",
                        now,
                    ) {
                        tracing::error!(%error, "could not record an ended launch");
                    }
                    return;
                }
                let Some(runners) = runners else {
                    return;
                };
                let prefix = format!("{}-", launch.label);
                let own: Vec<&RunnerInfo> = runners
                    .iter()
                    .filter(|r| r.name.starts_with(&prefix))
                    .collect();
                let busy = own.iter().filter(|r| r.busy).count();
                // Online once, so a runner no longer listed took its job (a JIT runner is
                // removed after it) or died.
                let gone = launch.runners.saturating_sub(own.len());
                let idle = busy == 0 && gone == 0;
                let idle_since = idle.then(|| launch.idle_since.unwrap_or(now));
                if let Err(error) =
                    self.inner
                        .store
                        .set_usage(&launch.label, busy + gone, idle_since)
                {
                    tracing::error!(%error, "could not record runner usage");
                }
                if own.is_empty() && launch.runners_used >= launch.runners {
                    self.end_later(launch, "its runners are gone", false);
                }
            }
            LaunchState::Launching => {
                // Its task records how it ended; one that ended without a word (its store
                // write failed) would leave it counted as booting forever.
                let waited = now - launch.started_at;
                let limit =
                    i64::try_from(self.inner.config.timing.registration_timeout.as_millis())
                        .unwrap_or(i64::MAX)
                        .saturating_mul(2);
                if waited > limit && !lock(&self.inner.tasks).contains_key(&launch.label) {
                    self.end_later(launch, "its launch ended without recording how", true);
                }
            }
            LaunchState::Ended | LaunchState::Failed => {}
        }
    }

    /// Terminates machines of this controller that no live launch claims.
    async fn reap_orphans(&self, machines: &[Machine], live: &[Launch]) {
        let orphans: Vec<&Machine> = machines
            .iter()
            // One already shutting down was terminated already (by a launch's end).
            .filter(|m| m.state.may_bill() && m.state != MachineState::Stopping)
            .filter(|m| {
                m.tags
                    .get(tags::RUN)
                    .is_none_or(|label| !live.iter().any(|l| &l.label == label))
            })
            .collect();
        if orphans.is_empty() {
            return;
        }
        let ids: Vec<MachineId> = orphans.iter().map(|m| m.id.clone()).collect();
        let (terminated, failed) =
            gha_runner_core::plan::terminate_all(&*self.inner.provider, &ids).await;
        for id in &terminated {
            self.note(
                None,
                &format!(
                    "reaped machine {id}: tagged by this controller, claimed by no live launch"
                ),
            );
        }
        for (id, error) in failed {
            tracing::warn!(%id, %error, "could not reap a machine");
        }
    }

    /// Deletes runners of this controller's launches that ended (one whose machine died
    /// before its runner was removed).
    async fn delete_ended_runners(&self, runners: &[RunnerInfo]) {
        for runner in runners {
            let Some(label) = RunnerNaming::label_of_runner(&runner.name) else {
                continue;
            };
            if runner.busy {
                continue;
            }
            match self.inner.store.launch_state(label) {
                Ok(Some(LaunchState::Ended | LaunchState::Failed)) => {
                    let Some(github) = self.github().await else {
                        return;
                    };
                    if let Err(error) = github.delete_runner(runner.id).await {
                        tracing::warn!(%error, runner = %runner.name, "could not delete an ended launch's runner");
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot read a launch"),
            }
        }
    }

    /// Lists GitHub's queued jobs of every configured repository and records them: jobs
    /// whose deliveries were lost are found, and jobs no longer queued stop counting.
    pub async fn poll_jobs(&self) {
        let Some(github) = self.github().await else {
            return;
        };
        for repository in &self.inner.config.github.repositories {
            let Some((owner, repo)) = repository.split_once('/') else {
                continue;
            };
            let since = now_millis();
            let listed = match github.queued_jobs(owner, repo, 500).await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(%error, repository, "could not list the queued jobs");
                    continue;
                }
            };
            let records: Vec<JobRecord<'_>> = listed
                .iter()
                .filter_map(|job| {
                    let pool = self.inner.config.pool_for(&job.labels)?;
                    Some(JobRecord {
                        id: job.id,
                        run_id: job.run_id,
                        repository,
                        name: &job.name,
                        labels: &job.labels,
                        pool: &pool.name,
                        status: JobStatus::Queued,
                        runner_name: None,
                    })
                })
                .collect();
            match self
                .inner
                .store
                .record_listing(repository, &records, since, now_millis())
            {
                Ok((0, 0)) => {}
                Ok((new, stale)) => {
                    if new > 0 {
                        self.note(
                            None,
                            &format!("{repository}: {new} queued job(s) found by listing that no delivery had announced"),
                        );
                    }
                    if stale > 0 {
                        self.note(
                            None,
                            &format!("{repository}: {stale} job(s) no longer queued on GitHub, no delivery had said so"),
                        );
                    }
                    self.inner.wake.notify_one();
                }
                Err(error) => tracing::error!(%error, "could not record the queued jobs"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_cap_counts_what_was_spent_and_the_next_hour_of_live_machines() {
        // $10 a day, $0.75 an hour: 13 machines from nothing.
        assert_eq!(affordable_machines(10.0, 0.0, 0.75), 13);
        // $4 spent and two live machines' next hour ($1.50): 6 more.
        assert_eq!(affordable_machines(10.0, 5.5, 0.75), 6);
        assert_eq!(
            affordable_machines(10.0, 9.5, 0.75),
            0,
            "not a whole hour left"
        );
        assert_eq!(affordable_machines(10.0, 12.0, 0.75), 0, "over the cap");
        assert_eq!(
            affordable_machines(10.0, 0.0, 0.0),
            usize::MAX,
            "no price known"
        );
        // Labels read back from their runners' names.
        let label = new_label("a10");
        assert!(label.starts_with("lambda-a10-c"));
        assert_eq!(
            RunnerNaming::label_of_runner(&format!("{label}-0-1")),
            Some(label.as_str())
        );
    }
}
