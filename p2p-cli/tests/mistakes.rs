//! The mistakes a user makes on the README's paths, made with real processes (a hub, a
//! host, `future-p2p` clients; OpenSSH where the system's ssh is asked for; real R): each
//! ends with an error that names the cause and what to do, and soon. Each test prints
//! how long the mistake took to report (`cargo test -- --nocapture` shows it).
//!
//! - a cluster name nobody hosts, and a cluster whose access list leaves the user out:
//!   the hub ends the member's pipe at once, saying which; the client fails on that
//!   instead of waiting out its `--cluster-timeout` (set to 120 s here, so only the
//!   refusal can end it sooner);
//! - the hub down (nothing on the port), an unknown host key (built-in client and
//!   OpenSSH), a key the hub has no account for;
//! - R without the `future-p2p` program: future.p2p names the option and variable to set.

#[path = "common/cluster.rs"]
mod cluster;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster::{LocalCluster, wait_bounded};

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");

fn shared_cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| LocalCluster::start(Path::new(BIN)))
}

/// `future-p2p ARGS --ssh-args=SSH_ARGS` with the cluster's settings, bounded by two
/// minutes; its output and how long it took.
fn run(cluster: &LocalCluster, ssh_args: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .arg(format!("--ssh-args={ssh_args}"))
        .envs(cluster.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("future-p2p starts");
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let mut output = child.wait_with_output().expect("its output");
    output.status = status;
    (output, started.elapsed())
}

/// Runs a submit that must fail; its stderr.
fn failed_submit(cluster: &LocalCluster, user: &str, name: &str, what: &str) -> String {
    let ssh_args = cluster.ssh_args(user).to_owned();
    let args = ["submit", "--cluster", name, "--cluster-timeout", "120", "x"];
    let (output, took) = run(cluster, &ssh_args, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!("{what}: failed after {:.2} s: {stderr}", took.as_secs_f64());
    assert!(!output.status.success(), "{stderr}");
    // Well within the 120 s the client would otherwise wait (loose: CI machines are slow).
    assert!(took < Duration::from_secs(60), "{what} took {took:?}");
    stderr
}

/// The error line (not the board client's reconnect warnings).
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| line.starts_with("future-p2p: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_cluster_nobody_hosts_is_said_at_once() {
    let cluster = shared_cluster();
    let stderr = failed_submit(
        cluster,
        "bob",
        "alice/nobody-hosts-this",
        "wrong cluster name",
    );
    let error = error_line(&stderr);
    assert!(
        error.contains("the board refused cluster alice/nobody-hosts-this"),
        "{error}"
    );
    assert!(error.contains("is not hosted"), "{error}");
    assert!(error.contains("Check the cluster's name"), "{error}");
}

#[test]
fn a_user_left_off_the_access_list_is_told_whom_to_ask() {
    let cluster = shared_cluster();
    // alice hosts it for bob and carol only.
    let name = cluster.host("members-only");
    let stderr = failed_submit(cluster, "dave", &name, "not on the access list");
    let error = error_line(&stderr);
    assert!(
        error.contains(&format!("dave is not on the access list of {name}")),
        "{error}"
    );
    assert!(error.contains("ask alice to add you"), "{error}");
}

#[test]
fn a_hub_that_is_down_is_said_with_where_to_look() {
    let cluster = shared_cluster();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let ssh_args = cluster.ssh_args("bob").replacen(
        &format!("-p {}", hub_port(cluster)),
        &format!("-p {port}"),
        1,
    );
    let (output, took) = run(cluster, &ssh_args, &["status", "--cluster", "alice/p2p"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "hub down: failed after {:.2} s: {stderr}",
        took.as_secs_f64()
    );
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("what to do: nothing answers"), "{stderr}");
    assert!(stderr.contains("start the hub"), "{stderr}");
}

/// The hub's board port, from the cluster's ssh args (`-p PORT ...`).
fn hub_port(cluster: &LocalCluster) -> String {
    let args = cluster.ssh_args("bob");
    let mut words = args.split_whitespace();
    words.find(|w| *w == "-p");
    words.next().expect("a port").to_owned()
}

/// bob's ssh args with a known_hosts file that does not know the hub.
fn ssh_args_without_the_hub_key(cluster: &LocalCluster, dir: &Path) -> String {
    let empty = dir.join("known_hosts");
    std::fs::write(&empty, "").expect("an empty known_hosts");
    let args = cluster.ssh_args("bob");
    let kept: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("UserKnownHostsFile="))
        .collect();
    // Drop the `-o` that introduced the file, then name ours.
    let kept = kept.join(" ").trim_end_matches(" -o").to_owned();
    format!("{kept} -o UserKnownHostsFile={}", empty.display())
}

#[test]
fn an_unknown_host_key_is_said_with_how_to_trust_it() {
    let cluster = shared_cluster();
    for (backend, extra) in [("built-in client", None), ("OpenSSH", Some("--system-ssh"))] {
        // Fresh for each: trusting on first use below writes the key into it.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ssh_args = ssh_args_without_the_hub_key(cluster, dir.path());
        let mut args = vec!["status", "--cluster", "alice/p2p"];
        args.extend(extra);
        let (output, took) = run(cluster, &ssh_args, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!(
            "unknown host key ({backend}): failed after {:.2} s: {stderr}",
            took.as_secs_f64()
        );
        assert!(!output.status.success());
        assert!(
            stderr.contains("StrictHostKeyChecking=accept-new"),
            "{backend}: {stderr}"
        );
        // The advice works: trusting on first use gets past the host key.
        let trusting = format!("{ssh_args} -o StrictHostKeyChecking=accept-new");
        let (output, _) = run(cluster, &trusting, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("host key") && !stderr.contains("Host key"),
            "{backend}: {stderr}"
        );
    }
}

#[test]
fn a_key_without_an_account_is_told_how_to_register() {
    let cluster = shared_cluster();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = dir.path().join("eve");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(made.success());
    let bob = cluster.ssh_args("bob");
    let bob_key = bob
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("bob's -i");
    let ssh_args = bob.replacen(bob_key, &key.display().to_string(), 1);
    let (output, took) = run(cluster, &ssh_args, &["status", "--cluster", "alice/p2p"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "unregistered key: failed after {:.2} s: {stderr}",
        took.as_secs_f64()
    );
    assert!(!output.status.success());
    assert!(stderr.contains("no account"), "{stderr}");
    assert!(
        stderr.contains("what to do: the board knows no account for your key"),
        "{stderr}"
    );
    assert!(stderr.contains("--signup"), "{stderr}");
}

#[test]
fn r_without_the_program_names_the_option_to_set() {
    let r_libs = p2p_testkit::r::test_r_libs();
    let started = Instant::now();
    let mut r = Command::new("Rscript")
        .args([
            "-e",
            "library(future); \
             msg <- tryCatch({ plan(future.p2p::pico_p2p, cluster = 'alice/p2p'); \
                               value(future(1)); 'no error' }, \
                             error = conditionMessage); \
             plan(sequential); cat(msg)",
        ])
        .env("R_LIBS", r_libs)
        // Neither on the PATH nor configured.
        .env("PATH", "/usr/bin:/bin")
        .env_remove("R_FUTURE_P2P_BIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Rscript starts");
    let status = wait_bounded(&mut r, Duration::from_secs(120));
    let output = r.wait_with_output().expect("its output");
    let said = String::from_utf8_lossy(&output.stdout);
    println!(
        "R without future-p2p: failed after {:.2} s: {said}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("cannot find the future-p2p program"),
        "{said}"
    );
    assert!(said.contains("options(future.p2p.bin"), "{said}");
    assert!(said.contains("R_FUTURE_P2P_BIN"), "{said}");
}
