//! Support tickets and their attachments. Attachments upload to the simulator's own
//! presigned-style URLs under `/_sim/uploads/`.

use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use lambda_cloud::{
    Attachment, AttachmentDownloadResponse, AttachmentId, AttachmentInitiateRequest,
    AttachmentInitiateResponse, AttachmentListResponse, AttachmentUploadStatus, ErrorCode,
    Redacted, SortDirection, Ticket, TicketComment, TicketCreateRequest, TicketCreateResponse,
    TicketListResponse, TicketOrderByField, TicketRequestType, TicketStatus, TicketType,
    TicketUpdateRequest, Validate,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::answer::{Data, JsonBody, data};
use crate::audit::{next_token, offset};
use crate::failure::ApiFailure;
use crate::shared::Shared;
use crate::world::{SimAttachment, World};

const EXPIRES_IN: u64 = 3600;

fn ticket_missing() -> ApiFailure {
    ApiFailure::new(404, ErrorCode::NotFound, "Ticket not found.")
        .suggest("Check the ticket ID and try again.")
}

fn attachment_missing(id: &str) -> ApiFailure {
    ApiFailure::new(
        404,
        ErrorCode::ObjectDoesNotExist,
        format!("Attachment {id:?} does not exist."),
    )
    .suggest("Check the attachment ID and try again.")
}

impl World {
    fn ticket_mut(&mut self, id: &str) -> Result<&mut Ticket, ApiFailure> {
        self.tickets
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(ticket_missing)
    }

    fn attachment_mut(&mut self, ticket: &str, id: &str) -> Result<&mut SimAttachment, ApiFailure> {
        self.ticket_mut(ticket)?;
        self.attachments
            .iter_mut()
            .find(|a| {
                a.ticket_id == ticket
                    && a.attachment.id == id
                    && a.attachment.upload_status != AttachmentUploadStatus::Deleted
            })
            .ok_or_else(|| attachment_missing(id))
    }

    /// Stores bytes sent to an upload URL.
    pub(crate) fn store_upload(&mut self, id: &str, bytes: Vec<u8>) -> Result<(), ApiFailure> {
        let attachment = self
            .attachments
            .iter_mut()
            .find(|a| {
                a.attachment.id == id
                    && a.attachment.upload_status == AttachmentUploadStatus::Pending
            })
            .ok_or_else(|| attachment_missing(id))?;
        attachment.bytes = Some(bytes);
        Ok(())
    }

    /// The bytes of an uploaded attachment.
    pub(crate) fn uploaded(&self, id: &str) -> Option<Vec<u8>> {
        self.attachments
            .iter()
            .find(|a| {
                a.attachment.id == id
                    && a.attachment.upload_status == AttachmentUploadStatus::Uploaded
            })
            .and_then(|a| a.bytes.clone())
    }
}

/// Reads repeated query parameters (`status=open&status=pending`), which serde's URL decoding
/// of structs cannot.
fn values<'q>(pairs: &'q [(String, String)], name: &str) -> impl Iterator<Item = &'q str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Result<Data<TicketListResponse>, ApiFailure> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let statuses: Vec<TicketStatus> = values(&pairs, "status").map(TicketStatus::from).collect();
    let types: Vec<TicketType> = values(&pairs, "type").map(TicketType::from).collect();
    let severities: Vec<_> = values(&pairs, "severity")
        .map(lambda_cloud::TicketSeverity::from)
        .collect();
    let order = values(&pairs, "order_by")
        .next()
        .map(TicketOrderByField::from);
    let direction = values(&pairs, "direction").next().map(SortDirection::from);
    for (name, known) in [
        (
            "order_by",
            order.as_ref().is_none_or(TicketOrderByField::is_known),
        ),
        (
            "direction",
            direction.as_ref().is_none_or(SortDirection::is_known),
        ),
    ] {
        if !known {
            return Err(ApiFailure::invalid(format!("Invalid `{name}`.")));
        }
    }
    let offset = offset(values(&pairs, "page_token").next())?;
    shared.with_world(|world| {
        let mut tickets: Vec<Ticket> = world
            .tickets
            .iter()
            .filter(|t| statuses.is_empty() || statuses.contains(&t.status))
            .filter(|t| {
                types.is_empty() || t.ticket_type.as_ref().is_some_and(|ty| types.contains(ty))
            })
            .filter(|t| {
                severities.is_empty() || t.severity.as_ref().is_some_and(|s| severities.contains(s))
            })
            .cloned()
            .collect();
        match order {
            Some(TicketOrderByField::UpdatedAt) => {
                tickets.sort_by_key(|t| t.updated_at.unwrap_or(t.created_at));
            }
            _ => tickets.sort_by_key(|t| t.created_at),
        }
        if direction != Some(SortDirection::Asc) {
            tickets.reverse();
        }
        let total = tickets.len();
        let page: Vec<Ticket> = tickets
            .into_iter()
            .skip(offset)
            .take(world.scenario.page_size)
            .collect();
        Ok(data(TicketListResponse {
            page_token: next_token(offset, page.len(), total),
            tickets: page,
        }))
    })
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<TicketCreateRequest>,
) -> Result<Data<TicketCreateResponse>, ApiFailure> {
    request.validate()?;
    shared.with_world(|world| {
        let now = world.timestamp();
        let ticket_type = match request.request_type {
            TicketRequestType::Incident => TicketType::Incident,
            _ => TicketType::ServiceRequest,
        };
        let id = world.new_id();
        let ticket = Ticket {
            id: id.as_str().into(),
            subject: request.subject,
            description: request.description.clone(),
            ticket_type: Some(ticket_type.clone()),
            severity: request.severity.clone(),
            status: TicketStatus::Open,
            external_ticket_provider: Some("zendesk".to_owned()),
            external_ticket_id: Some(format!("{}", 10_000 + world.tickets.len())),
            created_at: now,
            updated_at: Some(now),
            resolved_at: None,
            comments: vec![TicketComment {
                body: request.description,
                author: "api".to_owned(),
                created_at: now,
            }],
        };
        let response = TicketCreateResponse {
            id: ticket.id.clone(),
            external_ticket_provider: ticket.external_ticket_provider.clone(),
            external_ticket_id: ticket.external_ticket_id.clone(),
            status: TicketStatus::Open,
            ticket_type,
            severity: request.severity,
            created_at: now,
        };
        world.tickets.push(ticket);
        world.record_audit("ticket", "created", &id, &[]);
        Ok(data(response))
    })
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<Ticket>, ApiFailure> {
    shared.with_world(|world| Ok(data(world.ticket_mut(&id)?.clone())))
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    JsonBody(update): JsonBody<TicketUpdateRequest>,
) -> Result<(axum::http::StatusCode, Data<Map<String, Value>>), ApiFailure> {
    update.validate()?;
    shared.with_world(|world| {
        let now = world.timestamp();
        let ticket = world.ticket_mut(&id)?;
        if let Some(status) = update.status {
            ticket.status = status;
            ticket.resolved_at = Some(now);
        }
        if let Some(severity) = update.severity {
            ticket.severity = Some(severity);
        }
        if let Some(comment) = update.comment {
            ticket.comments.push(TicketComment {
                body: comment.body,
                author: "api".to_owned(),
                created_at: now,
            });
        }
        ticket.updated_at = Some(now);
        Ok((axum::http::StatusCode::ACCEPTED, data(Map::new())))
    })
}

#[derive(Deserialize)]
pub(crate) struct AttachmentQuery {
    status: Option<String>,
}

pub(crate) async fn list_attachments(
    State(shared): State<Arc<Shared>>,
    Path(ticket): Path<String>,
    Query(query): Query<AttachmentQuery>,
) -> Result<Data<AttachmentListResponse>, ApiFailure> {
    let wanted = AttachmentUploadStatus::from(query.status.as_deref().unwrap_or("uploaded"));
    shared.with_world(|world| {
        world.ticket_mut(&ticket)?;
        let attachments = world
            .attachments
            .iter()
            .filter(|a| a.ticket_id == ticket && a.attachment.upload_status == wanted)
            .map(|a| a.attachment.clone())
            .collect();
        Ok(data(AttachmentListResponse { attachments }))
    })
}

pub(crate) async fn initiate_upload(
    State(shared): State<Arc<Shared>>,
    Path(ticket): Path<String>,
    JsonBody(request): JsonBody<AttachmentInitiateRequest>,
) -> Result<Data<AttachmentInitiateResponse>, ApiFailure> {
    request.validate()?;
    let base = shared.base_url.get().cloned().unwrap_or_default();
    shared.with_world(|world| {
        world.ticket_mut(&ticket)?;
        let id = AttachmentId::new(world.new_id());
        world.attachments.push(SimAttachment {
            ticket_id: ticket.clone(),
            attachment: Attachment {
                id: id.clone(),
                filename: request.filename,
                content_type: request.content_type,
                size_bytes: request.size_bytes,
                upload_status: AttachmentUploadStatus::Pending,
                uploaded_at: None,
                created_at: world.timestamp(),
            },
            bytes: None,
        });
        Ok(data(AttachmentInitiateResponse {
            upload_url: Redacted::new(format!("{base}/_sim/uploads/{id}")),
            attachment_id: id,
            upload_method: "PUT".to_owned(),
            upload_status: AttachmentUploadStatus::Pending,
            expires_in: EXPIRES_IN,
        }))
    })
}

pub(crate) async fn complete_upload(
    State(shared): State<Arc<Shared>>,
    Path((ticket, id)): Path<(String, String)>,
) -> Result<Data<Attachment>, ApiFailure> {
    shared.with_world(|world| {
        let now = world.timestamp();
        let attachment = world.attachment_mut(&ticket, &id)?;
        let expected = attachment.attachment.size_bytes;
        match attachment.bytes.as_ref().map(|b| b.len() as u64) {
            None => {
                return Err(ApiFailure::invalid(
                    "Nothing was uploaded to the upload URL yet.",
                ));
            }
            Some(size) if size != expected => {
                return Err(ApiFailure::invalid(format!(
                    "The upload has {size} bytes; {expected} were announced."
                )));
            }
            Some(_) => {}
        }
        attachment.attachment.upload_status = AttachmentUploadStatus::Uploaded;
        attachment.attachment.uploaded_at = Some(now);
        Ok(data(attachment.attachment.clone()))
    })
}

pub(crate) async fn delete_attachment(
    State(shared): State<Arc<Shared>>,
    Path((ticket, id)): Path<(String, String)>,
) -> Result<Data<Map<String, Value>>, ApiFailure> {
    shared.with_world(|world| {
        let attachment = world.attachment_mut(&ticket, &id)?;
        attachment.attachment.upload_status = AttachmentUploadStatus::Deleted;
        attachment.bytes = None;
        Ok(data(Map::new()))
    })
}

pub(crate) async fn download_url(
    State(shared): State<Arc<Shared>>,
    Path((ticket, id)): Path<(String, String)>,
) -> Result<Data<AttachmentDownloadResponse>, ApiFailure> {
    let base = shared.base_url.get().cloned().unwrap_or_default();
    shared.with_world(|world| {
        let attachment = world.attachment_mut(&ticket, &id)?;
        if attachment.attachment.upload_status != AttachmentUploadStatus::Uploaded {
            return Err(ApiFailure::invalid(
                "The attachment has not finished uploading.",
            ));
        }
        Ok(data(AttachmentDownloadResponse {
            download_url: Redacted::new(format!("{base}/_sim/uploads/{id}")),
            expires_in: EXPIRES_IN,
        }))
    })
}
