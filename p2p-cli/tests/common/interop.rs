//! A private world for runs with the original future.p2p 0.4.0 (../shared/r-peers): real
//! original hosts, workers and clients next to ours, on our hub, with every public default
//! in place and nothing leaving the machine.
//!
//! The world is a fresh network, mount and PID namespace (`unshare`): its loopback is its
//! only interface, `/etc/hosts` (bind-mounted over, for this namespace only) resolves
//! `pipe.pico.sh`, `pico.sh`, `relay.magic-wormhole.io` and `transit.magic-wormhole.io` to
//! 127.0.0.1, and one `future-p2p hub` serves them all on their public ports: the board and
//! `user` on 22, the mailbox on 4000, the transit relay on 4001 (wormhole-william 1.0.6, the
//! original's wormhole program, always dials transit.magic-wormhole.io:4001). Fixed ports
//! cannot clash with anything: the namespace has its own. When the world's first process
//! exits, the kernel ends every process left in it.
//!
//! Each user (alice, bob, carol, dave, erin; mallory has a key but no account) runs in a
//! nested mount namespace whose home (`/root`) is a directory of their own holding
//! `~/.ssh/id_ed25519` and `~/.ssh/known_hosts`, because OpenSSH finds both through the
//! password database, not `$HOME`: the original's `ssh pico.sh user` and our native client
//! then work with their defaults. The original's wormhole program (option
//! `future.p2p.wormhole`) is the Python reference client on the hub's mailbox and relay
//! (see [`original_wormhole_program`] for why not wormhole-william).
//!
//! Libraries: the original future.p2p and the CRAN futureverse it needs are where
//! `.ci/setup/46-r-original.sh` installed them ([`OriginalLibraries`]); ours is installed
//! by the caller. The two packages share a name, so no R session sees both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The public names the world serves on its loopback.
pub const PUBLIC_NAMES: [&str; 4] = [
    "pipe.pico.sh",
    "pico.sh",
    "relay.magic-wormhole.io",
    "transit.magic-wormhole.io",
];
/// Users with an account on the hub.
pub const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
/// A user whose key the hub does not know.
pub const STRANGER: &str = "mallory";
/// Marks the process that runs inside the private world.
const CHILD_ENV: &str = "FUTURE_P2P_INTEROP_WORLD";

pub use p2p_testkit::r::OriginalLibraries;

/// Runs the caller inside a private world: in the parent, re-executes this program with
/// `args` under `unshare` and returns `false` once that run succeeded (panicking if it
/// failed or took longer than `timeout`); in that child, sets the world's network up and
/// returns `true`, and the caller goes on with its scenario. `name` tells the child which
/// scenario it is.
pub fn enter_private_world(name: &str, args: &[&str], timeout: Duration) -> bool {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        set_up_network();
        return true;
    }
    let exe = std::env::current_exe().expect("the path of this program");
    let mut child = Command::new("unshare")
        .args(["--mount", "--net", "--pid", "--fork", "--mount-proc", "--"])
        .arg(exe)
        .args(args)
        .env(CHILD_ENV, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("unshare (util-linux) does not run: {err}; the interop runs need it, as root")
        });
    // The child's output, marked as the world's: a test harness in the child prints its
    // own summary lines, which must not read as this program's.
    let relays = [
        relay_lines(child.stdout.take(), name, false),
        relay_lines(child.stderr.take(), name, true),
    ];
    let status = wait_bounded(&mut child, timeout);
    for relay in relays.into_iter().flatten() {
        let _ = relay.join();
    }
    let status = status.unwrap_or_else(|| panic!("{name} did not finish within {timeout:?}"));
    assert!(
        status.success(),
        "{name} failed in its private world ({status}); its output is above"
    );
    false
}

fn relay_lines(
    stream: Option<impl std::io::Read + Send + 'static>,
    name: &str,
    to_stderr: bool,
) -> Option<std::thread::JoinHandle<()>> {
    use std::io::BufRead as _;
    let stream = stream?;
    let name = name.to_owned();
    Some(std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if to_stderr {
                eprintln!("[world {name}] {line}");
            } else {
                println!("[world {name}] {line}");
            }
        }
    }))
}

fn set_up_network() {
    run_ok(Command::new("ip").args(["link", "set", "lo", "up"]));
    let hosts = std::env::temp_dir().join(format!("future-p2p-hosts-{}", std::process::id()));
    let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    text.push_str(&format!("127.0.0.1 {}\n", PUBLIC_NAMES.join(" ")));
    std::fs::write(&hosts, text).expect("writing the world's hosts file");
    // Private to this mount namespace: the machine's /etc/hosts is never touched.
    run_ok(
        Command::new("mount")
            .arg("--bind")
            .arg(&hosts)
            .arg("/etc/hosts"),
    );
}

fn run_ok(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?} does not run: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits for `child` at most `timeout`; kills it then and returns `None`.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The hub, the users' homes, and the processes started in the world (killed on drop).
pub struct World {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Where the machine's password database puts the home of the user running this.
    home: PathBuf,
    libraries: OriginalLibraries,
    ours: PathBuf,
    children: BTreeMap<String, Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The home directory of the user running this program, as OpenSSH finds it.
fn passwd_home() -> PathBuf {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .unwrap_or("0")
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 5 && fields[2] == uid)
        .map(|fields| PathBuf::from(fields[5]))
        .unwrap_or_else(|| PathBuf::from("/root"))
}

impl World {
    /// Starts the hub (future-p2p binary `bin`) with the users' accounts; `ours` is the R
    /// library holding our future.p2p package.
    pub fn start(bin: &Path, ours: &Path, libraries: OriginalLibraries) -> World {
        let dir = tempfile::tempdir().expect("the world's directory");
        let state = dir.path().join("hub");
        std::fs::create_dir_all(&state).expect("the hub's state directory");
        let mut registry = String::new();
        for user in USERS.iter().chain([&STRANGER]) {
            let ssh = dir.path().join("home").join(user).join(".ssh");
            std::fs::create_dir_all(&ssh).expect("a home directory");
            let key = ssh.join("id_ed25519");
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
                    .arg(&key),
            );
            if *user != STRANGER {
                let public = std::fs::read_to_string(key.with_extension("pub")).expect("a key");
                let mut words = public.split_whitespace();
                let (kind, base64) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                registry.push_str(&format!("{user} {kind} {base64}\n"));
            }
        }
        std::fs::write(state.join("users"), registry).expect("the user registry");
        let mut world = World {
            bin: bin.to_owned(),
            home: passwd_home(),
            libraries,
            ours: ours.to_owned(),
            children: BTreeMap::new(),
            dir,
        };
        let mut hub = Command::new(bin);
        hub.args([
            "hub",
            "--board",
            "127.0.0.1:22",
            "--mailbox",
            "127.0.0.1:4000",
        ])
        .args(["--relay", "127.0.0.1:4001", "--state-dir"])
        .arg(&state);
        world.spawn("hub", hub);
        let printed = world.wait_for_line("hub", Duration::from_secs(30), |line| line == "ready");
        let host_key = printed
            .iter()
            .find_map(|line| line.strip_prefix("host-key "))
            .expect("the hub printed its host key")
            .to_owned();
        let python = p2p_testkit::peers::tool("wormhole");
        let wormhole = world.dir.path().join("wormhole");
        std::fs::write(&wormhole, original_wormhole_program(&python))
            .expect("the wormhole wrapper");
        run_ok(Command::new("chmod").arg("755").arg(&wormhole));
        for user in USERS.iter().chain([&STRANGER]) {
            let known = world.user_home(user).join(".ssh/known_hosts");
            std::fs::write(known, format!("pipe.pico.sh,pico.sh {host_key}\n"))
                .expect("known_hosts");
        }
        world
    }

    fn user_home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `program` run as `user`: their home mounted over the real one, the wormhole program
    /// and our binary known, no setting of the developer's environment inherited.
    pub fn as_user(&self, user: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("unshare");
        command
            .args([
                "--mount",
                "--",
                "sh",
                "-c",
                "mount --bind \"$0\" \"$1\" && shift && exec \"$@\"",
            ])
            .arg(self.user_home(user))
            .arg(&self.home)
            .arg(program);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("FUTURE_P2P_") || key.starts_with("R_FUTURE_P2P_") || key == "R_LIBS"
            {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", &self.home)
            .env("R_FUTURE_P2P_WORMHOLE", self.dir.path().join("wormhole"))
            .env("R_FUTURE_P2P_BIN", &self.bin)
            .env(
                "FUTURE_P2P_R_LIBRARY",
                self.dir.path().join("worker-library"),
            );
        command
    }

    /// Rscript evaluating `code` as `user` with the original future.p2p.
    pub fn original_r(&self, user: &str, code: &str) -> Command {
        let mut command = self.as_user(user, "Rscript");
        command.args(["-e", code]).env(
            "R_LIBS",
            join_paths(&[&self.libraries.original, &self.libraries.cran]),
        );
        command
    }

    /// Rscript evaluating `code` as `user` with our future.p2p, on the CRAN futureverse.
    pub fn our_r(&self, user: &str, code: &str) -> Command {
        let mut command = self.as_user(user, "Rscript");
        command
            .args(["-e", code])
            .env("R_LIBS", join_paths(&[&self.ours, &self.libraries.cran]));
        command
    }

    /// `future-p2p args...` as `user`, its R evaluators on the CRAN futureverse.
    pub fn our_cli(&self, user: &str, args: &[&str]) -> Command {
        let mut command = self.as_user(user, &self.bin);
        command.args(args).env("R_LIBS", &self.libraries.cran);
        command
    }

    /// Starts `command` in the background as `name`, its output to the world's log `name`.
    pub fn spawn(&mut self, name: &str, mut command: Command) {
        let log = std::fs::File::create(self.log_path(name)).expect("a log file");
        let err = log.try_clone().expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        self.children.insert(name.to_owned(), child);
    }

    /// Ends `name`, started with [`World::spawn`], as Ctrl-C would (a worker leaving the
    /// cluster: its R processes end with it); killed if it is still there after 30 s.
    #[allow(dead_code)] // The test stops workers; interop_bench, which shares this file, not.
    pub fn stop(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            // Killed by wait_bounded if it is still there then.
            let _ = wait_bounded(&mut child, Duration::from_secs(30));
        }
    }

    /// The log of `name` so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Waits until a line of `name`'s log satisfies `done`; returns the lines read.
    pub fn wait_for_line(
        &self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<String> = self.log(name).lines().map(str::to_owned).collect();
            if lines.iter().any(|line| done(line)) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not print the expected line within {timeout:?}:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `command` to its end within `timeout`, as `name` (its output is also logged).
    pub fn run(&mut self, name: &str, command: Command, timeout: Duration) -> Finished {
        self.spawn(name, command);
        self.run_spawned(name, timeout)
    }

    /// Waits within `timeout` for `name`, started with [`World::spawn`], to end.
    pub fn run_spawned(&mut self, name: &str, timeout: Duration) -> Finished {
        let child = self
            .children
            .get_mut(name)
            .unwrap_or_else(|| panic!("{name} was not started"));
        let status = wait_bounded(child, timeout);
        let output = self.log(name);
        Finished {
            name: name.to_owned(),
            status,
            output,
        }
    }

    /// Every log of the world, for a failure's message.
    pub fn all_logs(&self) -> String {
        self.children
            .keys()
            .map(|name| format!("==== {name}\n{}", self.log(name)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A command run to its end.
pub struct Finished {
    pub name: String,
    /// `None` if it was killed at its timeout.
    pub status: Option<ExitStatus>,
    /// Its stdout and stderr.
    pub output: String,
}

impl Finished {
    /// The values of its `key=value` lines, by key (the last one wins).
    pub fn values(&self) -> BTreeMap<String, String> {
        self.output
            .lines()
            .filter_map(|line| line.strip_prefix("@ "))
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Whether it exited successfully.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }
}

/// The script the original runs as its wormhole program (`wormhole send --code=CODE FILE`,
/// `wormhole receive CODE` answered `y`) in this world: the Python reference client
/// `python` on the world's mailbox and relay.
///
/// Not wormhole-william, the original's default: about one transfer in a hundred between
/// wormhole-william 1.0.6 and any other client (ours, or the Python reference client) ends
/// with both sides reporting a wrong code, in a fresh mailbox that holds exactly the two
/// peers' messages (traced on our hub), so a run of dozens of transfers would fail now and
/// then for a fault of neither implementation under test.
fn original_wormhole_program(python: &Path) -> String {
    let python = python.display();
    let servers = "--relay-url ws://127.0.0.1:4000/v1 --transit-helper tcp:127.0.0.1:4001";
    format!(
        "#!/bin/sh\n\
         # The original's wormhole program in this world (see original_wormhole_program).\n\
         command=$1\n\
         [ $# -gt 0 ] && shift\n\
         case \"$command\" in\n\
         send) exec '{python}' {servers} send --hide-progress --no-qr \"$@\" ;;\n\
         receive) exec '{python}' {servers} receive --accept-file --hide-progress \"$@\" ;;\n\
         *) exec '{python}' \"$command\" \"$@\" ;;\n\
         esac\n"
    )
}

fn join_paths(paths: &[&Path]) -> std::ffi::OsString {
    std::env::join_paths(paths).expect("library paths without ':'")
}

/// The output helper the R scripts of the interop runs start with: `out(key, value)`
/// prints `@ key=value` (vectors joined with `,`), which [`Finished::values`] reads.
pub const R_OUT: &str = r#"
out <- function(key, value) cat(sprintf("@ %s=%s\n", key, paste(value, collapse = ",")))
relayed <- new.env()
relayed$messages <- character(0)
relayed$warnings <- character(0)
## The messages of an error and of the errors it wraps (callr, which the original client
## uses, wraps its subprocess's error in one of its own).
messages_of <- function(e) {
  text <- character(0)
  while (inherits(e, "condition")) {
    text <- c(text, trimws(conditionMessage(e)))
    e <- e$parent
  }
  paste(gsub("\n", " ", text), collapse = " | ")
}
## Evaluates `expr`, keeping the messages and warnings that reach this session.
catching <- function(expr) withCallingHandlers(expr,
  message = function(m) {
    relayed$messages <- c(relayed$messages, trimws(conditionMessage(m)))
    invokeRestart("muffleMessage")
  },
  warning = function(w) {
    relayed$warnings <- c(relayed$warnings, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
"#;
