//! A local future-p2p cluster of real processes, for the R suites and the R bench: the
//! `future-p2p` binary runs a hub on 127.0.0.1 (port 0) with users alice, bob, carol and
//! dave (keys from ssh-keygen), and alice hosts clusters on it for bob and carol, one per
//! suite ([`LocalCluster::host`]), so that suites sharing the hub never see each other's
//! workers. A host comes first: a member opening its cluster earlier would land on a topic
//! of their own. Workers are started by the R side, so that it decides when they exist.
//!
//! Every process of the cluster is tied to this test process: it runs under a shell that
//! kills it when its stdin, whose writing end only we hold, closes. That happens when the
//! cluster is dropped, or when this process exits, so a cluster shared by the tests of a
//! binary (kept in a `static`, never dropped) leaves nothing running either.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// The running hub and hosts; all are stopped when it is dropped.
pub struct LocalCluster {
    bin: PathBuf,
    children: Mutex<Vec<Child>>,
    ssh_args: BTreeMap<&'static str, String>,
    /// `FUTURE_P2P_*` settings of this cluster, for every future-p2p process and R.
    pub env: Vec<(&'static str, String)>,
    dir: tempfile::TempDir,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let children = self.children.get_mut().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut() {
            // Closing its stdin makes the shell stop the process and exit.
            drop(child.stdin.take());
        }
        for child in children.iter_mut() {
            let _ = child.wait();
        }
    }
}

/// The shell that runs `"$@"` until its stdin closes, then stops it.
const TIED: &str = r#""$@" & child=$!; read -r _; exec 2>/dev/null; kill "$child"; wait "$child""#;

/// `bin args...` tied to this process (see the module docs), stdout piped.
fn spawn_tied(bin: &Path, args: &[String], env: &[(&'static str, String)]) -> Child {
    Command::new("sh")
        .args(["-c", TIED, "sh"])
        .arg(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{} starts: {err}", bin.display()))
}

/// The lines a child prints on stdout, as they come. Its stdout is drained to the end
/// even when nobody listens any more, so that its prints never hit a closed pipe.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
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
    /// Starts the hub with the `future-p2p` binary `bin`; clusters come with [`host`](Self::host).
    pub fn start(bin: &Path) -> LocalCluster {
        LocalCluster::start_with(bin, &[])
    }

    /// [`start`](Self::start), with more `future-p2p hub` flags (`--pico-routing`).
    pub fn start_with(bin: &Path, hub_flags: &[&str]) -> LocalCluster {
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
            bin: bin.to_path_buf(),
            children: Mutex::new(Vec::new()),
            ssh_args: BTreeMap::new(),
            env: Vec::new(),
            dir,
        };
        let args = [
            "hub",
            "--board",
            "127.0.0.1:0",
            "--mailbox",
            "127.0.0.1:0",
            "--relay",
            "127.0.0.1:0",
            "--state-dir",
        ]
        .map(String::from);
        let mut args = args.to_vec();
        args.push(state.display().to_string());
        args.extend(hub_flags.iter().map(|flag| flag.to_string()));
        let mut hub = spawn_tied(bin, &args, &[]);
        let hub_lines = stdout_lines(&mut hub);
        cluster.children.get_mut().expect("unshared").push(hub);
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
        let known_hosts = cluster.dir.path().join("known_hosts");
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
        let worker_library = cluster.dir.path().join("worker-lib");
        cluster.env = vec![
            ("FUTURE_P2P_HOST", "127.0.0.1".to_owned()),
            ("FUTURE_P2P_MAILBOX", value("mailbox")),
            ("FUTURE_P2P_RELAY", value("relay")),
            ("FUTURE_P2P_R_LIBRARY", worker_library.display().to_string()),
        ];
        cluster
    }

    /// Has alice host cluster `name` for bob and carol; returns its full name `alice/NAME`.
    pub fn host(&self, name: &str) -> String {
        let args = [
            "host".to_owned(),
            "--cluster".to_owned(),
            name.to_owned(),
            "--users".to_owned(),
            "bob,carol".to_owned(),
            "--hello-interval".to_owned(),
            "2".to_owned(),
            format!("--ssh-args={}", self.ssh_args("alice")),
        ];
        let mut host = spawn_tied(&self.bin, &args, &self.env);
        let host_lines = stdout_lines(&mut host);
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(host);
        let qualified = format!("alice/{name}");
        read_until(&host_lines, Duration::from_secs(30), |line| {
            line.starts_with(&format!("hosting {qualified}"))
        });
        qualified
    }

    /// `--ssh-args` of `user` for this hub.
    pub fn ssh_args(&self, user: &str) -> &str {
        self.ssh_args.get(user).map(String::as_str).unwrap_or("")
    }

    /// An Rscript for carol on cluster `cluster` (see [`host`](Self::host)): `R_LIBS`
    /// (`r_libs`), `R_FUTURE_P2P_*` and `FP2P_TEST_*` (the cluster; alice's, bob's and
    /// dave's ssh_args) set.
    pub fn rscript(&self, r_libs: &std::ffi::OsStr, cluster: &str) -> Command {
        let mut r = Command::new("Rscript");
        r.env("R_LIBS", r_libs)
            .env("R_FUTURE_P2P_BIN", &self.bin)
            .env("R_FUTURE_P2P_SSH_ARGS", self.ssh_args("carol"))
            .env("FP2P_TEST_CLUSTER", cluster)
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
            panic!("the child did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
