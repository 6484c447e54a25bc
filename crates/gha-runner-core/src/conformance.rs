//! The provider conformance suite (feature `testing`): what every [`CloudProvider`] must do for
//! the core to work on it, checked against the provider's fake. A new provider's tests
//! implement [`ProviderFake`] over their fake and call [`run`]; the Lambda and RunPod providers'
//! tests do.
//!
//! The checks, in order: launch, describe, list by tag and terminate (twice: the second is not
//! an error), with the tags read back as written; capacity errors are `Capacity` and the launch
//! plan falls back to the next candidate; a launch whose answer is lost is found by its tag, not
//! launched twice; several launches and 80 calls in a row are paced by the provider's client
//! (the fake refuses at most one in ten for its rate limit, for arrival jitter on a loaded
//! machine; an unpaced client has most refused); a health failure reported on a machine is read back from
//! its description; the reaper ends an expired machine; a spec the provider cannot serve is
//! refused before anything is sent. Whatever a check launched is terminated, pass or fail.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::plan::{AttemptOutcome, Candidate, CapacityPolicy, LaunchPlan, LaunchSetup};
use crate::provider::{CloudProvider, MachineId, MachineSpec, MachineState, ProviderErrorKind};
use crate::tags;

/// A provider under test and the fake it talks to.
#[async_trait]
pub trait ProviderFake: Send + Sync {
    /// The provider, configured against the fake.
    fn provider(&self) -> &dyn CloudProvider;

    /// At least two candidates where launches succeed; the second is the fallback of the
    /// first (another type or region).
    fn candidates(&self) -> Vec<Candidate>;

    /// Takes every bit of capacity away from `candidate`.
    async fn remove_capacity(&self, candidate: &Candidate);

    /// Gives `candidate` capacity again.
    async fn restore_capacity(&self, candidate: &Candidate);

    /// The next launch takes effect, but its answer is lost on the way back.
    async fn lose_next_launch_answer(&self);

    /// Adds to a spec what the front ends add for this provider before launching (Lambda: the
    /// launch's SSH key). Nothing, by default.
    fn complete(&self, _spec: &mut MachineSpec) {}

    /// How many requests the fake refused for its rate limit so far.
    fn rate_limited(&self) -> u64;

    /// The ids of the machines that exist at the fake (and may bill).
    async fn alive(&self) -> Vec<String>;
}

/// How many calls the pacing check makes after its launches.
const PACED_CALLS: usize = 80;

/// The checks that passed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Names of the checks that passed, in order.
    pub passed: Vec<&'static str>,
}

/// The checks, by name, in order.
pub const CHECKS: [&str; 7] = [
    "launch, describe, list by tag, terminate",
    "capacity errors fall back to the next candidate",
    "a lost launch answer is found by its tag",
    "launches in a row are paced",
    "a health failure is read back",
    "the reaper ends an expired machine",
    "what the provider cannot do is refused before a launch",
];

/// Runs every check; the first failure is returned with the check's name, after what it
/// launched was terminated.
pub async fn run(fake: &dyn ProviderFake) -> Result<Report, String> {
    let mut report = Report::default();
    for (index, name) in CHECKS.iter().enumerate() {
        let result = match index {
            0 => lifecycle(fake).await,
            1 => fallback(fake).await,
            2 => lost_answer(fake).await,
            3 => pacing(fake).await,
            4 => health(fake).await,
            5 => reaper(fake).await,
            _ => refusals(fake).await,
        };
        let left = cleanup(fake).await;
        match (result, left) {
            (Ok(()), Ok(())) => report.passed.push(name),
            (Err(why), _) | (Ok(()), Err(why)) => {
                return Err(format!(
                    "{} provider: {name}: {why}",
                    fake.provider().name()
                ));
            }
        }
    }
    Ok(report)
}

fn tagged(fake: &dyn ProviderFake, candidate: &Candidate, run: &str, machine: &str) -> MachineSpec {
    let mut spec = MachineSpec::new(&candidate.instance_type, &candidate.region);
    fake.complete(&mut spec);
    spec.name = Some(machine.to_owned());
    spec.tags = BTreeMap::from([
        (tags::RUN.to_owned(), run.to_owned()),
        (tags::MACHINE.to_owned(), machine.to_owned()),
    ]);
    spec
}

fn unique(what: &str) -> String {
    format!("conformance-{what}-{:08x}", fastrand::u32(..))
}

/// Ends every machine of the suite; an error when some are left.
async fn cleanup(fake: &dyn ProviderFake) -> Result<(), String> {
    let provider = fake.provider();
    let ours = provider
        .list_tagged(tags::RUN, None)
        .await
        .map_err(|e| format!("listing for cleanup: {e}"))?;
    let ids: Vec<MachineId> = ours
        .into_iter()
        .filter(|m| {
            m.tags
                .get(tags::RUN)
                .is_some_and(|r| r.starts_with("conformance-"))
        })
        .map(|m| m.id)
        .collect();
    provider
        .terminate(&ids)
        .await
        .map_err(|e| format!("terminating for cleanup: {e}"))?;
    let alive = fake.alive().await;
    let left: Vec<&MachineId> = ids
        .iter()
        .filter(|id| alive.iter().any(|a| a == id.as_str()))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("machines left after terminate: {left:?}"))
    }
}

async fn lifecycle(fake: &dyn ProviderFake) -> Result<(), String> {
    let provider = fake.provider();
    let candidate = &fake.candidates()[0];
    let (run, machine) = (unique("run"), unique("machine"));
    let spec = tagged(fake, candidate, &run, &machine);
    let id = provider
        .launch(&spec)
        .await
        .map_err(|e| format!("launch: {e}"))?;
    let described = provider
        .describe(&id)
        .await
        .map_err(|e| format!("describe: {e}"))?;
    if described.id != id || described.instance_type != candidate.instance_type {
        return Err(format!(
            "described {described:?}, launched {id} as {candidate}"
        ));
    }
    if !candidate.region.is_empty() && described.region != candidate.region {
        return Err(format!(
            "launched in {}, described in {}",
            candidate.region, described.region
        ));
    }
    for (key, value) in &spec.tags {
        if described.tags.get(key) != Some(value) {
            return Err(format!(
                "tag {key}={value} did not round-trip: {:?}",
                described.tags
            ));
        }
    }
    let listed = provider
        .list_tagged(tags::MACHINE, Some(&machine))
        .await
        .map_err(|e| format!("list_tagged: {e}"))?;
    if listed.iter().map(|m| &m.id).collect::<Vec<_>>() != [&id] {
        return Err(format!("list_tagged found {listed:?}, not just {id}"));
    }
    let none = provider
        .list_tagged(tags::MACHINE, Some("conformance-nobody"))
        .await
        .map_err(|e| format!("list_tagged: {e}"))?;
    if !none.is_empty() {
        return Err(format!(
            "list_tagged found machines for a value nobody has: {none:?}"
        ));
    }
    provider
        .terminate(std::slice::from_ref(&id))
        .await
        .map_err(|e| format!("terminate: {e}"))?;
    match provider.describe(&id).await {
        Ok(m) if matches!(m.state, MachineState::Stopping | MachineState::Gone) => {}
        Err(e) if e.kind == ProviderErrorKind::NotFound => {}
        other => return Err(format!("after terminate, describe said {other:?}")),
    }
    provider
        .terminate(std::slice::from_ref(&id))
        .await
        .map_err(|e| format!("terminating a machine already ended is an error: {e}"))
}

/// A setup that prepares tagged specs and remembers what it did.
struct Setup<'a> {
    fake: &'a dyn ProviderFake,
    run: String,
    abandoned: usize,
}

impl<'a> Setup<'a> {
    fn new(fake: &'a dyn ProviderFake) -> Self {
        Setup {
            fake,
            run: unique("run"),
            abandoned: 0,
        }
    }
}

#[async_trait]
impl LaunchSetup for Setup<'_> {
    async fn prepare(
        &mut self,
        index: usize,
        candidate: &Candidate,
    ) -> Result<MachineSpec, String> {
        Ok(tagged(
            self.fake,
            candidate,
            &self.run,
            &format!("{}-{index}", self.run),
        ))
    }

    async fn abandon(&mut self, _index: usize) {
        self.abandoned += 1;
    }
}

async fn fallback(fake: &dyn ProviderFake) -> Result<(), String> {
    let candidates = fake.candidates();
    fake.remove_capacity(&candidates[0]).await;
    let direct = fake
        .provider()
        .launch(&tagged(
            fake,
            &candidates[0],
            &unique("run"),
            &unique("machine"),
        ))
        .await;
    let plan = LaunchPlan::new(candidates[..2].to_vec(), 1, CapacityPolicy::FailFast)
        .map_err(|e| e.to_string())?;
    let mut setup = Setup::new(fake);
    let outcome = plan.execute(fake.provider(), &mut setup).await;
    // The plan skips a candidate the provider's listing shows without capacity; one the
    // listing still shows is tried, misses, and is undone.
    let listed = fake.provider().capacity_hints().await.map(|hints| {
        hints.iter().any(|h| {
            h.available
                && h.instance_type == candidates[0].instance_type
                && h.region == candidates[0].region
        })
    });
    fake.restore_capacity(&candidates[0]).await;
    let listed = listed.map_err(|e| format!("cannot read availability: {e}"))?;
    match direct {
        Err(e) if e.kind == ProviderErrorKind::Capacity => {}
        other => {
            return Err(format!(
                "a launch with no capacity gave {other:?}, not a Capacity error"
            ));
        }
    }
    let (launched, attempts) = outcome.map_err(|e| format!("the plan failed: {e}"))?;
    if launched.len() != 1 || launched[0].candidate != candidates[1] {
        return Err(format!(
            "launched {launched:?}, not one machine on {}",
            candidates[1]
        ));
    }
    let expected = usize::from(listed);
    if attempts.len() != expected + 1
        || (listed
            && !matches!(
                attempts.first().map(|a| &a.outcome),
                Some(AttemptOutcome::NoCapacity(_))
            ))
    {
        return Err(format!(
            "with the first candidate {} listed, the attempts were {attempts:?}",
            if listed { "still" } else { "not" }
        ));
    }
    if setup.abandoned != expected {
        return Err(format!(
            "the failed attempt's preparation was undone {} times, not {expected}",
            setup.abandoned
        ));
    }
    Ok(())
}

async fn lost_answer(fake: &dyn ProviderFake) -> Result<(), String> {
    fake.lose_next_launch_answer().await;
    let plan = LaunchPlan::new(fake.candidates()[..1].to_vec(), 1, CapacityPolicy::FailFast)
        .map_err(|e| e.to_string())?;
    let mut setup = Setup::new(fake);
    let (launched, _) = plan
        .execute(fake.provider(), &mut setup)
        .await
        .map_err(|e| format!("the plan failed: {e}"))?;
    let ours = fake
        .provider()
        .list_tagged(tags::RUN, Some(&setup.run))
        .await
        .map_err(|e| format!("list_tagged: {e}"))?;
    if ours.len() != 1 || launched.len() != 1 || ours[0].id != launched[0].machine {
        return Err(format!(
            "after a lost answer: launched {launched:?}, the provider has {ours:?}"
        ));
    }
    Ok(())
}

async fn pacing(fake: &dyn ProviderFake) -> Result<(), String> {
    let before = fake.rate_limited();
    let candidates = fake.candidates();
    let plan =
        LaunchPlan::new(candidates, 3, CapacityPolicy::FailFast).map_err(|e| e.to_string())?;
    let mut setup = Setup::new(fake);
    let (launched, _) = plan
        .execute(fake.provider(), &mut setup)
        .await
        .map_err(|e| format!("the plan failed: {e}"))?;
    // More calls than a minute's quota of either cloud allows unpaced (RunPod's example
    // policy: 60 a minute; Lambda: 1 a second): only the provider's own pacing keeps them in.
    for round in 0..PACED_CALLS {
        let machine = &launched[round % launched.len()];
        fake.provider()
            .describe(&machine.machine)
            .await
            .map_err(|e| format!("describe: {e}"))?;
    }
    // The fake judges by when requests arrive, the client paces when it sends them: on a
    // loaded machine one paced call in many may arrive late enough to be refused (and is then
    // retried). Unpaced, most of them are refused.
    let refused = fake.rate_limited() - before;
    let allowed = u64::try_from(PACED_CALLS / 10).unwrap_or(u64::MAX);
    if launched.len() != 3 || refused > allowed {
        return Err(format!(
            "{} launched, {refused} of {PACED_CALLS}+ requests refused for the rate limit (at most {allowed} may be, for arrival jitter)",
            launched.len()
        ));
    }
    Ok(())
}

async fn health(fake: &dyn ProviderFake) -> Result<(), String> {
    let provider = fake.provider();
    let spec = tagged(
        fake,
        &fake.candidates()[0],
        &unique("run"),
        &unique("machine"),
    );
    let id = provider
        .launch(&spec)
        .await
        .map_err(|e| format!("launch: {e}"))?;
    provider
        .report_unhealthy(&id, "GPU 1 did not answer")
        .await
        .map_err(|e| format!("report_unhealthy: {e}"))?;
    let described = provider
        .describe(&id)
        .await
        .map_err(|e| format!("describe: {e}"))?;
    match described.health_failure.as_deref() {
        Some(why) if why.contains("GPU 1 did not answer") => Ok(()),
        other => Err(format!("the health failure read back as {other:?}")),
    }
}

async fn reaper(fake: &dyn ProviderFake) -> Result<(), String> {
    let provider = fake.provider();
    let mut spec = tagged(
        fake,
        &fake.candidates()[0],
        &unique("run"),
        &unique("machine"),
    );
    let launched_at = jiff::Timestamp::now();
    spec.tags
        .insert(tags::LAUNCHED.to_owned(), launched_at.to_string());
    spec.tags
        .insert(tags::EXPIRES.to_owned(), launched_at.to_string());
    let id = provider
        .launch(&spec)
        .await
        .map_err(|e| format!("launch: {e}"))?;
    let mut policy = crate::reaper::ReapPolicy::now();
    policy.now = launched_at + jiff::SignedDuration::from_secs(60);
    let report = crate::reaper::reap(provider, None, policy)
        .await
        .map_err(|e| format!("reap: {e}"))?;
    if !report.reaped.iter().any(|(m, _)| m.id == id) {
        return Err(format!(
            "the reaper did not end expired {id}: {:?}",
            report.reaped
        ));
    }
    if fake.alive().await.iter().any(|a| a == id.as_str()) {
        return Err(format!("{id} is alive after the reaper ended it"));
    }
    Ok(())
}

/// A setup that launches one given spec.
struct Oversized(MachineSpec);

#[async_trait]
impl LaunchSetup for Oversized {
    async fn prepare(&mut self, _: usize, _: &Candidate) -> Result<MachineSpec, String> {
        Ok(self.0.clone())
    }

    async fn abandon(&mut self, _: usize) {}
}

async fn refusals(fake: &dyn ProviderFake) -> Result<(), String> {
    let provider = fake.provider();
    let capabilities = provider.capabilities();
    let mut spec = tagged(
        fake,
        &fake.candidates()[0],
        &unique("run"),
        &unique("machine"),
    );
    spec.boot_script = Some("x".repeat(capabilities.max_boot_script_bytes + 1).into());
    let before = fake.alive().await.len();
    let plan = LaunchPlan::new(fake.candidates()[..1].to_vec(), 1, CapacityPolicy::FailFast)
        .map_err(|e| e.to_string())?;
    let outcome = plan.execute(provider, &mut Oversized(spec)).await;
    match outcome {
        Err(failure) if failure.reason.contains("limit") => {}
        other => return Err(format!("an oversized boot script gave {other:?}")),
    }
    if fake.alive().await.len() != before {
        return Err("a refused spec launched a machine".into());
    }
    Ok(())
}
