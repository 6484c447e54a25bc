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
use crate::pacing::PacedProvider;
use crate::store::{JobRecord, JobStatus, Launch, LaunchState, Millis, Store, Term, now_millis};

/// The boot settings every machine of a pool gets before the pool's own (lifetime, user
/// script, GPU gate): where the agent and the runner come from, the provider key for
/// self-termination.
pub type BootTemplate = Arc<dyn Fn() -> BootSettings + Send + Sync>;

/// Everything the controller is made of.
pub struct Parts {
    /// The configuration.
    pub config: ControllerConfig,
    /// The state.
    pub store: Arc<dyn Store>,
    /// The cloud.
    pub provider: Arc<dyn CloudProvider>,
    /// GitHub: a token's client, or an App's, refreshed.
    pub github: GitHubSource,
    /// The machines' boot settings.
    pub boot: BootTemplate,
    /// How to read a failed machine's boot log.
    pub access: MachineAccess,
    /// The shortest interval between two launches on the provider's account, in the time its
    /// API runs on: replicas sharing a store keep their launches this far apart.
    pub launch_interval: Duration,
}

/// The controller's shared state.
pub(crate) struct Inner {
    pub(crate) config: ControllerConfig,
    pub(crate) store: Arc<dyn Store>,
    /// This replica's name in the lease.
    replica: String,
    /// This replica's term, while it leads the loops.
    pub(crate) leading: Mutex<Option<Term>>,
    /// Tasks ending launches, for [`Controller::kill`] and a lost lease.
    ending_tasks: Mutex<Vec<tokio::task::AbortHandle>>,
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

/// How often a replica that does not lead asks for the lead.
const LEAD_RETRY: Duration = Duration::from_secs(1);
/// How often the leader renews its lease.
const RENEW_EVERY: Duration = Duration::from_millis(500);
/// The leader stops its loops when the lease has not been renewed for this long (a shared
/// store's takeover comes later: [`crate::store::TAKE_OVER_AFTER`]).
const STEP_DOWN_AFTER: Duration = crate::store::STEP_DOWN_AFTER;

/// Aborts tasks when dropped (a term's loops end with it, however it ends).
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// This process's name in the lease: host and process id.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
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
                store: parts.store.clone(),
                replica: replica_name(),
                leading: Mutex::new(None),
                ending_tasks: Mutex::new(Vec::new()),
                provider: Arc::new(PacedProvider::new(
                    parts.provider,
                    parts.store.clone(),
                    parts.launch_interval,
                )),
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
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// This replica's term, while it leads the reconcile loops.
    pub fn leading(&self) -> Option<Term> {
        *lock(&self.inner.leading)
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
        self.stop_work();
    }

    /// Aborts the launches in flight and the ends under way, and forgets what this replica
    /// held in memory about them: whoever leads next picks them up from the store
    /// (`recover`, `observe`).
    fn stop_work(&self) {
        for (_, task) in lock(&self.inner.tasks).drain() {
            task.abort();
        }
        for handle in lock(&self.inner.ending_tasks).drain(..) {
            handle.abort();
        }
        lock(&self.inner.ending).clear();
        lock(&self.inner.paused).clear();
        lock(&self.inner.notes).clear();
    }

    /// Runs until `shutdown` turns true: waits for this replica's turn to lead (at once on a
    /// store only it uses), then runs the loops until the term is lost or `shutdown` comes.
    /// Launches a previous leader left half-done are ended or adopted first (`recover`), so
    /// nothing leaks and the demand they served is launched again.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let replica = self.inner.replica.clone();
        while let Some(term) = self.wait_to_lead(&replica, &mut shutdown).await {
            *lock(&self.inner.leading) = Some(term);
            tracing::info!(replica, epoch = term.epoch, "leading the reconcile loops");
            let shut = self.lead(shutdown.clone()).await;
            *lock(&self.inner.leading) = None;
            self.stop_work();
            self.inner.store.resign().await;
            if shut {
                return;
            }
            tracing::warn!(
                replica,
                epoch = term.epoch,
                "lost the lead: loops stopped, standing by"
            );
        }
    }

    /// Asks the store for the lead every [`LEAD_RETRY`] until it is granted; `None` on
    /// shutdown.
    async fn wait_to_lead(
        &self,
        replica: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Term> {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            match self.inner.store.lead(replica).await {
                Ok(Some(term)) => return Some(term),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot ask the store for the lead"),
            }
            tokio::select! {
                () = tokio::time::sleep(LEAD_RETRY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One term: the loops, until `shutdown` (`true`) or the lease is lost (`false`).
    async fn lead(&self, mut shutdown: watch::Receiver<bool>) -> bool {
        let (lost_tx, mut lost) = watch::channel(false);
        let renewal = tokio::spawn(self.clone().renew_loop(lost_tx));
        let shut = tokio::select! {
            shut = self.lead_loops(shutdown.clone()) => shut,
            _ = lost.changed() => false,
            _ = shutdown.changed() => true,
        };
        renewal.abort();
        shut || *shutdown.borrow_and_update()
    }

    async fn lead_loops(&self, mut shutdown: watch::Receiver<bool>) -> bool {
        self.recover().await;
        let observe = tokio::spawn(self.clone().observe_loop(shutdown.clone()));
        let poll = tokio::spawn(self.clone().poll_loop(shutdown.clone()));
        let _stop = AbortOnDrop(vec![observe.abort_handle(), poll.abort_handle()]);
        let every = self.inner.config.timing.reconcile_every;
        let elsewhere = self.inner.store.wakeups().unwrap_or_default();
        loop {
            self.decide().await;
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = elsewhere.notified() => {}
                () = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return true;
            }
        }
    }

    /// Renews the lease every [`RENEW_EVERY`]; says `lost` when the store refuses it or has
    /// not confirmed it for [`STEP_DOWN_AFTER`] (then another replica may take over soon, and
    /// this one must have stopped by then).
    async fn renew_loop(self, lost: watch::Sender<bool>) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let left = STEP_DOWN_AFTER.saturating_sub(renewed.elapsed());
            match tokio::time::timeout(left, self.inner.store.renew()).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!("the store says another replica leads now");
                    let _ = lost.send(true);
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "could not renew the lead"),
                Err(_) => {}
            }
            if renewed.elapsed() >= STEP_DOWN_AFTER {
                tracing::warn!(
                    "the lead not renewed for {}s: stepping down before another replica takes over",
                    STEP_DOWN_AFTER.as_secs()
                );
                let _ = lost.send(true);
                return;
            }
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

    async fn note(&self, pool: Option<&str>, text: &str) {
        if let Err(error) = self.inner.store.decide(pool, text, now_millis()).await {
            tracing::error!(%error, "could not record a decision");
        }
    }

    /// Notes `text` for `pool` unless it is what the pool's last note said.
    async fn note_once(&self, pool: &str, text: &str) {
        let fresh = {
            let mut notes = lock(&self.inner.notes);
            notes.insert(pool.to_owned(), text.to_owned()).as_deref() != Some(text)
        };
        if fresh {
            self.note(Some(pool), text).await;
        }
    }

    /// Takes over the launches the last leader left launching (it was killed, or lost the
    /// lead, and its provision tasks died with it). One whose machine exists is adopted: it
    /// keeps booting, and `observe` counts it running once its runners are online — no
    /// second machine is launched for its job. One without a machine had not launched yet:
    /// its runners are deleted and it is ended, and its demand is launched again.
    async fn recover(&self) {
        let live = match self.inner.store.live_launches().await {
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
            let machine = match self
                .inner
                .provider
                .list_tagged(tags::RUN, Some(&launch.label))
                .await
            {
                Ok(machines) => machines.into_iter().find(|m| m.state.may_bill()),
                Err(error) => {
                    // The stuck-launch guard of `observe` ends it if nobody adopts it.
                    tracing::warn!(%error, label = %launch.label, "could not look up a launch's machine");
                    continue;
                }
            };
            match machine {
                Some(machine) => {
                    self.note(
                        Some(&launch.pool),
                        &format!(
                            "{}: adopted from the last leader while booting, on {} ({})",
                            launch.label, machine.instance_type, machine.id
                        ),
                    )
                    .await;
                }
                None if self.retire_runners(&launch).await => {
                    self.end(
                        &launch,
                        "the controller restarted while it was being launched, before its machine was",
                    )
                    .await;
                }
                None => {}
            }
        }
    }

    /// One decision pass over every pool. The deliveries it reads are claimed first, and
    /// their time from receipt (by any replica) to the pass's end is the decision latency.
    pub async fn decide(&self) {
        let received = match self.inner.store.claim_deliveries(now_millis()).await {
            Ok(received) => received,
            Err(error) => {
                tracing::error!(%error, "could not claim the new deliveries");
                Vec::new()
            }
        };
        if let Err(error) = self.decide_pools().await {
            tracing::error!(%error, "could not decide");
        }
        let now = now_millis();
        for at in received {
            let waited = u64::try_from(now.saturating_sub(at)).unwrap_or(0);
            self.inner
                .metrics
                .record_decision_latency(Duration::from_millis(waited));
        }
        *lock(&self.inner.last_decision) = Some(Instant::now());
    }

    async fn decide_pools(&self) -> Result<(), crate::ControllerError> {
        let now = now_millis();
        let queued = self.inner.store.queued_by_pool().await?;
        let live = self.inner.store.live_launches().await?;
        let finished = self.inner.store.finished_runners().await?;
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
                let (spent, committed) = self.spent_today(&pool.name, now).await?;
                affordable_machines(cap, spent + committed, f64::from(cents) / 100.0)
            }
            _ => usize::MAX,
        };
        let count = wanted.min(room).min(affordable);
        for _ in 0..count {
            let label = new_label(&pool.name);
            self.inner
                .store
                .new_launch(&label, &pool.name, pool.runners_per_machine, price, now)
                .await?;
            self.note(
                Some(&pool.name),
                &format!(
                    "launch {label}: {demand} job(s) queued, {supply} runner(s) free or booting"
                ),
            )
            .await;
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
            self.note_once(&pool.name, &why).await;
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
                if let Err(error) = self
                    .inner
                    .store
                    .launch_running(
                        &label,
                        &placed.instance_id,
                        &placed.instance_type,
                        &placed.region,
                        price,
                        now,
                    )
                    .await
                {
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
                )
                .await;
            }
            Err(reason) => {
                if let Err(error) = self
                    .inner
                    .store
                    .end_launch(&label, LaunchState::Failed, &reason, now)
                    .await
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
                )
                .await;
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
                        .launch(label).await
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
        // The cache's filesystem in each region (one listing; made where missing): only
        // regions that have it are launched in.
        let cache = match &pool.cache {
            Some(cache) => Some(
                gha_runner_core::cache::prepare(&*self.inner.provider, cache, &pool.candidates)
                    .await?,
            ),
            None => None,
        };
        let candidates = cache
            .as_ref()
            .map_or_else(|| pool.candidates.clone(), |c| c.usable(&pool.candidates));
        let plan =
            LaunchPlan::new(candidates, 1, CapacityPolicy::FailFast).map_err(|e| e.to_string())?;
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
            cache,
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
        let mut tasks = lock(&self.inner.ending_tasks);
        tasks.retain(|handle| !handle.is_finished());
        tasks.push(task.abort_handle());
    }

    /// Ends `launch`: stops its provisioning if it is still launching, terminates its machine
    /// (found by its label too) and deletes its runners. What cannot be ended now stays
    /// `ending` and is tried again by `observe`.
    async fn end(&self, launch: &Launch, why: &str) {
        let now = now_millis();
        if let Some(task) = lock(&self.inner.tasks).remove(&launch.label) {
            task.abort();
        }
        if let Err(error) = self
            .inner
            .store
            .end_launch(&launch.label, LaunchState::Ending, why, now)
            .await
        {
            tracing::error!(%error, "could not record an ending launch");
        }
        if launch.state != LaunchState::Ending {
            self.note(Some(&launch.pool), &format!("end {}: {why}", launch.label))
                .await;
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
            if let Err(error) = self
                .inner
                .store
                .end_launch(&launch.label, LaunchState::Ended, why, now_millis())
                .await
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
    async fn spent_today(
        &self,
        pool: &str,
        now: Millis,
    ) -> Result<(f64, f64), crate::ControllerError> {
        let day = now - now.rem_euclid(86_400_000);
        let launches = self.inner.store.launches_since(day).await?;
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
        let live = match self.inner.store.live_launches().await {
            Ok(live) => live,
            Err(error) => {
                tracing::error!(%error, "cannot read the launches");
                return;
            }
        };
        let now = now_millis();
        for launch in &live {
            self.observe_launch(launch, machines.as_deref(), runners.as_deref(), now)
                .await;
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
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                self.note(
                    None,
                    &format!(
                        "{n} job(s) queued longer than GitHub keeps a job queued: no longer counted"
                    ),
                )
                .await;
            }
            Err(error) => tracing::error!(%error, "could not expire jobs"),
        }
    }

    async fn observe_launch(
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
                    if let Err(error) = self
                        .inner
                        .store
                        .end_launch(&launch.label, LaunchState::Ended, "its machine ended", now)
                        .await
                    {
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
                if let Err(error) = self
                    .inner
                    .store
                    .set_usage(&launch.label, busy + gone, idle_since)
                    .await
                {
                    tracing::error!(%error, "could not record runner usage");
                }
                if own.is_empty() && launch.runners_used >= launch.runners {
                    self.end_later(launch, "its runners are gone", false);
                }
            }
            LaunchState::Launching => {
                self.observe_launching(launch, machine.flatten(), runners, now)
                    .await;
            }
            LaunchState::Ended | LaunchState::Failed => {}
        }
    }

    /// A launch still launching: its own task settles it; one adopted from another leader is
    /// running once each of its runners is online or used, and one nobody settles is ended
    /// after twice the registration timeout.
    async fn observe_launching(
        &self,
        launch: &Launch,
        machine: Option<&Machine>,
        runners: Option<&[RunnerInfo]>,
        now: Millis,
    ) {
        if lock(&self.inner.tasks).contains_key(&launch.label) {
            // Its own provision task settles it.
            return;
        }
        // Adopted from another leader: running once each runner is online or used
        // (a just-in-time runner is deleted after its job).
        if let (Some(machine), Some(runners)) = (machine, runners) {
            let prefix = format!("{}-", launch.label);
            let own: Vec<&RunnerInfo> = runners
                .iter()
                .filter(|r| r.name.starts_with(&prefix))
                .collect();
            let ready = own
                .iter()
                .filter(|r| r.busy || r.status == "online")
                .count()
                + launch.runners.saturating_sub(own.len());
            if ready >= launch.runners {
                if let Err(error) = self
                    .inner
                    .store
                    .launch_running(
                        &launch.label,
                        machine.id.as_str(),
                        &machine.instance_type,
                        &machine.region,
                        machine.price_cents_per_hour,
                        now,
                    )
                    .await
                {
                    tracing::error!(%error, "could not record an adopted launch");
                }
                return;
            }
        }
        // A launch that ended without a word (its store write failed), or whose
        // runners never came: counted as booting forever unless ended.
        let waited = now - launch.started_at;
        let limit = i64::try_from(self.inner.config.timing.registration_timeout.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_mul(2);
        if waited > limit {
            self.end_later(launch, "its launch ended without recording how", true);
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
            )
            .await;
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
            match self.inner.store.launch_state(label).await {
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
                .await
            {
                Ok((0, 0)) => {}
                Ok((new, stale)) => {
                    if new > 0 {
                        self.note(
                            None,
                            &format!("{repository}: {new} queued job(s) found by listing that no delivery had announced"),
                        ).await;
                    }
                    if stale > 0 {
                        self.note(
                            None,
                            &format!("{repository}: {stale} job(s) no longer queued on GitHub, no delivery had said so"),
                        ).await;
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
