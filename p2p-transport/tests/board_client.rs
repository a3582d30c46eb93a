//! The Board client against the board server: API, authentication, host keys, ordering,
//! slow and vanishing readers, garbage, reconnects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_testkit::openssh::*;
use p2p_transport::board::auth::AuthError;
use p2p_transport::board::known_hosts::HostKeyError;
use p2p_transport::board::{
    Backoff, Board, BoardConfig, BoardError, PipeOptions, Topic, TopicEvent,
};
use tokio::io::AsyncReadExt;

fn config(hub: &TestBoard, key: &Path, user: &str, known_hosts: &Path) -> BoardConfig {
    let args = [
        "-p".to_owned(),
        hub.port().to_string(),
        "-i".to_owned(),
        key.display().to_string(),
        "-l".to_owned(),
        user.to_owned(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ];
    let mut c = BoardConfig::from_ssh_args("127.0.0.1", &args).expect("ssh args");
    c.agent = None;
    c
}

async fn board(hub: &TestBoard, key: &Path, user: &str) -> Board {
    let kh = hub.known_hosts();
    tokio::time::timeout(STEP, Board::connect(config(hub, key, user, &kh)))
        .await
        .expect("connect timed out")
        .expect("connect")
}

async fn next_line(topic: &mut Topic) -> String {
    match next_event(topic).await {
        TopicEvent::Line(l) => l,
        other => panic!("expected a line, got {other:?}"),
    }
}

async fn next_event(topic: &mut Topic) -> TopicEvent {
    tokio::time::timeout(STEP, topic.recv())
        .await
        .expect("no event in time")
        .expect("topic ended")
}

struct People {
    _dir: tempfile::TempDir,
    alice: PathBuf,
    bob: PathBuf,
    carol: PathBuf,
}

fn people() -> People {
    let dir = tempfile::tempdir().expect("tempdir");
    People {
        alice: keygen(dir.path(), "alice"),
        bob: keygen(dir.path(), "bob"),
        carol: keygen(dir.path(), "carol"),
        _dir: dir,
    }
}

async fn hub_for(p: &People) -> TestBoard {
    TestBoard::start(&[("alice", &p.alice), ("bob", &p.bob), ("carol", &p.carol)]).await
}

/// Waits until alice's `ls` mentions `needle`.
async fn until_listed(board: &Board, needle: &str) -> String {
    let fut = async {
        loop {
            let ls = board.ls().await.expect("ls");
            if ls.contains(needle) {
                return ls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(STEP, fut).await.expect("never listed")
}

/// Waits until alice's `ls` mentions `needle` at least `n` times (clients of one user).
async fn until_count(board: &Board, needle: &str, n: usize) {
    let fut = async {
        while board.ls().await.expect("ls").matches(needle).count() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(STEP, fut)
        .await
        .expect("clients never joined");
}

/// Waits until alice's `ls` no longer mentions `needle`.
async fn until_gone(board: &Board, needle: &str) {
    let fut = async {
        while board.ls().await.expect("ls").contains(needle) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(STEP, fut)
        .await
        .expect("client never left");
}

#[tokio::test]
async fn board_api_open_send_receive_ls_user() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let bob = board(&hub, &p.bob, "bob").await;
    let opts = PipeOptions {
        access: vec!["bob".into()],
        ..Default::default()
    };
    let mut host = alice.open("p2p", &opts).await.expect("open");
    until_listed(&alice, "(alice@").await;
    let mut worker = bob
        .open("alice/p2p", &PipeOptions::default())
        .await
        .expect("open");
    let ls = until_listed(&alice, "(bob@").await;
    assert!(
        ls.starts_with("Channel Information\r\n- alice/p2p: (Access List: bob)\r\n  Pipes:\r\n"),
        "{ls:?}"
    );

    host.send_line("when=2026-01-01T00:00:00,type=cluster")
        .await
        .expect("send");
    assert_eq!(
        next_line(&mut worker).await,
        "when=2026-01-01T00:00:00,type=cluster"
    );
    worker
        .send_line("when=2026-01-01T00:00:01,type=worker")
        .await
        .expect("send");
    assert_eq!(
        next_line(&mut host).await,
        "when=2026-01-01T00:00:01,type=worker"
    );

    assert!(matches!(
        host.send_line("a\nb").await,
        Err(BoardError::LineBreak)
    ));
    assert!(matches!(
        host.send_line(&"x".repeat(9000)).await,
        Err(BoardError::LineTooLong { .. })
    ));
    assert!(matches!(
        alice.open("bad topic", &PipeOptions::default()).await,
        Err(BoardError::InvalidTopic(_))
    ));

    let me = alice.user().await.expect("user");
    assert_eq!(me.name, "alice");
    assert_eq!(me.id.len(), 36);

    worker.close().await;
    until_gone(&alice, "(bob@").await;
    host.close().await;
}

#[tokio::test]
async fn anonymous_ls_is_a_typed_command_error() {
    let p = people();
    let hub = TestBoard::start(&[("alice", &p.alice)]).await;
    let anon = board(&hub, &p.bob, "bob").await;
    match anon.ls().await {
        Err(BoardError::Command { status, stderr, .. }) => {
            assert_eq!(status, Some(1));
            assert_eq!(stderr, "access denied");
        }
        other => panic!("expected access denied, got {other:?}"),
    }
}

#[tokio::test]
async fn host_keys_unknown_learned_changed() {
    let p = people();
    let hub = hub_for(&p).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    let strict = config(&hub, &p.alice, "alice", &kh);
    match Board::connect(strict.clone()).await {
        Err(BoardError::HostKey(HostKeyError::Unknown { .. })) => {}
        other => panic!("unknown host accepted: {other:?}"),
    }
    let mut tofu = strict.clone();
    tofu.ssh.strict = Some(p2p_transport::board::ssh_args::Strictness::AcceptNew);
    Board::connect(tofu.clone())
        .await
        .expect("trust on first use");
    Board::connect(strict)
        .await
        .expect("learned key is trusted");

    // Another server (another host key) on a port recorded with the old key.
    let other = hub_for(&p).await;
    let old = std::fs::read_to_string(&kh).expect("known_hosts");
    let forged = old.replace(
        &format!("[127.0.0.1]:{}", hub.port()),
        &format!("[127.0.0.1]:{}", other.port()),
    );
    std::fs::write(&kh, forged).expect("write");
    let mut changed = config(&other, &p.alice, "alice", &kh);
    changed.ssh.strict = tofu.ssh.strict;
    match Board::connect(changed).await {
        Err(BoardError::HostKey(HostKeyError::Changed { .. })) => {}
        other => panic!("changed host key accepted: {other:?}"),
    }
}

#[tokio::test]
async fn encrypted_key_without_agent_is_a_clear_error() {
    let p = people();
    let hub = hub_for(&p).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let locked = keygen_with(dir.path(), "locked", "ed25519", "secret passphrase");
    let kh = hub.known_hosts();
    match Board::connect(config(&hub, &locked, "alice", &kh)).await {
        Err(BoardError::Auth(AuthError::EncryptedKey { path })) => {
            assert!(path.ends_with("locked"));
        }
        other => panic!("expected an encrypted-key error, got {other:?}"),
    }
    let missing = dir.path().join("nope");
    assert!(matches!(
        Board::connect(config(&hub, &missing, "alice", &kh)).await,
        Err(BoardError::Auth(AuthError::KeyFile { .. }))
    ));
}

#[tokio::test]
async fn rsa_and_ecdsa_keys_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = keygen_with(dir.path(), "rsa", "rsa", "");
    let ecdsa = keygen_with(dir.path(), "ecdsa", "ecdsa", "");
    let hub = TestBoard::start(&[("rsa", &rsa), ("ecdsa", &ecdsa)]).await;
    assert_eq!(
        board(&hub, &rsa, "x")
            .await
            .user()
            .await
            .expect("user")
            .name,
        "rsa"
    );
    assert_eq!(
        board(&hub, &ecdsa, "x")
            .await
            .user()
            .await
            .expect("user")
            .name,
        "ecdsa"
    );
}

/// 10,000 lines from four publishers: every reader gets every line, each publisher's lines
/// in order, and all readers the same total order.
#[tokio::test]
async fn ten_thousand_lines_keep_their_order() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 2_500;
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(
            alice
                .open("order", &PipeOptions::default())
                .await
                .expect("reader"),
        );
    }
    until_count(&alice, "(alice@", 3).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let b = board(&hub, &p.alice, "alice").await;
        let t = b
            .open("order", &PipeOptions::default())
            .await
            .expect("writer");
        writers.push((b, t, w));
    }
    let fut = async {
        let sends = writers.into_iter().map(|(b, mut t, w)| async move {
            let sender = t.sender();
            let send = async {
                for i in 0..PER_WRITER {
                    sender
                        .send_line(&format!("w{w} {i:05} padding-padding-padding"))
                        .await
                        .expect("send");
                }
            };
            // Drain what the other writers send, as a real peer's read loop would.
            let drain = async {
                let mut seen = 0;
                while seen < (WRITERS - 1) * PER_WRITER {
                    if let Some(TopicEvent::Line(_)) = t.recv().await {
                        seen += 1;
                    }
                }
            };
            tokio::join!(send, drain);
            drop(b);
        });
        let reads = readers.iter_mut().map(|r| async move {
            let mut lines = Vec::with_capacity(WRITERS * PER_WRITER);
            while lines.len() < WRITERS * PER_WRITER {
                match r.recv().await {
                    Some(TopicEvent::Line(l)) => lines.push(l),
                    other => panic!("unexpected {other:?}"),
                }
            }
            lines
        });
        let (_writers, seen) = tokio::join!(
            futures::future::join_all(sends),
            futures::future::join_all(reads)
        );
        seen
    };
    let started = std::time::Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("ordering test timed out");
    eprintln!("ordering: {:?}", started.elapsed());
    for lines in &seen {
        let mut next = [0usize; WRITERS];
        for line in lines {
            let (w, rest) = line.split_once(' ').expect("writer tag");
            let w: usize = w[1..].parse().expect("writer id");
            let i: usize = rest[..5].parse().expect("seq");
            assert_eq!(i, next[w], "writer {w} out of order");
            next[w] += 1;
        }
        assert_eq!(next, [PER_WRITER; WRITERS]);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "readers saw different orders"
    );
}

#[tokio::test]
async fn chunked_and_interleaved_input() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let mut reader = alice
        .open("chunks", &PipeOptions::default())
        .await
        .expect("reader");
    until_listed(&alice, "Pipes").await;
    // One OpenSSH writer sends a line in pieces, another Board writer interleaves whole lines.
    let mut pieces = ssh(hub.port(), &p.alice, "alice", "pipe chunks");
    let other = board(&hub, &p.alice, "alice").await;
    let whole = other
        .open("chunks", &PipeOptions::default())
        .await
        .expect("writer");
    until_count(&alice, "(alice@", 3).await;
    for part in [
        &b"when=1,ty"[..],
        b"pe=cl",
        b"uster\nwhen=2,",
        b"type=worker\r\n",
    ] {
        pieces.write(part).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(next_line(&mut reader).await);
    }
    assert_eq!(got, ["when=1,type=cluster", "when=2,type=worker"]);
    for i in 0..50 {
        whole.send_line(&format!("whole {i}")).await.expect("send");
        pieces.write(format!("piece {i}\n").as_bytes()).await;
    }
    let mut wholes = 0;
    let mut piecewise = 0;
    while wholes + piecewise < 100 {
        let line = next_line(&mut reader).await;
        if let Some(n) = line.strip_prefix("whole ") {
            assert_eq!(n.parse::<usize>().expect("n"), wholes);
            wholes += 1;
        } else if let Some(n) = line.strip_prefix("piece ") {
            assert_eq!(n.parse::<usize>().expect("n"), piecewise);
            piecewise += 1;
        } else {
            panic!("mangled line {line:?}");
        }
    }
}

#[tokio::test]
async fn binary_garbage_is_relayed_and_rejected_line_by_line() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let mut reader = alice
        .open("junk", &PipeOptions::default())
        .await
        .expect("reader");
    let mut raw = ssh(hub.port(), &p.alice, "alice", "sub junk -k");
    until_count(&alice, "(alice@", 2).await;
    let mut garbage: Vec<u8> = (0..=255u8)
        .cycle()
        .take(3000)
        .filter(|b| *b != b'\n')
        .collect();
    garbage.push(b'\n');
    let mut long = vec![b'a'; 20_000];
    long.push(b'\n');
    let mut writer = ssh(hub.port(), &p.alice, "alice", "pub junk -c -b=false");
    writer.write(&garbage).await;
    writer.write(&long).await;
    writer.write(b"when=1,type=ok\n").await;
    let total = garbage.len() + long.len() + b"when=1,type=ok\n".len();
    assert!(matches!(
        next_event(&mut reader).await,
        TopicEvent::Malformed(_)
    ));
    assert!(matches!(
        next_event(&mut reader).await,
        TopicEvent::Malformed(_)
    ));
    assert_eq!(next_line(&mut reader).await, "when=1,type=ok");
    // The byte stream itself is relayed untouched.
    let bytes = raw.read_exact(total).await;
    assert_eq!(&bytes[..garbage.len()], &garbage[..]);
    assert_eq!(writer.finish().await.code, Some(0));
}

#[tokio::test]
async fn slow_reader_is_cut_off_and_the_others_keep_up() {
    let p = people();
    let hub = TestBoard::start_with(&[("alice", &p.alice)], |c| c.backlog_limit = 256 * 1024).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let mut fast = alice
        .open("flood", &PipeOptions::default())
        .await
        .expect("fast reader");
    // A real OpenSSH reader whose stdout nobody reads.
    let mut slow = ssh(hub.port(), &p.alice, "alice", "sub flood -k");
    until_count(&alice, "(alice@", 2).await;
    let writer_board = board(&hub, &p.alice, "alice").await;
    let writer = writer_board
        .open("flood", &PipeOptions::default())
        .await
        .expect("writer");
    // 8 MB, more than the slow reader's SSH window, socket buffers and backlog limit hold,
    // in few enough lines that a busy machine sends them well within the slow reader's
    // NOTICE_TIMEOUT for its eviction notice.
    const LINES: usize = 8_000;
    let line = "x".repeat(1_000);
    let send = async {
        for i in 0..LINES {
            writer
                .send_line(&format!("{i:06} {line}"))
                .await
                .expect("send");
        }
    };
    let receive = async {
        for i in 0..LINES {
            let l = next_line(&mut fast).await;
            assert_eq!(&l[..6], format!("{i:06}"));
        }
    };
    // Every line must reach the fast reader within STEP of the last (next_line): that is
    // the check that the slow one does not hold it up. The whole run is only bounded, since
    // the lines take a while on a busy machine.
    tokio::time::timeout(Duration::from_secs(600), async {
        tokio::join!(send, receive)
    })
    .await
    .expect("8,000 lines took more than 10 minutes");
    // Now drain the slow reader: a prefix of the stream, then the notice and status 1.
    let drain = async {
        let mut sink = Vec::new();
        let _ = slow.stdout.read_to_end(&mut sink).await;
        sink.len()
    };
    let read = tokio::time::timeout(STEP, drain)
        .await
        .expect("slow reader never ended");
    assert!(
        read < LINES * (line.len() + 8),
        "the slow reader got everything ({read} bytes)"
    );
    let done = slow.finish().await;
    assert_eq!(done.code, Some(1), "{done:?}");
    assert!(
        done.stderr().starts_with("reader too slow:"),
        "{:?}",
        done.stderr()
    );
    assert!(!alice.ls().await.expect("ls").contains("Subs:"));
}

#[tokio::test]
async fn reader_vanishing_mid_line_does_not_disturb_the_topic() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let mut steady = alice
        .open("vanish", &PipeOptions::default())
        .await
        .expect("reader");
    let mut doomed = ssh(hub.port(), &p.alice, "alice", "sub vanish -k");
    until_count(&alice, "(alice@", 2).await;
    let writer = board(&hub, &p.alice, "alice")
        .await
        .open("vanish", &PipeOptions::default())
        .await
        .expect("writer");
    let long = "y".repeat(8000);
    writer
        .send_line(&format!("first {}", &long[..10]))
        .await
        .expect("send");
    assert!(next_line(&mut steady).await.starts_with("first"));
    // Read part of a long line, then kill the reader mid-line.
    writer
        .send_line(&format!("long {}", &long[..8000]))
        .await
        .expect("send");
    let _ = doomed.read_exact(100).await;
    doomed.child.kill().await.expect("kill ssh");
    drop(doomed);
    assert!(next_line(&mut steady).await.starts_with("long "));
    for i in 0..100 {
        writer.send_line(&format!("after {i}")).await.expect("send");
    }
    let mut after = 0;
    while after < 100 {
        let line = next_line(&mut steady).await;
        if line.starts_with("after ") {
            assert_eq!(line, format!("after {after}"));
            after += 1;
        }
    }
    // The killed reader leaves the topic; the steady one is still there.
    until_gone(&alice, "Subs:").await;
    assert!(alice.ls().await.expect("ls").contains("Pipes:"));
}

/// A TCP relay on 127.0.0.1:0 whose connections the test can cut (both ends see the close)
/// or freeze (sockets stay open, nothing flows: a peer that silently vanished).
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    freeze: tokio::sync::watch::Sender<bool>,
}

async fn relay(target: u16) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let port = listener.local_addr().expect("addr").port();
    let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
    let (freeze, freeze_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut cut_rx = cut_rx.clone();
            cut_rx.borrow_and_update();
            let mut freeze_rx = freeze_rx.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut_rx.changed() => {}
                    _ = async { freeze_rx.wait_for(|frozen| *frozen).await.is_ok() } => {
                        // Keep both sockets open and silent until the test ends.
                        let _ = cut_rx.changed().await;
                    }
                }
            });
        }
    });
    Relay { port, cut, freeze }
}

#[tokio::test]
async fn dropped_connection_reconnects_with_typed_events() {
    let p = people();
    let hub = hub_for(&p).await;
    let relay = relay(hub.port()).await;
    let line = std::fs::read_to_string(hub.known_hosts()).expect("kh");
    let kh = hub.dir.path().join("relay_known_hosts");
    std::fs::write(
        &kh,
        line.replace(&format!(":{} ", hub.port()), &format!(":{} ", relay.port)),
    )
    .expect("kh");
    let mut c = config(&hub, &p.bob, "bob", &kh);
    c.ssh.port = Some(relay.port);
    c.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: Some(20),
    };
    let bob = Board::connect(c).await.expect("connect through relay");
    let alice = board(&hub, &p.alice, "alice").await;
    let mut host = alice
        .open(
            "p2p",
            &PipeOptions {
                access: vec!["bob".into()],
                ..Default::default()
            },
        )
        .await
        .expect("host");
    until_listed(&alice, "(alice@").await;
    let mut worker = bob
        .open("alice/p2p", &PipeOptions::default())
        .await
        .expect("worker");
    until_listed(&alice, "(bob@").await;
    worker.send_line("before").await.expect("send");
    assert_eq!(next_line(&mut host).await, "before");

    relay.cut.send_modify(|v| *v += 1);
    match next_event(&mut worker).await {
        TopicEvent::Disconnected { retry_in, .. } => {
            assert_eq!(retry_in, Duration::from_millis(100))
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    loop {
        match next_event(&mut worker).await {
            TopicEvent::Reconnected => break,
            TopicEvent::Disconnected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    until_listed(&alice, "(bob@").await;
    worker.send_line("after").await.expect("send");
    assert_eq!(next_line(&mut host).await, "after");
    host.send_line("welcome back").await.expect("send");
    assert_eq!(next_line(&mut worker).await, "welcome back");
}

#[tokio::test]
async fn system_ssh_backend_has_the_same_api() {
    let p = people();
    let hub = hub_for(&p).await;
    require("ssh");
    let args: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-p",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        hub.port().to_string(),
        "-i".to_owned(),
        p.bob.display().to_string(),
        "-l".to_owned(),
        "bob".to_owned(),
    ])
    .collect();
    let bob = Board::connect(BoardConfig::system_ssh("127.0.0.1", &args))
        .await
        .expect("system ssh");
    assert_eq!(bob.user().await.expect("user").name, "bob");
    let alice = board(&hub, &p.alice, "alice").await;
    let mut host = alice
        .open(
            "p2p",
            &PipeOptions {
                access: vec!["bob".into()],
                ..Default::default()
            },
        )
        .await
        .expect("host");
    until_listed(&alice, "(alice@").await;
    let mut worker = bob
        .open("alice/p2p", &PipeOptions::default())
        .await
        .expect("worker");
    until_listed(&alice, "(bob@").await;
    worker.send_line("via system ssh").await.expect("send");
    assert_eq!(next_line(&mut host).await, "via system ssh");
    host.send_line("hello back").await.expect("send");
    assert_eq!(next_line(&mut worker).await, "hello back");
    worker.close().await;
    match bob.ls().await {
        Ok(ls) => assert_eq!(ls, "no pubsub channels found\n"),
        Err(e) => panic!("ls failed: {e}"),
    }
}

/// A real `ssh-agent` holding alice's key: tried before the (encrypted) key file.
#[tokio::test]
async fn ssh_agent_keys_come_first() {
    let p = people();
    let hub = hub_for(&p).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agent.sock");
    let _agent = tokio::process::Command::new(require("ssh-agent"))
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ssh-agent");
    let ready = async {
        while !socket.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(STEP, ready)
        .await
        .expect("ssh-agent did not start");
    let added = tokio::process::Command::new(require("ssh-add"))
        .arg(&p.alice)
        .env("SSH_AUTH_SOCK", &socket)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run ssh-add");
    assert!(
        added.status.success(),
        "ssh-add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let locked = keygen_with(dir.path(), "locked", "ed25519", "passphrase");
    let kh = hub.known_hosts();
    let mut c = config(&hub, &locked, "alice", &kh);
    c.agent = Some(socket);
    let board = Board::connect(c).await.expect("agent login");
    assert_eq!(board.user().await.expect("user").name, "alice");
}

/// The server's keepalives (every `keepalive_interval`, dropped after three unanswered)
/// remove a client that vanished without closing its TCP connection from its topics.
#[tokio::test]
async fn silent_client_is_dropped_by_server_keepalives() {
    let p = people();
    let hub = TestBoard::start_with(&[("alice", &p.alice), ("bob", &p.bob)], |c| {
        c.keepalive_interval = Duration::from_millis(200);
    })
    .await;
    let relay = relay(hub.port()).await;
    let line = std::fs::read_to_string(hub.known_hosts()).expect("kh");
    let kh = hub.dir.path().join("relay_known_hosts");
    std::fs::write(
        &kh,
        line.replace(&format!(":{} ", hub.port()), &format!(":{} ", relay.port)),
    )
    .expect("kh");
    let mut c = config(&hub, &p.bob, "bob", &kh);
    c.ssh.port = Some(relay.port);
    let bob = Board::connect(c).await.expect("connect through relay");
    let alice = board(&hub, &p.alice, "alice").await;
    let _host = alice
        .open(
            "p2p",
            &PipeOptions {
                access: vec!["bob".into()],
                ..Default::default()
            },
        )
        .await
        .expect("host");
    until_listed(&alice, "(alice@").await;
    let _worker = bob
        .open("alice/p2p", &PipeOptions::default())
        .await
        .expect("worker");
    until_listed(&alice, "(bob@").await;
    relay.freeze.send_replace(true);
    let gone = async {
        while alice.ls().await.expect("ls").contains("(bob@") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(STEP, gone)
        .await
        .expect("the silent client was never dropped");
}

/// A topic handed to the protocol drivers as a `LineChannel`.
#[tokio::test]
async fn topic_as_line_channel() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let bob = board(&hub, &p.bob, "bob").await;
    let opts = PipeOptions {
        access: vec!["bob".into()],
        ..Default::default()
    };
    let mut host = alice.open("p2p", &opts).await.expect("host").into_lines(16);
    until_listed(&alice, "(alice@").await;
    let mut worker = bob
        .open("alice/p2p", &PipeOptions::default())
        .await
        .expect("worker");
    until_listed(&alice, "(bob@").await;
    worker.send_line("when=1,type=worker").await.expect("send");
    let got = tokio::time::timeout(STEP, host.incoming.recv())
        .await
        .expect("in time");
    assert_eq!(got.as_deref(), Some("when=1,type=worker"));
    host.outgoing
        .send("when=2,type=cluster".into())
        .await
        .expect("queue");
    assert_eq!(next_line(&mut worker).await, "when=2,type=cluster");
    // Dropping the driver's outgoing end leaves the topic.
    drop(host.outgoing);
    let gone = async {
        while alice.ls().await.expect("ls").contains("(alice@") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(STEP, gone)
        .await
        .expect("host never left");
}

/// Closing a topic whose events nobody read does not hang.
#[tokio::test]
async fn close_with_unread_events_returns() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let reader = alice
        .open("unread", &PipeOptions::default())
        .await
        .expect("reader");
    until_count(&alice, "(alice@", 1).await;
    let writer = alice
        .open("unread", &PipeOptions::default())
        .await
        .expect("writer");
    until_count(&alice, "(alice@", 2).await;
    for i in 0..2000 {
        writer.send_line(&format!("line {i}")).await.expect("send");
    }
    tokio::time::timeout(STEP, reader.close())
        .await
        .expect("close hung");
    tokio::time::timeout(STEP, writer.close())
        .await
        .expect("close hung");
    until_gone(&alice, "(alice@").await;
}

/// A pipe the server ends (here: its user is taken off the access list, then put back) is
/// reopened by the topic on its own, with the server's reason in the events, and a server
/// that keeps refusing is asked less and less often.
#[tokio::test]
async fn a_pipe_the_server_ends_is_reopened_with_its_reason() {
    let p = people();
    let hub = hub_for(&p).await;
    let alice = board(&hub, &p.alice, "alice").await;
    let listed = |users: &[&str]| PipeOptions {
        access: users.iter().map(|u| u.to_string()).collect(),
        ..Default::default()
    };
    let host = alice.open("p2p", &listed(&["bob"])).await.expect("host");
    until_listed(&alice, "(alice@").await;
    let kh = hub.known_hosts();
    let mut c = config(&hub, &p.bob, "bob", &kh);
    c.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(800),
        max_attempts: None,
    };
    let bob = Board::connect(c).await.expect("bob");
    let mut worker = bob
        .open("alice/p2p", &PipeOptions::default())
        .await
        .expect("worker");
    until_listed(&alice, "(bob@").await;

    // Alice hosts again without bob: his pipe is ended, and he is told why.
    let _again = alice.open("p2p", &listed(&["carol"])).await.expect("again");
    match next_event(&mut worker).await {
        TopicEvent::Disconnected { reason, .. } => assert!(
            reason.contains("exit status 1")
                && reason.contains("access revoked: alice took you off the access list"),
            "{reason}"
        ),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // While refused, the delays grow instead of a tight loop.
    let mut delays = Vec::new();
    while delays.len() < 4 {
        match next_event(&mut worker).await {
            TopicEvent::Disconnected { reason, retry_in } => {
                assert!(reason.contains("access denied: bob"), "{reason}");
                delays.push(retry_in);
            }
            TopicEvent::Reconnected => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert!(delays[3] > delays[0], "{delays:?}");

    // Bob is back on the list: his topic comes back by itself and lines flow again.
    drop(_again);
    let _back = alice
        .open("p2p", &listed(&["bob", "carol"]))
        .await
        .expect("back");
    until_listed(&alice, "(bob@").await;
    host.send_line("welcome back").await.expect("send");
    loop {
        match next_event(&mut worker).await {
            TopicEvent::Line(line) => {
                assert_eq!(line, "welcome back");
                break;
            }
            TopicEvent::Disconnected { .. } | TopicEvent::Reconnected => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
