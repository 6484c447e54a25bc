//! The script a Lambda machine ends itself with when no agent can (the watchdog at the
//! machine's maximum lifetime, a failed boot): reviewed as a snapshot, checked by `bash -n`.

use gha_runner_core::CloudProvider;
use gha_runner_lambda::LambdaProvider;

fn script() -> String {
    let client = lambda_cloud::Client::builder()
        .api_key("k")
        .build()
        .unwrap();
    LambdaProvider::new(client)
        .self_terminate_script()
        .unwrap()
        .to_owned()
}

#[test]
fn the_self_terminate_script_is_what_was_reviewed_and_parses() {
    let script = script();
    insta::assert_snapshot!(script);
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(checked.success(), "bash -n refused the script");
}
