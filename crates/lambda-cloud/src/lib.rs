//! A typed async client for the [Lambda Cloud API](https://docs.lambda.ai/api/cloud) v1.
//!
//! Every operation of the API's OpenAPI spec has a method (see [`OPERATIONS`]), grouped by area
//! as in the API: [`Client::instances`], [`Client::instance_types`], [`Client::ssh_keys`],
//! [`Client::filesystems`], [`Client::images`], [`Client::regions`],
//! [`Client::firewall_rules`], [`Client::firewall_rulesets`], [`Client::audit_events`],
//! [`Client::fabric`], [`Client::tickets`] and [`Client::attachments`].
//!
//! ```no_run
//! use lambda_cloud::Client;
//!
//! # async fn demo() -> Result<(), lambda_cloud::Error> {
//! // Reads LAMBDA_API_KEY (and LAMBDA_API_URL, default https://cloud.lambda.ai).
//! let client = Client::builder().build()?;
//!
//! let types = client.instance_types().list().await?;
//! let cheapest = types.available().into_iter().next().expect("something is available");
//! let region = cheapest.regions_with_capacity_available[0].name.clone();
//!
//! let launched = client
//!     .instances()
//!     .launch(cheapest.instance_type.name.clone(), region, "my-ssh-key")
//!     .name("experiment")
//!     .send()
//!     .await;
//! match launched {
//!     Ok(ids) => println!("launched {ids:?}"),
//!     // Capacity errors come back at once so that you can try another type or region.
//!     Err(e) if e.is_insufficient_capacity() => println!("no capacity, try elsewhere"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! # What the client does for you
//! - **Pacing.** Lambda allows about one request per second and one launch per 12 seconds.
//!   Clones of a client share a limiter that keeps to those limits ([`RateLimits`]), so your
//!   own traffic does not earn 429s.
//! - **Retries.** 429, 5xx, `provider/*` and transport failures are retried with jittered
//!   exponential backoff, honouring `Retry-After`, within a total deadline ([`RetryPolicy`]).
//!   Requests that create something (a launch) are only re-sent when the failure proves nothing
//!   was created, so a retry never launches a second machine.
//! - **Validation.** What the spec constrains (exactly one SSH key, name and hostname rules,
//!   tag patterns, user data ≤ 1 MB, mount points, firewall rules) is checked before sending:
//!   see [`Validate`] and [`ErrorKind::Validation`].
//! - **Secrets.** The API key is a [`secrecy::SecretString`], sent only in the
//!   `Authorization` header (marked sensitive). User data, Jupyter tokens, private keys and
//!   presigned URLs are [`Redacted`]: no `Debug` output or error message shows them.
//! - **Open enums.** Statuses, codes, regions and the like decode unknown values into an
//!   `Unknown(String)` variant instead of failing, since the API adds values over time.
//! - **Tracing.** Each call runs in a `lambda_cloud.request` span with the operation, status,
//!   retry count and duration; no secret is ever recorded.

#![deny(missing_docs)]

#[macro_use]
mod macros;

mod audit_events;
mod client;
mod error;
mod fabric;
mod filesystems;
mod firewall;
mod ids;
mod images;
mod instance_types;
mod instances;
mod jupyter;
pub mod operations;
mod paging;
mod rate_limit;
mod redacted;
mod regions;
mod retry;
mod ssh_keys;
mod tickets;
#[cfg(feature = "simulator")]
mod time_scale;
mod validation;

pub use audit_events::{AuditEvent, AuditEventPage, AuditEvents, AuditEventsQuery};
pub use client::{API_KEY_ENV, API_URL_ENV, Client, ClientBuilder, DEFAULT_BASE_URL};
pub use error::{
    ApiError, Error, ErrorBody, ErrorCode, ErrorEnvelope, ErrorKind, Result, TransportError,
    ValidationError,
};
pub use fabric::{
    CreateFabricPartitionRequest, Fabric, FabricPartition, UpdateFabricPartitionRequest,
};
pub use filesystems::{
    Filesystem, FilesystemCreateRequest, FilesystemDeleteResponse, FilesystemMountEntry,
    Filesystems, RequestedFilesystemMountEntry, User, UserStatus,
};
pub use firewall::{
    FirewallRule, FirewallRules, FirewallRulesPutRequest, FirewallRuleset,
    FirewallRulesetCreateRequest, FirewallRulesetEntry, FirewallRulesetPatchRequest,
    FirewallRulesets, GlobalFirewallRuleset, GlobalFirewallRulesetPatchRequest, NetworkProtocol,
};
pub use ids::{
    AttachmentId, FabricPartitionId, FilesystemId, FirewallRulesetId, ImageId, InstanceId,
    InstanceTypeName, PageToken, SshKeyId, TicketId,
};
pub use images::{Image, ImageArchitecture, ImageSpecification, Images};
pub use instance_types::{
    InstanceType, InstanceTypeSpecs, InstanceTypes, InstanceTypesApi, InstanceTypesItem,
};
pub use instances::{
    Instance, InstanceActionAvailability, InstanceActionAvailabilityDetails,
    InstanceActionUnavailableCode, InstanceIdsRequest, InstanceLaunchResponse,
    InstanceModificationRequest, InstanceRestartResponse, InstanceStatus,
    InstanceTerminateResponse, Instances, LaunchBuilder, LaunchInstanceRequest, RequestedTagEntry,
    TagEntry, USER_DATA_MAX_BYTES,
};
pub use jupyter::JupyterProbe;
pub use operations::{OPERATIONS, Operation};
pub use rate_limit::RateLimits;
pub use redacted::Redacted;
pub use regions::{Region, RegionName, Regions};
pub use retry::RetryPolicy;
pub use secrecy;
pub use ssh_keys::{AddSshKeyRequest, GeneratedSshKey, SshKey, SshKeys};
pub use tickets::{
    Attachment, AttachmentDownloadResponse, AttachmentInitiateRequest, AttachmentInitiateResponse,
    AttachmentListResponse, AttachmentUploadStatus, Attachments, SortDirection, Ticket,
    TicketComment, TicketCommentInput, TicketCreateRequest, TicketCreateResponse,
    TicketListResponse, TicketOrderByField, TicketRequestType, TicketSeverity, TicketStatus,
    TicketType, TicketUpdateRequest, Tickets, TicketsQuery,
};
#[cfg(feature = "simulator")]
pub use time_scale::{TIME_SCALE_ENV, TimeScale};
pub use validation::Validate;

/// The README's examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
