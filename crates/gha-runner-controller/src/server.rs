//! The HTTP side: `POST /webhook` (GitHub's deliveries), `GET /metrics` (Prometheus text),
//! `GET /healthz`, and the status page (`GET /`, and `GET /status.json`).
//!
//! A delivery is answered as soon as it is recorded: the signature is checked over the raw
//! body before anything is parsed, the body is capped, the delivery id deduplicated and the
//! job written to the store in one transaction — the durable queue the reconcile loop works
//! from. GitHub waits 10 s for an answer (docs.github.com, "Best practices for using
//! webhooks": respond within 10 seconds); nothing here waits on the cloud or on GitHub.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::reconcile::Controller;
use crate::status::Status;
use crate::store::{JobRecord, JobStatus, Recorded, now_millis};
use crate::webhook::{JobAction, MAX_BODY_BYTES, WebhookSecret, WorkflowJobEvent};

struct App {
    controller: Controller,
    secret: WebhookSecret,
}

/// The controller's routes.
pub fn router(controller: Controller, secret: WebhookSecret) -> Router {
    let app = Arc::new(App { controller, secret });
    Router::new()
        .route("/webhook", post(webhook))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/status.json", get(status_json))
        .route("/", get(status_page))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

/// One delivery. Answers: 202 recorded; 200 a duplicate, a ping, or a job no pool serves
/// (nothing to do, and GitHub must not redeliver it); 400 not a `workflow_job` or not JSON;
/// 401 a missing or wrong signature; 413 (from the body limit) too large; 503 the store
/// failed (GitHub may redeliver).
async fn webhook(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let metrics = &app.controller.inner.metrics;
    if let Err(problem) = app.secret.verify(
        headers
            .get("x-hub-signature-256")
            .map(axum::http::HeaderValue::as_bytes),
        &body,
    ) {
        metrics.count_delivery("bad_signature");
        return answer(StatusCode::UNAUTHORIZED, problem.to_string());
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match event {
        "workflow_job" => {}
        "ping" => {
            metrics.count_delivery("ping");
            return answer(StatusCode::OK, "pong");
        }
        other => {
            metrics.count_delivery("unknown_event");
            return answer(
                StatusCode::BAD_REQUEST,
                format!(
                    "event {other:?} is not handled: subscribe the webhook to \"Workflow jobs\" only"
                ),
            );
        }
    }
    let Some(delivery) = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
    else {
        metrics.count_delivery("malformed");
        return answer(StatusCode::BAD_REQUEST, "no X-GitHub-Delivery header");
    };
    let parsed: WorkflowJobEvent = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            metrics.count_delivery("malformed");
            return answer(
                StatusCode::BAD_REQUEST,
                format!("not a workflow_job payload: {error}"),
            );
        }
    };
    let config = &app.controller.inner.config;
    let job = &parsed.workflow_job;
    let pool = config.pool_for(&job.labels);
    let record = pool.map(|pool| JobRecord {
        id: job.id,
        run_id: job.run_id,
        repository: &parsed.repository.full_name,
        name: &job.name,
        labels: &job.labels,
        pool: &pool.name,
        status: match parsed.action {
            JobAction::Queued => JobStatus::Queued,
            JobAction::Waiting => JobStatus::Waiting,
            JobAction::InProgress => JobStatus::InProgress,
            JobAction::Completed => JobStatus::Completed,
        },
        runner_name: job.runner_name.as_deref(),
    });
    match app
        .controller
        .store()
        .record_delivery(delivery, record.as_ref(), now_millis())
        .await
    {
        Ok(Recorded::Duplicate) => {
            metrics.count_delivery("duplicate");
            answer(StatusCode::OK, "a delivery seen before: nothing to do")
        }
        Ok(Recorded::New) if record.is_none() => {
            metrics.count_delivery("no_pool");
            answer(
                StatusCode::OK,
                format!("no pool serves {:?}: left alone", job.labels),
            )
        }
        Ok(Recorded::New) => {
            metrics.count_delivery("accepted");
            app.controller.inner.wake.notify_one();
            answer(StatusCode::ACCEPTED, "recorded")
        }
        Err(error) => {
            metrics.count_delivery("store_failed");
            tracing::error!(%error, "could not record a delivery");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller could not record it; redeliver it",
            )
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match Status::read(&app.controller).await {
        Ok(status) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            status.prometheus(&app.controller),
        )
            .into_response(),
        Err(error) => answer(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let every = app.controller.config().timing.reconcile_every;
    let decided_lately = app
        .controller
        .inner
        .last_decision
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some_and(|at| at.elapsed() < every * 3 + std::time::Duration::from_secs(5));
    let leading = app.controller.leading();
    match app.controller.store().check().await {
        // A replica that does not lead still records deliveries and serves the status: a
        // load balancer keeps sending it webhooks.
        Ok(()) if leading.is_none() => {
            answer(StatusCode::OK, "ok: standing by (another replica leads)")
        }
        Ok(()) if decided_lately => answer(StatusCode::OK, "ok: leading"),
        Ok(()) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the reconcile loop has not decided lately",
        ),
        Err(error) => answer(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

async fn status_json(State(app): State<Arc<App>>) -> Response {
    match Status::read(&app.controller).await {
        Ok(status) => axum::Json(status.json()).into_response(),
        Err(error) => answer(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

async fn status_page(State(app): State<Arc<App>>) -> Response {
    match Status::read(&app.controller).await {
        Ok(status) => Html(status.html()).into_response(),
        Err(error) => answer(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}
