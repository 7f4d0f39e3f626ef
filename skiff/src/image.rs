//! `skiff image import FILE --name REF`: puts a Wasm component (a `.wasm`
//! file) or an OCI image layout (a directory or a `.tar` of one) into a
//! node's image store, where pods naming `REF` find it without a pull.
//!
//! `skiff image push FILE REF`: pushes a Wasm component to a registry as
//! a Wasm OCI artifact, which pods and WasmPlugins can then name.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use skiff_image::{ImageStore, PullOptions, is_loopback_reference, push_component};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Import a Wasm component or an OCI image layout.
    Import(ImportArgs),
    /// Push a Wasm component to a registry (plain HTTP for a registry on
    /// loopback, TLS otherwise).
    Push(PushArgs),
}

#[derive(Debug, Args)]
struct PushArgs {
    /// The `.wasm` component.
    file: PathBuf,
    /// Where to push it, e.g. `127.0.0.1:5000/plugins/policy:v1`.
    reference: String,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// A `.wasm` component, or an OCI image layout (directory or tar).
    file: PathBuf,

    /// The image reference pods will use, e.g. `local/hello:1`.
    #[arg(long)]
    name: String,

    /// The node's data directory: `skiff server`'s `--data-dir` + `/agent`,
    /// or `skiff agent`'s `--data-dir`.
    #[arg(long, default_value = "skiff-data/agent")]
    data_dir: PathBuf,
}

/// The first bytes of every Wasm binary.
const WASM_MAGIC: &[u8] = b"\0asm";

pub async fn run(args: ImageArgs) -> anyhow::Result<()> {
    match args.command {
        ImageCommand::Import(args) => import(args),
        ImageCommand::Push(args) => push(args).await,
    }
}

async fn push(args: PushArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    if !bytes.starts_with(WASM_MAGIC) {
        anyhow::bail!("{} is not a Wasm file", args.file.display());
    }
    let options = PullOptions {
        plain_http: is_loopback_reference(&args.reference),
        basic_auth: None,
    };
    let url = push_component(&args.reference, &bytes, &options)
        .await
        .with_context(|| format!("cannot push {} to {}", args.file.display(), args.reference))?;
    println!("{} {url}", args.reference);
    Ok(())
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let store = ImageStore::open(args.data_dir.join("images"))
        .with_context(|| format!("cannot open the image store in {}", args.data_dir.display()))?;
    let is_wasm = args.file.is_file()
        && std::fs::File::open(&args.file)
            .and_then(|mut f| {
                let mut magic = [0u8; 4];
                std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic)
            })
            .is_ok_and(|m| m == WASM_MAGIC);
    let image = if is_wasm {
        let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
        store.import_component(&bytes, &args.name)
    } else {
        store.import_layout(&args.file, &args.name)
    }
    .with_context(|| format!("cannot import {}", args.file.display()))?;
    println!("{} {} ({:?})", image.reference, image.manifest_digest, image.kind);
    Ok(())
}
