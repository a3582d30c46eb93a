//! The future.p2p R package against a real cluster: the `future-p2p` binary runs a hub on
//! 127.0.0.1 (port 0), alice hosts `alice/p2p` for bob and carol, and the testthat suite
//! in rpkg/tests/testthat runs in an R session as carol (it starts bob's workers itself,
//! to test a plan set before any worker exists). Any test failure fails this test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");

/// Child processes killed when the test ends, however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The lines a child prints on stdout, as they come.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one satisfies `done`, for at most `timeout`.
fn read_until(
    lines: &mpsc::Receiver<String>,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let finished = done(&line);
                seen.push(line);
                if finished {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no expected line within {timeout:?}; got {seen:?}");
}

fn keygen(dir: &Path, user: &str) -> (PathBuf, String) {
    let key = dir.join(user);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (Debian openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut words = public.split_whitespace();
    let entry = format!(
        "{user} {} {}\n",
        words.next().unwrap(),
        words.next().unwrap()
    );
    (key, entry)
}

#[test]
fn testthat_suite_on_a_real_cluster() {
    let r_library = common::r_library();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("hub");
    std::fs::create_dir_all(&state).unwrap();
    let mut registry = String::new();
    let mut keys = std::collections::BTreeMap::new();
    for user in ["alice", "bob", "carol", "dave"] {
        let (key, entry) = keygen(dir.path(), user);
        registry.push_str(&entry);
        keys.insert(user, key);
    }
    std::fs::write(state.join("users"), registry).unwrap();

    let mut children = Children(Vec::new());
    let mut hub = Command::new(BIN)
        .args([
            "hub",
            "--board",
            "127.0.0.1:0",
            "--mailbox",
            "127.0.0.1:0",
            "--relay",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .expect("future-p2p hub starts");
    let hub_lines = stdout_lines(&mut hub);
    children.0.push(hub);
    let printed = read_until(&hub_lines, Duration::from_secs(30), |line| line == "ready");
    let value = |key: &str| {
        printed
            .iter()
            .find_map(|line| line.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("the hub printed no {key}: {printed:?}"))
            .to_owned()
    };
    let board = value("board");
    let port = board.rsplit_once(':').unwrap().1.to_owned();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {}\n", value("host-key")),
    )
    .unwrap();
    let ssh_args = |user: &str| {
        format!(
            "-p {port} -i {} -o UserKnownHostsFile={}",
            keys[user].display(),
            known_hosts.display()
        )
    };
    let env = [
        ("FUTURE_P2P_HOST", "127.0.0.1".to_owned()),
        ("FUTURE_P2P_MAILBOX", value("mailbox")),
        ("FUTURE_P2P_RELAY", value("relay")),
        (
            "FUTURE_P2P_R_LIBRARY",
            dir.path().join("worker-lib").display().to_string(),
        ),
    ];

    // The host comes first: a member opening alice/p2p earlier would land elsewhere.
    let mut host = Command::new(BIN)
        .args([
            "host",
            "--cluster",
            "p2p",
            "--users",
            "bob,carol",
            "--hello-interval",
            "2",
        ])
        .arg(format!("--ssh-args={}", ssh_args("alice")))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .expect("future-p2p host starts");
    let host_lines = stdout_lines(&mut host);
    children.0.push(host);
    read_until(&host_lines, Duration::from_secs(30), |line| {
        line.starts_with("hosting alice/p2p")
    });

    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("rpkg/tests/testthat");
    let mut r = Command::new("Rscript")
        .args([
            "-e",
            "testthat::test_dir(Sys.getenv('FP2P_TEST_DIR'), reporter = 'summary', \
             load_package = 'none', stop_on_failure = TRUE)",
        ])
        .env("R_LIBS", r_library)
        .env("FP2P_TEST_DIR", &suite)
        .env("FP2P_TEST_CLUSTER", "alice/p2p")
        .env("R_FUTURE_P2P_BIN", BIN)
        .env("R_FUTURE_P2P_SSH_ARGS", ssh_args("carol"))
        .env("FP2P_TEST_WORKER_SSH_ARGS", ssh_args("bob"))
        .env("FP2P_TEST_DAVE_SSH_ARGS", ssh_args("dave"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .expect("Rscript starts");
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(status) = r.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = r.kill();
            let _ = r.wait();
            panic!("the testthat suite did not finish within 900 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "the testthat suite failed ({status}); see its output above"
    );
}
