//! Client side of future-p2p: hands tasks to workers on a cluster and collects results.
//!
//! ```text
//!   p2p-r, embedders
//!          |
//!       p2p-scheduler                   <- this crate
//!         core      sans-IO dispatch state machine: board lines, transfer reports and
//!                   time in; board posts, dispatches and task outcomes out
//!         driver    Scheduler: the tokio task around the core; submit() -> TaskHandle,
//!                   cancel(), workers() (with their slots), updates(); moves payloads
//!                   by wormhole, one record per task in flight
//!         error     AttemptError, TaskError, StopReason, SubmitError: typed to the caller
//!          |
//!       p2p-transport, p2p-proto
//! ```

#![warn(missing_docs)]

pub mod core;
pub mod driver;
pub mod error;

pub use driver::{
    OriginalPayloads, Scheduler, SchedulerOptions, TaskHandle, TaskUpdate, WorkerSeen,
};
pub use error::{
    AttemptError, HandshakeError, StopReason, SubmitError, TaskError, TimeLimit, TransferFailure,
    TransferStage,
};
