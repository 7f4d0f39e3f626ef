//! `skiff snapshot save|restore`, and the scheduled snapshots `skiff
//! server` takes: backups of the cluster's store (`skiff_store::backup`).
//!
//! * `save FILE` asks a running server for a backup (`GET
//!   /skiff/v1/backup`, as the admin of `--data-dir`'s kubeconfig or
//!   `--kubeconfig`), writes it aside, verifies its checksum and record
//!   count, and only then moves it to FILE.
//! * `restore FILE --data-dir DIR` makes DIR the data directory of a new
//!   one-node cluster holding the backup's objects, offline; `skiff server
//!   --data-dir DIR` then starts it, and other servers join it. Revisions
//!   continue `--bump-revision` past the backup's, and every older one
//!   reads as compacted, so clients of the old cluster list afresh. The
//!   store holds Secrets encrypted with the old cluster's keys, so the
//!   new one needs its credentials: `--credentials-from` a server's data
//!   directory (copied: `pki/` and `token`), or DIR holding them already.
//! * `--snapshot-schedule` (a cron schedule, in UTC) makes each server
//!   save one into `DIR/snapshots` and keep the newest
//!   `--snapshot-retention`, as k3s's etcd snapshots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::UsageError;

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Save a backup of a running cluster's store to FILE.
    Save(SaveArgs),
    /// Make a new one-node cluster's data directory from a backup.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
struct SaveArgs {
    /// Where the backup goes (replaced if it exists).
    file: PathBuf,

    /// The data directory of a server, whose admin kubeconfig is used.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR")]
    data_dir: PathBuf,

    /// A kubeconfig to use instead of the data directory's.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup (from `skiff snapshot save` or a scheduled snapshot).
    file: PathBuf,

    /// The new server's data directory; it must hold no store yet.
    #[arg(long)]
    data_dir: PathBuf,

    /// A data directory of the backed-up cluster's servers, whose
    /// credentials (`pki/`, `token`) the new cluster takes.
    #[arg(long, value_name = "DIR")]
    credentials_from: Option<PathBuf>,

    /// How far the new cluster's revisions continue past the backup's
    /// (etcd's `--bump-revision`; Kubernetes' docs suggest a billion).
    #[arg(long, default_value_t = 1_000_000_000)]
    bump_revision: u64,
}

pub async fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    match args.command {
        SnapshotCommand::Save(save) => save_command(save).await,
        SnapshotCommand::Restore(restore) => restore_command(restore),
    }
}

async fn save_command(args: SaveArgs) -> anyhow::Result<()> {
    let client = crate::admin::client(&args.data_dir, args.kubeconfig.as_ref()).await?;
    let request = http::Request::get(skiff_api::server::backup::PATH)
        .body(kube::client::Body::empty())
        .context("backup request")?;
    let response = client
        .send(request)
        .await
        .context("cannot ask the server for a backup")?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|s| s["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
        anyhow::bail!("the server refused the backup ({status}): {message}");
    }
    let partial = partial_path(&args.file);
    let mut out = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot write {}", partial.display()))?;
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the backup stream broke off")?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)
                .await
                .with_context(|| format!("cannot write {}", partial.display()))?;
        }
    }
    out.sync_all().await.ok();
    drop(out);
    let info = match skiff_store::backup::verify(&partial) {
        Ok(info) => info,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error).context("the backup received does not verify");
        }
    };
    std::fs::rename(&partial, &args.file).with_context(|| format!("cannot write {}", args.file.display()))?;
    let bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    println!(
        "skiff: saved a backup at revision {} ({} records, {bytes} bytes) to {}",
        info.revision,
        info.records,
        args.file.display()
    );
    Ok(())
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    file.with_file_name(name)
}

fn restore_command(args: RestoreArgs) -> anyhow::Result<()> {
    if !args.file.is_file() {
        return Err(UsageError(format!("{}: no such file", args.file.display())).into());
    }
    let store_dir = args.data_dir.join("store");
    if store_dir.join("db").exists() {
        return Err(UsageError(format!(
            "{} already holds a store: restore into a new data directory",
            args.data_dir.display()
        ))
        .into());
    }
    // Checked before anything is written.
    skiff_store::backup::verify(&args.file).with_context(|| format!("cannot restore {}", args.file.display()))?;
    let pki = args.data_dir.join("pki");
    match &args.credentials_from {
        Some(from) => copy_credentials(from, &args.data_dir)?,
        None if pki.join("ca.crt").is_file() && pki.join(crate::bootstrap::ENCRYPTION_CONFIG).is_file() => {}
        None => {
            return Err(UsageError(format!(
                "the backup's Secrets are encrypted with its cluster's keys: give --credentials-from \
                 a data directory of that cluster's servers, or copy its pki/ and token into {}",
                args.data_dir.display()
            ))
            .into());
        }
    }
    let restored = skiff_store::backup::restore(&args.file, &store_dir, args.bump_revision)
        .with_context(|| format!("cannot restore {}", args.file.display()))?;
    println!(
        "skiff: restored the backup at revision {} into {}; revisions continue from {}. \
         Start it with `skiff server --data-dir {}`; other servers join it.",
        restored.backup_revision,
        args.data_dir.display(),
        restored.revision,
        args.data_dir.display()
    );
    Ok(())
}

/// Copies the cluster's shared credentials and join token from `from` (a
/// server's data directory) into `to`.
fn copy_credentials(from: &Path, to: &Path) -> anyhow::Result<()> {
    let credentials = crate::bootstrap::Credentials::read(&from.join("pki"))
        .with_context(|| format!("cannot read the credentials in {}", from.display()))?;
    credentials
        .install(&to.join("pki"))
        .with_context(|| format!("cannot install the credentials in {}", to.display()))?;
    let token = std::fs::read_to_string(from.join("token"))
        .with_context(|| format!("cannot read {}", from.join("token").display()))?;
    skiff_api::pki::write_private(&to.join("token"), &token).context("cannot write the join token")?;
    Ok(())
}

/// Scheduled snapshots of one server's store.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub schedule: skiff_controllers::cronjob::Schedule,
    pub dir: PathBuf,
    pub retention: usize,
    /// Names the files: `skiff-snapshot-<node>-<unix seconds>.snap`.
    pub node: String,
}

impl Schedule {
    /// Takes a snapshot at each time the schedule names, until dropped.
    pub async fn run(self, store: skiff_store::Store) {
        let utc = jiff::tz::TimeZone::UTC;
        loop {
            let now = jiff::Timestamp::now();
            let Some(next) = self.schedule.next_after(now, &utc) else {
                tracing::warn!("the snapshot schedule names no future time");
                return;
            };
            let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
            tokio::time::sleep(wait).await;
            match self.take(&store, next).await {
                Ok(path) => tracing::info!(path = %path.display(), "took a scheduled snapshot"),
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "scheduled snapshot failed"),
            }
        }
    }

    async fn take(&self, store: &skiff_store::Store, at: jiff::Timestamp) -> anyhow::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let name = format!("skiff-snapshot-{}-{}.snap", self.node, at.as_second());
        let path = self.dir.join(&name);
        let partial = partial_path(&path);
        store.save_backup(&partial).await?;
        tokio::fs::rename(&partial, &path).await?;
        self.prune()?;
        Ok(path)
    }

    /// Removes this node's oldest snapshots beyond the retention.
    fn prune(&self) -> anyhow::Result<()> {
        let prefix = format!("skiff-snapshot-{}-", self.node);
        let mut taken: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let seconds = name.strip_prefix(&prefix)?.strip_suffix(".snap")?.parse().ok()?;
                Some((seconds, entry.path()))
            })
            .collect();
        taken.sort();
        let excess = taken.len().saturating_sub(self.retention);
        for (_, path) in taken.into_iter().take(excess) {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_newest_snapshots_of_this_node_only() {
        let dir = tempfile::tempdir().unwrap();
        let schedule = Schedule {
            schedule: "0 */12 * * *".parse().unwrap(),
            dir: dir.path().to_path_buf(),
            retention: 2,
            node: "node-1".into(),
        };
        for name in [
            "skiff-snapshot-node-1-100.snap",
            "skiff-snapshot-node-1-300.snap",
            "skiff-snapshot-node-1-200.snap",
            "skiff-snapshot-node-2-50.snap",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        schedule.prune().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "notes.txt",
                "skiff-snapshot-node-1-200.snap",
                "skiff-snapshot-node-1-300.snap",
                "skiff-snapshot-node-2-50.snap"
            ]
        );
    }

    #[test]
    fn a_partial_file_sits_beside_its_target() {
        assert_eq!(
            partial_path(Path::new("/backups/cluster.snap")),
            Path::new("/backups/cluster.snap.partial")
        );
    }
}
