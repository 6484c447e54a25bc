//! The backstop for anything an agent could not end: machines this project launched that are
//! past their expiry, or whose runners are gone from GitHub, and runner registrations whose
//! machines are gone. Given a GitHub scope, it judges only machines whose owner tag names that
//! scope: in an account shared by several repositories, the others' machines are not its own. Run on a schedule (`lambda-gha reap`, the `reaper.yml` workflow).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::github::GitHub;
use crate::naming::RunnerNaming;
use crate::plan::terminate_all;
use crate::provider::{CloudProvider, Machine, MachineId};
use crate::provisioner::CleanupReport;
use crate::tags;

/// Why a machine is reaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum ReapReason {
    /// Still alive past its expiry tag.
    Expired {
        /// The expiry it carried.
        expires: String,
    },
    /// Launched longer ago than the orphan age, and no runner of its launch is registered.
    RunnersGone {
        /// When it was launched.
        launched: String,
    },
}

impl fmt::Display for ReapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReapReason::Expired { expires } => write!(f, "expired at {expires}"),
            ReapReason::RunnersGone { launched } => {
                write!(f, "launched {launched}, no runner of its launch registered")
            }
        }
    }
}

/// When the reaper acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapPolicy {
    /// The time to judge by.
    pub now: jiff::Timestamp,
    /// How long after its launch a machine must have a registered runner (longer than any
    /// registration timeout: runners appear only once the machine has booted).
    pub orphan_after: Duration,
    /// Report what would be done without doing it.
    pub dry_run: bool,
}

impl ReapPolicy {
    /// Judged now, orphans after 30 minutes, for real.
    pub fn now() -> ReapPolicy {
        ReapPolicy {
            now: jiff::Timestamp::now(),
            orphan_after: Duration::from_secs(30 * 60),
            dry_run: false,
        }
    }

    /// Why `machine` should be reaped, if it should. `registered` holds the launch labels
    /// with at least one runner registered; `None` when GitHub was not consulted.
    pub fn judge(
        &self,
        machine: &Machine,
        registered: Option<&BTreeSet<String>>,
    ) -> Option<ReapReason> {
        if !machine.state.may_bill() {
            return None;
        }
        let parse = |key: &str| {
            machine
                .tags
                .get(key)
                .and_then(|v| v.parse::<jiff::Timestamp>().ok().map(|t| (v.clone(), t)))
        };
        if let Some((text, expires)) = parse(tags::EXPIRES)
            && expires <= self.now
        {
            return Some(ReapReason::Expired { expires: text });
        }
        let (registered, label) = (registered?, machine.tags.get(tags::RUN)?);
        let (text, launched) = parse(tags::LAUNCHED)?;
        let age = self.now.duration_since(launched);
        let old_enough = jiff::SignedDuration::try_from(self.orphan_after)
            .is_ok_and(|orphan_after| age >= orphan_after);
        (old_enough && !registered.contains(label))
            .then_some(ReapReason::RunnersGone { launched: text })
    }
}

/// What a reap found and did.
#[derive(Debug, Clone, Default)]
pub struct ReapReport {
    /// Machines of this project that were alive.
    pub examined: usize,
    /// Machines reaped, with why.
    pub reaped: Vec<(Machine, ReapReason)>,
    /// Registered runners of launches with no machine left (deleted unless a dry run).
    pub ghost_runners: Vec<(u64, String)>,
    /// The terminate calls and runner deletions.
    pub cleanup: CleanupReport,
}

/// Finds and ends what the policy says, through `provider` and, when given, `github` (which
/// enables the "runners gone" rule and deleting ghost registrations).
pub async fn reap(
    provider: &dyn CloudProvider,
    github: Option<&GitHub>,
    policy: ReapPolicy,
) -> Result<ReapReport, CoreError> {
    // Launches for runners, and `lambda-gha run` sessions (judged by their expiry alone).
    let mut machines = Vec::new();
    for tag in [tags::RUN, tags::SESSION] {
        machines.extend(provider.list_tagged(tag, None).await.map_err(|source| {
            CoreError::Provider {
                provider: provider.name(),
                source,
            }
        })?);
    }
    machines.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    machines.dedup_by(|a, b| a.id == b.id);
    let runners = match github {
        Some(github) => Some(github.list_runners().await?),
        None => None,
    };
    let registered: Option<BTreeSet<String>> = runners.as_ref().map(|runners| {
        runners
            .iter()
            .filter_map(|r| RunnerNaming::label_of_runner(&r.name).map(str::to_owned))
            .collect()
    });
    // With a GitHub scope, only that scope's machines: another repository's (or org's)
    // launches in a shared account have runners this scope cannot see.
    let owner = github.map(|g| g.scope().owner());
    let alive: Vec<&Machine> = machines
        .iter()
        .filter(|m| m.state.may_bill())
        .filter(|m| {
            owner
                .as_ref()
                .is_none_or(|owner| m.tags.get(tags::OWNER) == Some(owner))
        })
        .collect();
    let mut report = ReapReport {
        examined: alive.len(),
        ..ReapReport::default()
    };
    for machine in &alive {
        if let Some(reason) = policy.judge(machine, registered.as_ref()) {
            report.reaped.push(((*machine).clone(), reason));
        }
    }
    let reaped_labels: BTreeSet<&str> = report
        .reaped
        .iter()
        .filter_map(|(m, _)| m.tags.get(tags::RUN).map(String::as_str))
        .collect();
    let live_labels: BTreeSet<&str> = alive
        .iter()
        .filter_map(|m| m.tags.get(tags::RUN).map(String::as_str))
        .filter(|label| !reaped_labels.contains(label))
        .collect();
    for runner in runners.iter().flatten() {
        let Some(label) = RunnerNaming::label_of_runner(&runner.name) else {
            continue;
        };
        // A runner of a reaped launch, or an offline one of a launch with no machine left.
        if reaped_labels.contains(label) || (!runner.is_online() && !live_labels.contains(label)) {
            report.ghost_runners.push((runner.id, runner.name.clone()));
        }
    }
    if policy.dry_run {
        return Ok(report);
    }
    let ids: Vec<MachineId> = report.reaped.iter().map(|(m, _)| m.id.clone()).collect();
    let (terminated, not_terminated) = terminate_all(provider, &ids).await;
    report.cleanup.terminated = terminated;
    report.cleanup.not_terminated = not_terminated;
    if let Some(github) = github {
        for (id, _) in &report.ghost_runners {
            match github.delete_runner(*id).await {
                Ok(()) => report.cleanup.runners_deleted.push(*id),
                Err(error) => report
                    .cleanup
                    .runners_not_deleted
                    .push((*id, error.to_string())),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::provider::MachineState;

    fn machine(tags: &[(&str, &str)], state: MachineState) -> Machine {
        Machine {
            id: MachineId::new("m1"),
            name: None,
            instance_type: "gpu_1x_a10".into(),
            region: "us-east-1".into(),
            state,
            ip: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            price_cents_per_hour: Some(75),
            health_failure: None,
        }
    }

    fn policy(now: &str) -> ReapPolicy {
        ReapPolicy {
            now: now.parse().unwrap(),
            orphan_after: Duration::from_secs(1800),
            dry_run: false,
        }
    }

    #[test]
    fn expired_machines_are_reaped_and_gone_ones_are_not() {
        let m = machine(
            &[
                (tags::RUN, "lambda-1-abc"),
                (tags::EXPIRES, "2026-11-23T12:00:00Z"),
            ],
            MachineState::Running,
        );
        assert_eq!(policy("2026-11-23T11:59:59Z").judge(&m, None), None);
        assert_eq!(
            policy("2026-11-23T12:00:00Z").judge(&m, None),
            Some(ReapReason::Expired {
                expires: "2026-11-23T12:00:00Z".into()
            })
        );
        let gone = Machine {
            state: MachineState::Gone,
            ..m
        };
        assert_eq!(policy("2027-01-01T00:00:00Z").judge(&gone, None), None);
    }

    #[test]
    fn machines_without_runners_are_reaped_only_after_the_orphan_age() {
        let m = machine(
            &[
                (tags::RUN, "lambda-1-abc"),
                (tags::LAUNCHED, "2026-11-23T10:00:00Z"),
                (tags::EXPIRES, "2026-11-23T14:00:00Z"),
            ],
            MachineState::Running,
        );
        let none = BTreeSet::new();
        let ours: BTreeSet<String> = ["lambda-1-abc".to_owned()].into();
        assert_eq!(policy("2026-11-23T10:29:59Z").judge(&m, Some(&none)), None);
        assert!(matches!(
            policy("2026-11-23T10:30:00Z").judge(&m, Some(&none)),
            Some(ReapReason::RunnersGone { .. })
        ));
        assert_eq!(policy("2026-11-23T10:30:00Z").judge(&m, Some(&ours)), None);
        // Without GitHub, only the expiry counts.
        assert_eq!(policy("2026-11-23T10:30:00Z").judge(&m, None), None);
    }
}
