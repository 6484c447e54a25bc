//! `ssh-keys`: the account's SSH keys.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use gha_runner_core::session;
use lambda_gha_cli::{names, tables};

use super::Out;

#[derive(Subcommand)]
pub(crate) enum SshKeysCommand {
    /// List the keys.
    List,
    /// Add a public key.
    Add {
        /// The key's name.
        name: String,
        /// The public key file (e.g. ~/.ssh/id_ed25519.pub).
        public_key_file: PathBuf,
    },
    /// Delete a key, by name or id.
    Rm {
        /// The key's name or id.
        key: String,
    },
    /// Have Lambda generate a key pair; the private key is written to FILE (mode 0600).
    Generate {
        /// The key's name.
        name: String,
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub(crate) async fn ssh_keys(
    client: &lambda_cloud::Client,
    command: SshKeysCommand,
    out: &Out,
) -> Result<()> {
    let keys = client.ssh_keys();
    match command {
        SshKeysCommand::List => {
            let list = keys.list().await?;
            out.show(&list, |v| tables::ssh_keys_table(v))?;
        }
        SshKeysCommand::Add {
            name,
            public_key_file,
        } => {
            let text = std::fs::read_to_string(&public_key_file)
                .with_context(|| format!("cannot read {}", public_key_file.display()))?;
            let key = keys.add(name, text.trim()).await?;
            out.note(&format!("added SSH key {} ({})", key.name, key.id));
            if out.json {
                out.show(&key, |k| tables::ssh_keys_table(std::slice::from_ref(k)))?;
            }
        }
        SshKeysCommand::Rm { key } => {
            let list = keys.list().await?;
            let found = names::resolve(&list, &key)?;
            keys.delete(&found.id).await?;
            out.note(&format!("deleted SSH key {} ({})", found.name, found.id));
        }
        SshKeysCommand::Generate { name, out: path } => {
            if path.exists() {
                bail!("{} exists; choose another --out", path.display());
            }
            let key = keys.generate(name).await?;
            session::write_private(&path, key.private_key.expose())?;
            out.note(&format!(
                "generated SSH key {} ({}); private key in {}",
                key.name,
                key.id,
                path.display()
            ));
        }
    }
    Ok(())
}
