//! `future-p2p user`, `ls` and `status`: who am I, which clusters do I host, and who is on
//! a cluster (read from the hellos on its topic for a while).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use p2p_proto::id::ClusterName;
use p2p_proto::message::{Message, Role};

use crate::CliError;
use crate::connect::BoardArgs;
use crate::units::parse_duration;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub board: BoardArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster, `OWNER/NAME` (or `NAME` for one of your own).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// How long to listen for hellos (workers say hello every 30 s by default).
    #[arg(long, env = "FUTURE_P2P_LISTEN", value_parser = parse_duration, default_value = "35")]
    pub listen: Duration,
}

pub async fn user(args: UserArgs) -> Result<(), CliError> {
    let board = args.board.connect().await?;
    println!("{}", args.board.username(&board).await?);
    Ok(())
}

/// The clusters in an `ls` listing: topics with an access list, and their members.
pub fn hosted_clusters(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("- ")?;
            let (topic, access) = rest.split_once(": (Access List: ")?;
            Some((
                topic.to_owned(),
                access.trim_end().trim_end_matches(')').to_owned(),
            ))
        })
        .collect()
}

pub async fn ls(args: UserArgs) -> Result<(), CliError> {
    let board = args.board.connect().await?;
    let clusters = hosted_clusters(&board.ls().await?);
    if clusters.is_empty() {
        println!("no clusters hosted");
    }
    for (topic, members) in clusters {
        println!("{topic} members: {members}");
    }
    Ok(())
}

/// Who said hello on a topic, by role.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    pub seen: BTreeMap<String, &'static str>,
}

impl Census {
    /// Counts the sender of `line` if it is a hello.
    pub fn observe(&mut self, line: &str) {
        if let Ok(decoded) = p2p_proto::line::decode(line)
            && let Message::Hello(hello) = decoded.message
        {
            let role = match hello.role {
                Role::Worker => "worker",
                Role::Client => "client",
                Role::Cluster => "host",
            };
            self.seen.insert(hello.from.to_string(), role);
        }
    }
}

pub async fn status(args: StatusArgs) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    // No warning about a missing host here: saying whether one was seen is the point.
    let mut lines = args.board.join(&cluster, None).await?.lines;
    let mut census = Census::default();
    let listen = tokio::time::sleep(args.listen);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            line = lines.incoming.recv() => match line {
                Some(line) => census.observe(&line),
                None => break,
            },
            _ = &mut listen => break,
        }
    }
    if !census.seen.values().any(|role| *role == "host") {
        println!("host not seen (is the cluster hosted, and are you on its access list?)");
    }
    for (peer, role) in &census.seen {
        println!("{role} {peer}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_the_topics_with_access_lists() {
        let listing = "Channel Information\r\n- alice/p2p: (Access List: bob, carol)\r\n  Pipes:\r\n  - x\r\n- alice/tmp:\r\n";
        assert_eq!(
            hosted_clusters(listing),
            vec![("alice/p2p".to_owned(), "bob, carol".to_owned())]
        );
    }

    #[test]
    fn census_counts_hellos_by_role() {
        let me = p2p_proto::id::PeerId::new("alice", "box", 7).unwrap();
        let line = crate::host::cluster_hello(&me, Duration::from_secs(5)).unwrap();
        let mut census = Census::default();
        census.observe(&line);
        census.observe("garbage");
        assert_eq!(census.seen.get("alice@box:7"), Some(&"host"));
        assert_eq!(census.seen.len(), 1);
    }
}
