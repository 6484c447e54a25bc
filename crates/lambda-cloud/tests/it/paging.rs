//! Paged listings are followed to the end, and a server that repeats a token cannot make the
//! client page forever.

use lambda_cloud::{AuditEventsQuery, TicketsQuery};
use serde_json::{Value, json};
use wiremock::matchers::{path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{client_for, example, resolve, spec};

fn audit_event(id: &str) -> Value {
    let mut event = example(resolve(&spec()["components"]["schemas"]["AuditEvent"]));
    event["event_id"] = Value::from(id);
    event
}

fn page(events: &[&str], next: Option<&str>) -> ResponseTemplate {
    let events: Vec<Value> = events.iter().map(|id| audit_event(id)).collect();
    ResponseTemplate::new(200).set_body_json(json!({"data": events, "page_token": next}))
}

#[tokio::test]
async fn audit_events_are_followed_to_the_last_page() {
    let server = MockServer::start().await;
    let events = "/api/v1/audit-events";
    Mock::given(path(events))
        .and(query_param_is_missing("page_token"))
        .respond_with(page(&["e1", "e2"], Some("t1")))
        .mount(&server)
        .await;
    Mock::given(path(events))
        .and(query_param("page_token", "t1"))
        .respond_with(page(&["e3"], Some("t2")))
        .mount(&server)
        .await;
    Mock::given(path(events))
        .and(query_param("page_token", "t2"))
        .respond_with(page(&["e4"], None))
        .mount(&server)
        .await;
    let all = client_for(&server)
        .audit_events()
        .list_all(&AuditEventsQuery::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
}

#[tokio::test]
async fn a_repeated_token_ends_the_listing() {
    let server = MockServer::start().await;
    let mut ticket = example(resolve(&spec()["components"]["schemas"]["Ticket"]));
    ticket["id"] = Value::from("t-1");
    Mock::given(path("/api/v1/tickets"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"tickets": [ticket], "page_token": "same"}})),
        )
        .mount(&server)
        .await;
    let tickets = client_for(&server)
        .tickets()
        .list_all(&TicketsQuery::default())
        .await
        .unwrap();
    assert_eq!(
        tickets.len(),
        2,
        "the first page and the page for `same`, then stop"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
