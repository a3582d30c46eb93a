//! Worker side of future-p2p: offers to run tasks posted on a cluster and returns results.
//!
//! ```text
//!   p2p-r (R evaluator), examples/worker
//!          |
//!       p2p-worker                      <- this crate
//!         core      sans-IO worker state machine: board lines and time in, actions out
//!         executor  the Executor trait (payload in, possibly still arriving; result out;
//!                   drop to cancel); CommandExecutor runs a shell command per task in its
//!                   own process group, within output and memory limits; FnExecutor a Rust fn
//!         driver    Worker: the tokio task around the core; runs accepted tasks on the
//!                   executor, moving payloads and results by wormhole
//!          |
//!       p2p-transport, p2p-proto
//! ```

#![warn(missing_docs)]

pub mod core;
pub mod driver;
pub mod executor;

pub use driver::{StopReason, Worker, WorkerOptions, fresh_secret};
pub use executor::{CommandExecutor, CommandLimits, Executor, FnExecutor, Job, StreamJob};
