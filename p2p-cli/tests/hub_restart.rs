//! Issue 13: a cluster survives its hub. Real processes: `future-p2p hub`, alice's
//! `future-p2p host`, two `future-p2p worker --exec cat` of bob's, and carol's Rust client
//! (a `Scheduler` in this test). Mid-run the hub is killed with SIGKILL and started again on
//! the same ports and state directory: every peer reconnects on its own, the cluster is the
//! same one (the access list came back from the state directory), and every task finishes
//! with its own result. The stall (the longest gap between two completed tasks) is printed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_proto::id::{ClusterName, TopicStyle};
use p2p_scheduler::{Scheduler, SchedulerOptions};
use p2p_transport::board::{Board, BoardConfig, join_cluster};
use p2p_transport::wormhole::WormholeConfig;

const TASKS: usize = 300;
const KILL_AFTER: usize = 100;

/// Children killed (and reaped) on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn keygen(dir: &Path, user: &str) -> (PathBuf, String) {
    let key = dir.join(user);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let words: Vec<&str> = public.split_whitespace().collect();
    (key, format!("{user} {} {}\n", words[0], words[1]))
}

/// Starts `future-p2p hub` and reads the addresses it prints.
fn start_hub(bin: &Path, state: &Path, addrs: [&str; 3]) -> (Child, [String; 3]) {
    let mut hub = Command::new(bin)
        .args([
            "hub",
            "--board",
            addrs[0],
            "--mailbox",
            addrs[1],
            "--relay",
            addrs[2],
        ])
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .spawn()
        .expect("future-p2p hub starts");
    let stdout = hub.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !printed.iter().any(|l: &String| l == "ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        printed.push(rx.recv_timeout(left).expect("the hub says ready"));
    }
    let value = |key: &str| {
        printed
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {printed:?}"))
            .to_owned()
    };
    (hub, [value("board"), value("mailbox"), value("relay")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_finishes_across_a_hub_restart() {
    p2p_testkit::init_tracing();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_future-p2p"));
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("hub");
    std::fs::create_dir_all(&state).expect("state dir");
    let mut registry = String::new();
    let mut keys = std::collections::BTreeMap::new();
    for user in ["alice", "bob", "carol"] {
        let (key, line) = keygen(dir.path(), user);
        registry.push_str(&line);
        keys.insert(user, key);
    }
    std::fs::write(state.join("users"), registry).expect("users");

    let (hub, [board_addr, mailbox, relay]) =
        start_hub(&bin, &state, ["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"]);
    let mut procs = Procs(vec![hub]);
    // The addresses to restart on: the same ones.
    let mailbox_addr = mailbox
        .trim_start_matches("ws://")
        .trim_end_matches("/v1")
        .to_owned();
    let relay_addr = relay.trim_start_matches("tcp://").to_owned();
    let port = board_addr.rsplit(':').next().expect("port").to_owned();
    let known_hosts = dir.path().join("known_hosts");
    let ssh_args = |user: &str| {
        format!(
            "-p {port} -l {user} -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
            keys[user].display(),
            known_hosts.display()
        )
    };
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let peer = |args: &[&str], user: &str, log: &str| {
        let log = std::fs::File::create(logs.join(log)).expect("log file");
        Command::new(&bin)
            .args(args)
            .env("FUTURE_P2P_HOST", "127.0.0.1")
            .env("FUTURE_P2P_SSH_ARGS", ssh_args(user))
            .env("FUTURE_P2P_MAILBOX", &mailbox)
            .env("FUTURE_P2P_RELAY", &relay)
            .env("SSH_AUTH_SOCK", "")
            .env(
                "RUST_LOG",
                std::env::var("PEER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("a future-p2p peer starts")
    };
    procs.0.push(peer(
        &["host", "--cluster", "p2p", "--users", "bob,carol"],
        "alice",
        "host.log",
    ));
    for n in 0..2 {
        procs.0.push(peer(
            &["worker", "--cluster", "alice/p2p", "--exec", "cat"],
            "bob",
            &format!("worker{n}.log"),
        ));
    }

    // carol's client, in this process.
    let words: Vec<String> = ssh_args("carol")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut config = BoardConfig::from_ssh_args("127.0.0.1", &words).expect("ssh args");
    config.agent = None;
    let cluster: ClusterName = "alice/p2p".parse().expect("cluster");
    // The host may not be up yet: its topic refuses carol until it is, and her topic
    // retries on its own.
    let board = Board::connect(config).await.expect("carol's board");
    let (me, lines) = join_cluster(&board, &cluster, None, TopicStyle::FutureP2p)
        .await
        .expect("join");
    let wormhole = WormholeConfig::new(mailbox.clone(), relay.clone());
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, wormhole));
    let mut workers = scheduler.workers();
    tokio::time::timeout(Duration::from_secs(120), async {
        while workers.borrow_and_update().len() < 2 {
            workers.changed().await.expect("scheduler runs");
        }
    })
    .await
    .expect("both workers are seen");

    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..TASKS {
        let payload = Bytes::from(format!("task {i:05}"));
        let handle = scheduler
            .submit(format!("restart-{i}").parse().expect("id"), payload.clone())
            .await
            .expect("submit");
        let done = done_tx.clone();
        tokio::spawn(async move {
            let result = handle.await;
            let _ = done.send((payload, result, Instant::now()));
        });
    }
    drop(done_tx);

    let mut completions = Vec::with_capacity(TASKS);
    let mut killed_at = None;
    let all = async {
        while let Some((payload, result, at)) = done_rx.recv().await {
            let value = result.unwrap_or_else(|e| panic!("{payload:?} failed: {e}"));
            assert_eq!(value, payload, "a task got another task's result");
            completions.push(at);
            if completions.len() == KILL_AFTER {
                let hub = &mut procs.0[0];
                hub.kill().expect("SIGKILL the hub");
                let _ = hub.wait();
                killed_at = Some(Instant::now());
                let (hub, again) = tokio::task::block_in_place(|| {
                    start_hub(&bin, &state, [&board_addr, &mailbox_addr, &relay_addr])
                });
                assert_eq!(again, [board_addr.clone(), mailbox.clone(), relay.clone()]);
                procs.0[0] = hub;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .is_err()
    {
        for log in ["host.log", "worker0.log", "worker1.log"] {
            let text = std::fs::read_to_string(logs.join(log)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- {log} (last lines, newest first)\n{}", tail.join("\n"));
        }
        panic!(
            "{} of {TASKS} tasks finished (hub killed: {}; workers the client sees: {})",
            completions.len(),
            killed_at.is_some(),
            scheduler.workers().borrow().len()
        );
    }
    assert_eq!(completions.len(), TASKS);
    let killed_at = killed_at.expect("the hub was killed");
    let after: Vec<&Instant> = completions.iter().filter(|t| **t > killed_at).collect();
    let first_after = after.first().map(|t| t.duration_since(killed_at));
    let mut gaps: Vec<Duration> = completions
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    gaps.sort();
    eprintln!(
        "hub restart: {TASKS}/{TASKS} tasks finished; first completion {:.2} s after the kill; \
         longest gap between completions {:.2} s (median {:.1} ms)",
        first_after.unwrap_or_default().as_secs_f64(),
        gaps.last().copied().unwrap_or_default().as_secs_f64(),
        gaps[gaps.len() / 2].as_secs_f64() * 1e3,
    );
}
