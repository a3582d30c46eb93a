//! future-p2p: a peer-to-peer compute cluster for R futures.
//!
//! Friends share idle R processes: a client posts futures on a shared message board (a pico
//! pipe topic reached over SSH), idle workers offer to take them, the client accepts one
//! offer, and the future and its result travel peer-to-peer over magic wormhole.
//!
//! This facade re-exports the layers, bottom to top:
//!
//! ```text
//!   proto       sans-IO: ids, board messages, line codec and framer, data-plane frames
//!   transport   a peer's I/O: SSH board client, wormhole transfers and warm sessions
//!   hub         the self-hosted servers: SSH pipe server, wormhole mailbox, transit relay
//!   scheduler   client side: dispatch state machine and its tokio driver
//!   worker      worker side: worker state machine, Executor trait, tokio driver
//!   r           R evaluator, the bridge protocol of R sessions, the R package
//! ```
//!
//! ```text
//!   cluster     Cluster::builder(..).connect(): a member of a cluster, then its client
//!               (submit -> Task, drop cancels) or its worker; shutdown(grace) drains
//! ```
//!
//! [`Cluster`] is the way in for Rust programs. Here bob lends a worker to alice's cluster
//! and alice sends it a task, on a hub embedded in the test (`LocalHub`); against a real
//! board, `.board(...)` becomes `.board_host("pipe.pico.sh")` (the default) or a hub's
//! address with `.ssh_args(["-p", "2222", "-o", "StrictHostKeyChecking=accept-new"])`, and
//! `.wormhole(...)` its mailbox and relay:
//!
//! ```
//! use std::time::Duration;
//!
//! use future_p2p::Cluster;
//! use future_p2p::worker::{FnExecutor, Job};
//! # use p2p_testkit::local::LocalHub;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let local = LocalHub::start(&["alice", "bob"]).await?;
//! # // alice hosts `alice/p2p` for bob (what `future-p2p host --cluster p2p --users bob` does).
//! # let _host = local.host("alice", "p2p", &["bob"]).await?;
//! // bob's worker: each task's payload comes back reversed.
//! let reverse = FnExecutor::new(|job: Job| Ok(job.payload.iter().rev().copied().collect()));
//! let worker = Cluster::builder("alice/p2p")
//!     .board(local.board_config("bob")?)
//!     .wormhole(local.wormhole())
//!     .connect()
//!     .await?
//!     .worker(reverse)
//!     .slots(2)
//!     .time_limit(Some(Duration::from_secs(60)))
//!     .start();
//!
//! // alice's client.
//! let client = Cluster::builder("alice/p2p")
//!     .board(local.board_config("alice")?)
//!     .wormhole(local.wormhole())
//!     .connect()
//!     .await?
//!     .client()
//!     .time_limit(Some(Duration::from_secs(600)))
//!     .start();
//! client.wait_for_workers(Duration::from_secs(30)).await?;
//!
//! let task = client.submit("hello").await?; // dropping `task` would cancel it
//! assert_eq!(task.await?, "olleh");
//!
//! // Graceful ends: no new tasks, those in flight get 5 s to finish, then both leave.
//! client.shutdown(Duration::from_secs(5)).await;
//! worker.shutdown(Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! The `future-p2p` program is the `p2p-cli` crate, built on the same [`Cluster`].
//! `examples/` and the end-to-end `tests/` run whole clusters on one machine with the
//! `p2p-testkit` harness (a dev-dependency).

pub use p2p_cluster::{Client, Cluster, ClusterError, ClusterWorker, Task};

pub use p2p_cluster as cluster;
pub use p2p_hub as hub;
pub use p2p_proto as proto;
pub use p2p_r as r;
pub use p2p_scheduler as scheduler;
pub use p2p_transport as transport;
pub use p2p_worker as worker;
