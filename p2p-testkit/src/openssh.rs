//! Real OpenSSH for the board tests: keys made by `ssh-keygen`, a board server with a user
//! registry, and `ssh` processes that are killed when dropped. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use p2p_hub::board::{BoardServer, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// Default bound for one step of a test.
pub const STEP: Duration = Duration::from_secs(20);

/// Fails (never skips) when an OpenSSH binary is missing.
pub fn require(bin: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{bin}` is not installed: run .ci/run (its setup step 20-openssh.sh installs openssh-client and openssh-server)"
    );
}

/// Generates an unencrypted ed25519 key `dir/name` with `ssh-keygen`; returns its path.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    keygen_with(dir, name, "ed25519", "")
}

/// `ssh-keygen -t kind -N passphrase`.
pub fn keygen_with(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new(require("ssh-keygen"))
        .args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    path
}

/// `type base64` of a key's `.pub` file, without the comment.
pub fn public_line(key: &Path) -> String {
    let text = std::fs::read_to_string(key.with_extension("pub")).expect("read .pub");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A board server for a test: state dir with registered users, listening on 127.0.0.1:0.
pub struct TestBoard {
    pub dir: tempfile::TempDir,
    pub server: BoardServer,
}

impl TestBoard {
    pub async fn start(users: &[(&str, &Path)]) -> TestBoard {
        TestBoard::start_with(users, |_| {}).await
    }

    pub async fn start_with(
        users: &[(&str, &Path)],
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestBoard {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let mut text = String::new();
        for (name, key) in users {
            text.push_str(&format!("{name} {}\n", public_line(key)));
        }
        std::fs::write(state.join("users"), text).expect("users file");
        let mut config = ServerConfig::new(&state);
        config.listen = "127.0.0.1:0".parse().expect("addr");
        tweak(&mut config);
        let server = BoardServer::start(config)
            .await
            .expect("start board server");
        TestBoard { dir, server }
    }

    pub fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    /// A `known_hosts` file that trusts this server.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        let key = self
            .server
            .host_key()
            .to_openssh()
            .expect("encode host key");
        std::fs::write(&path, format!("[127.0.0.1]:{} {key}\n", self.port()))
            .expect("write known_hosts");
        path
    }
}

/// A running `ssh` client, killed on drop.
pub struct Ssh {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Output of a finished `ssh`.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Spawns OpenSSH's `ssh` against the server as `user` with `key`, running `command`.
pub fn ssh(port: u16, key: &Path, user: &str, command: &str) -> Ssh {
    let mut child = Command::new(require("ssh"))
        .args([
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ])
        .arg(key)
        .args(["-p", &port.to_string(), "-l", user, "127.0.0.1", command])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ssh");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    Ssh {
        child,
        stdin,
        stdout,
        stderr,
    }
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    buf
}

impl Ssh {
    pub async fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        tokio::time::timeout(STEP, stdin.write_all(data))
            .await
            .expect("write to ssh timed out")
            .expect("write to ssh");
        stdin.flush().await.expect("flush");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until `needle` was seen; returns everything read.
    pub async fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let fut = async {
            let mut chunk = [0u8; 4096];
            while !contains(&buf, needle) {
                let n = self.stdout.read(&mut chunk).await.expect("read ssh stdout");
                assert!(
                    n > 0,
                    "ssh stdout ended before {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&buf)
                );
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(STEP, fut).await.unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {:?}",
                String::from_utf8_lossy(needle)
            )
        });
        buf
    }

    /// Reads exactly `n` bytes of stdout.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(STEP, self.stdout.read_exact(&mut buf))
            .await
            .expect("timed out reading ssh stdout")
            .expect("read ssh stdout");
        buf
    }

    /// Closes stdin and waits for the process, collecting the rest of its output.
    pub async fn finish(mut self) -> Finished {
        self.stdin = None;
        let fut = async {
            let (out, err, status) = tokio::join!(
                read_all(&mut self.stdout),
                read_all(&mut self.stderr),
                self.child.wait()
            );
            Finished {
                code: status.expect("wait ssh").code(),
                stdout: out,
                stderr: err,
            }
        };
        tokio::time::timeout(STEP, fut)
            .await
            .expect("ssh did not exit in time")
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs a one-shot command and returns its result.
pub async fn run(port: u16, key: &Path, user: &str, command: &str) -> Finished {
    ssh(port, key, user, command).finish().await
}

/// Polls `ls` as `user` until `pred` holds on its stdout.
pub async fn wait_for_ls(port: u16, key: &Path, user: &str, pred: impl Fn(&str) -> bool) -> String {
    let fut = async {
        loop {
            let out = run(port, key, user, "ls").await.stdout();
            if pred(&out) {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(STEP, fut)
        .await
        .expect("ls never showed the expected state")
}
