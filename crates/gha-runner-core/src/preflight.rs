//! Checks made before anything is launched: every named machine type and region exists at the
//! provider, the credentials work, and what the launch can cost at worst. A mistake here costs
//! a clear error; the same mistake found after a launch costs a machine.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Field, InputError};
use crate::plan::Candidate;
use crate::provider::{Catalog, CloudProvider, ProviderErrorKind};

/// The most a launch can cost: every machine at the highest price among the candidates, for
/// the whole maximum lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// Machines launched.
    pub machines: usize,
    /// The highest hourly price among the candidates, US cents.
    pub max_cents_per_hour: u32,
    /// The maximum lifetime of each machine.
    pub max_lifetime: Duration,
}

impl CostEstimate {
    /// The worst case in US dollars.
    pub fn worst_case_usd(&self) -> f64 {
        let hours = self.max_lifetime.as_secs_f64() / 3600.0;
        #[allow(clippy::cast_precision_loss)] // At most 100 machines.
        let machines = self.machines as f64;
        machines * f64::from(self.max_cents_per_hour) / 100.0 * hours
    }
}

impl fmt::Display for CostEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${:.2} at most ({} machine(s) × ${:.2}/h × {})",
            self.worst_case_usd(),
            self.machines,
            f64::from(self.max_cents_per_hour) / 100.0,
            crate::duration::format_duration(self.max_lifetime)
        )
    }
}

/// What the provider said before the launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    /// The provider's catalog.
    pub catalog: Catalog,
    /// The candidates, with an empty region list resolved to every region.
    pub candidates: Vec<Candidate>,
    /// The worst-case cost.
    pub estimate: CostEstimate,
}

/// Checks `instance_types` and `regions` (an empty list means every region, in the provider's
/// order) against the provider's catalog and estimates the worst-case cost of `machines`
/// machines living `max_lifetime`. Fails on an unknown name (suggesting the closest), a
/// refused key, or a cost above `max_cost_usd`.
pub async fn preflight(
    provider: &dyn CloudProvider,
    instance_types: &[String],
    regions: &[String],
    machines: usize,
    max_lifetime: Duration,
    max_cost_usd: Option<f64>,
) -> Result<Preflight, CoreError> {
    let catalog = provider.catalog().await.map_err(|source| {
        let source = match source.kind {
            ProviderErrorKind::Unauthorized => crate::provider::ProviderError::new(
                source.kind,
                format!(
                    "{} (check the API key: create one in the provider's dashboard and store it as a secret)",
                    source.message
                ),
            ),
            _ => source,
        };
        CoreError::Provider {
            provider: provider.name(),
            source,
        }
    })?;
    let known_types: Vec<&str> = catalog
        .offerings
        .iter()
        .map(|o| o.instance_type.as_str())
        .collect();
    for name in instance_types {
        if catalog.offering(name).is_none() {
            return Err(unknown(Field::InstanceTypes, name, &known_types).into());
        }
    }
    let known_regions: Vec<&str> = catalog.regions.iter().map(String::as_str).collect();
    for name in regions {
        if !catalog.regions.contains(name) {
            return Err(unknown(Field::Regions, name, &known_regions).into());
        }
    }
    let regions: Vec<String> = if regions.is_empty() {
        catalog.regions.clone()
    } else {
        regions.to_vec()
    };
    let candidates: Vec<Candidate> = instance_types
        .iter()
        .flat_map(|t| {
            regions.iter().map(move |r| Candidate {
                instance_type: t.clone(),
                region: r.clone(),
            })
        })
        .collect();
    let max_cents_per_hour = instance_types
        .iter()
        .filter_map(|t| catalog.offering(t))
        .map(|o| o.price_cents_per_hour)
        .max()
        .unwrap_or(0);
    let estimate = CostEstimate {
        machines,
        max_cents_per_hour,
        max_lifetime,
    };
    if let Some(cap) = max_cost_usd
        && estimate.worst_case_usd() > cap
    {
        return Err(InputError::new(
            Field::MaxCost,
            format!(
                "the worst case is {estimate}, above the cap of ${cap:.2}: raise the cap, \
                 launch fewer machines, shorten their maximum lifetime, or pick cheaper types"
            ),
        )
        .into());
    }
    Ok(Preflight {
        catalog,
        candidates,
        estimate,
    })
}

fn unknown(field: Field, name: &str, known: &[&str]) -> InputError {
    // Types separated by spaces instead of commas read as one name with spaces in it (a
    // RunPod type has them): say so when each word is a type.
    let words: Vec<&str> = name.split_whitespace().collect();
    if words.len() > 1 && words.iter().all(|w| known.contains(w)) {
        return InputError::new(
            field,
            format!(
                "{name:?} names {} types: separate them with commas",
                words.len()
            ),
        );
    }
    let hint = match closest(name, known) {
        Some(best) => format!("did you mean `{best}`? "),
        None => String::new(),
    };
    InputError::new(
        field,
        format!(
            "{name:?} is not offered; {hint}known: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ),
    )
}

/// The known name that extends `name` (`gpu_8x_h100` → `gpu_8x_h100_sxm5`), else the one
/// closest by edit distance when it is close enough to be a typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some(longer) = known
        .iter()
        .filter(|k| k.starts_with(name) && !name.is_empty())
        .min_by_key(|k| k.len())
    {
        return Some(longer);
    }
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name() {
        let known = ["gpu_1x_a10", "gpu_1x_a100_sxm4", "gpu_8x_h100_sxm5"];
        assert_eq!(closest("gpu_1x_a01", &known), Some("gpu_1x_a10"));
        assert_eq!(closest("gpu_8x_h100", &known), Some("gpu_8x_h100_sxm5"));
        assert_eq!(closest("tpu", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn types_separated_by_spaces_are_told_to_use_commas() {
        let known = ["gpu_1x_a10", "gpu_1x_a100_sxm4"];
        let error = unknown(Field::InstanceTypes, "gpu_1x_a10 gpu_1x_a100_sxm4", &known);
        assert_eq!(
            error.problem,
            "\"gpu_1x_a10 gpu_1x_a100_sxm4\" names 2 types: separate them with commas"
        );
        let error = unknown(Field::InstanceTypes, "1x NVIDIA A4O", &["1x NVIDIA A40"]);
        assert!(
            error.problem.contains("did you mean `1x NVIDIA A40`"),
            "{error}"
        );
    }

    #[test]
    fn the_worst_case_is_every_machine_at_the_top_price_for_its_whole_life() {
        let estimate = CostEstimate {
            machines: 3,
            max_cents_per_hour: 129,
            max_lifetime: Duration::from_secs(2 * 3600),
        };
        assert!((estimate.worst_case_usd() - 7.74).abs() < 1e-9);
        assert_eq!(
            estimate.to_string(),
            "$7.74 at most (3 machine(s) × $1.29/h × 2h)"
        );
    }
}
