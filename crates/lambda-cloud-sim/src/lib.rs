//! A faithful, stateful local Lambda Cloud: the same HTTP API as the real service, with
//! instance lifecycles, capacity that changes over time, the documented rate limits, injected
//! faults, a billing ledger, and user data run as a local process. It is what lets everything
//! above the `lambda-cloud` client run and be tested offline, over real HTTP.
//!
//! ```no_run
//! use lambda_cloud::TimeScale;
//! use lambda_cloud_sim::{Scenario, Sim};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = Sim::builder()
//!     .scenario(Scenario::default().with_capacity("gpu_1x_a10", "us-east-1", &[(0, 0), (90, 2)]))
//!     .time_scale(TimeScale::of(100.0)) // a 4-minute boot takes 2.4 s
//!     .api_key("test-key")
//!     .start()
//!     .await?;
//! let client = lambda_cloud::Client::builder()
//!     .base_url(sim.base_url())
//!     .api_key("test-key")
//!     .time_scale(sim.time_scale()) // pacing, retries and timeouts on the simulator's clock
//!     .build()?;
//! client.ssh_keys().add("me", "ssh-ed25519 AAAA me").await?;
//! // ... launch, wait, terminate ...
//! assert!(sim.ledger().still_billing.is_empty(), "nothing left billing");
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Time is simulated: [`SimBuilder::time_scale`] runs it faster than real time, keeping every
//! ratio. Durations in a [`Scenario`] and in the [`Ledger`] are simulated seconds.

#![deny(missing_docs)]

mod answer;
mod audit;
mod catalog;
mod clock;
mod error;
mod fabric;
mod failure;
mod faults;
mod filesystems;
mod firewall;
mod instances;
mod ledger;
mod machine;
pub mod machine_env;
mod rate_limit;
mod scenario;
mod server;
mod shared;
mod sim_routes;
mod ssh_keys;
mod tickets;
mod user_data;
mod world;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lambda_cloud::{InstanceId, RateLimits, TimeScale};
use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use error::SimError;
pub use ledger::{Ledger, LedgerEntry};
pub use scenario::{
    CapacitySpec, CapacityStep, FaultSpec, InstanceBehavior, InstanceBehaviorSpec,
    InstanceTypeSpec, RateLimitSpec, RegionSpec, Scenario, SecondsRange, SshKeySpec,
};
pub use sim_machine::{MachineMode, SANDBOX_BIN, SHARED_DIR, write_fake_nvidia_smi};

use crate::clock::SimClock;
use crate::shared::Shared;
use crate::user_data::UserDataRunner;
use crate::world::World;

/// Configures a simulator. Every setting has a default: an ephemeral port on 127.0.0.1, the
/// default scenario, real time, any non-empty API key, user data not run.
#[derive(Debug)]
pub struct SimBuilder {
    scenario: Scenario,
    api_key: Option<SecretString>,
    time_scale: TimeScale,
    listen: SocketAddr,
    sandbox: Option<PathBuf>,
    run_user_data: bool,
    machine_mode: MachineMode,
}

impl Default for SimBuilder {
    fn default() -> Self {
        SimBuilder {
            scenario: Scenario::default(),
            api_key: None,
            time_scale: TimeScale::REAL,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sandbox: None,
            run_user_data: false,
            machine_mode: MachineMode::Sandbox,
        }
    }
}

impl SimBuilder {
    /// The cloud to simulate.
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// The only API key accepted. Without one, any non-empty key is.
    pub fn api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Simulated seconds per real second: 100 makes a 240 s boot take 2.4 s.
    pub fn time_scale(mut self, scale: TimeScale) -> Self {
        self.time_scale = scale;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, address: SocketAddr) -> Self {
        self.listen = address;
        self
    }

    /// Whether the server answers 429 above the documented limits (default: the scenario's,
    /// which is on).
    pub fn rate_limits(mut self, enabled: bool) -> Self {
        self.scenario.rate_limits.enabled = enabled;
        self
    }

    /// Runs each instance's user data when it becomes active, in a sandbox directory per
    /// instance under a fresh temporary root.
    pub fn run_user_data(mut self) -> Self {
        self.run_user_data = true;
        self
    }

    /// Runs user data with sandboxes under `root` (created if missing).
    pub fn user_data_sandbox(mut self, root: impl Into<PathBuf>) -> Self {
        self.run_user_data = true;
        self.sandbox = Some(root.into());
        self
    }

    /// Boots machines as real root in their own copy of `rootfs` (see [`MachineMode::Root`])
    /// instead of sandboxes; user data runs.
    pub fn machine_rootfs(mut self, rootfs: impl Into<PathBuf>) -> Self {
        self.run_user_data = true;
        self.machine_mode = MachineMode::Root {
            rootfs: rootfs.into(),
        };
        self
    }

    /// Starts serving; returns once the listener is bound.
    pub async fn start(self) -> Result<Sim, SimError> {
        self.scenario.check()?;
        let runner = if self.run_user_data {
            let root = self.sandbox.unwrap_or_else(|| {
                std::env::temp_dir().join(format!(
                    "lambda-cloud-sim-{}-{}",
                    std::process::id(),
                    fastrand::u64(..)
                ))
            });
            if let MachineMode::Root { rootfs } = &self.machine_mode {
                sim_machine::check_rootfs(rootfs).map_err(SimError::Rootfs)?;
            }
            let shared = root.join(SHARED_DIR);
            std::fs::create_dir_all(&shared).map_err(|source| SimError::Sandbox {
                path: shared.display().to_string(),
                source,
            })?;
            Some(UserDataRunner::new(root, self.machine_mode))
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| SimError::Bind {
                address: self.listen.to_string(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| SimError::Bind {
            address: self.listen.to_string(),
            source,
        })?;
        let base_url = format!("http://{address}");
        let clock = SimClock::new(self.time_scale);
        let mut world = World::new(self.scenario, clock);
        world.base_url.clone_from(&base_url);
        let shared = Arc::new(Shared::new(world, self.api_key, runner));
        let _ = shared.base_url.set(base_url.clone());

        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "simulator server stopped");
            }
        });
        // Time moves without requests too: instances become active and start their user data.
        let ticking = shared.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticking.with_world(|_| ());
            }
        });
        Ok(Sim {
            base_url,
            shared,
            stop: Some(stop),
            server: Some(server),
            ticker,
        })
    }
}

/// A running simulator. Dropping it stops the server and kills every user-data process.
pub struct Sim {
    base_url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: JoinHandle<()>,
}

/// A read-only view of a simulator's world, from outside its API (no rate limit, no request
/// log). Cloning shares it.
#[derive(Clone)]
pub struct SimView {
    shared: Arc<Shared>,
}

impl SimView {
    /// The value of tag `key` on every instance that has it, and whether the instance is
    /// active.
    pub fn tagged(&self, key: &str) -> Vec<(String, bool)> {
        self.instances()
            .into_iter()
            .filter_map(|instance| {
                let value = instance.tags.iter().find(|t| t.key == key)?.value.clone();
                Some((
                    value,
                    instance.status == lambda_cloud::InstanceStatus::Active,
                ))
            })
            .collect()
    }

    /// Every instance as `GET /instances` would list it now.
    pub fn instances(&self) -> Vec<lambda_cloud::Instance> {
        self.shared
            .with_world(|world| world.instances.iter().map(|i| i.instance.clone()).collect())
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Starts configuring a simulator.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// The URL to point a client at (`LAMBDA_API_URL`), e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Simulated seconds since the start.
    pub fn now(&self) -> f64 {
        self.shared.with_world(|world| world.now)
    }

    /// Simulated seconds per real second.
    pub fn time_scale(&self) -> TimeScale {
        self.shared.with_world(|world| world.clock.scale())
    }

    /// How long `seconds` of simulated time take in real time.
    pub fn real_duration(&self, seconds: f64) -> Duration {
        self.shared.with_world(|world| world.clock.real(seconds))
    }

    /// The documented client-side limits scaled to this simulator's clock: a client paced by
    /// them sends exactly as fast as the simulated limits allow.
    pub fn client_rate_limits(&self) -> RateLimits {
        RateLimits::DOCUMENTED.time_scaled(self.time_scale())
    }

    /// The API requests so far (the latest 10,000), one line each: method, path and query,
    /// status, and the JSON body with `user_data` replaced by its size. No header is kept, so
    /// the API key is never in it: tests scan it for secrets that should not have been sent.
    pub fn request_log(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Ends every injected fault (the outage is over); calls are counted afresh.
    pub fn clear_faults(&self) {
        self.shared
            .with_world(|world| world.scenario.faults.clear());
    }

    /// Adds a fault from now on; its calls count from the simulator's start (see
    /// [`Sim::calls`]).
    pub fn add_fault(&self, fault: FaultSpec) {
        self.shared
            .with_world(|world| world.scenario.faults.push(fault));
    }

    /// How many calls of `operation` (e.g. `launchInstance`) reached the fault stage so far.
    pub fn calls(&self, operation: &str) -> u32 {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .count(operation)
    }

    /// How many requests the simulator refused with 429 so far.
    pub fn rate_limited_requests(&self) -> u64 {
        self.shared
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many API requests arrived so far.
    pub fn requests_received(&self) -> u64 {
        self.shared
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the 429s so far are what arrival jitter gives a paced client, or why not. The
    /// simulator judges a request by when it arrives; a client paces when it sends. On a
    /// loaded machine a paced request can arrive late enough that the next, on time, looks
    /// early: one in many is refused (and retried). Unpaced, most requests in a burst are.
    /// So at most one request in ten may be refused; a check of the pacing itself reads the
    /// sender's own slots (target `lambda_cloud::pacing`).
    pub fn rate_limited_within_jitter(&self) -> Result<(), String> {
        let (refused, received) = (self.rate_limited_requests(), self.requests_received());
        if refused * 10 <= received {
            Ok(())
        } else {
            Err(format!(
                "{refused} of {received} requests refused for the rate limit: more than arrival \
                 jitter explains (at most one in ten)"
            ))
        }
    }

    /// A client of this simulator: its URL, its key (any key when none is configured), and
    /// the client's pacing, retries and timeouts scaled to its clock.
    pub fn client(&self) -> Result<lambda_cloud::Client, lambda_cloud::Error> {
        let key = self
            .shared
            .api_key()
            .unwrap_or_else(|| SecretString::from("lambda-cloud-sim"));
        lambda_cloud::Client::builder()
            .base_url(self.base_url())
            .api_key(key)
            .time_scale(self.time_scale())
            .build()
    }

    /// The user data an instance was launched with, as the machine would receive it (for
    /// tests that check what reached a machine, and what did not).
    pub fn launched_user_data(&self, id: &InstanceId) -> Option<String> {
        self.shared.with_world(|world| {
            world
                .instances
                .iter()
                .find(|i| &i.instance.id == id)
                .and_then(|i| i.user_data.as_ref().map(|d| d.expose().to_owned()))
        })
    }

    /// A view of the world that outlives borrows of the simulator: for harnesses that play
    /// the machines' part from a task of their own.
    pub fn view(&self) -> SimView {
        SimView {
            shared: Arc::clone(&self.shared),
        }
    }

    /// What every instance has cost so far.
    pub fn ledger(&self) -> Ledger {
        self.shared.with_world(|world| world.ledger())
    }

    /// Replaces the capacity timeline of one (type, region) pair; `at` is in simulated
    /// seconds since the start.
    pub fn set_capacity(&self, instance_type: &str, region: &str, timeline: &[(u32, u32)]) {
        self.shared.with_world(|world| {
            world.scenario =
                std::mem::take(&mut world.scenario).with_capacity(instance_type, region, timeline);
        });
    }

    /// The sandbox root of user-data processes, when user data runs.
    pub fn sandbox_root(&self) -> Option<&Path> {
        self.shared
            .runner
            .as_ref()
            .map(|runner| runner.machines().root())
    }

    /// The sandbox directory of one instance, when user data runs.
    pub fn sandbox_dir(&self, id: &InstanceId) -> Option<PathBuf> {
        self.shared
            .runner
            .as_ref()
            .map(|runner| runner.machines().sandbox(id.as_str()))
    }

    /// Where filesystem `id`'s files are on this computer, when user data runs: every machine
    /// that mounts it sees this directory (made at the first such machine's boot).
    pub fn filesystem_dir(&self, id: &lambda_cloud::FilesystemId) -> Option<PathBuf> {
        self.shared
            .runner
            .as_ref()
            .map(|runner| runner.filesystem_dir(id))
    }

    /// The directory whose files every root machine sees, read-only, under
    /// [`sim_machine::MACHINE_SHARED_DIR`], when user data runs.
    pub fn shared_dir(&self) -> Option<PathBuf> {
        self.shared
            .runner
            .as_ref()
            .map(|runner| runner.machines().shared())
    }

    /// The output of an instance's user data so far.
    pub fn user_data_log(&self, id: &InstanceId) -> Option<String> {
        let runner = self.shared.runner.as_ref()?;
        std::fs::read_to_string(
            runner
                .machines()
                .sandbox(id.as_str())
                .join(runner.log_file()),
        )
        .ok()
    }

    /// The host pid of a root machine's PID 1 while the machine runs: `nsenter --target PID
    /// --mount --pid --root` enters the machine, as a login would (tests run commands in it as
    /// its users). `None` for sandboxes.
    pub fn machine_pid(&self, id: &InstanceId) -> Option<u32> {
        self.shared
            .runner
            .as_ref()?
            .machines()
            .machine_init(id.as_str())
    }

    /// Instances whose user data is still running.
    pub fn user_data_running(&self) -> Vec<InstanceId> {
        self.shared
            .runner
            .as_ref()
            .map(|runner| runner.machines().running())
            .unwrap_or_default()
            .into_iter()
            .map(InstanceId::from)
            .collect()
    }

    /// Stops serving, waits for the server to finish, and kills every user-data process.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    fn stop_now(&mut self) {
        self.ticker.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runner) = &self.shared.runner {
            runner.machines().stop_all();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop_now();
    }
}
