//! `skiff kubeconfig`: an admin kubeconfig that names every API server of
//! the cluster, one context each.
//!
//! kubectl talks to one server per context and does not fail over, so
//! the file gives the operator a context per live server (the servers the
//! `default/kubernetes` Endpoints list; each keeps itself there while it
//! lives, see `skiff_api::server`'s `kubernetes_service`). All contexts
//! share the source kubeconfig's CA and credentials: the cluster's
//! identity is one, so one credential works against every server. The
//! current context is the server the source kubeconfig named, when it is
//! among them. For one address that always reaches a live server, put a
//! load balancer in front and give its name to every server's `--tls-san`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use k8s_openapi::api::core::v1::Endpoints;
use kube::config::{Kubeconfig, NamedCluster, NamedContext};

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The data directory of a server, whose admin kubeconfig is the
    /// source.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR")]
    data_dir: PathBuf,

    /// A kubeconfig to use as the source instead of the data directory's.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// Write the kubeconfig here (owner-readable only) instead of to
    /// standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub async fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let source_path = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    let client = crate::admin::client(&args.data_dir, args.kubeconfig.as_ref()).await?;
    let source =
        Kubeconfig::read_from(&source_path).with_context(|| format!("cannot read {}", source_path.display()))?;
    let endpoints = kube::Api::<Endpoints>::namespaced(client, "default")
        .get("kubernetes")
        .await
        .context("cannot read the default/kubernetes Endpoints")?;
    let servers = skiff_client::balancer::endpoint_servers(&endpoints);
    if servers.is_empty() {
        bail!("the default/kubernetes Endpoints list no API server");
    }
    let named = naming(&source, &servers)?;
    let yaml = serde_yaml::to_string(&named).context("cannot write the kubeconfig")?;
    match &args.output {
        Some(path) => {
            skiff_api::pki::write_private(path, &yaml).with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "skiff: kubeconfig for {} servers written to {}",
                servers.len(),
                path.display()
            );
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

/// `source` with its current context's cluster and user repeated for each
/// of `servers` (`host:port`): clusters and contexts `skiff@<host:port>`.
fn naming(source: &Kubeconfig, servers: &[String]) -> anyhow::Result<Kubeconfig> {
    let current = source
        .current_context
        .as_deref()
        .and_then(|name| source.contexts.iter().find(|c| c.name == name))
        .or_else(|| source.contexts.first())
        .and_then(|c| c.context.clone())
        .context("the source kubeconfig has no context")?;
    let cluster = source
        .clusters
        .iter()
        .find(|c| c.name == current.cluster)
        .and_then(|c| c.cluster.clone())
        .context("the source kubeconfig's context names no cluster it has")?;
    let user = current.user.clone().unwrap_or_default();
    let auth = source
        .auth_infos
        .iter()
        .filter(|a| a.name == user)
        .cloned()
        .collect::<Vec<_>>();
    let source_server = cluster.server.clone().unwrap_or_default();
    let mut named = Kubeconfig {
        auth_infos: auth,
        ..Kubeconfig::default()
    };
    for server in servers {
        let name = format!("skiff@{server}");
        let url = format!("https://{server}");
        if source_server.trim_end_matches('/') == url {
            named.current_context = Some(name.clone());
        }
        let mut entry = cluster.clone();
        entry.server = Some(url);
        named.clusters.push(NamedCluster {
            name: name.clone(),
            cluster: Some(entry),
            other: Default::default(),
        });
        let mut context = current.clone();
        context.cluster = name.clone();
        named.contexts.push(NamedContext {
            name,
            context: Some(context),
            other: Default::default(),
        });
    }
    if named.current_context.is_none() {
        named.current_context = named.contexts.first().map(|c| c.name.clone());
    }
    named.api_version = Some("v1".into());
    named.kind = Some("Config".into());
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_gets_a_context_with_the_same_credentials() -> anyhow::Result<()> {
        let source = Kubeconfig::from_yaml(&skiff_api::pki::kubeconfig(
            "https://127.0.0.1:7001",
            "CA",
            "skiff-admin",
            &skiff_api::pki::Credential::Token("secret"),
        ))?;
        let servers = ["127.0.0.1:7000".to_string(), "127.0.0.1:7001".to_string()];
        let named = naming(&source, &servers)?;
        let names: Vec<_> = named.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["skiff@127.0.0.1:7000", "skiff@127.0.0.1:7001"]);
        assert_eq!(named.current_context.as_deref(), Some("skiff@127.0.0.1:7001"));
        let urls: Vec<_> = named
            .clusters
            .iter()
            .map(|c| c.cluster.as_ref().and_then(|c| c.server.clone()).unwrap_or_default())
            .collect();
        assert_eq!(urls, ["https://127.0.0.1:7000", "https://127.0.0.1:7001"]);
        assert_eq!(named.auth_infos.len(), 1);
        let yaml = serde_yaml::to_string(&named)?;
        assert!(yaml.contains("secret"), "the credential is kept");
        Ok(())
    }
}
