//! The machine of a run: its launch (with a key of its own when none is named), the wait
//! until it runs, the connection, the GPU check, and its end or replacement.

use std::time::{Duration, Instant};

use gha_runner_core::session;
use gha_runner_core::{Candidate, CloudProvider, MachineId, health::HealthReport, tags};
use gha_runner_lambda::LambdaProvider;

use super::{Reach, ReplacedMachine, RunRequest, State, Target};
use crate::launch::{self, LaunchRequest};
use crate::progress::Ui;
use crate::transport::{OpenSsh, Sandbox, Transport};

/// Opens the way commands reach machine `id` (at `ip`), once it answers.
pub(super) async fn connect(
    request: &RunRequest,
    state: &mut State,
    id: &MachineId,
    ip: String,
    ui: Ui,
) -> Result<std::sync::Arc<dyn Transport>, String> {
    state.begin("connect");
    let transport: std::sync::Arc<dyn Transport> = match &request.reach {
        Reach::Ssh {
            user,
            port,
            identity,
        } => {
            let identity = identity
                .clone()
                .or_else(|| state.key_file.clone())
                .or_else(|| request.state_dir.existing_machine_key(id.as_str()));
            let known_hosts = request
                .state_dir
                .known_hosts(id.as_str())
                .map_err(|e| e.to_string())?;
            std::sync::Arc::new(OpenSsh {
                host: ip,
                port: *port,
                user: user.clone(),
                identity,
                known_hosts,
                // Unix socket paths are short (108 bytes): keep it in /tmp.
                control_path: std::env::temp_dir().join(format!("lgha-{}", state.run_id)),
            })
        }
        Reach::Sandbox { root } => std::sync::Arc::new(Sandbox::new(root.join(id.as_str()))),
    };
    let bar = ui.spinner(format!("waiting for SSH on {}", transport.describe()));
    let ready = transport.wait_ready(request.boot_timeout).await;
    bar.finish_and_clear();
    state.transport = Some(transport.clone());
    ready.map(|()| transport)
}

/// The action's health gate over the run's transport: `nvidia-smi` sees every GPU of the
/// machine's type (`gpus`, or the catalog's word for a named machine), and `--gpu-check`
/// passes. The failed verdict, if it failed.
pub(super) async fn gpu_check(
    provider: &LambdaProvider,
    request: &RunRequest,
    transport: &dyn Transport,
    id: &MachineId,
    gpus: Option<u32>,
    ui: Ui,
    state: &mut State,
) -> Result<Option<HealthReport>, String> {
    let instance_type = state.summary.instance_type.clone().unwrap_or_default();
    let expected_gpus = match gpus {
        Some(gpus) => gpus,
        None => provider
            .catalog()
            .await
            .map_err(|e| {
                format!("cannot read the catalog for the GPU check: {e} (--no-gpu-gate skips it)")
            })?
            .offering(&instance_type)
            .map_or(0, |o| o.gpus),
    };
    let Some(gate) = request.gpu_gate.for_machine(&instance_type, expected_gpus) else {
        return Ok(None);
    };
    let bar = ui.spinner(format!("checking the GPUs of {id}"));
    let report = gate.run_over(transport, request.time_scale.factor()).await;
    bar.finish_and_clear();
    state.summary.gpu_check = Some(report.summary.clone());
    if report.passed {
        ui.line(format!("gpu check: {}", report.summary));
        return Ok(None);
    }
    ui.line(format!(
        "GPU health gate failed on {id}: {}",
        report.summary
    ));
    for line in report.detail.lines() {
        ui.line(format!("  {line}"));
    }
    Ok(Some(report))
}

/// Terminates machine `id` — the call that stops the billing: tried again, and checked when
/// its answer is lost — and forgets its private key and host key. Why it failed, if it did.
pub(super) async fn terminate(
    provider: &LambdaProvider,
    request: &RunRequest,
    ui: Ui,
    state: &mut State,
    id: &MachineId,
) -> Result<(), String> {
    let bar = ui.spinner(format!("terminating {id}"));
    let (_, mut failed) =
        gha_runner_core::plan::terminate_all(provider, std::slice::from_ref(id)).await;
    bar.finish_and_clear();
    if let Some(file) = state.key_file.take() {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_file(
        request
            .state_dir
            .path()
            .join("known_hosts")
            .join(id.as_str()),
    );
    failed.pop().map_or(Ok(()), |(_, why)| Err(why))
}

/// The error of a run whose machine failed the GPU check with no replacement left: what
/// became of the machine, and what to do.
pub(super) fn gate_failed(
    id: &MachineId,
    failed: &HealthReport,
    ours: bool,
    request: &RunRequest,
    replaced: u32,
) -> String {
    let next = match (ours, request.keep) {
        (false, _) => "fix the machine, or skip the check with --no-gpu-gate".to_owned(),
        (true, true) => format!(
            "it is left running (--keep; `lambda-gha terminate {id}` ends it); skip the check \
             with --no-gpu-gate"
        ),
        (true, false) => {
            let tried = if replaced > 0 {
                format!(
                    ", the last of {} machines (--replace-unhealthy {})",
                    replaced + 1,
                    request.replace_unhealthy
                )
            } else {
                String::new()
            };
            format!(
                "it is terminated{tried}; run again for another machine (or put another type \
                 first in --type), or skip the check with --no-gpu-gate"
            )
        }
    };
    format!(
        "GPU health gate failed on {id} ({}): {next}",
        failed.summary
    )
}

/// Ends a launched machine that failed the GPU check so that another can take its place:
/// closes the connection, terminates it (the run stops if that fails; the cleanup tries
/// again), forgets its key, and keeps what it was billed.
pub(super) async fn retire(
    provider: &LambdaProvider,
    request: &RunRequest,
    ui: Ui,
    state: &mut State,
    failed: HealthReport,
) -> Result<(), String> {
    if let Some(transport) = state.transport.take() {
        transport.close().await;
    }
    let Some(target) = state.target.take() else {
        return Ok(());
    };
    let id = target.id.clone();
    state.begin("replace");
    if let Err(why) = terminate(provider, request, ui, state, &id).await {
        state.target = Some(target);
        return Err(format!(
            "GPU health gate failed on {id} ({}), and it could not be terminated for a \
             replacement: {why}",
            failed.summary
        ));
    }
    let billed = request.time_scale.simulated(target.launched_at.elapsed());
    state.retired_seconds += billed.as_secs_f64();
    state.retired_cost_usd += state
        .summary
        .price_cents_per_hour
        .map_or(0.0, |price| session::cost_usd(billed, price));
    state.summary.replaced.push(ReplacedMachine {
        instance_id: id.to_string(),
        instance_type: state.summary.instance_type.clone().unwrap_or_default(),
        why: failed.summary,
    });
    state.summary.gpu_check = None;
    ui.line(format!("terminated {id}; launching a replacement"));
    Ok(())
}

pub(super) async fn launch_machine(
    provider: &LambdaProvider,
    request: &RunRequest,
    failed_on: Option<&Candidate>,
    ui: Ui,
    state: &mut State,
) -> Result<Option<gha_runner_core::Offering>, String> {
    let mut launch_request: LaunchRequest = request.launch.clone();
    launch_request
        .tags
        .insert(tags::SESSION.to_owned(), state.run_id.clone());
    // A run that is forgotten (`--keep`, or a laptop that died mid-run) still ends: the reaper
    // terminates it past this expiry.
    launch_request
        .tags
        .extend(gha_runner_core::tags::lifetime_tags(request.max_lifetime));
    state.summary.expires = launch_request
        .tags
        .get(gha_runner_core::tags::EXPIRES)
        .cloned();
    // Types, regions and the API key are checked before anything (a key, a machine) is made.
    let mut checked = launch::check(provider, &launch_request)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(failed) = failed_on {
        checked.candidates = gha_runner_core::plan::replacement_order(&checked.candidates, failed);
    }
    if let Some(cache) = &request.cache {
        // Before anything is made: only regions that have the cache, or can make it.
        let volumes = gha_runner_core::cache::prepare(provider, cache, &checked.candidates)
            .await
            .map_err(|why| format!("--cache-filesystem: {why}"))?;
        for line in volumes.to_string().lines() {
            ui.line(format!("cache: {line}"));
        }
        checked.candidates = volumes.usable(&checked.candidates);
        launch_request.cache = Some(volumes);
    }
    if launch_request.ssh_key.is_empty() {
        // No key named: one for this run, its private half kept locally (0600).
        let key = provider
            .create_launch_key(&format!("run-{}", state.run_id), None)
            .await
            .map_err(|e| format!("cannot create an SSH key for this run: {e}"))?;
        if let Some(private) = &key.private_key {
            let private = secrecy::ExposeSecret::expose_secret(private);
            let path = request
                .state_dir
                .write_launch_key(&key.name, private)
                .map_err(|e| e.to_string())?;
            state.key_file = Some(path);
        }
        launch_request.ssh_key.clone_from(&key.name);
        state.launch_key = Some(key);
    }
    let bar = ui.spinner(format!(
        "launching {}",
        checked
            .candidates
            .first()
            .map_or_else(String::new, ToString::to_string)
    ));
    state.launch_started = true;
    let outcome = launch::launch_checked(provider, &launch_request, checked, &request.user).await;
    bar.finish_and_clear();
    // A key is only read at launch: it can go now, whatever happened.
    delete_launch_key(provider, state).await;
    let outcome = outcome.map_err(|e| e.to_string())?;
    for attempt in &outcome.attempts {
        ui.line(attempt.to_string());
    }
    let launched = outcome.launched.map_err(|failure| failure.to_string())?;
    state.summary.instance_id = Some(launched.machine.to_string());
    state.summary.instance_type = Some(launched.candidate.instance_type.clone());
    state.summary.region = Some(launched.candidate.region.clone());
    state.cache_mount = launch_request
        .cache
        .as_ref()
        .and_then(|c| c.volume(&launched.candidate.region))
        .map(|v| v.mount_point.clone());
    state.target = Some(Target {
        id: launched.machine.clone(),
        ours: true,
        launched_at: Instant::now(),
    });
    // The key file is the machine's now: `run --instance` and `ssh` find it by id.
    if let Some(file) = state.key_file.take() {
        state.key_file = Some(request.state_dir.keep_for(file, &launched.machine));
    }
    Ok(outcome.offering)
}

pub(super) async fn delete_launch_key(provider: &LambdaProvider, state: &mut State) {
    if let Some(key) = state.launch_key.take()
        && provider.delete_launch_key(&key).await.is_err()
    {
        // Harmless (a key bills nothing) but untidy: try again in the cleanup.
        state.launch_key = Some(key);
    }
}

/// Waits until `id` runs (the one wait, [`session::wait_running`]); its address.
pub(super) async fn wait_active(
    provider: &LambdaProvider,
    id: &MachineId,
    request: &RunRequest,
    ui: Ui,
) -> Result<String, String> {
    let bar = ui.spinner(format!("waiting for {id} to boot"));
    let poll = request
        .time_scale
        .real(Duration::from_secs(5))
        .max(Duration::from_millis(50));
    let machine = session::wait_running(provider, id, request.boot_timeout, poll, &mut |m| {
        bar.set_message(format!("{id} is {}", m.state.word()));
    })
    .await;
    bar.finish_and_clear();
    let machine = machine.map_err(|e| e.to_string())?;
    Ok(machine.ip.unwrap_or_default())
}
