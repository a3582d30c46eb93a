//! How every subcommand but `hub` reaches the board and the wormhole servers, and how a
//! member joins a cluster: through [`Cluster::builder`], as Rust embedders do, so that a
//! member whose cluster shows no host says so, and one the board refuses knows why (the
//! topic itself reconnects after any drop).

use clap::Args;
use p2p_cluster::{Cluster, ClusterBuilder, Membership};
use p2p_proto::id::{ClusterName, PeerId};
use p2p_transport::board::local_peer_id;
use p2p_transport::board::ssh_args::split_words;
use p2p_transport::board::{Backend, Board, BoardConfig};
use p2p_transport::cluster_watch::ClusterWatch;
use p2p_transport::lines::LineChannel;
use p2p_transport::wormhole::{DEFAULT_MAILBOX_URL, DEFAULT_RELAY_URL, WormholeConfig};

use crate::CliError;

/// The board and the wormhole servers (defaults: the public ones).
#[derive(Debug, Clone, Args)]
pub struct BoardArgs {
    /// SSH host of the board (a pico pipe server, or a future-p2p hub).
    #[arg(long, env = "FUTURE_P2P_HOST", default_value = "pipe.pico.sh")]
    pub host: String,
    /// SSH options as one string, as in R's ssh_args (e.g. "-J somehost -p 2222 -i KEY").
    #[arg(
        long,
        env = "FUTURE_P2P_SSH_ARGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub ssh_args: String,
    /// Use the system `ssh` (for ~/.ssh/config, ProxyCommand, aliases) instead of the
    /// built-in client.
    #[arg(long, env = "FUTURE_P2P_SYSTEM_SSH")]
    pub system_ssh: bool,
    /// Your username, for boards without a `user` command (pipe.pico.sh); asked from the
    /// board otherwise.
    #[arg(long, env = "FUTURE_P2P_USER")]
    pub user: Option<String>,
    /// The magic-wormhole mailbox (rendezvous) server.
    #[arg(long, env = "FUTURE_P2P_MAILBOX", default_value = DEFAULT_MAILBOX_URL)]
    pub mailbox: String,
    /// The magic-wormhole transit relay.
    #[arg(long, env = "FUTURE_P2P_RELAY", default_value = DEFAULT_RELAY_URL)]
    pub relay: String,
}

impl BoardArgs {
    /// How to reach the board: the built-in SSH client with `--ssh-args`, or the system's.
    pub fn board_config(&self) -> Result<BoardConfig, CliError> {
        let words = split_words(&self.ssh_args)?;
        Ok(if self.system_ssh {
            let mut config = BoardConfig::system_ssh(&self.host, &words);
            config.backend = Backend::SystemSsh {
                program: "ssh".into(),
            };
            config
        } else {
            BoardConfig::from_ssh_args(&self.host, &words)?
        })
    }

    /// Connects to the board.
    pub async fn connect(&self) -> Result<Board, CliError> {
        Ok(Board::connect(self.board_config()?).await?)
    }

    /// Who we are on `board`: `--user`, or what its `user` command says.
    pub async fn username(&self, board: &Board) -> Result<String, CliError> {
        match &self.user {
            Some(user) => Ok(user.clone()),
            None => Ok(board.user().await?.name),
        }
    }

    /// The one way every subcommand joins a cluster: [`Cluster::builder`] with these
    /// options.
    pub fn cluster(&self, cluster: &str) -> Result<ClusterBuilder, CliError> {
        let builder = Cluster::builder(cluster)
            .board(self.board_config()?)
            .wormhole(self.wormhole());
        Ok(match &self.user {
            Some(user) => builder.user(user.clone()),
            None => builder,
        })
    }

    /// Connects and opens `cluster`'s topic as a member: our board, username, peer id, the
    /// topic's lines and what is seen of the host (warned about after `host_timeout`, if
    /// given).
    pub async fn join(
        &self,
        cluster: &ClusterName,
        host_timeout: Option<std::time::Duration>,
    ) -> Result<Joined, CliError> {
        let mut builder = self.cluster(&cluster.to_string())?;
        if let Some(after) = host_timeout {
            builder = builder.warn_without_host(after);
        }
        let Membership {
            board,
            user,
            me,
            lines,
            watch,
            refusals,
            ..
        } = builder.connect().await?.into_membership();
        Ok(Joined {
            board,
            user,
            me,
            lines,
            watch,
            refusals,
        })
    }

    /// Our peer id on `board`.
    pub async fn peer_id(&self, board: &Board) -> Result<(String, PeerId), CliError> {
        let user = self.username(board).await?;
        let me = local_peer_id(&user)?;
        Ok((user, me))
    }

    /// The wormhole servers.
    pub fn wormhole(&self) -> WormholeConfig {
        WormholeConfig::new(self.mailbox.clone(), self.relay.clone())
    }
}

/// A member on its cluster's topic.
#[derive(Debug)]
pub struct Joined {
    /// The board connection (keep it: the topic reconnects through it).
    pub board: Board,
    /// Our username there.
    pub user: String,
    /// Our peer id.
    pub me: PeerId,
    /// The topic's lines.
    pub lines: LineChannel,
    /// The cluster's host as seen on the topic.
    pub watch: ClusterWatch,
    /// What the board said when it refused our pipe on the topic, if it did.
    pub refusals: tokio::sync::watch::Receiver<Option<String>>,
}

pub use p2p_cluster::connect::host_advice;
