//! How a machine's GPUs are shared among its runners: each runner gets a disjoint slice
//! (`CUDA_VISIBLE_DEVICES` in its environment, a `gpus-<n>` label), so several runners on an
//! 8-GPU machine never fight over a device. Checked for every candidate type before anything
//! is launched: a layout that cannot work on one of them is an input error.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Field, InputError};
use crate::provider::Catalog;

/// How many GPUs each runner gets, as the user asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpusPerRunner {
    /// The machine's GPUs split evenly among its runners (the default).
    #[default]
    Even,
    /// Exactly this many each; GPUs left over stay unused.
    Exactly(u32),
    /// No pinning: every runner sees every GPU.
    All,
}

impl GpusPerRunner {
    /// Reads the `gpus_per_runner` input: empty (even split), a positive number, or `all`.
    pub fn parse(input: &str) -> Result<GpusPerRunner, InputError> {
        let text = input.trim();
        if text.is_empty() {
            return Ok(GpusPerRunner::Even);
        }
        if text == "all" {
            return Ok(GpusPerRunner::All);
        }
        match text.parse::<u32>() {
            Ok(n @ 1..=64) => Ok(GpusPerRunner::Exactly(n)),
            _ => Err(InputError::new(
                Field::GpusPerRunner,
                format!(
                    "{text:?} must be a number of GPUs from 1 to 64, or `all` to let every runner \
                     see every GPU; leave it out to split the GPUs evenly"
                ),
            )),
        }
    }
}

impl fmt::Display for GpusPerRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpusPerRunner::Even => f.write_str("even"),
            GpusPerRunner::Exactly(n) => write!(f, "{n}"),
            GpusPerRunner::All => f.write_str("all"),
        }
    }
}

/// The GPUs of one machine type and which of them each runner sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuLayout {
    /// GPUs on the machine.
    pub gpus: u32,
    /// Runners on it.
    pub runners: usize,
    /// GPUs per runner; `None` when runners are not pinned (every runner sees every GPU, or
    /// the machine has none).
    pub per_runner: Option<u32>,
}

impl GpuLayout {
    /// The layout of `runners` runners on a machine with `gpus` GPUs, or why it cannot work
    /// (for the input that must change).
    pub fn new(gpus: u32, runners: usize, asked: GpusPerRunner) -> Result<GpuLayout, String> {
        let count = u32::try_from(runners).unwrap_or(u32::MAX).max(1);
        let per_runner = match asked {
            GpusPerRunner::All => None,
            GpusPerRunner::Even if gpus == 0 => None,
            GpusPerRunner::Exactly(_) if gpus == 0 => {
                return Err("has no GPUs to pin: leave the GPUs per runner out".to_owned());
            }
            GpusPerRunner::Even if !gpus.is_multiple_of(count) => {
                let divisors: Vec<String> = (1..=gpus)
                    .filter(|d| gpus.is_multiple_of(*d))
                    .map(|d| d.to_string())
                    .collect();
                let fits = match divisors.as_slice() {
                    [one] => one.clone(),
                    _ => format!("one of {}", divisors.join(", ")),
                };
                return Err(format!(
                    "has {gpus} GPU(s), which {runners} runners cannot share evenly: set \
                     the runners per machine to {fits}, or the GPUs per runner to a number \
                     (GPUs left over stay unused) or `all` (every runner sees every GPU)"
                ));
            }
            GpusPerRunner::Even => Some(gpus / count),
            GpusPerRunner::Exactly(each)
                if u64::from(each) * u64::from(count) > u64::from(gpus) =>
            {
                return Err(format!(
                    "has {gpus} GPU(s), fewer than {runners} runner(s) × {each}: lower \
                     the GPUs per runner or the runners per machine"
                ));
            }
            GpusPerRunner::Exactly(each) => Some(each),
        };
        Ok(GpuLayout {
            gpus,
            runners,
            per_runner,
        })
    }

    /// The devices runner `runner` sees, as `CUDA_VISIBLE_DEVICES` takes them (`2,3`); `None`
    /// when it is not pinned.
    pub fn devices(&self, runner: usize) -> Option<String> {
        let each = self.per_runner?;
        let first = u32::try_from(runner).ok()?.checked_mul(each)?;
        Some(
            (first..first + each)
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// The label saying how many GPUs a runner has (`gpus-2`); none without GPUs.
    pub fn label(&self) -> Option<String> {
        match self.per_runner {
            Some(each) => Some(format!("gpus-{each}")),
            None if self.gpus > 0 => Some(format!("gpus-{}", self.gpus)),
            None => None,
        }
    }
}

/// The layout on every candidate type, or the first type it cannot work on. A type missing
/// from the catalog is left to the catalog check.
pub fn gpu_layouts(
    catalog: &Catalog,
    instance_types: &[String],
    runners: usize,
    asked: GpusPerRunner,
) -> Result<BTreeMap<String, GpuLayout>, InputError> {
    let mut layouts = BTreeMap::new();
    for name in instance_types {
        let Some(offering) = catalog.offering(name) else {
            continue;
        };
        let layout = GpuLayout::new(offering.gpus, runners, asked).map_err(|problem| {
            let field = match asked {
                GpusPerRunner::Exactly(_) => Field::GpusPerRunner,
                _ => Field::RunnersPerMachine,
            };
            InputError::new(field, format!("{name} {problem}"))
        })?;
        layouts.insert(name.clone(), layout);
    }
    Ok(layouts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_split_gives_each_runner_its_own_devices() {
        let layout = GpuLayout::new(8, 4, GpusPerRunner::Even).unwrap();
        let slices: Vec<String> = (0..4).map(|r| layout.devices(r).unwrap()).collect();
        assert_eq!(slices, ["0,1", "2,3", "4,5", "6,7"]);
        assert_eq!(layout.label().as_deref(), Some("gpus-2"));
        let one = GpuLayout::new(1, 1, GpusPerRunner::Even).unwrap();
        assert_eq!(one.devices(0).as_deref(), Some("0"));
        assert_eq!(one.label().as_deref(), Some("gpus-1"));
    }

    #[test]
    fn an_uneven_split_is_refused_with_the_divisors() {
        let error = GpuLayout::new(8, 3, GpusPerRunner::Even).unwrap_err();
        assert!(error.contains("one of 1, 2, 4, 8"), "{error}");
        let error = GpuLayout::new(1, 2, GpusPerRunner::Even).unwrap_err();
        assert!(error.contains("the runners per machine to 1,"), "{error}");
    }

    #[test]
    fn an_explicit_size_may_leave_gpus_unused_but_not_overcommit() {
        let layout = GpuLayout::new(8, 3, GpusPerRunner::Exactly(2)).unwrap();
        assert_eq!(layout.devices(2).as_deref(), Some("4,5"));
        let error = GpuLayout::new(4, 3, GpusPerRunner::Exactly(2)).unwrap_err();
        assert!(error.contains("fewer than 3 runner(s) × 2"), "{error}");
        assert!(GpuLayout::new(0, 1, GpusPerRunner::Exactly(1)).is_err());
    }

    #[test]
    fn all_shares_every_gpu_and_no_gpus_means_no_pinning() {
        let shared = GpuLayout::new(2, 4, GpusPerRunner::All).unwrap();
        assert_eq!(shared.devices(3), None);
        assert_eq!(shared.label().as_deref(), Some("gpus-2"));
        let cpu = GpuLayout::new(0, 2, GpusPerRunner::Even).unwrap();
        assert_eq!((cpu.devices(0), cpu.label()), (None, None));
    }

    #[test]
    fn the_input_reads_numbers_and_all() {
        assert_eq!(GpusPerRunner::parse("").unwrap(), GpusPerRunner::Even);
        assert_eq!(
            GpusPerRunner::parse(" 2 ").unwrap(),
            GpusPerRunner::Exactly(2)
        );
        assert_eq!(GpusPerRunner::parse("all").unwrap(), GpusPerRunner::All);
        for bad in ["0", "-1", "two", "65"] {
            assert!(GpusPerRunner::parse(bad).is_err(), "{bad}");
        }
    }
}
