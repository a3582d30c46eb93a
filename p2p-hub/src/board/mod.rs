//! The board half of the self-hosted hub: a pico-compatible SSH pipe server.
//!
//! Behaviour follows `pipe.pico.sh` as `docs/pico-compat.md` describes it, with the intended
//! rules where upstream has quirks (each module says which; §12 there lists them all):
//! - public-key authentication only; every key gets in, unknown keys as `public`;
//! - commands `help`, `ls`, `user`, `pub`, `sub`, `pipe` ([`command`]);
//! - topic names and access lists ([`topic`]), `ls` format ([`ls`]); access lists of
//!   registered owners are persisted in `STATE/clusters` ([`clusters`]) and an owner's new
//!   list ends the sessions of users it leaves out;
//! - a multicast FIFO per topic where a slow reader first loses droppable lines and is then
//!   cut off instead of stalling everyone ([`broker`]);
//! - a board line whose `from=` is not the session's user never reaches anyone ([`gate`]);
//! - at most [`ServerConfig::max_sessions_per_user`] pub/sub/pipe sessions per user;
//! - errors on stderr as `msg\n\r` with exit status 1; exit status 0, EOF and close (in that
//!   order, after all output) otherwise.
//!
//! Keepalives: upstream sends the channel request `ping@pico.sh` every 5 s to notice dead
//! clients. russh 0.65 has no API to send arbitrary channel requests, so the server sends
//! the standard `keepalive@openssh.com` global request every 5 s instead (OpenSSH and russh
//! clients answer it) and drops the connection after 3 unanswered ones, which cancels its
//! sessions and removes them from their topics, the same effect. `keepalive@openssh.com`
//! from clients is answered, so `ServerAliveInterval` works.

pub mod broker;
pub mod clusters;
pub mod command;
pub mod duration;
pub mod flags;
pub mod gate;
mod handler;
pub mod hostkey;
pub mod ls;
pub mod registry;
mod session;
mod state;
pub mod tokenize;
pub mod topic;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::MethodKind;
use russh::keys::PublicKey;
use russh::server::Server as _;
use thiserror::Error;
use tokio::sync::watch;

use self::broker::{Broker, DEFAULT_BACKLOG_LIMIT};
use self::clusters::ClustersError;
use self::handler::Acceptor;
use self::hostkey::HostKeyError;
use self::registry::{Registry, RegistryError};
use self::state::State;
use self::topic::{AccessTable, Routing};

/// How to run the board server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (tests: `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Holds the host key and the user registry.
    pub state_dir: PathBuf,
    /// Register the SSH login name for an unknown key when the name is free.
    pub signup: bool,
    /// Per-reader backlog bound in bytes (see [`broker`]).
    pub backlog_limit: usize,
    /// Host name used in hints (`ssh -p PORT HOST sub ...`).
    pub public_host: String,
    /// Interval of server keepalives.
    pub keepalive_interval: Duration,
    /// Most pub/sub/pipe sessions one user holds at once; anonymous keys share one count.
    pub max_sessions_per_user: usize,
    /// What happens to a caller who names another user's topic without a place on it:
    /// refused with the reason (default), or, to test clients against pico.sh, moved
    /// silently to a topic of their own; then `features` is unknown too, as on pico.sh.
    pub routing: Routing,
}

/// Default [`ServerConfig::max_sessions_per_user`]: a member running a host, a client and
/// dozens of workers under one account stays well below it, while one member (or all
/// anonymous keys together) cannot hold more than 256 x the backlog bound in reader queues.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 256;

impl ServerConfig {
    /// Defaults: `127.0.0.1:2222`, no signup, [`DEFAULT_BACKLOG_LIMIT`], 5 s keepalives.
    pub fn new(state_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            state_dir: state_dir.into(),
            signup: false,
            backlog_limit: DEFAULT_BACKLOG_LIMIT,
            public_host: "localhost".to_owned(),
            keepalive_interval: Duration::from_secs(5),
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            routing: Routing::Refuse,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Host key problem.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    /// User registry problem.
    #[error("user registry: {0}")]
    Registry(#[from] RegistryError),
    /// The persisted access lists could not be read.
    #[error("access lists: {0}")]
    Clusters(#[from] ClustersError),
    /// The state directory could not be created.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running board server. Dropping it stops accepting and closes all connections.
pub struct BoardServer {
    local_addr: SocketAddr,
    host_key: PublicKey,
    task: tokio::task::JoinHandle<()>,
    /// Disconnects every client (connections run in their own tasks).
    shutdown: Option<russh::server::RunningServerHandle>,
}

impl std::fmt::Debug for BoardServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl BoardServer {
    /// Loads (or creates) the state, binds and starts serving in the background.
    pub async fn start(config: ServerConfig) -> Result<BoardServer, ServerError> {
        crate::statedir::ensure_private_dir(&config.state_dir).map_err(|source| {
            ServerError::StateDir {
                path: config.state_dir.clone(),
                source,
            }
        })?;
        let host_key = hostkey::load_or_generate(&config.state_dir)?;
        let registry = Registry::open(&config.state_dir)?;
        let persisted = clusters::load(&config.state_dir)?;
        if !persisted.is_empty() {
            tracing::info!(lists = persisted.len(), "access lists restored");
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let ssh_cmd = if local_addr.port() == 22 {
            format!("ssh {}", config.public_host)
        } else {
            format!("ssh -p {} {}", local_addr.port(), config.public_host)
        };
        let state = Arc::new(State {
            broker: Mutex::new(Broker::new(config.backlog_limit)),
            access: Mutex::new(AccessTable::with_persisted(persisted).with_routing(config.routing)),
            registry: Mutex::new(registry),
            members_changed: watch::Sender::new(0),
            signup: config.signup,
            ssh_cmd,
            state_dir: config.state_dir.clone(),
            persisting: Mutex::new(()),
            max_sessions_per_user: config.max_sessions_per_user,
            sessions: Mutex::new(HashMap::new()),
        });
        let public = host_key.public_key().clone();
        let ssh = russh::server::Config {
            methods: russh::MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![host_key],
            // OpenSSH starts with a `none` attempt; rejecting it slowly only delays logins.
            auth_rejection_time: Duration::from_millis(200),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keepalive_interval: Some(config.keepalive_interval),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        let ssh = Arc::new(ssh);
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut acceptor = Acceptor { state };
            let running = acceptor.run_on_socket(ssh, &listener);
            let _ = handle_tx.send(running.handle());
            if let Err(error) = running.await {
                tracing::error!(%error, "board server stopped accepting");
            }
        });
        let shutdown = handle_rx.await.ok();
        tracing::info!(addr = %local_addr, "board server listening");
        Ok(BoardServer {
            local_addr,
            host_key: public,
            task,
            shutdown,
        })
    }

    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's public host key, for clients' known_hosts.
    pub fn host_key(&self) -> &PublicKey {
        &self.host_key
    }
}

impl Drop for BoardServer {
    fn drop(&mut self) {
        if let Some(handle) = &self.shutdown {
            handle.shutdown("board server shutting down".to_owned());
        }
        self.task.abort();
    }
}
