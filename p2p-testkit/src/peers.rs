//! The reference magic-wormhole peers for the tests: finding the tools, running them as
//! child processes that die with the test, bounded waits, and our own servers beside them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Find a reference tool in `.ci/venv/bin` or on PATH, or fail with a pointer to `.ci/run`.
pub fn tool(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.ci/venv/bin")
        .join(name);
    if venv.is_file() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "required test tool `{name}` not found in .ci/venv/bin or PATH; \
         run `bash .ci/run` (or `bash .ci/setup/30-wormhole.sh`) to install the magic-wormhole \
         reference peers"
    );
}

/// A child process killed (and reaped) when dropped, with its output captured line by line.
pub struct Proc {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawn `cmd` with stdout and stderr captured.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if cmd
            .get_program()
            .to_string_lossy()
            .ends_with("wormhole-william")
        {
            cmd.stdin(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("lines lock").push(line);
                }
            });
        }
        Proc {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// Write `text` to the child's stdin (for `wormhole-william recv`'s prompt).
    pub fn answer(&mut self, text: &str) {
        use std::io::Write;
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(text.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().expect("lines lock").join("\n")
    }

    /// Wait until a line contains `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("lines lock")
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before printing {needle:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {needle:?} within {timeout:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process to exit, bounded.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for a successful exit, bounded, or fail with the process output.
    pub fn wait_success(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(
            status.success(),
            "{} failed ({status}):\n{}",
            self.name,
            self.output()
        );
    }

    /// Kill the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Async wrapper for `Proc::wait_success` so tokio tests do not block a worker thread.
pub async fn wait_success(mut proc: Proc, timeout: Duration) -> Proc {
    tokio::task::spawn_blocking(move || {
        proc.wait_success(timeout);
        proc
    })
    .await
    .expect("wait task")
}

/// The Python reference mailbox server on 127.0.0.1, port chosen by the OS.
pub fn python_mailbox(dir: &Path) -> (Proc, String) {
    let mut cmd = Command::new(tool("twist"));
    cmd.args(["--log-format=text", "--log-file=-", "wormhole-mailbox"])
        .arg("--port=tcp:0:interface=127.0.0.1")
        .arg(format!(
            "--channel-db={}",
            dir.join("mailbox.sqlite").display()
        ));
    let mut proc = Proc::spawn("python mailbox server", cmd);
    let line = proc.wait_for_line("Site starting on ", Duration::from_secs(30));
    let port = port_after(&line, "Site starting on ");
    (proc, format!("ws://127.0.0.1:{port}/v1"))
}

/// The Python reference transit relay on 127.0.0.1; returns `tcp://127.0.0.1:PORT`.
pub fn python_relay() -> (Proc, String) {
    let mut cmd = Command::new(tool("twist"));
    cmd.args(["--log-format=text", "--log-file=-", "transitrelay"])
        .arg("--port=tcp:0:interface=127.0.0.1");
    let mut proc = Proc::spawn("python transit relay", cmd);
    let line = proc.wait_for_line("ServerFactory starting on ", Duration::from_secs(30));
    let port = port_after(&line, "ServerFactory starting on ");
    (proc, format!("tcp://127.0.0.1:{port}"))
}

fn port_after(line: &str, marker: &str) -> u16 {
    line.split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in log line {line:?}"))
}

/// `tcp://H:P` (Rust form) to `tcp:H:P` (Python's `--transit-helper` form).
pub fn python_relay_arg(relay_url: &str) -> String {
    format!("tcp:{}", relay_url.trim_start_matches("tcp://"))
}

/// Python `wormhole send --code CODE FILE`.
pub fn python_send(mailbox: &str, relay: &str, code: &str, file: &Path) -> Proc {
    let mut cmd = Command::new(tool("wormhole"));
    cmd.args(["--relay-url", mailbox, "--transit-helper"])
        .arg(python_relay_arg(relay))
        .args(["send", "--hide-progress", "--no-qr", "--code", code])
        .arg(file);
    Proc::spawn("python wormhole send", cmd)
}

/// Python `wormhole receive --accept-file -o OUT CODE`.
pub fn python_receive(mailbox: &str, relay: &str, code: &str, out: &Path) -> Proc {
    let mut cmd = Command::new(tool("wormhole"));
    cmd.args(["--relay-url", mailbox, "--transit-helper"])
        .arg(python_relay_arg(relay))
        .args(["receive", "--hide-progress", "--accept-file", "-o"])
        .arg(out)
        .arg(code);
    Proc::spawn("python wormhole receive", cmd)
}

/// `echo y | wormhole-william recv CODE` in `dir` (it saves under the offered name).
pub fn william_receive(mailbox: &str, code: &str, dir: &Path) -> Proc {
    let mut cmd = Command::new(tool("wormhole-william"));
    cmd.env("WORMHOLE_RELAY_URL", mailbox)
        .args(["recv", "--hide-progress", code])
        .current_dir(dir);
    let mut proc = Proc::spawn("wormhole-william recv", cmd);
    proc.answer("y\n");
    proc
}

/// Deterministic pseudo-random bytes (no RNG dependency needed in tests).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Our mailbox server and transit relay on 127.0.0.1 with default limits.
pub async fn our_servers() -> (
    p2p_hub::mailbox::MailboxHandle,
    p2p_hub::relay::RelayHandle,
    p2p_transport::wormhole::WormholeConfig,
) {
    use p2p_hub::mailbox::{MailboxConfig, MailboxServer};
    use p2p_hub::relay::{RelayConfig, TransitRelay};
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mailbox = MailboxServer::bind(loopback, MailboxConfig::default())
        .await
        .expect("bind mailbox");
    let relay = TransitRelay::bind(loopback, RelayConfig::default())
        .await
        .expect("bind relay");
    let config = p2p_transport::wormhole::WormholeConfig::new(mailbox.url(), relay.url());
    (mailbox, relay, config)
}

/// A fresh random wormhole code, as the scheduler makes them.
pub fn fresh_code() -> p2p_proto::id::WormholeCode {
    p2p_proto::id::WormholeCode::from_random(rand::random(), rand::random())
}
