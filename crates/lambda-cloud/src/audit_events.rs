//! The account's audit log, read page by page.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::Result;
use crate::ids::PageToken;
use crate::operations;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct AuditEvent {
    /// The service, e.g. `cloud`.
    pub service_name: String,
    /// The kind of resource, e.g. `api_key`.
    pub resource_name: String,
    /// What was done, e.g. `created`.
    pub action: String,
    /// The version of the event catalog.
    pub catalog_version: String,
    /// The event's id.
    pub event_id: String,
    /// When it happened.
    pub event_time: Timestamp,
    /// Who did it (a Lambda Resource Name).
    pub actor_lrn: Option<String>,
    /// What it affected.
    pub resource_lrns: Vec<String>,
    /// The account owning what it affected.
    pub resource_owner_lrn: Option<String>,
    /// The API key used, if any.
    pub request_api_key_lrn: Option<String>,
    /// Event-specific details.
    pub additional_details: serde_json::Map<String, serde_json::Value>,
}

/// Which events to read. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEventsQuery {
    /// From this time on, inclusive.
    pub start: Option<Timestamp>,
    /// Up to this time, inclusive.
    pub end: Option<Timestamp>,
    /// Only this resource type, e.g. `cloud.api_key`.
    pub resource_type: Option<String>,
}

/// One page of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct AuditEventPage {
    /// This page's events, newest first.
    #[serde(rename = "data")]
    pub events: Vec<AuditEvent>,
    /// The token for the next page; `None` on the last.
    #[serde(rename = "page_token")]
    pub next_page_token: Option<PageToken>,
}

/// The `audit-events` API area. Get it from [`Client::audit_events`].
#[derive(Debug, Clone, Copy)]
pub struct AuditEvents<'c> {
    client: &'c Client,
}

impl Client {
    /// The account's audit log: who did what, when.
    pub fn audit_events(&self) -> AuditEvents<'_> {
        AuditEvents { client: self }
    }
}

impl AuditEvents<'_> {
    /// One page of events (`GET /api/v1/audit-events`); pass the previous page's
    /// `next_page_token` to continue.
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::AuditEventsQuery;
    /// let page = client.audit_events().list(&AuditEventsQuery::default(), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list(
        &self,
        query: &AuditEventsQuery,
        page_token: Option<&PageToken>,
    ) -> Result<AuditEventPage> {
        let call = Call::new(&operations::AUDIT_EVENTS_LIST)
            .query_opt("start", query.start)
            .query_opt("end", query.end)
            .query_opt("resource_type", query.resource_type.as_deref())
            .query_opt("page_token", page_token);
        self.client.send(call).await
    }

    /// Every event matching `query`, following page tokens to the end (each page is one
    /// paced request).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::AuditEventsQuery;
    /// let query = AuditEventsQuery { resource_type: Some("cloud.api_key".into()), ..Default::default() };
    /// let events = client.audit_events().list_all(&query).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_all(&self, query: &AuditEventsQuery) -> Result<Vec<AuditEvent>> {
        crate::paging::collect_pages(|token| async move {
            let page = self.list(query, token.as_ref()).await?;
            Ok((page.events, page.next_page_token))
        })
        .await
    }
}
