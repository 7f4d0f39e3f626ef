//! `skiff image import FILE --name REF`: puts a Wasm component (a `.wasm`
//! file) or an OCI image layout (a directory or a `.tar` of one) into a
//! node's image store, where pods naming `REF` find it without a pull.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use skiff_host::oci::ImageStore;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Import a Wasm component or an OCI image layout.
    Import(ImportArgs),
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

pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    let ImageCommand::Import(args) = args.command;
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
