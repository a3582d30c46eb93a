//! Shared pieces of the end-to-end tests: a real hub on 127.0.0.1 (free ports) where alice
//! hosts the cluster `alice/p2p` and is its client, and members join it over SSH.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::time::Duration;

use future_p2p::proto::id::ClusterName;
use future_p2p::scheduler::{Scheduler, SchedulerOptions};
use future_p2p::transport::board::Board;
use future_p2p::transport::lines::LineChannel;
use future_p2p::worker::{Executor, Worker, WorkerOptions};
use p2p_testkit::local::LocalHub;

/// Everyone who may appear in a test; alice owns the cluster.
pub const MEMBERS: [&str; 5] = ["bob", "carol", "dave", "erin", "mallory"];

pub async fn hub() -> LocalHub {
    let mut users = vec!["alice"];
    users.extend(MEMBERS);
    within("the hub to start", 30, LocalHub::start(&users))
        .await
        .expect("local hub")
}

pub fn cluster() -> ClusterName {
    "alice/p2p".parse().unwrap()
}

/// A peer on the board; the board connection lives as long as the peer.
pub struct Peer<T> {
    pub board: Board,
    pub peer: T,
}

/// alice hosts `alice/p2p` for every member and runs a client on it.
pub async fn alice(hub: &LocalHub, tweak: impl FnOnce(&mut SchedulerOptions)) -> Peer<Scheduler> {
    let (board, me, lines) = within("alice to host", 30, hub.host("alice", "p2p", &MEMBERS))
        .await
        .expect("alice hosts the cluster");
    let mut options = SchedulerOptions::new(me, hub.wormhole());
    tweak(&mut options);
    Peer {
        board,
        peer: Scheduler::start(lines, options),
    }
}

/// A member joins `alice/p2p` (its topic as lines). alice must host it first: as on
/// pico.sh, a member who comes earlier lands on a private topic of their own.
pub async fn member(
    hub: &LocalHub,
    user: &str,
) -> (Board, future_p2p::proto::id::PeerId, LineChannel) {
    within("a member to join", 30, hub.join(user, &cluster()))
        .await
        .expect("member joins the cluster")
}

/// A member runs a client on `alice/p2p`.
pub async fn client(
    hub: &LocalHub,
    user: &str,
    tweak: impl FnOnce(&mut SchedulerOptions),
) -> Peer<Scheduler> {
    let (board, me, lines) = member(hub, user).await;
    let mut options = SchedulerOptions::new(me, hub.wormhole());
    tweak(&mut options);
    Peer {
        board,
        peer: Scheduler::start(lines, options),
    }
}

/// A member contributes a worker; `ours` keeps sessions and sealed codes on, otherwise it
/// speaks only future.p2p's protocol.
pub async fn worker<E: Executor>(
    hub: &LocalHub,
    user: &str,
    executor: E,
    ours: bool,
    tweak: impl FnOnce(&mut WorkerOptions),
) -> Peer<Worker> {
    let (board, peer) = within(
        "a worker to join",
        30,
        hub.worker(user, &cluster(), executor, |options| {
            if !ours {
                options.core.sessions = false;
                options.core.secret = None;
            }
            tweak(options);
        }),
    )
    .await
    .expect("worker joins the cluster");
    Peer { board, peer }
}

/// Bounds a wait in a test.
pub async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}
