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
//!   transport   a peer's I/O: SSH board client, wormhole transfers and warm sessions
//!   hub         the self-hosted servers: SSH pipe server, wormhole mailbox, transit relay
//!   scheduler   client side: dispatch state machine and its tokio driver
//!   worker      worker side: worker state machine, Executor trait, tokio driver
//!   r           R evaluator, the bridge protocol of R sessions, the R package
//! ```
//!
//! The `future-p2p` program is the `p2p-cli` crate. `examples/` and the end-to-end `tests/`
//! run whole clusters on one machine with the `p2p-testkit` harness (a dev-dependency).

pub use p2p_hub as hub;
pub use p2p_proto as proto;
pub use p2p_r as r;
pub use p2p_scheduler as scheduler;
pub use p2p_transport as transport;
pub use p2p_worker as worker;
