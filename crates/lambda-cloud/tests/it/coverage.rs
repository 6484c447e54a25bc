//! The client covers the spec: every `operationId` has an entry in [`lambda_cloud::OPERATIONS`]
//! with the spec's method and path, and a wiremock test in `operations.rs`.

use std::fmt::Write as _;

use lambda_cloud::OPERATIONS;

use crate::support::spec_operations;

#[test]
fn every_spec_operation_has_a_client_method() {
    let spec = spec_operations();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let mut table = String::new();
    for (method, path, operation) in &spec {
        let id = operation["operationId"].as_str().expect("operationId");
        match OPERATIONS.iter().find(|op| op.id == id) {
            Some(op) => {
                if op.method.as_str() != method || op.path != path {
                    mismatched.push(format!(
                        "{id}: spec says {method} {path}, table says {} {}",
                        op.method, op.path
                    ));
                }
                writeln!(
                    table,
                    "  {id:<28} {method:<6} {path:<68} {}",
                    op.client_method
                )
                .unwrap();
            }
            None => missing.push(id.to_owned()),
        }
    }
    let extra: Vec<_> = OPERATIONS
        .iter()
        .filter(|op| !spec.iter().any(|(_, _, s)| s["operationId"] == op.id))
        .map(|op| op.id)
        .collect();
    println!("{table}");
    println!(
        "coverage: {}/{} operations covered",
        spec.len() - missing.len(),
        spec.len()
    );
    assert!(
        missing.is_empty(),
        "operations without a client method: {missing:?}"
    );
    assert!(mismatched.is_empty(), "{mismatched:#?}");
    assert!(
        extra.is_empty(),
        "table entries the spec does not have: {extra:?}"
    );
}

#[test]
fn every_operation_has_a_wiremock_test() {
    let tests = include_str!("operations.rs");
    let untested: Vec<_> = OPERATIONS
        .iter()
        .filter(|op| !tests.contains(&format!("\"{}\"", op.id)))
        .map(|op| op.id)
        .collect();
    assert!(
        untested.is_empty(),
        "operations without a test in operations.rs: {untested:?}"
    );
}

#[test]
fn exactly_the_operations_that_create_something_are_never_resent_blindly() {
    let creating: Vec<&str> = OPERATIONS
        .iter()
        .filter(|op| op.creates)
        .map(|op| op.id)
        .collect();
    assert_eq!(
        creating,
        [
            "createFabricPartition",
            "createFilesystem",
            "createFirewallRuleset",
            "launchInstance",
            "addSSHKey",
            "createTicket",
            "updateTicket",
            "initiateAttachmentUpload",
        ]
    );
    let launches: Vec<&str> = OPERATIONS
        .iter()
        .filter(|op| op.is_launch())
        .map(|op| op.id)
        .collect();
    assert_eq!(
        launches,
        ["launchInstance"],
        "only launches draw on the 12 s budget"
    );
}
