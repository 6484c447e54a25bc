//! Launches paced across replicas: before each launch call the provider is asked for, a slot
//! is reserved in the store ([`Store::reserve_launch`]), so N replicas sharing one account
//! launch no faster than one (Lambda allows one launch per 12 s per account; a replica's own
//! client only paces its own calls). Everything else passes straight through.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gha_runner_core::CloudProvider;
use gha_runner_core::provider::{
    Capabilities, CapacityHint, Catalog, Machine, MachineId, MachineSpec, ProviderError,
    ProviderErrorKind, Volume,
};

use crate::store::Store;

/// A provider whose launches take a slot of the store's account-wide pacing first.
pub struct PacedProvider {
    inner: Arc<dyn CloudProvider>,
    store: Arc<dyn Store>,
    interval: Duration,
}

impl PacedProvider {
    /// `inner`, its launches at least `interval` apart across every replica of `store`.
    pub fn new(inner: Arc<dyn CloudProvider>, store: Arc<dyn Store>, interval: Duration) -> Self {
        PacedProvider {
            inner,
            store,
            interval,
        }
    }
}

#[async_trait]
impl CloudProvider for PacedProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn check_spec(&self, spec: &MachineSpec) -> Result<(), ProviderError> {
        self.inner.check_spec(spec)
    }

    fn this_machine(&self) -> Option<MachineId> {
        self.inner.this_machine()
    }

    async fn launch(&self, spec: &MachineSpec) -> Result<MachineId, ProviderError> {
        let slot = self
            .store
            .reserve_launch(self.interval)
            .await
            .map_err(|e| {
                ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    format!("no launch slot from the shared store: {e}"),
                )
            })?;
        // The pacing decision itself, which wake-up and arrival times on a loaded machine
        // blur: a check of the spacing across replicas reads these (target
        // `gha_runner_controller::pacing`).
        if let Some(at) = slot.at {
            tracing::debug!(
                target: "gha_runner_controller::pacing",
                machine = %spec.name.as_deref().unwrap_or("-"),
                slot_ms = at,
                wait_ms = u64::try_from(slot.wait.as_millis()).unwrap_or(u64::MAX),
                "launch slot reserved"
            );
        }
        tokio::time::sleep(slot.wait).await;
        self.inner.launch(spec).await
    }

    async fn describe(&self, id: &MachineId) -> Result<Machine, ProviderError> {
        self.inner.describe(id).await
    }

    async fn list_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Machine>, ProviderError> {
        self.inner.list_tagged(key, value).await
    }

    async fn report_unhealthy(&self, id: &MachineId, why: &str) -> Result<(), ProviderError> {
        self.inner.report_unhealthy(id, why).await
    }

    async fn terminate(&self, ids: &[MachineId]) -> Result<(), ProviderError> {
        self.inner.terminate(ids).await
    }

    async fn catalog(&self) -> Result<Catalog, ProviderError> {
        self.inner.catalog().await
    }

    async fn capacity_hints(&self) -> Result<Vec<CapacityHint>, ProviderError> {
        self.inner.capacity_hints().await
    }

    async fn volumes(&self) -> Result<Vec<Volume>, ProviderError> {
        self.inner.volumes().await
    }

    async fn create_volume(&self, name: &str, region: &str) -> Result<Volume, ProviderError> {
        self.inner.create_volume(name, region).await
    }

    fn self_terminate_script(&self) -> Option<&'static str> {
        self.inner.self_terminate_script()
    }
}
