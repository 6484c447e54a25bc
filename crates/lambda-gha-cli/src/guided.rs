//! `launch --interactive`: a launch put together by answering questions that offer only what
//! exists — types with capacity first, regions where the chosen type has it first, the
//! account's SSH keys, the filesystems and firewall rulesets of the chosen region — then a
//! summary with the price to confirm.

use std::io::{self, BufRead, Write};

use lambda_cloud::{Filesystem, FirewallRuleset, InstanceTypes, Region, SshKey};

use crate::launch::LaunchRequest;
use crate::prompt::{Choice, Prompter};
use crate::tables::{TypeFilter, TypeView, types};

/// What the account has to offer, read before the first question.
pub struct Offer {
    /// The catalog, with capacity.
    pub catalog: InstanceTypes,
    /// Every region (for their descriptions).
    pub regions: Vec<Region>,
    /// The account's SSH keys.
    pub ssh_keys: Vec<SshKey>,
    /// The account's filesystems.
    pub filesystems: Vec<Filesystem>,
    /// The account's firewall rulesets.
    pub rulesets: Vec<FirewallRuleset>,
}

fn type_label(view: &TypeView) -> String {
    let where_ = if view.regions_available.is_empty() {
        "no capacity now".to_owned()
    } else {
        format!("capacity in {}", view.regions_available.join(", "))
    };
    format!(
        "{:<24} {}× {:<28} ${:>6.2}/h  {where_}",
        view.name, view.gpus, view.gpu, view.price_per_hour
    )
}

/// Asks for a launch on `prompter`; `None` when the summary is not confirmed. Fails when the
/// account lacks what any launch needs (an SSH key, a type).
pub fn ask<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    offer: &Offer,
) -> io::Result<Option<LaunchRequest>> {
    if offer.ssh_keys.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the account has no SSH key to launch with: add one with \
             `lambda-gha ssh-keys add NAME ~/.ssh/id_ed25519.pub`",
        ));
    }
    let chosen = choose_type(prompter, offer)?;
    let region = choose_region(prompter, offer, &chosen)?;
    let key_choices: Vec<Choice<String>> = offer
        .ssh_keys
        .iter()
        .map(|k| Choice {
            value: k.name.clone(),
            label: format!(
                "{:<24} {}",
                k.name,
                k.public_key.chars().take(40).collect::<String>()
            ),
        })
        .collect();
    let ssh_key = prompter.choose("SSH key:", &key_choices)?;
    let (filesystems, firewall_rulesets) = choose_in_region(prompter, offer, &region)?;
    let name = prompter.text("Name (optional)")?;
    let request = LaunchRequest {
        instance_types: vec![chosen.name.clone()],
        regions: vec![region],
        ssh_key,
        name,
        filesystems,
        firewall_rulesets,
        ..LaunchRequest::default()
    };
    prompter.say(&summary(&request, &chosen))?;
    Ok(prompter.confirm("Launch it?")?.then_some(request))
}

/// The type: cheapest first, those with capacity before those without.
fn choose_type<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    offer: &Offer,
) -> io::Result<TypeView> {
    let mut views = types(&offer.catalog, &TypeFilter::default());
    views.sort_by_key(|v| v.regions_available.is_empty());
    let choices: Vec<Choice<TypeView>> = views
        .iter()
        .map(|v| Choice {
            value: v.clone(),
            label: type_label(v),
        })
        .collect();
    prompter.choose("Instance type:", &choices)
}

/// The region: where the chosen type has capacity first.
fn choose_region<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    offer: &Offer,
    chosen: &TypeView,
) -> io::Result<String> {
    let has_capacity = |r: &Region| chosen.regions_available.contains(&r.name.to_string());
    let mut regions: Vec<&Region> = offer.regions.iter().collect();
    regions.sort_by_key(|r| !has_capacity(r));
    let choices: Vec<Choice<String>> = regions
        .iter()
        .map(|r| Choice {
            value: r.name.to_string(),
            label: format!(
                "{:<18} {:<22} {}",
                r.name.to_string(),
                r.description,
                if has_capacity(r) {
                    "capacity now"
                } else {
                    "no capacity now"
                }
            ),
        })
        .collect();
    prompter.choose(&format!("Region for {}:", chosen.name), &choices)
}

/// The filesystems and firewall rulesets of `region` (none asked when it has none).
fn choose_in_region<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    offer: &Offer,
    region: &str,
) -> io::Result<(Vec<String>, Vec<String>)> {
    let filesystem_choices: Vec<Choice<String>> = offer
        .filesystems
        .iter()
        .filter(|f| f.region.name.as_str() == region)
        .map(|f| Choice {
            value: f.name.clone(),
            label: format!("{:<24} mounted at {}", f.name, f.mount_point),
        })
        .collect();
    let filesystems = prompter.choose_many(
        &format!("Filesystems in {region} to mount:"),
        &filesystem_choices,
    )?;
    let ruleset_choices: Vec<Choice<String>> = offer
        .rulesets
        .iter()
        .filter(|r| r.region.name.as_str() == region)
        .map(|r| Choice {
            value: r.id.to_string(),
            label: format!("{:<24} {} rule(s)", r.name, r.rules.len()),
        })
        .collect();
    let rulesets = prompter.choose_many(
        &format!("Firewall rulesets in {region} (none: the global rules alone):"),
        &ruleset_choices,
    )?;
    Ok((filesystems, rulesets))
}

/// What is about to be launched, and what it costs.
fn summary(request: &LaunchRequest, chosen: &TypeView) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        "\nLaunch {} in {} with SSH key {}",
        chosen.name,
        request.regions.join(","),
        request.ssh_key
    );
    if !request.filesystems.is_empty() {
        let _ = write!(text, ", mounting {}", request.filesystems.join(", "));
    }
    if let Some(name) = &request.name {
        let _ = write!(text, ", named {name}");
    }
    let _ = write!(
        text,
        ".\nIt bills ${:.2}/hour (${:.2}/day) until terminated: `lambda-gha terminate`.",
        chosen.price_per_hour,
        chosen.price_per_hour * 24.0
    );
    text
}
