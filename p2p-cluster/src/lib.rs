//! Connect to a future-p2p cluster as a client or as a worker, in one builder.
//!
//! A member of a cluster needs five pieces: an SSH connection to the board, the cluster's
//! topic on it, the magic-wormhole servers, and the scheduler (client) or worker driver.
//! [`Cluster::builder`] wires them the one way every peer of this project does (the
//! `future-p2p` program too), so embedders write:
//!
//! ```text
//!   Cluster::builder("alice/p2p")        which cluster
//!       .board_host(..).ssh_args(..)     where the board is, how to log in (or .board(config))
//!       .wormhole(..)                    the mailbox and relay (default: the public ones)
//!       .connect().await?                -> Cluster: on the topic, host and refusals watched
//!   cluster.client()...start()           -> Client: submit() -> Task (a Future; drop = cancel)
//!   cluster.worker(executor)...start()   -> ClusterWorker
//!   client.shutdown(grace) / worker.shutdown(grace)   drain, then close
//! ```
//!
//! ```text
//!   connect   ClusterBuilder, Cluster: the board, the topic (a LineChannel whose pipe is
//!             watched for the board's refusals), the cluster watch (host seen or not)
//!   client    ClientBuilder, Client, Task: the scheduler driver behind a handle whose
//!             tasks cancel when dropped, and a drain on shutdown
//!   worker    WorkerBuilder, ClusterWorker: the worker driver, drained on shutdown
//!   tasklog   TaskLog: the executor wrapper that logs each task's start, end, sizes, time
//!   error     ClusterError: what went wrong and what to do about it
//! ```
//!
//! Every duration in these options is a [`std::time::Duration`]; the sans-IO cores keep
//! their millisecond clocks inside.

#![warn(missing_docs)]

pub mod client;
pub mod connect;
pub mod error;
pub mod tasklog;
pub mod worker;

pub use client::{Client, ClientBuilder, Drained, Task};
pub use connect::{Cluster, ClusterBuilder, Membership};
pub use error::ClusterError;
pub use worker::{ClusterWorker, WorkerBuilder};

/// A duration as the cores count it (whole milliseconds, saturating).
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
