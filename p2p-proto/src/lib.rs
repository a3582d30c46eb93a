//! Sans-IO wire protocol of future-p2p: no sockets, no tokio, no clocks.
//!
//! ```text
//!   board (text, one line per message, on the cluster's pipe topic)
//!     framer     LineFramer: arbitrary byte chunks from the pipe -> lines
//!     line       decode / BoardLine::encode: line <-> BoardLine, future.p2p-compatible
//!     message    BoardLine, Message (hello, request, offer, accept, withdraw, result,
//!                decline), TransferUri, WorkerKey, SealedCode
//!   shared vocabulary
//!     id         ClusterName (and its board TopicStyle), PeerId, FutureId, WormholeCode:
//!                validated identifiers
//!     time       BoardTime (`when`), Expiry (`expires`)
//!     protocols  Protocols: the `;`-separated capability list, negotiation, and the
//!                PayloadFormat a peer gets (ours, or future.p2p 0.4.0's RDS files)
//!     load       WorkerLoad: the futures a worker holds and its transfers, on its hellos
//!     peers      PeerTable: peers seen in hellos, bounded per user and in all, expiring
//!     seal       sealed codes: a wormhole code only the accepted worker can open
//!   data plane (binary, on a warm session)
//!     frame      Frame (hello, task, result, heartbeat, cancel, progress, started) with
//!                payloads as bulk after a small head; FrameDecoder hands payloads on in
//!                pieces
//!     limits     DEFAULT_MAX_PAYLOAD: the one payload size limit every layer applies
//! ```
//!
//! Above this crate, `p2p-transport` moves the bytes and the scheduler and worker cores
//! decide what to send; everything here is pure functions and plain data, so it is tested
//! exhaustively with proptest and golden lines from real future.p2p peers.

#![warn(missing_docs)]

pub mod frame;
pub mod framer;
pub mod id;
pub mod limits;
pub mod line;
pub mod load;
pub mod message;
pub mod peers;
pub mod protocols;
pub mod seal;
pub mod time;

pub use frame::{Frame, FrameDecoder, FrameError};
pub use framer::{FramerError, LineFramer};
pub use id::{ClusterName, FutureId, IdError, PeerId, TopicStyle, WormholeCode};
pub use line::LineError;
pub use message::{BoardLine, Message, TransferUri};
pub use protocols::{PayloadFormat, Protocols};
pub use time::{BoardTime, Expiry};
