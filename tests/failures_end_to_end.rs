//! What users expect when things go wrong, over the real hub: lost workers, cancels, shared
//! workers, a client that starts before any worker, and a hostile member on the board.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{alice, client, hub, member, within, worker};
use future_p2p::proto::id::{FutureId, PeerId};
use future_p2p::proto::line;
use future_p2p::proto::message::{Message, TransferUri};
use future_p2p::scheduler::core::TaskEvent;
use future_p2p::scheduler::{
    Scheduler, SchedulerOptions, SubmitError, TaskError, TaskUpdate, TimeLimit,
};
use future_p2p::transport::wormhole::{TransferOptions, send_bytes};
use future_p2p::worker::{CommandExecutor, Worker};
use p2p_testkit::local::LocalHub;

fn fid(text: &str) -> FutureId {
    text.parse().unwrap()
}

/// Answers `NAME:payload` after `delay` seconds.
fn answer(name: &str, delay: f64) -> CommandExecutor {
    CommandExecutor::new(format!("sleep {delay}; printf '{name}:'; cat"))
}

/// A worker that says hello every second, so a lost one is noticed within seconds.
async fn quick_worker(hub: &LocalHub, user: &str, delay: f64, ours: bool) -> common::Peer<Worker> {
    worker(hub, user, answer(user, delay), ours, |options| {
        options.core.hello_interval = 1_000
    })
    .await
}

fn quick(ours: bool) -> impl FnOnce(&mut SchedulerOptions) {
    move |options| {
        options.core.request_ttl = 2_000;
        options.core.sessions = ours;
        options.core.sealed = ours;
        options.session.heartbeat_interval = Duration::from_millis(300);
        options.session.dead_after = Duration::from_secs(2);
    }
}

/// Waits until the task runs, and says on which worker.
async fn running_on(
    updates: &mut tokio::sync::broadcast::Receiver<(u64, TaskUpdate)>,
    task: u64,
) -> PeerId {
    loop {
        if let (t, TaskUpdate::Event(TaskEvent::Running { worker })) = updates.recv().await.unwrap()
            && t == task
        {
            return worker;
        }
    }
}

async fn lose_worker_mid_task(ours: bool) {
    let hub = hub().await;
    let alice = alice(&hub, quick(ours)).await;
    let slow = quick_worker(&hub, "bob", 30.0, ours).await;
    let mut updates = alice.peer.updates();
    let handle = alice
        .peer
        .submit(fid("f-1"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let on = within(
        "the task to start",
        60,
        running_on(&mut updates, handle.id()),
    )
    .await;
    assert_eq!(on.user(), "bob");
    let _fast = quick_worker(&hub, "carol", 0.0, ours).await;
    slow.peer.shutdown();
    let result = within("the task to finish elsewhere", 60, handle)
        .await
        .unwrap();
    assert_eq!(
        result,
        Bytes::from_static(b"carol:x"),
        "exactly one result, from the second worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_mid_task_in_a_session_is_replaced() {
    lose_worker_mid_task(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_mid_task_in_future_p2p_mode_is_replaced() {
    lose_worker_mid_task(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_and_during_a_task() {
    let hub = hub().await;
    let alice = alice(&hub, quick(true)).await;
    let mut updates = alice.peer.updates();
    // Before: nobody offers yet.
    let queued = alice
        .peer
        .submit(fid("f-1"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    alice.peer.cancel(queued.id());
    assert_eq!(
        within("cancel", 10, queued).await,
        Err(SubmitError::Task(TaskError::Cancelled))
    );
    // During: the task runs on a slow worker.
    let _slow = quick_worker(&hub, "bob", 30.0, true).await;
    let running = alice
        .peer
        .submit(fid("f-2"), Bytes::from_static(b"y"))
        .await
        .unwrap();
    within("start", 60, running_on(&mut updates, running.id())).await;
    alice.peer.cancel(running.id());
    assert_eq!(
        within("cancel", 10, running).await,
        Err(SubmitError::Task(TaskError::Cancelled))
    );
    // The cluster goes on: the next task finishes.
    let _fast = quick_worker(&hub, "carol", 0.0, true).await;
    let next = alice
        .peer
        .submit(fid("f-3"), Bytes::from_static(b"z"))
        .await
        .unwrap();
    assert!(within("next task", 60, next).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_the_workers_and_neither_starves() {
    let hub = hub().await;
    let alice = alice(&hub, quick(true)).await;
    let _w1 = quick_worker(&hub, "bob", 0.0, true).await;
    let _w2 = quick_worker(&hub, "carol", 0.0, true).await;
    let dave = client(&hub, "dave", quick(true)).await;
    let mut handles = Vec::new();
    for i in 0..15 {
        handles.push(
            alice
                .peer
                .submit(fid(&format!("a-{i}")), Bytes::from(format!("a{i}")))
                .await
                .unwrap(),
        );
        handles.push(
            dave.peer
                .submit(fid(&format!("d-{i}")), Bytes::from(format!("d{i}")))
                .await
                .unwrap(),
        );
    }
    for handle in handles {
        let result = within("every task of both clients", 120, handle)
            .await
            .unwrap();
        assert!(result.starts_with(b"bob:") || result.starts_with(b"carol:"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_start_before_any_worker() {
    let hub = hub().await;
    let alice = alice(&hub, quick(true)).await;
    let handle = alice
        .peer
        .submit(fid("f-1"), Bytes::from_static(b"early"))
        .await
        .unwrap();
    // Longer than a request stands: the request is posted again for the late worker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _late = quick_worker(&hub, "bob", 0.0, true).await;
    assert_eq!(
        within("the early task", 60, handle).await.unwrap(),
        Bytes::from_static(b"bob:early")
    );
}

async fn mallory_watches(scheduler: &Scheduler, hub: &LocalHub) -> (usize, usize) {
    // Mallory is a member: she reads every line; for every accept whose code she can read,
    // she sends a forged result under it.
    let (_board, _, mut lines) = member(hub, "mallory").await;
    let wormhole = hub.wormhole();
    let watcher = tokio::spawn(async move {
        let (mut accepts, mut readable) = (0, 0);
        while let Some(text) = lines.incoming.recv().await {
            let Ok(line) = line::decode(&text) else {
                continue;
            };
            let Message::Accept(accept) = line.message else {
                continue;
            };
            accepts += 1;
            if let TransferUri::Wormhole(code) | TransferUri::BareWormhole(code) = accept.via {
                readable += 1;
                let options = TransferOptions {
                    timeout: Duration::from_secs(5),
                    ..TransferOptions::default()
                };
                let _ = send_bytes(
                    &wormhole,
                    &code.result_code(),
                    "forged",
                    Bytes::from_static(b"forged"),
                    &options,
                )
                .await;
            }
            if accepts >= 1 && readable == 0 {
                return (accepts, readable);
            }
        }
        (accepts, readable)
    });
    // Tasks until mallory has seen an accept: on a loaded machine her pipe may open after
    // the first one, and a session still closing may carry the next ones.
    for i in 0..20 {
        if watcher.is_finished() {
            break;
        }
        let handle = scheduler
            .submit(fid(&format!("f-{i}")), Bytes::from(format!("p{i}")))
            .await
            .unwrap();
        assert_eq!(
            within("a genuine result", 60, handle).await.unwrap(),
            Bytes::from(format!("bob:p{i}"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    within("mallory saw the accept", 10, watcher).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_member_cannot_race_for_sealed_codes_nor_forge_results() {
    let hub = hub().await;
    // Sessions close as soon as they idle: every task goes through the board, so mallory
    // sees accepts even if she joined after the first one.
    let alice = alice(&hub, |options| {
        quick(true)(options);
        options.core.session_idle_grace = 0;
    })
    .await;
    let _bob = quick_worker(&hub, "bob", 0.5, true).await;
    let (accepts, readable) = mallory_watches(&alice.peer, &hub).await;
    assert!(accepts >= 1);
    assert_eq!(readable, 0, "every accept was sealed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_time_limit_ends_the_task_as_timed_out_on_both_routes() {
    for ours in [false, true] {
        let hub = hub().await;
        let alice = alice(&hub, quick(ours)).await;
        let _strict = worker(&hub, "bob", answer("bob", 30.0), ours, |options| {
            options.core.time_limit = Some(1_000);
        })
        .await;
        let handle = alice
            .peer
            .submit(fid("f-1"), Bytes::from_static(b"slow"))
            .await
            .unwrap();
        match within("the time limit", 60, handle).await {
            Err(SubmitError::Task(TaskError::TimedOut { worker, limit })) => {
                assert_eq!(worker.user(), "bob");
                assert!(matches!(limit, TimeLimit::Worker(_)), "{limit}");
            }
            other => panic!("expected the worker's time limit (ours: {ours}), got {other:?}"),
        }
    }
}
