//! [`Cluster::builder`]: where the board is and who we are on it; [`ClusterBuilder::connect`]
//! logs in and opens the cluster's topic as a member.
//!
//! The topic is handed to the drivers as a [`LineChannel`], watched twice on the way:
//! - for its host's `type=cluster` hellos ([`ClusterWatch`]): a member whose cluster shows
//!   no host can say so (and, with [`ClusterBuilder::warn_without_host`], is warned);
//! - for the board's refusals: a pipe the board ends before it carried a single line, in
//!   the board's own words (a future-p2p hub ends a member's pipe at once, saying that
//!   nobody hosts the cluster or that the member is not on its access list). A client can
//!   then fail in a fraction of a second instead of waiting out its timeout.
//!
//! pico.sh refuses nothing: it moves such a member's pipe to a topic of the member's own
//! (`bob/alice/p2p/future.p2p`), where it would wait for ever. On a board without
//! `features` (pico.sh), a member that is not the cluster's owner therefore compares its
//! `ls` from before and after opening the pipe ([`RerouteProbe`]), and `connect` fails with
//! [`ClusterError::Refused`] when its pipe shows up there: one `ls` round trip more.

use std::time::Duration;

use p2p_proto::id::{ClusterName, PeerId, TopicStyle};
use p2p_transport::board::reroute::RerouteProbe;
use p2p_transport::board::{Board, BoardConfig, PipeOptions, local_peer_id};
use p2p_transport::cluster_watch::{ClusterWatch, WatchOptions, watch_cluster};
use p2p_transport::lines::{LineChannel, TOPIC_LINES};
use p2p_transport::wormhole::WormholeConfig;
use p2p_worker::Executor;
use tokio::sync::watch;

use crate::client::ClientBuilder;
use crate::error::ClusterError;
use crate::worker::WorkerBuilder;

/// The public pico.sh pipe server, the default board.
pub const DEFAULT_BOARD_HOST: &str = "pipe.pico.sh";

/// Where and how to reach a cluster; see [`Cluster::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct ClusterBuilder {
    cluster: String,
    host: String,
    ssh_args: Vec<String>,
    board: Option<BoardConfig>,
    user: Option<String>,
    wormhole: WormholeConfig,
    warn_without_host: Option<Duration>,
    topic_style: TopicStyle,
}

impl ClusterBuilder {
    /// The board's SSH host (default: `pipe.pico.sh`; a future-p2p hub's address).
    pub fn board_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// SSH options as OpenSSH takes them (`["-p", "2222", "-i", "KEY", "-o",
    /// "StrictHostKeyChecking=accept-new"]`).
    pub fn ssh_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ssh_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// A complete board configuration (backend, agent, reconnect policy); replaces
    /// [`board_host`](Self::board_host) and [`ssh_args`](Self::ssh_args).
    pub fn board(mut self, config: BoardConfig) -> Self {
        self.board = Some(config);
        self
    }

    /// Our username, for boards without a `user` command (pipe.pico.sh); asked from the
    /// board otherwise.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The magic-wormhole mailbox and relays payloads travel through (default: the public
    /// servers).
    pub fn wormhole(mut self, wormhole: WormholeConfig) -> Self {
        self.wormhole = wormhole;
        self
    }

    /// Log a warning that says what to check when no host has announced the cluster this
    /// long after joining (and again, at growing intervals, while it lasts).
    pub fn warn_without_host(mut self, after: Duration) -> Self {
        self.warn_without_host = Some(after);
        self
    }

    /// Which board topic carries the cluster (default: `OWNER/NAME/future.p2p`, shared with
    /// future.p2p 0.4.0; [`TopicStyle::Seed`] reaches a seed-era `OWNER/NAME` cluster).
    pub fn topic_style(mut self, style: TopicStyle) -> Self {
        self.topic_style = style;
        self
    }

    /// Logs in to the board and opens the cluster's topic as a member.
    pub async fn connect(self) -> Result<Cluster, ClusterError> {
        let name: ClusterName = self.cluster.parse()?;
        let config = match self.board {
            Some(config) => config,
            None => BoardConfig::from_ssh_args(&self.host, &self.ssh_args)?,
        };
        let board = Board::connect(config).await?;
        let user = match self.user {
            Some(user) => user,
            // Where the account lives: pico.sh for pipe.pico.sh, else the board itself.
            None => board.account().await?.name,
        };
        let qualified = name.qualified(&user)?;
        let me = local_peer_id(&user)?;
        let typed = name.board_topic_for(&user, self.topic_style);
        let probe = if qualified.owner() == Some(user.as_str()) {
            None
        } else {
            reroute_probe(&board, &user, &typed).await?
        };
        let topic = board.open(&typed, &PipeOptions::default()).await?;
        if let Some(probe) = probe
            && let Ok(after) = board.ls().await
            && probe.moved(&after)
        {
            tracing::info!(cluster = %qualified, moved = probe.channel(), "the board moved our pipe: nobody hosts the cluster for us");
            topic.close().await;
            return Err(ClusterError::Refused {
                said: moved_reason(&qualified, &user, probe.channel()),
                cluster: qualified.to_string(),
                user,
            });
        }
        let (lines, refusals) = topic.into_lines_watching_refusals(TOPIC_LINES);
        let (lines, watch) = watch_cluster(
            lines,
            WatchOptions {
                cluster: qualified.to_string(),
                bound: self.warn_without_host,
                advice: host_advice(&qualified, &user),
            },
        );
        Ok(Cluster {
            membership: Membership {
                board,
                user,
                me,
                cluster: qualified,
                lines,
                watch,
                refusals,
            },
            wormhole: self.wormhole,
        })
    }
}

/// A member on a cluster's topic, not yet a client or a worker.
#[derive(Debug)]
pub struct Cluster {
    membership: Membership,
    wormhole: WormholeConfig,
}

/// The pieces of a member, for programs that drive the topic themselves (a status check,
/// the R bridge).
#[derive(Debug)]
pub struct Membership {
    /// The board connection (keep it: the topic reconnects through it).
    pub board: Board,
    /// Our username there.
    pub user: String,
    /// Our peer id on the topic, `user@host:pid`.
    pub me: PeerId,
    /// The cluster, `OWNER/NAME`.
    pub cluster: ClusterName,
    /// The topic's lines.
    pub lines: LineChannel,
    /// The cluster's host as seen on the topic.
    pub watch: ClusterWatch,
    /// What the board said when it last refused our pipe; `None` while it carries lines.
    pub refusals: watch::Receiver<Option<String>>,
}

impl Cluster {
    /// Starts describing a connection to `cluster` (`OWNER/NAME`, or `NAME` for one of
    /// your own).
    pub fn builder(cluster: impl Into<String>) -> ClusterBuilder {
        ClusterBuilder {
            cluster: cluster.into(),
            host: DEFAULT_BOARD_HOST.to_owned(),
            ssh_args: Vec::new(),
            board: None,
            user: None,
            wormhole: WormholeConfig::default(),
            warn_without_host: None,
            topic_style: TopicStyle::default(),
        }
    }

    /// The cluster, `OWNER/NAME`.
    pub fn name(&self) -> &ClusterName {
        &self.membership.cluster
    }

    /// Our peer id on the cluster.
    pub fn me(&self) -> &PeerId {
        &self.membership.me
    }

    /// Whether the cluster's host has said hello since we joined.
    pub fn host_seen(&self) -> bool {
        self.membership.watch.host_seen()
    }

    /// Becomes a client of the cluster: configure, then [`ClientBuilder::start`].
    pub fn client(self) -> ClientBuilder {
        ClientBuilder::new(self.membership, self.wormhole)
    }

    /// Lends this process to the cluster, running tasks on `executor`: configure, then
    /// [`WorkerBuilder::start`].
    pub fn worker<E: Executor>(self, executor: E) -> WorkerBuilder<E> {
        WorkerBuilder::new(self.membership, self.wormhole, executor)
    }

    /// The pieces, for a program that reads the topic itself.
    pub fn into_membership(self) -> Membership {
        self.membership
    }

    /// The wormhole servers this member uses.
    pub fn wormhole(&self) -> &WormholeConfig {
        &self.wormhole
    }

    /// The board connection (to ask it more before choosing a role).
    pub fn board(&self) -> &Board {
        &self.membership.board
    }
}

/// What a member should check when its cluster shows no host.
pub fn host_advice(cluster: &ClusterName, user: &str) -> String {
    let owner = cluster.owner().unwrap_or(user);
    format!(
        "either nobody hosts it (its owner {owner} must start `future-p2p host --cluster {name} --users ...` \
         or future.p2p::host_cluster() before members join), or you ({user}) are not on its access list \
         (ask {owner} to add you).",
        name = cluster.name(),
    )
}

/// On a board that moves instead of refusing (pico.sh: no `features` command that says
/// it proves senders, as a future-p2p hub's does), what a member's own namespace holds
/// before it opens `typed` (see [`RerouteProbe`]); `None` where the board refuses, or
/// where `ls` is not ours to run (anonymous keys).
async fn reroute_probe(
    board: &Board,
    user: &str,
    typed: &str,
) -> Result<Option<RerouteProbe>, ClusterError> {
    // Both at once: one round trip to pico.sh rather than two.
    let (proves, listing) = tokio::join!(board.proves_senders(), board.ls());
    if proves? {
        return Ok(None);
    }
    match listing {
        Ok(listing) => Ok(Some(RerouteProbe::new(user, typed, &listing))),
        Err(error) => {
            tracing::debug!(%error, "no `ls`: a moved pipe would go unnoticed");
            Ok(None)
        }
    }
}

/// What to say when the board moved our pipe to `moved`, a topic of our own.
fn moved_reason(cluster: &ClusterName, user: &str, moved: &str) -> String {
    let owner = cluster.owner().unwrap_or(user);
    format!(
        "{cluster} is not hosted for {user}: the board moved {user}'s pipe to {moved}, a topic of \
         {user}'s own where no host or worker comes (pico.sh does that when nobody hosts the \
         cluster, or its access list leaves {user} out; {owner} starts it with \
         `future-p2p host --cluster {name} --users {user}` or future.p2p::host_cluster())",
        name = cluster.name(),
    )
}

/// Waits until the board refuses our pipe (a reason), or forever.
pub(crate) async fn refused(refusals: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(said) = refusals.borrow_and_update().clone() {
            return said;
        }
        if refusals.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_pipe_is_said_with_who_hosts_and_how() {
        let cluster: ClusterName = "alice/p2p".parse().unwrap();
        let said = moved_reason(&cluster, "bob", "bob/alice/p2p/future.p2p");
        assert!(
            said.starts_with("alice/p2p is not hosted for bob: "),
            "{said}"
        );
        assert!(
            said.contains("moved bob's pipe to bob/alice/p2p/future.p2p"),
            "{said}"
        );
        assert!(
            said.contains("`future-p2p host --cluster p2p --users bob`"),
            "{said}"
        );
    }

    #[test]
    fn the_advice_names_the_owner_and_the_user() {
        let cluster: ClusterName = "alice/p2p".parse().unwrap();
        let advice = host_advice(&cluster, "bob");
        assert!(advice.contains("--cluster p2p") && advice.contains("you (bob)"));
    }
}
