//! Client side of future-p2p: hands tasks to workers on a cluster and collects results.
//!
//! ```text
//!   p2p-r, embedders
//!          |
//!       p2p-scheduler                   <- this crate
//!         core      sans-IO dispatch state machine (events + time in, actions out)
//!         driver    tokio task feeding the core from the board and transfers
//!          |
//!       p2p-transport, p2p-proto
//! ```
