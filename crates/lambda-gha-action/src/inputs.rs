//! The action's inputs, read from the environment as GitHub passes them (`INPUT_<NAME>`, upper
//! case), checked all at once before anything is launched. An empty input is an unset one.

use std::collections::BTreeMap;
use std::time::Duration;

use gha_runner_core::cache::CacheRequest;
use gha_runner_core::{
    CapacityPolicy, Field, InputError, MachineId, agent_config::AgentTimings,
    boot_script::RunnerPrivileges, duration::parse_duration, gpus::GpusPerRunner, health::GpuGate,
    naming::RunnerNaming, naming::parse_labels, plan::parse_list, plan::parse_type_list,
    provisioner::RunnerMode, runner_release::RunnerVersion,
};
use gha_runner_lambda::UNHEALTHY_NAME;
use secrecy::SecretString;

/// The process environment, or a test's.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: names only.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Env {
    /// This process's environment.
    pub fn from_process() -> Env {
        Env(std::env::vars().collect())
    }

    /// An environment from pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }

    /// A variable, `None` when unset or blank.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A secret variable.
    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.var(name)
            .map(|v| SecretString::from(v.trim().to_owned()))
    }

    /// Input `name` (`instance_type` → `INPUT_INSTANCE_TYPE`), trimmed.
    pub fn input(&self, name: &str) -> Option<&str> {
        self.var(&format!("INPUT_{}", name.to_ascii_uppercase()))
            .map(str::trim)
    }
}

/// `start` or `stop`.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Launch machines with runners.
    Start(Box<StartInputs>),
    /// End earlier launches.
    Stop(StopInputs),
}

/// What `start` launches.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInputs {
    /// The cloud.
    pub cloud: Cloud,
    /// Machine types, in preference order.
    pub instance_types: Vec<String>,
    /// Regions, in preference order; empty means any region.
    pub regions: Vec<String>,
    /// Machines.
    pub instance_count: usize,
    /// Runners per machine.
    pub runners_per_instance: usize,
    /// How many GPUs each runner sees.
    pub gpus_per_runner: GpusPerRunner,
    /// The GPU health gate each machine runs before its runners start.
    pub gpu_gate: GpuGate,
    /// Which GitHub runner machines install.
    pub runner_version: RunnerVersion,
    /// How many unhealthy machines are replaced before the launch fails.
    pub replace_unhealthy: u32,
    /// What to do without capacity.
    pub capacity: CapacityPolicy,
    /// Image family or id.
    pub image: Option<String>,
    /// Filesystems to mount.
    pub filesystems: Vec<String>,
    /// The cache on a filesystem per region, if asked for.
    pub cache: Option<CacheRequest>,
    /// Firewall rulesets.
    pub firewall_rulesets: Vec<String>,
    /// An existing SSH key; without one, a key is made for the launch and deleted after it.
    pub ssh_key_name: Option<String>,
    /// A public key for debug access (installed as the launch's key).
    pub ssh_pubkey: Option<String>,
    /// Extra runner labels.
    pub extra_labels: Vec<String>,
    /// How runners register.
    pub runner_mode: RunnerMode,
    /// `repo` or `org`.
    pub scope: String,
    /// The organization runner group id.
    pub runner_group: Option<u64>,
    /// The agent's timings.
    pub timings: AgentTimings,
    /// A script run as root before the runners start.
    pub userdata: Option<String>,
    /// The machines' name template (`{label}`, `{run}`, `{repo}`, `{idx}`).
    pub instance_name: Option<String>,
    /// Extra machine tags.
    pub tags: BTreeMap<String, String>,
    /// Privileges that expose the API key to jobs.
    pub privileges: RunnerPrivileges,
    /// Whether the API key goes to the machines so they can end themselves.
    pub self_terminate: bool,
    /// Refuse to launch when the worst case costs more (US dollars).
    pub max_cost_usd: Option<f64>,
    /// Verbose logs.
    pub debug: bool,
    /// The action's commit, for everything the machines fetch when it has no release.
    pub action_ref: Option<String>,
}

/// What `stop` ends.
#[derive(Debug, Clone, PartialEq)]
pub struct StopInputs {
    /// The cloud, as the start job had it.
    pub cloud: Cloud,
    /// Machines named by `instance_id` and `mtx`; each names its whole launch.
    pub machines: Vec<MachineId>,
    /// The launches' labels: `label`, and from the runner names in `mtx`.
    pub labels: Vec<String>,
    /// `repo` or `org`, as the start job had it.
    pub scope: String,
    /// Verbose logs.
    pub debug: bool,
}

/// Which cloud the machines are on: input `provider` (and, for RunPod, `runpod_cloud`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cloud {
    /// Lambda Cloud (the default).
    #[default]
    Lambda,
    /// RunPod, on its secure or community cloud.
    RunPod(gha_runner_runpod::Cloud),
}

fn cloud(env: &Env) -> Result<Cloud, InputError> {
    match env.input("provider").unwrap_or("lambda") {
        "lambda" => Ok(Cloud::Lambda),
        "runpod" => Ok(Cloud::RunPod(
            env.input("runpod_cloud")
                .unwrap_or("secure")
                .parse()
                .map_err(|e: String| InputError::new("runpod_cloud", e))?,
        )),
        other => Err(InputError::new(
            "provider",
            format!("{other:?} must be `lambda` or `runpod`"),
        )),
    }
}

/// The action's input for a setting the core names in its own words.
pub fn input_name(field: &Field) -> Option<&'static str> {
    Some(match field {
        Field::InstanceTypes => "instance_type",
        Field::Regions => "region",
        Field::MachineCount => "instance_count",
        Field::CapacityWait => "capacity_wait",
        Field::Label => "label",
        Field::ExtraLabels => "extra_gh_labels",
        Field::GpusPerRunner => "gpus_per_runner",
        Field::RunnersPerMachine => "runners_per_instance",
        Field::RunnerMode => "runner_mode",
        Field::RunnerVersion => "runner_version",
        Field::MaxCost => "max_cost_usd",
        Field::Repository => "GITHUB_REPOSITORY",
        Field::Scope => "scope",
        _ => return None,
    })
}

/// Reads every input, or the first problem found, named as the action's inputs are.
pub fn parse(env: &Env) -> Result<Mode, InputError> {
    parse_modes(env).map_err(|error| error.renamed(input_name))
}

fn parse_modes(env: &Env) -> Result<Mode, InputError> {
    let debug = flag(env, "debug", false)?;
    match env.input("mode").unwrap_or("start") {
        "start" => Ok(Mode::Start(Box::new(parse_start(env, debug)?))),
        "stop" => Ok(Mode::Stop(parse_stop(env, debug)?)),
        other => Err(InputError::new(
            "mode",
            format!("{other:?} must be `start` or `stop`"),
        )),
    }
}

fn flag(env: &Env, name: &str, default: bool) -> Result<bool, InputError> {
    match env.input(name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "yes" | "1") => Ok(true),
        Some("false" | "no" | "0") => Ok(false),
        Some(other) => Err(InputError::new(
            name,
            format!("{other:?} must be `true` or `false`"),
        )),
    }
}

fn number(
    env: &Env,
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, InputError> {
    let Some(text) = env.input(name) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(InputError::new(
            name,
            format!(
                "{text:?} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn seconds(env: &Env, name: &str, default: u64) -> Result<u64, InputError> {
    let Some(text) = env.input(name) else {
        return Ok(default);
    };
    let duration = parse_duration(text, name)?;
    if duration < Duration::from_secs(1) {
        return Err(InputError::new(
            name,
            format!("{text:?} must be at least 1s"),
        ));
    }
    Ok(duration.as_secs())
}

fn list(env: &Env, name: &str) -> Result<Vec<String>, InputError> {
    env.input(name)
        .map_or_else(|| Ok(Vec::new()), |text| parse_list(text, name))
}

fn scope(env: &Env) -> Result<String, InputError> {
    let scope = env.input("scope").unwrap_or("repo").to_owned();
    if scope != "repo" && scope != "org" {
        return Err(InputError::new(
            "scope",
            format!("{scope:?} must be `repo` or `org`"),
        ));
    }
    Ok(scope)
}

/// The GPU health gate: on (with the user's check, if any) unless `gpu_health_gate: false`.
fn gpu_gate(env: &Env) -> Result<GpuGate, InputError> {
    Ok(
        match (flag(env, "gpu_health_gate", true)?, env.input("gpu_check")) {
            (true, check) => GpuGate::On {
                check: check.map(str::to_owned),
            },
            (false, None) => GpuGate::Off,
            (false, Some(_)) => {
                return Err(InputError::new(
                    "gpu_check",
                    "runs as part of the GPU health gate, which `gpu_health_gate: false` turns off: \
                 drop one of the two",
                ));
            }
        },
    )
}

/// The organization's runner group, by its numeric id.
fn runner_group(env: &Env, scope: &str) -> Result<Option<u64>, InputError> {
    Ok(match env.input("runner_group") {
        None => None,
        Some(_) if scope != "org" => {
            return Err(InputError::new(
                "runner_group",
                "runner groups exist only for organization runners: set `scope: org` too",
            ));
        }
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            InputError::new(
                "runner_group",
                format!(
                    "{text:?} must be the group's numeric id (Settings → Actions → Runner groups: \
                     the group's URL ends in it)"
                ),
            )
        })?),
    })
}

/// The agent's timings, each in seconds (or with a unit), the lifetime longer than the
/// registration timeout.
fn timings(env: &Env) -> Result<AgentTimings, InputError> {
    let defaults = AgentTimings::default();
    let timings = AgentTimings {
        initial_grace_seconds: seconds(
            env,
            "runner_initial_grace_period",
            defaults.initial_grace_seconds,
        )?,
        grace_seconds: seconds(env, "runner_grace_period", defaults.grace_seconds)?,
        poll_seconds: seconds(env, "runner_poll_interval", defaults.poll_seconds)?,
        registration_timeout_seconds: seconds(
            env,
            "runner_registration_timeout",
            defaults.registration_timeout_seconds,
        )?,
        max_lifetime_seconds: seconds(env, "max_instance_lifetime", defaults.max_lifetime_seconds)?,
    };
    if timings.max_lifetime_seconds <= timings.registration_timeout_seconds {
        return Err(InputError::new(
            "max_instance_lifetime",
            "must be longer than `runner_registration_timeout`, or no job could ever run",
        ));
    }
    Ok(timings)
}

/// The user's own public key for the machines: one OpenSSH public key line.
fn ssh_pubkey(env: &Env) -> Result<Option<String>, InputError> {
    let ssh_pubkey = env.input("ssh_pubkey").map(str::to_owned);
    if let Some(key) = &ssh_pubkey {
        let known = [
            "ssh-ed25519 ",
            "ssh-rsa ",
            "ecdsa-sha2-",
            "sk-ssh-ed25519@openssh.com ",
        ];
        if !known.iter().any(|prefix| key.starts_with(prefix)) || key.contains('\n') {
            return Err(InputError::new(
                "ssh_pubkey",
                "must be one OpenSSH public key line, e.g. the contents of ~/.ssh/id_ed25519.pub",
            ));
        }
    }
    Ok(ssh_pubkey)
}

/// The most the launch may cost in the worst case, US dollars.
fn max_cost_usd(env: &Env) -> Result<Option<f64>, InputError> {
    Ok(match env.input("max_cost_usd") {
        None => None,
        Some(text) => Some(
            text.trim_start_matches('$')
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    InputError::new(
                        "max_cost_usd",
                        format!("{text:?} must be a positive number of US dollars, e.g. `25`"),
                    )
                })?,
        ),
    })
}

fn parse_start(env: &Env, debug: bool) -> Result<StartInputs, InputError> {
    let instance_types = match env.input("instance_type") {
        Some(text) => parse_type_list(text, "instance_type")?,
        None => {
            return Err(InputError::new(
                "instance_type",
                "is required: name one or more types, e.g. `gpu_1x_a10,gpu_1x_a100` \
                 (or set the repository variable LAMBDA_INSTANCE_TYPE)",
            ));
        }
    };
    let regions = list(env, "region")?;
    let instance_count = number(env, "instance_count", 1, 1..=100)?;
    let runners_per_instance = number(env, "runners_per_instance", 1, 1..=16)?;
    let gpus_per_runner = GpusPerRunner::parse(env.input("gpus_per_runner").unwrap_or(""))?;
    let replace_unhealthy = u32::try_from(number(env, "replace_unhealthy", 1, 0..=5)?).unwrap_or(5);
    let gpu_gate = gpu_gate(env)?;
    let capacity = CapacityPolicy::parse(env.input("capacity_wait").unwrap_or("0"))?;
    let runner_mode = RunnerMode::parse(env.input("runner_mode").unwrap_or("reusable"))?;
    let scope = scope(env)?;
    let runner_group = runner_group(env, &scope)?;
    let timings = timings(env)?;
    let ssh_pubkey = ssh_pubkey(env)?;
    let max_cost_usd = max_cost_usd(env)?;
    let action_ref = env.input("action_ref").map(str::to_owned);
    Ok(StartInputs {
        cloud: cloud(env)?,
        instance_types,
        regions,
        instance_count,
        runners_per_instance,
        gpus_per_runner,
        gpu_gate,
        runner_version: RunnerVersion::parse(env.input("runner_version").unwrap_or(""))?,
        replace_unhealthy,
        capacity,
        image: env.input("image").map(str::to_owned),
        filesystems: list(env, "filesystem")?,
        cache: CacheRequest::parse(
            env.input("cache_filesystem").unwrap_or(""),
            env.var("GITHUB_REPOSITORY").unwrap_or(""),
            "cache_filesystem",
        )?,
        firewall_rulesets: list(env, "firewall_ruleset")?,
        ssh_key_name: env.input("ssh_key_name").map(str::to_owned),
        ssh_pubkey,
        extra_labels: parse_labels(env.input("extra_gh_labels").unwrap_or(""))?,
        runner_mode,
        scope,
        runner_group,
        timings,
        userdata: env.input("userdata").map(str::to_owned),
        instance_name: env.input("instance_name").map(str::to_owned),
        tags: parse_tags(env.input("tags").unwrap_or(""))?,
        privileges: RunnerPrivileges {
            sudo: flag(env, "allow_sudo_exposing_lambda_key", false)?,
            docker: flag(env, "allow_docker_exposing_lambda_key", false)?,
        },
        self_terminate: flag(env, "self_terminate", true)?,
        max_cost_usd,
        debug,
        action_ref,
    })
}

/// Reads `key=value` pairs, comma-separated, as Lambda accepts tags. Keys under `lambda-gha:`
/// are this project's own.
pub fn parse_tags(input: &str) -> Result<BTreeMap<String, String>, InputError> {
    let mut tags = BTreeMap::new();
    if input.trim().is_empty() {
        return Ok(tags);
    }
    for item in parse_list(input, "tags")? {
        let Some((key, value)) = item.split_once('=') else {
            return Err(InputError::new(
                "tags",
                format!("{item:?} must be `key=value`"),
            ));
        };
        let valid_key = key.len() <= 55
            && key.len() >= 2
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == ':');
        if !valid_key {
            return Err(InputError::new(
                "tags",
                format!(
                    "key {key:?} must be 2 to 55 characters of a-z, 0-9, `-` and `:`, starting with a letter"
                ),
            ));
        }
        if key.starts_with("lambda-gha:") {
            return Err(InputError::new(
                "tags",
                format!("key {key:?} is reserved for lambda-gha's own tags"),
            ));
        }
        if value.len() > 128 {
            return Err(InputError::new(
                "tags",
                format!("the value of {key:?} is longer than 128 characters"),
            ));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(tags)
}

fn parse_stop(env: &Env, debug: bool) -> Result<StopInputs, InputError> {
    let mut machines: Vec<MachineId> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    if let Some(text) = env.input("instance_id") {
        for id in parse_list(text, "instance_id")? {
            machines.push(MachineId::new(id));
        }
    }
    if let Some(text) = env.input("mtx") {
        let entries: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
            InputError::new(
                "mtx",
                format!("is not the start job's `mtx` output (a JSON list): {e}"),
            )
        })?;
        for entry in entries {
            let Some(id) = entry.get("instance_id").and_then(|v| v.as_str()) else {
                return Err(InputError::new(
                    "mtx",
                    "an entry has no `instance_id`: pass the start job's `mtx` output unchanged",
                ));
            };
            let id = MachineId::new(id);
            if !machines.contains(&id) {
                machines.push(id);
            }
            let label = entry
                .get("label")
                .and_then(|v| v.as_str())
                .and_then(RunnerNaming::label_of_runner);
            if let Some(label) = label.filter(|l| !labels.iter().any(|known| known == l)) {
                labels.push(label.to_owned());
            }
        }
    }
    // The start writes its label before it launches anything: a stop after a start that was
    // killed or cancelled still knows the launch.
    if let Some(label) = env.input("label") {
        let label = RunnerNaming::with_label(label)?.label().to_owned();
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    if machines.is_empty() && labels.is_empty() {
        return Err(InputError::new(
            "instance_id",
            "`mode: stop` needs `label`, `instance_id` or `mtx` from the start job's outputs, \
             e.g. `label: ${{ needs.lambda.outputs.label }}`",
        ));
    }
    Ok(StopInputs {
        cloud: cloud(env)?,
        machines,
        labels,
        scope: scope(env)?,
        debug,
    })
}

/// Renders the `instance_name` template for a launch; `{idx}` is left for each machine.
pub fn instance_name(
    template: &str,
    label: &str,
    run: &str,
    repository: &str,
) -> Result<String, InputError> {
    let repo = repository.rsplit('/').next().unwrap_or(repository);
    let name = template
        .replace("{label}", label)
        .replace("{run}", run)
        .replace("{repo}", repo);
    let without_idx = name.replace("{idx}", "");
    if let Some(start) = without_idx.find('{') {
        let unknown: String = without_idx[start..]
            .chars()
            .take_while(|c| *c != '}')
            .collect();
        return Err(InputError::new(
            "instance_name",
            format!(
                "{unknown}}} is not a placeholder; use {{label}}, {{run}}, {{repo}} or {{idx}}"
            ),
        ));
    }
    if name.starts_with(UNHEALTHY_NAME) {
        return Err(InputError::new(
            "instance_name",
            format!(
                "{name:?} starts with {UNHEALTHY_NAME:?}, which marks a machine that failed its \
                 GPU health gate: choose another name"
            ),
        ));
    }
    if name.replace("{idx}", "99").len() > 64 {
        return Err(InputError::new(
            "instance_name",
            format!("{name:?} is longer than Lambda's 64 characters"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (format!("INPUT_{}", k.to_ascii_uppercase()), *v)),
        )
    }

    #[test]
    fn defaults_follow_ec2_gha_and_blank_inputs_are_unset() {
        let Mode::Start(start) =
            parse(&env(&[("instance_type", "gpu_1x_a10"), ("region", " ")])).unwrap()
        else {
            panic!("start is the default mode");
        };
        assert_eq!(start.instance_types, ["gpu_1x_a10"]);
        assert!(start.regions.is_empty());
        assert_eq!(start.instance_count, 1);
        assert_eq!(start.runner_mode, RunnerMode::Reusable);
        assert_eq!(start.timings, AgentTimings::default());
        assert!(start.self_terminate);
        assert_eq!(start.capacity, CapacityPolicy::FailFast);
        assert_eq!(start.gpu_gate, GpuGate::On { check: None });
    }

    #[test]
    fn the_gpu_gate_takes_a_check_or_is_turned_off() {
        let gate = |pairs: &[(&str, &str)]| {
            let mut all = vec![("instance_type", "gpu_1x_a10")];
            all.extend_from_slice(pairs);
            match parse(&env(&all)) {
                Ok(Mode::Start(start)) => Ok(start.gpu_gate),
                Ok(Mode::Stop(_)) => panic!("a start"),
                Err(error) => Err(error.field),
            }
        };
        assert_eq!(
            gate(&[("gpu_check", "nvidia-smi -q")]),
            Ok(GpuGate::On {
                check: Some("nvidia-smi -q".into())
            })
        );
        assert_eq!(gate(&[("gpu_health_gate", "false")]), Ok(GpuGate::Off));
        assert_eq!(
            gate(&[("gpu_health_gate", "")]),
            Ok(GpuGate::On { check: None }),
            "empty (a reusable workflow's unset input) is the default"
        );
        assert_eq!(
            gate(&[("gpu_health_gate", "false"), ("gpu_check", "true")]),
            Err(Field::from("gpu_check"))
        );
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "instance_type"),
            (
                &[("instance_type", "a"), ("instance_count", "0")],
                "instance_count",
            ),
            (
                &[("instance_type", "a"), ("capacity_wait", "soon")],
                "capacity_wait",
            ),
            (
                &[("instance_type", "a"), ("runner_grace_period", "5 minutes")],
                "runner_grace_period",
            ),
            (
                &[("instance_type", "a"), ("runner_mode", "ephemeral")],
                "runner_mode",
            ),
            (
                &[("instance_type", "a"), ("runner_group", "2")],
                "runner_group",
            ),
            (&[("instance_type", "a"), ("tags", "Team=x")], "tags"),
            (
                &[("instance_type", "a"), ("tags", "lambda-gha:run=x")],
                "tags",
            ),
            (
                &[("instance_type", "a"), ("ssh_pubkey", "not a key")],
                "ssh_pubkey",
            ),
            (
                &[("instance_type", "a"), ("self_terminate", "maybe")],
                "self_terminate",
            ),
            (
                &[("instance_type", "a"), ("gpu_health_gate", "off")],
                "gpu_health_gate",
            ),
            (
                &[("instance_type", "a"), ("max_cost_usd", "-3")],
                "max_cost_usd",
            ),
            (
                &[("instance_type", "a"), ("max_instance_lifetime", "1m")],
                "max_instance_lifetime",
            ),
            (&[("mode", "stop")], "instance_id"),
            (&[("mode", "stop"), ("mtx", "{")], "mtx"),
            (&[("mode", "pause")], "mode"),
        ];
        for (pairs, field) in cases {
            let error = parse(&env(pairs)).unwrap_err();
            assert_eq!(error.field, *field, "{pairs:?}: {error}");
        }
    }

    #[test]
    fn stop_takes_machines_from_instance_id_and_mtx() {
        let Mode::Stop(stop) = parse(&env(&[
            ("mode", "stop"),
            ("instance_id", "a1"),
            ("mtx", r#"[{"instance_id":"a1"},{"instance_id":"b2"}]"#),
        ]))
        .unwrap() else {
            panic!("stop");
        };
        assert_eq!(stop.machines, [MachineId::new("a1"), MachineId::new("b2")]);
        // A label alone names the launch (a start killed before its other outputs).
        let Mode::Stop(stop) = parse(&env(&[("mode", "stop"), ("label", "lambda-7-abc")])).unwrap()
        else {
            panic!("stop");
        };
        assert!(stop.machines.is_empty());
        assert_eq!(stop.labels, ["lambda-7-abc"]);
        assert!(parse(&env(&[("mode", "stop"), ("label", "not a label")])).is_err());
    }

    #[test]
    fn instance_names_fill_placeholders_and_fit_lambda() {
        assert_eq!(
            instance_name("{repo}-{run}-{idx}", "lambda-1-abc", "42", "octo/gpu").unwrap(),
            "gpu-42-{idx}"
        );
        assert!(instance_name("{nope}", "l", "1", "o/r").is_err());
        assert!(instance_name(&"x".repeat(70), "l", "1", "o/r").is_err());
        let error = instance_name("unhealthy: {idx}", "l", "1", "o/r").unwrap_err();
        assert!(error.problem.contains("GPU health gate"), "{error}");
    }
}
