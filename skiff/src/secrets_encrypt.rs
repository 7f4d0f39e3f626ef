//! `skiff secrets-encrypt status|rotate|reencrypt`: encryption at rest
//! for operators, in k3s's words.
//!
//! * `status` asks a running server which form each encrypted resource is
//!   written in, and which forms its stored objects are in.
//! * `rotate` rewrites a server's `DIR/pki/encryption-config.yaml` with a
//!   new AES-256-GCM key first (the old ones stay, so everything stored
//!   still opens). Servers read the file when they start: copy it to
//!   every server's `DIR/pki/` and restart them, then
//! * `reencrypt` asks a server to write every object again with the key
//!   each server now writes with. `status` then shows one form, and the
//!   old key may be removed from the files.
//!
//! The commands talk to the API as `skiff token` does: the admin
//! kubeconfig of `--data-dir`, or `--kubeconfig`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::UsageError;

#[derive(Debug, Args)]
pub struct SecretsEncryptArgs {
    #[command(subcommand)]
    command: Command,

    /// The data directory of a server: its admin kubeconfig, and for
    /// `rotate`, its encryption configuration.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR", global = true)]
    data_dir: PathBuf,

    /// A kubeconfig to use instead of the data directory's.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show how encrypted resources are written and stored.
    Status,
    /// Put a new key first in the data directory's encryption configuration.
    Rotate,
    /// Write every encrypted object again with the current key.
    Reencrypt,
}

pub async fn run(args: SecretsEncryptArgs) -> anyhow::Result<()> {
    match args.command {
        Command::Rotate => rotate(&args.data_dir),
        Command::Status => {
            let status = crate::admin::call(
                &args.data_dir,
                args.kubeconfig.as_ref(),
                http::Method::GET,
                skiff_api::server::encryption::STATUS_PATH,
            )
            .await?;
            print(&status, false);
            Ok(())
        }
        Command::Reencrypt => {
            let status = crate::admin::call(
                &args.data_dir,
                args.kubeconfig.as_ref(),
                http::Method::POST,
                skiff_api::server::encryption::REENCRYPT_PATH,
            )
            .await?;
            print(&status, true);
            Ok(())
        }
    }
}

fn rotate(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let file = data_dir.join("pki").join(crate::bootstrap::ENCRYPTION_CONFIG);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        UsageError(format!(
            "cannot read {}: {e}; name a server's --data-dir",
            file.display()
        ))
    })?;
    let (rotated, name) =
        skiff_api::encryption::Encryption::rotated(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    skiff_api::pki::write_private(&file, &rotated).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "skiff: {} now writes with the new key {name}; the older keys still read.\n\
         Next: copy it to every server's DIR/pki/, restart each server, then run \
         `skiff secrets-encrypt reencrypt`.",
        file.display()
    );
    Ok(())
}

fn print(status: &serde_json::Value, rewrote: bool) {
    let resources = status["resources"].as_array().cloned().unwrap_or_default();
    if resources.is_empty() {
        println!("Encryption at rest: disabled (no resource is configured)");
        return;
    }
    println!("Encryption at rest: enabled");
    for resource in resources {
        let stored: Vec<String> = resource["stored"]
            .as_object()
            .map(|forms| forms.iter().map(|(form, n)| format!("{form}: {n}")).collect())
            .unwrap_or_default();
        let stored = if stored.is_empty() {
            "none".to_string()
        } else {
            stored.join(", ")
        };
        println!(
            "{}  writes {}; stored: {stored}{}",
            resource["prefix"].as_str().unwrap_or_default(),
            resource["writeForm"].as_str().unwrap_or_default(),
            if rewrote {
                format!("; rewritten: {}", resource["rewritten"])
            } else {
                String::new()
            }
        );
    }
}
