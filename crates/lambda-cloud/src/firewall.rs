//! Inbound firewall rules: the legacy account-wide list, per-region rulesets, and the global
//! ruleset that applies across regions.

use std::net::Ipv4Addr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::{Result, ValidationError};
use crate::ids::{FirewallRulesetId, InstanceId};
use crate::operations;
use crate::regions::{Region, RegionName};
use crate::validation::{self, Validate};

open_enum! {
    /// A network protocol a rule allows.
    pub enum NetworkProtocol {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
        /// ICMP (no ports).
        Icmp = "icmp",
        /// Every protocol.
        All = "all",
    }
}

/// One inbound rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FirewallRule {
    /// The protocol to which the rule applies.
    pub protocol: NetworkProtocol,
    /// An inclusive `[min, max]` port range (`[22, 22]` for one port). Required except for
    /// ICMP, where it is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<[u16; 2]>,
    /// The allowed sources, as IPv4 CIDR (`0.0.0.0/0` for anywhere; no mask means `/32`).
    pub source_network: String,
    /// A description, at most 128 characters.
    pub description: String,
}

impl FirewallRule {
    /// A TCP rule for one port.
    pub fn tcp_port(
        port: u16,
        source_network: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        FirewallRule {
            protocol: NetworkProtocol::Tcp,
            port_range: Some([port, port]),
            source_network: source_network.into(),
            description: description.into(),
        }
    }

    /// Checks the port, network and description rules; `field` prefixes the error's path.
    pub fn check(&self, field: &str) -> Result<(), ValidationError> {
        let ports_field = format!("{field}.port_range");
        match (&self.protocol, self.port_range) {
            (NetworkProtocol::Icmp, Some(_)) => {
                return Err(ValidationError::new(
                    ports_field,
                    "is not allowed for `icmp`; remove it",
                ));
            }
            (NetworkProtocol::Tcp | NetworkProtocol::Udp | NetworkProtocol::All, None) => {
                return Err(ValidationError::new(
                    ports_field,
                    format!(
                        "is required for `{}`; use `[22, 22]` for one port",
                        self.protocol
                    ),
                ));
            }
            (_, Some([low, high])) if low == 0 || high == 0 || low > high => {
                return Err(ValidationError::new(
                    ports_field,
                    format!(
                        "must be `[min, max]` with 1 <= min <= max <= 65535 (got [{low}, {high}])"
                    ),
                ));
            }
            _ => {}
        }
        check_ipv4_network(&format!("{field}.source_network"), &self.source_network)?;
        validation::length(&format!("{field}.description"), &self.description, 0, 128)
    }
}

fn check_ipv4_network(field: &str, network: &str) -> Result<(), ValidationError> {
    let (address, mask) = match network.split_once('/') {
        Some((address, mask)) => (address, Some(mask)),
        None => (network, None),
    };
    let address_ok = address.parse::<Ipv4Addr>().is_ok();
    let mask_ok = mask.is_none_or(|mask| mask.parse::<u8>().is_ok_and(|bits| bits <= 32));
    if address_ok && mask_ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "must be an IPv4 network in CIDR notation such as `0.0.0.0/0` or `1.2.3.4/32` (got {network:?})"
            ),
        ))
    }
}

fn check_rules(rules: &[FirewallRule]) -> Result<(), ValidationError> {
    for (index, rule) in rules.iter().enumerate() {
        rule.check(&format!("rules[{index}]"))?;
    }
    Ok(())
}

/// A reference to a ruleset, as used on instances and at launch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FirewallRulesetEntry {
    /// The ruleset's id.
    pub id: FirewallRulesetId,
}

/// A set of rules that instances in one region can use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct FirewallRuleset {
    /// The unique identifier of the firewall ruleset.
    pub id: FirewallRulesetId,
    /// The name of the firewall ruleset.
    pub name: String,
    /// The region in which the firewall ruleset is deployed.
    pub region: Region,
    /// The list of firewall rules in this ruleset.
    pub rules: Vec<FirewallRule>,
    /// When it was created.
    pub created: Timestamp,
    /// The instances using it.
    pub instance_ids: Vec<InstanceId>,
}

/// The rules that apply in every region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct GlobalFirewallRuleset {
    /// Always `global`.
    pub id: FirewallRulesetId,
    /// The name of the firewall ruleset.
    pub name: String,
    /// The list of firewall rules in this ruleset.
    pub rules: Vec<FirewallRule>,
}

/// A ruleset to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRulesetCreateRequest {
    /// Its name, at most 64 characters.
    pub name: String,
    /// Where it lives: it applies to machines launched in this region.
    pub region: RegionName,
    /// The inbound traffic it admits; anything else is dropped.
    pub rules: Vec<FirewallRule>,
}

impl Validate for FirewallRulesetCreateRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validation::length("name", &self.name, 1, 64)?;
        validation::length("region", self.region.as_str(), 1, 256)?;
        check_rules(&self.rules)
    }
}

/// Changes to a ruleset; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FirewallRulesetPatchRequest {
    /// A new name, at most 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New rules, replacing the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<FirewallRule>>,
}

impl Validate for FirewallRulesetPatchRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(name) = &self.name {
            validation::length("name", name, 1, 64)?;
        }
        check_rules(self.rules.as_deref().unwrap_or_default())
    }
}

/// Changes to the global ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlobalFirewallRulesetPatchRequest {
    /// New rules, replacing the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<FirewallRule>>,
}

impl Validate for GlobalFirewallRulesetPatchRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        check_rules(self.rules.as_deref().unwrap_or_default())
    }
}

/// The legacy inbound rules to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRulesPutRequest {
    /// The complete list of rules.
    pub data: Vec<FirewallRule>,
}

impl Validate for FirewallRulesPutRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        for (index, rule) in self.data.iter().enumerate() {
            rule.check(&format!("data[{index}]"))?;
        }
        Ok(())
    }
}

/// The legacy `firewall-rules` API area. Get it from [`Client::firewall_rules`].
#[derive(Debug, Clone, Copy)]
pub struct FirewallRules<'c> {
    client: &'c Client,
}

/// The `firewall-rulesets` API area. Get it from [`Client::firewall_rulesets`].
#[derive(Debug, Clone, Copy)]
pub struct FirewallRulesets<'c> {
    client: &'c Client,
}

impl Client {
    /// The legacy account-wide inbound firewall rules.
    pub fn firewall_rules(&self) -> FirewallRules<'_> {
        FirewallRules { client: self }
    }

    /// Firewall rulesets, including the global one.
    pub fn firewall_rulesets(&self) -> FirewallRulesets<'_> {
        FirewallRulesets { client: self }
    }
}

impl FirewallRules<'_> {
    /// The inbound rules (`GET /api/v1/firewall-rules`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let rules = client.firewall_rules().list().await?;
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<FirewallRule>> {
        self.client
            .data(Call::new(&operations::FIREWALL_RULES_LIST))
            .await
    }

    /// Replaces the inbound rules (`PUT /api/v1/firewall-rules`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::FirewallRule;
    /// client.firewall_rules().set(vec![FirewallRule::tcp_port(22, "0.0.0.0/0", "SSH")]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, rules: Vec<FirewallRule>) -> Result<Vec<FirewallRule>> {
        let body = FirewallRulesPutRequest { data: rules };
        self.client
            .data(Call::new(&operations::FIREWALL_RULES_SET).validated_json(&body))
            .await
    }
}

impl FirewallRulesets<'_> {
    /// Every ruleset (`GET /api/v1/firewall-rulesets`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let rulesets = client.firewall_rulesets().list().await?;
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<FirewallRuleset>> {
        self.client
            .data(Call::new(&operations::FIREWALL_RULESETS_LIST))
            .await
    }

    /// Creates a ruleset (`POST /api/v1/firewall-rulesets`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::{FirewallRule, FirewallRulesetCreateRequest};
    /// let ruleset = client.firewall_rulesets().create(&FirewallRulesetCreateRequest {
    ///     name: "ssh-only".into(),
    ///     region: "us-east-1".into(),
    ///     rules: vec![FirewallRule::tcp_port(22, "0.0.0.0/0", "SSH")],
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, request: &FirewallRulesetCreateRequest) -> Result<FirewallRuleset> {
        self.client
            .data(Call::new(&operations::FIREWALL_RULESET_CREATE).validated_json(request))
            .await
    }

    /// One ruleset (`GET /api/v1/firewall-rulesets/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let ruleset = client.firewall_rulesets().get("c4d291f47f9d436fa39f58493ce3b50d").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: impl Into<FirewallRulesetId>) -> Result<FirewallRuleset> {
        let id: FirewallRulesetId = id.into();
        self.client
            .data(Call::new(&operations::FIREWALL_RULESET_GET).path(id.as_str()))
            .await
    }

    /// Changes a ruleset's name or rules (`PATCH /api/v1/firewall-rulesets/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::FirewallRulesetPatchRequest;
    /// let patch = FirewallRulesetPatchRequest { name: Some("renamed".into()), rules: None };
    /// client.firewall_rulesets().update("c4d291f47f9d436fa39f58493ce3b50d", &patch).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        id: impl Into<FirewallRulesetId>,
        patch: &FirewallRulesetPatchRequest,
    ) -> Result<FirewallRuleset> {
        let id: FirewallRulesetId = id.into();
        self.client
            .data(
                Call::new(&operations::FIREWALL_RULESET_UPDATE)
                    .path(id.as_str())
                    .validated_json(patch),
            )
            .await
    }

    /// Deletes a ruleset no instance uses (`DELETE /api/v1/firewall-rulesets/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.firewall_rulesets().delete("c4d291f47f9d436fa39f58493ce3b50d").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: impl Into<FirewallRulesetId>) -> Result<()> {
        let id: FirewallRulesetId = id.into();
        self.client
            .empty(Call::new(&operations::FIREWALL_RULESET_DELETE).path(id.as_str()))
            .await
    }

    /// The global ruleset (`GET /api/v1/firewall-rulesets/global`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let global = client.firewall_rulesets().get_global().await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_global(&self) -> Result<GlobalFirewallRuleset> {
        self.client
            .data(Call::new(&operations::FIREWALL_RULESET_GLOBAL_GET))
            .await
    }

    /// Replaces the global ruleset's rules (`PATCH /api/v1/firewall-rulesets/global`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::FirewallRule;
    /// client.firewall_rulesets()
    ///     .update_global(vec![FirewallRule::tcp_port(22, "0.0.0.0/0", "SSH")])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_global(&self, rules: Vec<FirewallRule>) -> Result<GlobalFirewallRuleset> {
        let body = GlobalFirewallRulesetPatchRequest { rules: Some(rules) };
        self.client
            .data(Call::new(&operations::FIREWALL_RULESET_GLOBAL_UPDATE).validated_json(&body))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: NetworkProtocol, ports: Option<[u16; 2]>, network: &str) -> FirewallRule {
        FirewallRule {
            protocol,
            port_range: ports,
            source_network: network.into(),
            description: String::new(),
        }
    }

    #[test]
    fn ports_are_required_except_for_icmp() {
        assert!(
            rule(NetworkProtocol::Tcp, Some([22, 22]), "0.0.0.0/0")
                .check("r")
                .is_ok()
        );
        assert!(
            rule(NetworkProtocol::Icmp, None, "1.2.3.4")
                .check("r")
                .is_ok()
        );
        let error = rule(NetworkProtocol::Icmp, Some([1, 2]), "0.0.0.0/0")
            .check("r")
            .unwrap_err();
        assert_eq!(error.field, "r.port_range");
        assert!(
            rule(NetworkProtocol::Udp, None, "0.0.0.0/0")
                .check("r")
                .is_err()
        );
        assert!(
            rule(NetworkProtocol::Tcp, Some([23, 22]), "0.0.0.0/0")
                .check("r")
                .is_err()
        );
        assert!(
            rule(NetworkProtocol::Tcp, Some([0, 22]), "0.0.0.0/0")
                .check("r")
                .is_err()
        );
    }

    #[test]
    fn source_networks_are_ipv4_cidr() {
        for good in ["0.0.0.0/0", "1.2.3.4", "10.0.0.0/8", "1.2.3.4/32"] {
            assert!(
                rule(NetworkProtocol::Icmp, None, good).check("r").is_ok(),
                "{good}"
            );
        }
        for bad in ["", "::/0", "1.2.3.4/33", "1.2.3/24", "example.com"] {
            assert!(
                rule(NetworkProtocol::Icmp, None, bad).check("r").is_err(),
                "{bad}"
            );
        }
    }
}
