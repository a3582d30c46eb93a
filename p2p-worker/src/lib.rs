//! Worker side of future-p2p: offers to run tasks posted on a cluster and returns results.
//!
//! ```text
//!   p2p-r (R evaluator), examples/worker
//!          |
//!       p2p-worker                      <- this crate
//!         core      sans-IO worker state machine (events + time in, actions out)
//!         executor  the `Executor` trait that evaluates one payload
//!         driver    tokio task feeding the core from the board and transfers
//!          |
//!       p2p-transport, p2p-proto
//! ```
