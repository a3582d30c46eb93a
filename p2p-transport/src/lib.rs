//! I/O layer of future-p2p's peers (clients, workers, hosts): everything that touches a
//! socket on their side. The servers they talk to (pipe server, mailbox, relay) are the
//! `p2p-hub` crate; nothing here depends on it.
//!
//! ```text
//!   p2p-scheduler   p2p-worker          (drivers: tokio tasks around sans-IO cores)
//!          \          /
//!       p2p-transport                   <- this crate
//!         board      the SSH pipe client: Board, Topic, join_cluster (see board/)
//!         wormhole   magic-wormhole transfers and warm sessions (see wormhole/)
//!         lines      LineChannel: a topic as lines in / lines out, for the drivers
//!         cluster_watch  watch_cluster: a member's LineChannel that warns while no host
//!                    has announced the cluster (`type=cluster` hello)
//!         clock      the wall clock in Unix ms, as the drivers feed it to the cores
//!          |
//!       p2p-proto                       (sans-IO: messages, codecs, framer)
//! ```
//!
//! Protocol decisions live in `p2p-proto` and in the sans-IO cores above; this crate only
//! moves bytes, owns timers and turns I/O failures into typed errors.

pub mod board;
pub mod clock;
pub mod cluster_watch;
pub mod lines;
pub mod payload;
pub mod wormhole;
