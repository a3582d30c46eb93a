//! Worker side of future-p2p: offers to run tasks posted on a cluster and returns results.
//!
//! ```text
//!   p2p-r (R evaluator), examples/worker
//!          |
//!       p2p-worker                      <- this crate
//!         core      sans-IO worker state machine: board lines and time in, actions out
//!          |
//!       p2p-transport, p2p-proto
//! ```

pub mod core;
