//! The API client of the subcommands that talk to a running server as an
//! operator (`skiff token`, `skiff snapshot save`, `skiff
//! secrets-encrypt`): the admin kubeconfig a server wrote into its data
//! directory, or any kubeconfig given.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::UsageError;

/// A client with `kubeconfig`, or else `data_dir`'s `kubeconfig`.
pub async fn client(data_dir: &Path, kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let kubeconfig = kubeconfig.cloned().unwrap_or_else(|| data_dir.join("kubeconfig"));
    if !kubeconfig.is_file() {
        return Err(UsageError(format!(
            "{} does not exist: name a server's --data-dir or a --kubeconfig",
            kubeconfig.display()
        ))
        .into());
    }
    let config = kube::config::Kubeconfig::read_from(&kubeconfig)
        .with_context(|| format!("cannot read {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .context("cannot configure the API client")?;
    kube::Client::try_from(config).context("cannot create the API client")
}
