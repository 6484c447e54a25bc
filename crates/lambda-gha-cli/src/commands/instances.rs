//! `instances`, `get`, `wait`, `terminate`, `launch`, `ssh`: one's machines.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use gha_runner_core::session::{self, StateDir};
use gha_runner_core::{MachineId, SessionError, tags};
use gha_runner_lambda::LambdaProvider;
use lambda_gha_cli::CliError;
use lambda_gha_cli::config::Settings;
use lambda_gha_cli::launch::LaunchRequest;
use lambda_gha_cli::names;
use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::tables::{self, InstanceView};

use super::{Out, env, parse_duration_arg, user};

/// What to launch: shared by `launch` and `run`.
#[derive(Args)]
pub(crate) struct MachineArgs {
    /// Instance types, comma-separated, tried in order (default: the config file's).
    #[arg(long = "type", value_name = "TYPES")]
    instance_type: Option<String>,
    /// Regions, comma-separated, tried in order (default: the config file's, or any).
    #[arg(long)]
    region: Option<String>,
    /// The SSH key to install (default: the config file's).
    #[arg(long)]
    ssh_key: Option<String>,
    /// A name for the instance.
    #[arg(long)]
    name: Option<String>,
    /// Image family or id.
    #[arg(long)]
    image: Option<String>,
    /// Filesystems to mount, comma-separated.
    #[arg(long)]
    filesystem: Option<String>,
    /// Tags, `key=value`, repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// Keep retrying for capacity this long (e.g. `10m`).
    #[arg(long, value_parser = parse_duration_arg)]
    capacity_wait: Option<Duration>,
}

#[derive(Args)]
pub(crate) struct LaunchArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Firewall rulesets to apply, comma-separated ids or names (default: the global rules
    /// alone; see `lambda-gha firewall list`).
    #[arg(long, value_name = "RULESETS")]
    firewall_ruleset: Option<String>,
    /// Launch another machine like this one (id or name): its type, region, SSH key,
    /// filesystems, firewall rulesets and own tags; flags given override them.
    #[arg(long, value_name = "INSTANCE")]
    like: Option<String>,
    /// Choose the type, region, SSH key, filesystems and rulesets by answering questions that
    /// offer only what exists (types with capacity first), then confirm the price.
    #[arg(short, long, conflicts_with_all = [
        "like", "instance_type", "region", "ssh_key", "filesystem", "firewall_ruleset", "name"
    ])]
    interactive: bool,
    /// A cloud-init user-data file.
    #[arg(long, value_name = "FILE")]
    user_data: Option<PathBuf>,
    /// Wait until the instance is active.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
pub(crate) struct SshArgs {
    /// The instance's id or name.
    instance: String,
    /// The private key to use (default: the key `run` made for it, else ssh's own choice).
    #[arg(short, long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The user to log in as (Lambda's images: `ubuntu`).
    #[arg(long, default_value = "ubuntu")]
    user: String,
    /// The SSH port.
    #[arg(long, default_value_t = 22)]
    port: u16,
    /// The command to run instead of a shell.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub(crate) struct JupyterArgs {
    /// The instance's id or name.
    instance: String,
    /// Open the lab in the browser ($BROWSER, else open or xdg-open).
    #[arg(long)]
    open: bool,
    /// Print the URL with its token, which logs in to the lab: treat it as a password.
    #[arg(long)]
    show_token: bool,
    /// Give up after this long.
    #[arg(long, default_value = "20m", value_parser = parse_duration_arg)]
    timeout: Duration,
}

pub(crate) async fn list(client: &lambda_cloud::Client, out: &Out) -> Result<()> {
    let views: Vec<InstanceView> = client
        .instances()
        .list()
        .await?
        .iter()
        .map(InstanceView::from)
        .collect();
    out.show(&views, |v| tables::instances_table(v))
}

/// `cost`: what the account's machines bill now.
pub(crate) async fn cost(client: &lambda_cloud::Client, out: &Out) -> Result<()> {
    let instances = client.instances().list().await?;
    let view = lambda_gha_cli::cost::cost_view(&instances, jiff::Timestamp::now());
    if out.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", lambda_gha_cli::cost::render(&view));
    }
    Ok(())
}

/// The instance `wanted` names (id or name, [`names::resolve`]); an id the listing no longer
/// shows (terminated a while ago) is asked for directly.
pub(crate) async fn find_instance(
    client: &lambda_cloud::Client,
    wanted: &str,
) -> Result<lambda_cloud::Instance> {
    // Lambda's instance ids are 32 hexadecimal digits (the spec's examples).
    let an_id = wanted.len() == 32 && wanted.bytes().all(|b| b.is_ascii_hexdigit());
    let listed = client.instances().list().await?;
    match names::resolve(&listed, wanted) {
        Ok(found) => Ok(found.clone()),
        Err(not_found @ CliError::NotFound { .. }) if !an_id => Err(not_found.into()),
        Err(not_found @ CliError::NotFound { .. }) => match client.instances().get(wanted).await {
            Ok(instance) => Ok(instance),
            Err(error) if error.status() == Some(404) => Err(not_found.into()),
            Err(error) => Err(error.into()),
        },
        Err(other) => Err(other.into()),
    }
}

/// `rename INSTANCE NAME`.
pub(crate) async fn rename(
    client: &lambda_cloud::Client,
    instance: &str,
    name: &str,
    out: &Out,
) -> Result<()> {
    let id = find_instance(client, instance).await?.id;
    let renamed = client.instances().rename(id.as_str(), name).await?;
    out.note(&format!("renamed {id} to {name:?}"));
    let view = InstanceView::from(&renamed);
    out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))
}

/// `restart INSTANCE…`.
pub(crate) async fn restart(
    client: &lambda_cloud::Client,
    instances: &[String],
    out: &Out,
) -> Result<()> {
    let ids = names::resolve_all(&client.instances().list().await?, instances)?;
    let restarted = client
        .instances()
        .restart(ids.iter().map(String::as_str))
        .await?;
    for id in &ids {
        out.note(&format!(
            "restarting {id}: it boots again and keeps billing"
        ));
    }
    let views: Vec<InstanceView> = restarted.iter().map(InstanceView::from).collect();
    out.show(&views, |v| tables::instances_table(v))
}

pub(crate) async fn get(client: &lambda_cloud::Client, wanted: &str, out: &Out) -> Result<()> {
    let view = InstanceView::from(&find_instance(client, wanted).await?);
    out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))
}

pub(crate) async fn wait(
    client: &lambda_cloud::Client,
    wanted: &str,
    timeout: Duration,
    out: &Out,
) -> Result<()> {
    let id = find_instance(client, wanted).await?.id;
    let id = id.as_str();
    let instance = wait_active(client, id, timeout, out.ui()).await?;
    let view = InstanceView::from(&instance);
    out.note(&format!(
        "{id} is active at {}",
        view.ip.as_deref().unwrap_or("(no IP yet)")
    ));
    if out.json {
        out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))?;
    }
    Ok(())
}

/// `jupyter INSTANCE`: waits until the machine is active and its lab answers, then prints
/// its URL (token only with `--show-token`) or opens it.
pub(crate) async fn jupyter(
    client: &lambda_cloud::Client,
    args: JupyterArgs,
    out: &Out,
) -> Result<()> {
    let found = find_instance(client, &args.instance).await?;
    let id = found.id.as_str();
    let started = std::time::Instant::now();
    wait_active(client, id, args.timeout, out.ui()).await?;
    let bar = out
        .ui()
        .spinner(format!("waiting for {id}'s JupyterLab to answer"));
    let answered = loop {
        let instance = client.instances().get(id).await?;
        match client.probe_jupyter(&instance).await {
            lambda_cloud::JupyterProbe::Answering => break Ok(instance),
            lambda_cloud::JupyterProbe::Insecure => {
                break Err(anyhow::anyhow!(
                    "the API gave {id} a Jupyter URL that is not https://: not opened, since \
                     its token would travel in clear"
                ));
            }
            probe => {
                if started.elapsed() >= args.timeout {
                    break Err(anyhow::anyhow!(
                        "{id}'s JupyterLab did not answer within {} ({probe:?}); it is still \
                         billing: `lambda-gha terminate {id}`",
                        gha_runner_core::duration::format_duration(args.timeout)
                    ));
                }
                bar.set_message(format!("{id}'s JupyterLab: {probe:?}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    bar.finish_and_clear();
    let instance = answered?;
    let url = instance
        .jupyter_url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .unwrap_or_default();
    let shown = if args.show_token {
        url.clone()
    } else {
        lambda_gha_cli::jupyter::without_token(&url)
    };
    if args.open {
        let browser = lambda_gha_cli::jupyter::browser(&env);
        // The URL goes to the browser as an argument, never through a shell.
        let status = std::process::Command::new(&browser)
            .arg(&url)
            .status()
            .with_context(|| {
                format!("cannot run {browser} to open a browser: set BROWSER, or use --show-token")
            })?;
        if !status.success() {
            bail!("{browser} could not open the lab ({status}): set BROWSER, or use --show-token");
        }
        out.note(&format!("opened {id}'s JupyterLab in your browser"));
    }
    if out.json {
        let view = serde_json::json!({ "id": id, "url": shown, "token_shown": args.show_token });
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else if !args.open || args.show_token {
        println!("{shown}");
        if !args.show_token {
            out.note("the token is left out: --show-token prints the whole URL, --open opens it");
        }
    }
    Ok(())
}

/// Waits until `id` is active (the one wait, [`session::wait_running`]), then reads it.
async fn wait_active(
    client: &lambda_cloud::Client,
    id: &str,
    timeout: Duration,
    ui: Ui,
) -> Result<lambda_cloud::Instance> {
    let bar = ui.spinner(format!("waiting for {id} to become active"));
    let provider = LambdaProvider::new(client.clone());
    let waited = session::wait_running(
        &provider,
        &MachineId::new(id),
        timeout,
        Duration::from_secs(2),
        &mut |machine| bar.set_message(format!("{id} is {}", machine.state.word())),
    )
    .await;
    bar.finish_and_clear();
    match waited {
        Err(error @ SessionError::NotActiveWithin { .. }) => {
            bail!("{error}; it is still billing: `lambda-gha terminate {id}`")
        }
        other => other?,
    };
    Ok(client.instances().get(id).await?)
}

pub(crate) async fn terminate(
    client: &lambda_cloud::Client,
    ids: Vec<String>,
    mine: bool,
    out: &Out,
) -> Result<ExitCode> {
    let ids: Vec<String> = if mine {
        let me = user();
        client
            .instances()
            .list()
            .await?
            .into_iter()
            .filter(|i| !i.status.is_gone() && i.tag(tags::CLI) == Some(me.as_str()))
            .map(|i| i.id.to_string())
            .collect()
    } else {
        names::resolve_all(&client.instances().list().await?, &ids)?
    };
    if ids.is_empty() {
        if mine {
            out.note("nothing to terminate: no instance of yours carries the lambda-gha:cli tag");
            return Ok(ExitCode::SUCCESS);
        }
        out.note("name instances to terminate, or use --mine");
        return Ok(ExitCode::from(2));
    }
    let ended = client
        .instances()
        .terminate(ids.iter().map(String::as_str))
        .await?;
    let views: Vec<InstanceView> = ended.iter().map(InstanceView::from).collect();
    for view in &views {
        out.note(&format!("terminated {} ({})", view.id, view.instance_type));
    }
    if out.json {
        out.show(&views, |v| tables::instances_table(v))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn launch(
    client: &lambda_cloud::Client,
    args: LaunchArgs,
    settings: &Settings,
    out: &Out,
) -> Result<()> {
    let mut request = if args.interactive {
        let machine = args.machine;
        let Some(mut asked) = guided_request(client, out).await? else {
            out.note("nothing launched");
            return Ok(());
        };
        // What the questions leave out still comes from the flags.
        let flags = launch_request(machine, settings, None, true)?;
        asked.tags = flags.tags;
        asked.image = flags.image;
        asked.capacity = flags.capacity;
        asked
    } else {
        let like = match &args.like {
            Some(wanted) => Some(find_instance(client, wanted).await?),
            None => None,
        };
        if like.is_none()
            && args.machine.instance_type.is_none()
            && settings.instance_type.is_none()
        {
            bail!(
                "name an instance type: --type gpu_1x_a10 (see `lambda-gha types --available`), or launch with --interactive to choose, or --like INSTANCE"
            );
        }
        let mut request = launch_request(args.machine, settings, like.as_ref(), false)?;
        if let Some(rulesets) = &args.firewall_ruleset {
            let wanted = gha_runner_core::plan::parse_list(rulesets, "--firewall-ruleset")?;
            let listed = client.firewall_rulesets().list().await?;
            request.firewall_rulesets = names::resolve_all(&listed, &wanted)?;
        }
        named_as_launch_wants(client, &mut request).await?;
        if let Some(like) = &like {
            out.note(&format!(
                "launching like {} ({}): {} in {}",
                like.id,
                like.name.as_deref().unwrap_or("unnamed"),
                request.instance_types.join(","),
                request.regions.join(",")
            ));
        }
        request
    };
    if request.ssh_key.is_empty() {
        bail!(
            "name an SSH key: --ssh-key NAME (see `lambda-gha ssh-keys list`), or ssh_key in the config file"
        );
    }
    request.user_data = match &args.user_data {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let provider = LambdaProvider::new(client.clone());
    let bar = out.ui().spinner("launching");
    let outcome = lambda_gha_cli::launch::launch(&provider, &request, &user()).await;
    bar.finish_and_clear();
    let outcome = outcome?;
    for attempt in &outcome.attempts {
        out.note(&attempt.to_string());
    }
    let launched = outcome
        .launched
        .map_err(|failure| anyhow::anyhow!("{failure}"))?;
    let id = launched.machine.as_str();
    let instance = if args.wait {
        wait_active(client, id, Duration::from_secs(20 * 60), out.ui()).await?
    } else {
        client.instances().get(id).await?
    };
    let view = InstanceView::from(&instance);
    out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))
}

/// The SSH key and filesystems as a launch names them (by name), whether given by name or
/// id: an unknown or ambiguous one is refused before anything is launched.
pub(crate) async fn named_as_launch_wants(
    client: &lambda_cloud::Client,
    request: &mut LaunchRequest,
) -> Result<()> {
    if !request.ssh_key.is_empty() {
        let keys = client.ssh_keys().list().await?;
        let found = names::resolve(&keys, &request.ssh_key)?;
        request.ssh_key.clone_from(&found.name);
    }
    if !request.filesystems.is_empty() {
        let filesystems = client.filesystems().list().await?;
        request.filesystems = request
            .filesystems
            .iter()
            .map(|wanted| names::resolve(&filesystems, wanted).map(|f| f.name.clone()))
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// `launch --interactive`: reads what the account has, then asks on the terminal (questions
/// on stderr, so `--json` output stays clean). `None` when the launch is not confirmed.
async fn guided_request(
    client: &lambda_cloud::Client,
    out: &Out,
) -> Result<Option<lambda_gha_cli::launch::LaunchRequest>> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        bail!(
            "--interactive asks questions on a terminal: without one, name the machine with flags (--type, --region, --ssh-key)"
        );
    }
    let bar = out
        .ui()
        .spinner("reading the account's types, regions, keys, filesystems and rulesets");
    let offer = lambda_gha_cli::guided::Offer {
        catalog: client.instance_types().list().await?,
        regions: client.regions().list().await?,
        ssh_keys: client.ssh_keys().list().await?,
        filesystems: client.filesystems().list().await?,
        rulesets: client.firewall_rulesets().list().await?,
    };
    bar.finish_and_clear();
    // The questions block on the terminal: off the async workers' hands.
    let asked = tokio::task::block_in_place(|| {
        let mut prompter = lambda_gha_cli::prompt::Prompter::new(
            std::io::stdin().lock(),
            std::io::stderr().lock(),
        );
        lambda_gha_cli::guided::ask(&mut prompter, &offer)
    })?;
    Ok(asked)
}

/// What `args` ask to launch, then `like` (the instance `--like` names), then the config
/// file's defaults; an empty `ssh_key` when none is named. `loose` leaves the type out (the
/// questions of `--interactive` choose it).
pub(crate) fn launch_request(
    args: MachineArgs,
    settings: &Settings,
    like: Option<&lambda_cloud::Instance>,
    loose: bool,
) -> Result<LaunchRequest> {
    let types = args
        .instance_type
        .or_else(|| like.map(|l| l.instance_type.name.to_string()))
        .or_else(|| settings.instance_type.clone());
    let types = match types {
        Some(types) => gha_runner_core::plan::parse_type_list(&types, "--type")?,
        None if loose => Vec::new(),
        None => bail!(
            "name an instance type: --type gpu_1x_a10 (or instance_type in the config file; see `lambda-gha types --available`)"
        ),
    };
    let regions = args
        .region
        .or_else(|| like.map(|l| l.region.name.to_string()))
        .or_else(|| settings.region.clone());
    // The other machine's own tags; this project's (its run, expiry, launcher) are its alone.
    let mut tags: std::collections::BTreeMap<String, String> = like
        .map(|l| {
            l.tags
                .iter()
                .filter(|t| !tags::is_ours(&t.key))
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    for tag in &args.tags {
        let (key, value) = tag
            .split_once('=')
            .with_context(|| format!("--tag {tag:?}: write key=value"))?;
        tags.insert(key.to_owned(), value.to_owned());
    }
    let list = |text: &Option<String>, what| match text {
        Some(text) => gha_runner_core::plan::parse_list(text, what),
        None => Ok(Vec::new()),
    };
    let filesystems = match (&args.filesystem, like) {
        (None, Some(like)) => like.file_system_names.clone(),
        (given, _) => list(given, "--filesystem")?,
    };
    Ok(LaunchRequest {
        instance_types: types,
        regions: list(&regions, "--region")?,
        ssh_key: args
            .ssh_key
            .or_else(|| like.and_then(|l| l.ssh_key_names.first().cloned()))
            .or_else(|| settings.ssh_key.clone())
            .unwrap_or_default(),
        name: args.name,
        image: args.image,
        filesystems,
        firewall_rulesets: like
            .map(|l| {
                l.firewall_rulesets
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect()
            })
            .unwrap_or_default(),
        tags,
        user_data: None,
        capacity: args.capacity_wait,
        cache: None,
    })
}

pub(crate) async fn ssh(client: &lambda_cloud::Client, args: SshArgs) -> Result<ExitCode> {
    let instance = find_instance(client, &args.instance).await?;
    let id = &instance.id;
    let ip = instance.ip.as_deref().with_context(|| {
        format!(
            "{id} has no IP yet (it is {}): `lambda-gha wait {id}` first",
            instance.status
        )
    })?;
    // A machine `run --keep` launched with its own key: that key.
    let state_dir = StateDir::from_env(&env);
    let identity = args
        .identity
        .or_else(|| state_dir.existing_machine_key(id.as_str()));
    let known_hosts = state_dir.known_hosts(id.as_str())?;
    let ssh_args = lambda_gha_cli::ssh::ssh_args(
        &lambda_gha_cli::ssh::SshTarget {
            ip,
            port: args.port,
            user: &args.user,
            identity: identity.as_deref(),
            known_hosts: &known_hosts,
        },
        &args.command,
    );
    let status = std::process::Command::new("ssh")
        .args(&ssh_args)
        .status()
        .context("cannot run ssh: install OpenSSH's client")?;
    // The remote command's exit code is ours.
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(255)).unwrap_or(255),
    ))
}
