//! The API client of the subcommands that talk to a running server as an
//! operator (`skiff token`, `skiff snapshot save`, `skiff
//! secrets-encrypt`, `skiff member`, `skiff kubeconfig`): the admin
//! kubeconfig a server wrote into its data directory, or any kubeconfig
//! given; and [`call`], for skiff's own admin endpoints.

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

/// `method path` on skiff's own endpoints (`/skiff/v1/…`) with the admin
/// client of [`client`]; the JSON answer, or the Status message of a
/// refusal as the error.
pub async fn call(
    data_dir: &Path,
    kubeconfig: Option<&PathBuf>,
    method: http::Method,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    use http_body_util::BodyExt;
    let client = client(data_dir, kubeconfig).await?;
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(kube::client::Body::empty())
        .context("request")?;
    let response = client.send(request).await.context("cannot reach the server")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() {
        let message = value["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        anyhow::bail!("the server answered {status}: {message}");
    }
    Ok(value)
}
