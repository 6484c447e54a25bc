//! The core's provider conformance suite, against the Lambda simulator.

use async_trait::async_trait;
use gha_runner_core::conformance::{self, CHECKS, ProviderFake};
use gha_runner_core::{Candidate, CloudProvider, MachineSpec};
use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{FaultSpec, Scenario, Sim};

struct LambdaSim {
    sim: Sim,
    provider: LambdaProvider,
}

#[async_trait]
impl ProviderFake for LambdaSim {
    fn provider(&self) -> &dyn CloudProvider {
        &self.provider
    }

    fn candidates(&self) -> Vec<Candidate> {
        vec![
            Candidate {
                instance_type: "gpu_1x_a10".into(),
                region: "us-east-1".into(),
            },
            Candidate {
                instance_type: "gpu_1x_a100_sxm4".into(),
                region: "us-east-1".into(),
            },
        ]
    }

    async fn remove_capacity(&self, candidate: &Candidate) {
        self.sim
            .set_capacity(&candidate.instance_type, &candidate.region, &[(0, 0)]);
    }

    async fn restore_capacity(&self, candidate: &Candidate) {
        self.sim
            .set_capacity(&candidate.instance_type, &candidate.region, &[(0, 10)]);
    }

    async fn lose_next_launch_answer(&self) {
        let next = self.sim.calls("launchInstance") + 1;
        self.sim
            .add_fault(FaultSpec::dropped("launchInstance").on_calls([next]));
    }

    fn complete(&self, spec: &mut MachineSpec) {
        // The launch key the front ends make for every launch (Lambda takes exactly one).
        spec.ssh_key = Some("ci".into());
    }

    fn rate_limited(&self) -> u64 {
        self.sim.rate_limited_requests()
    }

    async fn alive(&self) -> Vec<String> {
        let instances = self.sim.client().unwrap().instances().list().await.unwrap();
        instances
            .into_iter()
            .filter(|i| {
                !matches!(
                    i.status,
                    lambda_cloud::InstanceStatus::Terminating
                        | lambda_cloud::InstanceStatus::Terminated
                )
            })
            .map(|i| i.id.to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lambda_provider_passes_the_conformance_suite() {
    let (sim, provider) = crate::sim::lambda_on_sim(Scenario::default()).await;
    let harness = LambdaSim { sim, provider };
    let report = conformance::run(&harness).await.unwrap();
    assert_eq!(report.passed, CHECKS);
}
