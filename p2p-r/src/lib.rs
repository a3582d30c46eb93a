//! R bindings of future-p2p: the R evaluator, the bridge an R session talks to, the
//! `future-p2p` command line, and the R package `future.p2p` (sources in `rpkg/`).
//!
//! ```text
//!   R session (future.p2p package)  --bridge-->  future-p2p binary
//!          |
//!       p2p-r                           <- this crate
//!          |
//!       p2p-scheduler, p2p-worker
//!          |
//!       p2p-transport, p2p-proto
//! ```
//!
//! Layout of this crate:
//!
//! ```text
//!   evaluator/            REvaluator: p2p_worker::Executor over persistent R processes
//!     mod.rs              the pool, its config, execute()
//!     slot.rs             one slot: one R process, one job at a time, cancel, crash, restart
//!     process.rs          spawning R, frames in and out, SIGINT, post-mortems (tokio)
//!     protocol.rs         the Rust <-> R frame codec (sans-IO)
//!   bridge/protocol.rs    R session <-> future-p2p child frames (sans-IO)
//!   frame.rs              the frame layout both protocols share (sans-IO)
//!   rpkg.rs               the bundled future.p2p R package and its installation
//!   rpkg/                 the R package sources (payload builder, evaluator loop, bridge codec)
//! ```

pub mod bridge;
pub mod evaluator;
pub mod frame;
pub mod rpkg;
