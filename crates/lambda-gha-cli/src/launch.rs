//! `lambda-gha launch`: one machine from fallback lists of types and regions, checked against
//! the catalog first, tagged so `terminate --mine` and the reaper can find it.

use std::collections::BTreeMap;
use std::time::Duration;

use gha_runner_core::cache::CacheVolumes;
use gha_runner_core::tags;
use gha_runner_core::{
    Attempt, Candidate, CapacityPolicy, CoreError, Field, LaunchPlan, Launched, MachineSpec,
    Offering, PlanFailure, plan::LaunchSetup, preflight::Preflight, preflight::preflight,
};
use gha_runner_lambda::LambdaProvider;
use secrecy::SecretString;

/// What to launch.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest {
    /// Types in preference order.
    pub instance_types: Vec<String>,
    /// Regions in preference order (empty: any).
    pub regions: Vec<String>,
    /// The SSH key to install.
    pub ssh_key: String,
    pub name: Option<String>,
    /// Image family or id.
    pub image: Option<String>,
    /// Filesystems to mount.
    pub filesystems: Vec<String>,
    /// Firewall rulesets to apply, by id (none: the global rules alone).
    pub firewall_rulesets: Vec<String>,
    /// Extra tags.
    pub tags: BTreeMap<String, String>,
    /// Cloud-init user data.
    pub user_data: Option<String>,
    /// How long to wait for capacity.
    pub capacity: Option<Duration>,
    /// The cache's filesystem per region ([`gha_runner_core::cache::prepare`]): the one of
    /// the launch's region is mounted too.
    pub cache: Option<CacheVolumes>,
}

/// Prepares every attempt with the same spec, on the attempt's type and region (with the
/// region's cache filesystem, when there is a cache).
struct Setup(MachineSpec, Option<CacheVolumes>);

#[async_trait::async_trait]
impl LaunchSetup for Setup {
    async fn prepare(&mut self, _: usize, candidate: &Candidate) -> Result<MachineSpec, String> {
        let mut spec = self.0.clone();
        spec.instance_type.clone_from(&candidate.instance_type);
        spec.region.clone_from(&candidate.region);
        if let Some(volume) = self.1.as_ref().and_then(|c| c.volume(&candidate.region))
            && !spec.volumes.contains(&volume.name)
        {
            spec.volumes.push(volume.name.clone());
        }
        Ok(spec)
    }

    async fn abandon(&mut self, _: usize) {}
}

/// What a launch did.
pub struct LaunchOutcome {
    /// The machine, when launched.
    pub launched: Result<Launched, PlanFailure>,
    /// Every attempt.
    pub attempts: Vec<Attempt>,
    /// The launched type as the catalog read before launching has it (price, GPUs).
    pub offering: Option<Offering>,
}

/// The CLI's flag for a setting the core names in its own words.
pub fn flag_name(field: &Field) -> Option<&'static str> {
    Some(match field {
        Field::InstanceTypes => "--type",
        Field::Regions => "--region",
        Field::CapacityWait => "--capacity-wait",
        _ => return None,
    })
}

/// A core error, its input named as the CLI's flag.
fn flagged(error: CoreError) -> CoreError {
    match error {
        CoreError::Input(input) => CoreError::Input(input.renamed(flag_name)),
        other => other,
    }
}

/// Checks the request against the catalog, then launches one machine.
pub async fn launch(
    provider: &LambdaProvider,
    request: &LaunchRequest,
    user: &str,
) -> Result<LaunchOutcome, CoreError> {
    let checked = check(provider, request).await?;
    launch_checked(provider, request, checked, user).await
}

/// Checks the request's types and regions against the catalog (and the key against the
/// API): what must pass before anything is created.
pub async fn check(
    provider: &LambdaProvider,
    request: &LaunchRequest,
) -> Result<Preflight, CoreError> {
    preflight(
        provider,
        &request.instance_types,
        &request.regions,
        1,
        Duration::from_secs(3600),
        None,
    )
    .await
    .map_err(flagged)
}

/// Launches one machine for a request [`check`] passed.
pub async fn launch_checked(
    provider: &LambdaProvider,
    request: &LaunchRequest,
    checked: Preflight,
    user: &str,
) -> Result<LaunchOutcome, CoreError> {
    let capacity = match request.capacity {
        Some(wait) if !wait.is_zero() => CapacityPolicy::WaitUntil(wait),
        _ => CapacityPolicy::FailFast,
    };
    let plan = LaunchPlan::new(checked.candidates, 1, capacity).map_err(|e| flagged(e.into()))?;
    let first: &Candidate = &plan.candidates[0];
    let mut spec = MachineSpec::new(&first.instance_type, &first.region);
    spec.ssh_key = Some(request.ssh_key.clone());
    spec.name.clone_from(&request.name);
    spec.image.clone_from(&request.image);
    spec.volumes.clone_from(&request.filesystems);
    spec.firewall_rulesets
        .clone_from(&request.firewall_rulesets);
    spec.tags.clone_from(&request.tags);
    spec.tags.insert(tags::CLI.to_owned(), user.to_owned());
    // Lambda does not say when a machine was launched: `cost` reads it from here.
    if !spec.tags.contains_key(tags::LAUNCHED) {
        let (key, value) = tags::launched_now();
        spec.tags.insert(key, value);
    }
    // Unique per launch: a launch whose answer is lost is found by it, not launched twice.
    spec.tags.insert(
        tags::MACHINE.to_owned(),
        format!("cli-{:016x}", fastrand::u64(..)),
    );
    spec.boot_script = request.user_data.clone().map(SecretString::from);
    let mut setup = Setup(spec, request.cache.clone());
    let catalog = checked.catalog;
    let offering =
        |launched: &Launched| catalog.offering(&launched.candidate.instance_type).cloned();
    Ok(match plan.execute(provider, &mut setup).await {
        Ok((mut launched, attempts)) => LaunchOutcome {
            offering: launched.last().and_then(offering),
            launched: launched.pop().ok_or_else(|| PlanFailure {
                reason: "the plan launched nothing".into(),
                attempts: attempts.clone(),
                terminated: Vec::new(),
                not_terminated: Vec::new(),
            }),
            attempts,
        },
        Err(failure) => LaunchOutcome {
            offering: None,
            attempts: failure.attempts.clone(),
            launched: Err(failure),
        },
    })
}
