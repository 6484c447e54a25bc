//! Instances: launch, list, get, rename, restart, terminate, and the lifecycle
//! booting → active (→ unhealthy) → terminating → terminated.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use lambda_cloud::{
    ErrorCode, FilesystemMountEntry, ImageSpecification, Instance, InstanceIdsRequest,
    InstanceLaunchResponse, InstanceModificationRequest, InstanceRestartResponse, InstanceStatus,
    InstanceTerminateResponse, LaunchInstanceRequest, Redacted, TagEntry, Validate,
};
use serde::Deserialize;

use crate::answer::{Data, JsonBody, data};
use crate::catalog::instance_type_model;
use crate::failure::ApiFailure;
use crate::machine::{BillingRecord, Effect, Gpus, SimInstance, availability};
use crate::scenario::InstanceBehavior;
use crate::shared::Shared;
use crate::world::World;

impl World {
    fn instance_mut(&mut self, id: &str) -> Result<&mut SimInstance, ApiFailure> {
        self.instances
            .iter_mut()
            .find(|i| i.instance.id == id)
            .ok_or_else(|| ApiFailure::instance_missing(id))
    }

    fn check_instances_exist(&self, request: &InstanceIdsRequest) -> Result<(), ApiFailure> {
        for id in &request.instance_ids {
            if !self.instances.iter().any(|i| &i.instance.id == id) {
                return Err(ApiFailure::instance_missing(id.as_str()));
            }
        }
        Ok(())
    }

    /// The filesystems a launch mounts (id, mount point, region, name) and their names; each
    /// must exist and be in the launch's region.
    #[allow(clippy::type_complexity)]
    fn launch_mounts(
        &self,
        request: &LaunchInstanceRequest,
        region: &lambda_cloud::Region,
    ) -> Result<
        (
            Vec<(
                lambda_cloud::FilesystemId,
                String,
                lambda_cloud::Region,
                String,
            )>,
            Vec<String>,
        ),
        ApiFailure,
    > {
        let mut mounts = Vec::new();
        let mut filesystem_names = Vec::new();
        for name in &request.file_system_names {
            let Some(fs) = self.filesystems.iter().find(|f| &f.name == name) else {
                return Err(ApiFailure::missing("filesystem", name));
            };
            mounts.push((
                fs.id.clone(),
                fs.mount_point.clone(),
                fs.region.clone(),
                fs.name.clone(),
            ));
        }
        for mount in &request.file_system_mounts {
            let Some(fs) = self
                .filesystems
                .iter()
                .find(|f| f.id == mount.file_system_id)
            else {
                return Err(ApiFailure::missing(
                    "filesystem",
                    mount.file_system_id.as_str(),
                ));
            };
            mounts.retain(|(id, ..)| id != &fs.id);
            mounts.push((
                fs.id.clone(),
                mount.mount_point.clone(),
                fs.region.clone(),
                fs.name.clone(),
            ));
        }
        for (_, _, fs_region, name) in &mounts {
            if fs_region.name != region.name {
                return Err(ApiFailure::new(
                    400,
                    ErrorCode::FileSystemInWrongRegion,
                    format!(
                        "Filesystem {name:?} is in {}, not in {}.",
                        fs_region.name, region.name
                    ),
                )
                .suggest("Launch in the filesystem's region or use another filesystem."));
            }
            filesystem_names.push(name.clone());
        }
        Ok((mounts, filesystem_names))
    }

    /// The launch's image exists in its region, for its type's architecture.
    fn check_launch_image(
        &self,
        image: &ImageSpecification,
        region: &lambda_cloud::Region,
        spec: &crate::scenario::InstanceTypeSpec,
    ) -> Result<(), ApiFailure> {
        let images = self.images();
        let found = images.iter().find(|i| {
            i.region.name == region.name
                && match image {
                    ImageSpecification::Id { id } => &i.id == id,
                    ImageSpecification::Family { family } => {
                        &i.family == family && i.architecture == spec.architecture
                    }
                }
        });
        match (found, image) {
            (None, ImageSpecification::Id { id }) => {
                return Err(ApiFailure::missing("image", id.as_str()));
            }
            (None, ImageSpecification::Family { family }) => {
                return Err(ApiFailure::missing(
                    "image family",
                    &format!("{family} ({}) in {}", spec.architecture, region.name),
                ));
            }
            (Some(found), _) if found.architecture != spec.architecture => {
                return Err(ApiFailure::invalid(format!(
                    "Image {} is for {}, but {} is {}.",
                    found.id, found.architecture, spec.name, spec.architecture
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// The launch's firewall rulesets exist, in its region.
    fn check_launch_rulesets(
        &self,
        request: &LaunchInstanceRequest,
        region: &lambda_cloud::Region,
    ) -> Result<(), ApiFailure> {
        for entry in &request.firewall_rulesets {
            let Some(ruleset) = self.rulesets.iter().find(|r| r.id == entry.id) else {
                return Err(ApiFailure::missing("firewall ruleset", entry.id.as_str()));
            };
            if ruleset.region.name != region.name {
                return Err(ApiFailure::invalid(format!(
                    "Firewall ruleset {} is in {}; the instance must be in the same region.",
                    ruleset.id, ruleset.region.name
                )));
            }
        }
        Ok(())
    }

    /// The account's quota and the pair's capacity leave room for one more machine.
    fn check_launch_room(&self, type_name: &str, region_name: &str) -> Result<(), ApiFailure> {
        if let Some(max) = self.scenario.max_instances {
            let alive = self
                .instances
                .iter()
                .filter(|i| !i.terminate_requested)
                .count();
            if alive >= max as usize {
                return Err(
                    ApiFailure::new(400, ErrorCode::QuotaExceeded, "Quota exceeded.")
                        .suggest("Contact Support to increase your quota."),
                );
            }
        }
        if self.free_capacity(type_name, region_name) == 0 {
            return Err(ApiFailure::new(
                400,
                ErrorCode::InsufficientCapacity,
                "Not enough capacity to fulfill launch request.",
            )
            .suggest("Choose another instance type or region, or try again later."));
        }

        Ok(())
    }

    /// The instance the API shows for a launch of `spec` in `region`, as it boots.
    #[allow(clippy::type_complexity)]
    fn instance_model(
        &mut self,
        id: &lambda_cloud::InstanceId,
        request: &LaunchInstanceRequest,
        spec: &crate::scenario::InstanceTypeSpec,
        region: &lambda_cloud::Region,
        mounts: &[(
            lambda_cloud::FilesystemId,
            String,
            lambda_cloud::Region,
            String,
        )],
        filesystem_names: Vec<String>,
    ) -> Instance {
        let jupyter_token = self.new_id();
        Instance {
            id: id.clone(),
            name: request.name.clone(),
            ip: None,
            private_ip: None,
            status: InstanceStatus::Booting,
            ssh_key_names: request.ssh_key_names.clone(),
            file_system_names: filesystem_names,
            file_system_mounts: (!mounts.is_empty()).then(|| {
                mounts
                    .iter()
                    .map(|(id, mount_point, ..)| FilesystemMountEntry {
                        mount_point: mount_point.clone(),
                        file_system_id: id.clone(),
                    })
                    .collect()
            }),
            region: region.clone(),
            instance_type: instance_type_model(spec),
            hostname: request.hostname.clone(),
            jupyter_token: Some(Redacted::new(jupyter_token.clone())),
            // Lambda's are `https://jupyter-<id>.lambdaspaces.com/?token=<token>` (the spec's
            // example), out of reach offline: the simulator serves its own (`sim_routes::jupyter`).
            jupyter_url: Some(Redacted::new(format!(
                "{}/_sim/jupyter/{}/?token={jupyter_token}",
                self.base_url,
                id.as_str()
            ))),
            actions: availability(&InstanceStatus::Booting),
            tags: request
                .tags
                .iter()
                .map(|t| TagEntry {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect(),
            firewall_rulesets: request.firewall_rulesets.clone(),
        }
    }

    pub(crate) fn launch(
        &mut self,
        request: LaunchInstanceRequest,
    ) -> Result<InstanceLaunchResponse, ApiFailure> {
        request.validate()?;
        let type_name = request.instance_type_name.as_str();
        let region_name = request.region_name.as_str();
        let Some(spec) = self.instance_type_spec(type_name).cloned() else {
            return Err(ApiFailure::missing("instance type", type_name));
        };
        let Some(region) = self.region(region_name) else {
            return Err(ApiFailure::missing("region", region_name));
        };
        let key = &request.ssh_key_names[0];
        if !self.ssh_keys.iter().any(|k| &k.name == key) {
            return Err(ApiFailure::missing("SSH key", key));
        }
        let (mounts, filesystem_names) = self.launch_mounts(&request, &region)?;
        if let Some(image) = &request.image {
            self.check_launch_image(image, &region, &spec)?;
        }
        self.check_launch_rulesets(&request, &region)?;
        self.check_launch_room(type_name, region_name)?;

        self.launches += 1;
        let behavior = self
            .scenario
            .instance_behaviors
            .iter()
            .find(|b| b.launch == self.launches)
            .map(|b| b.behavior);
        let boot = spec.boot_seconds.min
            + self.rng.f64() * (spec.boot_seconds.max - spec.boot_seconds.min);
        let active_at = match behavior {
            Some(InstanceBehavior::NeverActive) => None,
            _ => Some(self.now + boot),
        };
        let unhealthy_at = match behavior {
            Some(InstanceBehavior::UnhealthyAfter { seconds }) => active_at.map(|at| at + seconds),
            _ => None,
        };
        let id = lambda_cloud::InstanceId::new(self.new_id());
        let instance =
            self.instance_model(&id, &request, &spec, &region, &mounts, filesystem_names);
        let host = self.next_host;
        self.next_host += 1;
        self.billing.push(BillingRecord {
            id: id.clone(),
            name: request.name.as_ref().map(ToString::to_string),
            instance_type: spec.name.as_str().into(),
            region: region.name.clone(),
            price_cents_per_hour: spec.price_cents_per_hour,
            launched_at: self.now,
            ended_at: None,
        });
        let missing = match behavior {
            Some(InstanceBehavior::GpusMissing { count }) => count,
            _ => 0,
        };
        self.instances.push(SimInstance {
            instance,
            gpus: Gpus {
                model: spec.gpu_description.clone(),
                visible: spec.gpus.saturating_sub(missing),
            },
            user_data: request.user_data,
            host,
            public_ip: self.scenario.public_ip.clone(),
            active_at,
            unhealthy_at,
            restart_until: None,
            terminated_at: None,
            terminate_requested: false,
            user_data_started: false,
        });
        self.record_audit(
            "instance",
            "launched",
            id.as_str(),
            &[("instance_type", type_name), ("region", region_name)],
        );
        Ok(InstanceLaunchResponse {
            instance_ids: vec![id],
        })
    }

    pub(crate) fn terminate(
        &mut self,
        request: &InstanceIdsRequest,
    ) -> Result<InstanceTerminateResponse, ApiFailure> {
        request.validate()?;
        self.check_instances_exist(request)?;
        let now = self.now;
        let terminate_seconds = self.scenario.terminate_seconds;
        let mut terminated = Vec::new();
        for id in &request.instance_ids {
            let instance = self.instance_mut(id.as_str())?;
            if !instance.terminate_requested {
                instance.terminate_requested = true;
                instance.terminated_at = Some(now + terminate_seconds);
                instance.advance(now);
                if let Some(record) = self.billing.iter_mut().find(|r| &r.id == id) {
                    record.ended_at = Some(now);
                }
                self.effects.push(Effect::StopUserData { id: id.clone() });
                self.record_audit("instance", "terminated", id.as_str(), &[]);
            }
            terminated.push(self.instance_mut(id.as_str())?.instance.clone());
        }
        Ok(InstanceTerminateResponse {
            terminated_instances: terminated,
        })
    }

    fn restart(
        &mut self,
        request: &InstanceIdsRequest,
    ) -> Result<InstanceRestartResponse, ApiFailure> {
        request.validate()?;
        self.check_instances_exist(request)?;
        let now = self.now;
        let until = now + self.scenario.restart_seconds;
        for id in &request.instance_ids {
            let status = &self.instance_mut(id.as_str())?.instance.status;
            if !matches!(status, InstanceStatus::Active | InstanceStatus::Unhealthy) {
                return Err(ApiFailure::new(
                    409,
                    ErrorCode::Conflict,
                    format!("Instance {id} is {status} and cannot be restarted now."),
                ));
            }
        }
        let mut restarted = Vec::new();
        for id in &request.instance_ids {
            let instance = self.instance_mut(id.as_str())?;
            instance.restart_until = Some(until);
            instance.unhealthy_at = None;
            instance.advance(now);
            restarted.push(instance.instance.clone());
        }
        Ok(InstanceRestartResponse {
            restarted_instances: restarted,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    cluster_id: Option<String>,
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ListQuery>,
) -> Data<Vec<Instance>> {
    data(shared.with_world(|world| {
        if query.cluster_id.is_some() {
            // The simulator has no 1-Click Clusters: no instance belongs to one.
            return Vec::new();
        }
        world.instances.iter().map(|i| i.instance.clone()).collect()
    }))
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<Instance>, ApiFailure> {
    shared.with_world(|world| Ok(data(world.instance_mut(&id)?.instance.clone())))
}

pub(crate) async fn rename(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<InstanceModificationRequest>,
) -> Result<Data<Instance>, ApiFailure> {
    request.validate()?;
    shared.with_world(|world| {
        let instance = world.instance_mut(&id)?;
        if let Some(name) = request.name {
            instance.instance.name = Some(name);
        }
        Ok(data(instance.instance.clone()))
    })
}

pub(crate) async fn launch(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<LaunchInstanceRequest>,
) -> Result<Data<InstanceLaunchResponse>, ApiFailure> {
    shared.with_world(|world| world.launch(request)).map(data)
}

pub(crate) async fn terminate(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<InstanceIdsRequest>,
) -> Result<Data<InstanceTerminateResponse>, ApiFailure> {
    shared
        .with_world(|world| world.terminate(&request))
        .map(data)
}

pub(crate) async fn restart(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<InstanceIdsRequest>,
) -> Result<Data<InstanceRestartResponse>, ApiFailure> {
    shared.with_world(|world| world.restart(&request)).map(data)
}
