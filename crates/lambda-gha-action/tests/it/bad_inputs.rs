//! Inputs that cannot work: each gets an error annotation that names the fix, exit 1, and
//! not one machine launched.

use std::fmt::Write as _;

use lambda_cloud_sim::Scenario;

use crate::support::Fixture;

struct Case {
    what: &'static str,
    inputs: &'static [(&'static str, &'static str)],
    /// Environment changes: a value, or `None` to remove the variable.
    env: &'static [(&'static str, Option<&'static str>)],
    scenario: fn() -> Scenario,
    title: &'static str,
    message: &'static str,
}

const TYPE: (&str, &str) = ("instance_type", "gpu_1x_a10");

fn cases() -> Vec<Case> {
    let default = Scenario::default;
    vec![
        Case {
            what: "unknown instance type",
            inputs: &[("instance_type", "gpu_1x_a01")],
            env: &[],
            scenario: default,
            title: "Invalid input `instance_type`",
            message: "did you mean `gpu_1x_a10`?",
        },
        Case {
            what: "unknown region",
            inputs: &[TYPE, ("region", "us-east-9")],
            env: &[],
            scenario: default,
            title: "Invalid input `region`",
            message: "\"us-east-9\" is not offered",
        },
        Case {
            what: "instance_count: 0",
            inputs: &[TYPE, ("instance_count", "0")],
            env: &[],
            scenario: default,
            title: "Invalid input `instance_count`",
            message: "must be a whole number from 1 to 100",
        },
        Case {
            what: "malformed duration",
            inputs: &[TYPE, ("max_instance_lifetime", "2 hours")],
            env: &[],
            scenario: default,
            title: "Invalid input `max_instance_lifetime`",
            message: "write e.g. `90s`, `10m`, `1h30m`",
        },
        Case {
            what: "missing Lambda key",
            inputs: &[TYPE],
            env: &[("LAMBDA_API_KEY", None)],
            scenario: default,
            title: "Missing LAMBDA_API_KEY",
            message: "secrets.LAMBDA_API_KEY",
        },
        Case {
            what: "invalid Lambda key",
            inputs: &[TYPE],
            env: &[("LAMBDA_API_KEY", Some("secret_wrong_key"))],
            scenario: default,
            title: "Lambda Cloud",
            message: "check the API key",
        },
        Case {
            what: "missing GitHub token",
            inputs: &[TYPE],
            env: &[("GH_PAT", None)],
            scenario: default,
            title: "Missing GitHub token",
            message: "GH_SA_TOKEN",
        },
        Case {
            what: "quota exceeded",
            inputs: &[TYPE],
            env: &[],
            scenario: || Scenario {
                max_instances: Some(0),
                ..Scenario::default()
            },
            title: "Launch failed",
            message: "quota",
        },
        Case {
            what: "worst case above max_cost_usd",
            inputs: &[TYPE, ("instance_count", "3"), ("max_cost_usd", "1")],
            env: &[],
            scenario: default,
            title: "Invalid input `max_cost_usd`",
            message: "raise the cap",
        },
        Case {
            what: "runners that cannot share the GPUs evenly",
            inputs: &[
                ("instance_type", "gpu_8x_h100_sxm5"),
                ("runners_per_instance", "3"),
            ],
            env: &[],
            scenario: default,
            title: "Invalid input `runners_per_instance`",
            message: "set the runners per machine to one of 1, 2, 4, 8",
        },
        Case {
            what: "more GPUs per runner than a candidate has",
            inputs: &[
                ("instance_type", "gpu_8x_h100_sxm5,gpu_1x_a10"),
                ("runners_per_instance", "2"),
                ("gpus_per_runner", "4"),
            ],
            env: &[],
            scenario: default,
            title: "Invalid input `gpus_per_runner`",
            message: "gpu_1x_a10 has 1 GPU(s), fewer than 2 runner(s) × 4",
        },
        Case {
            what: "gpus_per_runner not a number",
            inputs: &[TYPE, ("gpus_per_runner", "half")],
            env: &[],
            scenario: default,
            title: "Invalid input `gpus_per_runner`",
            message: "or `all`",
        },
        Case {
            what: "gpu_check with the gate turned off",
            inputs: &[
                TYPE,
                ("gpu_health_gate", "false"),
                ("gpu_check", "nvidia-smi"),
            ],
            env: &[],
            scenario: default,
            title: "Invalid input `gpu_check`",
            message: "drop one of the two",
        },
        Case {
            what: "runner_version that is no version",
            inputs: &[TYPE, ("runner_version", "2.330")],
            env: &[],
            scenario: default,
            title: "Invalid input `runner_version`",
            message: "use one like `2.330.0`",
        },
        Case {
            what: "runner_group without org scope",
            inputs: &[TYPE, ("runner_group", "3")],
            env: &[],
            scenario: default,
            title: "Invalid input `runner_group`",
            message: "set `scope: org`",
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_name_the_fix_and_launch_nothing() {
    let mut table = String::from("| input | annotation |\n|---|---|\n");
    for case in cases() {
        let w = Fixture::new((case.scenario)()).await;
        let mut env = w.env(case.inputs);
        for (name, value) in case.env {
            match value {
                Some(value) => env.insert((*name).to_owned(), (*value).to_owned()),
                None => env.remove(*name),
            };
        }
        let run = w.run(env).await;
        assert!(!run.success, "{}: succeeded", case.what);
        let (title, message) = run
            .error()
            .unwrap_or_else(|| panic!("{}: no error annotation in\n{}", case.what, run.stdout));
        assert_eq!(title, case.title, "{}: {message}", case.what);
        assert!(
            message
                .to_lowercase()
                .contains(&case.message.to_lowercase()),
            "{}: {message:?} does not say {:?}",
            case.what,
            case.message
        );
        assert_eq!(w.launches(), 0, "{}: something was launched", case.what);
        assert!(
            w.github.names().is_empty(),
            "{}: a runner is left",
            case.what
        );
        w.assert_no_secrets(&run);
        let _ = writeln!(
            table,
            "| {} | **{title}**: {} |",
            case.what,
            message.replace('|', "\\|")
        );
    }
    println!("{table}");
    lambda_gha_tests::check_troubleshooting_section("bad-inputs-action", &table);
}
