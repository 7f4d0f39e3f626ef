//! `skiff member list|remove ID`: the servers of the store's raft
//! cluster, for operators.
//!
//! * `list` prints every member (id, peer address, voter or learner) and
//!   which one leads, as the server asked knows them
//!   (`GET /skiff/v1/members`).
//! * `remove ID` takes member ID out of the cluster (`DELETE
//!   /skiff/v1/members/ID`), voter or learner; it returns once the
//!   cluster's configuration without it is committed. Stop that server
//!   then, and wipe its data directory before it joins again. The last
//!   voter, and an id that is no member, are refused.
//!
//! The commands talk to the API as `skiff token` does: the admin
//! kubeconfig of `--data-dir`, or `--kubeconfig`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    command: Command,

    /// The data directory of a server, whose admin kubeconfig is used.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR", global = true)]
    data_dir: PathBuf,

    /// A kubeconfig to use instead of the data directory's.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the members of the store's cluster.
    List,
    /// Remove a member from the store's cluster.
    Remove {
        /// The member's node id (as `list` shows it).
        id: u64,
    },
}

pub async fn run(args: MemberArgs) -> anyhow::Result<()> {
    match args.command {
        Command::List => {
            let list = crate::admin::call(
                &args.data_dir,
                args.kubeconfig.as_ref(),
                http::Method::GET,
                skiff_api::server::members::PATH,
            )
            .await?;
            print!("{}", table(&list));
            Ok(())
        }
        Command::Remove { id } => {
            let path = skiff_api::server::members::MEMBER_PATH.replace("{id}", &id.to_string());
            crate::admin::call(&args.data_dir, args.kubeconfig.as_ref(), http::Method::DELETE, &path).await?;
            println!(
                "skiff: node {id} is no longer a member of the cluster; stop it, and wipe its data directory \
                 before it joins again"
            );
            Ok(())
        }
    }
}

/// `ID  ADDRESS  ROLE`, one member a line, the leader marked.
fn table(list: &serde_json::Value) -> String {
    let leader = list["leader"].as_u64();
    let mut out = String::from("ID\tADDRESS\tROLE\n");
    for member in list["members"].as_array().into_iter().flatten() {
        let id = member["id"].as_u64();
        out.push_str(&format!(
            "{}\t{}\t{}{}\n",
            id.map(|id| id.to_string()).unwrap_or_default(),
            member["addr"].as_str().unwrap_or_default(),
            member["role"].as_str().unwrap_or_default(),
            if id.is_some() && id == leader { " (leader)" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_the_leader() {
        let list = serde_json::json!({
            "kind": "MemberList",
            "leader": 2,
            "members": [
                {"id": 1, "addr": "10.0.0.1:6443", "role": "voter"},
                {"id": 2, "addr": "10.0.0.2:6443", "role": "voter"},
                {"id": 4, "addr": "10.0.0.4:6443", "role": "learner"},
            ],
        });
        assert_eq!(
            table(&list),
            "ID\tADDRESS\tROLE\n1\t10.0.0.1:6443\tvoter\n2\t10.0.0.2:6443\tvoter (leader)\n4\t10.0.0.4:6443\tlearner\n"
        );
    }
}
