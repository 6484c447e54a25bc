//! Instance types: what machines exist, what they cost, and where capacity is free now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::Result;
use crate::ids::InstanceTypeName;
use crate::operations;
use crate::regions::{Region, RegionName};

/// Hardware of an instance type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceTypeSpecs {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// RAM in GiB.
    pub memory_gib: u32,
    /// Storage in GiB.
    pub storage_gib: u32,
    /// GPUs.
    pub gpus: u32,
}

/// An instance type, e.g. `gpu_1x_a10`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceType {
    /// The name, used to launch it.
    pub name: InstanceTypeName,
    /// A description, e.g. `1x A10 (24 GB PCIe)`.
    pub description: String,
    /// The GPU, e.g. `A10 (24 GB PCIe)`.
    pub gpu_description: String,
    /// The price in US cents per hour.
    pub price_cents_per_hour: u32,
    /// Detailed technical specifications for the instance type.
    pub specs: InstanceTypeSpecs,
}

impl InstanceType {
    /// The price in US dollars per hour.
    pub fn price_dollars_per_hour(&self) -> f64 {
        f64::from(self.price_cents_per_hour) / 100.0
    }
}

/// An instance type with the regions where it can be launched now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceTypesItem {
    /// The instance type.
    pub instance_type: InstanceType,
    /// Regions with capacity available now. A hint: capacity can vanish before a launch.
    pub regions_with_capacity_available: Vec<Region>,
}

impl InstanceTypesItem {
    /// Whether the type has capacity in `region` now (a hint, not a promise).
    pub fn has_capacity_in(&self, region: &RegionName) -> bool {
        self.regions_with_capacity_available
            .iter()
            .any(|r| &r.name == region)
    }
}

/// Every instance type, keyed by name (the shape the API answers with).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceTypes(pub BTreeMap<InstanceTypeName, InstanceTypesItem>);

impl InstanceTypes {
    /// The entry for one type.
    pub fn get(&self, name: &str) -> Option<&InstanceTypesItem> {
        self.0.get(name)
    }

    /// All entries, by name.
    pub fn iter(&self) -> impl Iterator<Item = &InstanceTypesItem> {
        self.0.values()
    }

    /// How many types there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All entries, cheapest first (ties by name).
    pub fn by_price(&self) -> Vec<&InstanceTypesItem> {
        let mut items: Vec<_> = self.0.values().collect();
        items.sort_by(|a, b| {
            (a.instance_type.price_cents_per_hour, &a.instance_type.name)
                .cmp(&(b.instance_type.price_cents_per_hour, &b.instance_type.name))
        });
        items
    }

    /// Entries with capacity somewhere now, cheapest first.
    pub fn available(&self) -> Vec<&InstanceTypesItem> {
        self.by_price()
            .into_iter()
            .filter(|item| !item.regions_with_capacity_available.is_empty())
            .collect()
    }
}

impl IntoIterator for InstanceTypes {
    type Item = (InstanceTypeName, InstanceTypesItem);
    type IntoIter = std::collections::btree_map::IntoIter<InstanceTypeName, InstanceTypesItem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The `instance-types` API area. Get it from [`Client::instance_types`].
#[derive(Debug, Clone, Copy)]
pub struct InstanceTypesApi<'c> {
    client: &'c Client,
}

impl Client {
    /// Instance types and their availability.
    pub fn instance_types(&self) -> InstanceTypesApi<'_> {
        InstanceTypesApi { client: self }
    }
}

impl InstanceTypesApi<'_> {
    /// Every instance type with price, specs and regions with capacity now
    /// (`GET /api/v1/instance-types`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let types = client.instance_types().list().await?;
    /// for item in types.available() {
    ///     let t = &item.instance_type;
    ///     println!("{} ${:.2}/h", t.name, t.price_dollars_per_hour());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<InstanceTypes> {
        self.client
            .data(Call::new(&operations::INSTANCE_TYPES_LIST))
            .await
    }
}
