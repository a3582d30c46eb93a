//! The mistakes a user makes on the README's paths, made with real processes (a hub, a
//! host, `future-p2p` clients; OpenSSH where the system's ssh is asked for; real R): each
//! ends with an error that names the cause and what to do, and soon. Each test prints
//! how long the mistake took to report (`cargo test -- --nocapture` shows it).
//!
//! - a cluster name nobody hosts, and a cluster whose access list leaves the user out:
//!   the hub ends the member's pipe at once, saying which; the client fails on that
//!   instead of waiting out its `--cluster-timeout` (set to 120 s here, so only the
//!   refusal can end it sooner);
//! - the same on a hub that routes like pico.sh (`--pico-routing`): nothing is refused
//!   there, the member's pipe is moved to a topic of its own; the member notices it in its
//!   `ls` and fails as fast (worker, submit and status), while a member of a hosted
//!   cluster gets in;
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
    run_within(cluster, ssh_args, args, Duration::from_secs(120))
}

/// [`run`], failing the test if it has not ended within `bound`.
fn run_within(
    cluster: &LocalCluster,
    ssh_args: &str,
    args: &[&str],
    bound: Duration,
) -> (Output, Duration) {
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
    let status = wait_bounded(&mut child, bound);
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

/// A hub that routes like pico.sh: a member whose cluster nobody hosts (or whose list
/// leaves them out) is not refused but moved to a topic of their own.
fn pico_cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| LocalCluster::start_with(Path::new(BIN), &["--pico-routing"]))
}

/// Longest a member on the pico-like hub may take to say so before the test fails: far
/// below the 120 s `--cluster-timeout` it would otherwise wait (and for ever, a worker).
const PICO_BOUND: Duration = Duration::from_secs(20);

/// Runs `args` as `user` on the pico-like hub, bounded by [`PICO_BOUND`]; exit code and
/// stderr.
fn on_pico(user: &str, what: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let cluster = pico_cluster();
    let (output, took) = run_within(cluster, cluster.ssh_args(user), args, PICO_BOUND);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!(
        "pico routing, {what}: ended after {:.2} s with {:?}: {stderr}",
        took.as_secs_f64(),
        output.status.code()
    );
    (output.status.code(), stdout, stderr)
}

#[test]
fn a_cluster_nobody_hosts_on_a_board_that_moves_members_is_said_at_once() {
    let name = "alice/nobody-hosts-this";
    let worker = [
        "worker",
        "--cluster",
        name,
        "--cluster-timeout",
        "120",
        "--exec",
        "cat",
    ];
    let submit = ["submit", "--cluster", name, "--cluster-timeout", "120", "x"];
    let status = ["status", "--cluster", name];
    for (what, args) in [
        ("worker", &worker[..]),
        ("submit", &submit[..]),
        ("status", &status[..]),
    ] {
        let (code, _, stderr) = on_pico("bob", &format!("wrong cluster name ({what})"), args);
        assert_eq!(code, Some(4), "{what}: {stderr}");
        let error = error_line(&stderr);
        assert!(
            error.contains(&format!(
                "the board refused cluster {name}: {name} is not hosted for bob"
            )),
            "{what}: {error}"
        );
        assert!(
            error.contains(&format!("moved bob's pipe to bob/{name}/future.p2p")),
            "{what}: {error}"
        );
        assert!(
            error.contains("`future-p2p host --cluster nobody-hosts-this --users bob`"),
            "{what}: {error}"
        );
    }
}

#[test]
fn r_on_a_board_that_moves_members_says_the_cluster_is_not_hosted() {
    let cluster = pico_cluster();
    let name = "alice/nobody-hosts-this-in-r";
    let said = r_plan_error(
        cluster.rscript(&p2p_testkit::r::test_r_libs(), name),
        "pico routing, wrong cluster name (R plan())",
    );
    assert!(
        said.contains(&format!("{name} is not hosted for carol")),
        "{said}"
    );
    assert!(
        said.contains(&format!("moved carol's pipe to carol/{name}/future.p2p")),
        "{said}"
    );
}

#[test]
fn a_hosted_cluster_on_a_board_that_moves_members_is_joined_by_its_members_only() {
    let name = pico_cluster().host("pico-hosted");
    let status = ["status", "--cluster", name.as_str()];
    // bob is on the list: the host answers, no worker does (3, not a moved pipe's 4).
    let (code, stdout, stderr) = on_pico("bob", "hosted cluster, a member", &status);
    assert!(!stderr.contains("not hosted"), "{stderr}");
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("host    alice@"), "{stdout}");
    // dave is not: moved, and told so.
    let (code, _, stderr) = on_pico("dave", "hosted cluster, not on its list", &status);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        error_line(&stderr).contains(&format!("{name} is not hosted for dave")),
        "{stderr}"
    );
}

#[test]
fn a_user_left_off_the_access_list_is_told_whom_to_ask() {
    let cluster = shared_cluster();
    // alice hosts it for bob and carol only.
    let name = cluster.host("members-only");
    let stderr = failed_submit(cluster, "dave", &name, "not on the access list");
    let error = error_line(&stderr);
    assert!(
        error.contains(&format!(
            "dave is not on the access list of {name}/future.p2p"
        )),
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

/// What R's `plan()` on cluster `FP2P_TEST_CLUSTER` (default `alice/p2p`) and a first
/// future end with, run by `r` (an Rscript with its environment) within two minutes.
fn r_plan_error(mut r: Command, what: &str) -> String {
    let started = Instant::now();
    let mut r = r
        .args([
            "-e",
            "library(future); \
             msg <- tryCatch({ plan(future.p2p::pico_p2p, \
                                    cluster = Sys.getenv('FP2P_TEST_CLUSTER', 'alice/p2p')); \
                               value(future(1)); 'no error' }, \
                             error = conditionMessage); \
             plan(sequential); cat(msg)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Rscript starts");
    let status = wait_bounded(&mut r, Duration::from_secs(120));
    let output = r.wait_with_output().expect("its output");
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    println!(
        "{what}: failed after {:.2} s: {said}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

#[test]
fn r_without_the_program_names_the_option_to_set() {
    let mut r = Command::new("Rscript");
    r.env("R_LIBS", p2p_testkit::r::test_r_libs())
        // Neither on the PATH nor configured.
        .env("PATH", "/usr/bin:/bin")
        .env_remove("R_FUTURE_P2P_BIN");
    let said = r_plan_error(r, "R without future-p2p");
    assert!(
        said.contains("cannot find the future-p2p program"),
        "{said}"
    );
    assert!(said.contains("options(future.p2p.bin"), "{said}");
    assert!(said.contains("R_FUTURE_P2P_BIN"), "{said}");
}
