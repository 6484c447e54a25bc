//! What a provisioning hands to later jobs: `label`, `instance-id`, and `mtx`, one matrix
//! entry per runner.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::naming::RunnerNaming;
use crate::plan::Launched;

/// One runner, for `strategy.matrix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixEntry {
    /// Position among all runners.
    pub idx: usize,
    /// The label that targets exactly this runner (its name).
    pub label: String,
    /// The id of the machine the runner is on (`instance-id`).
    pub instance_id: String,
    /// Its machine's position.
    pub instance_idx: usize,
    /// Its position on the machine.
    pub runner_idx: usize,
    /// The machine's type.
    pub instance_type: String,
    /// The machine's region.
    pub region: String,
}

/// The outputs of a provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outputs {
    /// The label every runner of this launch has: `runs-on: ${{ needs.x.outputs.label }}`.
    pub label: String,
    /// The machine's id when exactly one was launched.
    pub instance_id: Option<String>,
    /// Every runner.
    pub mtx: Vec<MatrixEntry>,
}

impl Outputs {
    /// The outputs for `launched` machines with `runners_per_instance` runners each.
    pub fn new(
        naming: &RunnerNaming,
        launched: &[Launched],
        runners_per_instance: usize,
    ) -> Outputs {
        let mut mtx = Vec::new();
        for machine in launched {
            for runner in 0..runners_per_instance {
                mtx.push(MatrixEntry {
                    idx: mtx.len(),
                    label: naming.runner_name(machine.instance_index, runner),
                    instance_id: machine.machine.to_string(),
                    instance_idx: machine.instance_index,
                    runner_idx: runner,
                    instance_type: machine.candidate.instance_type.clone(),
                    region: machine.candidate.region.clone(),
                });
            }
        }
        let instance_id = match launched {
            [only] => Some(only.machine.to_string()),
            _ => None,
        };
        Outputs {
            label: naming.label().to_owned(),
            instance_id,
            mtx,
        }
    }

    /// The lines to append to `$GITHUB_OUTPUT`.
    pub fn github_output(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "label={}", self.label);
        if let Some(id) = &self.instance_id {
            let _ = writeln!(text, "instance-id={id}");
        }
        let mtx = serde_json::to_string(&self.mtx).unwrap_or_else(|_| "[]".to_owned());
        let _ = writeln!(text, "mtx={mtx}");
        text
    }
}
