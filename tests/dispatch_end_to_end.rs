//! Where work goes, over the real hub: long tasks spread over every slot, a slot comes
//! back when its session dies mid-task or its task panics, is cancelled or times out, a
//! hung task ends at its time limit while the
//! tasks behind it move on, retries go to a worker that has not failed the task, and
//! sequential tasks reuse the warm session instead of the board.
//!
//! Timings here are loose bounds (this machine is shared); the figures are in
//! `examples/p2p_bench.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{alice, client, hub, within, worker};
use future_p2p::proto::frame::RemoteError;
use future_p2p::proto::id::FutureId;
use future_p2p::scheduler::core::TaskEvent;
use future_p2p::scheduler::{SubmitError, TaskError, TaskUpdate, TimeLimit};
use future_p2p::worker::executor::ProgressSink;
use future_p2p::worker::{CommandExecutor, Executor, Job};
use futures::future::BoxFuture;

fn fid(text: &str) -> FutureId {
    text.parse().unwrap()
}

/// Sleeps as many seconds as the payload says, then answers `NAME:payload`.
fn sleeper(name: &str) -> CommandExecutor {
    CommandExecutor::new(format!("read d; sleep \"$d\"; printf '{name}:%s' \"$d\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tasks_spread_over_every_slot() {
    let hub = hub().await;
    let alice = alice(&hub, |_| {}).await;
    let names = ["bob", "carol", "dave"];
    let mut workers = Vec::new();
    for name in names {
        workers.push(worker(&hub, name, sleeper(name), true, |_| {}).await);
    }
    // Let the workers answer the client's hello: it knows them all before the work comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..12 {
        handles.push(
            alice
                .peer
                .submit(fid(&format!("f-{i}")), Bytes::from_static(b"1\n"))
                .await
                .unwrap(),
        );
    }
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for handle in handles {
        let result = within("a task result", 120, handle).await.unwrap();
        let text = String::from_utf8(result.to_vec()).unwrap();
        let name = text.split(':').next().unwrap().to_owned();
        *per_worker.entry(name).or_default() += 1;
    }
    let wall = started.elapsed();
    // 12 one-second tasks on 3 one-slot workers: 4 s if perfectly spread; one worker alone
    // would take 12 s.
    assert_eq!(per_worker.len(), 3, "{per_worker:?}");
    assert!(per_worker.values().all(|n| *n >= 2), "{per_worker:?}");
    assert!(wall < Duration::from_secs(9), "{wall:?} for {per_worker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_slot_worker_gets_its_slot_back_when_a_session_dies_mid_task() {
    let hub = hub().await;
    let _host = alice(&hub, |_| {}).await;
    let _bob = worker(&hub, "bob", sleeper("bob"), true, |_| {}).await;
    let carol = client(&hub, "carol", |_| {}).await;
    let mut updates = carol.peer.updates();
    let long = carol
        .peer
        .submit(fid("long"), Bytes::from_static(b"60\n"))
        .await
        .unwrap();
    within("the long task to start", 60, async {
        loop {
            if let (t, TaskUpdate::Event(TaskEvent::Running { .. })) = updates.recv().await.unwrap()
                && t == long.id()
            {
                return;
            }
        }
    })
    .await;
    // carol's client goes away mid-task: its session with bob dies with it.
    drop(carol);
    drop(long);
    let dave = client(&hub, "dave", |_| {}).await;
    let quick = dave
        .peer
        .submit(fid("quick"), Bytes::from_static(b"0\n"))
        .await
        .unwrap();
    assert_eq!(
        within("bob's only slot to come back", 60, quick)
            .await
            .unwrap(),
        Bytes::from_static(b"bob:0")
    );
}

/// Panics on `panic`, hangs on `hang` (until interrupted), answers anything else.
struct Misbehaving;

impl Executor for Misbehaving {
    fn execute(
        &self,
        job: Job,
        _progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        Box::pin(async move {
            match &job.payload[..] {
                b"panic" => panic!("the executor fails badly"),
                b"hang" => std::future::pending().await,
                _ => Ok(job.payload),
            }
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
async fn a_one_slot_worker_gets_its_slot_back_after_a_panic_a_cancel_and_a_time_limit() {
    let hub = hub().await;
    let alice = alice(&hub, |options| {
        options.core.max_retries = 0;
        options.core.time_limit = Some(2_000);
    })
    .await;
    let _bob = worker(&hub, "bob", Misbehaving, true, |options| {
        options.core.slots = 1;
    })
    .await;
    let mut updates = alice.peer.updates();
    // After each way a task can end, bob's only slot runs the next task.
    let next = |n: usize| {
        let alice = &alice;
        async move {
            let handle = alice
                .peer
                .submit(fid(&format!("next-{n}")), Bytes::from_static(b"ok"))
                .await
                .unwrap();
            assert_eq!(
                within("bob's only slot to come back", 60, handle)
                    .await
                    .unwrap(),
                Bytes::from_static(b"ok"),
                "after end {n}"
            );
        }
    };

    let panics = alice
        .peer
        .submit(fid("panics"), Bytes::from_static(b"panic"))
        .await
        .unwrap();
    assert!(
        matches!(
            within("the panicking task", 60, panics).await,
            Err(SubmitError::Task(TaskError::Exhausted { .. }))
        ),
        "a panic is a failed try"
    );
    next(0).await;

    let cancelled = alice
        .peer
        .submit(fid("cancelled"), Bytes::from_static(b"hang"))
        .await
        .unwrap();
    within("the hanging task to start", 60, async {
        loop {
            if let (t, TaskUpdate::Event(TaskEvent::Running { .. })) = updates.recv().await.unwrap()
                && t == cancelled.id()
            {
                return;
            }
        }
    })
    .await;
    alice.peer.cancel(cancelled.id());
    assert_eq!(
        within("the cancel", 60, cancelled).await,
        Err(SubmitError::Task(TaskError::Cancelled))
    );
    next(1).await;

    let hung = alice
        .peer
        .submit(fid("hung"), Bytes::from_static(b"hang"))
        .await
        .unwrap();
    assert!(
        matches!(
            within("the time limit", 60, hung).await,
            Err(SubmitError::Task(TaskError::TimedOut { .. }))
        ),
        "a hung task ends at the client's time limit"
    );
    next(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_task_times_out_and_the_tasks_behind_it_move_on() {
    let hub = hub().await;
    let alice = alice(&hub, |options| {
        options.core.time_limit = Some(8_000);
    })
    .await;
    let _bob = worker(&hub, "bob", sleeper("bob"), true, |_| {}).await;
    let _carol = worker(&hub, "carol", sleeper("carol"), true, |_| {}).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hung = alice
        .peer
        .submit(fid("hung"), Bytes::from_static(b"1000\n"))
        .await
        .unwrap();
    let mut others = Vec::new();
    for i in 0..4 {
        others.push(
            alice
                .peer
                .submit(fid(&format!("f-{i}")), Bytes::from_static(b"1\n"))
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    for handle in others {
        within("the tasks behind the hung one", 60, handle)
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the others waited for the hung task: {:?}",
        started.elapsed()
    );
    match within("the time limit", 60, hung).await {
        Err(SubmitError::Task(TaskError::TimedOut { limit, .. })) => {
            assert_eq!(limit, TimeLimit::Client { millis: 8_000 });
        }
        other => panic!("expected a time-out, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_goes_to_a_worker_that_has_not_failed_the_task() {
    let hub = hub().await;
    let alice = alice(&hub, |options| {
        options.core.max_retries = 1;
    })
    .await;
    let _bob = worker(
        &hub,
        "bob",
        CommandExecutor::new("echo broken >&2; exit 1"),
        true,
        |_| {},
    )
    .await;
    let _carol = worker(&hub, "carol", sleeper("carol"), true, |_| {}).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..6 {
        let handle = alice
            .peer
            .submit(fid(&format!("f-{i}")), Bytes::from_static(b"0\n"))
            .await
            .unwrap();
        assert_eq!(
            within("a result despite bob", 60, handle).await.unwrap(),
            Bytes::from_static(b"carol:0"),
            "task {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_tasks_reuse_the_warm_session() {
    let hub = hub().await;
    let alice = alice(&hub, |_| {}).await;
    let _bob = worker(&hub, "bob", sleeper("bob"), true, |_| {}).await;
    let mut updates = alice.peer.updates();
    for i in 0..5 {
        let handle = alice
            .peer
            .submit(fid(&format!("f-{i}")), Bytes::from_static(b"0\n"))
            .await
            .unwrap();
        within("a result", 60, handle).await.unwrap();
        // The client thinks between futures, as R users do.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut offers = 0;
    while let Ok((_, update)) = updates.try_recv() {
        if matches!(update, TaskUpdate::Event(TaskEvent::Offered { .. })) {
            offers += 1;
        }
    }
    assert_eq!(offers, 1, "only the first task went through the board");
}
