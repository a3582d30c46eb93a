//! Tasks travel end to end over the real hub on 127.0.0.1: the board over SSH, payloads
//! and results over magic wormhole through the hub's mailbox server and relay.

mod common;

use bytes::Bytes;
use common::{alice, hub, within, worker};
use future_p2p::scheduler::Scheduler;
use future_p2p::worker::CommandExecutor;

async fn run_tasks(scheduler: &Scheduler, n: usize) {
    let mut handles = Vec::new();
    for i in 0..n {
        let future = format!("f-{i}").parse().unwrap();
        let payload = Bytes::from(format!("task {i}"));
        handles.push((i, scheduler.submit(future, payload).await.unwrap()));
    }
    for (i, handle) in handles {
        let result = within("a task result", 120, handle).await.unwrap();
        assert_eq!(result, Bytes::from(format!("done:task {i}")));
    }
}

fn echo() -> CommandExecutor {
    CommandExecutor::new("printf 'done:'; cat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_tasks_through_three_workers_over_warm_sessions() {
    let hub = hub().await;
    let alice = alice(&hub, |_| {}).await;
    let _workers = [
        worker(&hub, "bob", echo(), true, |_| {}).await,
        worker(&hub, "carol", echo(), true, |_| {}).await,
        worker(&hub, "dave", echo(), true, |_| {}).await,
    ];
    run_tasks(&alice.peer, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_p2p_client_with_our_worker() {
    let hub = hub().await;
    let alice = alice(&hub, |options| {
        options.core.sessions = false;
        options.core.sealed = false;
    })
    .await;
    let _bob = worker(&hub, "bob", echo(), true, |_| {}).await;
    run_tasks(&alice.peer, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_a_future_p2p_worker() {
    let hub = hub().await;
    let alice = alice(&hub, |_| {}).await;
    let _bob = worker(&hub, "bob", echo(), false, |_| {}).await;
    run_tasks(&alice.peer, 3).await;
}
