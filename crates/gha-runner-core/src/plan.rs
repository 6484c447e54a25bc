//! Launch plans: N machines from an ordered list of (type, region) candidates, paced by the
//! provider, falling back on capacity errors, optionally waiting for capacity, and never more
//! than N. On any failure after a launch, everything the plan launched is terminated.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::duration::{format_duration, parse_duration};
use crate::error::{Field, InputError};
use crate::provider::{
    CapacityHint, CloudProvider, MachineId, MachineSpec, MachineState, ProviderError,
    ProviderErrorKind,
};
use crate::tags;

/// One (type, region) pair to try.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// The provider's machine type, e.g. `gpu_1x_a10`.
    pub instance_type: String,
    /// The provider's region code, e.g. `us-east-1`.
    pub region: String,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.instance_type, self.region)
    }
}

/// Splits a comma-separated input (`"gpu_1x_a10, gpu_1x_a100"`) into its items, refusing
/// empty items and repeats.
pub fn parse_list(input: &str, field: impl Into<Field>) -> Result<Vec<String>, InputError> {
    parse_items(input, &field.into(), false)
}

/// Reads a comma-separated list of machine types: as [`parse_list`], but a type's name may
/// contain spaces (RunPod's GPU types are named `NVIDIA GeForce RTX 4090`); runs of spaces
/// count as one.
pub fn parse_type_list(input: &str, field: impl Into<Field>) -> Result<Vec<String>, InputError> {
    parse_items(input, &field.into(), true)
}

fn parse_items(input: &str, field: &Field, spaces: bool) -> Result<Vec<String>, InputError> {
    let mut items: Vec<String> = Vec::new();
    for item in input.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(InputError::new(
                field.clone(),
                format!("{input:?} has an empty item; write e.g. `a,b`"),
            ));
        }
        if !spaces && item.chars().any(char::is_whitespace) {
            return Err(InputError::new(
                field.clone(),
                format!("{item:?} contains a space; separate items with commas"),
            ));
        }
        let item = item.split_whitespace().collect::<Vec<_>>().join(" ");
        if items.contains(&item) {
            return Err(InputError::new(
                field.clone(),
                format!("{item:?} is listed twice"),
            ));
        }
        items.push(item);
    }
    Ok(items)
}

/// Every (type, region) pair in preference order: each type in every region before the next
/// type, so the first type listed is preferred wherever it is available.
pub fn candidates(instance_types: &str, regions: &str) -> Result<Vec<Candidate>, InputError> {
    let types = parse_type_list(instance_types, Field::InstanceTypes)?;
    let regions = parse_list(regions, Field::Regions)?;
    Ok(types
        .iter()
        .flat_map(|t| {
            regions.iter().map(move |r| Candidate {
                instance_type: t.clone(),
                region: r.clone(),
            })
        })
        .collect())
}

/// What to do when no candidate has capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityPolicy {
    /// Fail after one round over every candidate.
    FailFast,
    /// Keep polling availability and retrying until this long after the start.
    WaitUntil(Duration),
}

impl CapacityPolicy {
    /// Reads `fail-fast`, `wait-until=10m`, or a bare duration (`0` is fail-fast).
    pub fn parse(input: &str) -> Result<CapacityPolicy, InputError> {
        let text = input.trim();
        if text == "fail-fast" {
            return Ok(CapacityPolicy::FailFast);
        }
        let duration = parse_duration(
            text.strip_prefix("wait-until=").unwrap_or(text),
            Field::CapacityWait,
        )?;
        Ok(if duration.is_zero() {
            CapacityPolicy::FailFast
        } else {
            CapacityPolicy::WaitUntil(duration)
        })
    }
}

impl fmt::Display for CapacityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityPolicy::FailFast => f.write_str("fail-fast"),
            CapacityPolicy::WaitUntil(d) => write!(f, "wait-until={}", format_duration(*d)),
        }
    }
}

/// How one launch attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum AttemptOutcome {
    /// Launched this machine.
    Launched(MachineId),
    /// No capacity.
    NoCapacity(String),
    /// Any other failure, which ends the plan.
    Failed(String),
}

/// One launch attempt, for the summary of what the plan tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Which of the N machines this was for (0-based).
    pub instance_index: usize,
    /// Where it was tried.
    pub candidate: Candidate,
    /// Seconds since the plan started.
    pub at_seconds: f64,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>6.1}s] machine {} on {}: ",
            self.at_seconds, self.instance_index, self.candidate
        )?;
        match &self.outcome {
            AttemptOutcome::Launched(id) => write!(f, "launched {id}"),
            AttemptOutcome::NoCapacity(why) => write!(f, "no capacity ({why})"),
            AttemptOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A machine the plan launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launched {
    /// Which of the N machines (0-based).
    pub instance_index: usize,
    /// The machine the provider made.
    pub machine: MachineId,
    /// Where it runs.
    pub candidate: Candidate,
}

/// What a plan needs from the caller for each machine: its spec (with the boot script and
/// whatever registrations that needs), and a chance to undo them when the launch did not
/// happen.
#[async_trait]
pub trait LaunchSetup: Send {
    /// Prepares machine `instance_index` for `candidate` and returns what to launch.
    async fn prepare(
        &mut self,
        instance_index: usize,
        candidate: &Candidate,
    ) -> Result<MachineSpec, String>;

    /// The prepared machine was not launched, for want of capacity; the plan may try it
    /// again elsewhere, so what `prepare` did may be kept for that (by default it is undone).
    async fn not_launched(&mut self, instance_index: usize) {
        self.abandon(instance_index).await;
    }

    /// The prepared machine was not launched and will not be: undo what `prepare` did for it.
    async fn abandon(&mut self, instance_index: usize);

    /// Machine `machine.instance_index` was launched (a replacement has the index of the
    /// machine it replaces).
    async fn launched(&mut self, _machine: &Launched) {}
}

/// Why a plan ended without its N machines. Everything it launched was terminated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct PlanFailure {
    /// What ended it.
    pub reason: String,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Machines launched and then terminated by the cleanup.
    pub terminated: Vec<MachineId>,
    /// Machines the cleanup could not terminate (they may be billing: say so loudly).
    pub not_terminated: Vec<(MachineId, String)>,
}

impl fmt::Display for PlanFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.reason)?;
        for attempt in &self.attempts {
            writeln!(f, "  {attempt}")?;
        }
        if !self.terminated.is_empty() {
            writeln!(
                f,
                "  terminated what this plan launched: {}",
                join(&self.terminated)
            )?;
        }
        for (id, why) in &self.not_terminated {
            writeln!(
                f,
                "  COULD NOT TERMINATE {id} ({why}); terminate it by hand, it may be billing"
            )?;
        }
        Ok(())
    }
}

fn join(ids: &[MachineId]) -> String {
    ids.iter()
        .map(MachineId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to get N machines.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchPlan {
    /// Where to try, in preference order.
    pub candidates: Vec<Candidate>,
    /// How many machines.
    pub count: usize,
    /// What to do when nothing has capacity.
    pub capacity: CapacityPolicy,
    /// How often to poll availability while waiting.
    pub poll_interval: Duration,
    /// The index of the plan's first machine (0; a replacement's plan continues a launch).
    pub first_index: usize,
}

/// The attempts of a plan so far, timed from its start.
struct AttemptLog {
    started: Instant,
    attempts: Vec<Attempt>,
}

impl AttemptLog {
    fn record(&mut self, index: usize, candidate: &Candidate, outcome: AttemptOutcome) {
        self.attempts.push(Attempt {
            instance_index: index,
            candidate: candidate.clone(),
            at_seconds: self.started.elapsed().as_secs_f64(),
            outcome,
        });
    }
}

/// Which round of attempts a machine is in.
enum Round {
    /// The first: listed candidates first, the others while none is listed.
    First,
    /// After waiting for capacity: only the candidates these hints list.
    AfterWait(Vec<CapacityHint>),
}

/// Whether `hints` list `candidate` with capacity.
fn listed(hints: &[CapacityHint], candidate: &Candidate) -> bool {
    hints.iter().any(|h| {
        h.available && h.instance_type == candidate.instance_type && h.region == candidate.region
    })
}

/// The order in which to try `candidates` for a machine that replaces one on `failed` — the one
/// replacement policy of the action and `lambda-gha run`: the candidates after it first, then
/// from the start; other types before the failed type's other regions, `failed` last.
pub fn replacement_order(candidates: &[Candidate], failed: &Candidate) -> Vec<Candidate> {
    let at = candidates
        .iter()
        .position(|c| c == failed)
        .map_or(0, |i| i + 1);
    let mut order = candidates.to_vec();
    let len = order.len().max(1);
    order.rotate_left(at % len);
    // Stable: each group keeps the rotated order.
    order.sort_by_key(|c| c.instance_type == failed.instance_type);
    order
}

impl LaunchPlan {
    /// A plan, checked: at least one candidate, 1 ≤ N ≤ 100.
    pub fn new(
        candidates: Vec<Candidate>,
        count: usize,
        capacity: CapacityPolicy,
    ) -> Result<LaunchPlan, InputError> {
        if candidates.is_empty() {
            return Err(InputError::new(
                Field::InstanceTypes,
                "name at least one instance type and one region",
            ));
        }
        if !(1..=100).contains(&count) {
            return Err(InputError::new(
                Field::MachineCount,
                format!("must be 1 to 100 (got {count})"),
            ));
        }
        Ok(LaunchPlan {
            candidates,
            count,
            capacity,
            poll_interval: Duration::from_secs(30),
            first_index: 0,
        })
    }

    /// A plan for one machine that takes the place of machine `index` of this one: the
    /// candidates after `failed` first, then those before it, `failed` itself last.
    pub fn replacement(&self, index: usize, failed: &Candidate) -> LaunchPlan {
        LaunchPlan {
            candidates: replacement_order(&self.candidates, failed),
            count: 1,
            first_index: index,
            ..self.clone()
        }
    }

    /// Sets how often availability is polled while waiting for capacity.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Launches the N machines. Before each attempt the provider's availability listing is read
    /// again (one catalog call beside a launch paced 12 s apart): candidates it lists with
    /// capacity are tried first, in the given order; a candidate it does not list is tried only
    /// while it lists none of them (the listing can be stale, or unreadable: then every
    /// candidate, in order, as without one). While waiting for capacity, availability is polled
    /// once per interval and only candidates shown available are tried. Any failure other than
    /// capacity ends the plan, and every machine it launched is terminated before it returns.
    pub async fn execute(
        &self,
        provider: &dyn CloudProvider,
        setup: &mut dyn LaunchSetup,
    ) -> Result<(Vec<Launched>, Vec<Attempt>), PlanFailure> {
        let mut log = AttemptLog {
            started: Instant::now(),
            attempts: Vec::new(),
        };
        let mut launched: Vec<Launched> = Vec::new();
        let deadline = match self.capacity {
            CapacityPolicy::FailFast => None,
            CapacityPolicy::WaitUntil(wait) => Some(log.started + wait),
        };
        let mut round = Round::First;
        while launched.len() < self.count {
            let index = self.first_index + launched.len();
            match self
                .launch_one(
                    provider,
                    setup,
                    index,
                    std::mem::replace(&mut round, Round::First),
                    &mut log,
                )
                .await
            {
                Ok(Some(machine)) => {
                    setup.launched(&machine).await;
                    launched.push(machine);
                    continue;
                }
                Ok(None) => {}
                Err(reason) => return Err(fail(provider, reason, log.attempts, launched).await),
            }
            // Nothing had capacity this round: wait for availability, or give up.
            let waited = match deadline {
                Some(deadline) => self.wait_for_listing(provider, deadline, index, &log).await,
                None => Err(format!(
                    "no capacity for machine {index} of {} in any of the {} candidates (capacity policy {})",
                    self.count,
                    self.candidates.len(),
                    self.capacity
                )),
            };
            match waited {
                Ok(hints) => round = Round::AfterWait(hints),
                Err(reason) => return Err(fail(provider, reason, log.attempts, launched).await),
            }
        }
        Ok((launched, log.attempts))
    }

    /// The next candidate to try for a machine, given what was `tried` for it this round and
    /// what the provider lists now (`None`: the listing could not be read).
    fn next_candidate<'c>(
        &'c self,
        tried: &[&Candidate],
        hints: Option<&[CapacityHint]>,
        only_listed: bool,
    ) -> Option<&'c Candidate> {
        let untried = || self.candidates.iter().filter(|c| !tried.contains(c));
        let Some(hints) = hints else {
            return if only_listed { None } else { untried().next() };
        };
        if let Some(listed) = untried().find(|c| listed(hints, c)) {
            return Some(listed);
        }
        // A launch where nothing is listed almost always fails: only when the listing shows
        // none of the candidates with capacity is it worth trying them blind.
        let none_listed = !self.candidates.iter().any(|c| listed(hints, c));
        if none_listed && !only_listed {
            untried().next()
        } else {
            None
        }
    }

    /// Tries candidates for machine `index`, the listed ones first (see [`LaunchPlan::execute`]):
    /// the machine, none when none had capacity, or why the plan must end.
    async fn launch_one(
        &self,
        provider: &dyn CloudProvider,
        setup: &mut dyn LaunchSetup,
        index: usize,
        round: Round,
        log: &mut AttemptLog,
    ) -> Result<Option<Launched>, String> {
        let (mut hints, only_listed) = match round {
            Round::First => (None, false),
            Round::AfterWait(hints) => (Some(hints), true),
        };
        let mut tried: Vec<&Candidate> = Vec::new();
        loop {
            let listing = match hints.take() {
                Some(hints) => Some(hints),
                None => match provider.capacity_hints().await {
                    Ok(hints) => Some(hints),
                    Err(error) => {
                        tracing::warn!(%error, "could not read availability; trying candidates in order");
                        None
                    }
                },
            };
            let Some(candidate) = self.next_candidate(&tried, listing.as_deref(), only_listed)
            else {
                return Ok(None);
            };
            tried.push(candidate);
            if let Some(machine) = self.attempt(provider, setup, index, candidate, log).await? {
                return Ok(Some(machine));
            }
        }
    }

    /// One launch attempt of machine `index` on `candidate`: the machine, none when the
    /// candidate had no capacity, or why the plan must end.
    async fn attempt(
        &self,
        provider: &dyn CloudProvider,
        setup: &mut dyn LaunchSetup,
        index: usize,
        candidate: &Candidate,
        log: &mut AttemptLog,
    ) -> Result<Option<Launched>, String> {
        let spec = match setup.prepare(index, candidate).await {
            Ok(spec) => spec,
            Err(why) => {
                log.record(index, candidate, AttemptOutcome::Failed(why.clone()));
                return Err(format!("preparing machine {index} failed: {why}"));
            }
        };
        match launch_surely(provider, &spec).await {
            Ok(id) => {
                log.record(index, candidate, AttemptOutcome::Launched(id.clone()));
                tracing::info!(machine = %id, %candidate, index, "launched");
                Ok(Some(Launched {
                    instance_index: index,
                    machine: id,
                    candidate: candidate.clone(),
                }))
            }
            Err(error) if error.is_capacity() => {
                setup.not_launched(index).await;
                let outcome = AttemptOutcome::NoCapacity(error.message.clone());
                log.record(index, candidate, outcome);
                tracing::info!(%candidate, index, "no capacity");
                Ok(None)
            }
            Err(error) => {
                setup.abandon(index).await;
                let outcome = AttemptOutcome::Failed(error.message.clone());
                log.record(index, candidate, outcome);
                Err(format!(
                    "launching machine {index} on {candidate} failed: {error}"
                ))
            }
        }
    }

    /// Polls availability until a candidate is listed with capacity (its hints), or says why
    /// the wait is over.
    async fn wait_for_listing(
        &self,
        provider: &dyn CloudProvider,
        deadline: Instant,
        index: usize,
        log: &AttemptLog,
    ) -> Result<Vec<CapacityHint>, String> {
        loop {
            if Instant::now() + self.poll_interval > deadline {
                return Err(format!(
                    "no capacity for machine {index} of {} within {} ({} attempts)",
                    self.count,
                    self.capacity,
                    log.attempts.len()
                ));
            }
            tokio::time::sleep(self.poll_interval).await;
            match provider.capacity_hints().await {
                Ok(hints) if self.candidates.iter().any(|c| listed(&hints, c)) => {
                    return Ok(hints);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not read availability; still waiting");
                }
            }
        }
    }
}

/// Launches `spec`. A launch can fail without saying whether it happened (a 5xx, a timeout,
/// a dropped connection: the client does not resend those); then the machine's own tag tells:
/// found, it is the launch; not found, the launch is sent once more.
async fn launch_surely(
    provider: &dyn CloudProvider,
    spec: &MachineSpec,
) -> Result<MachineId, ProviderError> {
    // What the provider cannot do is refused before anything is sent.
    provider.check_spec(spec)?;
    let mut sent = 0;
    loop {
        sent += 1;
        let error = match provider.launch(spec).await {
            Ok(id) => return Ok(id),
            Err(error) => error,
        };
        let unclear = matches!(
            error.kind,
            ProviderErrorKind::Unavailable | ProviderErrorKind::Other
        );
        let Some(tag) = spec.tags.get(tags::MACHINE).filter(|_| unclear) else {
            return Err(error);
        };
        match provider.list_tagged(tags::MACHINE, Some(tag)).await {
            Ok(found) => {
                if let Some(machine) = found.into_iter().find(|m| m.state.may_bill()) {
                    tracing::info!(machine = %machine.id, "the launch happened; its answer was lost");
                    return Ok(machine.id);
                }
            }
            // Not knowing, a second launch could make a second machine.
            Err(lookup) => {
                tracing::warn!(%lookup, "cannot tell whether the launch happened");
                return Err(error);
            }
        }
        if sent == 2 {
            return Err(error);
        }
        tracing::warn!(%error, "the launch did not happen; sending it again");
    }
}

/// Terminates what the plan launched and builds the failure report.
async fn fail(
    provider: &dyn CloudProvider,
    reason: String,
    attempts: Vec<Attempt>,
    launched: Vec<Launched>,
) -> PlanFailure {
    let ids: Vec<MachineId> = launched.into_iter().map(|l| l.machine).collect();
    let (terminated, not_terminated) = terminate_all(provider, &ids).await;
    PlanFailure {
        reason,
        attempts,
        terminated,
        not_terminated,
    }
}

/// Terminates `ids`, retrying each that fails a few times; returns what was terminated and
/// what could not be, with why.
pub async fn terminate_all(
    provider: &dyn CloudProvider,
    ids: &[MachineId],
) -> (Vec<MachineId>, Vec<(MachineId, String)>) {
    let mut terminated = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        let mut last: Option<ProviderError> = None;
        for attempt in 0..3u32 {
            match provider.terminate(std::slice::from_ref(id)).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(error) => {
                    tracing::warn!(machine = %id, %error, attempt, "terminate failed");
                    last = Some(error);
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
                }
            }
        }
        // A terminate whose answer was lost may have worked: the machine's state tells.
        if last.is_some() {
            let ended = match provider.describe(id).await {
                Ok(machine) => matches!(machine.state, MachineState::Stopping | MachineState::Gone),
                Err(error) => error.kind == ProviderErrorKind::NotFound,
            };
            if ended {
                last = None;
            }
        }
        match last {
            None => terminated.push(id.clone()),
            Some(error) => failed.push((id.clone(), error.message)),
        }
    }
    (terminated, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_prefer_the_first_type_everywhere() {
        let list = candidates("gpu_1x_a10, gpu_1x_a100", "us-east-1,us-west-1").unwrap();
        let pairs: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            pairs,
            [
                "gpu_1x_a10 in us-east-1",
                "gpu_1x_a10 in us-west-1",
                "gpu_1x_a100 in us-east-1",
                "gpu_1x_a100 in us-west-1"
            ]
        );
    }

    #[test]
    fn lists_refuse_empty_items_spaces_and_repeats() {
        assert!(
            candidates("gpu_1x_a10,", "us-east-1")
                .unwrap_err()
                .to_string()
                .contains("empty item")
        );
        assert!(
            candidates("gpu_1x_a10", "us-east-1 us-west-1")
                .unwrap_err()
                .to_string()
                .contains("commas")
        );
        // Machine types may have spaces (RunPod's GPU types), runs of them count as one.
        let spaced = candidates("1x NVIDIA  GeForce RTX 4090", "r").unwrap();
        assert_eq!(spaced[0].instance_type, "1x NVIDIA GeForce RTX 4090");
        let error = candidates("a", "us-east-1,us-east-1").unwrap_err();
        assert_eq!(error.field, Field::Regions);
        assert!(error.problem.contains("twice"));
    }

    #[test]
    fn capacity_policies_parse() {
        assert_eq!(
            CapacityPolicy::parse("fail-fast").unwrap(),
            CapacityPolicy::FailFast
        );
        assert_eq!(
            CapacityPolicy::parse("0").unwrap(),
            CapacityPolicy::FailFast
        );
        assert_eq!(
            CapacityPolicy::parse("10m").unwrap(),
            CapacityPolicy::WaitUntil(Duration::from_secs(600))
        );
        assert_eq!(
            CapacityPolicy::parse("wait-until=1h").unwrap().to_string(),
            "wait-until=1h"
        );
        assert!(
            CapacityPolicy::parse("forever")
                .unwrap_err()
                .to_string()
                .contains("capacity wait")
        );
    }

    #[test]
    fn plans_need_candidates_and_a_sane_count() {
        let c = candidates("a", "r").unwrap();
        assert!(LaunchPlan::new(Vec::new(), 1, CapacityPolicy::FailFast).is_err());
        assert_eq!(
            LaunchPlan::new(c.clone(), 0, CapacityPolicy::FailFast)
                .unwrap_err()
                .field,
            Field::MachineCount
        );
        assert!(LaunchPlan::new(c, 101, CapacityPolicy::FailFast).is_err());
    }
}
