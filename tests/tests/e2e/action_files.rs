//! `action.yml`, `runner.yml`, the action's input parser and the README's input table name the
//! same inputs, so none can drift from the others.

use std::collections::BTreeSet;

use lambda_gha_tests::read_repo_file;

/// The names under a top-level YAML key (`inputs:`), two-space indented.
fn keys_under(yaml: &str, section: &str, indent: usize) -> BTreeSet<String> {
    let mut inside = false;
    let mut keys = BTreeSet::new();
    for line in yaml.lines() {
        if line.trim_start() == format!("{section}:")
            && line.len() - line.trim_start().len() == indent - 2
        {
            inside = true;
            continue;
        }
        if !inside || line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let depth = line.len() - line.trim_start().len();
        if depth < indent {
            break;
        }
        if depth == indent
            && let Some(key) = line.trim().strip_suffix(':')
        {
            keys.insert(key.to_owned());
        }
    }
    keys
}

/// The inputs the binary reads: every `"name"` passed to the input readers of inputs.rs.
fn parsed_inputs() -> BTreeSet<String> {
    let source = read_repo_file("crates/lambda-gha-action/src/inputs.rs");
    let mut names = BTreeSet::new();
    for reader in [
        "input(\"",
        "flag(env, \"",
        "number(env, \"",
        "seconds(\n            env,\n            \"",
        "seconds(env, \"",
        "list(env, \"",
    ] {
        for piece in source.split(reader).skip(1) {
            if let Some(name) = piece.split('"').next()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn action_yml_declares_and_passes_every_input_the_binary_reads() {
    let action = read_repo_file("action.yml");
    let declared = keys_under(&action, "inputs", 2);
    let parsed = parsed_inputs();
    assert_eq!(declared, parsed, "action.yml inputs vs inputs.rs");
    for name in &declared {
        let env = format!(
            "INPUT_{}: ${{{{ inputs.{name} }}}}",
            name.to_ascii_uppercase()
        );
        assert!(
            action.contains(&env),
            "action.yml does not pass {name} as `{env}`"
        );
    }
    let outputs = keys_under(&action, "outputs", 2);
    assert_eq!(
        outputs,
        [
            "instance-id",
            "instance-type",
            "label",
            "mtx",
            "price-cents-per-hour",
            "region"
        ]
        .map(String::from)
        .into(),
    );
}

#[test]
fn runner_yml_offers_every_start_input_with_a_variable_fallback() {
    let action = read_repo_file("action.yml");
    let runner = read_repo_file(".github/workflows/runner.yml");
    let stop_only = ["mode", "instance_id", "mtx", "label", "action_ref"];
    let inputs = keys_under(&runner, "inputs", 6);
    for name in keys_under(&action, "inputs", 2) {
        if stop_only.contains(&name.as_str()) {
            continue;
        }
        assert!(inputs.contains(&name), "runner.yml lacks input {name}");
        let passed = format!(
            "{name}: ${{{{ inputs.{name} || vars.LAMBDA_{} }}}}",
            name.to_ascii_uppercase()
        );
        assert!(
            runner.contains(&passed),
            "runner.yml does not pass `{passed}`"
        );
    }
    assert!(runner.contains("action_ref: ${{ steps.ref.outputs.sha }}"));
}

#[test]
fn the_readme_documents_every_input_and_output() {
    let action = read_repo_file("action.yml");
    let readme = read_repo_file("README.md");
    for name in keys_under(&action, "inputs", 2)
        .into_iter()
        .chain(keys_under(&action, "outputs", 2))
    {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README's table lacks `{name}`"
        );
    }
}
