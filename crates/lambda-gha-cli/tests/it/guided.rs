//! `launch --interactive` and `launch --like` against the simulator: the questions driven
//! through a real pseudo-terminal, offering only what exists, types with capacity first.

use lambda_cloud::FirewallRule;
use lambda_cloud_sim::{Scenario, Sim};

use crate::everyday::{SCALE, command, filters, run, stdout};
use crate::pty::Pty;

/// The cheapest type has no capacity anywhere; the next has it in us-east-1 alone.
async fn sim() -> Sim {
    let mut scenario = Scenario::default()
        .with_ssh_key("laptop")
        .with_ssh_key("ci");
    for region in ["us-east-1", "us-west-1", "us-south-1", "europe-central-1"] {
        scenario = scenario.with_capacity("gpu_1x_a10", region, &[(0, 0)]);
        if region != "us-east-1" {
            scenario = scenario.with_capacity("gpu_1x_a6000", region, &[(0, 0)]);
        }
    }
    scenario = scenario.with_boot_seconds(100_000.0);
    let sim = Sim::builder()
        .scenario(scenario)
        .time_scale(SCALE)
        .api_key("cli-key")
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    client
        .filesystems()
        .create("data", "us-east-1")
        .await
        .unwrap();
    client
        .filesystems()
        .create("west-data", "us-west-1")
        .await
        .unwrap();
    let ruleset = lambda_cloud::FirewallRulesetCreateRequest {
        name: "web".into(),
        region: "us-east-1".into(),
        rules: vec![FirewallRule::tcp_port(22, "0.0.0.0/0", "ssh")],
    };
    client.firewall_rulesets().create(&ruleset).await.unwrap();
    sim
}

/// What the terminal showed, as a person would read it: no carriage returns, no escapes.
fn readable(screen: &str) -> String {
    let mut text = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            // CSI sequences (indicatif's line clearing): ESC [ … final byte.
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for next in chars.by_ref() {
                        if ('@'..='~').contains(&next) {
                            break;
                        }
                    }
                }
            }
            other => text.push(other),
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interactive_launch_offers_what_exists_and_launches_what_was_chosen() {
    let sim = sim().await;
    let mut pty = Pty::spawn(command(
        &sim,
        &["launch", "--interactive", "--tag", "team=ml"],
    ));
    pty.expect("Instance type:");
    let mut questions = String::from("Instance type:");
    // A reply out of range is asked again; then the first (cheapest with capacity).
    questions.push_str(&pty.expect("[1]: "));
    pty.send("99");
    questions.push_str(&pty.expect("[1]: "));
    pty.send("");
    questions.push_str(&pty.expect("[1]: "));
    pty.send("");
    questions.push_str(&pty.expect("[1]: "));
    pty.send("2");
    questions.push_str(&pty.expect("[none]: "));
    pty.send("1");
    questions.push_str(&pty.expect("[none]: "));
    pty.send("1");
    questions.push_str(&pty.expect("Name (optional): "));
    pty.send("notebook");
    questions.push_str(&pty.expect("[y/N]: "));
    pty.send("y");
    let (status, screen) = pty.finish();
    assert!(status.success(), "{}", readable(&screen));
    filters().bind(|| insta::assert_snapshot!("interactive_questions", readable(&questions)));

    let client = sim.client().unwrap();
    let instances = client.instances().list().await.unwrap();
    let [launched] = instances.as_slice() else {
        panic!("one machine, not {instances:?}")
    };
    assert_eq!(launched.instance_type.name.as_str(), "gpu_1x_a6000");
    assert_eq!(launched.region.name.as_str(), "us-east-1");
    assert_eq!(launched.name.as_deref(), Some("notebook"));
    assert_eq!(launched.ssh_key_names, ["ci"]);
    assert_eq!(launched.file_system_names, ["data"]);
    assert_eq!(launched.firewall_rulesets.len(), 1);
    assert_eq!(launched.tag("team"), Some("ml"));

    // --like: the same type, region, key, filesystems, rulesets and own tags; flags win.
    let like = run(
        &sim,
        &[
            "launch",
            "--like",
            "notebook",
            "--name",
            "notebook-2",
            "--json",
        ],
    )
    .await;
    let copy: serde_json::Value = serde_json::from_str(&stdout(&like)).unwrap();
    let copy = client
        .instances()
        .get(copy["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(copy.instance_type.name, launched.instance_type.name);
    assert_eq!(copy.region.name, launched.region.name);
    assert_eq!(copy.ssh_key_names, launched.ssh_key_names);
    assert_eq!(copy.file_system_names, launched.file_system_names);
    assert_eq!(copy.firewall_rulesets, launched.firewall_rulesets);
    assert_eq!(copy.tag("team"), Some("ml"));
    assert_ne!(
        copy.tag(gha_runner_core::tags::MACHINE),
        launched.tag(gha_runner_core::tags::MACHINE),
        "this project's tags are the new machine's own"
    );
    assert_eq!(copy.name.as_deref(), Some("notebook-2"));

    // A key and a filesystem named by id launch by their names; an unknown one is refused.
    let key = client.ssh_keys().list().await.unwrap();
    let laptop = key
        .iter()
        .find(|k| k.name == "laptop")
        .unwrap()
        .id
        .to_string();
    let data = client.filesystems().list().await.unwrap();
    let data = data
        .iter()
        .find(|f| f.name == "data")
        .unwrap()
        .id
        .to_string();
    let by_id = run(
        &sim,
        &[
            "launch",
            "--like",
            "notebook",
            "--ssh-key",
            &laptop,
            "--filesystem",
            &data,
            "--json",
        ],
    )
    .await;
    let by_id: serde_json::Value = serde_json::from_str(&stdout(&by_id)).unwrap();
    let by_id = client
        .instances()
        .get(by_id["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(by_id.ssh_key_names, ["laptop"]);
    assert_eq!(by_id.file_system_names, ["data"]);
    let unknown = run(&sim, &["launch", "--like", "notebook", "--ssh-key", "nope"]).await;
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no SSH key has the id or name \"nope\""),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unconfirmed_launch_launches_nothing_and_no_terminal_is_refused() {
    let sim = sim().await;
    let mut pty = Pty::spawn(command(&sim, &["launch", "-i"]));
    for _ in 0..5 {
        pty.expect("]: ");
        pty.send("");
    }
    pty.expect("Name (optional): ");
    pty.send("");
    pty.expect("Launch it? [y/N]: ");
    pty.send("n");
    let (status, screen) = pty.finish();
    assert!(status.success(), "{}", readable(&screen));
    assert!(readable(&screen).contains("nothing launched"));
    let client = sim.client().unwrap();
    assert!(client.instances().list().await.unwrap().is_empty());

    let piped = run(&sim, &["launch", "--interactive"]).await;
    assert!(!piped.status.success());
    assert!(String::from_utf8_lossy(&piped.stderr).contains("asks questions on a terminal"));
    let both = run(&sim, &["launch", "-i", "--type", "gpu_1x_a10"]).await;
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}
