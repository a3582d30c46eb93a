//! Warm sessions carrying p2p-proto frames: volume both ways, large payloads in pieces,
//! oversized ones refused, dead and killed peers, wrong codes; against our servers and
//! against the Python reference servers.

use p2p_testkit::peers;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::frame::{Frame, Outcome, RemoteErrorKind, Task, TaskResult};
use p2p_proto::id::WormholeCode;
use p2p_transport::wormhole::{
    Incoming, IncomingTask, Moved, PayloadError, Session, SessionConfig, SessionError, SessionPath,
    SessionRole, Way, WormholeConfig,
};
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(60);

fn task(i: u64) -> Frame {
    Frame::Task(Task {
        future: format!("f-{i}").parse().expect("future id"),
        payload: Bytes::from(format!("payload {i}")),
    })
}

fn result(i: u64) -> Frame {
    Frame::Result(TaskResult {
        future: format!("f-{i}").parse().expect("future id"),
        outcome: Outcome::Value(Bytes::from(vec![i as u8; (i % 97) as usize])),
    })
}

/// Leader and follower meet under a fresh code.
async fn pair(
    config: &WormholeConfig,
    leader: SessionConfig,
    follower: SessionConfig,
) -> (Session, Session) {
    let code = peers::fresh_code();
    let worker = {
        let (config, code) = (config.clone(), code.clone());
        tokio::spawn(async move {
            Session::connect(
                &config,
                &code,
                SessionRole::Follower,
                &follower,
                CancellationToken::new(),
            )
            .await
        })
    };
    let client = Session::connect(
        config,
        &code,
        SessionRole::Leader,
        &leader,
        CancellationToken::new(),
    )
    .await
    .expect("leader connects");
    let worker = worker.await.expect("join").expect("follower connects");
    (client, worker)
}

async fn recv(session: &mut Session) -> Result<Frame, SessionError> {
    tokio::time::timeout(LIMIT, session.recv())
        .await
        .expect("frame or error in time")
}

async fn exchange(config: &WormholeConfig, frames: u64, follower: SessionConfig, direct: bool) {
    let (mut client, mut worker) = pair(config, SessionConfig::default(), follower).await;
    assert_eq!(
        matches!(client.path(), SessionPath::Direct(_)),
        direct,
        "{:?}",
        client.path()
    );
    assert_eq!(
        matches!(worker.path(), SessionPath::Direct(_)),
        direct,
        "{:?}",
        worker.path()
    );
    // Both directions at once, from separate tasks, as client and worker really run.
    let client_tx = client.sender();
    let send_tasks = tokio::spawn(async move {
        for i in 0..frames {
            client_tx.send(&task(i)).await.expect("send task");
        }
    });
    let worker_tx = worker.sender();
    let send_results = tokio::spawn(async move {
        for i in 0..frames {
            worker_tx.send(&result(i)).await.expect("send result");
        }
    });
    let worker_side = tokio::spawn(async move {
        for i in 0..frames {
            assert_eq!(recv(&mut worker).await.expect("task"), task(i));
        }
        worker
    });
    for i in 0..frames {
        assert_eq!(recv(&mut client).await.expect("result"), result(i));
    }
    let worker = worker_side.await.expect("worker side");
    send_tasks.await.expect("client sends");
    send_results.await.expect("worker sends");

    // A clean close reaches the peer as `Closed`.
    let mut worker = worker;
    client.close().await;
    assert!(matches!(recv(&mut worker).await, Err(SessionError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_frames_both_ways_through_our_servers() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    exchange(&config, 10_000, SessionConfig::default(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_frames_both_ways_direct() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let listening = SessionConfig {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SessionConfig::default()
    };
    exchange(&config, 10_000, listening, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_through_the_reference_servers() {
    p2p_testkit::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_mailbox, mailbox_url) = peers::python_mailbox(dir.path());
    let (_relay, relay_url) = peers::python_relay();
    let config = WormholeConfig::new(mailbox_url, relay_url);
    exchange(&config, 500, SessionConfig::default(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_declared_dead() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let watchful = SessionConfig {
        heartbeat_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(600),
        ..SessionConfig::default()
    };
    // The follower never heartbeats: a hung worker that keeps its socket open.
    let frozen = SessionConfig {
        heartbeat_interval: Duration::from_secs(3600),
        dead_after: Duration::from_secs(3600),
        ..SessionConfig::default()
    };
    let (mut client, worker) = pair(&config, watchful, frozen).await;
    // Its first heartbeat goes out at once; after that, silence.
    let got = recv(&mut client).await;
    assert!(matches!(got, Err(SessionError::PeerDead(_))), "{got:?}");
    assert!(
        client.send(&task(1)).await.is_err(),
        "a dead session refuses to send"
    );
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_killed_mid_transfer_ends_recv_with_an_error() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let (mut client, mut worker) =
        pair(&config, SessionConfig::default(), SessionConfig::default()).await;
    let big = Frame::Task(Task {
        future: "big-1".parse().expect("id"),
        payload: Bytes::from(vec![7u8; 4 << 20]),
    });
    // More than the socket buffers hold, so the sender is mid-transfer when the peer dies.
    let sender = client.sender();
    let sending = tokio::spawn(async move {
        for _ in 0..8 {
            sender.send(&big).await?;
        }
        Ok::<(), SessionError>(())
    });
    let first = recv(&mut worker).await.expect("first");
    assert!(matches!(first, Frame::Task(_)));
    // Kill the worker mid-stream: no close, the connection just vanishes.
    drop(worker);
    let got = recv(&mut client).await;
    assert!(
        got.is_err(),
        "client must learn the worker is gone: {got:?}"
    );
    let sent = tokio::time::timeout(LIMIT, sending)
        .await
        .expect("a blocked send must end when the peer dies")
        .expect("join");
    assert!(sent.is_err(), "sending to a dead peer must fail: {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_fails_both_sides() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let code = peers::fresh_code();
    let wrong = format!("{}-7d1e0b9c4a2f", code.nameplate())
        .parse::<WormholeCode>()
        .expect("code");
    let worker = {
        let config = config.clone();
        tokio::spawn(async move {
            Session::connect(
                &config,
                &wrong,
                SessionRole::Follower,
                &SessionConfig::default(),
                CancellationToken::new(),
            )
            .await
        })
    };
    let client = Session::connect(
        &config,
        &code,
        SessionRole::Leader,
        &SessionConfig::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(client, Err(SessionError::WrongCode)), "{client:?}");
    let worker = worker.await.expect("join");
    assert!(matches!(worker, Err(SessionError::WrongCode)), "{worker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_peer_times_out_or_cancels() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let short = SessionConfig {
        connect_timeout: Duration::from_millis(500),
        ..SessionConfig::default()
    };
    let got = Session::connect(
        &config,
        &peers::fresh_code(),
        SessionRole::Leader,
        &short,
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(got, Err(SessionError::Timeout(_))), "{got:?}");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let got = Session::connect(
        &config,
        &peers::fresh_code(),
        SessionRole::Leader,
        &SessionConfig::default(),
        cancel,
    )
    .await;
    assert!(matches!(got, Err(SessionError::Cancelled)), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_together_arrive_in_order() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let (client, mut worker) =
        pair(&config, SessionConfig::default(), SessionConfig::default()).await;
    let batch: Vec<Frame> = (0..100).map(task).collect();
    client.sender().send_all(&batch).await.expect("batch sent");
    client.send(&task(100)).await.expect("single frame sent");
    for i in 0..=100 {
        assert_eq!(recv(&mut worker).await.expect("frame"), task(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_payload_arrives_in_pieces_while_it_is_sent() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let (client, mut worker) =
        pair(&config, SessionConfig::default(), SessionConfig::default()).await;
    let payload: Bytes = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    let sent = {
        let (sender, payload) = (client.sender(), payload.clone());
        tokio::spawn(async move {
            sender
                .send(&Frame::Task(Task {
                    future: "big-1".parse().expect("id"),
                    payload,
                }))
                .await
        })
    };
    let incoming = tokio::time::timeout(LIMIT, worker.recv_incoming())
        .await
        .expect("in time")
        .expect("a task");
    let Incoming::Task(mut task) = incoming else {
        panic!("not a task: {incoming:?}");
    };
    assert_eq!(task.future.as_str(), "big-1");
    assert_eq!(task.payload.len(), payload.len() as u64);
    let mut received = Vec::with_capacity(payload.len());
    let mut pieces = 0;
    loop {
        tokio::select! {
            piece = task.payload.next_chunk() => match piece.expect("the payload") {
                Some(piece) => {
                    assert!(piece.len() <= 256 << 10, "a piece of {} bytes", piece.len());
                    // The meter counts what was handed on, of the announced size.
                    let moved = worker.meter().moved(Way::Receiving);
                    assert_eq!(moved.total, payload.len() as u64);
                    assert!(moved.done >= (received.len() + piece.len()) as u64);
                    received.extend_from_slice(&piece);
                    pieces += 1;
                }
                None => break,
            },
            frame = worker.recv_incoming() => panic!("no frame expected: {frame:?}"),
        }
    }
    assert!(pieces >= 128, "{pieces} pieces");
    assert!(received == payload, "the payload arrives intact");
    sent.await.expect("join").expect("sent");
    // Both ends counted the payload, and only it (heads and heartbeats are not bytes of it).
    let all = Moved {
        done: payload.len() as u64,
        total: payload.len() as u64,
    };
    assert_eq!(client.meter().moved(Way::Sending), all);
    assert_eq!(worker.meter().moved(Way::Receiving), all);
    assert_eq!(client.meter().moved(Way::Receiving), Moved::default());
}

/// Sends `payload` as a task on `client`; the send's task.
fn send_task(
    client: &Session,
    payload: Bytes,
) -> tokio::task::JoinHandle<Result<(), SessionError>> {
    let sender = client.sender();
    tokio::spawn(async move {
        sender
            .send(&Frame::Task(Task {
                future: "big-1".parse().expect("id"),
                payload,
            }))
            .await
    })
}

/// Polls `worker` (as a worker does while its task runs) for `idle` without taking any
/// piece of `task`'s payload, then takes all of it.
async fn consume_late(worker: &mut Session, task: &mut IncomingTask, idle: Duration) -> Vec<u8> {
    let frame = tokio::time::timeout(idle, worker.recv_incoming()).await;
    assert!(frame.is_err(), "no frame expected: {frame:?}");
    let mut received = Vec::new();
    loop {
        tokio::select! {
            piece = task.payload.next_chunk() => match piece.expect("the payload") {
                Some(piece) => received.extend_from_slice(&piece),
                None => return received,
            },
            frame = worker.recv_incoming() => panic!("no frame expected: {frame:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_slows_the_sender_instead_of_filling_memory() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let (client, mut worker) =
        pair(&config, SessionConfig::default(), SessionConfig::default()).await;
    let payload: Bytes = (0..64u32 << 20).map(|i| (i % 253) as u8).collect();
    let sent = send_task(&client, payload.clone());
    let Incoming::Task(mut task) = tokio::time::timeout(LIMIT, worker.recv_incoming())
        .await
        .expect("in time")
        .expect("a task")
    else {
        panic!("a task first");
    };
    // 64 MiB cannot all be on the way (socket buffers and the session's read-ahead are a
    // few MiB): while nothing is consumed, the send cannot finish.
    let received = {
        let consume = consume_late(&mut worker, &mut task, Duration::from_secs(2));
        tokio::pin!(consume);
        tokio::select! {
            received = &mut consume => received,
            _ = tokio::time::sleep(Duration::from_millis(1500)) => {
                assert!(!sent.is_finished(), "the whole payload was taken in unconsumed");
                tokio::time::timeout(LIMIT, consume).await.expect("consumed in time")
            }
        }
    };
    assert!(received == payload, "the payload arrives intact");
    sent.await.expect("join").expect("sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_does_not_read_never_makes_the_peer_look_dead() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let quick = SessionConfig {
        heartbeat_interval: Duration::from_millis(200),
        dead_after: Duration::from_secs(2),
        ..SessionConfig::default()
    };
    let (client, mut worker) = pair(&config, quick.clone(), quick).await;
    let payload: Bytes = (0..48u32 << 20).map(|i| (i % 241) as u8).collect();
    let sent = send_task(&client, payload.clone());
    let Incoming::Task(mut task) = tokio::time::timeout(LIMIT, worker.recv_incoming())
        .await
        .expect("in time")
        .expect("a task")
    else {
        panic!("a task first");
    };
    // Longer than the sender's stall limit: the session stops waiting for the consumer
    // after half of it and buffers the rest, so the send completes.
    let received = consume_late(&mut worker, &mut task, Duration::from_secs(4)).await;
    tokio::time::timeout(LIMIT, sent)
        .await
        .expect("in time")
        .expect("join")
        .expect("sent without a stall error");
    assert!(received == payload, "the payload arrives intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payloads_are_refused_unread_and_the_session_goes_on() {
    p2p_testkit::init_tracing();
    let (_mailbox, _relay, config) = peers::our_servers().await;
    let small = SessionConfig {
        max_payload: 1 << 20,
        ..SessionConfig::default()
    };
    let (mut client, mut worker) = pair(&config, small.clone(), small).await;
    let big = Bytes::from(vec![1u8; 3 << 20]);
    client
        .sender()
        .send_all(&[
            Frame::Task(Task {
                future: "too-big".parse().expect("id"),
                payload: big.clone(),
            }),
            task(7),
        ])
        .await
        .expect("sent");
    let Incoming::Task(refused) = worker.recv_incoming().await.expect("first") else {
        panic!("a task first");
    };
    assert_eq!(
        refused.payload.collect().await,
        Err(PayloadError::TooLarge {
            len: 3 << 20,
            max: 1 << 20
        })
    );
    // The next task is intact: the refused bytes were skipped, not misread.
    let Incoming::Task(next) = worker.recv_incoming().await.expect("second") else {
        panic!("then a task");
    };
    assert_eq!(next.future.as_str(), "f-7");
    assert_eq!(next.payload.collect().await.expect("payload"), "payload 7");

    // A result over the client's limit becomes that error; the session goes on.
    worker
        .sender()
        .send_all(&[
            Frame::Result(TaskResult {
                future: "f-1".parse().expect("id"),
                outcome: Outcome::Value(big),
            }),
            result(2),
        ])
        .await
        .expect("sent");
    match recv(&mut client).await.expect("first result") {
        Frame::Result(TaskResult {
            outcome: Outcome::Error(error),
            ..
        }) => {
            assert_eq!(error.kind, RemoteErrorKind::PayloadTooLarge);
            assert!(error.message.contains("1048576"), "{}", error.message);
        }
        other => panic!("not a refused result: {other:?}"),
    }
    assert_eq!(recv(&mut client).await.expect("second result"), result(2));
}
