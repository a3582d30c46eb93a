//! The `future-p2p bridge` child on stdin/stdout: a board it cannot reach, or one that
//! does not answer within --connect-timeout, is reported to the R session as a session
//! error frame (id 0, kind cluster), and the child exits.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2p_r::bridge::protocol::{ClientHello, ErrorKind, Reply, Request};
use p2p_r::frame::RFrameReader;

/// Runs a bridge for bob on the board at 127.0.0.1 with `args`, says hello, and returns
/// the one frame it answers with before it exits.
fn session_error(args: &[&str]) -> (ErrorKind, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_future-p2p"))
        .args([
            "bridge",
            "--cluster",
            "alice/p2p",
            "--host",
            "127.0.0.1",
            "--user",
            "bob",
        ])
        .args(args)
        .env_remove("FUTURE_P2P_BRIDGE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p bridge starts");
    let mut hello = BytesMut::new();
    Request::Hello(ClientHello {
        protocol: 1,
        r_version: "4.2.2".into(),
        future_version: "1.31.0".into(),
        api: "expr".into(),
        pid: 1,
    })
    .encode(&mut hello)
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The child may already have exited; the frame it wrote is what counts.
    let _ = stdin.write_all(&hello);
    let output = child.wait_with_output().expect("the bridge exits");
    assert!(!output.status.success());
    let mut stream = BytesMut::from(&output.stdout[..]);
    let reply = RFrameReader::default()
        .decode::<Reply>(&mut stream)
        .expect("a well-formed frame")
        .expect("one whole frame");
    match reply {
        Reply::Error { id, kind, message } => {
            assert_eq!(id, 0);
            (kind, message)
        }
        other => panic!("expected a session error, got {other:?}"),
    }
}

#[test]
fn an_unreachable_board_is_a_session_error_frame() {
    // Port 1 on loopback: nothing listens there.
    let (kind, message) = session_error(&["--ssh-args=-p 1"]);
    assert_eq!(kind, ErrorKind::Cluster);
    assert!(message.contains("cannot connect"), "{message}");
}

#[test]
fn a_board_that_never_answers_is_given_up_at_the_connect_timeout() {
    // Accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let (kind, message) =
        session_error(&[&format!("--ssh-args=-p {port}"), "--connect-timeout", "1"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(kind, ErrorKind::Cluster);
    assert!(
        message.contains(
            "reaching the board at 127.0.0.1 and joining cluster alice/p2p took longer than 1 s"
        ),
        "{message}"
    );
}
