//! A cluster of real OS processes: the `future-p2p` program as hub, host and workers, each
//! a child process that can be SIGKILLed, with users and keys made here. Clients join
//! in-process with [`ProcessCluster::board_config`]. The chaos test and its bench drive
//! it; every child is killed when the cluster is dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use thiserror::Error;

use p2p_hub::board::hostkey::{HostKeyError, generate_key_file};
use p2p_transport::board::{BoardConfig, BoardError};
use p2p_transport::wormhole::{TransitMode, WormholeConfig};

/// Why the process cluster could not be set up.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("files of the process cluster: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] HostKeyError),
    #[error("encoding a key: {0}")]
    KeyEncoding(String),
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error("{what} printed no {expected:?} within {waited:?}; it said: {said:?}")]
    NotReady {
        what: String,
        expected: String,
        waited: Duration,
        said: Vec<String>,
    },
    #[error("no user {0:?} in this cluster")]
    UnknownUser(String),
}

/// The `future-p2p` program a benchmark example runs: `FUTURE_P2P_BIN`, or the one built
/// into the same target directory as the running example (`target/<profile>/examples/X`
/// -> `target/<profile>/future-p2p`). Examples cannot ask cargo for a binary's path (only
/// integration tests get `CARGO_BIN_EXE_*`), so every bench finds it here.
pub fn future_p2p_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("FUTURE_P2P_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("future-p2p")))
        .unwrap_or_else(|| PathBuf::from("future-p2p"));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "no future-p2p binary at {}: `cargo build --release -p p2p-cli --bin future-p2p` \
             first, or set FUTURE_P2P_BIN",
            bin.display()
        ))
    }
}

/// How long a child has to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process and the lines it prints, killed on drop.
struct Process {
    child: Child,
    /// Behind a mutex so that the cluster can be shared with blocking tasks.
    lines: Mutex<mpsc::Receiver<String>>,
}

impl Process {
    fn spawn(command: &mut Command) -> Result<Process, ProcessError> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Process {
            child,
            lines: Mutex::new(lines),
        })
    }

    /// Reads lines until one starts with `prefix`; all lines read so far.
    fn wait_for(&self, what: &str, prefix: &str) -> Result<Vec<String>, ProcessError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut said = Vec::new();
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    said.push(line);
                    if done {
                        return Ok(said);
                    }
                }
                Err(_) => break,
            }
        }
        Err(ProcessError::NotReady {
            what: what.to_owned(),
            expected: prefix.to_owned(),
            waited: READY_TIMEOUT,
            said,
        })
    }

    fn kill(&mut self) {
        // SIGKILL: no goodbye to anyone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A worker process of the cluster.
pub struct WorkerProcess {
    process: Process,
    /// Its operating-system process id (part of its board identity).
    pub pid: u32,
}

impl WorkerProcess {
    /// Whether the process has exited (it never should on its own).
    pub fn exited(&mut self) -> bool {
        !matches!(self.process.child.try_wait(), Ok(None))
    }
}

/// Hub and host as processes, users with fresh keys; workers come and go.
pub struct ProcessCluster {
    bin: PathBuf,
    // Field order: children die before their files go.
    hub: Process,
    host: Option<Process>,
    board_port: u16,
    mailbox: String,
    relay: String,
    keys: BTreeMap<String, PathBuf>,
    known_hosts: PathBuf,
    dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// Starts `bin hub` on free loopback ports with `users` (fresh Ed25519 keys), then
    /// `bin host`: `owner` hosts the cluster `name` for the others.
    pub fn start(
        bin: &Path,
        owner: &str,
        name: &str,
        users: &[&str],
    ) -> Result<ProcessCluster, ProcessError> {
        let dir = tempfile::tempdir()?;
        let state = dir.path().join("hub");
        std::fs::create_dir_all(&state)?;
        let mut registry = String::new();
        let mut keys = BTreeMap::new();
        for user in std::iter::once(owner).chain(users.iter().copied()) {
            let path = dir.path().join(format!("{user}_ed25519"));
            let key = generate_key_file(&path)?;
            let public = key
                .public_key()
                .to_openssh()
                .map_err(|err| ProcessError::KeyEncoding(err.to_string()))?;
            let mut words = public.split_whitespace();
            let (kind, base64) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            registry.push_str(&format!("{user} {kind} {base64}\n"));
            keys.insert(user.to_owned(), path);
        }
        std::fs::write(state.join("users"), registry)?;
        let hub = Process::spawn(
            Command::new(bin)
                .args(["hub", "--board", "127.0.0.1:0", "--mailbox", "127.0.0.1:0"])
                .args(["--relay", "127.0.0.1:0", "--state-dir"])
                .arg(&state),
        )?;
        let printed = hub.wait_for("the hub", "ready")?;
        let value = |key: &str| {
            printed
                .iter()
                .find_map(|line| line.strip_prefix(&format!("{key} ")))
                .map(str::to_owned)
                .ok_or_else(|| ProcessError::NotReady {
                    what: "the hub".into(),
                    expected: key.to_owned(),
                    waited: READY_TIMEOUT,
                    said: printed.clone(),
                })
        };
        let board = value("board")?;
        let board_port = board
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad board address {board:?}")))?;
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{board_port} {}\n", value("host-key")?),
        )?;
        let mut cluster = ProcessCluster {
            bin: bin.to_owned(),
            hub,
            host: None,
            board_port,
            mailbox: value("mailbox")?,
            relay: value("relay")?,
            keys,
            known_hosts,
            dir,
        };
        let host = Process::spawn(
            cluster
                .command(owner)?
                .args(["host", "--cluster", name, "--hello-interval", "2"])
                .arg(format!("--users={}", users.join(","))),
        )?;
        host.wait_for("the host", "hosting ")?;
        cluster.host = Some(host);
        Ok(cluster)
    }

    /// `--ssh-args` of `user`: its key, the hub's port and host key.
    pub fn ssh_args(&self, user: &str) -> Result<String, ProcessError> {
        let key = self
            .keys
            .get(user)
            .ok_or_else(|| ProcessError::UnknownUser(user.to_owned()))?;
        Ok(format!(
            "-p {} -i {} -o UserKnownHostsFile={}",
            self.board_port,
            key.display(),
            self.known_hosts.display()
        ))
    }

    /// The program, set up to reach this hub as `user`.
    fn command(&self, user: &str) -> Result<Command, ProcessError> {
        let mut command = Command::new(&self.bin);
        command
            .env_remove("SSH_AUTH_SOCK")
            .env("FUTURE_P2P_HOST", "127.0.0.1")
            .env("FUTURE_P2P_SSH_ARGS", self.ssh_args(user)?)
            .env("FUTURE_P2P_USER", user)
            .env("FUTURE_P2P_MAILBOX", &self.mailbox)
            .env("FUTURE_P2P_RELAY", &self.relay)
            .current_dir(self.dir.path());
        Ok(command)
    }

    /// Starts `future-p2p worker --exec COMMAND` as `user` on `cluster` with extra `args`;
    /// returns once it has joined.
    pub fn worker(
        &self,
        user: &str,
        cluster: &str,
        exec: &str,
        args: &[&str],
    ) -> Result<WorkerProcess, ProcessError> {
        let process = Process::spawn(
            self.command(user)?
                .args(["worker", "--cluster", cluster, "--exec", exec])
                .args(args),
        )?;
        process.wait_for("a worker", "worker ")?;
        let pid = process.child.id();
        Ok(WorkerProcess { process, pid })
    }

    /// SIGKILLs a worker.
    pub fn kill(&self, mut worker: WorkerProcess) {
        worker.process.kill();
    }

    /// How `user` reaches the board from this process (only the key made here).
    pub fn board_config(&self, user: &str) -> Result<BoardConfig, ProcessError> {
        let words: Vec<String> = self
            .ssh_args(user)?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut config = BoardConfig::from_ssh_args("127.0.0.1", &words)
            .map_err(|err| ProcessError::Board(BoardError::from(err)))?;
        config.agent = None;
        Ok(config)
    }

    /// Wormhole settings for this hub (relay only, as in [`crate::local::LocalHub`]).
    pub fn wormhole(&self) -> WormholeConfig {
        WormholeConfig {
            transit: TransitMode::RelayOnly,
            ..WormholeConfig::new(self.mailbox.clone(), self.relay.clone())
        }
    }

    /// The hub's process id.
    pub fn hub_pid(&self) -> u32 {
        self.hub.child.id()
    }
}
