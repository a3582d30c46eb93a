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
