//! Magic wormhole, the peer side: one-shot transfers and warm sessions, on the
//! `magic-wormhole` crate polled inside tokio. (The mailbox server and transit relay a
//! self-hosted cluster uses are in the `p2p-hub` crate.)
//!
//! ```text
//!   config      mailbox URL and transit relay hints (WormholeConfig)
//!   code        the protocol's WormholeCode handed to the crate (peer codes taken as chosen)
//!   transfer    one-shot byte/file transfers: timeout, cancel, progress, size limit;
//!               wire-compatible with future.p2p, the Python client and wormhole-william
//!   session/    one PAKE through the crate, then a long-lived encrypted channel carrying
//!               p2p-proto frames with heartbeats; payloads cut into bounded records
//!     channel   that channel (direct or via a transit relay), ours because only our peers
//!               speak sessions and the crate's transit is slow for small records
//!     payload   IncomingPayload: a task's payload handed on while it still arrives
//!     pool      PiecePool: recycled buffers for those pieces, counting what the consumer
//!               still holds so a slow one slows the sender
//!     error     SessionError
//!   meter       Meter: bytes of the payload moving each way, for progress bars and status
//!   nodelay     TCP_NODELAY on the crate's transit sockets (a workaround, see there)
//! ```

mod code;
pub mod config;
pub mod meter;
mod nodelay;
pub mod session;
pub mod transfer;

pub use config::{
    DEFAULT_MAILBOX_URL, DEFAULT_RELAY_URL, RelayUrlError, TransitMode, WormholeConfig,
};
pub use meter::{Meter, Moved, Way};
pub use session::{
    Incoming, IncomingPayload, IncomingTask, Outbound, Outgoing, PayloadError, Session,
    SessionConfig, SessionError, SessionPath, SessionRole, SessionSender,
};
pub use transfer::{
    ProgressFn, Received, ReceivedFile, TransferError, TransferOptions, receive_bytes,
    receive_file, send_bytes, send_file,
};
