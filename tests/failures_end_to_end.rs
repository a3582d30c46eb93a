//! What users expect when things go wrong: lost workers, cancels, shared workers, a client
//! that starts before any worker, and a hostile member reading the board.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Rendezvous, Topic, within};
use future_p2p::proto::id::{FutureId, PeerId};
use future_p2p::proto::line;
use future_p2p::proto::message::{Message, TransferUri};
use future_p2p::proto::seal::WorkerSecret;
use future_p2p::scheduler::core::{TaskError, TaskEvent};
use future_p2p::scheduler::{Scheduler, SchedulerOptions, SubmitError, TaskUpdate};
use future_p2p::transport::wormhole::{TransferOptions, WormholeCode, send_bytes};
use future_p2p::worker::core::WorkerConfig;
use future_p2p::worker::{CommandExecutor, Worker, WorkerOptions};

fn peer(text: &str) -> PeerId {
    text.parse().unwrap()
}

fn fid(text: &str) -> FutureId {
    text.parse().unwrap()
}

/// A worker that answers `NAME:payload` after `delay` seconds, saying hello every second.
fn worker(
    topic: &Topic,
    rendezvous: &Rendezvous,
    id: &str,
    name: &str,
    delay: f64,
    ours: bool,
) -> Worker {
    let mut config = WorkerConfig::new(peer(id));
    config.hello_interval = 1_000;
    if ours {
        config.sessions = true;
        config.secret = Some(WorkerSecret::from_bytes([id.len() as u8; 32]));
    }
    let executor = CommandExecutor::new(format!("sleep {delay}; printf '{name}:'; cat"));
    Worker::start(
        topic.join(),
        executor,
        WorkerOptions::new(config, rendezvous.wormhole()),
    )
}

fn client(topic: &Topic, rendezvous: &Rendezvous, id: &str, ours: bool) -> Scheduler {
    let mut options = SchedulerOptions::new(peer(id), rendezvous.wormhole());
    options.core.request_ttl = 2_000;
    options.core.sessions = ours;
    options.core.sealed = ours;
    options.session.heartbeat_interval = Duration::from_millis(300);
    options.session.dead_after = Duration::from_secs(2);
    Scheduler::start(topic.join(), options)
}

/// Waits until the task runs, and says on which worker.
async fn running_on(
    scheduler: &Scheduler,
    updates: &mut tokio::sync::broadcast::Receiver<(u64, TaskUpdate)>,
    task: u64,
) -> PeerId {
    let _ = scheduler;
    loop {
        match updates.recv().await.unwrap() {
            (t, TaskUpdate::Event(TaskEvent::Running { worker })) if t == task => return worker,
            _ => {}
        }
    }
}

async fn lose_worker_mid_task(ours: bool) {
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let slow = worker(&topic, &rendezvous, "bob@laptop:1", "bob", 30.0, ours);
    let scheduler = client(&topic, &rendezvous, "alice@desktop:3", ours);
    let mut updates = scheduler.updates();
    let handle = scheduler
        .submit(fid("f-1"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let on = within(
        "the task to start",
        60,
        running_on(&scheduler, &mut updates, handle.id()),
    )
    .await;
    assert_eq!(on, peer("bob@laptop:1"));
    let _fast = worker(&topic, &rendezvous, "carol@server:2", "carol", 0.0, ours);
    slow.shutdown();
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
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let scheduler = client(&topic, &rendezvous, "alice@desktop:3", true);
    let mut updates = scheduler.updates();
    // Before: nobody offers yet.
    let queued = scheduler
        .submit(fid("f-1"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    scheduler.cancel(queued.id());
    assert_eq!(
        within("cancel", 10, queued).await,
        Err(SubmitError::Task(TaskError::Cancelled))
    );
    // During: the task runs on a slow worker.
    let _slow = worker(&topic, &rendezvous, "bob@laptop:1", "bob", 30.0, true);
    let running = scheduler
        .submit(fid("f-2"), Bytes::from_static(b"y"))
        .await
        .unwrap();
    within(
        "start",
        60,
        running_on(&scheduler, &mut updates, running.id()),
    )
    .await;
    scheduler.cancel(running.id());
    assert_eq!(
        within("cancel", 10, running).await,
        Err(SubmitError::Task(TaskError::Cancelled))
    );
    // The worker is free again for the next task.
    let next = scheduler
        .submit(fid("f-3"), Bytes::from_static(b"z"))
        .await
        .unwrap();
    let _fast = worker(&topic, &rendezvous, "carol@server:2", "carol", 0.0, true);
    assert!(within("next task", 60, next).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_the_workers_and_neither_starves() {
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let _w1 = worker(&topic, &rendezvous, "bob@laptop:1", "bob", 0.0, true);
    let _w2 = worker(&topic, &rendezvous, "carol@server:2", "carol", 0.0, true);
    let alice = client(&topic, &rendezvous, "alice@desktop:3", true);
    let dave = client(&topic, &rendezvous, "dave@box:4", true);
    let mut handles = Vec::new();
    for i in 0..15 {
        handles.push(
            alice
                .submit(fid(&format!("a-{i}")), Bytes::from(format!("a{i}")))
                .await
                .unwrap(),
        );
        handles.push(
            dave.submit(fid(&format!("d-{i}")), Bytes::from(format!("d{i}")))
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
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let scheduler = client(&topic, &rendezvous, "alice@desktop:3", true);
    let handle = scheduler
        .submit(fid("f-1"), Bytes::from_static(b"early"))
        .await
        .unwrap();
    // Longer than a request stands: the request is re-posted for the late worker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _late = worker(&topic, &rendezvous, "bob@laptop:1", "bob", 0.0, true);
    assert_eq!(
        within("the early task", 60, handle).await.unwrap(),
        Bytes::from_static(b"bob:early")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_member_cannot_race_for_sealed_codes_nor_forge_results() {
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let _w = worker(&topic, &rendezvous, "bob@laptop:1", "bob", 0.5, true);
    let scheduler = client(&topic, &rendezvous, "alice@desktop:3", true);
    // Mallory reads every line; for every accept whose code she can read, she sends a
    // forged result under it.
    let mut mallory = topic.join();
    let wormhole = rendezvous.wormhole();
    let watcher = tokio::spawn(async move {
        let (mut accepts, mut readable) = (0, 0);
        while let Some(text) = mallory.incoming.recv().await {
            let Ok(line) = line::decode(&text) else {
                continue;
            };
            if let Message::Accept(accept) = line.message {
                accepts += 1;
                let code = match accept.via {
                    TransferUri::Wormhole(code) | TransferUri::BareWormhole(code) => code,
                    TransferUri::Sealed(_) => continue,
                };
                readable += 1;
                let code = WormholeCode::from_peer(code.as_str()).unwrap();
                let options = TransferOptions {
                    timeout: Duration::from_secs(5),
                    ..TransferOptions::default()
                };
                let _ = send_bytes(
                    &wormhole,
                    &code.result(),
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
    for i in 0..5 {
        let handle = scheduler
            .submit(fid(&format!("f-{i}")), Bytes::from(format!("p{i}")))
            .await
            .unwrap();
        assert_eq!(
            within("a genuine result", 60, handle).await.unwrap(),
            Bytes::from(format!("bob:p{i}"))
        );
    }
    let (accepts, readable) = within("mallory saw the accept", 10, watcher).await.unwrap();
    assert!(accepts >= 1);
    assert_eq!(readable, 0, "every accept was sealed");
}
