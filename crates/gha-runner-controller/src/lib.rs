//! `lambda-gha serve`: GPU runners on demand from GitHub's `workflow_job` webhooks. Users only
//! change `runs-on`; the controller sees each job queued, launches a machine of the pool whose
//! labels it asks for, registers just-in-time runners on it, and ends machines nobody needs.
//!
//! - [`webhook`]: deliveries, their HMAC signatures, the payload's fields.
//! - [`app`]: GitHub as an App installation (JWT → installation tokens) or a token.
//! - [`config`]: `controller.toml`, its pools.
//! - [`store`]: the state (deliveries, jobs, launches, decisions) in SQLite, or in PostgreSQL
//!   for several replicas; [`pacing`]: launches paced across replicas.
//! - [`reconcile`]: the loops that turn demand into machines and back.
//! - [`server`]: the HTTP routes; [`status`]: the page, `/status.json`, `/metrics`.

#![deny(missing_docs)]

pub mod app;
pub mod config;
pub mod error;
pub mod metrics;
pub mod pacing;
pub mod reconcile;
pub mod server;
pub mod status;
pub mod store;
pub mod webhook;

pub use app::{AppKey, GitHubSource};
pub use config::{ControllerConfig, Pool};
pub use error::ControllerError;
pub use reconcile::{BootTemplate, Controller, Parts};
pub use store::{Database, PgStore, SqliteStore, Store};
pub use webhook::WebhookSecret;

/// Serves `controller` on `listener` and runs its loops until `shutdown` turns true.
pub async fn serve(
    controller: Controller,
    secret: WebhookSecret,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let loops = tokio::spawn({
        let controller = controller.clone();
        let shutdown = shutdown.clone();
        async move { controller.run(shutdown).await }
    });
    controller
        .inner
        .loops
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(loops.abort_handle());
    let mut stop = shutdown.clone();
    let served = axum::serve(listener, server::router(controller, secret))
        .with_graceful_shutdown(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    let _ = loops.await;
    served.map_err(|e| ControllerError::Listen {
        address,
        message: e.to_string(),
    })
}
