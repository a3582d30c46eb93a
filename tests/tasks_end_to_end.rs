//! Tasks travel end to end: scheduler and workers over a shared topic, payloads and results
//! over magic wormhole through our mailbox server and transit relay on 127.0.0.1.

mod common;

use bytes::Bytes;
use common::{Rendezvous, Topic, within};
use future_p2p::proto::id::PeerId;
use future_p2p::proto::seal::WorkerSecret;
use future_p2p::scheduler::{Scheduler, SchedulerOptions};
use future_p2p::worker::core::WorkerConfig;
use future_p2p::worker::{CommandExecutor, Worker, WorkerOptions};

fn peer(text: &str) -> PeerId {
    text.parse().unwrap()
}

fn start_worker(topic: &Topic, rendezvous: &Rendezvous, id: &str, ours: bool) -> Worker {
    let mut config = WorkerConfig::new(peer(id));
    if ours {
        config.sessions = true;
        config.secret = Some(WorkerSecret::from_bytes(rand_bytes(id)));
    }
    let options = WorkerOptions::new(config, rendezvous.wormhole());
    Worker::start(
        topic.join(),
        CommandExecutor::new("printf 'done:'; cat"),
        options,
    )
}

fn rand_bytes(seed: &str) -> [u8; 32] {
    let mut bytes = [7u8; 32];
    for (i, b) in seed.bytes().enumerate() {
        bytes[i % 32] ^= b;
    }
    bytes
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_over_warm_sessions_with_sealed_codes() {
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let _w1 = start_worker(&topic, &rendezvous, "bob@laptop:1", true);
    let _w2 = start_worker(&topic, &rendezvous, "carol@server:2", true);
    let scheduler = Scheduler::start(
        topic.join(),
        SchedulerOptions::new(peer("alice@desktop:3"), rendezvous.wormhole()),
    );
    run_tasks(&scheduler, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_in_future_p2p_mode() {
    let rendezvous = Rendezvous::start().await;
    let topic = Topic::new();
    let _w1 = start_worker(&topic, &rendezvous, "bob@laptop:1", false);
    let mut options = SchedulerOptions::new(peer("alice@desktop:3"), rendezvous.wormhole());
    options.core.sessions = false;
    options.core.sealed = false;
    let scheduler = Scheduler::start(topic.join(), options);
    run_tasks(&scheduler, 3).await;
}
