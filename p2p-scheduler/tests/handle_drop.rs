//! A dropped `TaskHandle` cancels its task (its request is withdrawn from the board);
//! a detached one keeps it, as `p2p_cluster::Task` does.

use std::time::Duration;

use bytes::Bytes;
use p2p_proto::id::PeerId;
use p2p_scheduler::{Scheduler, SchedulerOptions};
use p2p_transport::lines::{LinePump, line_channel};
use p2p_transport::wormhole::WormholeConfig;

/// The next line the scheduler posts that names `future` with `kind`, within 10 s; every
/// line posted on the way is returned too.
async fn next_line(pump: &mut LinePump, kind: &str, future: &str) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    let wanted = [format!("type={kind},"), format!("future={future}")];
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = pump.from_driver.recv().await {
            if wanted.iter().all(|w| line.contains(w.as_str())) {
                return line;
            }
            seen.push(line);
        }
        panic!("the board channel closed");
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} line for {future}"));
    (found, seen)
}

#[tokio::test]
async fn a_dropped_handle_withdraws_its_task_and_a_detached_one_does_not() {
    let (lines, mut pump) = line_channel(64);
    let me = PeerId::new("alice", "host", 1).unwrap();
    // No worker will ever come: the tasks stay requests on the board.
    let wormhole = WormholeConfig::new("ws://127.0.0.1:1/v1", "tcp:127.0.0.1:1");
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, wormhole));

    let dropped = scheduler
        .submit("f-1".parse().unwrap(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    next_line(&mut pump, "request", "f-1").await;
    drop(dropped);
    let (withdraw, _) = next_line(&mut pump, "withdraw", "f-1").await;
    assert!(withdraw.contains("to=<none>"), "{withdraw}");

    // While no worker is known one request stands; the next task waits behind it.
    let first = scheduler
        .submit("f-2".parse().unwrap(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    next_line(&mut pump, "request", "f-2").await;
    let detached = scheduler
        .submit("f-3".parse().unwrap(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    detached.detach();
    // f-2 withdrawn, its place on the board goes to f-3: the detached task lives on.
    drop(first);
    next_line(&mut pump, "withdraw", "f-2").await;
    let (request, _) = next_line(&mut pump, "request", "f-3").await;
    assert!(request.contains("from=alice@host:1"), "{request}");
}
