//! A whole cluster on one machine: an embedded hub on free loopback ports and users with
//! fresh keys. The quickstart, the benchmarks and the end-to-end tests run on it; it takes
//! the same paths as a cluster across the world (SSH to the board, wormhole for payloads).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use p2p_hub::board::hostkey::{HostKeyError, generate_key_file};
use p2p_hub::{Hub, HubConfig, HubError};
use p2p_proto::id::{ClusterName, PeerId, TopicStyle};
use p2p_transport::board::{
    Board, BoardConfig, BoardError, JoinError, PipeOptions, join_cluster, local_peer_id,
};
use p2p_transport::lines::{LineChannel, TOPIC_LINES};
use p2p_transport::wormhole::{TransitMode, WormholeConfig};
use p2p_worker::core::WorkerConfig;
use p2p_worker::{Executor, Worker, WorkerOptions, fresh_secret};

/// Why the local cluster could not be set up.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("files of the local hub: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] HostKeyError),
    #[error("encoding a key: {0}")]
    KeyEncoding(String),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error("no user {0:?} on this local hub")]
    UnknownUser(String),
}

/// An embedded hub with registered users; everything is removed when it is dropped.
pub struct LocalHub {
    // Field order: the hub stops before its state directory goes.
    pub hub: Hub,
    keys: BTreeMap<String, PathBuf>,
    known_hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalHub {
    /// Starts a hub on 127.0.0.1 (free ports) with one fresh Ed25519 key per user.
    pub async fn start(users: &[&str]) -> Result<LocalHub, LocalError> {
        let dir = tempfile::tempdir()?;
        let state = dir.path().join("hub");
        std::fs::create_dir_all(&state)?;
        let mut registry = String::new();
        let mut keys = BTreeMap::new();
        for user in users {
            let path = dir.path().join(format!("{user}_ed25519"));
            let key = generate_key_file(&path)?;
            let public = key
                .public_key()
                .to_openssh()
                .map_err(|err| LocalError::KeyEncoding(err.to_string()))?;
            // `name type base64`: the registry takes no key comment.
            let mut words = public.split_whitespace();
            let (kind, base64) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            registry.push_str(&format!("{user} {kind} {base64}\n"));
            keys.insert((*user).to_owned(), path);
        }
        std::fs::write(state.join("users"), registry)?;
        let hub = Hub::start(HubConfig::localhost(&state)).await?;
        let known_hosts = dir.path().join("known_hosts");
        let host_key = hub
            .board
            .host_key()
            .to_openssh()
            .map_err(|err| LocalError::KeyEncoding(err.to_string()))?;
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{} {host_key}\n", hub.board_addr().port()),
        )?;
        Ok(LocalHub {
            hub,
            keys,
            known_hosts,
            _dir: dir,
        })
    }

    /// The private key file of `user`.
    pub fn key(&self, user: &str) -> Result<&Path, LocalError> {
        self.keys
            .get(user)
            .map(PathBuf::as_path)
            .ok_or_else(|| LocalError::UnknownUser(user.to_owned()))
    }

    /// How `user` reaches the board: only the key made here (not the user's agent), and the
    /// hub's host key trusted.
    pub fn board_config(&self, user: &str) -> Result<BoardConfig, LocalError> {
        let args = [
            "-p".to_owned(),
            self.hub.board_addr().port().to_string(),
            "-i".to_owned(),
            self.key(user)?.display().to_string(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
        ];
        let mut config = BoardConfig::from_ssh_args("127.0.0.1", &args)
            .map_err(|err| LocalError::Board(BoardError::from(err)))?;
        config.agent = None;
        Ok(config)
    }

    /// Connects `user` to the board.
    pub async fn board(&self, user: &str) -> Result<Board, LocalError> {
        Ok(Board::connect(self.board_config(user)?).await?)
    }

    /// `owner` opens the board topic of its cluster `name` (`name/future.p2p`, as
    /// future.p2p 0.4.0) for `members` (what `future-p2p host` does) and joins it: returns
    /// the owner's peer id and the topic.
    pub async fn host(
        &self,
        owner: &str,
        name: &str,
        members: &[&str],
    ) -> Result<(Board, PeerId, LineChannel), LocalError> {
        let board = self.board(owner).await?;
        let access = PipeOptions {
            access: members.iter().map(|m| (*m).to_owned()).collect(),
            ..PipeOptions::default()
        };
        let topic = board
            .open(
                &format!("{name}{}", ClusterName::FUTURE_P2P_SUFFIX),
                &access,
            )
            .await?;
        Ok((board, local_peer_id(owner)?, topic.into_lines(TOPIC_LINES)))
    }

    /// `user` joins `cluster`: returns the user's board connection, peer id and the topic.
    /// The owner must [`host`](LocalHub::host) it first: as on pico.sh, a member who comes
    /// earlier lands on a private topic of their own.
    pub async fn join(
        &self,
        user: &str,
        cluster: &ClusterName,
    ) -> Result<(Board, PeerId, LineChannel), LocalError> {
        let board = self.board(user).await?;
        let (me, lines) = join_cluster(&board, cluster, None, TopicStyle::FutureP2p).await?;
        Ok((board, me, lines))
    }

    /// `user` joins `cluster` with a worker evaluating tasks on `executor`, speaking
    /// sessions and sealed codes; `tweak` adjusts its options first. Keep the returned
    /// board as long as the worker runs.
    pub async fn worker<E: Executor>(
        &self,
        user: &str,
        cluster: &ClusterName,
        executor: E,
        tweak: impl FnOnce(&mut WorkerOptions),
    ) -> Result<(Board, Worker), LocalError> {
        let (board, me, lines) = self.join(user, cluster).await?;
        let mut config = WorkerConfig::new(me);
        config.sessions = true;
        config.secret = Some(fresh_secret());
        let mut options = WorkerOptions::new(config, self.wormhole());
        tweak(&mut options);
        Ok((board, Worker::start(lines, executor, options)))
    }

    /// Wormhole settings for this hub's mailbox and relay. Transfers go through the relay
    /// only: every peer is on this machine anyway, and magic-wormhole 0.8.1 sometimes
    /// panics when a peer drops one of several direct candidate connections (the transfer
    /// then fails and is retried; here it would only make runs uneven).
    pub fn wormhole(&self) -> WormholeConfig {
        WormholeConfig {
            transit: TransitMode::RelayOnly,
            ..self.hub.wormhole()
        }
    }
}
