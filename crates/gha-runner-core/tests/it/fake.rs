//! An in-memory provider whose launches follow a script, for testing the core's decisions
//! without HTTP.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use gha_runner_core::{
    Candidate, Catalog, CloudProvider, Machine, MachineId, MachineSpec, MachineState, Offering,
    ProviderError, ProviderErrorKind, plan::LaunchSetup,
};

/// What one launch call does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Launch,
    NoCapacity,
    Fail(ProviderErrorKind),
}

#[derive(Default)]
struct State {
    outcomes: VecDeque<Outcome>,
    /// What each catalog read lists with capacity (types, in every region).
    hints: VecDeque<Vec<String>>,
    /// What it lists once `hints` ran out.
    listed_after: Vec<String>,
    catalog_reads: usize,
    machines: BTreeMap<MachineId, Machine>,
    launched: usize,
    max_alive: usize,
    terminate_failures: usize,
    key_refused: bool,
}

/// Launch calls follow `outcomes` (then always launch); each catalog read shows everything
/// available or nothing, following `hints` (then what [`FakeProvider::listing`] set: nothing
/// by default).
#[derive(Default)]
pub(crate) struct FakeProvider {
    state: Mutex<State>,
}

impl FakeProvider {
    pub(crate) fn new(outcomes: Vec<Outcome>, hints: Vec<bool>) -> Self {
        FakeProvider {
            state: Mutex::new(State {
                outcomes: outcomes.into(),
                hints: hints
                    .into_iter()
                    .map(|all| {
                        if all {
                            vec!["a".into(), "b".into(), "c".into()]
                        } else {
                            Vec::new()
                        }
                    })
                    .collect(),
                ..State::default()
            }),
        }
    }

    /// Once `hints` ran out, each catalog read lists `types` with capacity in every region.
    pub(crate) fn listing(self, types: &[&str]) -> Self {
        self.state.lock().unwrap().listed_after = types.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// How many times the catalog was read.
    pub(crate) fn catalog_reads(&self) -> usize {
        self.state.lock().unwrap().catalog_reads
    }

    pub(crate) fn failing_terminations(self, count: usize) -> Self {
        self.state.lock().unwrap().terminate_failures = count;
        self
    }

    /// Every terminate is refused: the key is wrong.
    pub(crate) fn refusing_the_key(self) -> Self {
        self.state.lock().unwrap().key_refused = true;
        self
    }

    pub(crate) fn alive(&self) -> Vec<MachineId> {
        let state = self.state.lock().unwrap();
        state
            .machines
            .values()
            .filter(|m| m.state.may_bill())
            .map(|m| m.id.clone())
            .collect()
    }

    pub(crate) fn max_alive(&self) -> usize {
        self.state.lock().unwrap().max_alive
    }

    pub(crate) fn launched(&self) -> usize {
        self.state.lock().unwrap().launched
    }
}

#[async_trait]
impl CloudProvider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> gha_runner_core::provider::Capabilities {
        use gha_runner_core::provider::{
            BootDelivery, Capabilities, MachineKey, MetadataPlace, SshAccess,
        };
        Capabilities {
            boot: BootDelivery::UserData,
            max_boot_script_bytes: 1_000_000,
            ssh: SshAccess::LaunchKey { user: "ubuntu" },
            metadata: MetadataPlace::Tags,
            launch_interval: std::time::Duration::ZERO,
            machine_key: MachineKey::Launchers,
            interruptible: false,
            max_volumes: usize::MAX,
            firewall_rulesets: true,
        }
    }

    async fn launch(&self, spec: &MachineSpec) -> Result<MachineId, ProviderError> {
        let mut state = self.state.lock().unwrap();
        match state.outcomes.pop_front().unwrap_or(Outcome::Launch) {
            Outcome::Launch => {
                state.launched += 1;
                let id = MachineId::new(format!("m{}", state.launched));
                state.machines.insert(
                    id.clone(),
                    Machine {
                        id: id.clone(),
                        name: spec.name.clone(),
                        instance_type: spec.instance_type.clone(),
                        region: spec.region.clone(),
                        state: MachineState::Pending,
                        ip: None,
                        tags: spec.tags.clone(),
                        price_cents_per_hour: Some(100),
                        health_failure: None,
                    },
                );
                let alive = state
                    .machines
                    .values()
                    .filter(|m| m.state.may_bill())
                    .count();
                state.max_alive = state.max_alive.max(alive);
                Ok(id)
            }
            Outcome::NoCapacity => Err(ProviderError::new(
                ProviderErrorKind::Capacity,
                "no capacity",
            )),
            Outcome::Fail(kind) => Err(ProviderError::new(kind, format!("scripted {kind:?}"))),
        }
    }

    async fn report_unhealthy(&self, id: &MachineId, why: &str) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap();
        let machine = state
            .machines
            .get_mut(id)
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::NotFound, "no such machine"))?;
        machine.health_failure = Some(why.to_owned());
        Ok(())
    }

    async fn describe(&self, id: &MachineId) -> Result<Machine, ProviderError> {
        self.state
            .lock()
            .unwrap()
            .machines
            .get(id)
            .cloned()
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::NotFound, "no such machine"))
    }

    async fn list_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Machine>, ProviderError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .machines
            .values()
            .filter(|m| {
                m.tags
                    .get(key)
                    .is_some_and(|v| value.is_none_or(|w| v == w))
            })
            .cloned()
            .collect())
    }

    async fn terminate(&self, ids: &[MachineId]) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap();
        if state.key_refused {
            return Err(ProviderError::new(
                ProviderErrorKind::Unauthorized,
                "API key was invalid, expired, or deleted",
            ));
        }
        if state.terminate_failures > 0 {
            state.terminate_failures -= 1;
            return Err(ProviderError::new(
                ProviderErrorKind::Unavailable,
                "scripted outage",
            ));
        }
        for id in ids {
            if let Some(machine) = state.machines.get_mut(id) {
                machine.state = MachineState::Gone;
            }
        }
        Ok(())
    }

    async fn catalog(&self) -> Result<Catalog, ProviderError> {
        let listed = {
            let mut state = self.state.lock().unwrap();
            state.catalog_reads += 1;
            let after = state.listed_after.clone();
            state.hints.pop_front().unwrap_or(after)
        };
        let regions: Vec<String> = vec!["r1".into(), "r2".into()];
        Ok(Catalog {
            offerings: ["a", "b", "c"]
                .iter()
                .map(|t| Offering {
                    instance_type: (*t).into(),
                    description: format!("fake {t}"),
                    gpus: 1,
                    price_cents_per_hour: 100,
                    regions_available: if listed.iter().any(|l| l == t) {
                        regions.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            regions,
        })
    }
}

/// A setup that counts what it prepared, what was not launched for want of capacity, and what
/// it abandoned.
#[derive(Default)]
pub(crate) struct CountingSetup {
    pub(crate) prepared: Vec<(usize, Candidate)>,
    pub(crate) not_launched: Vec<usize>,
    pub(crate) abandoned: Vec<usize>,
    pub(crate) fail_on_prepare: Option<usize>,
}

#[async_trait]
impl LaunchSetup for CountingSetup {
    async fn prepare(
        &mut self,
        instance_index: usize,
        candidate: &Candidate,
    ) -> Result<MachineSpec, String> {
        if self.fail_on_prepare == Some(self.prepared.len()) {
            return Err("GitHub refused the registration".into());
        }
        self.prepared.push((instance_index, candidate.clone()));
        let mut spec = MachineSpec::new(&candidate.instance_type, &candidate.region);
        spec.tags.insert("lambda-gha:run".into(), "test".into());
        Ok(spec)
    }

    async fn not_launched(&mut self, instance_index: usize) {
        self.not_launched.push(instance_index);
    }

    async fn abandon(&mut self, instance_index: usize) {
        self.abandoned.push(instance_index);
    }
}
