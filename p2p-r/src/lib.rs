//! R bindings of future-p2p: the R evaluator a worker runs futures in, the bridge
//! protocol an R session speaks with its `future-p2p bridge` child, and the R package
//! `future.p2p` (sources in `rpkg/`).
//!
//! ```text
//!   R session (future.p2p package)  --bridge frames-->  future-p2p bridge (p2p-cli)
//!   future-p2p worker (p2p-cli)     --evaluator frames-->  R processes
//!          |
//!       p2p-r                           <- this crate
//!          |
//!       p2p-worker (Executor), p2p-scheduler (task outcomes), p2p-proto
//! ```
//!
//! Layout of this crate:
//!
//! ```text
//!   frame.rs              the frame layout, reader (RFrameReader) and errors both protocols
//!                         share (sans-IO)
//!   evaluator/            REvaluator: p2p_worker::Executor over persistent R processes
//!     mod.rs              the pool, its config, execute()
//!     slot.rs             one slot: one R process, one job at a time, cancel, crash, restart
//!     process.rs          spawning R, frames in and out, SIGINT, post-mortems (tokio)
//!     protocol.rs         the Rust <-> R evaluator frames (sans-IO)
//!   bridge/protocol.rs    R session <-> bridge frames (sans-IO)
//!   bridge/session.rs     the bridge's bookkeeping: R future ids <-> scheduler tasks (sans-IO)
//!   rds.rs                RDS files of FutureResults for future.p2p 0.4.0 clients (sans-IO)
//!   rpkg.rs               the bundled future.p2p R package and its installation
//!   rpkg/                 the R package sources (payload builder, evaluator loop, bridge codec)
//! ```

pub mod bridge;
pub mod evaluator;
pub mod frame;
pub mod rds;
pub mod rpkg;
