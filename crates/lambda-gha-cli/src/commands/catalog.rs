//! `types`, `regions`, `images`: what the cloud offers.

use anyhow::Result;
use clap::Args;
use lambda_gha_cli::tables;

use super::Out;

#[derive(Args)]
pub(crate) struct TypesArgs {
    /// Only types with capacity somewhere now.
    #[arg(long)]
    available: bool,
    /// Only types whose name or GPU contains this, e.g. `h100`.
    #[arg(long)]
    gpu: Option<String>,
}

pub(crate) async fn types(client: &lambda_cloud::Client, args: TypesArgs, out: &Out) -> Result<()> {
    let catalog = client.instance_types().list().await?;
    let views = tables::types(
        &catalog,
        &tables::TypeFilter {
            available: args.available,
            gpu: args.gpu,
        },
    );
    out.show(&views, |v| tables::types_table(v))
}

pub(crate) async fn regions(client: &lambda_cloud::Client, out: &Out) -> Result<()> {
    let regions = client.regions().list().await?;
    out.show(&regions, |v| tables::regions_table(v))
}

pub(crate) async fn images(client: &lambda_cloud::Client, out: &Out) -> Result<()> {
    let images = client.images().list().await?;
    out.show(&images, |v| tables::images_table(v))
}
