//! The embedder's API on a real (embedded) hub: tasks cancelled by dropping their handle,
//! detached tasks that run to their end, graceful shutdowns that let running tasks
//! finish, and a wrong cluster or a missing place on its access list said at once.

use std::path::Path;
use std::time::{Duration, Instant};

use p2p_cluster::{Cluster, ClusterError};
use p2p_testkit::local::LocalHub;
use p2p_worker::{CommandExecutor, StopReason};

/// Bounds every wait of these tests.
async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {secs} s"))
}

/// A task `NAME SECONDS`: marks `started-NAME`, sleeps, marks `done-NAME`, prints NAME.
fn marker(dir: &Path) -> CommandExecutor {
    CommandExecutor::new(format!(
        "read name secs; cd '{}'; touch started-$name; sleep $secs; touch done-$name; printf %s $name",
        dir.display()
    ))
}

async fn appears(path: &Path, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn connect(local: &LocalHub, user: &str, cluster: &str) -> Cluster {
    Cluster::builder(cluster)
        .board(local.board_config(user).expect("a user of the hub"))
        .wormhole(local.wormhole())
        .connect()
        .await
        .expect("connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_task_cancels_it_and_a_detached_task_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalHub::start(&["alice", "bob"]).await.unwrap();
    let _host = local.host("alice", "p2p", &["bob"]).await.unwrap();
    let worker = connect(&local, "bob", "alice/p2p")
        .await
        .worker(marker(dir.path()))
        .start();
    let client = connect(&local, "alice", "alice/p2p").await.client().start();
    within(
        "a worker",
        30,
        client.wait_for_workers(Duration::from_secs(30)),
    )
    .await
    .unwrap();

    let long = client.submit("long 30\n").await.unwrap();
    assert!(appears(&dir.path().join("started-long"), 30).await);
    drop(long);
    // The one slot comes free for the next task, long before the dropped one would end.
    let next = client.submit("next 0\n").await.unwrap();
    assert_eq!(within("the next task", 20, next).await.unwrap(), "next");
    assert!(!dir.path().join("done-long").exists());
    assert_eq!(client.in_flight(), 0);

    client.submit("detached 1\n").await.unwrap().detach();
    assert!(appears(&dir.path().join("done-detached"), 30).await);

    client.shutdown(Duration::from_secs(5)).await;
    worker.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdowns_let_running_tasks_finish() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalHub::start(&["alice", "bob"]).await.unwrap();
    let _host = local.host("alice", "p2p", &["bob"]).await.unwrap();
    let worker = connect(&local, "bob", "alice/p2p")
        .await
        .worker(marker(dir.path()))
        .start();
    let client = connect(&local, "alice", "alice/p2p").await.client().start();
    within(
        "a worker",
        30,
        client.wait_for_workers(Duration::from_secs(30)),
    )
    .await
    .unwrap();

    // The worker drains: the task it runs finishes and its result comes back.
    let task = client.submit("drained 2\n").await.unwrap();
    assert!(appears(&dir.path().join("started-drained"), 30).await);
    let (reason, result) = within(
        "the worker's drain",
        60,
        futures_join(worker.shutdown(Duration::from_secs(30)), task),
    )
    .await;
    assert_eq!(reason, StopReason::Drained);
    assert_eq!(result.unwrap(), "drained");

    // The client drains: a detached task still finishes before it leaves.
    let worker = connect(&local, "bob", "alice/p2p")
        .await
        .worker(marker(dir.path()))
        .start();
    within(
        "a worker",
        30,
        client.wait_for_workers(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    client.submit("last 2\n").await.unwrap().detach();
    let drained = within(
        "the client's drain",
        60,
        client.shutdown(Duration::from_secs(30)),
    )
    .await;
    assert_eq!(drained.cancelled, 0);
    assert!(dir.path().join("done-last").exists());
    worker.abort().await;
}

async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_or_a_missing_place_on_its_list_is_said_at_once() {
    let local = LocalHub::start(&["alice", "bob", "carol"]).await.unwrap();
    let _host = local.host("alice", "p2p", &["bob"]).await.unwrap();

    for (user, cluster, said) in [
        ("bob", "alice/p2q", "alice/p2q is not hosted"),
        (
            "carol",
            "alice/p2p",
            "carol is not on the access list of alice/p2p",
        ),
    ] {
        let started = Instant::now();
        let client = connect(&local, user, cluster).await.client().start();
        let err = within(
            "the refusal",
            30,
            client.wait_for_workers(Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClusterError::Refused { .. }), "{text}");
        assert!(text.contains(said), "{text}");
        assert!(text.contains("future-p2p host --users"), "{text}");
        // Said by the board at once, not after the 60 s wait (loose: CI machines are slow).
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
