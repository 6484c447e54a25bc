//! `firewall` against the simulator: rulesets made, shown, edited, renamed and deleted by
//! name, the global ruleset edited, a shared name refused.

use lambda_cloud_sim::{Scenario, Sim};

use crate::everyday::{filters, run, stdout};

async fn sim() -> Sim {
    Sim::builder()
        .scenario(Scenario::default().with_ssh_key("me"))
        .time_scale(crate::everyday::SCALE)
        .api_key("cli-key")
        .start()
        .await
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn rulesets_are_made_edited_and_deleted_by_name() {
    let sim = sim().await;
    let created = run(
        &sim,
        &[
            "firewall",
            "create",
            "web",
            "--region",
            "us-east-1",
            "--rule",
            "tcp:22:0.0.0.0/0:ssh",
            "--rule",
            "tcp:8000-8100:203.0.113.7/32:office",
        ],
    )
    .await;
    let table = stdout(&created);
    assert!(!stderr(&created).contains("no rule admits SSH"));
    filters().bind(|| insta::assert_snapshot!("firewall_rules", table));

    let edited = run(
        &sim,
        &[
            "firewall",
            "update",
            "web",
            "--add-rule",
            "icmp::0.0.0.0/0",
            "--remove-rule",
            "tcp:22:0.0.0.0/0",
            "--name",
            "web-2",
        ],
    )
    .await;
    let shown = stdout(&edited);
    assert!(
        stderr(&edited).contains("no rule admits SSH (tcp:22)"),
        "{}",
        stderr(&edited)
    );
    assert!(
        shown.contains("icmp:") && !shown.contains("tcp:22:"),
        "{shown}"
    );
    let missing = run(
        &sim,
        &[
            "firewall",
            "update",
            "web-2",
            "--remove-rule",
            "udp:53:0.0.0.0/0",
        ],
    )
    .await;
    assert!(
        stderr(&missing).contains("no rule admits udp:53:0.0.0.0/0"),
        "{}",
        stderr(&missing)
    );

    // Two rulesets of one name: refused, naming both.
    for region in ["us-west-1", "us-east-1"] {
        stdout(
            &run(
                &sim,
                &[
                    "firewall",
                    "create",
                    "lab",
                    "--region",
                    region,
                    "--rule",
                    "tcp:22:0.0.0.0/0",
                ],
            )
            .await,
        );
    }
    let listed = stdout(&run(&sim, &["firewall", "list"]).await);
    filters().bind(|| insta::assert_snapshot!("firewall_list", listed));
    let ambiguous = run(&sim, &["firewall", "show", "lab"]).await;
    assert!(!ambiguous.status.success());
    assert!(
        stderr(&ambiguous).contains("2 firewall rulesets are named \"lab\": name one by its id")
            && stderr(&ambiguous).contains("(in us-west-1)"),
        "{}",
        stderr(&ambiguous)
    );

    // The global ruleset: shown, edited; never deleted.
    let global = run(
        &sim,
        &[
            "firewall",
            "update",
            "global",
            "--add-rule",
            "tcp:443:0.0.0.0/0:https",
        ],
    )
    .await;
    assert!(stdout(&global).contains("tcp:443:0.0.0.0/0:https"));
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &run(&sim, &["firewall", "show", "global", "--json"]).await,
    ))
    .unwrap();
    assert_eq!(json["id"], "global");
    assert_eq!(json["rules"].as_array().unwrap().len(), 2);
    assert!(stderr(&run(&sim, &["firewall", "rm", "global"]).await).contains("cannot be deleted"));

    let removed = run(&sim, &["firewall", "rm", "web-2"]).await;
    assert!(
        stderr(&removed).contains("deleted firewall ruleset web-2"),
        "{}",
        stderr(&removed)
    );
    let client = sim.client().unwrap();
    let names: Vec<String> = client
        .firewall_rulesets()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["lab", "lab"]);
    let bad = run(
        &sim,
        &[
            "firewall",
            "create",
            "x",
            "--region",
            "us-east-1",
            "--rule",
            "tcp:22",
        ],
    )
    .await;
    assert!(
        stderr(&bad).contains("PROTOCOL:PORTS:SOURCE"),
        "{}",
        stderr(&bad)
    );
}
