//! The HTTP surface: routing, authentication, rate limiting and fault injection in front of
//! the per-area handlers, all keyed by the API's own operation table.

use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use lambda_cloud::{ErrorCode, Operation};

use crate::failure::ApiFailure;
use crate::shared::{REQUEST_LOG_LIMIT, Shared, request_line};
use crate::{
    audit, catalog, fabric, filesystems, firewall, instances, sim_routes, ssh_keys, tickets,
};

/// Logs every API request with its outcome.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let Some(op) = lambda_cloud::operations::find(request.method().as_str(), request.uri().path())
    else {
        return next.run(request).await;
    };
    let (method, uri) = (request.method().to_string(), request.uri().to_string());
    let (parts, body) = request.into_parts();
    // Larger than any body the API accepts; one past it reaches the handler empty and is refused.
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let request = Request::from_parts(parts, axum::body::Body::from(body.clone()));
    let response = admit(&shared, op, request, next).await;
    let status = response.status().as_u16();
    {
        let mut log = shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if log.len() == REQUEST_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(request_line(&method, &uri, status, &body));
    }
    shared
        .received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if status == 429 {
        shared
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    tracing::info!(operation = op.id, status, "{} {}", op.method, op.path);
    response
}

/// Authentication, rate limiting and injected faults, in the order the real service applies
/// the first two.
async fn admit(shared: &Shared, op: &'static Operation, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !shared.authorized(header) {
        return ApiFailure::unauthorized().into_response();
    }
    let (limits, now, scale) =
        shared.with_world(|world| (world.scenario.rate_limits, world.now, world.clock.scale()));
    let admitted = shared
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(&limits, now, op.is_launch(), scale.factor());
    if let Err(wait) = admitted {
        let real_wait = shared.with_world(|world| world.clock.real(wait));
        let mut failure = ApiFailure::new(
            429,
            ErrorCode::Unknown("global/rate-limited".into()),
            "Too many requests.",
        )
        .suggest("Send at most one request per second and one launch per 12 seconds.");
        // Retry-After has whole seconds; below one real second the client's backoff is finer.
        if real_wait >= std::time::Duration::from_secs(1) {
            let whole = real_wait.as_secs() + u64::from(real_wait.subsec_nanos() > 0);
            failure.retry_after_seconds = Some(whole);
        }
        return failure.into_response();
    }
    let injection = shared.with_world(|world| {
        shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_call(&world.scenario.faults, op.id, &mut world.rng)
    });
    if !injection.latency.is_zero() {
        tokio::time::sleep(injection.latency).await;
    }
    if let Some((status, code, message)) = injection.failure {
        return ApiFailure::new(status, ErrorCode::parse(&code), message).into_response();
    }
    let response = next.run(request).await;
    if injection.drop_connection {
        let (parts, _answer) = response.into_parts();
        return Response::from_parts(parts, axum::body::Body::new(BrokenBody));
    }
    response
}

/// A body that fails at once, so the server abandons the connection mid-answer.
struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped by the scenario",
        ))))
    }
}

async fn not_found() -> ApiFailure {
    ApiFailure::not_found("The requested resource was not found.")
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/v1/audit-events", get(audit::list))
        .route("/api/v1/fabric", post(fabric::create))
        .route(
            "/api/v1/fabric/{id}",
            post(fabric::update).delete(fabric::delete),
        )
        .route("/api/v1/file-systems", get(filesystems::list))
        .route("/api/v1/filesystems", post(filesystems::create))
        .route(
            "/api/v1/filesystems/{id}",
            axum::routing::delete(filesystems::delete),
        )
        .route(
            "/api/v1/firewall-rules",
            get(firewall::list_rules).put(firewall::set_rules),
        )
        .route(
            "/api/v1/firewall-rulesets",
            get(firewall::list_rulesets).post(firewall::create_ruleset),
        )
        .route(
            "/api/v1/firewall-rulesets/global",
            get(firewall::get_global).patch(firewall::update_global),
        )
        .route(
            "/api/v1/firewall-rulesets/{id}",
            get(firewall::get_ruleset)
                .patch(firewall::update_ruleset)
                .delete(firewall::delete_ruleset),
        )
        .route("/api/v1/images", get(catalog::list_images))
        .route(
            "/api/v1/instance-operations/launch",
            post(instances::launch),
        )
        .route(
            "/api/v1/instance-operations/restart",
            post(instances::restart),
        )
        .route(
            "/api/v1/instance-operations/terminate",
            post(instances::terminate),
        )
        .route("/api/v1/instance-types", get(catalog::list_instance_types))
        .route("/api/v1/instances", get(instances::list))
        .route(
            "/api/v1/instances/{id}",
            get(instances::get).post(instances::rename),
        )
        .route("/api/v1/regions", get(catalog::list_regions))
        .route("/api/v1/ssh-keys", get(ssh_keys::list).post(ssh_keys::add))
        .route(
            "/api/v1/ssh-keys/{id}",
            axum::routing::delete(ssh_keys::delete),
        )
        .route("/api/v1/tickets", get(tickets::list).post(tickets::create))
        .route(
            "/api/v1/tickets/{ticket_id}",
            get(tickets::get).patch(tickets::update),
        )
        .route(
            "/api/v1/tickets/{ticket_id}/attachments",
            get(tickets::list_attachments).post(tickets::initiate_upload),
        )
        .route(
            "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}",
            axum::routing::delete(tickets::delete_attachment),
        )
        .route(
            "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}/complete",
            post(tickets::complete_upload),
        )
        .route(
            "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}/download",
            get(tickets::download_url),
        )
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate));
    let simulator = Router::new()
        .route("/_sim/ledger", get(sim_routes::ledger))
        .route("/_sim/clock", get(sim_routes::clock))
        .route("/_sim/jupyter/{instance_id}/", get(sim_routes::jupyter))
        .route(
            "/_sim/uploads/{attachment_id}",
            put(sim_routes::upload).get(sim_routes::download),
        );
    api.merge(simulator)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(shared)
}
