//! What the fake RunPod offers: GPU types, data centers, stock, timings and limits.

use std::collections::BTreeMap;

/// A GPU type of the catalog (`GpuType`).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuTypeSpec {
    /// The id pods are created with, e.g. `NVIDIA GeForce RTX 4090`.
    pub id: String,
    /// The short name, e.g. `RTX 4090`.
    pub name: String,
    /// Memory in GB.
    pub memory_gb: u32,
    /// USD per GPU-hour on the secure cloud.
    pub price_secure: f64,
    /// USD per GPU-hour on the community cloud.
    pub price_community: f64,
    /// The most GPUs one pod can have.
    pub max_count: u32,
}

/// A data center (`DataCenter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterSpec {
    /// Its id, e.g. `US-TX-3`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its continental region (`DataCenterRegion`), e.g. `NORTH_AMERICA`.
    pub region: String,
}

/// The fake's cloud. The default has three GPU types in three data centers with 8 free GPUs of
/// each type in each; names and shapes follow RunPod's catalog, prices are illustrative.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// GPU types.
    pub gpu_types: Vec<GpuTypeSpec>,
    /// Data centers.
    pub data_centers: Vec<DataCenterSpec>,
    /// Free GPUs per (GPU type id, data center id); a pair not listed has none and is not
    /// offered there.
    pub stock: BTreeMap<(String, String), u32>,
    /// Seconds a pod stays `PROVISIONING`.
    pub provision_seconds: f64,
    /// Seconds a pod's container takes from `STARTING` to `RUNNING`.
    pub start_seconds: f64,
    /// Requests per minute per user (RunPod's example policy: 60).
    pub requests_per_minute: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        let gpu = |id: &str, name: &str, memory_gb, secure, community, max_count| GpuTypeSpec {
            id: id.into(),
            name: name.into(),
            memory_gb,
            price_secure: secure,
            price_community: community,
            max_count,
        };
        let gpu_types = vec![
            gpu("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34, 8),
            gpu("NVIDIA A40", "A40", 48, 0.40, 0.35, 8),
            gpu("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.69, 2.39, 8),
        ];
        let dc = |id: &str, name: &str, region: &str| DataCenterSpec {
            id: id.into(),
            name: name.into(),
            region: region.into(),
        };
        let data_centers = vec![
            dc("US-TX-3", "US Texas 3", "NORTH_AMERICA"),
            dc("US-KS-2", "US Kansas 2", "NORTH_AMERICA"),
            dc("EU-RO-1", "EU Romania 1", "EUROPE"),
        ];
        let stock = gpu_types
            .iter()
            .flat_map(|g| {
                data_centers
                    .iter()
                    .map(|d| ((g.id.clone(), d.id.clone()), 8))
            })
            .collect();
        Scenario {
            gpu_types,
            data_centers,
            stock,
            provision_seconds: 5.0,
            start_seconds: 10.0,
            requests_per_minute: 60,
        }
    }
}

impl Scenario {
    /// The GPU type `id`.
    pub fn gpu_type(&self, id: &str) -> Option<&GpuTypeSpec> {
        self.gpu_types.iter().find(|g| g.id == id)
    }
}
