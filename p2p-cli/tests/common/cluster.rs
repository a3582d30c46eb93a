//! A local future-p2p cluster of real processes, for the R suite and the R bench: the
//! `future-p2p` binary runs a hub on 127.0.0.1 (port 0) with users alice, bob, carol and
//! dave (keys from ssh-keygen), and alice hosts `alice/p2p` for bob and carol. The host
//! comes first: a member opening alice/p2p earlier would land on a topic of their own.
//! Workers are started by the R side, so that it decides when they exist.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The running hub and host; both are killed when it is dropped.
pub struct LocalCluster {
    children: Vec<Child>,
    ssh_args: BTreeMap<&'static str, String>,
    /// `FUTURE_P2P_*` settings of this cluster, for every future-p2p process and R.
    pub env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
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

/// A fresh Ed25519 key for `user`: its path and its `users` registry line.
fn keygen(dir: &Path, user: &str) -> (PathBuf, String) {
    let key = dir.join(user);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (openssh-client, .ci/setup/40-r.sh)");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("the public key");
    let mut words = public.split_whitespace();
    let (kind, base64) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    (key, format!("{user} {kind} {base64}\n"))
}

impl LocalCluster {
    /// Starts the hub and alice's host with the `future-p2p` binary `bin`.
    pub fn start(bin: &Path) -> LocalCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let state = dir.path().join("hub");
        std::fs::create_dir_all(&state).expect("the hub's state directory");
        let mut registry = String::new();
        let mut keys = BTreeMap::new();
        for user in ["alice", "bob", "carol", "dave"] {
            let (key, entry) = keygen(dir.path(), user);
            registry.push_str(&entry);
            keys.insert(user, key);
        }
        std::fs::write(state.join("users"), registry).expect("the user registry");

        let mut cluster = LocalCluster {
            children: Vec::new(),
            ssh_args: BTreeMap::new(),
            env: Vec::new(),
            _dir: dir,
        };
        let mut hub = Command::new(bin)
            .args(["hub", "--board", "127.0.0.1:0", "--mailbox", "127.0.0.1:0"])
            .args(["--relay", "127.0.0.1:0", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::piped())
            .spawn()
            .expect("future-p2p hub starts");
        let hub_lines = stdout_lines(&mut hub);
        cluster.children.push(hub);
        let printed = read_until(&hub_lines, Duration::from_secs(30), |line| line == "ready");
        let value = |key: &str| {
            printed
                .iter()
                .find_map(|line| line.strip_prefix(&format!("{key} ")))
                .unwrap_or_else(|| panic!("the hub printed no {key}: {printed:?}"))
                .to_owned()
        };
        let board = value("board");
        let port = board.rsplit_once(':').map(|(_, port)| port).unwrap_or("");
        let known_hosts = cluster._dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", value("host-key")),
        )
        .expect("known_hosts");
        for (user, key) in &keys {
            cluster.ssh_args.insert(
                user,
                format!(
                    "-p {port} -i {} -o UserKnownHostsFile={}",
                    key.display(),
                    known_hosts.display()
                ),
            );
        }
        let worker_library = cluster._dir.path().join("worker-lib");
        cluster.env = vec![
            ("FUTURE_P2P_HOST", "127.0.0.1".to_owned()),
            ("FUTURE_P2P_MAILBOX", value("mailbox")),
            ("FUTURE_P2P_RELAY", value("relay")),
            ("FUTURE_P2P_R_LIBRARY", worker_library.display().to_string()),
        ];

        let mut host = Command::new(bin)
            .args(["host", "--cluster", "p2p", "--users", "bob,carol"])
            .args(["--hello-interval", "2"])
            .arg(format!("--ssh-args={}", cluster.ssh_args("alice")))
            .envs(cluster.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .spawn()
            .expect("future-p2p host starts");
        let host_lines = stdout_lines(&mut host);
        cluster.children.push(host);
        read_until(&host_lines, Duration::from_secs(30), |line| {
            line.starts_with("hosting alice/p2p")
        });
        cluster
    }

    /// `--ssh-args` of `user` for this hub.
    pub fn ssh_args(&self, user: &str) -> &str {
        self.ssh_args.get(user).map(String::as_str).unwrap_or("")
    }

    /// An Rscript for carol on this cluster: `R_LIBS`, `R_FUTURE_P2P_*` and
    /// `FP2P_TEST_*` (the cluster; alice's, bob's and dave's ssh_args) set.
    pub fn rscript(&self, bin: &Path, r_library: &Path) -> Command {
        let mut r = Command::new("Rscript");
        r.env("R_LIBS", r_library)
            .env("R_FUTURE_P2P_BIN", bin)
            .env("R_FUTURE_P2P_SSH_ARGS", self.ssh_args("carol"))
            .env("FP2P_TEST_CLUSTER", "alice/p2p")
            .env("FP2P_TEST_WORKER_SSH_ARGS", self.ssh_args("bob"))
            .env("FP2P_TEST_DAVE_SSH_ARGS", self.ssh_args("dave"))
            .env("FP2P_TEST_ALICE_SSH_ARGS", self.ssh_args("alice"))
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        r
    }
}

/// Waits for `child` at most `timeout`, killing it then.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Rscript did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
