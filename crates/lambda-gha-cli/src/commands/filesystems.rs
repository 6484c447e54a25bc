//! `filesystems`: persistent filesystems.

use anyhow::Result;
use clap::Subcommand;
use lambda_gha_cli::{names, tables};

use super::Out;

#[derive(Subcommand)]
pub(crate) enum FilesystemsCommand {
    /// List the filesystems.
    List,
    /// Create a filesystem.
    Create {
        /// The filesystem's name.
        name: String,
        /// The region it lives in (machines there can mount it).
        #[arg(long)]
        region: String,
    },
    /// Delete a filesystem, by name or id.
    Rm {
        /// The filesystem's name or id.
        filesystem: String,
    },
}

pub(crate) async fn filesystems(
    client: &lambda_cloud::Client,
    command: FilesystemsCommand,
    out: &Out,
) -> Result<()> {
    let api = client.filesystems();
    match command {
        FilesystemsCommand::List => {
            let list = api.list().await?;
            out.show(&list, |v| tables::filesystems_table(v))?;
        }
        FilesystemsCommand::Create { name, region } => {
            let created = api.create(name, region.as_str()).await?;
            out.show(&created, |v| {
                tables::filesystems_table(std::slice::from_ref(v))
            })?;
        }
        FilesystemsCommand::Rm { filesystem } => {
            let list = api.list().await?;
            let found = names::resolve(&list, &filesystem)?;
            api.delete(&found.id).await?;
            out.note(&format!("deleted filesystem {} ({})", found.name, found.id));
        }
    }
    Ok(())
}
