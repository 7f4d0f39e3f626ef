//! `skiff token create|list|delete`: join tokens, which a node agent
//! presents to join the cluster, kept as Kubernetes keeps bootstrap tokens
//! (kubeadm's and k3s's model): a Secret `kube-system/bootstrap-token-<id>`
//! of type `bootstrap.kubernetes.io/token`. The token is `<id>.<secret>`,
//! six and sixteen characters of `[a-z0-9]`; the API server authenticates
//! it as `system:bootstrap:<id>` in `system:bootstrappers` and in the
//! token's extra groups, until it expires or its Secret is deleted.
//!
//! The commands talk to the API with the admin kubeconfig a server wrote
//! (`--data-dir`), or any kubeconfig (`--kubeconfig`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::UsageError;

const NAMESPACE: &str = "kube-system";
const TYPE: &str = "bootstrap.kubernetes.io/token";
const PREFIX: &str = "bootstrap-token-";
/// The group join tokens put their nodes in, besides `system:bootstrappers`.
const NODE_GROUP: &str = "system:bootstrappers:skiff:default-node-token";

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,

    /// The data directory of a server, whose admin kubeconfig is used.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR", global = true)]
    data_dir: PathBuf,

    /// A kubeconfig to use instead of the data directory's.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a join token and print it.
    Create(CreateArgs),
    /// List the join tokens.
    List,
    /// Delete a join token, by its id or the whole token.
    Delete { token: String },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// How long the token is valid, e.g. `30m`, `24h`, `7d`; `0` for ever.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: Ttl,

    /// A note kept with the token.
    #[arg(long)]
    description: Option<String>,
}

/// A token's lifetime; `None` for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ttl(Option<Duration>);

/// `30m`, `24h`, `7d`, `90s`; `0` for no expiry.
fn parse_ttl(text: &str) -> Result<Ttl, String> {
    if text == "0" {
        return Ok(Ttl(None));
    }
    let bad = || format!("{text:?} is not a duration such as 30m, 24h or 7d (0: never expires)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Ttl(Some(Duration::from_secs(seconds))))
}

/// Whether `text` is a join token: `<id>.<secret>`, six and sixteen
/// characters of `[a-z0-9]` (what the API server authenticates as a
/// bootstrap token).
pub fn is_join_token(text: &str) -> bool {
    let Some((id, secret)) = text.split_once('.') else {
        return false;
    };
    let shaped = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    shaped(id, 6) && shaped(secret, 16)
}

/// `n` characters of `[a-z0-9]`, uniformly drawn from the OS's randomness.
fn random_chars(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            // 252 is the largest multiple of 36 below 256: no bias.
            if *byte < 252 && out.len() < n {
                out.push(CHARS[usize::from(*byte) % CHARS.len()] as char);
            }
        }
    }
    out
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let client = crate::admin::client(&args.data_dir, args.kubeconfig.as_ref()).await?;
    let secrets: Api<Secret> = Api::namespaced(client, NAMESPACE);
    match args.command {
        TokenCommand::Create(create) => {
            let (id, secret) = (random_chars(6), random_chars(16));
            let mut data = vec![
                ("token-id", id.clone()),
                ("token-secret", secret.clone()),
                ("usage-bootstrap-authentication", "true".into()),
                ("usage-bootstrap-signing", "true".into()),
                ("auth-extra-groups", NODE_GROUP.into()),
            ];
            if let Ttl(Some(ttl)) = create.ttl {
                let expires = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::try_from(ttl).context("--ttl is too long")?)
                    .context("--ttl is too long")?;
                data.push(("expiration", expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
            }
            if let Some(description) = create.description {
                data.push(("description", description));
            }
            let object = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(format!("{PREFIX}{id}")),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                type_: Some(TYPE.into()),
                string_data: Some(data.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
                ..Default::default()
            };
            secrets
                .create(&PostParams::default(), &object)
                .await
                .context("cannot create the token's Secret")?;
            println!("{id}.{secret}");
        }
        TokenCommand::List => {
            let listed = secrets
                .list(&ListParams::default().fields(&format!("type={TYPE}")))
                .await
                .context("cannot list the join tokens")?;
            println!("{:<8} {:<22} {:<50} DESCRIPTION", "TOKEN-ID", "EXPIRES", "EXTRA-GROUPS");
            for secret in listed.items {
                let field = |key: &str| {
                    secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get(key))
                        .map(|ByteString(bytes)| String::from_utf8_lossy(bytes).into_owned())
                        .unwrap_or_default()
                };
                let expires = field("expiration");
                println!(
                    "{:<8} {:<22} {:<50} {}",
                    field("token-id"),
                    if expires.is_empty() { "<never>".into() } else { expires },
                    field("auth-extra-groups"),
                    field("description")
                );
            }
        }
        TokenCommand::Delete { token } => {
            let id = token.split('.').next().unwrap_or_default();
            if id.len() != 6 {
                return Err(UsageError(format!("{token:?} is neither a token id nor a token")).into());
            }
            secrets
                .delete(&format!("{PREFIX}{id}"), &DeleteParams::default())
                .await
                .with_context(|| format!("cannot delete join token {id}"))?;
            println!("join token {id} deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("0"), Ok(Ttl(None)));
        assert_eq!(parse_ttl("90s"), Ok(Ttl(Some(Duration::from_secs(90)))));
        assert_eq!(parse_ttl("24h"), Ok(Ttl(Some(Duration::from_secs(86_400)))));
        assert!(parse_ttl("24").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("0h").is_err());
    }

    #[test]
    fn join_tokens_are_told_from_other_tokens() {
        assert!(is_join_token("abcdef.0123456789abcdef"));
        assert!(!is_join_token("abcdef.0123456789ABCDEF"));
        assert!(!is_join_token("abcde.0123456789abcdef"));
        assert!(!is_join_token("eyJhbGciOi.xyz.abc"));
        assert!(!is_join_token("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn tokens_have_their_shape() {
        let chars = random_chars(16);
        assert_eq!(chars.len(), 16);
        assert!(chars.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(random_chars(16), chars);
    }
}
