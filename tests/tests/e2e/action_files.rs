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
fn the_docs_document_every_input_and_output() {
    let action = read_repo_file("action.yml");
    let readme = read_repo_file("docs/action.md");
    for name in keys_under(&action, "inputs", 2)
        .into_iter()
        .chain(keys_under(&action, "outputs", 2))
    {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "docs/action.md's inputs and outputs table lacks `{name}`"
        );
    }
}

#[test]
fn runner_yml_passes_through_every_output_of_the_action() {
    let action = read_repo_file("action.yml");
    let runner = read_repo_file(".github/workflows/runner.yml");
    let offered = keys_under(&runner, "outputs", 6);
    for name in keys_under(&action, "outputs", 2) {
        assert!(offered.contains(&name), "runner.yml lacks output {name}");
        assert!(
            runner.contains(&format!("value: ${{{{ jobs.launch.outputs.{name} }}}}")),
            "runner.yml does not pass output {name} on"
        );
        assert!(
            runner.contains(&format!("{name}: ${{{{ steps.start.outputs.{name} }}}}")),
            "runner.yml's launch job does not take output {name}"
        );
    }
}

/// The `run:` script of every step of runner.yml named `name`, dedented.
fn step_scripts(yaml: &str, name: &str) -> Vec<String> {
    let mut scripts = Vec::new();
    let mut lines = yaml.lines();
    while let Some(line) = lines.next() {
        if line.trim() != format!("- name: {name}") {
            continue;
        }
        for line in lines.by_ref() {
            if line.trim() == "run: |" {
                break;
            }
        }
        let indent = 10;
        let mut script = String::new();
        for line in lines.by_ref() {
            if !line.trim().is_empty() && line.len() - line.trim_start().len() < indent {
                break;
            }
            script.push_str(line.get(indent..).unwrap_or(""));
            script.push('\n');
        }
        scripts.push(script);
    }
    scripts
}

/// An unsigned JWT with these claims (the script reads claims; GitHub signs its tokens).
fn jwt(claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let part = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.signature",
        part(&serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        part(claims)
    )
}

/// Runs runner.yml's "Resolve the lambda-gha commit to run" script with `env`; its exit
/// status, what it printed and its `GITHUB_OUTPUT`.
fn resolve(script: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "resolve-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("github-output");
    let run = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("GITHUB_OUTPUT", &output)
        .env("GH_TOKEN", "workflow-token")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let written = std::fs::read_to_string(&output).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (
        run.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        ),
        written,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_yml_runs_the_commit_and_repository_it_was_called_at() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let runner = read_repo_file(".github/workflows/runner.yml");
    let scripts = step_scripts(&runner, "Resolve the lambda-gha commit to run");
    assert_eq!(scripts.len(), 2, "the launch and stop jobs both resolve");
    assert_eq!(scripts[0], scripts[1], "one script, in both jobs");
    let script = &scripts[0];

    // GitHub's OIDC token for a job of this workflow, called from another repository as
    // `uses: octo-fork/lambda-gha/.github/workflows/runner.yml@v0.1.0` (docs.github.com,
    // "OpenID Connect reference": `job_workflow_ref` and `job_workflow_sha` name the called
    // workflow; the request URL already carries a query, so `&audience=` is appended).
    let sha = "1111111111111111111111111111111111111111";
    let server = MockServer::start().await;
    let token = jwt(&serde_json::json!({
        "repository": "octo/app",
        "job_workflow_ref": "octo-fork/lambda-gha/.github/workflows/runner.yml@refs/tags/v0.1.0",
        "job_workflow_sha": sha,
    }));
    Mock::given(method("GET"))
        .and(path("/oidc"))
        .and(query_param("audience", "lambda-gha"))
        .and(header("authorization", "Bearer oidc-request-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": token})))
        .mount(&server)
        .await;
    // The commits API resolves a named ref (`Accept: application/vnd.github.sha`).
    let tagged = "2222222222222222222222222222222222222222";
    Mock::given(method("GET"))
        .and(path("/repos/lambda-gha/lambda-gha/commits/v0.2.0"))
        .and(header("accept", "application/vnd.github.sha"))
        .respond_with(ResponseTemplate::new(200).set_body_string(tagged))
        .mount(&server)
        .await;
    let oidc_url = format!("{}/oidc?api-version=2.0", server.uri());
    let oidc = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", oidc_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-request-token"),
        ("API_URL", &server.uri()),
    ];

    // Nothing set: the repository and commit the caller named.
    let (ok, stdout, written) = resolve(script, &oidc);
    assert!(ok, "{stdout}");
    assert_eq!(
        written,
        format!("repository=octo-fork/lambda-gha\nsha={sha}\n")
    );
    assert!(!stdout.contains(&token), "the token is never printed");

    // An explicit commit wins over the one called.
    let explicit = "3333333333333333333333333333333333333333";
    let mut env = oidc.to_vec();
    env.push(("ACTION_REF", explicit));
    let (ok, _, written) = resolve(script, &env);
    assert!(ok);
    assert!(written.contains(&format!("sha={explicit}")), "{written}");

    // Without the OIDC token (no `id-token: write`): a named ref is resolved in the
    // default repository; nothing named is refused with the fix.
    let (ok, stdout, written) = resolve(
        script,
        &[("API_URL", &server.uri()), ("ACTION_REF", "v0.2.0")],
    );
    assert!(ok, "{stdout}");
    assert_eq!(
        written,
        format!("repository=lambda-gha/lambda-gha\nsha={tagged}\n")
    );
    let (ok, stdout, written) = resolve(script, &[("API_URL", &server.uri())]);
    assert!(!ok);
    assert!(written.is_empty());
    assert!(
        stdout.contains("::error title=action_ref::") && stdout.contains("id-token: write"),
        "{stdout}"
    );
    // A ref that does not resolve names itself and the repository.
    let (ok, stdout, _) = resolve(
        script,
        &[("API_URL", &server.uri()), ("ACTION_REF", "no-such-tag")],
    );
    assert!(!ok);
    assert!(
        stdout.contains("cannot resolve no-such-tag in lambda-gha/lambda-gha"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reaper_yml_runs_the_released_binary_and_refuses_a_tampered_one() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let reaper = read_repo_file(".github/workflows/reaper.yml");
    assert!(
        !reaper.contains("cargo") && !reaper.contains("actions/checkout"),
        "the reaper builds nothing and needs no checkout of lambda-gha"
    );
    let scripts = step_scripts(&reaper, "Get lambda-gha");
    assert_eq!(scripts.len(), 1);
    let version = reaper
        .lines()
        .find_map(|l| l.trim().strip_prefix("LAMBDA_GHA_VERSION: "))
        .unwrap();

    let server = MockServer::start().await;
    let base = format!("/lambda-gha/lambda-gha/releases/download/{version}");
    let asset = "lambda-gha-x86_64-unknown-linux-musl";
    let binary = b"#!/bin/sh\necho reaped\n".to_vec();
    let temp = std::env::temp_dir().join(format!("reaper-yml-{}", std::process::id()));
    std::fs::create_dir_all(&temp).unwrap();
    std::fs::write(temp.join("expected"), &binary).unwrap();
    let digest = std::process::Command::new("sha256sum")
        .arg(temp.join("expected"))
        .output()
        .unwrap();
    let digest = String::from_utf8_lossy(&digest.stdout)[..64].to_owned();
    let serve = |name: String, body: Vec<u8>| {
        Mock::given(method("GET"))
            .and(path(name))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
    };
    serve(format!("{base}/{asset}"), binary.clone())
        .mount(&server)
        .await;
    let sums = server
        .register_as_scoped(serve(
            format!("{base}/SHA256SUMS"),
            format!("{digest}  {asset}\n").into_bytes(),
        ))
        .await;
    let env = [
        ("LAMBDA_GHA_VERSION", version),
        ("LAMBDA_GHA_REPOSITORY", "lambda-gha/lambda-gha"),
        ("LAMBDA_GHA_DOWNLOAD_BASE", &server.uri()),
        ("RUNNER_ARCH", "X64"),
        ("RUNNER_TEMP", temp.to_str().unwrap()),
    ];
    let (ok, printed, written) = resolve(&scripts[0], &env);
    assert!(ok, "{printed}");
    let path = written.trim().strip_prefix("path=").unwrap();
    let run = std::process::Command::new(path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "reaped\n");
    drop(sums);

    // A binary that is not the one the release lists is refused.
    serve(
        format!("{base}/SHA256SUMS"),
        format!("{}  {asset}\n", "0".repeat(64)).into_bytes(),
    )
    .mount(&server)
    .await;
    let (ok, printed, written) = resolve(&scripts[0], &env);
    assert!(!ok);
    assert!(written.is_empty());
    assert!(
        printed.contains("does not match the release's SHA256SUMS"),
        "{printed}"
    );
    let _ = std::fs::remove_dir_all(&temp);
}
