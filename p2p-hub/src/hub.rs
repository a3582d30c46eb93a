//! The self-hosted hub: the board's pipe server, the mailbox server and the transit relay
//! in one process, each on its own address.
//!
//! This is the embedded default of future-p2p: a cluster that needs no public service.
//! `future-p2p hub` and the tests all start it through [`Hub`].

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use p2p_transport::wormhole::WormholeConfig;

use crate::board::{BoardServer, ServerConfig, ServerError};
use crate::mailbox::{MailboxConfig, MailboxHandle, MailboxServer};
use crate::relay::{RelayConfig, RelayHandle, TransitRelay};

/// Where and how the hub's three servers run.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The board (SSH pipe server): address, state directory, signup.
    pub board: ServerConfig,
    /// Address of the mailbox server (`ws://ADDR/v1`).
    pub mailbox_listen: SocketAddr,
    pub mailbox: MailboxConfig,
    /// Address of the transit relay (`tcp://ADDR`).
    pub relay_listen: SocketAddr,
    pub relay: RelayConfig,
}

impl HubConfig {
    /// Everything on 127.0.0.1 with OS-chosen ports, state in `state_dir`.
    pub fn localhost(state_dir: impl Into<PathBuf>) -> HubConfig {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut board = ServerConfig::new(state_dir);
        board.listen = any;
        HubConfig {
            board,
            mailbox_listen: any,
            mailbox: MailboxConfig::default(),
            relay_listen: any,
            relay: RelayConfig::default(),
        }
    }
}

/// Why the hub could not start.
#[derive(Debug, Error)]
pub enum HubError {
    #[error("board server: {0}")]
    Board(#[from] ServerError),
    #[error("mailbox server on {addr}: {source}")]
    Mailbox {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("transit relay on {addr}: {source}")]
    Relay {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running hub. Dropping it stops all three servers.
#[derive(Debug)]
pub struct Hub {
    pub board: BoardServer,
    pub mailbox: MailboxHandle,
    pub relay: RelayHandle,
}

impl Hub {
    /// Starts the three servers on the current tokio runtime.
    pub async fn start(config: HubConfig) -> Result<Hub, HubError> {
        let board = BoardServer::start(config.board).await?;
        let mailbox = MailboxServer::bind(config.mailbox_listen, config.mailbox)
            .await
            .map_err(|source| HubError::Mailbox {
                addr: config.mailbox_listen,
                source,
            })?;
        let relay = TransitRelay::bind(config.relay_listen, config.relay)
            .await
            .map_err(|source| HubError::Relay {
                addr: config.relay_listen,
                source,
            })?;
        Ok(Hub {
            board,
            mailbox,
            relay,
        })
    }

    /// The board's SSH address.
    pub fn board_addr(&self) -> SocketAddr {
        self.board.local_addr()
    }

    /// The mailbox URL clients use.
    pub fn mailbox_url(&self) -> String {
        self.mailbox.url()
    }

    /// The relay URL clients use.
    pub fn relay_url(&self) -> String {
        format!("tcp://{}", self.relay.local_addr())
    }

    /// The wormhole configuration for peers of this hub.
    pub fn wormhole(&self) -> WormholeConfig {
        WormholeConfig::new(self.mailbox_url(), self.relay_url())
    }
}
