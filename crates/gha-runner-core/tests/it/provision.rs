//! Provisioning end to end: the Lambda provider against the simulator, GitHub as a stateful
//! fake at its REST surface. Success brings runners online; every failure leaves no machine
//! billing and no runner registered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gha_runner_core::{
    AgentDownload, AgentTimings, BootSettings, CapacityPolicy, GitHub, LambdaProvider, LaunchPlan,
    MachineTemplate, ProvisionRequest, Provisioner, RUN_TAG, RunnerMode, RunnerNaming,
    RunnerPrivileges, RunnerScope, candidates,
};
use lambda_cloud_sim::{FaultSpec, Scenario, Sim};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Default)]
struct Runners {
    list: Vec<(u64, String, bool)>,
    next_id: u64,
    online_on_register: bool,
    jit_requests: usize,
}

/// GitHub's runner endpoints for `octo/gpu`, with state.
#[derive(Clone)]
struct FakeGitHub(Arc<Mutex<Runners>>);

impl FakeGitHub {
    async fn start(online_on_register: bool) -> (MockServer, FakeGitHub) {
        let fake = FakeGitHub(Arc::new(Mutex::new(Runners {
            online_on_register,
            next_id: 100,
            ..Runners::default()
        })));
        let server = MockServer::start().await;
        let base = "/repos/octo/gpu/actions/runners";
        Mock::given(method("POST"))
            .and(path(format!("{base}/generate-jitconfig")))
            .respond_with(Jit(fake.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(base))
            .respond_with(List(fake.clone()))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path_regex(format!("^{base}/[0-9]+$")))
            .respond_with(Delete(fake.clone()))
            .mount(&server)
            .await;
        (server, fake)
    }

    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .list
            .iter()
            .map(|(_, name, _)| name.clone())
            .collect()
    }

    fn jit_requests(&self) -> usize {
        self.0.lock().unwrap().jit_requests
    }
}

fn runner_json(id: u64, name: &str, online: bool) -> Value {
    json!({"id": id, "name": name, "os": "Linux", "status": if online { "online" } else { "offline" }, "busy": false, "labels": []})
}

struct Jit(FakeGitHub);
impl Respond for Jit {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let name = body["name"].as_str().unwrap().to_owned();
        let mut state = self.0.0.lock().unwrap();
        state.jit_requests += 1;
        if state.list.iter().any(|(_, n, _)| *n == name) {
            return ResponseTemplate::new(409).set_body_json(
                json!({"message": "Already exists - A runner with the same name already exists."}),
            );
        }
        state.next_id += 1;
        let (id, online) = (state.next_id, state.online_on_register);
        state.list.push((id, name.clone(), online));
        ResponseTemplate::new(201).set_body_json(json!({"runner": runner_json(id, &name, false), "encoded_jit_config": format!("jit-secret-{id}")}))
    }
}

struct List(FakeGitHub);
impl Respond for List {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let state = self.0.0.lock().unwrap();
        let runners: Vec<Value> = state
            .list
            .iter()
            .map(|(id, name, online)| runner_json(*id, name, *online))
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"total_count": runners.len(), "runners": runners}))
    }
}

struct Delete(FakeGitHub);
impl Respond for Delete {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id: u64 = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut state = self.0.0.lock().unwrap();
        let before = state.list.len();
        state.list.retain(|(i, _, _)| *i != id);
        ResponseTemplate::new(if state.list.len() < before { 204 } else { 404 })
    }
}

struct World {
    sim: Sim,
    provider: LambdaProvider,
    github: GitHub,
    fake: FakeGitHub,
    _server: MockServer,
}

async fn world(scenario: Scenario, online_on_register: bool) -> World {
    let (sim, provider) = crate::sim::lambda_on_sim(scenario).await;
    let (server, fake) = FakeGitHub::start(online_on_register).await;
    let scope = RunnerScope::Repo {
        owner: "octo".into(),
        repo: "gpu".into(),
    };
    let github = GitHub::new(
        &SecretString::from("ghp_test"),
        Some(&server.uri()),
        None,
        scope,
    )
    .unwrap();
    World {
        sim,
        provider,
        github,
        fake,
        _server: server,
    }
}

fn request(types: &str, count: usize, registration_timeout_seconds: u64) -> ProvisionRequest {
    ProvisionRequest {
        plan: LaunchPlan::new(
            candidates(types, "us-east-1").unwrap(),
            count,
            CapacityPolicy::FailFast,
        )
        .unwrap(),
        naming: RunnerNaming::with_label("lambda-77-test").unwrap(),
        runners_per_instance: 1,
        mode: RunnerMode::Jit,
        extra_labels: vec!["cuda".into()],
        machine: MachineTemplate {
            ssh_key: Some("ci".into()),
            ..MachineTemplate::default()
        },
        boot: BootSettings {
            version: "0.1.0".into(),
            agent: AgentDownload {
                url: "https://example.invalid/lambda-gha".into(),
                sha256: "0".repeat(64),
            },
            runner_releases_api: "https://example.invalid/releases/latest".into(),
            runner_download_base: "https://example.invalid/download".into(),
            privileges: RunnerPrivileges::default(),
            user_script: None,
            agent_api_url: None,
            agent_api_key: Some(SecretString::from("agent-key")),
            timings: AgentTimings {
                registration_timeout_seconds,
                ..AgentTimings::default()
            },
        },
        online_poll: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_machines_come_up_with_their_runners_online() {
    let w = world(Scenario::default(), true).await;
    let provisioned = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap();
    assert_eq!(provisioned.outputs.label, "lambda-77-test");
    assert_eq!(provisioned.outputs.mtx.len(), 2);
    assert_eq!(
        provisioned.outputs.instance_id, None,
        "two machines have no single instance id"
    );
    assert_eq!(w.fake.names(), ["lambda-77-test-0-0", "lambda-77-test-1-0"]);
    let tagged =
        gha_runner_core::CloudProvider::list_tagged(&w.provider, RUN_TAG, Some("lambda-77-test"))
            .await
            .unwrap();
    assert_eq!(tagged.len(), 2);
    assert_eq!(
        tagged[0].tags.get("lambda-gha:machine").map(String::as_str),
        Some("lambda-77-test-0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runners_that_never_come_online_leave_nothing_behind() {
    let w = world(Scenario::default(), false).await;
    let failure = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10", 2, 1))
        .await
        .unwrap_err();
    assert!(
        failure
            .reason
            .contains("2 of 2 runner(s) did not come online within 1s"),
        "{failure}"
    );
    assert_eq!(failure.cleanup.terminated.len(), 2);
    assert_eq!(failure.cleanup.runners_deleted.len(), 2);
    assert!(failure.cleanup.is_complete());
    assert!(w.sim.ledger().still_billing.is_empty(), "nothing billing");
    assert!(w.fake.names().is_empty(), "nothing registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capacity_miss_deletes_the_runner_registered_for_it() {
    let scenario = Scenario::default().with_capacity("gpu_1x_a10", "us-east-1", &[(0, 0)]);
    let w = world(scenario, true).await;
    let provisioned = Provisioner::new(&w.provider, &w.github)
        .provision(&request("gpu_1x_a10,gpu_1x_a6000", 1, 30))
        .await
        .unwrap();
    assert_eq!(
        provisioned.launched[0].candidate.instance_type,
        "gpu_1x_a6000"
    );
    assert_eq!(w.fake.jit_requests(), 2, "one registration per attempt");
    assert_eq!(
        w.fake.names(),
        ["lambda-77-test-0-0"],
        "the missed attempt's runner is gone"
    );
    assert!(provisioned.outputs.instance_id.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_second_launch_terminates_the_first_and_deletes_every_runner() {
    let quota = FaultSpec {
        operation: "launchInstance".into(),
        status: Some(400),
        code: "global/quota-exceeded".into(),
        message: "Quota exceeded.".into(),
        on_calls: vec![2],
        probability: None,
        latency_ms: 0,
    };
    let w = world(Scenario::default().with_fault(quota), true).await;
    let provisioner = Provisioner::new(&w.provider, &w.github);
    let failure = provisioner
        .provision(&request("gpu_1x_a10", 2, 30))
        .await
        .unwrap_err();
    assert!(failure.reason.contains("Quota exceeded"), "{failure}");
    assert_eq!(failure.cleanup.terminated.len(), 1);
    assert!(w.sim.ledger().still_billing.is_empty());
    assert!(w.fake.names().is_empty());

    // A second cleanup finds nothing left to do and does no harm.
    let again = provisioner
        .cleanup(
            &RunnerNaming::with_label("lambda-77-test").unwrap(),
            &failure.cleanup.terminated,
        )
        .await;
    assert!(again.is_complete());
    assert!(again.runners_deleted.is_empty());
}
