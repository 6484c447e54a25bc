//! The fake's state and what each operation does to it, on simulated time. Behaviour is
//! RunPod's as its REST API v2 description states it (the operation named in each comment);
//! where the description is silent, the comment says what the fake chose.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::scenario::Scenario;
use crate::{Fault, Operation};

/// One pod.
#[derive(Debug, Clone)]
pub(crate) struct PodRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) args: String,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) gpu: String,
    pub(crate) count: u32,
    pub(crate) cloud: String,
    pub(crate) data_center: String,
    pub(crate) disk: u64,
    pub(crate) mounts: Value,
    /// Simulated second it was created.
    pub(crate) created: f64,
    pub(crate) created_at: String,
    pub(crate) started_at: Option<String>,
    /// Its own pod-scoped key (what RunPod puts in `RUNPOD_API_KEY`).
    pub(crate) key: String,
    pub(crate) price_per_gpu: f64,
    /// Its container was started.
    pub(crate) container: bool,
    /// Its container exited.
    pub(crate) exited: bool,
    /// Its start command could not be read.
    pub(crate) error: bool,
}

impl PodRecord {
    /// Its status (`PodStatus`) at simulated second `now`.
    fn status(&self, provision: f64, start: f64, now: f64) -> &'static str {
        let age = now - self.created;
        if self.error {
            "ERROR"
        } else if self.exited {
            "EXITED"
        } else if age < provision {
            "PROVISIONING"
        } else if age < provision + start {
            "STARTING"
        } else {
            "RUNNING"
        }
    }
}

/// What a change asks of the machines, done after the world's lock is released.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Start this pod's container.
    Start(Box<PodRecord>),
    /// Stop pod `id`'s container.
    Stop(String),
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    Account,
    Pod(String),
}

pub(crate) struct World {
    pub(crate) scenario: Scenario,
    pub(crate) pods: BTreeMap<String, PodRecord>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) calls: HashMap<Operation, u32>,
    /// (minute index, requests in it).
    pub(crate) window: (u64, u32),
    pub(crate) rate_limited: u64,
    pub(crate) log: Vec<String>,
    pub(crate) invalid: Vec<String>,
    pub(crate) effects: Vec<Effect>,
    /// Every pod-scoped key issued, pods deleted or not (tests scan their outputs for them).
    pub(crate) issued_keys: Vec<String>,
}

/// An answer: status and body (`Null`: none).
pub(crate) type Answer = (u16, Value);

pub(crate) fn problem(status: u16, detail: impl Into<String>) -> Answer {
    let title = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    (
        status,
        json!({"title": title, "status": status, "detail": detail.into()}),
    )
}

impl World {
    pub(crate) fn new(scenario: Scenario, faults: Vec<Fault>) -> Self {
        World {
            scenario,
            pods: BTreeMap::new(),
            faults,
            calls: HashMap::new(),
            window: (0, 0),
            rate_limited: 0,
            log: Vec::new(),
            invalid: Vec::new(),
            effects: Vec::new(),
            issued_keys: Vec::new(),
        }
    }

    /// Who holds `key`: the account's key, or a pod's own.
    pub(crate) fn caller(&self, key: &str, account_key: &str) -> Option<Caller> {
        if key == account_key {
            return Some(Caller::Account);
        }
        self.pods
            .values()
            .find(|pod| pod.key == key)
            .map(|pod| Caller::Pod(pod.id.clone()))
    }

    /// Counts one request in the current minute; `Err` with the seconds until the window resets
    /// when it is over quota (`TooManyRequestsError`: per-user windows, `Retry-After` in
    /// seconds). Also the `RateLimit` header's remaining count and reset.
    pub(crate) fn admit(&mut self, now: f64) -> Result<(u32, u64), u64> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let minute = (now / 60.0).floor().max(0.0) as u64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let reset = (60.0 - now.rem_euclid(60.0)).ceil().max(1.0) as u64;
        if self.window.0 != minute {
            self.window = (minute, 0);
        }
        let quota = self.scenario.requests_per_minute;
        if self.window.1 >= quota {
            self.rate_limited += 1;
            return Err(reset);
        }
        self.window.1 += 1;
        Ok((quota - self.window.1, reset))
    }

    /// The fault for this call of `operation`, if one is set for it.
    pub(crate) fn fault(&mut self, operation: Operation) -> Option<Fault> {
        let call = self.calls.entry(operation).or_insert(0);
        *call += 1;
        let call = *call;
        self.faults
            .iter()
            .find(|f| f.operation == operation && (f.calls.is_empty() || f.calls.contains(&call)))
            .cloned()
    }

    /// Moves pods along their lifecycle to simulated second `now` (`createPod`: "the pod
    /// starts in `PROVISIONING`, transitions through `STARTING`, and reaches `RUNNING` once
    /// its container is healthy").
    pub(crate) fn advance(&mut self, now: f64) {
        let provision = self.scenario.provision_seconds;
        let start = self.scenario.start_seconds;
        for pod in self.pods.values_mut() {
            if !pod.container && now - pod.created >= provision {
                pod.container = true;
                self.effects.push(Effect::Start(Box::new(pod.clone())));
            }
            if pod.started_at.is_none() && pod.status(provision, start, now) == "RUNNING" {
                pod.started_at = Some(jiff::Timestamp::now().to_string());
            }
        }
    }

    /// A pod as `getPod` answers it (`Pod`).
    pub(crate) fn pod_json(&self, pod: &PodRecord, now: f64) -> Value {
        let status = pod.status(
            self.scenario.provision_seconds,
            self.scenario.start_seconds,
            now,
        );
        let actions: &[&str] = match status {
            "RUNNING" => &["stop", "restart", "terminate"],
            "EXITED" => &["start", "terminate"],
            _ => &["terminate"],
        };
        let cost = if matches!(status, "EXITED" | "ERROR") {
            0.0
        } else {
            pod.price_per_gpu * f64::from(pod.count)
        };
        json!({
            "id": pod.id,
            "name": pod.name,
            "status": status,
            "actions": actions,
            "image": pod.image,
            "args": pod.args,
            "disk": pod.disk,
            "mounts": pod.mounts,
            "ports": [],
            "env": pod.env,
            "registry": null,
            "gpu": {"id": pod.gpu, "count": pod.count},
            "cloud": pod.cloud,
            "dataCenterId": pod.data_center,
            "cudaVersion": "12.8",
            "ssh": {"proxy": null, "direct": null},
            "template": null,
            "cost": cost,
            "locked": false,
            "globalNetworking": {"enabled": false},
            "runtime": if status == "RUNNING" { json!({}) } else { Value::Null },
            "createdAt": pod.created_at,
            "startedAt": pod.started_at,
        })
    }

    /// `createPod`, once the body matched `CreatePodRequest`.
    pub(crate) fn create_pod(&mut self, body: &Value, now: f64) -> Answer {
        if let Err(refusal) = handler_rules(body) {
            return refusal;
        }
        let gpu_id = body["gpu"]["id"].as_str().unwrap_or_default();
        let count = body["gpu"]["count"]
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(1);
        let cloud = body["cloud"].as_str().unwrap_or("SECURE").to_owned();
        let Some(gpu) = self.scenario.gpu_type(gpu_id).cloned() else {
            return problem(400, format!("unknown GPU type {gpu_id:?}"));
        };
        if count > gpu.max_count {
            return problem(
                400,
                format!("{gpu_id} pods have at most {} GPUs", gpu.max_count),
            );
        }
        let data_center = match self.place(gpu_id, count, body) {
            Ok(data_center) => data_center,
            Err(refusal) => return refusal,
        };
        let id = random_id(14);
        let env: BTreeMap<String, String> = body
            .get("env")
            .and_then(Value::as_object)
            .map(|env| {
                env.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let price_per_gpu = if cloud == "COMMUNITY" {
            gpu.price_community
        } else {
            gpu.price_secure
        };
        let pod = PodRecord {
            id: id.clone(),
            name: body["name"].as_str().unwrap_or_default().to_owned(),
            image: body["image"].as_str().unwrap_or_default().to_owned(),
            args: body["args"].as_str().unwrap_or_default().to_owned(),
            env,
            gpu: gpu.id,
            count,
            cloud,
            data_center,
            disk: body["disk"].as_u64().unwrap_or(50),
            mounts: body.get("mounts").cloned().unwrap_or_else(|| json!({})),
            created: now,
            created_at: jiff::Timestamp::now().to_string(),
            started_at: None,
            key: format!("rpa_pod_{}", random_id(32)),
            price_per_gpu,
            container: false,
            exited: false,
            error: false,
        };
        let answer = self.pod_json(&pod, now);
        self.issued_keys.push(pod.key.clone());
        self.pods.insert(id, pod);
        (201, answer)
    }

    /// Takes `count` GPUs of `gpu_id` in the first requested data center that has them.
    fn place(&mut self, gpu_id: &str, count: u32, body: &Value) -> Result<String, Answer> {
        let wanted: Vec<String> = match body.get("dataCenterIds").and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            // "Omit or pass an empty array to let the scheduler choose."
            _ => self
                .scenario
                .data_centers
                .iter()
                .map(|d| d.id.clone())
                .collect(),
        };
        for data_center in wanted {
            if let Some(free) = self
                .scenario
                .stock
                .get_mut(&(gpu_id.to_owned(), data_center.clone()))
                && *free >= count
            {
                *free -= count;
                return Ok(data_center);
            }
        }
        // The description: capacity exhaustion "carries no machine-readable code of its own —
        // only a human-readable `detail`" on a 400. The words are the fake's.
        Err(problem(
            400,
            format!("no {count}x {gpu_id} can be placed in the requested data centers now"),
        ))
    }

    /// `updatePod`, once the body matched `UpdatePodRequest`: the fake applies `name`, the one
    /// field this project changes.
    pub(crate) fn update_pod(&mut self, id: &str, body: &Value, now: f64) -> Answer {
        if let Some(other) = body
            .as_object()
            .and_then(|fields| fields.keys().find(|k| k.as_str() != "name"))
        {
            return problem(400, format!("`{other}` is not modeled by this fake"));
        }
        let Some(pod) = self.pods.get_mut(id) else {
            return problem(404, "pod not found");
        };
        if let Some(name) = body.get("name").and_then(Value::as_str) {
            name.clone_into(&mut pod.name);
        }
        let pod = pod.clone();
        (200, self.pod_json(&pod, now))
    }

    /// `deletePod`: "compute is released … the pod no longer appears in `listPods`".
    pub(crate) fn delete_pod(&mut self, id: &str) -> Answer {
        let Some(pod) = self.pods.remove(id) else {
            return problem(404, "pod not found");
        };
        if let Some(free) = self
            .scenario
            .stock
            .get_mut(&(pod.gpu.clone(), pod.data_center.clone()))
        {
            *free += pod.count;
        }
        if pod.container {
            self.effects.push(Effect::Stop(pod.id));
        }
        (204, Value::Null)
    }

    /// `listGpuTypes`.
    pub(crate) fn gpu_types(&self, query: &BTreeMap<String, String>) -> Answer {
        let include = query.get("include").map(String::as_str);
        let product = query.get("product").map(String::as_str);
        // "Required with include=AVAILABILITY, and valid only with it (400 either way)."
        match (include, product) {
            (Some("AVAILABILITY"), Some(product)) if !product.is_empty() => {}
            (None, None) => {}
            (Some(other), _) if other != "AVAILABILITY" => {
                return problem(400, format!("unknown include {other:?}"));
            }
            _ => {
                return problem(
                    400,
                    "`product` goes with include=AVAILABILITY, and only with it",
                );
            }
        }
        let cloud = query.get("cloud").map(String::as_str);
        let availability = include.is_some();
        let gpus: Vec<Value> = self
            .scenario
            .gpu_types
            .iter()
            .map(|gpu| {
                let mut entry = json!({
                    "id": gpu.id,
                    "name": gpu.name,
                    "pool": null,
                    "manufacturer": "NVIDIA",
                    "memory": gpu.memory_gb,
                    "secure": true,
                    "community": true,
                    "price": {"secure": gpu.price_secure, "community": gpu.price_community},
                    "maxCount": {"secure": gpu.max_count, "community": gpu.max_count},
                });
                if availability {
                    let stocks: Vec<(String, u32)> = self
                        .scenario
                        .data_centers
                        .iter()
                        .filter_map(|dc| {
                            self.scenario
                                .stock
                                .get(&(gpu.id.clone(), dc.id.clone()))
                                .map(|free| (dc.id.clone(), *free))
                        })
                        .collect();
                    let best = stocks.iter().map(|(_, free)| *free).max().unwrap_or(0);
                    entry["availability"] = json!(level(best));
                    if !stocks.is_empty() {
                        entry["dataCenters"] = stocks
                            .iter()
                            .map(|(id, free)| {
                                json!({"id": id, "name": self.dc_name(id), "availability": level(*free)})
                            })
                            .collect();
                    }
                }
                entry
            })
            .collect();
        // The cloud filter narrows stock, not the list; both clouds share it in this fake.
        let _ = cloud;
        (200, json!({"gpus": gpus}))
    }

    fn dc_name(&self, id: &str) -> String {
        self.scenario
            .data_centers
            .iter()
            .find(|d| d.id == id)
            .map_or_else(|| id.to_owned(), |d| d.name.clone())
    }

    /// `listDataCenters`.
    pub(crate) fn data_centers(&self) -> Answer {
        let dcs: Vec<Value> = self
            .scenario
            .data_centers
            .iter()
            .map(|dc| {
                json!({
                    "id": dc.id,
                    "name": dc.name,
                    "region": dc.region,
                    "globalNetwork": false,
                    "networkVolumeTypes": ["STANDARD"],
                    "compliance": [],
                })
            })
            .collect();
        (200, json!({"dataCenters": dcs}))
    }
}

/// Rules the description puts "at the handler layer", beyond the schema.
fn handler_rules(body: &Value) -> Result<(), Answer> {
    if body.get("gpu").is_some() == body.get("cpu").is_some() {
        return Err(problem(400, "exactly one of `gpu` or `cpu` must be set"));
    }
    if body.get("cpu").is_some() {
        return Err(problem(400, "CPU pods are not modeled by this fake"));
    }
    if body.get("templateId").is_some() {
        return Err(problem(400, "templates are not modeled by this fake"));
    }
    let mounts = body.get("mounts");
    if mounts.is_some_and(|m| m.get("persistent").is_some() && m.get("network").is_some()) {
        return Err(problem(
            400,
            "at most one of `mounts.persistent` or `mounts.network`",
        ));
    }
    Ok(())
}

/// The catalog's stock words for a number of free GPUs (the thresholds are the fake's).
fn level(free: u32) -> &'static str {
    match free {
        0 => "NONE",
        1..=2 => "LOW",
        3..=8 => "MEDIUM",
        _ => "HIGH",
    }
}

fn random_id(length: usize) -> String {
    (0..length)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect()
}
