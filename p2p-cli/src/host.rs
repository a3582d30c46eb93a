//! `future-p2p host`: what future.p2p's `host_cluster()` does. The host opens the cluster's
//! board topic with its access list (`pipe NAME/future.p2p -a users`: the topic of
//! future.p2p 0.4.0, so that its workers and clients join the same cluster; `--topic-style
//! seed` opens a seed-era `NAME`) and says hello as `type=cluster` so
//! members can tell the cluster is up. Its topic reconnects on its own after any drop
//! (a hub restart, a network error), reopening the pipe with the same list.
//!
//! It should come first. On pico.sh the list lasts only while the host is connected, and a
//! member who opens `alice/p2p` before alice created it lands on a private topic of their
//! own. On a future-p2p hub the list is kept (across hub restarts too) until the owner
//! hosts again with another list, which ends the sessions of users taken off it; a member
//! who comes before the first hosting is told so and retries (see `docs/trust.md`).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use p2p_proto::id::{ClusterName, PeerId};
use p2p_proto::message::{BoardLine, Hello, Message, Role};
use p2p_proto::time::{BoardTime, Expiry};
use p2p_transport::board::PipeOptions;
use p2p_transport::clock::unix_ms;
use p2p_transport::cluster_watch::{WatchOptions, watch_cluster};
use p2p_transport::lines::TOPIC_LINES;

use crate::CliError;
use crate::connect::BoardArgs;
use crate::units::parse_duration;

#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster to host: `NAME` (or `YOU/NAME`).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// Users who may join (comma-separated).
    #[arg(long, env = "FUTURE_P2P_USERS", value_delimiter = ',')]
    pub users: Vec<String>,
    /// Stop hosting after this long (e.g. 3600, 90m, 8h); default: until interrupted.
    #[arg(long, env = "FUTURE_P2P_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How often to say hello on the topic.
    #[arg(long, env = "FUTURE_P2P_HELLO_INTERVAL", value_parser = parse_duration, default_value = "10")]
    pub hello_interval: Duration,
}

/// Whether `ls` shows `topic` with an access list and a session of its owner `user` on it
/// (`  - UUID (user@addr)` or `(user-keyname@addr)` under the channel): another host. The
/// list alone proves nothing on a hub, which keeps lists after their host left.
fn hosted_in_listing(listing: &str, topic: &str, user: &str) -> bool {
    let header = format!("- {topic}: (Access List:");
    let mut lines = listing
        .lines()
        .skip_while(|line| !line.starts_with(&header));
    if lines.next().is_none() {
        return false;
    }
    let mine = [format!("({user}@"), format!("({user}-")];
    lines
        .take_while(|line| line.starts_with("  "))
        .any(|line| mine.iter().any(|m| line.contains(m.as_str())))
}

/// The `type=cluster` hello, valid for two intervals.
pub fn cluster_hello(me: &PeerId, interval: Duration) -> Option<String> {
    let now = (unix_ms() / 1000) as i64;
    let expires = now + 2 * interval.as_secs().max(1) as i64;
    BoardLine::new(
        BoardTime::from_unix(now),
        Message::Hello(Hello {
            role: Role::Cluster,
            from: me.clone(),
            expires: Expiry::Unix(expires),
            protocols: None,
            slots: None,
            busy: None,
        }),
    )
    .encode()
    .ok()
}

pub async fn run(args: HostArgs) -> Result<(), CliError> {
    let board = args.board.connect().await?;
    let (user, me) = args.board.peer_id(&board).await?;
    let cluster: ClusterName = args.cluster.parse()?;
    let cluster = cluster.qualified(&user)?;
    if cluster.owner() != Some(user.as_str()) {
        return Err(CliError::NotOwner {
            user,
            cluster: args.cluster,
        });
    }
    let own_topic = cluster.board_topic_for(&user, args.board.topic_style);
    let topic = format!("{user}/{own_topic}");
    if hosted_in_listing(&board.ls().await?, &topic, &user) {
        return Err(CliError::AlreadyHosted { cluster: topic });
    }
    let options = PipeOptions {
        access: args.users.clone(),
        ..PipeOptions::default()
    };
    let lines = board
        .open(&own_topic, &options)
        .await?
        .into_lines(TOPIC_LINES);
    // The host's own hellos do not come back to it: any it sees are another host's.
    let (mut lines, watch) = watch_cluster(
        lines,
        WatchOptions {
            cluster: topic.clone(),
            bound: None,
            advice: String::new(),
        },
    );
    let mut other_hosts = watch.sightings();
    println!("hosting {topic} for {}", args.users.join(", "));
    let stop = async {
        match args.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let mut hello = tokio::time::interval(args.hello_interval.max(Duration::from_secs(1)));
    let mut last_hello = tokio::time::Instant::now();
    let mut clients = NewClients::default();
    loop {
        tokio::select! {
            _ = hello.tick() => {
                last_hello = tokio::time::Instant::now();
                if let Some(line) = cluster_hello(&me, args.hello_interval)
                    && lines.outgoing.send(line).await.is_err()
                {
                    break;
                }
            }
            Ok(()) = other_hosts.changed() => {
                if let Some(other) = other_hosts.borrow_and_update().as_ref() {
                    tracing::warn!(host = %other.host, "another host announces {topic} too; stop one of them");
                }
            }
            // Keep reading: on a pipe, a reader that stalls stalls everyone.
            line = lines.incoming.recv() => match line {
                Some(line) => {
                    tracing::debug!(%line, "board");
                    if clients.is_new(&line, (unix_ms() / 1000) as i64) {
                        // A new client (a bridge counting the cluster, `future-p2p status`)
                        // hears the host at once, at most once a second however many come.
                        hello.reset_at((last_hello + ANSWER_GAP).max(tokio::time::Instant::now()));
                    }
                }
                None => {
                    tracing::warn!("the board closed the topic");
                    break;
                }
            },
            _ = &mut stop => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("stopped hosting {topic}");
    Ok(())
}

/// Hellos that answer new clients are at least this far apart.
const ANSWER_GAP: Duration = Duration::from_secs(1);

/// Clients whose hellos the host has seen, until those lapse (bounded: a flood of made-up
/// clients is not remembered, and not answered).
#[derive(Debug, Default)]
struct NewClients {
    known: BTreeMap<PeerId, i64>,
}

impl NewClients {
    const MAX: usize = 4096;

    /// Whether `line` is a hello of a client not seen (or lapsed) before `now` (Unix s).
    fn is_new(&mut self, line: &str, now: i64) -> bool {
        if !line.contains("type=client") {
            return false;
        }
        let Ok(decoded) = p2p_proto::line::decode(line) else {
            return false;
        };
        let Message::Hello(hello) = decoded.message else {
            return false;
        };
        if hello.role != Role::Client {
            return false;
        }
        let expires = (hello.expires.unix_ms() / 1000) as i64;
        let known = self.known.get(&hello.from).is_some_and(|e| *e > now);
        if !self.known.contains_key(&hello.from) && self.known.len() >= Self::MAX {
            self.known.retain(|_, e| *e > now);
            if self.known.len() >= Self::MAX {
                return false;
            }
        }
        self.known.insert(hello.from, expires);
        !known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_new_once_until_its_hello_lapses() {
        let mut clients = NewClients::default();
        let hello = "when=2026-11-26T10:00:00,expires=1000,type=client,from=carol@vm:3";
        assert!(clients.is_new(hello, 900));
        assert!(!clients.is_new(hello, 950));
        // Lapsed: new again.
        assert!(clients.is_new(hello, 1001));
        assert!(!clients.is_new(
            "when=2026-11-26T10:00:00,expires=1000,type=worker,from=bob@vm:1",
            900
        ));
        assert!(!clients.is_new("garbage type=client", 900));
    }

    #[test]
    fn a_hosted_cluster_has_an_access_list_and_its_owner_on_it() {
        let listing = "Channel Information\r\n- alice/p2p: (Access List: bob, carol)\r\n  Pipes:\r\n  - u1 (bob@1.2.3.4:5)\r\n  - u2 (alice-laptop@1.2.3.4:6)\r\n- alice/other:\r\n  Pipes:\r\n  - u3 (alice@1.2.3.4:7)\r\n";
        assert!(hosted_in_listing(listing, "alice/p2p", "alice"));
        assert!(!hosted_in_listing(listing, "alice/other", "alice"));
        assert!(!hosted_in_listing(listing, "alice/p2", "alice"));
        // future.p2p 0.4.0's host_cluster() hosts the same cluster on its own topic.
        let original = "Channel Information\r\n- alice/p2p/future.p2p: (Access List: bob)\r\n  Pipes:\r\n  - u1 (alice@1.2.3.4:5)\r\n";
        assert!(hosted_in_listing(original, "alice/p2p/future.p2p", "alice"));
        // The list kept by a hub after its host left, with only members on it.
        let left = "Channel Information\r\n- alice/p2p: (Access List: bob)\r\n  Pipes:\r\n  - u1 (bob@1.2.3.4:5)\r\n- alice/x:\r\n  Pipes:\r\n  - u3 (alice@1.2.3.4:7)\r\n";
        assert!(!hosted_in_listing(left, "alice/p2p", "alice"));
        assert!(!hosted_in_listing(
            "no pubsub channels found\n",
            "alice/p2p",
            "alice"
        ));
    }

    #[test]
    fn the_hello_decodes_as_a_cluster_hello() {
        let me = PeerId::new("alice", "box", 7).unwrap();
        let line = cluster_hello(&me, Duration::from_secs(10)).unwrap();
        let decoded = p2p_proto::line::decode(&line).unwrap();
        assert!(matches!(
            decoded.message,
            Message::Hello(Hello {
                role: Role::Cluster,
                ..
            })
        ));
    }
}
