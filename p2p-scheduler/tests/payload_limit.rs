//! The payload limit is said at submission: an over-limit payload is refused before a
//! single line reaches the board, with the limit in the message.

use std::time::Duration;

use bytes::Bytes;
use p2p_proto::id::PeerId;
use p2p_scheduler::{Scheduler, SchedulerOptions, SubmitError};
use p2p_transport::lines::line_channel;
use p2p_transport::wormhole::WormholeConfig;

#[tokio::test]
async fn an_over_limit_payload_is_refused_before_anything_is_posted() {
    let (lines, mut pump) = line_channel(64);
    let me = PeerId::new("alice", "host", 1).unwrap();
    // Unreachable servers: nothing may need them for a refusal.
    let wormhole = WormholeConfig::new("ws://127.0.0.1:1/v1", "tcp:127.0.0.1:1");
    let mut options = SchedulerOptions::new(me, wormhole);
    options.max_payload = 1000;
    let scheduler = Scheduler::start(lines, options);

    let refused = scheduler
        .submit("f-1".parse().unwrap(), Bytes::from(vec![0u8; 1001]))
        .await
        .expect_err("1001 bytes exceed a limit of 1000");
    assert_eq!(
        refused,
        SubmitError::PayloadTooLarge {
            size: 1001,
            max: 1000
        }
    );
    let message = refused.to_string();
    assert!(message.contains("limit of 1000 bytes"), "{message}");

    // The scheduler may greet the board, but it posts no request for the refused future.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(line) = pump.from_driver.try_recv() {
        assert!(
            !line.contains("f-1"),
            "posted for a refused payload: {line}"
        );
    }

    // A payload at the limit is taken (it waits for a worker).
    let accepted = tokio::time::timeout(
        Duration::from_secs(5),
        scheduler.submit("f-2".parse().unwrap(), Bytes::from(vec![0u8; 1000])),
    )
    .await
    .expect("submit returns at once");
    assert!(accepted.is_ok(), "{accepted:?}");
    let posted = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(line) = pump.from_driver.recv().await {
            if line.contains("f-2") {
                return line;
            }
        }
        panic!("the board channel closed");
    })
    .await
    .expect("a request for the accepted payload is posted");
    assert!(posted.contains("size=1000"), "{posted}");
}
