//! The Lambda provider on a simulator: a 100x clock, a client paced to it, an SSH key `ci`.

use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{Scenario, Sim};

/// Simulated seconds per real second in these tests.
pub(crate) const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(100.0);

pub(crate) async fn lambda_on_sim(scenario: Scenario) -> (Sim, LambdaProvider) {
    let sim = Sim::builder()
        .scenario(scenario.with_ssh_key("ci"))
        .time_scale(SCALE)
        .api_key("k")
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    (sim, LambdaProvider::new(client))
}

/// Lambda refusing launch number `call` with `global/quota-exceeded`.
pub(crate) fn quota_on_launch(call: u32) -> lambda_cloud_sim::FaultSpec {
    lambda_cloud_sim::FaultSpec::error("launchInstance", 400, "global/quota-exceeded")
        .message("Quota exceeded.")
        .on_calls([call])
}
