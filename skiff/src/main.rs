//! `skiff`: the one binary. Each subcommand lives in its own module:
//!
//! | command        | module      | what it runs                                   |
//! |----------------|-------------|------------------------------------------------|
//! | `skiff server` | [`server`]  | a control-plane node: store, API, and a local node agent |
//! | `skiff agent`  | [`agent`]   | a node agent in its own process, joining with a join token |
//! | `skiff image`  | [`image`]   | import Wasm components and OCI layouts into a node; push components to a registry |
//! | `skiff token`  | [`token`]   | create, list and delete join tokens            |
//! | `skiff snapshot` | [`snapshot`] | save a backup of the store; restore one into a new cluster |
//! | `skiff secrets-encrypt` | [`secrets_encrypt`] | encryption at rest: status, key rotation, re-encryption |
//! | `skiff member` | [`member`]  | list the store's cluster members; remove one   |
//! | `skiff kubeconfig` | [`kubeconfig`] | an admin kubeconfig with a context per live API server |
//!
//! Logs and spans (OpenTelemetry export with `--otlp-endpoint`, W3C
//! `traceparent` propagation always) are set up in [`telemetry`].
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod agent;
mod bootstrap;
mod image;
mod kubeconfig;
mod manifests;
mod member;
mod peer;
mod secrets_encrypt;
mod server;
mod snapshot;
mod telemetry;
mod token;

/// A command line that parses but makes no sense; exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "A WebAssembly-native orchestrator with a Kubernetes-compatible API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a control-plane node (the replicated store, one node by default).
    Server(Box<server::ServerArgs>),
    /// Run a node agent against an API server.
    Agent(agent::AgentArgs),
    /// Manage a node's images.
    Image(image::ImageArgs),
    /// Manage join tokens (bootstrap tokens) for node agents.
    Token(token::TokenArgs),
    /// Back the cluster's store up, or restore a backup into a new cluster.
    Snapshot(snapshot::SnapshotArgs),
    /// Encryption at rest: status, key rotation and re-encryption.
    SecretsEncrypt(secrets_encrypt::SecretsEncryptArgs),
    /// List the members of the store's cluster, or remove one.
    Member(member::MemberArgs),
    /// Write an admin kubeconfig with a context for every live API server.
    Kubeconfig(kubeconfig::KubeconfigArgs),
}

/// A node agent holds a listening socket per Wasm pod port and the server
/// a connection per client, so the soft limit on open files (often 1,024)
/// is raised to the hard one, as kubelet and containerd run.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the open files limit");
        }
    }
}

fn main() -> ExitCode {
    // A runc container's monitor: called back by the node agent, before
    // anything else starts (no runtime, no threads).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == skiff_host::oci::shim::SUBCOMMAND) {
        let code = skiff_host::oci::shim::main(&args[2..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skiff: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (otlp_endpoint, service) = match &cli.command {
        Command::Server(args) => (args.otlp_endpoint(), "skiff-server"),
        Command::Agent(args) => (args.otlp_endpoint(), "skiff-agent"),
        _ => (None, "skiff"),
    };
    let telemetry = match telemetry::install(otlp_endpoint, service, runtime.handle()) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("skiff: {e:#}");
            return ExitCode::from(if e.is::<UsageError>() { 2 } else { 1 });
        }
    };
    raise_open_file_limit();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(*args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Image(args) => image::run(args).await,
            Command::Token(args) => token::run(args).await,
            Command::Snapshot(args) => snapshot::run(args).await,
            Command::SecretsEncrypt(args) => secrets_encrypt::run(args).await,
            Command::Member(args) => member::run(args).await,
            Command::Kubeconfig(args) => kubeconfig::run(args).await,
        }
    });
    // Flushes the spans still queued, on the runtime's workers.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff: {e:#}");
            ExitCode::from(if e.is::<UsageError>() { 2 } else { 1 })
        }
    }
}
