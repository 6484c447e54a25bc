//! What the cloud offers: regions, instance types with prices and live capacity, and images.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use lambda_cloud::{
    Image, ImageArchitecture, ImageId, InstanceType, InstanceTypeSpecs, InstanceTypes,
    InstanceTypesItem, Region,
};

use crate::answer::{Data, data};
use crate::failure::ApiFailure;
use crate::scenario::InstanceTypeSpec;
use crate::shared::Shared;
use crate::world::World;

impl World {
    pub(crate) fn region(&self, name: &str) -> Option<Region> {
        self.scenario
            .regions
            .iter()
            .find(|r| r.name == name)
            .map(|r| Region {
                name: r.name.as_str().into(),
                description: r.description.clone(),
            })
    }

    /// The region `name`, or the 400 that creating something in an unknown region earns.
    pub(crate) fn known_region(&self, name: &str) -> Result<Region, ApiFailure> {
        self.region(name)
            .ok_or_else(|| ApiFailure::invalid(format!("Region {name:?} does not exist.")))
    }

    pub(crate) fn instance_type_spec(&self, name: &str) -> Option<&InstanceTypeSpec> {
        self.scenario.instance_types.iter().find(|t| t.name == name)
    }

    /// Machines of a type free in a region now: the scenario's capacity minus what is running.
    pub(crate) fn free_capacity(&self, instance_type: &str, region: &str) -> u32 {
        let total = self.scenario.capacity_at(instance_type, region, self.now);
        let used = self
            .instances
            .iter()
            .filter(|i| i.holds_machine(self.now))
            .filter(|i| {
                i.instance.instance_type.name == instance_type
                    && i.instance.region.name.as_str() == region
            })
            .count();
        total.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
    }

    pub(crate) fn instance_types(&self) -> InstanceTypes {
        let mut types = BTreeMap::new();
        for spec in &self.scenario.instance_types {
            let regions = self
                .scenario
                .regions
                .iter()
                .filter(|r| self.free_capacity(&spec.name, &r.name) > 0)
                .filter_map(|r| self.region(&r.name))
                .collect();
            types.insert(
                spec.name.as_str().into(),
                InstanceTypesItem {
                    instance_type: instance_type_model(spec),
                    regions_with_capacity_available: regions,
                },
            );
        }
        InstanceTypes(types)
    }

    pub(crate) fn images(&self) -> Vec<Image> {
        let created = self.clock.timestamp(-86_400.0 * 30.0);
        let mut images = Vec::new();
        for region in &self.scenario.regions {
            for family in &self.scenario.image_families {
                for architecture in [ImageArchitecture::X86_64, ImageArchitecture::Arm64] {
                    images.push(Image {
                        id: image_id(&region.name, family, &architecture),
                        created_time: created,
                        updated_time: created,
                        name: format!("{family}-{architecture}"),
                        description: format!("{family} for {architecture}"),
                        family: family.clone(),
                        version: "2025.11.1".to_owned(),
                        architecture,
                        region: Region {
                            name: region.name.as_str().into(),
                            description: region.description.clone(),
                        },
                    });
                }
            }
        }
        images
    }
}

pub(crate) fn instance_type_model(spec: &InstanceTypeSpec) -> InstanceType {
    InstanceType {
        name: spec.name.as_str().into(),
        description: spec.description.clone(),
        gpu_description: spec.gpu_description.clone(),
        price_cents_per_hour: spec.price_cents_per_hour,
        specs: InstanceTypeSpecs {
            vcpus: spec.vcpus,
            memory_gib: spec.memory_gib,
            storage_gib: spec.storage_gib,
            gpus: spec.gpus,
        },
    }
}

/// A stable id per (region, family, architecture), shaped like Lambda's (32 hex digits).
fn image_id(region: &str, family: &str, architecture: &ImageArchitecture) -> ImageId {
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for byte in format!("{region}/{family}/{architecture}").bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    ImageId::new(format!("{hash:032x}"))
}

pub(crate) async fn list_instance_types(
    State(shared): State<Arc<Shared>>,
) -> Result<Data<InstanceTypes>, ApiFailure> {
    Ok(data(shared.with_world(|world| world.instance_types())))
}

pub(crate) async fn list_regions(
    State(shared): State<Arc<Shared>>,
) -> Result<Data<Vec<Region>>, ApiFailure> {
    Ok(data(shared.with_world(|world| {
        world
            .scenario
            .regions
            .iter()
            .filter_map(|r| world.region(&r.name))
            .collect()
    })))
}

pub(crate) async fn list_images(
    State(shared): State<Arc<Shared>>,
) -> Result<Data<Vec<Image>>, ApiFailure> {
    Ok(data(shared.with_world(|world| world.images())))
}
