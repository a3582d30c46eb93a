//! future-p2p: a peer-to-peer compute cluster for R futures.
//!
//! Friends share idle R processes: a client posts futures on a shared message board (a pico
//! pipe topic reached over SSH), idle workers offer to take them, the client accepts one
//! offer, and the future and its result travel peer-to-peer over magic wormhole.
//!
//! This facade re-exports the layers, bottom to top:
//!
//! ```text
//!   proto       sans-IO: ids, board messages, line codec and framer, data-plane frames
//!   transport   I/O: SSH board client and pipe server, wormhole transfers, mailbox, relay
//!   scheduler   client side: dispatch state machine and its tokio driver
//!   worker      worker side: worker state machine, Executor trait, tokio driver
//!   r           R evaluator, bridge, `future-p2p` command line, R package
//! ```
//!
//! and adds [`local`]: a whole cluster on one machine (embedded hub, users with fresh keys)
//! for the quickstart, the benchmarks and the end-to-end tests.

pub mod local;

pub use p2p_proto as proto;
pub use p2p_r as r;
pub use p2p_scheduler as scheduler;
pub use p2p_transport as transport;
pub use p2p_worker as worker;
