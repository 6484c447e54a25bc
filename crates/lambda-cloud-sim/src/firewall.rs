//! Firewall: the legacy inbound rules, per-region rulesets, and the global ruleset.

use std::sync::Arc;

use axum::extract::{Path, State};
use lambda_cloud::{
    ErrorCode, FirewallRule, FirewallRulesPutRequest, FirewallRuleset,
    FirewallRulesetCreateRequest, FirewallRulesetPatchRequest, GlobalFirewallRuleset,
    GlobalFirewallRulesetPatchRequest, Validate,
};
use serde_json::{Map, Value};

use crate::answer::{Data, JsonBody, data};
use crate::failure::ApiFailure;
use crate::shared::Shared;
use crate::world::World;

impl World {
    fn ruleset_now(&self, ruleset: &FirewallRuleset) -> FirewallRuleset {
        let instance_ids = self
            .instances
            .iter()
            .filter(|i| {
                i.holds_machine(self.now)
                    && i.instance
                        .firewall_rulesets
                        .iter()
                        .any(|r| r.id == ruleset.id)
            })
            .map(|i| i.instance.id.clone())
            .collect();
        FirewallRuleset {
            instance_ids,
            ..ruleset.clone()
        }
    }

    fn ruleset_index(&self, id: &str) -> Result<usize, ApiFailure> {
        self.rulesets
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| {
                ApiFailure::new(
                    404,
                    ErrorCode::ObjectDoesNotExist,
                    "Firewall ruleset does not exist or you do not have permission to access it.",
                )
                .suggest("Check your firewall ruleset ID and try again.")
            })
    }

    fn global_ruleset(&self) -> GlobalFirewallRuleset {
        GlobalFirewallRuleset {
            id: "global".into(),
            name: "Default Workspace Global Rules".to_owned(),
            rules: self.global_rules.clone(),
        }
    }
}

pub(crate) async fn list_rules(State(shared): State<Arc<Shared>>) -> Data<Vec<FirewallRule>> {
    data(shared.with_world(|world| world.firewall_rules.clone()))
}

pub(crate) async fn set_rules(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<FirewallRulesPutRequest>,
) -> Result<Data<Vec<FirewallRule>>, ApiFailure> {
    request.validate()?;
    Ok(data(shared.with_world(|world| {
        world.firewall_rules = request.data;
        world.firewall_rules.clone()
    })))
}

pub(crate) async fn list_rulesets(State(shared): State<Arc<Shared>>) -> Data<Vec<FirewallRuleset>> {
    data(shared.with_world(|world| {
        world
            .rulesets
            .iter()
            .map(|r| world.ruleset_now(r))
            .collect()
    }))
}

pub(crate) async fn create_ruleset(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<FirewallRulesetCreateRequest>,
) -> Result<Data<FirewallRuleset>, ApiFailure> {
    request.validate()?;
    shared.with_world(|world| {
        let region = world.known_region(request.region.as_str())?;
        let ruleset = FirewallRuleset {
            id: world.new_id().into(),
            name: request.name,
            region,
            rules: request.rules,
            created: world.timestamp(),
            instance_ids: Vec::new(),
        };
        world.record_audit("firewall_ruleset", "created", ruleset.id.as_str(), &[]);
        world.rulesets.push(ruleset.clone());
        Ok(data(ruleset))
    })
}

pub(crate) async fn get_ruleset(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<FirewallRuleset>, ApiFailure> {
    shared.with_world(|world| {
        let index = world.ruleset_index(&id)?;
        Ok(data(world.ruleset_now(&world.rulesets[index])))
    })
}

pub(crate) async fn update_ruleset(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<FirewallRulesetPatchRequest>,
) -> Result<Data<FirewallRuleset>, ApiFailure> {
    patch.validate()?;
    shared.with_world(|world| {
        let index = world.ruleset_index(&id)?;
        let ruleset = &mut world.rulesets[index];
        if let Some(name) = patch.name {
            ruleset.name = name;
        }
        if let Some(rules) = patch.rules {
            ruleset.rules = rules;
        }
        Ok(data(world.ruleset_now(&world.rulesets[index])))
    })
}

pub(crate) async fn delete_ruleset(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<Map<String, Value>>, ApiFailure> {
    shared.with_world(|world| {
        let index = world.ruleset_index(&id)?;
        if !world
            .ruleset_now(&world.rulesets[index])
            .instance_ids
            .is_empty()
        {
            return Err(ApiFailure::new(
                400,
                ErrorCode::FirewallRulesetInUse,
                "Firewall ruleset is in use by one or more instances.",
            )
            .suggest("Terminate all instances that are using the ruleset before deleting it."));
        }
        let removed = world.rulesets.remove(index);
        world.record_audit("firewall_ruleset", "deleted", removed.id.as_str(), &[]);
        Ok(data(Map::new()))
    })
}

pub(crate) async fn get_global(State(shared): State<Arc<Shared>>) -> Data<GlobalFirewallRuleset> {
    data(shared.with_world(|world| world.global_ruleset()))
}

pub(crate) async fn update_global(
    State(shared): State<Arc<Shared>>,
    JsonBody(patch): JsonBody<GlobalFirewallRulesetPatchRequest>,
) -> Result<Data<GlobalFirewallRuleset>, ApiFailure> {
    patch.validate()?;
    Ok(data(shared.with_world(|world| {
        if let Some(rules) = patch.rules {
            world.global_rules = rules;
        }
        world.global_ruleset()
    })))
}
