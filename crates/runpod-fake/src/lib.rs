//! A small, stateful fake of RunPod's REST API v2 for tests: the pod operations
//! (`createPod`, `getPod`, `listPods`, `updatePod` for the name, `deletePod`) and the catalog
//! (`listGpuTypes`, `listDataCenters`), on a clock that can run faster than real time.
//!
//! - Every request body is checked against RunPod's own OpenAPI description (vendored in
//!   `spec/`, with its source and date), and refused with a 422 listing each violation as RunPod
//!   would; [`FakeRunPod::invalid_requests`] keeps them for tests to assert none.
//! - Pods go `PROVISIONING` → `STARTING` → `RUNNING`; with [`FakeBuilder::run_containers`] each
//!   pod's start command really runs, as a [`sim_machine`] container (in a sandbox directory, or
//!   as real root in a Debian root filesystem), with RunPod's variables (`RUNPOD_POD_ID`,
//!   `RUNPOD_API_KEY` — a key that works for that pod only — `RUNPOD_DC_ID`,
//!   `RUNPOD_GPU_COUNT`) and an `nvidia-smi` for its GPUs. A container that exits leaves its pod
//!   `EXITED`.
//! - Capacity is free GPUs per (GPU type, data center): a create that cannot be placed is a 400
//!   whose `detail` says so, as RunPod documents; deletes give the GPUs back.
//! - Requests are counted per minute against the scenario's quota; over it, a 429 with
//!   `Retry-After`, and every answer carries `RateLimit` and `RateLimit-Policy`.
//! - [`Fault`]s answer chosen calls with an error, before or after the call took effect (a lost
//!   answer).
//!
//! Smaller than the Lambda simulator by design: no templates, registries, CPU pods, volumes'
//! own lifecycle, stop/start, or billing records.

#![deny(missing_docs)]

mod scenario;
mod server;
pub mod spec;
mod words;
mod world;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sim_machine::{MachineMode, Machines};
use tokio::task::JoinHandle;

pub use scenario::{DataCenterSpec, GpuTypeSpec, Scenario};
pub use words::split as split_start_command;

use crate::world::World;

/// An operation of RunPod's API, as its description names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /v2/pods`.
    CreatePod,
    /// `GET /v2/pods`.
    ListPods,
    /// `GET /v2/pods/{id}`.
    GetPod,
    /// `PATCH /v2/pods/{id}`.
    UpdatePod,
    /// `DELETE /v2/pods/{id}`.
    DeletePod,
    /// `GET /v2/catalog/gpus`.
    ListGpuTypes,
    /// `GET /v2/catalog/datacenters`.
    ListDataCenters,
}

impl Operation {
    /// Every operation the fake serves.
    pub const ALL: [Operation; 7] = [
        Operation::CreatePod,
        Operation::ListPods,
        Operation::GetPod,
        Operation::UpdatePod,
        Operation::DeletePod,
        Operation::ListGpuTypes,
        Operation::ListDataCenters,
    ];

    /// Its `operationId` in RunPod's description, e.g. `createPod`.
    pub fn id(self) -> &'static str {
        match self {
            Operation::CreatePod => "createPod",
            Operation::ListPods => "listPods",
            Operation::GetPod => "getPod",
            Operation::UpdatePod => "updatePod",
            Operation::DeletePod => "deletePod",
            Operation::ListGpuTypes => "listGpuTypes",
            Operation::ListDataCenters => "listDataCenters",
        }
    }

    /// The operation with `operationId` `id`.
    pub fn from_id(id: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.id() == id)
    }

    /// The operation a request log line (`METHOD path status…`) was.
    pub fn of_request(line: &str) -> Option<Operation> {
        let mut words = line.split(' ');
        let (method, path) = (words.next()?, words.next()?);
        server::route(&method.parse().ok()?, path).map(|(op, _)| op)
    }
}

/// An error answer for chosen calls of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which operation.
    pub operation: Operation,
    /// Which of its calls, counting from 1; empty: every call.
    pub calls: Vec<u32>,
    /// The status answered (a problem body with it).
    pub status: u16,
    /// The call takes effect first, and only its answer is the error: an answer lost on the
    /// way back.
    pub after_effect: bool,
}

impl Fault {
    /// `status` for calls `calls` of `operation`, which take no effect.
    pub fn error(operation: Operation, status: u16, calls: &[u32]) -> Self {
        Fault {
            operation,
            calls: calls.to_vec(),
            status,
            after_effect: false,
        }
    }

    /// Calls `calls` of `operation` take effect, but their answers are lost (a 502 instead).
    pub fn lost_answer(operation: Operation, calls: &[u32]) -> Self {
        Fault {
            operation,
            calls: calls.to_vec(),
            status: 502,
            after_effect: true,
        }
    }
}

/// Configures a [`FakeRunPod`].
#[derive(Debug)]
pub struct FakeBuilder {
    scenario: Scenario,
    api_key: String,
    time_scale: f64,
    faults: Vec<Fault>,
    containers: Option<(PathBuf, MachineMode)>,
}

impl FakeBuilder {
    /// The cloud.
    #[must_use]
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// The account's key (default: `rpa_FAKE`).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Simulated seconds per real second.
    #[must_use]
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = if scale.is_finite() && scale >= 1.0 {
            scale
        } else {
            1.0
        };
        self
    }

    /// A fault.
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Runs each pod's start command, its container's files under `dir/<pod id>`.
    #[must_use]
    pub fn run_containers(mut self, dir: impl Into<PathBuf>) -> Self {
        self.containers = Some((dir.into(), MachineMode::Sandbox));
        self
    }

    /// Runs each pod's start command as real root in its own copy of `rootfs` (see
    /// [`MachineMode::Root`]), its upper layer under `dir/<pod id>`.
    #[must_use]
    pub fn run_containers_as_root(
        mut self,
        dir: impl Into<PathBuf>,
        rootfs: impl Into<PathBuf>,
    ) -> Self {
        self.containers = Some((
            dir.into(),
            MachineMode::Root {
                rootfs: rootfs.into(),
            },
        ));
        self
    }

    /// Starts serving on an ephemeral port of 127.0.0.1.
    pub async fn start(self) -> Result<FakeRunPod, std::io::Error> {
        let machines = match self.containers {
            Some((dir, mode)) => {
                if let MachineMode::Root { rootfs } = &mode {
                    sim_machine::check_rootfs(rootfs).map_err(std::io::Error::other)?;
                }
                std::fs::create_dir_all(dir.join(sim_machine::SHARED_DIR))?;
                Some(Machines::new(dir, mode))
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(self.scenario, self.faults)),
            machines,
            api_key: self.api_key,
            time_scale: self.time_scale,
            started: Instant::now(),
            base_url: base_url.clone(),
        });
        let server = tokio::spawn(server::serve(listener, shared.clone()));
        let ticking = shared.clone();
        let ticker = tokio::spawn(async move {
            loop {
                ticking.with_world(|_, _| ());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        Ok(FakeRunPod {
            shared,
            server,
            ticker,
        })
    }
}

/// A running fake. Dropping it stops the server and every container.
#[derive(Debug)]
pub struct FakeRunPod {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

pub(crate) struct Shared {
    world: Mutex<World>,
    machines: Option<Machines>,
    pub(crate) api_key: String,
    pub(crate) time_scale: f64,
    started: Instant,
    base_url: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Simulated seconds since the start.
    pub(crate) fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.time_scale
    }

    /// Runs `f` on the world brought up to now, then carries out what it asked of the
    /// machines, outside the lock.
    pub(crate) fn with_world<T>(&self, f: impl FnOnce(&mut World, f64) -> T) -> T {
        let now = self.now();
        let (result, effects) = {
            let mut world = self.world.lock().unwrap_or_else(PoisonError::into_inner);
            self.note_exits(&mut world);
            world.advance(now);
            let result = f(&mut world, now);
            (result, std::mem::take(&mut world.effects))
        };
        for effect in effects {
            self.carry_out(effect);
        }
        result
    }

    /// Pods whose container's program ended are `EXITED`.
    fn note_exits(&self, world: &mut World) {
        let Some(machines) = &self.machines else {
            return;
        };
        let running = machines.running();
        for pod in world.pods.values_mut() {
            if pod.container
                && !pod.exited
                && !pod.error
                && !pod.args.trim().is_empty()
                && !running.contains(&pod.id)
                && self.started_program(&pod.id)
            {
                pod.exited = true;
            }
        }
    }

    /// Whether the machine of `id` got as far as its log (it was started).
    fn started_program(&self, id: &str) -> bool {
        self.machines.as_ref().is_some_and(|m| {
            let mode = m.mode();
            m.sandbox(id)
                .join(sim_machine::Program::Container(Vec::new()).log_file(mode))
                .exists()
        })
    }

    fn carry_out(&self, effect: world::Effect) {
        let Some(machines) = &self.machines else {
            return;
        };
        match effect {
            world::Effect::Start(pod) => {
                let program = match words::split(&pod.args) {
                    Ok(words) if words.is_empty() => None,
                    Ok(words) => Some(sim_machine::Program::Container(words)),
                    Err(why) => {
                        tracing::warn!(pod = pod.id, why, "start command not run");
                        if let Some(pod) = self
                            .world
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .pods
                            .get_mut(&pod.id)
                        {
                            pod.error = true;
                        }
                        return;
                    }
                };
                let model = pod
                    .gpu
                    .strip_prefix("NVIDIA ")
                    .unwrap_or(&pod.gpu)
                    .to_owned();
                machines.start(&sim_machine::Boot {
                    id: &pod.id,
                    program,
                    gpus: &sim_machine::Gpus {
                        model,
                        visible: pod.count,
                    },
                    // RunPod's variables (Pods → Environment variables); the clock is the
                    // simulator's (what the lambda-gha agent and scripts read).
                    env: vec![
                        ("RUNPOD_POD_ID".into(), pod.id.clone()),
                        ("RUNPOD_DC_ID".into(), pod.data_center.clone()),
                        ("RUNPOD_GPU_COUNT".into(), pod.count.to_string()),
                        ("LAMBDA_API_TIME_SCALE".into(), self.time_scale.to_string()),
                    ],
                    // The pod's own environment may hold secrets (the lambda-gha boot script
                    // does), and so does its key.
                    secret_env: pod
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .chain([("RUNPOD_API_KEY".to_owned(), pod.key.clone())])
                        .collect(),
                    // Network volumes are not simulated: no pod here names one.
                    mounts: Vec::new(),
                    hostname: pod.id.clone(),
                });
            }
            world::Effect::Stop(id) => machines.stop(&id),
        }
    }
}

impl FakeRunPod {
    /// A builder: the default scenario, real time, key `rpa_FAKE`, containers not run.
    pub fn builder() -> FakeBuilder {
        FakeBuilder {
            scenario: Scenario::default(),
            api_key: "rpa_FAKE".into(),
            time_scale: 1.0,
            faults: Vec::new(),
            containers: None,
        }
    }

    /// The API's base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The account's key.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Simulated seconds per real second.
    pub fn time_scale(&self) -> f64 {
        self.shared.time_scale
    }

    /// Ids of the pods that exist (any status).
    pub fn pods(&self) -> Vec<String> {
        self.shared
            .with_world(|world, _| world.pods.keys().cloned().collect())
    }

    /// Every request so far: `METHOD path status`, with ` (pod key)` when a pod's own key
    /// made it. Keys are never in it.
    pub fn requests(&self) -> Vec<String> {
        self.shared.with_world(|world, _| world.log.clone())
    }

    /// Requests whose body RunPod's description does not allow, with why.
    pub fn invalid_requests(&self) -> Vec<String> {
        self.shared.with_world(|world, _| world.invalid.clone())
    }

    /// Every pod-scoped key the fake issued, to deleted pods too: secrets, for tests to look for
    /// where none may be.
    pub fn pod_keys(&self) -> Vec<String> {
        self.shared.with_world(|world, _| world.issued_keys.clone())
    }

    /// Requests answered 429.
    pub fn rate_limited_requests(&self) -> u64 {
        self.shared.with_world(|world, _| world.rate_limited)
    }

    /// Sets the free GPUs of a type in a data center.
    pub fn set_stock(&self, gpu: &str, data_center: &str, free: u32) {
        self.shared.with_world(|world, _| {
            world
                .scenario
                .stock
                .insert((gpu.to_owned(), data_center.to_owned()), free);
        });
    }

    /// Ends every fault (the outage is over); calls keep their count.
    pub fn clear_faults(&self) {
        self.shared.with_world(|world, _| world.faults.clear());
    }

    /// Adds a fault from now on.
    pub fn add_fault(&self, fault: Fault) {
        self.shared.with_world(|world, _| world.faults.push(fault));
    }

    /// A pod's own environment as it was created (it may hold secrets).
    pub fn pod_env(&self, id: &str) -> Option<std::collections::BTreeMap<String, String>> {
        self.shared
            .with_world(|world, _| world.pods.get(id).map(|pod| pod.env.clone()))
    }

    /// The directory whose files every root container sees, read-only, at
    /// [`sim_machine::MACHINE_SHARED_DIR`], when containers run.
    pub fn shared_dir(&self) -> Option<PathBuf> {
        self.shared.machines.as_ref().map(Machines::shared)
    }

    /// A pod's container directory, when containers run.
    pub fn container_dir(&self, id: &str) -> Option<PathBuf> {
        self.shared.machines.as_ref().map(|m| m.sandbox(id))
    }

    /// What a pod's start command printed so far.
    pub fn container_log(&self, id: &str) -> Option<String> {
        let machines = self.shared.machines.as_ref()?;
        let log = sim_machine::Program::Container(Vec::new()).log_file(machines.mode());
        std::fs::read_to_string(machines.sandbox(id).join(log)).ok()
    }

    /// Where containers run, when they do.
    pub fn containers_root(&self) -> Option<&Path> {
        self.shared.machines.as_ref().map(Machines::root)
    }

    /// Stops serving and kills every container.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for FakeRunPod {
    fn drop(&mut self) {
        self.server.abort();
        self.ticker.abort();
        if let Some(machines) = &self.shared.machines {
            machines.stop_all();
        }
    }
}
