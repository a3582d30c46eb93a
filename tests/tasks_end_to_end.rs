//! Tasks travel end to end over the real hub on 127.0.0.1: the board over SSH, payloads
//! and results over magic wormhole through the hub's mailbox server and relay.

mod common;

use bytes::Bytes;
use common::{alice, hub, within, worker};
use future_p2p::proto::frame::RemoteError;
use future_p2p::scheduler::{Scheduler, TaskUpdate};
use future_p2p::worker::executor::ProgressSink;
use future_p2p::worker::{CommandExecutor, Executor, Job};
use futures::future::BoxFuture;

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

/// Sends its number of progress updates, then its result at once (as R does for a future that
/// signals progress just before it ends).
#[derive(Debug, Clone)]
struct Chatty(usize);

impl Executor for Chatty {
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let steps = self.0;
        Box::pin(async move {
            for step in 0..steps {
                let _ = progress.send(Bytes::from(format!("step {step}")));
            }
            Ok(job.payload)
        })
    }

    // opaque bytes: no future.p2p 0.4.0 client sends these.
    fn failure_result(
        &self,
        _future: &future_p2p::proto::id::FutureId,
        _format: future_p2p::proto::protocols::PayloadFormat,
        _error: &RemoteError,
    ) -> Option<Bytes> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_progress_update_reaches_the_client_before_its_result() {
    let hub = hub().await;
    let alice = alice(&hub, |_| {}).await;
    let _bob = worker(&hub, "bob", Chatty(5), true, |_| {}).await;
    let mut updates = alice.peer.updates();
    for i in 0..20 {
        let future = format!("p-{i}").parse().unwrap();
        let handle = alice.peer.submit(future, Bytes::from("x")).await.unwrap();
        let task = handle.id();
        within("a task result", 60, handle).await.unwrap();
        let mut steps = Vec::new();
        while let Ok((of, update)) = updates.try_recv() {
            if let (true, TaskUpdate::Progress(step)) = (of == task, update) {
                steps.push(step);
            }
        }
        let expected: Vec<Bytes> = (0..5).map(|s| Bytes::from(format!("step {s}"))).collect();
        assert_eq!(steps, expected, "task {i}");
    }
}
