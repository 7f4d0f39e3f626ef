//! `skiff server`: one control-plane node.
//!
//! Opens the store under `--data-dir`, serves the peer router on
//! `--peer-listen`, and then either bootstraps a one-node cluster (the
//! default), forms a cluster from `--peers`, or joins an existing one
//! with `--join`. Runs until SIGINT/SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use skiff_store::{NodeId, Store, StoreConfig};

use crate::UsageError;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory for the store and everything else this node keeps.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR")]
    data_dir: PathBuf,

    /// Address the peer (raft) endpoint listens on.
    #[arg(long, default_value = "127.0.0.1:2380")]
    peer_listen: SocketAddr,

    /// Address peers use to reach this node; defaults to --peer-listen.
    #[arg(long)]
    advertise_peer: Option<String>,

    /// This node's id in the cluster (unique, non-zero).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    node_id: NodeId,

    /// Form a cluster of these members: `ID=HOST:PORT,…` (including this node).
    #[arg(long, value_delimiter = ',', conflicts_with = "join", value_parser = parse_peer)]
    peers: Vec<(NodeId, String)>,

    /// Join the cluster a member of which listens at HOST:PORT.
    #[arg(long)]
    join: Option<String>,
}

/// One `ID=HOST:PORT` member of `--peers`.
fn parse_peer(entry: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} is not ID=HOST:PORT"))?;
    let id: NodeId = id.parse().map_err(|_| format!("{id:?} is not a node id"))?;
    if id == 0
        || addr
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!("{entry:?} is not ID=HOST:PORT with a non-zero id"));
    }
    Ok((id, addr.to_string()))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut members = BTreeMap::new();
    for (id, addr) in &args.peers {
        if members.insert(*id, addr.clone()).is_some() {
            return Err(UsageError(format!("--peers names node {id} twice")).into());
        }
    }
    if !members.is_empty() && !members.contains_key(&args.node_id) {
        return Err(UsageError(format!(
            "--peers does not include this node (--node-id {})",
            args.node_id
        ))
        .into());
    }
    let listener = tokio::net::TcpListener::bind(args.peer_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--peer-listen)", args.peer_listen))?;
    let local = listener.local_addr().context("peer listener address")?;
    let advertise = args.advertise_peer.clone().unwrap_or_else(|| local.to_string());

    let config = StoreConfig::new(args.node_id, args.data_dir.join("store"), advertise.clone());
    let store = Store::open(config)
        .await
        .with_context(|| format!("cannot open the store in {}", args.data_dir.display()))?;
    let serve = tokio::spawn(skiff_store::http::serve_peers(listener, store.clone()));

    if let Some(peer) = &args.join {
        store
            .join(peer)
            .await
            .with_context(|| format!("cannot join the cluster at {peer}"))?;
    } else if members.is_empty() {
        store.initialize_single().await.context("cannot bootstrap the store")?;
    } else {
        store.initialize(members).await.context("cannot form the cluster")?;
    }
    let leader = store.wait_for_leader(Duration::from_secs(30)).await?;
    tracing::info!(node = args.node_id, peer = %advertise, leader, revision = store.revision(), "store ready");
    println!(
        "skiff: node {} ready; peer endpoint {advertise}; data in {}",
        args.node_id,
        args.data_dir.display()
    );

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        served = serve => {
            match served {
                Ok(Err(e)) => return Err(e).context("peer endpoint failed"),
                Err(e) => return Err(e).context("peer endpoint task failed"),
                Ok(Ok(())) => {}
            }
        }
    }
    store.shutdown().await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
