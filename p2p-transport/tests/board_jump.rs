//! The Board client through a real OpenSSH `sshd` used as a `-J` jump host.
//!
//! The test starts Debian's sshd as root on 127.0.0.1 with its own config, host key and
//! authorized_keys in a tempdir, and kills it when done.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use p2p_testkit::openssh::*;
use p2p_transport::board::known_hosts::HostKeyError;
use p2p_transport::board::{Board, BoardConfig, BoardError, PipeOptions, TopicEvent};
use tokio::process::{Child, Command};

struct Sshd {
    _child: Child,
    port: u16,
    host_key: String,
}

async fn start_sshd(dir: &Path, authorized: &Path) -> Sshd {
    let sshd = require("sshd");
    // sshd only runs as root; say so plainly instead of failing on its privilege checks.
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("run id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the jump-host test starts sshd and must run as root (as .ci/run does)"
    );
    std::fs::create_dir_all("/run/sshd")
        .expect("create /run/sshd (sshd's privilege separation dir)");
    let host_key = keygen(dir, "ssh_host_ed25519_key");
    std::fs::copy(
        authorized.with_extension("pub"),
        dir.join("authorized_keys"),
    )
    .expect("authorized_keys");
    // Reserve a port on 127.0.0.1 by binding port 0, then hand it to sshd.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n\
             UsePAM no\nPidFile {dir}/sshd.pid\n",
            hk = host_key.display(),
            dir = dir.display(),
        ),
    )
    .expect("sshd_config");
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sshd");
    let ready = async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(STEP, ready)
        .await
        .expect("sshd did not start listening");
    Sshd {
        _child: child,
        port,
        host_key: public_line(&host_key),
    }
}

fn config(jump: &str, hub: &TestBoard, key: &Path, known_hosts: &Path) -> BoardConfig {
    let args = [
        "-J".to_owned(),
        jump.to_owned(),
        "-p".to_owned(),
        hub.port().to_string(),
        "-i".to_owned(),
        key.display().to_string(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ];
    let mut c = BoardConfig::from_ssh_args("bob@127.0.0.1", &args).expect("ssh args");
    c.agent = None;
    c
}

async fn line(topic: &mut p2p_transport::board::Topic) -> String {
    match tokio::time::timeout(STEP, topic.recv())
        .await
        .expect("no event")
        .expect("ended")
    {
        TopicEvent::Line(l) => l,
        other => panic!("expected a line, got {other:?}"),
    }
}

#[tokio::test]
async fn board_through_openssh_jump_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = keygen(dir.path(), "alice");
    let bob = keygen(dir.path(), "bob");
    let sshd_dir = dir.path().join("sshd");
    std::fs::create_dir_all(&sshd_dir).expect("sshd dir");
    let sshd = start_sshd(&sshd_dir, &bob).await;
    let hub = TestBoard::start(&[("alice", &alice), ("bob", &bob)]).await;

    // Without the jump host's key in known_hosts the jump is refused.
    let only_hub = hub.known_hosts();
    let jump = format!("root@127.0.0.1:{}", sshd.port);
    match Board::connect(config(&jump, &hub, &bob, &only_hub)).await {
        Err(BoardError::HostKey(HostKeyError::Unknown { host, .. })) => {
            assert_eq!(host, format!("[127.0.0.1]:{}", sshd.port));
        }
        other => panic!("unknown jump host accepted: {other:?}"),
    }

    let kh = dir.path().join("known_hosts");
    let hub_line = std::fs::read_to_string(&only_hub).expect("hub kh");
    std::fs::write(
        &kh,
        format!("{hub_line}[127.0.0.1]:{} {}\n", sshd.port, sshd.host_key),
    )
    .expect("kh");

    let host_board = {
        let args = [
            "-p".to_owned(),
            hub.port().to_string(),
            "-i".to_owned(),
            alice.display().to_string(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", kh.display()),
        ];
        let mut c = BoardConfig::from_ssh_args("alice@127.0.0.1", &args).expect("args");
        c.agent = None;
        Board::connect(c).await.expect("alice connects directly")
    };
    let opts = PipeOptions {
        access: vec!["bob".into()],
        ..Default::default()
    };
    let mut host = host_board.open("p2p", &opts).await.expect("host topic");

    // One hop, then two hops (through the same sshd twice).
    for jump in [jump.clone(), format!("{jump},{jump}")] {
        let bob_board = tokio::time::timeout(STEP, Board::connect(config(&jump, &hub, &bob, &kh)))
            .await
            .expect("connect through the jump host timed out")
            .unwrap_or_else(|e| panic!("connect through {jump}: {e}"));
        assert_eq!(bob_board.user().await.expect("user").name, "bob");
        let mut worker = bob_board
            .open("alice/p2p", &PipeOptions::default())
            .await
            .expect("worker");
        let wait_listed = async {
            while !host_board.ls().await.expect("ls").contains("(bob@") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(STEP, wait_listed)
            .await
            .expect("bob never joined");
        worker
            .send_line(&format!("hello via {jump}"))
            .await
            .expect("send");
        assert_eq!(line(&mut host).await, format!("hello via {jump}"));
        host.send_line("ack").await.expect("send");
        assert_eq!(line(&mut worker).await, "ack");
        worker.close().await;
        let wait_left = async {
            while host_board.ls().await.expect("ls").contains("(bob@") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(STEP, wait_left)
            .await
            .expect("bob never left");
    }
}
