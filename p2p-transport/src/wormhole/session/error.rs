//! [`SessionError`]: how a warm session failed, from set-up to a dead peer.

use std::time::Duration;

use magic_wormhole::WormholeError;
use p2p_proto::frame::FrameError;

use crate::wormhole::transfer::PanicError;

/// How a session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Rendezvous and connection did not complete within `connect_timeout`.
    #[error("session set-up timed out after {0:?}")]
    Timeout(Duration),
    /// Set-up was cancelled.
    #[error("session set-up cancelled")]
    Cancelled,
    /// Key confirmation failed: the peer used another code.
    #[error("wrong wormhole code: key confirmation with the peer failed")]
    WrongCode,
    /// The configuration is unusable (relay URL, listen address).
    #[error("invalid session configuration: {0}")]
    Config(String),
    /// The mailbox server or the PAKE exchange failed.
    #[error("mailbox: {0}")]
    Mailbox(String),
    /// The peer's hints or proof were not what a session peer sends.
    #[error("session handshake: {0}")]
    Handshake(String),
    /// No connection could be made (no common path, relay unreachable, ...).
    #[error("session connection failed: {0}")]
    Connect(String),
    /// The encrypted channel failed (I/O error, decryption or ordering failure).
    #[error("session channel failed: {0}")]
    Transit(String),
    /// A frame could not be encoded, or the peer sent one we cannot decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Nothing arrived from the peer for this long: it is dead or unreachable.
    #[error("peer silent for {0:?}: presumed dead")]
    PeerDead(Duration),
    /// The session is closed: by us, or the peer's connection ended (a clean close, or a
    /// peer process that died and whose socket the OS closed).
    #[error("session closed")]
    Closed,
}

impl From<PanicError> for SessionError {
    fn from(panic: PanicError) -> Self {
        SessionError::Connect(format!(
            "the wormhole library failed internally: {}",
            panic.0
        ))
    }
}

impl From<WormholeError> for SessionError {
    fn from(err: WormholeError) -> Self {
        match err {
            WormholeError::PakeFailed => SessionError::WrongCode,
            other => SessionError::Mailbox(other.to_string()),
        }
    }
}
