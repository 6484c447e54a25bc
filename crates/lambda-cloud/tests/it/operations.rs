//! One test per operation of the spec: the client sends the spec's method and path with the
//! bearer key, a body that follows the request schema, and decodes the spec's example answer.

use lambda_cloud::*;
use serde_json::json;

use crate::support::Harness;

const INSTANCE: &str = "0920582c7ff041399e34823a0be62549";
const TICKET: &str = "0920582c7ff041399e34823a0be62549";
const ATTACHMENT: &str = "a1b2c3";

fn pairs(query: &[(String, String)]) -> Vec<(&str, &str)> {
    query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// --- instances -------------------------------------------------------------------------------

#[tokio::test]
async fn list_instances() {
    let h = Harness::new("listInstances", "/api/v1/instances").await;
    let instances = h.client.instances().list().await.unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].id, INSTANCE);
    assert_eq!(instances[0].status, InstanceStatus::Booting);
    // The spec gives no example region code; an unknown one must still decode.
    assert_eq!(
        instances[0].region.name,
        RegionName::Unknown("example".into())
    );
    assert_eq!(serde_json::to_value(&instances).unwrap(), h.answer());
    h.request().await;
}

#[tokio::test]
async fn list_instances_in_a_cluster() {
    let h = Harness::new("listInstances", "/api/v1/instances").await;
    h.client.instances().list_in_cluster("c1").await.unwrap();
    let (_, query) = h.request().await;
    assert_eq!(pairs(&query), [("cluster_id", "c1")]);
}

#[tokio::test]
async fn get_instance() {
    let h = Harness::new("getInstance", &format!("/api/v1/instances/{INSTANCE}")).await;
    let instance = h.client.instances().get(INSTANCE).await.unwrap();
    assert_eq!(instance.instance_type.specs.gpus, 8);
    assert_eq!(instance.tag("key1"), Some("value1"));
    assert_eq!(instance.tag("missing"), None);
    assert_eq!(serde_json::to_value(&instance).unwrap(), h.answer());
    h.request().await;
}

#[tokio::test]
async fn post_instance() {
    let h = Harness::new("postInstance", &format!("/api/v1/instances/{INSTANCE}")).await;
    h.client
        .instances()
        .rename(INSTANCE, "trainer")
        .await
        .unwrap();
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"name": "trainer"}));
}

#[tokio::test]
async fn launch_instance() {
    let h = Harness::new("launchInstance", "/api/v1/instance-operations/launch").await;
    let ids = h
        .client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "my-key")
        .name("ci-runner")
        .hostname("runner-1")
        .image(ImageSpecification::family("lambda-stack-24-04"))
        .user_data("#cloud-config\n")
        .tag("lambda-gha:run", "42")
        .file_system("datasets")
        .file_system_mount("fs1", "/data/datasets")
        .firewall_ruleset("rs1")
        .send()
        .await
        .unwrap();
    assert_eq!(ids, [InstanceId::from(INSTANCE)]);
    let (body, _) = h.request().await;
    assert_eq!(
        body,
        json!({
            "region_name": "us-east-1",
            "instance_type_name": "gpu_1x_a10",
            "ssh_key_names": ["my-key"],
            "file_system_names": ["datasets"],
            "file_system_mounts": [{"mount_point": "/data/datasets", "file_system_id": "fs1"}],
            "hostname": "runner-1",
            "name": "ci-runner",
            "image": {"family": "lambda-stack-24-04"},
            "user_data": "#cloud-config\n",
            "tags": [{"key": "lambda-gha:run", "value": "42"}],
            "firewall_rulesets": [{"id": "rs1"}],
        })
    );
}

#[tokio::test]
async fn restart_instance() {
    let h = Harness::new("restartInstance", "/api/v1/instance-operations/restart").await;
    let restarted = h.client.instances().restart([INSTANCE]).await.unwrap();
    assert_eq!(restarted[0].status, InstanceStatus::Active);
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"instance_ids": [INSTANCE]}));
}

#[tokio::test]
async fn terminate_instance() {
    let h = Harness::new("terminateInstance", "/api/v1/instance-operations/terminate").await;
    let terminated = h.client.instances().terminate([INSTANCE]).await.unwrap();
    assert_eq!(terminated[0].status, InstanceStatus::Terminating);
    assert_eq!(terminated[0].tag("key2"), Some("value2"));
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"instance_ids": [INSTANCE]}));
}

#[tokio::test]
async fn list_instance_types() {
    let h = Harness::new("listInstanceTypes", "/api/v1/instance-types").await;
    let types = h.client.instance_types().list().await.unwrap();
    let item = types.get("gpu_8x_example").unwrap();
    assert_eq!(item.instance_type.price_cents_per_hour, 1592);
    assert!(item.has_capacity_in(&RegionName::UsWest1));
    assert_eq!(types.available().len(), 1);
    assert_eq!(serde_json::to_value(&types).unwrap(), h.answer());
    h.request().await;
}

// --- regions, images, SSH keys -----------------------------------------------------------------

#[tokio::test]
async fn list_regions() {
    let h = Harness::new("listRegions", "/api/v1/regions").await;
    let regions = h.client.regions().list().await.unwrap();
    assert_eq!(regions.len(), 1);
    h.request().await;
}

#[tokio::test]
async fn list_images() {
    let h = Harness::new("listImages", "/api/v1/images").await;
    let images = h.client.images().list().await.unwrap();
    assert_eq!(images[0].family, "ubuntu-lts");
    assert_eq!(images[0].architecture, ImageArchitecture::X86_64);
    h.request().await;
}

#[tokio::test]
async fn list_ssh_keys() {
    let h = Harness::new("listSSHKeys", "/api/v1/ssh-keys").await;
    let keys = h.client.ssh_keys().list().await.unwrap();
    assert_eq!(keys[0].name, "my-public-key");
    h.request().await;
}

#[tokio::test]
async fn add_ssh_key() {
    let h = Harness::new("addSSHKey", "/api/v1/ssh-keys").await;
    let key = h
        .client
        .ssh_keys()
        .add("laptop", "ssh-ed25519 AAAA me")
        .await
        .unwrap();
    assert_eq!(key.id, "ddf9a910ceb744a0bb95242cbba6cb50");
    let (body, _) = h.request().await;
    assert_eq!(
        body,
        json!({"name": "laptop", "public_key": "ssh-ed25519 AAAA me"})
    );
}

#[tokio::test]
async fn add_ssh_key_generating_a_pair() {
    let h = Harness::new("addSSHKey", "/api/v1/ssh-keys").await;
    let pair = h.client.ssh_keys().generate("ephemeral").await.unwrap();
    assert!(pair.private_key.expose().starts_with("-----BEGIN"));
    assert!(
        !format!("{pair:?}").contains("BEGIN"),
        "private key hidden from Debug"
    );
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"name": "ephemeral"}));
}

#[tokio::test]
async fn delete_ssh_key() {
    let h = Harness::new("deleteSSHKey", "/api/v1/ssh-keys/k1").await;
    h.client.ssh_keys().delete("k1").await.unwrap();
    h.request().await;
}

// --- filesystems (listed at /file-systems, changed at /filesystems) -----------------------------

#[tokio::test]
async fn list_filesystems() {
    let h = Harness::new("listFilesystems", "/api/v1/file-systems").await;
    let filesystems = h.client.filesystems().list().await.unwrap();
    assert_eq!(filesystems[0].mount_point, "/lambda/nfs/my-filesystem");
    assert_eq!(filesystems[0].created_by.status, UserStatus::Active);
    h.request().await;
}

#[tokio::test]
async fn create_filesystem() {
    let h = Harness::new("createFilesystem", "/api/v1/filesystems").await;
    let fs = h
        .client
        .filesystems()
        .create("datasets", "us-west-1")
        .await
        .unwrap();
    assert_eq!(fs.name, "my-filesystem");
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"name": "datasets", "region": "us-west-1"}));
}

#[tokio::test]
async fn filesystem_delete() {
    let h = Harness::new("filesystemDelete", "/api/v1/filesystems/fs1").await;
    let deleted = h.client.filesystems().delete("fs1").await.unwrap();
    assert_eq!(
        deleted,
        [FilesystemId::from("398578a2336b49079e74043f0bd2cfe8")]
    );
    h.request().await;
}

// --- firewall --------------------------------------------------------------------------------

fn ssh_rule() -> FirewallRule {
    FirewallRule::tcp_port(22, "0.0.0.0/0", "SSH")
}

#[tokio::test]
async fn firewall_rules_list() {
    let h = Harness::new("firewallRulesList", "/api/v1/firewall-rules").await;
    let rules = h.client.firewall_rules().list().await.unwrap();
    assert_eq!(rules[0].protocol, NetworkProtocol::Tcp);
    assert_eq!(rules[0].port_range, Some([22, 22]));
    h.request().await;
}

#[tokio::test]
async fn firewall_rules_set() {
    let h = Harness::new("firewallRulesSet", "/api/v1/firewall-rules").await;
    h.client
        .firewall_rules()
        .set(vec![ssh_rule()])
        .await
        .unwrap();
    let (body, _) = h.request().await;
    assert_eq!(
        body,
        json!({"data": [{"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0", "description": "SSH"}]})
    );
}

#[tokio::test]
async fn firewall_rulesets_list() {
    let h = Harness::new("firewallRulesetsList", "/api/v1/firewall-rulesets").await;
    let rulesets = h.client.firewall_rulesets().list().await.unwrap();
    assert_eq!(rulesets[0].name, "My Firewall Ruleset");
    h.request().await;
}

#[tokio::test]
async fn create_firewall_ruleset() {
    let h = Harness::new("createFirewallRuleset", "/api/v1/firewall-rulesets").await;
    let request = FirewallRulesetCreateRequest {
        name: "ssh-only".into(),
        region: RegionName::UsEast1,
        rules: vec![ssh_rule()],
    };
    h.client.firewall_rulesets().create(&request).await.unwrap();
    let (body, _) = h.request().await;
    assert_eq!(body["name"], "ssh-only");
    assert_eq!(body["region"], "us-east-1");
}

#[tokio::test]
async fn get_firewall_ruleset() {
    let h = Harness::new("getFirewallRuleset", "/api/v1/firewall-rulesets/rs1").await;
    let ruleset = h.client.firewall_rulesets().get("rs1").await.unwrap();
    assert_eq!(ruleset.id, "c4d291f47f9d436fa39f58493ce3b50d");
    h.request().await;
}

#[tokio::test]
async fn update_firewall_ruleset() {
    let h = Harness::new("updateFirewallRuleset", "/api/v1/firewall-rulesets/rs1").await;
    let patch = FirewallRulesetPatchRequest {
        name: Some("renamed".into()),
        rules: None,
    };
    h.client
        .firewall_rulesets()
        .update("rs1", &patch)
        .await
        .unwrap();
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"name": "renamed"}));
}

#[tokio::test]
async fn delete_firewall_ruleset() {
    let h = Harness::new("deleteFirewallRuleset", "/api/v1/firewall-rulesets/rs1").await;
    h.client.firewall_rulesets().delete("rs1").await.unwrap();
    h.request().await;
}

#[tokio::test]
async fn get_global_firewall_ruleset() {
    let h = Harness::new(
        "getGlobalFirewallRuleset",
        "/api/v1/firewall-rulesets/global",
    )
    .await;
    let global = h.client.firewall_rulesets().get_global().await.unwrap();
    assert_eq!(global.id, "global");
    h.request().await;
}

#[tokio::test]
async fn update_global_firewall_ruleset() {
    let h = Harness::new(
        "updateGlobalFirewallRuleset",
        "/api/v1/firewall-rulesets/global",
    )
    .await;
    h.client
        .firewall_rulesets()
        .update_global(vec![ssh_rule()])
        .await
        .unwrap();
    let (body, _) = h.request().await;
    assert_eq!(body["rules"][0]["port_range"], json!([22, 22]));
}

// --- audit events ----------------------------------------------------------------------------

#[tokio::test]
async fn get_audit_events() {
    let h = Harness::new("getAuditEvents", "/api/v1/audit-events").await;
    let query = AuditEventsQuery {
        start: Some("2025-09-01T10:30:45Z".parse().unwrap()),
        end: None,
        resource_type: Some("cloud.api_key".into()),
    };
    let page = h
        .client
        .audit_events()
        .list(&query, Some(&PageToken::from("abc=")))
        .await
        .unwrap();
    assert_eq!(page.events[0].resource_name, "api_key");
    assert_eq!(
        page.next_page_token,
        Some(PageToken::from("eyJuZXh0IjoxNzA0MTk2ODAwfQ=="))
    );
    let (_, query) = h.request().await;
    assert_eq!(
        pairs(&query),
        [
            ("start", "2025-09-01T10:30:45Z"),
            ("resource_type", "cloud.api_key"),
            ("page_token", "abc=")
        ]
    );
}

// --- fabric ----------------------------------------------------------------------------------

#[tokio::test]
async fn create_fabric_partition() {
    let h = Harness::new("createFabricPartition", "/api/v1/fabric").await;
    let request = CreateFabricPartitionRequest {
        name: "training-one".into(),
        region: RegionName::UsEast1,
        workspace_id: None,
    };
    let partition = h.client.fabric().create_partition(&request).await.unwrap();
    assert_eq!(partition.name, "training-one");
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"name": "training-one", "region": "us-east-1"}));
}

#[tokio::test]
async fn update_fabric_partition() {
    let h = Harness::new("updateFabricPartition", "/api/v1/fabric/p1").await;
    h.client
        .fabric()
        .rename_partition("p1", "training-two")
        .await
        .unwrap();
    let (body, _) = h.request().await;
    assert_eq!(body, json!({"name": "training-two"}));
}

#[tokio::test]
async fn delete_fabric_partition() {
    let h = Harness::new("deleteFabricPartition", "/api/v1/fabric/p1").await;
    h.client.fabric().delete_partition("p1").await.unwrap();
    h.request().await;
}

// --- tickets and attachments -----------------------------------------------------------------

#[tokio::test]
async fn list_tickets() {
    let h = Harness::new("listTickets", "/api/v1/tickets").await;
    let query = TicketsQuery {
        status: vec![TicketStatus::Open, TicketStatus::Pending],
        ticket_type: vec![TicketType::Incident],
        severity: vec![TicketSeverity::Sev1],
        order_by: Some(TicketOrderByField::CreatedAt),
        direction: Some(SortDirection::Desc),
    };
    let page = h.client.tickets().list(&query, None).await.unwrap();
    assert_eq!(page.tickets[0].status, TicketStatus::Open);
    let (_, query) = h.request().await;
    assert_eq!(
        pairs(&query),
        [
            ("status", "open"),
            ("status", "pending"),
            ("type", "incident"),
            ("severity", "sev_1"),
            ("order_by", "created_at"),
            ("direction", "desc"),
        ]
    );
}

#[tokio::test]
async fn create_ticket() {
    let h = Harness::new("createTicket", "/api/v1/tickets").await;
    let request = TicketCreateRequest {
        subject: "GPU missing".into(),
        description: "7 of 8".into(),
        request_type: TicketRequestType::Incident,
        severity: Some(TicketSeverity::Sev2),
        ip: None,
        instance_id: Some(INSTANCE.into()),
        cluster_id: None,
    };
    let created = h.client.tickets().create(&request).await.unwrap();
    assert_eq!(created.ticket_type, TicketType::Incident);
    let (body, _) = h.request().await;
    assert_eq!(body["type"], "incident");
    assert_eq!(body["severity"], "sev_2");
}

#[tokio::test]
async fn get_ticket() {
    let h = Harness::new("getTicket", &format!("/api/v1/tickets/{TICKET}")).await;
    let ticket = h.client.tickets().get(TICKET).await.unwrap();
    assert_eq!(ticket.comments.len(), 1);
    h.request().await;
}

#[tokio::test]
async fn update_ticket() {
    let h = Harness::new("updateTicket", &format!("/api/v1/tickets/{TICKET}")).await;
    let update = TicketUpdateRequest {
        status: Some(TicketStatus::Solved),
        severity: None,
        comment: Some(TicketCommentInput {
            body: "fixed".into(),
        }),
    };
    h.client.tickets().update(TICKET, &update).await.unwrap();
    let (body, _) = h.request().await;
    assert_eq!(
        body,
        json!({"status": "solved", "comment": {"body": "fixed"}})
    );
}

#[tokio::test]
async fn list_attachments() {
    let h = Harness::new(
        "listAttachments",
        &format!("/api/v1/tickets/{TICKET}/attachments"),
    )
    .await;
    let attachments = h
        .client
        .attachments()
        .list(TICKET, Some(AttachmentUploadStatus::Pending))
        .await
        .unwrap();
    assert_eq!(
        attachments[0].upload_status,
        AttachmentUploadStatus::Uploaded
    );
    let (_, query) = h.request().await;
    assert_eq!(pairs(&query), [("status", "pending")]);
}

#[tokio::test]
async fn initiate_attachment_upload() {
    let h = Harness::new(
        "initiateAttachmentUpload",
        &format!("/api/v1/tickets/{TICKET}/attachments"),
    )
    .await;
    let request = AttachmentInitiateRequest {
        filename: "logs.tar.gz".into(),
        content_type: "application/gzip".into(),
        size_bytes: 10,
    };
    let upload = h
        .client
        .attachments()
        .initiate_upload(TICKET, &request)
        .await
        .unwrap();
    assert_eq!(upload.upload_method, "PUT");
    assert!(
        !format!("{upload:?}").contains("presigned"),
        "URL hidden from Debug"
    );
    let (body, _) = h.request().await;
    assert_eq!(body["size_bytes"], 10);
}

#[tokio::test]
async fn complete_attachment_upload() {
    let h = Harness::new(
        "completeAttachmentUpload",
        &format!("/api/v1/tickets/{TICKET}/attachments/{ATTACHMENT}/complete"),
    )
    .await;
    let attachment = h
        .client
        .attachments()
        .complete_upload(TICKET, ATTACHMENT)
        .await
        .unwrap();
    assert_eq!(attachment.filename, "debug-logs.tar.gz");
    h.request().await;
}

#[tokio::test]
async fn delete_attachment() {
    let h = Harness::new(
        "deleteAttachment",
        &format!("/api/v1/tickets/{TICKET}/attachments/{ATTACHMENT}"),
    )
    .await;
    h.client
        .attachments()
        .delete(TICKET, ATTACHMENT)
        .await
        .unwrap();
    h.request().await;
}

#[tokio::test]
async fn get_attachment_download_url() {
    let h = Harness::new(
        "getAttachmentDownloadUrl",
        &format!("/api/v1/tickets/{TICKET}/attachments/{ATTACHMENT}/download"),
    )
    .await;
    let link = h
        .client
        .attachments()
        .download_url(TICKET, ATTACHMENT)
        .await
        .unwrap();
    assert_eq!(link.expires_in, 3600);
    h.request().await;
}
