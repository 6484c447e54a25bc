//! The table of every operation in the Lambda Cloud API spec and the client method that
//! calls it. Each client method sends through its entry here, so the table is what the client
//! does; the coverage test checks it against `spec/lambda-cloud-openapi.json`.

use std::fmt;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl HttpMethod {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operation {
    /// The spec's `operationId`.
    pub id: &'static str,
    /// The HTTP method.
    pub method: HttpMethod,
    /// The path template, with `{name}` for each path parameter.
    pub path: &'static str,
    /// The client method(s) that call it.
    pub client_method: &'static str,
    /// Whether a call creates something, so that it is only sent again when the failure proves
    /// nothing was created.
    pub creates: bool,
}

impl Operation {
    /// Whether this is the launch operation, which has its own rate limit.
    pub fn is_launch(&self) -> bool {
        self.id == INSTANCE_LAUNCH.id
    }
}

/// `GET /api/v1/audit-events` — Get audit events.
pub const AUDIT_EVENTS_LIST: Operation = Operation {
    id: "getAuditEvents",
    method: HttpMethod::Get,
    path: "/api/v1/audit-events",
    client_method: "audit_events().list / audit_events().list_all",
    creates: false,
};

/// `POST /api/v1/fabric` — Create partition.
pub const FABRIC_PARTITION_CREATE: Operation = Operation {
    id: "createFabricPartition",
    method: HttpMethod::Post,
    path: "/api/v1/fabric",
    client_method: "fabric().create_partition",
    creates: true,
};

/// `POST /api/v1/fabric/{id}` — Update partition.
pub const FABRIC_PARTITION_UPDATE: Operation = Operation {
    id: "updateFabricPartition",
    method: HttpMethod::Post,
    path: "/api/v1/fabric/{id}",
    client_method: "fabric().rename_partition",
    creates: false,
};

/// `DELETE /api/v1/fabric/{id}` — Delete partition.
pub const FABRIC_PARTITION_DELETE: Operation = Operation {
    id: "deleteFabricPartition",
    method: HttpMethod::Delete,
    path: "/api/v1/fabric/{id}",
    client_method: "fabric().delete_partition",
    creates: false,
};

/// `GET /api/v1/file-systems` — List filesystems.
pub const FILESYSTEMS_LIST: Operation = Operation {
    id: "listFilesystems",
    method: HttpMethod::Get,
    path: "/api/v1/file-systems",
    client_method: "filesystems().list",
    creates: false,
};

/// `POST /api/v1/filesystems` — Create filesystem.
pub const FILESYSTEM_CREATE: Operation = Operation {
    id: "createFilesystem",
    method: HttpMethod::Post,
    path: "/api/v1/filesystems",
    client_method: "filesystems().create",
    creates: true,
};

/// `DELETE /api/v1/filesystems/{id}` — Delete filesystem.
pub const FILESYSTEM_DELETE: Operation = Operation {
    id: "filesystemDelete",
    method: HttpMethod::Delete,
    path: "/api/v1/filesystems/{id}",
    client_method: "filesystems().delete",
    creates: false,
};

/// `GET /api/v1/firewall-rules` — List inbound firewall rules.
pub const FIREWALL_RULES_LIST: Operation = Operation {
    id: "firewallRulesList",
    method: HttpMethod::Get,
    path: "/api/v1/firewall-rules",
    client_method: "firewall_rules().list",
    creates: false,
};

/// `PUT /api/v1/firewall-rules` — Replace inbound firewall rules.
pub const FIREWALL_RULES_SET: Operation = Operation {
    id: "firewallRulesSet",
    method: HttpMethod::Put,
    path: "/api/v1/firewall-rules",
    client_method: "firewall_rules().set",
    creates: false,
};

/// `GET /api/v1/firewall-rulesets` — List firewall rulesets.
pub const FIREWALL_RULESETS_LIST: Operation = Operation {
    id: "firewallRulesetsList",
    method: HttpMethod::Get,
    path: "/api/v1/firewall-rulesets",
    client_method: "firewall_rulesets().list",
    creates: false,
};

/// `POST /api/v1/firewall-rulesets` — Create firewall ruleset.
pub const FIREWALL_RULESET_CREATE: Operation = Operation {
    id: "createFirewallRuleset",
    method: HttpMethod::Post,
    path: "/api/v1/firewall-rulesets",
    client_method: "firewall_rulesets().create",
    creates: true,
};

/// `GET /api/v1/firewall-rulesets/global` — Retrieve global firewall ruleset details.
pub const FIREWALL_RULESET_GLOBAL_GET: Operation = Operation {
    id: "getGlobalFirewallRuleset",
    method: HttpMethod::Get,
    path: "/api/v1/firewall-rulesets/global",
    client_method: "firewall_rulesets().get_global",
    creates: false,
};

/// `PATCH /api/v1/firewall-rulesets/global` — Update global firewall ruleset.
pub const FIREWALL_RULESET_GLOBAL_UPDATE: Operation = Operation {
    id: "updateGlobalFirewallRuleset",
    method: HttpMethod::Patch,
    path: "/api/v1/firewall-rulesets/global",
    client_method: "firewall_rulesets().update_global",
    creates: false,
};

/// `GET /api/v1/firewall-rulesets/{id}` — Retrieve firewall ruleset details.
pub const FIREWALL_RULESET_GET: Operation = Operation {
    id: "getFirewallRuleset",
    method: HttpMethod::Get,
    path: "/api/v1/firewall-rulesets/{id}",
    client_method: "firewall_rulesets().get",
    creates: false,
};

/// `PATCH /api/v1/firewall-rulesets/{id}` — Update firewall ruleset.
pub const FIREWALL_RULESET_UPDATE: Operation = Operation {
    id: "updateFirewallRuleset",
    method: HttpMethod::Patch,
    path: "/api/v1/firewall-rulesets/{id}",
    client_method: "firewall_rulesets().update",
    creates: false,
};

/// `DELETE /api/v1/firewall-rulesets/{id}` — Delete firewall ruleset.
pub const FIREWALL_RULESET_DELETE: Operation = Operation {
    id: "deleteFirewallRuleset",
    method: HttpMethod::Delete,
    path: "/api/v1/firewall-rulesets/{id}",
    client_method: "firewall_rulesets().delete",
    creates: false,
};

/// `GET /api/v1/images` — List available images.
pub const IMAGES_LIST: Operation = Operation {
    id: "listImages",
    method: HttpMethod::Get,
    path: "/api/v1/images",
    client_method: "images().list",
    creates: false,
};

/// `POST /api/v1/instance-operations/launch` — Launch instances.
pub const INSTANCE_LAUNCH: Operation = Operation {
    id: "launchInstance",
    method: HttpMethod::Post,
    path: "/api/v1/instance-operations/launch",
    client_method: "instances().launch(..).send",
    creates: true,
};

/// `POST /api/v1/instance-operations/restart` — Restart instances.
pub const INSTANCE_RESTART: Operation = Operation {
    id: "restartInstance",
    method: HttpMethod::Post,
    path: "/api/v1/instance-operations/restart",
    client_method: "instances().restart",
    creates: false,
};

/// `POST /api/v1/instance-operations/terminate` — Terminate instances.
pub const INSTANCE_TERMINATE: Operation = Operation {
    id: "terminateInstance",
    method: HttpMethod::Post,
    path: "/api/v1/instance-operations/terminate",
    client_method: "instances().terminate",
    creates: false,
};

/// `GET /api/v1/instance-types` — List available instance types.
pub const INSTANCE_TYPES_LIST: Operation = Operation {
    id: "listInstanceTypes",
    method: HttpMethod::Get,
    path: "/api/v1/instance-types",
    client_method: "instance_types().list",
    creates: false,
};

/// `GET /api/v1/instances` — List running instances.
pub const INSTANCES_LIST: Operation = Operation {
    id: "listInstances",
    method: HttpMethod::Get,
    path: "/api/v1/instances",
    client_method: "instances().list / instances().list_in_cluster",
    creates: false,
};

/// `GET /api/v1/instances/{id}` — Retrieve instance details.
pub const INSTANCE_GET: Operation = Operation {
    id: "getInstance",
    method: HttpMethod::Get,
    path: "/api/v1/instances/{id}",
    client_method: "instances().get",
    creates: false,
};

/// `POST /api/v1/instances/{id}` — Update instance details.
pub const INSTANCE_UPDATE: Operation = Operation {
    id: "postInstance",
    method: HttpMethod::Post,
    path: "/api/v1/instances/{id}",
    client_method: "instances().rename",
    creates: false,
};

/// `GET /api/v1/regions` — List regions.
pub const REGIONS_LIST: Operation = Operation {
    id: "listRegions",
    method: HttpMethod::Get,
    path: "/api/v1/regions",
    client_method: "regions().list",
    creates: false,
};

/// `GET /api/v1/ssh-keys` — List your SSH keys.
pub const SSH_KEYS_LIST: Operation = Operation {
    id: "listSSHKeys",
    method: HttpMethod::Get,
    path: "/api/v1/ssh-keys",
    client_method: "ssh_keys().list",
    creates: false,
};

/// `POST /api/v1/ssh-keys` — Add an SSH key.
pub const SSH_KEY_ADD: Operation = Operation {
    id: "addSSHKey",
    method: HttpMethod::Post,
    path: "/api/v1/ssh-keys",
    client_method: "ssh_keys().add / ssh_keys().generate",
    creates: true,
};

/// `DELETE /api/v1/ssh-keys/{id}` — Delete an SSH key.
pub const SSH_KEY_DELETE: Operation = Operation {
    id: "deleteSSHKey",
    method: HttpMethod::Delete,
    path: "/api/v1/ssh-keys/{id}",
    client_method: "ssh_keys().delete",
    creates: false,
};

/// `GET /api/v1/tickets` — List support tickets.
pub const TICKETS_LIST: Operation = Operation {
    id: "listTickets",
    method: HttpMethod::Get,
    path: "/api/v1/tickets",
    client_method: "tickets().list / tickets().list_all",
    creates: false,
};

/// `POST /api/v1/tickets` — Create a support ticket.
pub const TICKET_CREATE: Operation = Operation {
    id: "createTicket",
    method: HttpMethod::Post,
    path: "/api/v1/tickets",
    client_method: "tickets().create",
    creates: true,
};

/// `GET /api/v1/tickets/{ticket_id}` — Get a support ticket.
pub const TICKET_GET: Operation = Operation {
    id: "getTicket",
    method: HttpMethod::Get,
    path: "/api/v1/tickets/{ticket_id}",
    client_method: "tickets().get",
    creates: false,
};

/// `PATCH /api/v1/tickets/{ticket_id}` — Update a support ticket.
pub const TICKET_UPDATE: Operation = Operation {
    id: "updateTicket",
    method: HttpMethod::Patch,
    path: "/api/v1/tickets/{ticket_id}",
    client_method: "tickets().update",
    creates: true,
};

/// `GET /api/v1/tickets/{ticket_id}/attachments` — List ticket attachments.
pub const ATTACHMENTS_LIST: Operation = Operation {
    id: "listAttachments",
    method: HttpMethod::Get,
    path: "/api/v1/tickets/{ticket_id}/attachments",
    client_method: "attachments().list",
    creates: false,
};

/// `POST /api/v1/tickets/{ticket_id}/attachments` — Initiate attachment upload.
pub const ATTACHMENT_UPLOAD_INITIATE: Operation = Operation {
    id: "initiateAttachmentUpload",
    method: HttpMethod::Post,
    path: "/api/v1/tickets/{ticket_id}/attachments",
    client_method: "attachments().initiate_upload",
    creates: true,
};

/// `DELETE /api/v1/tickets/{ticket_id}/attachments/{attachment_id}` — Delete attachment.
pub const ATTACHMENT_DELETE: Operation = Operation {
    id: "deleteAttachment",
    method: HttpMethod::Delete,
    path: "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}",
    client_method: "attachments().delete",
    creates: false,
};

/// `POST /api/v1/tickets/{ticket_id}/attachments/{attachment_id}/complete` — Complete attachment upload.
pub const ATTACHMENT_UPLOAD_COMPLETE: Operation = Operation {
    id: "completeAttachmentUpload",
    method: HttpMethod::Post,
    path: "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}/complete",
    client_method: "attachments().complete_upload",
    creates: false,
};

/// `GET /api/v1/tickets/{ticket_id}/attachments/{attachment_id}/download` — Get attachment download URL.
pub const ATTACHMENT_DOWNLOAD_URL: Operation = Operation {
    id: "getAttachmentDownloadUrl",
    method: HttpMethod::Get,
    path: "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}/download",
    client_method: "attachments().download_url",
    creates: false,
};

/// The operation that `method` and `path` (e.g. `GET`, `/api/v1/instances/abc`) call, for
/// servers and proxies that speak the API. A literal path segment beats a parameter:
/// `/api/v1/firewall-rulesets/global` is the global ruleset, not a ruleset with id `global`.
pub fn find(method: &str, path: &str) -> Option<&'static Operation> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    OPERATIONS
        .iter()
        .filter(|op| op.method.as_str().eq_ignore_ascii_case(method))
        .filter_map(|op| {
            let template: Vec<&str> = op.path.split('/').collect();
            if template.len() != segments.len() {
                return None;
            }
            let mut parameters = 0;
            for (expected, actual) in template.iter().zip(&segments) {
                if expected.starts_with('{') {
                    parameters += 1;
                } else if expected != actual {
                    return None;
                }
            }
            Some((parameters, op))
        })
        .min_by_key(|(parameters, _)| *parameters)
        .map(|(_, op)| op)
}

/// Every operation of the spec, in the spec's order.
pub const OPERATIONS: &[Operation] = &[
    AUDIT_EVENTS_LIST,
    FABRIC_PARTITION_CREATE,
    FABRIC_PARTITION_UPDATE,
    FABRIC_PARTITION_DELETE,
    FILESYSTEMS_LIST,
    FILESYSTEM_CREATE,
    FILESYSTEM_DELETE,
    FIREWALL_RULES_LIST,
    FIREWALL_RULES_SET,
    FIREWALL_RULESETS_LIST,
    FIREWALL_RULESET_CREATE,
    FIREWALL_RULESET_GLOBAL_GET,
    FIREWALL_RULESET_GLOBAL_UPDATE,
    FIREWALL_RULESET_GET,
    FIREWALL_RULESET_UPDATE,
    FIREWALL_RULESET_DELETE,
    IMAGES_LIST,
    INSTANCE_LAUNCH,
    INSTANCE_RESTART,
    INSTANCE_TERMINATE,
    INSTANCE_TYPES_LIST,
    INSTANCES_LIST,
    INSTANCE_GET,
    INSTANCE_UPDATE,
    REGIONS_LIST,
    SSH_KEYS_LIST,
    SSH_KEY_ADD,
    SSH_KEY_DELETE,
    TICKETS_LIST,
    TICKET_CREATE,
    TICKET_GET,
    TICKET_UPDATE,
    ATTACHMENTS_LIST,
    ATTACHMENT_UPLOAD_INITIATE,
    ATTACHMENT_DELETE,
    ATTACHMENT_UPLOAD_COMPLETE,
    ATTACHMENT_DOWNLOAD_URL,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_find_their_operation_and_literal_segments_win() {
        let id = |method, path| find(method, path).map(|op| op.id);
        assert_eq!(
            id("GET", "/api/v1/firewall-rulesets/global"),
            Some("getGlobalFirewallRuleset")
        );
        assert_eq!(
            id("GET", "/api/v1/firewall-rulesets/abc"),
            Some("getFirewallRuleset")
        );
        assert_eq!(id("get", "/api/v1/file-systems/"), Some("listFilesystems"));
        assert_eq!(
            id("POST", "/api/v1/instance-operations/launch"),
            Some("launchInstance")
        );
        assert_eq!(id("GET", "/api/v1/nothing"), None);
        assert_eq!(id("DELETE", "/api/v1/instances"), None);
    }

    #[test]
    fn every_operation_finds_itself() {
        for op in OPERATIONS {
            let path = op
                .path
                .replace("{id}", "x")
                .replace("{ticket_id}", "t")
                .replace("{attachment_id}", "a");
            assert_eq!(find(op.method.as_str(), &path), Some(op), "{}", op.id);
        }
    }
}
