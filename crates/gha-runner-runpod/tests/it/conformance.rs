//! The core's provider conformance suite, against the RunPod fake.

use async_trait::async_trait;
use gha_runner_core::conformance::{self, CHECKS, ProviderFake};
use gha_runner_core::{Candidate, CloudProvider};
use gha_runner_runpod::{Client, RunPodProvider};
use runpod_fake::{FakeRunPod, Fault, Operation};

pub(crate) struct RunPodFake {
    pub(crate) fake: FakeRunPod,
    pub(crate) provider: RunPodProvider,
}

impl RunPodFake {
    pub(crate) async fn start(scale: f64) -> RunPodFake {
        let fake = FakeRunPod::builder()
            .time_scale(scale)
            .start()
            .await
            .unwrap();
        let client = Client::builder()
            .api_key(fake.api_key().to_owned())
            .base_url(fake.base_url())
            .time_scale(scale)
            .build()
            .unwrap();
        RunPodFake {
            provider: RunPodProvider::new(client),
            fake,
        }
    }
}

#[async_trait]
impl ProviderFake for RunPodFake {
    fn provider(&self) -> &dyn CloudProvider {
        &self.provider
    }

    fn candidates(&self) -> Vec<Candidate> {
        vec![
            Candidate {
                instance_type: "1x NVIDIA GeForce RTX 4090".into(),
                region: "US-TX-3".into(),
            },
            Candidate {
                instance_type: "1x NVIDIA A40".into(),
                region: "US-KS-2".into(),
            },
        ]
    }

    async fn remove_capacity(&self, candidate: &Candidate) {
        let gpu = candidate.instance_type.trim_start_matches("1x ");
        self.fake.set_stock(gpu, &candidate.region, 0);
    }

    async fn restore_capacity(&self, candidate: &Candidate) {
        let gpu = candidate.instance_type.trim_start_matches("1x ");
        self.fake.set_stock(gpu, &candidate.region, 8);
    }

    async fn lose_next_launch_answer(&self) {
        let next = self
            .fake
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST /v2/pods "))
            .count();
        let next = u32::try_from(next).unwrap() + 1;
        self.fake
            .add_fault(Fault::lost_answer(Operation::CreatePod, &[next]));
    }

    fn rate_limited(&self) -> u64 {
        self.fake.rate_limited_requests()
    }

    async fn alive(&self) -> Vec<String> {
        self.fake.pods()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runpod_provider_passes_the_conformance_suite() {
    // 60 requests a simulated minute, at 20× time: the client's pacing is what keeps it under.
    let harness = RunPodFake::start(20.0).await;
    let report = conformance::run(&harness).await.unwrap();
    assert_eq!(report.passed, CHECKS);
    assert_eq!(harness.fake.invalid_requests(), Vec::<String>::new());
    assert!(harness.fake.pods().is_empty());
}
