//! Sans-IO wire protocol of future-p2p: no sockets, no tokio, no clocks.
//!
//! ```text
//!   id         ClusterName, PeerId, FutureId, WormholeCode: validated identifiers
//!   framer     LineFramer: arbitrary byte chunks from the pipe -> board lines
//! ```
//!
//! Above this crate, `p2p-transport` moves the bytes and the scheduler and worker cores
//! decide what to send; everything here is pure functions and plain data, so it is tested
//! exhaustively with proptest and golden lines from real future.p2p peers.

pub mod frame;
pub mod framer;
pub mod id;
pub mod protocols;
