//! Our mailbox server and transit relay with the reference clients (Python `wormhole`,
//! `wormhole-william`) and with our own client, plus abuse: floods, limits, stray sockets.

use p2p_testkit::peers;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use bytes::Bytes;
use futures::StreamExt;
use p2p_hub::mailbox::{MailboxConfig, MailboxServer};
use p2p_hub::relay::{RelayConfig, TransitRelay};
use p2p_testkit::peers::{Proc, payload, python_relay_arg, tool};
use p2p_transport::wormhole::{
    TransferError, TransferOptions, TransitMode, receive_bytes, receive_file, send_bytes, send_file,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(60);

fn options() -> TransferOptions {
    TransferOptions {
        timeout: LIMIT,
        ..TransferOptions::default()
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Python CLI with `--no-listen`, so the bytes must go through the relay under test.
fn python(mailbox: &str, relay: &str, args: &[&str], file: Option<&Path>) -> Proc {
    let mut cmd = Command::new(tool("wormhole"));
    cmd.args(["--relay-url", mailbox, "--transit-helper"])
        .arg(python_relay_arg(relay))
        .args(args);
    if let Some(file) = file {
        cmd.arg(file);
    }
    Proc::spawn("python wormhole", cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_python_through_our_mailbox_and_relay() {
    p2p_testkit::init_tracing();
    let (mailbox, relay, _) = peers::our_servers().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("in.bin");
    let data = payload(200_000, 10);
    std::fs::write(&src, &data).expect("write");
    let out = dir.path().join("out.bin");
    let code = "4821-5be0c2f91a7d-f";
    let sender = python(
        &mailbox.url(),
        &relay.url(),
        &[
            "send",
            "--hide-progress",
            "--no-qr",
            "--no-listen",
            "--code",
            code,
        ],
        Some(&src),
    );
    // `-o OUT` must precede the code, so the receiver is built by hand.
    let mut cmd = Command::new(tool("wormhole"));
    cmd.args(["--relay-url", &mailbox.url(), "--transit-helper"])
        .arg(python_relay_arg(&relay.url()))
        .args([
            "receive",
            "--hide-progress",
            "--no-listen",
            "--accept-file",
            "-o",
        ])
        .arg(&out)
        .arg(code);
    let receiver = Proc::spawn("python wormhole receive", cmd);
    let receiver = peers::wait_success(receiver, LIMIT).await;
    let sender = peers::wait_success(sender, LIMIT).await;
    assert_eq!(std::fs::read(&out).expect("out"), data);
    assert!(
        receiver.output().contains("relay") || sender.output().contains("relay"),
        "expected a relayed transfer:\n{}\n{}",
        sender.output(),
        receiver.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wormhole_william_receives_from_python_via_our_servers() {
    p2p_testkit::init_tracing();
    let (mailbox, relay, _) = peers::our_servers().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("future.rds");
    let data = payload(120_000, 11);
    std::fs::write(&src, &data).expect("write");
    let code = "3307-9ac4e18b02d5-f";
    let sender = python(
        &mailbox.url(),
        &relay.url(),
        &["send", "--hide-progress", "--no-qr", "--code", code],
        Some(&src),
    );
    let recv_dir = dir.path().join("ww");
    std::fs::create_dir(&recv_dir).expect("mkdir");
    let receiver = peers::william_receive(&mailbox.url(), code, &recv_dir);
    peers::wait_success(receiver, LIMIT).await;
    peers::wait_success(sender, LIMIT).await;
    assert_eq!(
        std::fs::read(recv_dir.join("future.rds")).expect("received"),
        data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_reference_clients_via_our_servers() {
    p2p_testkit::init_tracing();
    let (mailbox, relay, config) = peers::our_servers().await;
    let dir = tempfile::tempdir().expect("tempdir");

    // Rust -> wormhole-william. About one run in twenty, magic-wormhole.rs and
    // wormhole-william derive different PAKE keys (both sides report a wrong code; our
    // servers only relay opaque messages, and Python peers never hit it), so this leg
    // retries with a fresh code; a persistent failure still fails the test.
    let data = Bytes::from(payload(90_000, 12));
    let mut attempts = 0;
    let ww_dir = loop {
        attempts += 1;
        let code = peers::fresh_code().result_code();
        let ww_dir = dir.path().join(format!("ww{attempts}"));
        std::fs::create_dir(&ww_dir).expect("mkdir");
        let ww = peers::william_receive(&mailbox.url(), code.as_str(), &ww_dir);
        match send_bytes(&config, &code, "result.rds", data.clone(), &options()).await {
            Ok(()) => {
                peers::wait_success(ww, LIMIT).await;
                break ww_dir;
            }
            Err(TransferError::WrongCode) if attempts < 3 => {
                tracing::warn!("PAKE mismatch with wormhole-william, retrying with a new code");
            }
            Err(error) => panic!("send to wormhole-william: {error}\n{}", ww.output()),
        }
    };
    assert_eq!(
        std::fs::read(ww_dir.join("result.rds")).expect("ww file"),
        data
    );

    // Python -> Rust.
    let code = peers::fresh_code().future_code();
    let src = dir.path().join("from-python.bin");
    std::fs::write(&src, payload(70_000, 13)).expect("write");
    let sender = python(
        &mailbox.url(),
        &relay.url(),
        &[
            "send",
            "--hide-progress",
            "--no-qr",
            "--code",
            code.as_str(),
        ],
        Some(&src),
    );
    let got = receive_bytes(&config, &code, &options())
        .await
        .expect("receive");
    assert_eq!(got.data, std::fs::read(&src).expect("src"));
    peers::wait_success(sender, LIMIT).await;

    // Rust -> Python.
    let code = peers::fresh_code().future_code();
    let out = dir.path().join("to-python.bin");
    let mut cmd = Command::new(tool("wormhole"));
    cmd.args(["--relay-url", &mailbox.url(), "--transit-helper"])
        .arg(python_relay_arg(&relay.url()))
        .args(["receive", "--hide-progress", "--accept-file", "-o"])
        .arg(&out)
        .arg(code.as_str());
    let receiver = Proc::spawn("python wormhole receive", cmd);
    send_file(&config, &code, &src, &options())
        .await
        .expect("send to python");
    peers::wait_success(receiver, LIMIT).await;
    assert_eq!(
        std::fs::read(&out).expect("out"),
        std::fs::read(&src).expect("src")
    );

    // Rust -> Rust, receiver first, into a file.
    // Rust peers on one host meet through the relay: magic-wormhole 0.8.1 can panic when
    // both try direct candidates and one closes the loser ("socket must be IP"), and
    // Rust-to-Rust direct attempts only add that race here (loopback is never offered).
    let mut config = config;
    config.transit = TransitMode::RelayOnly;
    let code = peers::fresh_code().future_code();
    let dest = dir.path().join("rust.bin");
    let recv = {
        let (config, code, dest) = (config.clone(), code.clone(), dest.clone());
        tokio::spawn(async move { receive_file(&config, &code, &dest, &options()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let data = Bytes::from(payload(1 << 20, 14));
    send_bytes(&config, &code, "big.bin", data.clone(), &options())
        .await
        .expect("rust send");
    let got = recv.await.expect("join").expect("rust receive");
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(std::fs::read(&dest).expect("dest"), data);
}

type Ws = async_tungstenite::WebSocketStream<async_tungstenite::tokio::ConnectStream>;

async fn ws_connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(LIMIT, async_tungstenite::tokio::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

async fn next_json(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("frame in time")
        {
            Some(Ok(Message::Text(text))) => {
                return Some(serde_json::from_str(text.as_str()).expect("server JSON"));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_flood_is_answered_and_the_server_keeps_serving() {
    p2p_testkit::init_tracing();
    let (mailbox, _relay, config) = peers::our_servers().await;
    let mut ws = ws_connect(&mailbox.url()).await;
    assert_eq!(
        next_json(&mut ws).await.expect("welcome")["type"],
        "welcome"
    );
    const FLOOD: usize = 2000;
    for i in 0..FLOOD {
        let frame = match i % 4 {
            0 => Message::text(format!("{{not json {i}")),
            1 => Message::binary(vec![0xff, 0xfe, i as u8]),
            2 => Message::text("[1,2,3]"),
            _ => Message::text(r#"{"type":"claim"}"#),
        };
        ws.send(frame).await.expect("send garbage");
    }
    // An oversized frame gets the protocol's error too.
    ws.send(Message::text("x".repeat(100 * 1024)))
        .await
        .expect("send big");
    let mut errors = 0;
    while errors < FLOOD + 1 {
        let frame = next_json(&mut ws)
            .await
            .expect("server must answer every frame");
        if frame["type"] == "error" {
            errors += 1;
        }
    }
    // The server still works for everyone, including this connection.
    ws.send(Message::text(r#"{"type":"ping","ping":42}"#))
        .await
        .expect("ping");
    loop {
        let frame = next_json(&mut ws).await.expect("pong");
        if frame["type"] == "pong" {
            assert_eq!(frame["pong"], 42);
            break;
        }
    }
    // Rust peers on one host meet through the relay: magic-wormhole 0.8.1 can panic when
    // both try direct candidates and one closes the loser ("socket must be IP"), and
    // Rust-to-Rust direct attempts only add that race here (loopback is never offered).
    let mut config = config;
    config.transit = TransitMode::RelayOnly;
    let code = peers::fresh_code();
    let recv = {
        let (config, code) = (config.clone(), code.clone());
        tokio::spawn(async move { receive_bytes(&config, &code, &options()).await })
    };
    send_bytes(
        &config,
        &code,
        "x",
        Bytes::from_static(b"still alive"),
        &options(),
    )
    .await
    .expect("send after flood");
    assert_eq!(recv.await.expect("join").expect("recv").data, "still alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mailbox_connection_gets_error_and_is_closed() {
    p2p_testkit::init_tracing();
    let config = MailboxConfig {
        idle_timeout: Duration::from_millis(300),
        ..MailboxConfig::default()
    };
    let mailbox = MailboxServer::bind(loopback(), config).await.expect("bind");
    let mut ws = ws_connect(&mailbox.url()).await;
    assert_eq!(
        next_json(&mut ws).await.expect("welcome")["type"],
        "welcome"
    );
    let error = next_json(&mut ws).await.expect("idle error");
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"], "idle timeout");
    assert!(
        next_json(&mut ws).await.is_none(),
        "connection must be closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_pairs_by_token_and_refuses_strays() {
    p2p_testkit::init_tracing();
    let config = RelayConfig {
        pairing_timeout: Duration::from_millis(500),
        max_connections: 3,
        ..RelayConfig::default()
    };
    let relay = TransitRelay::bind(loopback(), config).await.expect("bind");
    let addr = relay.local_addr();
    let token = "ab".repeat(32);

    let mut a = tokio::net::TcpStream::connect(addr).await.expect("a");
    let mut b = tokio::net::TcpStream::connect(addr).await.expect("b");
    a.write_all(format!("please relay {token} for side 1111111111111111\n").as_bytes())
        .await
        .expect("a hs");
    b.write_all(format!("please relay {token} for side 2222222222222222\n").as_bytes())
        .await
        .expect("b hs");
    let mut ok = [0u8; 3];
    for s in [&mut a, &mut b] {
        tokio::time::timeout(LIMIT, s.read_exact(&mut ok))
            .await
            .expect("ok in time")
            .expect("ok");
        assert_eq!(&ok, b"ok\n");
    }
    a.write_all(b"hello through the relay")
        .await
        .expect("write");
    let mut got = [0u8; 23];
    tokio::time::timeout(LIMIT, b.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&got, b"hello through the relay");

    // A bad handshake is refused.
    let mut bad = tokio::net::TcpStream::connect(addr).await.expect("bad");
    bad.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
    let mut reply = String::new();
    tokio::time::timeout(LIMIT, bad.read_to_string(&mut reply))
        .await
        .expect("closed")
        .expect("read");
    assert_eq!(reply, "bad handshake\n");

    // An unpaired connection times out (closed without `ok`), bounded by pairing_timeout.
    let mut lonely = tokio::net::TcpStream::connect(addr).await.expect("lonely");
    lonely
        .write_all(
            format!(
                "please relay {} for side 3333333333333333\n",
                "cd".repeat(32)
            )
            .as_bytes(),
        )
        .await
        .expect("hs");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), lonely.read_to_end(&mut rest))
        .await
        .expect("unpaired connection must be closed")
        .expect("read");
    assert!(rest.is_empty());

    // The limit: a and b hold two slots; two more connections exceed max_connections = 3.
    let _c = tokio::net::TcpStream::connect(addr).await.expect("c");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut d = tokio::net::TcpStream::connect(addr).await.expect("d");
    let mut reply = String::new();
    tokio::time::timeout(LIMIT, d.read_to_string(&mut reply))
        .await
        .expect("closed")
        .expect("read");
    assert_eq!(reply, "error: relay full\n");
}
