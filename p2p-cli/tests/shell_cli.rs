//! The shell-only path on a real cluster (hub, host and workers are separate processes):
//! `future-p2p submit` sends one task to a `future-p2p worker --exec` and prints its result
//! (a task that fails, or a cluster without workers, ends it with a non-zero exit and an
//! error that says what happened); `future-p2p status` shows the workers with their slots,
//! with the futures they run and whose, as text or JSON, and exits 3 or 4 when the
//! cluster cannot run work.

#[path = "common/cluster.rs"]
mod cluster;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster::{LocalCluster, wait_bounded};

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");

fn shared_cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| LocalCluster::start(Path::new(BIN)))
}

/// A `future-p2p` process of `user`, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn future_p2p(cluster: &LocalCluster, user: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg(format!("--ssh-args={}", cluster.ssh_args(user)))
        .envs(cluster.env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// bob's worker on `name`, running `exec` for each task.
fn worker(cluster: &LocalCluster, name: &str, exec: &str) -> Running {
    worker_with_slots(cluster, name, exec, "1")
}

fn worker_with_slots(cluster: &LocalCluster, name: &str, exec: &str, slots: &str) -> Running {
    // A client learns of workers from their hellos.
    worker_saying_hello_every(cluster, name, exec, slots, "2")
}

/// bob's worker on `name` with `slots`, saying hello every `interval` seconds.
fn worker_saying_hello_every(
    cluster: &LocalCluster,
    name: &str,
    exec: &str,
    slots: &str,
    interval: &str,
) -> Running {
    let child = future_p2p(
        cluster,
        "bob",
        &[
            "worker",
            "--cluster",
            name,
            "--exec",
            exec,
            "--slots",
            slots,
            "--hello-interval",
            interval,
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("future-p2p worker starts");
    Running(child)
}

/// carol's `future-p2p submit` on `name` with `stdin`, bounded by two minutes.
fn submit(cluster: &LocalCluster, name: &str, extra: &[&str], stdin: &[u8]) -> Output {
    let mut args = vec!["submit", "--cluster", name];
    args.extend_from_slice(extra);
    let mut child = future_p2p(cluster, "carol", &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("future-p2p submit starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("the payload is written");
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let mut output = child.wait_with_output().expect("its output");
    output.status = status;
    output
}

#[test]
fn a_task_from_the_shell_comes_back_from_a_worker() {
    let cluster = shared_cluster();
    let name = cluster.host("shell");
    let _worker = worker(cluster, &name, "rev");
    let output = submit(cluster, &name, &[], b"hello world\n");
    assert!(
        output.status.success(),
        "submit failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"dlrow olleh\n");

    // The payload may also be an argument.
    let output = submit(cluster, &name, &["abc"], b"");
    assert!(output.status.success());
    assert_eq!(output.stdout, b"cba");
}

#[test]
fn a_failing_command_is_a_failed_submit() {
    let cluster = shared_cluster();
    let name = cluster.host("failing");
    let _worker = worker(cluster, &name, "echo broken >&2; exit 3");
    let output = submit(cluster, &name, &["--timeout", "60"], b"x");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the task failed"), "{stderr}");
}

#[test]
fn no_worker_is_said_within_the_cluster_timeout() {
    let cluster = shared_cluster();
    let name = cluster.host("empty");
    let started = Instant::now();
    let output = submit(cluster, &name, &["--cluster-timeout", "3"], b"x");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("no worker showed up on cluster {name} within 3 s")),
        "{stderr}"
    );
    // Bounded by the option, not by a default minute (loose: CI machines are slow).
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn an_oversized_stdin_payload_is_refused_before_it_is_sent() {
    let cluster = shared_cluster();
    let name = cluster.host("oversized");
    let output = submit(cluster, &name, &["--max-payload", "10"], &[b'x'; 11]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("larger than --max-payload (10 bytes)"),
        "{stderr}"
    );
}

/// carol's `future-p2p status` on `name`, bounded by a minute.
fn status(cluster: &LocalCluster, name: &str, extra: &[&str]) -> Output {
    let mut args = vec!["status", "--cluster", name];
    args.extend_from_slice(extra);
    let mut child = future_p2p(cluster, "carol", &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("future-p2p status starts");
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut output = child.wait_with_output().expect("its output");
    output.status = status;
    output
}

#[test]
fn status_shows_the_host_and_each_workers_slots() {
    let cluster = shared_cluster();
    let name = cluster.host("status");
    let _worker = worker_with_slots(cluster, &name, "cat", "3");
    // The worker may still be joining: ask until it answers (each check listens 2 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let output = loop {
        let output = status(cluster, &name, &[]);
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
    };
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{screen}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(screen.contains(&format!("cluster {name}")), "{screen}");
    assert!(screen.contains("host    alice@"), "{screen}");
    assert!(
        screen.contains("workers 1 with 3 slot(s): 0 busy, 3 free"),
        "{screen}"
    );
    assert!(screen.contains("  bob@"), "{screen}");

    let output = status(cluster, &name, &["--json"]);
    assert!(output.status.success());
    let json = String::from_utf8_lossy(&output.stdout);
    assert!(json.contains("\"slots\": 3"), "{json}");
}

#[test]
fn status_of_a_cluster_without_workers_fails_and_says_why() {
    let cluster = shared_cluster();
    let name = cluster.host("idle");
    let output = status(cluster, &name, &[]);
    assert!(!output.status.success());
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(screen.contains("workers 0 with 0 slot(s)"), "{screen}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no worker answered"), "{stderr}");
    // The exit status says which part is missing (see `status --help`).
    assert_eq!(output.status.code(), Some(3), "{stderr}");
}

#[test]
fn allow_users_holds_only_where_the_board_proves_senders() {
    let cluster = shared_cluster();
    let name = cluster.host("allowed");

    let mut ssh = Command::new("ssh");
    ssh.args(split(cluster.ssh_args("bob"))).args([
        "-o",
        "BatchMode=yes",
        "-T",
        "127.0.0.1",
        "features",
    ]);
    let features = ssh.output().expect("OpenSSH runs");
    assert_eq!(
        String::from_utf8_lossy(&features.stdout),
        "senders-verified\n",
        "{}",
        String::from_utf8_lossy(&features.stderr)
    );

    let allowed = |extra: &[&str]| {
        let mut args = vec![
            "worker",
            "--cluster",
            &name,
            "--exec",
            "rev",
            "--hello-interval",
            "2",
            "--system-ssh",
            "--allow-users",
            "carol",
        ];
        args.extend_from_slice(extra);
        future_p2p(cluster, "bob", &args)
    };
    let mut worker = allowed(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p worker starts");
    let output = submit(cluster, &name, &["abc"], b"");
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"cba");

    // A board like pico.sh: `features` is an unknown command.
    let bin = tempfile::tempdir().expect("a scratch directory");
    let wrapper = bin.path().join("ssh");
    let real = which("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor last; do :; done\nif [ \"$last\" = features ]; then echo 'unknown command' >&2; exit 1; fi\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .expect("the wrapper is written");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("the wrapper is executable");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut refused = allowed(&[])
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("future-p2p worker starts");
    let status = wait_bounded(&mut refused, Duration::from_secs(60));
    let output = refused.wait_with_output().expect("its output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains("--allow-users carol needs a board that proves who wrote each line")
            && stderr.contains("--allow-unproven-users"),
        "{stderr}"
    );

    // Told to filter on claimed names, it serves.
    let mut worker = allowed(&["--allow-unproven-users"])
        .env("PATH", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p worker starts");
    let output = submit(cluster, &name, &["xyz"], b"");
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(output.stdout, b"zyx");
}

/// Words of an `--ssh-args` value (no quoting in the test cluster's).
fn split(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

/// The full path of `program` on PATH.
fn which(program: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is on PATH"))
}

/// `submit` by `user` of a task that keeps a worker busy, left running: a client on the
/// cluster while it lasts.
fn long_submit(cluster: &LocalCluster, user: &str, name: &str) -> Running {
    let child = future_p2p(cluster, user, &["submit", "--cluster", name, "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p submit starts");
    Running(child)
}

/// carol's `future-p2p top` on `name`, not on a terminal: `iterations` screens a second
/// apart on its stdout, then it exits.
fn top(cluster: &LocalCluster, name: &str, iterations: &str) -> Command {
    let mut command = future_p2p(
        cluster,
        "carol",
        &[
            "top",
            "--cluster",
            name,
            "--interval",
            "1",
            "--iterations",
            iterations,
        ],
    );
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    command
}

#[test]
fn status_and_top_show_three_workers_and_two_clients() {
    let cluster = shared_cluster();
    let name = cluster.host("busy");
    // Each task sleeps as many seconds as its payload says.
    let _workers: Vec<Running> = (0..3)
        .map(|_| worker(cluster, &name, "sleep \"$(cat)\"; echo done"))
        .collect();
    let _clients = [
        long_submit(cluster, "bob", &name),
        long_submit(cluster, "carol", &name),
    ];
    // Until both tasks run (each check listens 1 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (screen, took) = loop {
        let started = Instant::now();
        let output = status(cluster, &name, &[]);
        let took = started.elapsed();
        let screen = String::from_utf8_lossy(&output.stdout).into_owned();
        let running = screen.matches("    running   ").count();
        if (running == 2 && screen.contains("2 busy")) || Instant::now() > deadline {
            break (screen, took);
        }
    };
    println!("status took {:.2} s:\n{screen}", took.as_secs_f64());
    assert!(
        screen.contains("workers 3 with 3 slot(s): 2 busy, 1 free"),
        "{screen}"
    );
    assert!(screen.contains("clients 2"), "{screen}");
    assert!(
        screen.contains("  bob@") && screen.contains("  carol@"),
        "{screen}"
    );
    // Each busy worker says which future it runs and whose.
    assert_eq!(screen.matches("    running   ").count(), 2, "{screen}");
    assert!(
        screen.contains(" for bob@") && screen.contains(" for carol@"),
        "{screen}"
    );
    let output = status(cluster, &name, &["--json"]);
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let futures: Vec<&serde_json::Value> = json["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .flat_map(|w| w["futures"].as_array().expect("futures").iter())
        .collect();
    assert_eq!(futures.len(), 2, "{json}");
    assert!(futures.iter().all(|f| f["state"] == "running"), "{json}");

    // top, not on a terminal: two screens, a blank line apart, then it exits.
    let mut child = top(cluster, &name, "2")
        .stderr(Stdio::piped())
        .spawn()
        .expect("future-p2p top starts");
    let exit = wait_bounded(&mut child, Duration::from_secs(60));
    let output = child.wait_with_output().expect("its output");
    let screens = String::from_utf8_lossy(&output.stdout);
    println!("top:\n{screens}");
    assert!(
        exit.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(screens.matches("future-p2p top ").count(), 2, "{screens}");
    assert!(!screens.contains('\x1b'), "{screens}");
    let last = screens.rsplit("future-p2p top ").next().unwrap_or_default();
    assert!(last.contains("workers 3 with 3 slot(s)"), "{screens}");
    assert!(last.contains("clients 2"), "{screens}");
    assert!(last.contains("    running   "), "{screens}");
}

#[test]
fn top_shows_a_future_when_it_starts_not_at_the_next_periodic_hello() {
    let cluster = shared_cluster();
    let name = cluster.host("top-live");
    // Without a hello on the task's start, top would see it at the next periodic hello,
    // 60 s on: long after top's 20 screens (about 20 s) are over.
    let _worker =
        worker_saying_hello_every(cluster, &name, "sleep \"$(cat)\"; echo done", "1", "60");
    let mut top = top(cluster, &name, "20")
        .stderr(Stdio::null())
        .spawn()
        .expect("future-p2p top starts");
    let lines = {
        let stdout = top.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let top = Running(top);
    // top's first hello brings the worker's; each wait ends with top's last screen.
    let seen = |what: &str| loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(what) => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    assert!(
        seen("workers 1 with 1 slot(s)"),
        "top never showed the worker"
    );
    let started = Instant::now();
    let _client = long_submit(cluster, "bob", &name);
    let shown = seen("    running   ");
    let took = started.elapsed();
    println!(
        "top showed the new future {:.2} s after its submit started (worker hellos every 60 s)",
        took.as_secs_f64()
    );
    drop(top);
    assert!(shown, "top ended without showing the running future");
}

/// carol's `future-p2p submit` of `size` bytes on a terminal (script(1) gives it one; its
/// screen is the child's stdout); the directory holding the payload goes with it.
fn submit_on_a_terminal(
    cluster: &LocalCluster,
    name: &str,
    size: usize,
) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let payload = dir.path().join("payload");
    std::fs::write(&payload, vec![b'x'; size]).expect("the payload");
    let command = format!(
        "{BIN} submit --cluster {name} '--ssh-args={}' < {}",
        cluster.ssh_args("carol"),
        payload.display()
    );
    let child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .envs(cluster.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) runs (util-linux)");
    (child, dir)
}

#[test]
fn a_large_task_shows_what_it_does_on_a_terminal_only() {
    let cluster = shared_cluster();
    let name = cluster.host("progress");
    let _worker = worker(cluster, &name, "sleep 1; wc -c");
    // On a terminal (script(1) gives it one): the phases under a spinner, on stderr.
    let (mut child, _dir) = submit_on_a_terminal(cluster, &name, 2 << 20);
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let output = child.wait_with_output().expect("its output");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains("2.0 MiB payload: waiting for a worker"),
        "{screen}"
    );
    assert!(
        screen.contains("2.0 MiB payload: running on bob@"),
        "{screen}"
    );
    assert!(screen.contains("2097152"), "{screen}");

    // Not on a terminal: the result alone, nothing drawn.
    let output = submit(cluster, &name, &[], &vec![b'x'; 2 << 20]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "2097152");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("payload:"), "{stderr}");
}

#[test]
fn a_large_payload_shows_a_byte_bar_while_it_goes_out() {
    let cluster = shared_cluster();
    let name = cluster.host("bytes");
    // The command reads nothing for eight seconds: the session holds back the payload
    // (its read-ahead is 8 MiB), so the send is still on its way while the bar polls.
    let _worker = worker(cluster, &name, "sleep 8; wc -c");
    let (mut child, _dir) = submit_on_a_terminal(cluster, &name, 32 << 20);
    // Meanwhile status shows the payload on its way, from carol to the worker.
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let output = status(cluster, &name, &[]);
        let seen = String::from_utf8_lossy(&output.stdout).into_owned();
        if seen.contains("transfers 1") || Instant::now() > deadline {
            break seen;
        }
    };
    assert!(seen.contains("transfers 1\n  submit-"), "{seen}");
    assert!(
        seen.contains(" -> bob@") && seen.contains("/ 32.0 MiB ("),
        "{seen}"
    );
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let output = child.wait_with_output().expect("its output");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("sending the payload"), "{screen}");
    assert!(screen.contains("MiB/32.00 MiB"), "{screen}");
    assert!(screen.contains("33554432"), "{screen}");
}
