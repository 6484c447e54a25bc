//! Names and labels of runners. Every launch gets a unique label (`lambda-<run id>-<random>`)
//! that jobs target with `runs-on`; every runner gets a unique name built on it.

use crate::error::{Field, InputError};
use crate::plan::Candidate;

/// GitHub refuses runner names longer than this.
pub const MAX_RUNNER_NAME: usize = 64;
/// GitHub accepts at most this many labels per runner.
pub const MAX_LABELS: usize = 100;
/// Labels every runner gets besides the extra ones: the launch's label, the runner's name,
/// the type, the region, `gpu`, and the GPU slice (`gpus-2`).
pub const OWN_LABELS: usize = 6;

/// The label of one launch and the names derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerNaming {
    label: String,
}

impl RunnerNaming {
    /// A fresh label for a workflow run (`GITHUB_RUN_ID`), or for a run without one.
    pub fn for_run(run_id: Option<&str>) -> RunnerNaming {
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        let run: String = run_id
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect();
        let label = if run.is_empty() {
            format!("lambda-{suffix}")
        } else {
            format!("lambda-{run}-{suffix}")
        };
        RunnerNaming { label }
    }

    /// A given label, checked (for tests and for `stop` runs that name an earlier launch).
    pub fn with_label(label: &str) -> Result<RunnerNaming, InputError> {
        check_label(label, Field::Label)?;
        if label.len() > MAX_RUNNER_NAME - 8 {
            return Err(InputError::new(
                Field::Label,
                format!("must be at most {} characters", MAX_RUNNER_NAME - 8),
            ));
        }
        Ok(RunnerNaming {
            label: label.to_owned(),
        })
    }

    /// The launch's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The name of runner `runner` on machine `instance`: `<label>-<instance>-<runner>`.
    pub fn runner_name(&self, instance: usize, runner: usize) -> String {
        format!("{}-{instance}-{runner}", self.label)
    }

    /// The launch label of a runner named by [`RunnerNaming::runner_name`], or `None` when
    /// the name is not one of ours (`lambda-…-<machine>-<runner>`).
    pub fn label_of_runner(name: &str) -> Option<&str> {
        let (rest, runner) = name.rsplit_once('-')?;
        let (label, machine) = rest.rsplit_once('-')?;
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (numeric(runner) && numeric(machine) && label.starts_with("lambda-")).then_some(label)
    }

    /// The tag value that identifies machine `instance` of this launch.
    pub fn machine_tag(&self, instance: usize) -> String {
        format!("{}-{instance}", self.label)
    }

    /// The tag value of the `replacement`th machine launched in place of machine `instance`
    /// (0 is the first, [`RunnerNaming::machine_tag`]); each is new, so a lost launch answer
    /// is never mistaken for the machine it replaces.
    pub fn replacement_tag(&self, instance: usize, replacement: u32) -> String {
        match replacement {
            0 => self.machine_tag(instance),
            n => format!("{}-{instance}-r{n}", self.label),
        }
    }

    /// A runner's labels: the launch label, its own name (so a matrix job can target it),
    /// the machine type, the region, `gpu`, and the user's extras.
    pub fn labels(
        &self,
        instance: usize,
        runner: usize,
        candidate: &Candidate,
        extra: &[String],
    ) -> Vec<String> {
        let mut labels = vec![
            self.label.clone(),
            self.runner_name(instance, runner),
            candidate.instance_type.clone(),
            candidate.region.clone(),
            "gpu".to_owned(),
        ];
        for label in extra {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        labels
    }
}

fn check_label(label: &str, field: Field) -> Result<(), InputError> {
    if label.is_empty() || label.len() > 256 {
        return Err(InputError::new(
            field,
            format!("{label:?} must be 1 to 256 characters"),
        ));
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(InputError::new(
            field,
            format!("{label:?} may contain only letters, digits, `-`, `_` and `.`"),
        ));
    }
    Ok(())
}

/// Reads extra labels from a comma-separated input, checking each and the total.
pub fn parse_labels(input: &str) -> Result<Vec<String>, InputError> {
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let labels = crate::plan::parse_list(input, Field::ExtraLabels)?;
    for label in &labels {
        check_label(label, Field::ExtraLabels)?;
    }
    if labels.len() + OWN_LABELS > MAX_LABELS {
        return Err(InputError::new(
            Field::ExtraLabels,
            format!("at most {} extra labels", MAX_LABELS - OWN_LABELS),
        ));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_gets_a_machine_tag_of_its_own() {
        let naming = RunnerNaming::with_label("lambda-1-abcdef").unwrap();
        assert_eq!(naming.replacement_tag(3, 0), naming.machine_tag(3));
        assert_eq!(naming.replacement_tag(3, 1), "lambda-1-abcdef-3-r1");
        assert_ne!(naming.replacement_tag(3, 2), naming.replacement_tag(3, 1));
    }

    #[test]
    fn labels_are_unique_per_launch_and_names_fit_github() {
        let a = RunnerNaming::for_run(Some("12345678901"));
        let b = RunnerNaming::for_run(Some("12345678901"));
        assert_ne!(a.label(), b.label());
        assert!(a.label().starts_with("lambda-12345678901-"));
        assert!(a.runner_name(99, 99).len() <= MAX_RUNNER_NAME);
        assert!(RunnerNaming::for_run(None).label().starts_with("lambda-"));
        let long = RunnerNaming::for_run(Some(&"9".repeat(100)));
        assert!(
            long.runner_name(99, 99).len() <= MAX_RUNNER_NAME,
            "{}",
            long.label()
        );
    }

    #[test]
    fn each_runner_has_the_launch_label_its_name_and_the_machine() {
        let naming = RunnerNaming::with_label("lambda-7-abc").unwrap();
        let candidate = Candidate {
            instance_type: "gpu_1x_a10".into(),
            region: "us-east-1".into(),
        };
        assert_eq!(
            naming.labels(1, 0, &candidate, &["cuda".into(), "gpu".into()]),
            [
                "lambda-7-abc",
                "lambda-7-abc-1-0",
                "gpu_1x_a10",
                "us-east-1",
                "gpu",
                "cuda"
            ]
        );
    }

    #[test]
    fn a_runner_name_gives_back_its_launch_label() {
        let naming = RunnerNaming::for_run(Some("42"));
        let name = naming.runner_name(3, 1);
        assert_eq!(RunnerNaming::label_of_runner(&name), Some(naming.label()));
        assert_eq!(RunnerNaming::label_of_runner("lambda-7-abc-0"), None);
        assert_eq!(RunnerNaming::label_of_runner("gpu-box-0-0"), None);
        assert_eq!(RunnerNaming::label_of_runner("lambda-x-0-"), None);
    }

    #[test]
    fn extra_labels_are_checked() {
        assert_eq!(parse_labels("cuda, big-mem").unwrap(), ["cuda", "big-mem"]);
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("a b").is_err());
        assert!(
            parse_labels("ok,bad/label")
                .unwrap_err()
                .to_string()
                .contains("bad/label")
        );
        assert!(RunnerNaming::with_label("has space").is_err());
    }
}
