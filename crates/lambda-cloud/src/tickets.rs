//! Support tickets and their attachments.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::{Result, ValidationError};
use crate::ids::{AttachmentId, PageToken, TicketId};
use crate::operations;
use crate::redacted::Redacted;
use crate::validation::{self, Validate};

open_enum! {
    /// Where a ticket stands.
    pub enum TicketStatus {
        /// Open.
        Open = "open",
        /// On hold.
        OnHold = "on_hold",
        /// Waiting for the customer.
        Pending = "pending",
        /// Solved.
        Solved = "solved",
        /// Solved and confirmed.
        ConfirmSolved = "confirm_solved",
    }
}

open_enum! {
    /// The kind of a ticket.
    pub enum TicketType {
        /// A request for a service.
        ServiceRequest = "service_request",
        /// Something is broken.
        Incident = "incident",
        /// Opened by an automated event.
        AutomatedEvent = "automated_event",
    }
}

open_enum! {
    /// The kind of a ticket to open.
    pub enum TicketRequestType {
        /// Something is broken (needs a severity).
        Incident = "incident",
        /// A request for a service (has no severity).
        ServiceRequest = "service_request",
    }
}

open_enum! {
    /// How bad an incident is.
    pub enum TicketSeverity {
        /// Highest.
        Sev1 = "sev_1",
        /// Middle.
        Sev2 = "sev_2",
        /// Lowest.
        Sev3 = "sev_3",
    }
}

open_enum! {
    /// The field tickets are sorted by.
    pub enum TicketOrderByField {
        /// Creation time.
        CreatedAt = "created_at",
        /// Last update time.
        UpdatedAt = "updated_at",
    }
}

open_enum! {
    /// Sort order.
    pub enum SortDirection {
        /// Oldest first.
        Asc = "asc",
        /// Newest first.
        Desc = "desc",
    }
}

open_enum! {
    /// Where an attachment's upload stands.
    pub enum AttachmentUploadStatus {
        /// Waiting for the upload.
        Pending = "pending",
        /// Uploaded.
        Uploaded = "uploaded",
        /// Failed.
        Failed = "failed",
        /// Deleted.
        Deleted = "deleted",
    }
}

/// A comment on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct TicketComment {
    /// Comment text.
    pub body: String,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub created_at: Timestamp,
}

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct Ticket {
    /// The unique identifier for the ticket.
    pub id: TicketId,
    /// A short summary.
    pub subject: String,
    /// The first description.
    pub description: String,
    /// Whether it is a question, a billing matter, an incident, …; absent on old tickets.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ticket_type: Option<TicketType>,
    /// Its severity (incidents only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<TicketSeverity>,
    /// Where it stands.
    pub status: TicketStatus,
    /// The external ticketing system, e.g. `zendesk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ticket_provider: Option<String>,
    /// Its id in the external system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ticket_id: Option<String>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// When it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// Every comment.
    pub comments: Vec<TicketComment>,
}

/// A ticket to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCreateRequest {
    /// A short summary.
    pub subject: String,
    /// What happened or what is needed.
    pub description: String,
    /// Incident or service request.
    #[serde(rename = "type")]
    pub request_type: TicketRequestType,
    /// Required for incidents, not allowed for service requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<TicketSeverity>,
    /// The affected node's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The affected instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The affected cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

impl Validate for TicketCreateRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validation::length("subject", &self.subject, 1, usize::MAX)?;
        validation::length("description", &self.description, 1, usize::MAX)?;
        match (&self.request_type, &self.severity) {
            (TicketRequestType::Incident, None) => Err(ValidationError::new(
                "severity",
                "is required for `incident` tickets; set `sev_1`, `sev_2` or `sev_3`",
            )),
            (TicketRequestType::ServiceRequest, Some(_)) => Err(ValidationError::new(
                "severity",
                "must not be set for `service_request` tickets; remove it",
            )),
            _ => Ok(()),
        }
    }
}

/// The answer to opening a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct TicketCreateResponse {
    /// The unique identifier for the ticket.
    pub id: TicketId,
    /// The external ticketing system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ticket_provider: Option<String>,
    /// Its id in the external system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ticket_id: Option<String>,
    /// Where it stands.
    pub status: TicketStatus,
    /// The type of issue or request.
    #[serde(rename = "type")]
    pub ticket_type: TicketType,
    /// The severity level of the issue represented by the ticket. Omitted if the ticket isn't
    /// an `incident`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<TicketSeverity>,
    /// When it was opened.
    pub created_at: Timestamp,
}

/// A comment to add to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCommentInput {
    /// The text of the new comment.
    pub body: String,
}

/// Changes to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TicketUpdateRequest {
    /// The new status; only `solved` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TicketStatus>,
    /// The severity to change it to; absent leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<TicketSeverity>,
    /// A comment to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<TicketCommentInput>,
}

impl Validate for TicketUpdateRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        match &self.status {
            Some(status) if *status != TicketStatus::Solved => Err(ValidationError::new(
                "status",
                format!("only `solved` can be set (got `{status}`)"),
            )),
            _ => Ok(()),
        }
    }
}

/// Which tickets to list. Empty filters match everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketsQuery {
    /// Only these statuses.
    pub status: Vec<TicketStatus>,
    /// Only these kinds.
    pub ticket_type: Vec<TicketType>,
    /// Only these severities.
    pub severity: Vec<TicketSeverity>,
    /// What to sort by (the server's default order when absent).
    pub order_by: Option<TicketOrderByField>,
    /// Ascending or descending; with `order_by`.
    pub direction: Option<SortDirection>,
}

/// One page of tickets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct TicketListResponse {
    /// The current page of tickets.
    pub tickets: Vec<Ticket>,
    /// The token for the next page; `None` on the last.
    pub page_token: Option<PageToken>,
}

/// An attachment's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct Attachment {
    /// The unique identifier for the attachment.
    pub id: AttachmentId,
    /// The original file name.
    pub filename: String,
    /// The MIME type.
    pub content_type: String,
    /// The size in bytes.
    pub size_bytes: u64,
    /// Where the upload stands.
    pub upload_status: AttachmentUploadStatus,
    /// When the upload finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A ticket's attachments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct AttachmentListResponse {
    /// Retrieves all attachments associated with the specified ticket. If status is omitted,
    /// only uploaded attachments will be returned.
    pub attachments: Vec<Attachment>,
}

/// An upload to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInitiateRequest {
    /// The file name, at most 255 characters.
    pub filename: String,
    /// The MIME type, e.g. `application/gzip`.
    pub content_type: String,
    /// The size in bytes, at least 1.
    pub size_bytes: u64,
}

impl Validate for AttachmentInitiateRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validation::length("filename", &self.filename, 1, 255)?;
        validation::length("content_type", &self.content_type, 1, 255)?;
        if self.size_bytes == 0 {
            return Err(ValidationError::new(
                "size_bytes",
                "must be at least 1; empty files cannot be attached",
            ));
        }
        Ok(())
    }
}

/// Where and how to upload an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct AttachmentInitiateResponse {
    /// The attachment's id, to complete the upload with.
    pub attachment_id: AttachmentId,
    /// A presigned URL to upload to. It grants access, so it is never shown in `Debug`.
    pub upload_url: Redacted,
    /// `PUT` or `POST`.
    pub upload_method: String,
    /// Where the upload stands.
    pub upload_status: AttachmentUploadStatus,
    /// How many seconds the URL stays valid.
    pub expires_in: u64,
}

/// Where to download an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct AttachmentDownloadResponse {
    /// A presigned URL. It grants access, so it is never shown in `Debug`.
    pub download_url: Redacted,
    /// How many seconds the URL stays valid.
    pub expires_in: u64,
}

/// The `tickets` API area. Get it from [`Client::tickets`].
#[derive(Debug, Clone, Copy)]
pub struct Tickets<'c> {
    client: &'c Client,
}

/// The ticket attachments API area. Get it from [`Client::attachments`].
#[derive(Debug, Clone, Copy)]
pub struct Attachments<'c> {
    client: &'c Client,
}

impl Client {
    /// Support tickets.
    pub fn tickets(&self) -> Tickets<'_> {
        Tickets { client: self }
    }

    /// Support ticket attachments.
    pub fn attachments(&self) -> Attachments<'_> {
        Attachments { client: self }
    }
}

impl Tickets<'_> {
    /// One page of tickets (`GET /api/v1/tickets`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::{TicketStatus, TicketsQuery};
    /// let query = TicketsQuery { status: vec![TicketStatus::Open], ..Default::default() };
    /// let page = client.tickets().list(&query, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list(
        &self,
        query: &TicketsQuery,
        page_token: Option<&PageToken>,
    ) -> Result<TicketListResponse> {
        let mut call = Call::new(&operations::TICKETS_LIST);
        for status in &query.status {
            call = call.query("status", status);
        }
        for ticket_type in &query.ticket_type {
            call = call.query("type", ticket_type);
        }
        for severity in &query.severity {
            call = call.query("severity", severity);
        }
        let call = call
            .query_opt("order_by", query.order_by.as_ref())
            .query_opt("direction", query.direction.as_ref())
            .query_opt("page_token", page_token);
        self.client.data(call).await
    }

    /// Every ticket matching `query`, following page tokens to the end.
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let tickets = client.tickets().list_all(&Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_all(&self, query: &TicketsQuery) -> Result<Vec<Ticket>> {
        crate::paging::collect_pages(|token| async move {
            let page = self.list(query, token.as_ref()).await?;
            Ok((page.tickets, page.page_token))
        })
        .await
    }

    /// Opens a ticket (`POST /api/v1/tickets`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::{TicketCreateRequest, TicketRequestType, TicketSeverity};
    /// let created = client.tickets().create(&TicketCreateRequest {
    ///     subject: "GPU missing".into(),
    ///     description: "nvidia-smi shows 7 of 8 GPUs".into(),
    ///     request_type: TicketRequestType::Incident,
    ///     severity: Some(TicketSeverity::Sev2),
    ///     ip: None,
    ///     instance_id: Some("0920582c7ff041399e34823a0be62549".into()),
    ///     cluster_id: None,
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, request: &TicketCreateRequest) -> Result<TicketCreateResponse> {
        self.client
            .data(Call::new(&operations::TICKET_CREATE).validated_json(request))
            .await
    }

    /// One ticket with its comments (`GET /api/v1/tickets/{ticket_id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let ticket = client.tickets().get("0920582c7ff041399e34823a0be62549").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: impl Into<TicketId>) -> Result<Ticket> {
        let id: TicketId = id.into();
        self.client
            .data(Call::new(&operations::TICKET_GET).path(id.as_str()))
            .await
    }

    /// Solves a ticket, changes its severity or comments on it
    /// (`PATCH /api/v1/tickets/{ticket_id}`; accepted for processing).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::{TicketCommentInput, TicketUpdateRequest};
    /// let update = TicketUpdateRequest {
    ///     comment: Some(TicketCommentInput { body: "Fixed after a reboot.".into() }),
    ///     ..Default::default()
    /// };
    /// client.tickets().update("0920582c7ff041399e34823a0be62549", &update).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        id: impl Into<TicketId>,
        update: &TicketUpdateRequest,
    ) -> Result<()> {
        let id: TicketId = id.into();
        self.client
            .empty(
                Call::new(&operations::TICKET_UPDATE)
                    .path(id.as_str())
                    .validated_json(update),
            )
            .await
    }
}

impl Attachments<'_> {
    /// A ticket's attachments; only uploaded ones unless `status` says otherwise
    /// (`GET /api/v1/tickets/{ticket_id}/attachments`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let attachments = client.attachments().list("0920582c7ff041399e34823a0be62549", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list(
        &self,
        ticket: impl Into<TicketId>,
        status: Option<AttachmentUploadStatus>,
    ) -> Result<Vec<Attachment>> {
        let ticket: TicketId = ticket.into();
        self.client
            .data::<AttachmentListResponse>(
                Call::new(&operations::ATTACHMENTS_LIST)
                    .path(ticket.as_str())
                    .query_opt("status", status),
            )
            .await
            .map(|response| response.attachments)
    }

    /// Starts an upload and returns where to send the file
    /// (`POST /api/v1/tickets/{ticket_id}/attachments`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::AttachmentInitiateRequest;
    /// let upload = client.attachments().initiate_upload(
    ///     "0920582c7ff041399e34823a0be62549",
    ///     &AttachmentInitiateRequest {
    ///         filename: "logs.tar.gz".into(),
    ///         content_type: "application/gzip".into(),
    ///         size_bytes: 1024,
    ///     },
    /// ).await?;
    /// # Ok(()) }
    /// ```
    pub async fn initiate_upload(
        &self,
        ticket: impl Into<TicketId>,
        request: &AttachmentInitiateRequest,
    ) -> Result<AttachmentInitiateResponse> {
        let ticket: TicketId = ticket.into();
        self.client
            .data(
                Call::new(&operations::ATTACHMENT_UPLOAD_INITIATE)
                    .path(ticket.as_str())
                    .validated_json(request),
            )
            .await
    }

    /// Marks an upload as finished
    /// (`POST /api/v1/tickets/{ticket_id}/attachments/{attachment_id}/complete`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let attachment = client.attachments()
    ///     .complete_upload("0920582c7ff041399e34823a0be62549", "a1")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn complete_upload(
        &self,
        ticket: impl Into<TicketId>,
        attachment: impl Into<AttachmentId>,
    ) -> Result<Attachment> {
        let ticket: TicketId = ticket.into();
        let attachment: AttachmentId = attachment.into();
        self.client
            .data(
                Call::new(&operations::ATTACHMENT_UPLOAD_COMPLETE)
                    .path(ticket.as_str())
                    .path(attachment.as_str()),
            )
            .await
    }

    /// Deletes an attachment
    /// (`DELETE /api/v1/tickets/{ticket_id}/attachments/{attachment_id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.attachments().delete("0920582c7ff041399e34823a0be62549", "a1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(
        &self,
        ticket: impl Into<TicketId>,
        attachment: impl Into<AttachmentId>,
    ) -> Result<()> {
        let ticket: TicketId = ticket.into();
        let attachment: AttachmentId = attachment.into();
        self.client
            .empty(
                Call::new(&operations::ATTACHMENT_DELETE)
                    .path(ticket.as_str())
                    .path(attachment.as_str()),
            )
            .await
    }

    /// A presigned download URL
    /// (`GET /api/v1/tickets/{ticket_id}/attachments/{attachment_id}/download`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let link = client.attachments()
    ///     .download_url("0920582c7ff041399e34823a0be62549", "a1")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn download_url(
        &self,
        ticket: impl Into<TicketId>,
        attachment: impl Into<AttachmentId>,
    ) -> Result<AttachmentDownloadResponse> {
        let ticket: TicketId = ticket.into();
        let attachment: AttachmentId = attachment.into();
        self.client
            .data(
                Call::new(&operations::ATTACHMENT_DOWNLOAD_URL)
                    .path(ticket.as_str())
                    .path(attachment.as_str()),
            )
            .await
    }
}
