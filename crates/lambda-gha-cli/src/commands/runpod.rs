//! `--provider runpod`: the commands that mean the same on RunPod — its GPU types with stock,
//! the account's pods, terminating pods. The reaper takes the provider too (`reap.rs`).

use std::process::ExitCode;

use anyhow::Result;
use gha_runner_core::{CloudProvider, MachineId};
use lambda_gha_cli::tables;

use super::Out;

/// `types`: each `<count>x <GPU type>` RunPod offers on the cloud, cheapest first, with the
/// data centers that list stock for it.
pub(crate) async fn types(out: &Out) -> Result<ExitCode> {
    let provider = lambda_gha_cli::runpod_provider()?;
    let mut offerings = provider.catalog().await?.offerings;
    offerings.sort_by(|a, b| {
        a.price_cents_per_hour
            .cmp(&b.price_cents_per_hour)
            .then_with(|| a.instance_type.cmp(&b.instance_type))
    });
    out.show(&offerings, |o| tables::offerings_table(o))?;
    Ok(ExitCode::SUCCESS)
}

/// `instances`: every pod of the account.
pub(crate) async fn instances(out: &Out) -> Result<ExitCode> {
    let provider = lambda_gha_cli::runpod_provider()?;
    let machines = provider.machines().await?;
    out.show(&machines, |m| tables::machines_table(m))?;
    Ok(ExitCode::SUCCESS)
}

/// `terminate ID…`: deletes pods (billing stops); one already gone is not an error.
pub(crate) async fn terminate(ids: Vec<String>, out: &Out) -> Result<ExitCode> {
    if ids.is_empty() {
        anyhow::bail!("name the pods to terminate: `lambda-gha --provider runpod terminate ID…`");
    }
    let provider = lambda_gha_cli::runpod_provider()?;
    let ids: Vec<MachineId> = ids.into_iter().map(MachineId::new).collect();
    provider.terminate(&ids).await?;
    for id in &ids {
        out.note(&format!("terminated pod {id}"));
    }
    Ok(ExitCode::SUCCESS)
}
