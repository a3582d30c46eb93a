//! The mailbox (rendezvous) server: the half of the hub that introduces wormhole peers.
//!
//! - [`protocol`]: JSON commands in, server messages out;
//! - [`state`]: the sans-IO state machine (commands + time in, frames out);
//! - [`server`]: the tokio/WebSocket driver, [`MailboxServer::bind`].

pub mod protocol;
pub mod server;
pub mod state;

pub use server::{MailboxHandle, MailboxServer, MailboxStats};
pub use state::{CommandError, ConnId, MailboxConfig, MailboxState, Output};
