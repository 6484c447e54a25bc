//! The audit log: what was done in the account, read page by page.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use jiff::Timestamp;
use lambda_cloud::{AuditEvent, AuditEventPage, PageToken};
use serde::Deserialize;

use crate::failure::ApiFailure;
use crate::shared::Shared;
use crate::world::World;

impl World {
    /// Records that `action` happened to the `resource` with `id`.
    pub(crate) fn record_audit(
        &mut self,
        resource: &str,
        action: &str,
        id: &str,
        details: &[(&str, &str)],
    ) {
        let event_id = self.new_id();
        let mut additional = serde_json::Map::new();
        additional.insert(
            format!("{resource}_lrn"),
            format!("lrn:cloud:{resource}:{id}").into(),
        );
        for (key, value) in details {
            additional.insert((*key).to_owned(), (*value).into());
        }
        self.audit.push(AuditEvent {
            service_name: "cloud".to_owned(),
            resource_name: resource.to_owned(),
            action: action.to_owned(),
            catalog_version: "2025-09-06".to_owned(),
            event_id,
            event_time: self.timestamp(),
            actor_lrn: Some("lrn:cloud:identity:00000000000000000000000000000001".to_owned()),
            resource_lrns: vec![format!("lrn:cloud:{resource}:{id}")],
            resource_owner_lrn: Some(
                "lrn:cloud:account:00000000000000000000000000000001".to_owned(),
            ),
            request_api_key_lrn: Some(
                "lrn:cloud:api_key:00000000000000000000000000000001".to_owned(),
            ),
            additional_details: additional,
        });
    }
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    start: Option<String>,
    end: Option<String>,
    page_token: Option<String>,
    resource_type: Option<String>,
}

fn timestamp(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiFailure> {
    value
        .map(|text| {
            text.parse::<Timestamp>().map_err(|_| {
                ApiFailure::invalid(format!(
                    "`{name}` must be an ISO 8601 timestamp (got {text:?})."
                ))
            })
        })
        .transpose()
}

/// Page tokens are opaque to clients; here they are the offset of the next page.
pub(crate) fn offset(token: Option<&str>) -> Result<usize, ApiFailure> {
    match token {
        None => Ok(0),
        Some(token) => token
            .strip_prefix("o")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiFailure::invalid(format!("Invalid page_token {token:?}."))),
    }
}

pub(crate) fn next_token(offset: usize, page: usize, total: usize) -> Option<PageToken> {
    (offset + page < total).then(|| PageToken::new(format!("o{}", offset + page)))
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditEventPage>, ApiFailure> {
    let start = timestamp("start", query.start.as_deref())?;
    let end = timestamp("end", query.end.as_deref())?;
    let offset = offset(query.page_token.as_deref())?;
    shared.with_world(|world| {
        let matching: Vec<&AuditEvent> = world
            .audit
            .iter()
            .filter(|e| start.is_none_or(|s| e.event_time >= s))
            .filter(|e| end.is_none_or(|s| e.event_time <= s))
            .filter(|e| {
                query
                    .resource_type
                    .as_deref()
                    .is_none_or(|t| t == format!("{}.{}", e.service_name, e.resource_name))
            })
            .collect();
        let page: Vec<AuditEvent> = matching
            .iter()
            .skip(offset)
            .take(world.scenario.page_size)
            .map(|e| (*e).clone())
            .collect();
        Ok(Json(AuditEventPage {
            next_page_token: next_token(offset, page.len(), matching.len()),
            events: page,
        }))
    })
}
