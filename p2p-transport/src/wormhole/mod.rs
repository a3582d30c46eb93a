//! Magic wormhole: peer-to-peer transfers and sessions, and the self-hosted servers.
//!
//! Client side (on the `magic-wormhole` crate, polled inside tokio):
//! - [`code`]: sender-chosen codes in future.p2p's shape (`CODE-f`, `CODE-r`);
//! - [`config`]: mailbox URL and transit relay hints;
//! - [`transfer`]: one-shot byte/file transfers with timeout, cancel, progress, size limit,
//!   wire-compatible with future.p2p, the Python client and wormhole-william;
//! - [`session`]: one PAKE (through the crate), then a long-lived encrypted channel carrying
//!   p2p-proto frames with heartbeats;
//! - [`channel`]: that channel (direct or via a transit relay), ours because only our
//!   peers speak sessions and the crate's transit is slow for small records;
//! - `nodelay`: TCP_NODELAY on the crate's transit sockets (a workaround, see there).
//!
//! Server side (the rendezvous half of the hub):
//! - [`mailbox`]: the mailbox (rendezvous) server, a sans-IO state machine plus a
//!   WebSocket driver ([`MailboxServer`]);
//! - [`relay`]: the transit relay ([`TransitRelay`]).

pub mod channel;
pub mod code;
pub mod config;
pub mod mailbox;
mod nodelay;
pub mod relay;
pub mod session;
pub mod transfer;

pub use channel::SessionPath;
pub use code::{CodeError, WormholeCode};
pub use config::{
    DEFAULT_MAILBOX_URL, DEFAULT_RELAY_URL, RelayUrlError, TransitMode, WormholeConfig,
};
pub use mailbox::{MailboxConfig, MailboxHandle, MailboxServer};
pub use relay::{RelayConfig, RelayHandle, TransitRelay};
pub use session::{Session, SessionConfig, SessionError, SessionRole, SessionSender};
pub use transfer::{
    ProgressFn, Received, ReceivedFile, TransferError, TransferOptions, receive_bytes,
    receive_file, send_bytes, send_file,
};
