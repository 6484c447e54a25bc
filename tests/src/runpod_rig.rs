//! One run of the real binaries against the RunPod fake and a fake GitHub: the RunPod
//! counterpart of [`crate::rig::Rig`], for the action with `provider: runpod`. Pods' start
//! commands run as real root in containers of the machines' root filesystem.

use std::path::{Path, PathBuf};

use runpod_fake::{FakeRunPod, Fault, Scenario};

use crate::rig::{Left, SCALE};
use crate::{FAKE_GITHUB_URL_FILE, FakeGitHub, FakeInternet};

/// The RunPod fake and a fake GitHub for one run, with its own secrets and directory.
pub struct RunPodRig {
    /// The fake RunPod.
    pub fake: FakeRunPod,
    /// The fake GitHub.
    pub github: FakeGitHub,
    /// Where the run's files go (pods' containers under `machines/`).
    pub dir: PathBuf,
    /// The RunPod API key (a canary).
    pub runpod_key: String,
    /// The GitHub token (a canary).
    pub pat: String,
    /// `GITHUB_RUN_ID`.
    pub run_id: String,
}

impl RunPodRig {
    /// Starts the fake (time ×[`SCALE`], `scenario`, `faults`, containers as root under
    /// `dir/machines`) and a fake GitHub that fake runners report to, with fresh canaries.
    pub async fn start(
        dir: &Path,
        run_id: &str,
        scenario: Scenario,
        faults: Vec<Fault>,
    ) -> RunPodRig {
        std::fs::create_dir_all(dir.join("machines")).expect("create the run's directory");
        let runpod_key = format!("RUNPODCANARY{:016x}", fastrand::u64(..));
        let mut builder = FakeRunPod::builder()
            .scenario(scenario)
            .api_key(runpod_key.clone())
            .time_scale(SCALE.factor())
            .run_containers_as_root(dir.join("machines"), crate::machine_rootfs());
        for fault in faults {
            builder = builder.fault(fault);
        }
        let fake = builder.start().await.expect("start the RunPod fake");
        let github = FakeGitHub::start(false).await;
        let shared = fake.shared_dir().expect("containers run");
        std::fs::write(shared.join(FAKE_GITHUB_URL_FILE), github.uri())
            .expect("tell fake runners where GitHub is");
        let pat = format!("PATCANARY{:016x}", fastrand::u64(..));
        github.require_token(&pat, crate::TokenPermission::Write);
        RunPodRig {
            fake,
            github,
            dir: dir.to_owned(),
            runpod_key,
            pat,
            run_id: run_id.to_owned(),
        }
    }

    /// The secrets of this run: the keys (the account's, each pod's own), the fake GitHub's
    /// canary, each JIT configuration it issued.
    pub fn canaries(&self) -> Vec<(&'static str, String)> {
        let mut canaries = vec![("the RunPod API key", self.runpod_key.clone())];
        canaries.extend(
            self.fake
                .pod_keys()
                .into_iter()
                .map(|key| ("a pod's own key", key)),
        );
        canaries.extend(crate::rig::github_canaries(&self.github, &self.pat));
        canaries
    }

    /// What is left: pods (any status: an exited pod still exists and bills its disk) and
    /// runner registrations.
    pub fn left(&self) -> Left {
        Left {
            machines: self.fake.pods().len(),
            runners: self.github.runners().len(),
            keys: 0,
        }
    }

    /// The CLI's environment: the key, the fake, its clock.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![
            ("RUNPOD_API_KEY".to_owned(), self.runpod_key.clone()),
            ("RUNPOD_API_URL".to_owned(), self.fake.base_url().to_owned()),
            ("LAMBDA_API_TIME_SCALE".to_owned(), SCALE.to_string()),
        ]
    }

    /// The action's environment for `inputs` with `provider: runpod`, as a workflow step gets
    /// it; the fake GitHub serves `internet`'s runner from then on.
    pub fn action_env(
        &self,
        internet: &FakeInternet,
        inputs: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("RUNPOD_API_KEY", self.runpod_key.clone()),
            ("RUNPOD_API_URL", self.fake.base_url().to_owned()),
            ("LAMBDA_API_TIME_SCALE", SCALE.to_string()),
            ("GH_PAT", self.pat.clone()),
            ("GITHUB_API_URL", self.github.uri()),
            ("GITHUB_REPOSITORY", "octo/gpu".to_owned()),
            ("GITHUB_RUN_ID", self.run_id.clone()),
            ("INPUT_PROVIDER", "runpod".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(crate::rig::release_env(&self.dir, &self.github, internet));
        for (name, value) in inputs {
            env.push((
                format!("INPUT_{}", name.to_ascii_uppercase()),
                (*value).to_owned(),
            ));
        }
        env
    }
}
