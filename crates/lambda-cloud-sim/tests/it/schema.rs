//! Every answer the simulator gives follows the spec: a scripted session exercises every
//! operation's success and errors, and each body is validated with a JSON Schema validator
//! against the response schema the spec declares for that operation and status.

use std::time::Duration;

use lambda_cloud::OPERATIONS;
use lambda_cloud_sim::{Scenario, Sim};
use serde_json::json;

use crate::support::{Raw, eventually};

async fn instance_status(raw: &mut Raw, id: &str) -> String {
    raw.expect(200, "GET", &format!("/api/v1/instances/{id}"), None)
        .await["data"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_as_the_spec_declares() {
    // Booting lasts 1.5 s of real time, so the restart-while-booting conflict below cannot be
    // overtaken by a slow, loaded machine (the default boot is ~0.1 s real at this scale).
    let scenario = Scenario::default()
        .with_capacity("gpu_8x_h100_sxm5", "us-east-1", &[(0, 0)])
        .with_boot_seconds(3000.0);
    let sim = Sim::builder()
        .scenario(scenario)
        .time_scale(lambda_cloud::TimeScale::of(2000.0))
        .rate_limits(false)
        .api_key("key")
        .start()
        .await
        .unwrap();
    let mut raw = Raw::new(&sim, "key");

    // Catalog.
    raw.expect(200, "GET", "/api/v1/instance-types", None).await;
    raw.expect(200, "GET", "/api/v1/regions", None).await;
    let images = raw.expect(200, "GET", "/api/v1/images", None).await;
    assert!(!images["data"].as_array().unwrap().is_empty());

    // SSH keys, including a generated pair.
    raw.expect(
        200,
        "POST",
        "/api/v1/ssh-keys",
        Some(json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3Nza me"})),
    )
    .await;
    let pair = raw
        .expect(
            200,
            "POST",
            "/api/v1/ssh-keys",
            Some(json!({"name": "generated"})),
        )
        .await;
    assert!(
        pair["data"]["private_key"]
            .as_str()
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let keys = raw.expect(200, "GET", "/api/v1/ssh-keys", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
    let generated_id = pair["data"]["id"].as_str().unwrap().to_owned();

    // Filesystems and firewall.
    let fs = raw
        .expect(
            200,
            "POST",
            "/api/v1/filesystems",
            Some(json!({"name": "datasets", "region": "us-east-1"})),
        )
        .await;
    let fs_id = fs["data"]["id"].as_str().unwrap().to_owned();
    raw.expect(
        400,
        "POST",
        "/api/v1/filesystems",
        Some(json!({"name": "datasets", "region": "us-east-1"})),
    )
    .await;
    raw.expect(200, "GET", "/api/v1/file-systems", None).await;
    let rule = json!({"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0", "description": "SSH"});
    raw.expect(200, "GET", "/api/v1/firewall-rules", None).await;
    raw.expect(
        200,
        "PUT",
        "/api/v1/firewall-rules",
        Some(json!({"data": [rule]})),
    )
    .await;
    raw.expect(400, "PUT", "/api/v1/firewall-rules", Some(json!({"data": [{"protocol": "icmp", "port_range": [1, 2], "source_network": "0.0.0.0/0", "description": ""}]}))).await;
    let ruleset = raw
        .expect(
            200,
            "POST",
            "/api/v1/firewall-rulesets",
            Some(json!({"name": "ssh", "region": "us-east-1", "rules": [rule]})),
        )
        .await;
    let ruleset_id = ruleset["data"]["id"].as_str().unwrap().to_owned();
    raw.expect(200, "GET", "/api/v1/firewall-rulesets", None)
        .await;
    raw.expect(
        200,
        "GET",
        &format!("/api/v1/firewall-rulesets/{ruleset_id}"),
        None,
    )
    .await;
    raw.expect(404, "GET", "/api/v1/firewall-rulesets/nope", None)
        .await;
    raw.expect(
        200,
        "PATCH",
        &format!("/api/v1/firewall-rulesets/{ruleset_id}"),
        Some(json!({"name": "ssh-only"})),
    )
    .await;
    raw.expect(200, "GET", "/api/v1/firewall-rulesets/global", None)
        .await;
    raw.expect(
        200,
        "PATCH",
        "/api/v1/firewall-rulesets/global",
        Some(json!({"rules": [rule]})),
    )
    .await;

    // Instances.
    let launch = json!({
        "region_name": "us-east-1",
        "instance_type_name": "gpu_1x_a10",
        "ssh_key_names": ["laptop"],
        "file_system_names": ["datasets"],
        "name": "runner",
        "tags": [{"key": "lambda-gha:run", "value": "42"}],
        "firewall_rulesets": [{"id": ruleset_id}],
        "image": {"family": "lambda-stack-24-04"},
    });
    let launched = raw
        .expect(
            200,
            "POST",
            "/api/v1/instance-operations/launch",
            Some(launch.clone()),
        )
        .await;
    let id = launched["data"]["instance_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let mut two_keys = launch.clone();
    two_keys["ssh_key_names"] = json!(["laptop", "generated"]);
    let refused = raw
        .expect(
            400,
            "POST",
            "/api/v1/instance-operations/launch",
            Some(two_keys),
        )
        .await;
    assert_eq!(refused["error"]["code"], "global/invalid-parameters");
    let mut no_capacity = launch.clone();
    no_capacity["instance_type_name"] = json!("gpu_8x_h100_sxm5");
    let refused = raw
        .expect(
            400,
            "POST",
            "/api/v1/instance-operations/launch",
            Some(no_capacity),
        )
        .await;
    assert_eq!(
        refused["error"]["code"],
        "instance-operations/launch/insufficient-capacity"
    );
    let mut unknown_type = launch.clone();
    unknown_type["instance_type_name"] = json!("gpu_9x_nothing");
    raw.expect(
        404,
        "POST",
        "/api/v1/instance-operations/launch",
        Some(unknown_type),
    )
    .await;
    let mut wrong_region = launch.clone();
    wrong_region["region_name"] = json!("us-west-1");
    wrong_region["firewall_rulesets"] = json!([]);
    let refused = raw
        .expect(
            400,
            "POST",
            "/api/v1/instance-operations/launch",
            Some(wrong_region),
        )
        .await;
    assert_eq!(
        refused["error"]["code"],
        "instance-operations/launch/file-system-in-wrong-region"
    );

    raw.expect(200, "GET", "/api/v1/instances", None).await;
    raw.expect(200, "GET", "/api/v1/instances?cluster_id=c1", None)
        .await;
    raw.expect(404, "GET", "/api/v1/instances/nope", None).await;
    raw.expect(
        200,
        "POST",
        &format!("/api/v1/instances/{id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    raw.expect(
        404,
        "POST",
        "/api/v1/instances/nope",
        Some(json!({"name": "x"})),
    )
    .await;
    let conflict = raw
        .expect(
            409,
            "POST",
            "/api/v1/instance-operations/restart",
            Some(json!({"instance_ids": [id]})),
        )
        .await;
    assert_eq!(conflict["error"]["code"], "global/conflict");
    let deadline = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    while instance_status(&mut raw, &id).await != "active" {
        assert!(started.elapsed() < deadline, "never became active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    raw.expect(
        200,
        "POST",
        "/api/v1/instance-operations/restart",
        Some(json!({"instance_ids": [id]})),
    )
    .await;
    raw.expect(
        404,
        "POST",
        "/api/v1/instance-operations/restart",
        Some(json!({"instance_ids": ["nope"]})),
    )
    .await;
    let in_use = raw
        .expect(
            400,
            "DELETE",
            &format!("/api/v1/firewall-rulesets/{ruleset_id}"),
            None,
        )
        .await;
    assert_eq!(
        in_use["error"]["code"],
        "firewall-rulesets/firewall-ruleset-in-use"
    );
    let in_use = raw
        .expect(400, "DELETE", &format!("/api/v1/filesystems/{fs_id}"), None)
        .await;
    assert_eq!(in_use["error"]["code"], "filesystems/filesystem-in-use");
    let terminated = raw
        .expect(
            200,
            "POST",
            "/api/v1/instance-operations/terminate",
            Some(json!({"instance_ids": [id]})),
        )
        .await;
    assert_eq!(
        terminated["data"]["terminated_instances"][0]["status"],
        "terminating"
    );
    raw.expect(
        404,
        "POST",
        "/api/v1/instance-operations/terminate",
        Some(json!({"instance_ids": ["nope"]})),
    )
    .await;
    eventually(Duration::from_secs(10), || {
        let sim = &sim;
        async move { sim.ledger().still_billing.is_empty() }
    })
    .await;
    // Terminated instances release their filesystem and ruleset once fully terminated.
    let started = tokio::time::Instant::now();
    loop {
        let (status, _) = raw
            .send(
                "DELETE",
                &format!("/api/v1/firewall-rulesets/{ruleset_id}"),
                None,
                true,
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    raw.expect(200, "DELETE", &format!("/api/v1/filesystems/{fs_id}"), None)
        .await;
    raw.expect(404, "DELETE", &format!("/api/v1/filesystems/{fs_id}"), None)
        .await;
    raw.expect(
        200,
        "DELETE",
        &format!("/api/v1/ssh-keys/{generated_id}"),
        None,
    )
    .await;
    raw.expect(404, "DELETE", "/api/v1/ssh-keys/nope", None)
        .await;

    // Audit events, paged.
    let events = raw
        .expect(
            200,
            "GET",
            "/api/v1/audit-events?resource_type=cloud.instance",
            None,
        )
        .await;
    let actions: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["launched", "terminated"]);
    raw.expect(400, "GET", "/api/v1/audit-events?page_token=bogus", None)
        .await;

    // Fabric partitions.
    let partition = raw
        .expect(
            200,
            "POST",
            "/api/v1/fabric",
            Some(json!({"name": "training-one", "region": "us-east-1"})),
        )
        .await;
    let partition_id = partition["data"]["id"].as_str().unwrap().to_owned();
    raw.expect(
        400,
        "POST",
        "/api/v1/fabric",
        Some(json!({"name": "Bad_Name", "region": "us-east-1"})),
    )
    .await;
    raw.expect(
        200,
        "POST",
        &format!("/api/v1/fabric/{partition_id}"),
        Some(json!({"name": "training-two"})),
    )
    .await;
    raw.expect(
        200,
        "DELETE",
        &format!("/api/v1/fabric/{partition_id}"),
        None,
    )
    .await;
    raw.expect(
        404,
        "DELETE",
        &format!("/api/v1/fabric/{partition_id}"),
        None,
    )
    .await;

    // Tickets and attachments.
    let ticket = raw
        .expect(200, "POST", "/api/v1/tickets", Some(json!({"subject": "GPU missing", "description": "7 of 8", "type": "incident", "severity": "sev_2"})))
        .await;
    let ticket_id = ticket["data"]["id"].as_str().unwrap().to_owned();
    raw.expect(
        400,
        "POST",
        "/api/v1/tickets",
        Some(json!({"subject": "s", "description": "d", "type": "incident"})),
    )
    .await;
    raw.expect(
        200,
        "GET",
        "/api/v1/tickets?status=open&status=pending&order_by=created_at&direction=desc",
        None,
    )
    .await;
    raw.expect(200, "GET", &format!("/api/v1/tickets/{ticket_id}"), None)
        .await;
    raw.expect(404, "GET", "/api/v1/tickets/nope", None).await;
    raw.expect(
        202,
        "PATCH",
        &format!("/api/v1/tickets/{ticket_id}"),
        Some(json!({"comment": {"body": "more"}})),
    )
    .await;
    let base = format!("/api/v1/tickets/{ticket_id}/attachments");
    let upload = raw
        .expect(
            200,
            "POST",
            &base,
            Some(json!({"filename": "logs.txt", "content_type": "text/plain", "size_bytes": 5})),
        )
        .await;
    let attachment = upload["data"]["attachment_id"].as_str().unwrap().to_owned();
    raw.expect(400, "POST", &format!("{base}/{attachment}/complete"), None)
        .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let put = reqwest::Client::new()
        .put(upload["data"]["upload_url"].as_str().unwrap())
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    raw.expect(200, "POST", &format!("{base}/{attachment}/complete"), None)
        .await;
    let listed = raw.expect(200, "GET", &base, None).await;
    assert_eq!(listed["data"]["attachments"].as_array().unwrap().len(), 1);
    let link = raw
        .expect(200, "GET", &format!("{base}/{attachment}/download"), None)
        .await;
    let downloaded = reqwest::get(link["data"]["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(downloaded, "hello");
    raw.expect(200, "DELETE", &format!("{base}/{attachment}"), None)
        .await;
    raw.expect(404, "DELETE", &format!("{base}/{attachment}"), None)
        .await;
    raw.expect(404, "GET", &format!("{base}/{attachment}/download"), None)
        .await;

    // Without a key, every operation refuses with 401 in the spec's shape.
    for op in OPERATIONS {
        let path = op
            .path
            .replace("{id}", "x")
            .replace("{ticket_id}", "x")
            .replace("{attachment_id}", "x");
        let body = matches!(op.method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
        let (status, answer) = raw.send(op.method.as_str(), &path, body, false).await;
        assert_eq!(status, 401, "{} without a key: {answer}", op.id);
        assert_eq!(answer["error"]["code"], "global/invalid-api-key");
    }

    // Every operation was seen succeeding and failing, each time as the spec declares.
    let covered = &raw.checker.covered;
    let missing: Vec<String> = OPERATIONS
        .iter()
        .flat_map(|op| {
            let success = covered
                .iter()
                .any(|(id, s)| *id == op.id && (200..300).contains(s));
            let failure = covered.iter().any(|(id, s)| *id == op.id && *s >= 400);
            [
                (!success).then(|| format!("{} success", op.id)),
                (!failure).then(|| format!("{} error", op.id)),
            ]
        })
        .flatten()
        .collect();
    assert!(missing.is_empty(), "not exercised: {missing:?}");
    let distinct_errors = covered
        .iter()
        .filter(|(_, s)| *s >= 400 && *s != 401)
        .count();
    println!(
        "validated {} (operation, status) pairs: all {} operations' successes, 401s, and {distinct_errors} other error answers",
        covered.len(),
        OPERATIONS.len()
    );
    sim.shutdown().await;
}

#[test]
fn the_checker_rejects_answers_the_spec_does_not_allow() {
    let mut checker = crate::support::SchemaChecker::default();
    let region = json!({"name": "us-east-1", "description": "Virginia, USA"});
    assert!(
        checker
            .errors("GET", "/api/v1/regions", 200, &json!({"data": [region]}))
            .is_empty()
    );
    let missing_field = json!({"data": [{"name": "us-east-1"}]});
    assert!(
        !checker
            .errors("GET", "/api/v1/regions", 200, &missing_field)
            .is_empty()
    );
    let wrong_code =
        json!({"error": {"code": "global/not-found", "message": "m", "suggestion": "s"}});
    assert!(
        !checker
            .errors("GET", "/api/v1/regions", 401, &wrong_code)
            .is_empty(),
        "401 must be invalid-api-key"
    );
    let extra_envelope_field = json!({"data": [], "extra": 1});
    assert!(
        !checker
            .errors("GET", "/api/v1/regions", 200, &extra_envelope_field)
            .is_empty()
    );
}

#[test]
fn the_shipped_example_scenarios_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let scenario =
            lambda_cloud_sim::Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        if path.ends_with("default.toml") {
            // The default itself: every field, and what `Scenario::default()` is.
            assert_eq!(scenario, lambda_cloud_sim::Scenario::default());
            assert_eq!(scenario.instance_types.len(), 7);
            assert_eq!(scenario.regions.len(), 4);
            loaded += 1;
            continue;
        }
        assert!(
            !scenario.capacity.is_empty() || !scenario.faults.is_empty(),
            "{} changes nothing",
            path.display()
        );
        loaded += 1;
    }
    assert!(loaded >= 1, "no scenarios in {}", dir.display());
}
