//! Every parser of user input under generated input, thousands of cases each (more with
//! `PROPTEST_CASES`): none panics, whatever it accepts satisfies its rules and survives a round
//! trip, whatever it refuses is refused with the field named.

use std::collections::BTreeMap;
use std::time::Duration;

use gha_runner_core::{
    Candidate, CapacityPolicy, Launched, MachineId, duration::format_duration,
    duration::parse_duration, naming::MAX_LABELS, naming::OWN_LABELS, naming::RunnerNaming,
    naming::parse_labels, outputs::Outputs, plan::parse_list,
};
use lambda_gha_action::inputs::{self, Env, Mode, input_name, parse_tags};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    // The default reads PROPTEST_CASES; at least 2,000 cases each in every test run.
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: default.cases.max(2_000),
        ..default
    }
}

/// Text that looks like what people type into these inputs: items, separators, spaces,
/// units, `=`, and now and then anything at all.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::string::string_regex("[a-z0-9_=:. ,\t-]{0,40}").expect("a valid regex"),
        2 => proptest::string::string_regex("([0-9]{1,4}(ms|s|m|h)?){0,4}").expect("a valid regex"),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lists_are_trimmed_non_empty_distinct_and_round_trip(input in typed()) {
        match parse_list(&input, "instance_type") {
            Ok(items) => {
                prop_assert!(!items.is_empty());
                for item in &items {
                    prop_assert!(!item.is_empty() && !item.contains(',') && !item.contains(' '));
                    prop_assert_eq!(item.trim(), item.as_str());
                }
                let distinct: std::collections::BTreeSet<&String> = items.iter().collect();
                prop_assert_eq!(distinct.len(), items.len());
                prop_assert_eq!(parse_list(&items.join(","), "instance_type").unwrap(), items);
            }
            Err(error) => prop_assert_eq!(error.field, "instance_type"),
        }
    }

    #[test]
    fn durations_round_trip_through_their_written_form(input in typed()) {
        match parse_duration(&input, "max_instance_lifetime") {
            Ok(duration) => {
                let written = format_duration(duration);
                prop_assert_eq!(parse_duration(&written, "x").unwrap(), duration, "{}", written);
            }
            Err(error) => prop_assert_eq!(error.field, "max_instance_lifetime"),
        }
    }

    #[test]
    fn every_whole_duration_is_written_and_read_back(seconds in 0u64..10_000_000) {
        let duration = Duration::from_secs(seconds);
        prop_assert_eq!(parse_duration(&format_duration(duration), "x").unwrap(), duration);
    }

    #[test]
    fn capacity_waits_parse_or_name_their_field(input in typed()) {
        if let Err(error) = CapacityPolicy::parse(&input) {
            prop_assert_eq!(error.renamed(input_name).field, "capacity_wait");
        }
    }

    #[test]
    fn labels_are_what_github_accepts(input in typed()) {
        match parse_labels(&input) {
            Ok(labels) => {
                prop_assert!(labels.len() + OWN_LABELS <= MAX_LABELS);
                for label in &labels {
                    prop_assert!((1..=256).contains(&label.len()));
                    prop_assert!(label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
                }
            }
            Err(error) => prop_assert_eq!(error.renamed(input_name).field, "extra_gh_labels"),
        }
    }

    #[test]
    fn tags_are_what_lambda_accepts_and_round_trip(input in typed()) {
        match parse_tags(&input) {
            Ok(tags) => {
                for (key, value) in &tags {
                    prop_assert!((2..=55).contains(&key.len()));
                    prop_assert!(!key.starts_with("lambda-gha:"));
                    prop_assert!(value.len() <= 128);
                }
                let written: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                // Values may be empty or hold `=`; written back, the same tags come out.
                if tags.values().all(|v| !v.is_empty()) {
                    prop_assert_eq!(parse_tags(&written.join(",")).unwrap(), tags);
                }
            }
            Err(error) => prop_assert_eq!(error.field, "tags"),
        }
    }

    /// The `mtx` the start job writes is exactly what the stop job reads: every machine, and
    /// the launch's label.
    #[test]
    fn the_mtx_output_feeds_the_stop_job(
        machines in 1usize..8,
        runners in 1usize..6,
        run in 1u64..99_999_999_999,
    ) {
        let naming = RunnerNaming::for_run(Some(&run.to_string()));
        let launched: Vec<Launched> = (0..machines)
            .map(|i| Launched {
                instance_index: i,
                machine: MachineId::new(format!("{i:032x}")),
                candidate: Candidate {
                    instance_type: "gpu_1x_a10".into(),
                    region: "us-east-1".into(),
                },
            })
            .collect();
        let outputs = Outputs::new(&naming, &launched, runners);
        prop_assert_eq!(outputs.mtx.len(), machines * runners);
        for entry in &outputs.mtx {
            prop_assert_eq!(RunnerNaming::label_of_runner(&entry.label), Some(naming.label()));
        }
        let mtx = serde_json::to_string(&outputs.mtx).unwrap();
        let env = Env::from_pairs([("INPUT_MODE", "stop"), ("INPUT_MTX", mtx.as_str())]);
        let Ok(Mode::Stop(stop)) = inputs::parse(&env) else {
            return Err(TestCaseError::fail("the stop job refused the mtx"));
        };
        let ids: Vec<MachineId> = launched.iter().map(|l| l.machine.clone()).collect();
        prop_assert_eq!(stop.machines, ids);
        prop_assert_eq!(stop.labels, vec![naming.label().to_owned()]);
    }

    /// Whatever the `INPUT_*` environment holds, the action's parser answers without
    /// panicking, and a refusal names an input.
    #[test]
    fn any_action_inputs_parse_or_name_the_input(
        values in proptest::collection::btree_map(
            prop::sample::select(vec![
                "mode", "instance_type", "region", "instance_count", "runners_per_instance",
                "capacity_wait", "runner_mode", "scope", "runner_group", "extra_gh_labels",
                "tags", "max_instance_lifetime", "runner_registration_timeout", "max_cost_usd",
                "ssh_pubkey", "mtx", "instance_id", "self_terminate",
            ]),
            typed(),
            0..8,
        )
    ) {
        let env = Env::from_pairs(
            values
                .iter()
                .map(|(k, v)| (format!("INPUT_{}", k.to_ascii_uppercase()), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        );
        if let Err(error) = inputs::parse(&env) {
            prop_assert!(!error.field.to_string().is_empty() && !error.problem.is_empty());
        }
    }
}
