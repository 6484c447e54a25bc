//! `firewall`: per-region rulesets and the global ruleset, named by id or name (`global` for
//! the global one).

use anyhow::{Result, bail};
use clap::Subcommand;
use lambda_cloud::{FirewallRule, FirewallRulesetCreateRequest, FirewallRulesetPatchRequest};
use lambda_gha_cli::firewall::{edit_rules, parse_rule, rules_table, rulesets_table};
use lambda_gha_cli::names;

use super::Out;

/// The id by which the API names the global ruleset.
const GLOBAL: &str = "global";

#[derive(Subcommand)]
pub(crate) enum FirewallCommand {
    /// List the rulesets: region, how many rules, how many instances use each.
    List,
    /// One ruleset's rules (`global` for the global ruleset).
    Show {
        /// The ruleset's id or name, or `global`.
        ruleset: String,
    },
    /// Create a ruleset in a region; its machines admit only what its rules admit.
    Create {
        /// The ruleset's name.
        name: String,
        /// The region whose machines can use it.
        #[arg(long)]
        region: String,
        /// A rule, `PROTOCOL:PORTS:SOURCE[:NOTE]` (`tcp:22:0.0.0.0/0`), repeatable.
        #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule)]
        rules: Vec<FirewallRule>,
    },
    /// Change a ruleset (`global` for the global one): rename it, replace its rules, or add
    /// and remove some.
    Update {
        /// The ruleset's id or name, or `global`.
        ruleset: String,
        /// A new name (not for the global ruleset).
        #[arg(long)]
        name: Option<String>,
        /// Replace every rule with these, `PROTOCOL:PORTS:SOURCE[:NOTE]`, repeatable.
        #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule,
              conflicts_with_all = ["add_rules", "remove_rules"])]
        rules: Vec<FirewallRule>,
        /// Add a rule, repeatable.
        #[arg(long = "add-rule", value_name = "RULE", value_parser = parse_rule)]
        add_rules: Vec<FirewallRule>,
        /// Remove the rule admitting this traffic (its note aside), repeatable.
        #[arg(long = "remove-rule", value_name = "RULE", value_parser = parse_rule)]
        remove_rules: Vec<FirewallRule>,
    },
    /// Delete a ruleset (no instance may be using it).
    Rm {
        /// The ruleset's id or name.
        ruleset: String,
    },
}

pub(crate) async fn firewall(
    client: &lambda_cloud::Client,
    command: FirewallCommand,
    out: &Out,
) -> Result<()> {
    let api = client.firewall_rulesets();
    match command {
        FirewallCommand::List => {
            let list = api.list().await?;
            out.show(&list, |v| rulesets_table(v))?;
        }
        FirewallCommand::Show { ruleset } if ruleset == GLOBAL => {
            let global = api.get_global().await?;
            out.show(&global, |g| rules_table(&g.rules))?;
        }
        FirewallCommand::Show { ruleset } => {
            let list = api.list().await?;
            let found = names::resolve(&list, &ruleset)?;
            out.show(found, |r| rules_table(&r.rules))?;
        }
        FirewallCommand::Create {
            name,
            region,
            rules,
        } => {
            warn_without_ssh(&rules, out);
            let request = FirewallRulesetCreateRequest {
                name,
                region: region.as_str().into(),
                rules,
            };
            let created = api.create(&request).await?;
            out.note(&format!(
                "created firewall ruleset {} ({}) in {}",
                created.name, created.id, created.region.name
            ));
            out.show(&created, |r| rules_table(&r.rules))?;
        }
        FirewallCommand::Update {
            ruleset,
            name,
            rules,
            add_rules,
            remove_rules,
        } => {
            let edit = Edit {
                name,
                replace: rules,
                add: add_rules,
                remove: remove_rules,
            };
            update(client, &ruleset, edit, out).await?;
        }
        FirewallCommand::Rm { ruleset } => {
            if ruleset == GLOBAL {
                bail!(
                    "the global ruleset cannot be deleted; empty it with `firewall update global --rule …`"
                );
            }
            let list = api.list().await?;
            let found = names::resolve(&list, &ruleset)?;
            if !found.instance_ids.is_empty() {
                bail!(
                    "{} ({}) is used by {} instance(s): terminate them first ({})",
                    found.name,
                    found.id,
                    found.instance_ids.len(),
                    found
                        .instance_ids
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            api.delete(found.id.clone()).await?;
            out.note(&format!(
                "deleted firewall ruleset {} ({})",
                found.name, found.id
            ));
        }
    }
    Ok(())
}

/// What `update` changes.
struct Edit {
    name: Option<String>,
    replace: Vec<FirewallRule>,
    add: Vec<FirewallRule>,
    remove: Vec<FirewallRule>,
}

impl Edit {
    /// The rules after the edit, or `None` when the edit leaves them alone.
    fn rules(&self, current: &[FirewallRule]) -> Result<Option<Vec<FirewallRule>>> {
        if !self.replace.is_empty() {
            return Ok(Some(self.replace.clone()));
        }
        if self.add.is_empty() && self.remove.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            edit_rules(current.to_vec(), &self.add, &self.remove).map_err(anyhow::Error::msg)?,
        ))
    }
}

async fn update(client: &lambda_cloud::Client, ruleset: &str, edit: Edit, out: &Out) -> Result<()> {
    let api = client.firewall_rulesets();
    if ruleset == GLOBAL {
        if edit.name.is_some() {
            bail!("the global ruleset keeps its name: leave out --name");
        }
        let current = api.get_global().await?;
        let Some(rules) = edit.rules(&current.rules)? else {
            bail!("nothing to change: give --rule, --add-rule or --remove-rule");
        };
        warn_without_ssh(&rules, out);
        let updated = api.update_global(rules).await?;
        out.note("updated the global firewall ruleset");
        return out.show(&updated, |g| rules_table(&g.rules));
    }
    let list = api.list().await?;
    let found = names::resolve(&list, ruleset)?;
    let rules = edit.rules(&found.rules)?;
    if rules.is_none() && edit.name.is_none() {
        bail!("nothing to change: give --name, --rule, --add-rule or --remove-rule");
    }
    if let Some(rules) = &rules {
        warn_without_ssh(rules, out);
    }
    let patch = FirewallRulesetPatchRequest {
        name: edit.name,
        rules,
    };
    let updated = api.update(found.id.clone(), &patch).await?;
    out.note(&format!(
        "updated firewall ruleset {} ({})",
        updated.name, updated.id
    ));
    out.show(&updated, |r| rules_table(&r.rules))
}

/// Rules that shut SSH out are allowed, but said: `ssh` and `run` need port 22.
fn warn_without_ssh(rules: &[FirewallRule], out: &Out) {
    let admits_ssh = rules.iter().any(|rule| match rule.port_range {
        Some([low, high]) => {
            matches!(
                rule.protocol,
                lambda_cloud::NetworkProtocol::Tcp | lambda_cloud::NetworkProtocol::All
            ) && low <= 22
                && 22 <= high
        }
        None => false,
    });
    if !admits_ssh {
        out.note("note: no rule admits SSH (tcp:22): `lambda-gha ssh` and `run` cannot reach machines under these rules");
    }
}
