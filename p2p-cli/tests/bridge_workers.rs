//! Workers are known at once: a `future-p2p bridge` (what `plan()` starts for R) that joins
//! a cluster whose workers are idle and have long said their periodic hello tells R the
//! right number of worker slots within a second, because the bridge's hello makes them
//! say hello again (their next periodic one is 30 s away).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use p2p_proto::frame::RemoteError;
use p2p_proto::id::ClusterName;
use p2p_r::bridge::protocol::{ClientHello, Reply, Request};
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
    let known_hosts = dir.path().join("known_hosts");
    let port = local.hub.board_addr().port();
    let host_key = local.hub.board.host_key().to_openssh().unwrap();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_key}\n")).unwrap();
    let ssh_args = format!(
        "-p {port} -i {} -o UserKnownHostsFile={}",
        local.key("dave").unwrap().display(),
        known_hosts.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_future-p2p"))
        .args(["bridge", "--cluster", "alice/p2p", "--host", "127.0.0.1"])
        .arg(format!("--ssh-args={ssh_args}"))
        .args(["--user", "dave", "--mailbox", &local.hub.mailbox_url()])
        .args(["--relay", &local.hub.relay_url()])
        .env_remove("FUTURE_P2P_BRIDGE_TOKEN")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p bridge starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
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
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let hello = Request::Hello(ClientHello {
        protocol: 1,
        r_version: "4.2.2".into(),
        future_version: "1.31.0".into(),
        api: "expr".into(),
        pid: 1,
    });
    stdin.write_all(&frame(hello)).unwrap();
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
