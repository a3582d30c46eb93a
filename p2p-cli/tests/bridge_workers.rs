//! A `future-p2p bridge` (what `plan()` starts for R) with workers in this process.
//!
//! Workers are known at once: a bridge that joins a cluster whose workers are idle and
//! have long said their periodic hello tells R the right number of worker slots within a
//! second, because the bridge's hello makes them say hello again (their next periodic
//! one is 30 s away). Large payloads are spilled to a file and sent from it, to every
//! attempt.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::id::ClusterName;
use p2p_proto::protocols::R_PAYLOAD;
use p2p_r::bridge::protocol::{ClientHello, Reply, Request, UploadLine};
use p2p_r::frame::RFrameReader;
use p2p_testkit::local::LocalHub;
use p2p_worker::{FnExecutor, Job};

fn echo(job: Job) -> Result<Bytes, RemoteError> {
    Ok(job.payload)
}

fn frame(request: Request) -> BytesMut {
    let mut bytes = BytesMut::new();
    request.encode(&mut bytes).unwrap();
    bytes
}

fn hello() -> Request {
    Request::Hello(ClientHello {
        protocol: 1,
        r_version: "4.2.2".into(),
        future_version: "1.31.0".into(),
        api: "expr".into(),
        pid: 1,
    })
}

/// `future-p2p bridge` for alice/p2p as dave, its known hosts in `dir`.
fn bridge(local: &LocalHub, dir: &Path) -> Command {
    let known_hosts = dir.join("known_hosts");
    let port = local.hub.board_addr().port();
    let host_key = local.hub.board.host_key().to_openssh().unwrap();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_key}\n")).unwrap();
    let ssh_args = format!(
        "-p {port} -i {} -o UserKnownHostsFile={}",
        local.key("dave").unwrap().display(),
        known_hosts.display()
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_future-p2p"));
    command
        .args(["bridge", "--cluster", "alice/p2p", "--host", "127.0.0.1"])
        .arg(format!("--ssh-args={ssh_args}"))
        .args(["--user", "dave", "--mailbox", &local.hub.mailbox_url()])
        .args(["--relay", &local.hub.relay_url()])
        .env_remove("FUTURE_P2P_BRIDGE_TOKEN")
        .env_remove("SSH_AUTH_SOCK");
    command
}

/// The replies decoded from `input`, each with when it came, on a thread of their own.
fn replies_from(mut input: impl Read + Send + 'static) -> mpsc::Receiver<(Instant, Reply)> {
    let (replies_tx, replies) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = RFrameReader::default();
        let mut buffer = BytesMut::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Ok(Some(reply)) = reader.decode::<Reply>(&mut buffer) {
                if replies_tx.send((Instant::now(), reply)).is_err() {
                    return;
                }
            }
            match input.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    });
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_counts_every_idle_slot_within_a_second() {
    let local = LocalHub::start(&["alice", "bob", "carol", "dave"])
        .await
        .unwrap();
    let (_host, _, _topic) = local
        .host("alice", "p2p", &["bob", "carol", "dave"])
        .await
        .unwrap();
    let cluster: ClusterName = "alice/p2p".parse().unwrap();
    // Two workers, three slots, both idle; their first hellos go out before the bridge
    // is there to read them.
    let _bob = local
        .worker("bob", &cluster, FnExecutor::new(echo), |o| o.core.slots = 2)
        .await
        .unwrap();
    let _carol = local
        .worker("carol", &cluster, FnExecutor::new(echo), |_| {})
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dir = tempfile::tempdir().unwrap();
    let mut child = bridge(&local, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p bridge starts");
    let mut stdin = child.stdin.take().unwrap();
    let replies = replies_from(child.stdout.take().unwrap());
    stdin.write_all(&frame(hello())).unwrap();
    let next = |what: &str| {
        replies
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no reply from the bridge: {what}"))
    };
    let (joined, reply) = next("hello");
    assert!(matches!(reply, Reply::Hello(_)), "{reply:?}");
    // What nbrOfWorkers() asks right after plan().
    stdin.write_all(&frame(Request::Poll { id: 0 })).unwrap();
    let (answered, reply) = next("the worker counts");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply, Reply::Workers { total: 3, free: 3 });
    let took = answered - joined;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// A payload larger than the bridge keeps in memory is spilled to a file as R uploads it,
/// and read from there for every worker it goes to: the first attempt crashes, the retry
/// gets the same bytes, and the result is the payload echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilled_payload_reaches_the_worker_whole_and_again_on_a_retry() {
    let local = LocalHub::start(&["alice", "bob", "dave"]).await.unwrap();
    let (_host, _, _topic) = local.host("alice", "p2p", &["bob", "dave"]).await.unwrap();
    let cluster: ClusterName = "alice/p2p".parse().unwrap();
    // Over the bridge's 4 MiB in memory, not a multiple of a record.
    let payload: Bytes = (0..6_000_001u32).map(|i| (i % 251) as u8).collect();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let executor = {
        let (payload, attempts) = (payload.clone(), Arc::clone(&attempts));
        FnExecutor::new(move |job: Job| {
            let mut attempts = attempts.lock().unwrap();
            attempts.push(job.payload == payload);
            if attempts.len() == 1 {
                return Err(RemoteError {
                    kind: RemoteErrorKind::Crashed,
                    message: "the first attempt dies".into(),
                });
            }
            Ok(job.payload)
        })
    };
    let _bob = local
        .worker("bob", &cluster, executor, |o| {
            o.core.native_format = Some(R_PAYLOAD.to_owned());
        })
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let spill = tempfile::tempdir().unwrap();
    let token = "spill-test-token";
    let mut child = bridge(&local, dir.path())
        .args(["--loopback", token])
        .env("TMPDIR", spill.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p bridge starts");
    // Held open: the bridge ends when its stdin closes.
    let _stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("not a port line: {line:?}"));
    let mut session = TcpStream::connect(("127.0.0.1", port)).unwrap();
    session.write_all(format!("{token}\n").as_bytes()).unwrap();
    let replies = replies_from(session.try_clone().unwrap());
    session.write_all(&frame(hello())).unwrap();
    let next = |what: &str| {
        replies
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no reply from the bridge: {what}"))
            .1
    };
    let reply = next("hello");
    assert!(matches!(reply, Reply::Hello(_)), "{reply:?}");

    let mut upload = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let announced = UploadLine {
        token: token.into(),
        id: 1,
        size_hint: payload.len() as u64,
    };
    upload.write_all(announced.to_line().as_bytes()).unwrap();
    upload.write_all(&payload).unwrap();
    drop(upload);
    let submit = Request::SubmitUploaded {
        id: 1,
        label: "big".into(),
    };
    session.write_all(&frame(submit)).unwrap();
    let result = loop {
        match next("the result") {
            Reply::Result { id: 1, result } => break result,
            Reply::Error { id: 1, message, .. } => panic!("the future failed: {message}"),
            _ => {}
        }
    };
    // Nothing left under a name in the spill directory, while the bridge still runs.
    let left = std::fs::read_dir(spill.path()).unwrap().count();
    let _ = child.kill();
    let _ = child.wait();
    assert!(result == payload, "the result is not the payload");
    assert_eq!(*attempts.lock().unwrap(), [true, true]);
    assert_eq!(left, 0);
}
