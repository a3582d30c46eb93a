//! future-p2p and the original future.p2p 0.4.0 (the real package, ../shared/r-peers) in
//! one cluster. One private world on our hub with every public default in place (see
//! common/interop.rs), one cluster hosted by `future-p2p host`, scenarios one after the
//! other so that CI pays for one set of R processes:
//! 1. `future-p2p user` learns the username as 0.4.0 does (`ssh pico.sh user`), and says
//!    what to do when the key is unknown;
//! 2. an original client on our worker alone: value, message, warning, stdout, error, a
//!    crash of our R process and our worker's time limit reaching it as FutureErrors,
//!    future_lapply;
//! 3. an original worker joins; the original client and our client (plan(pico_p2p) with no
//!    host, ssh_args or user set) each run future_lapply over 50 elements at the same time,
//!    with a warning, a message and an error relayed and every value exactly once;
//! 4. our worker leaves: our client on the original worker alone (0.4.0's RDS Future out,
//!    its RDS FutureResult back), value, message, warning, stdout, error, future_lapply;
//! 5. an original `host_cluster()` hosts a second cluster, which our worker and our client
//!    join.

#[path = "common/interop.rs"]
mod interop;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use interop::{Finished, OriginalLibraries, R_OUT, World, enter_private_world};

const BIN: &str = env!("CARGO_BIN_EXE_future-p2p");
const BOOT: Duration = Duration::from_secs(120);
const CLIENT: Duration = Duration::from_secs(600);

/// Fails with every log of the world unless `run` succeeded.
fn expect_success(world: &World, run: &Finished) {
    assert!(
        run.succeeded(),
        "{} failed ({:?}):\n{}\n{}",
        run.name,
        run.status,
        run.output,
        world.all_logs()
    );
}

fn value<'a>(run: &'a Finished, values: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    values
        .get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{} printed no {key}:\n{}", run.name, run.output))
}

/// One future each with a message and a warning, with stdout, with an error; see
/// [`check_basics`].
const BASICS: &str = r#"
v <- catching(value(future({ message("hello"); warning("careful"); Sys.getenv("FP2P_WORKER_KIND") })))
out("kind", v)
out("messages", relayed$messages)
out("warnings", relayed$warnings)
out("stdout", capture.output(value(future(cat("printed\n")))))
out("error", tryCatch(value(future(stop("boom"))), error = messages_of))
"#;

/// What [`BASICS`] printed, its futures having run on a worker of `kind`.
fn check_basics(run: &Finished, values: &BTreeMap<String, String>, kind: &str) {
    assert_eq!(value(run, values, "kind"), kind);
    assert_eq!(value(run, values, "messages"), "hello");
    assert_eq!(value(run, values, "warnings"), "careful");
    assert_eq!(value(run, values, "stdout"), "printed");
    let error = value(run, values, "error");
    assert!(error.contains("boom"), "{error}");
}

/// The element function of the mixed run: a warning at 7, a message at 13, and who ran
/// it; then an error at 42 in a second future_lapply.
const MIXED_CLIENT: &str = r#"
f <- function(i) {
  if (i == 7) warning("w7")
  if (i == 13) message("m13")
  list(i = i, kind = Sys.getenv("FP2P_WORKER_KIND"))
}
t0 <- Sys.time()
res <- catching(future.apply::future_lapply(1:50, f, future.chunk.size = 5))
out("seconds", round(as.numeric(difftime(Sys.time(), t0, units = "secs")), 2))
out("values", vapply(res, function(r) r$i, 0))
out("kinds", vapply(res, function(r) r$kind, ""))
out("messages", relayed$messages)
out("warnings", relayed$warnings)
## One chunk: an error in one of several futures makes future (>= 1.40) cancel the others,
## and a future.p2p 0.4.0 client then waits for its cancelled futures for ever (in an
## all-original cluster too).
out("error", tryCatch({
  future.apply::future_lapply(1:50, function(i) if (i == 42) stop("boom42") else i,
                              future.chunk.size = 50)
  "none"
}, error = messages_of))
"#;

#[test]
fn one_cluster_both_implementations() {
    const NAME: &str = "one_cluster_both_implementations";
    if !enter_private_world(
        NAME,
        &[NAME, "--exact", "--nocapture", "--test-threads=1"],
        Duration::from_secs(1500),
    ) {
        return;
    }
    let mut world = World::start(
        Path::new(BIN),
        p2p_testkit::r::r_library(),
        OriginalLibraries::from_ci(),
    );

    // 1. The username comes from `ssh pico.sh user`, as the original asks it.
    let user = world.run("user", world.our_cli("carol", &["user"]), BOOT);
    expect_success(&world, &user);
    assert_eq!(user.output.trim(), "carol");
    let stranger = world.run("stranger", world.our_cli("mallory", &["user"]), BOOT);
    assert!(!stranger.succeeded(), "{}", stranger.output);
    assert!(
        stranger
            .output
            .contains("cannot learn your username from `ssh pico.sh user`"),
        "{}",
        stranger.output
    );

    // Our host: the board topic alice/p2p/future.p2p, which 0.4.0 peers open too.
    let host = world.our_cli(
        "alice",
        &["host", "--cluster", "p2p", "--users", "bob,carol,dave,erin"],
    );
    world.spawn("host", host);
    world.wait_for_line("host", BOOT, |line| {
        line.starts_with("hosting alice/p2p/future.p2p")
    });
    // Two slots: in the mixed run, one can serve the original client while our client's
    // futures stream through a warm session on the other.
    let mut our_worker = world.our_cli(
        "dave",
        &[
            "worker",
            "--cluster",
            "alice/p2p",
            "--hello-interval",
            "5",
            "--slots",
            "2",
            "--time-limit",
            "20",
        ],
    );
    our_worker.env("FP2P_WORKER_KIND", "ours");
    world.spawn("our-worker", our_worker);
    world.wait_for_line("our-worker", BOOT, |line| {
        line.contains(" joined alice/p2p")
    });

    // 2. The original client, with our worker alone in the cluster.
    let script = format!(
        r#"{R_OUT}
library(future)
plan(future.p2p::cluster, cluster = "alice/p2p")
{BASICS}
crash <- tryCatch(value(future(quit(save = "no"))), error = identity)
out("crash_class", class(crash)[1])
out("crash", gsub("\n", " ", conditionMessage(crash)))
slow <- tryCatch(value(future(Sys.sleep(120))), error = identity)
out("slow", paste(class(slow)[1], gsub("\n", " ", conditionMessage(slow))))
out("lapply", unlist(future.apply::future_lapply(1:10, function(i) i * i)))
"#
    );
    let run = world.run("original-alone", world.original_r("carol", &script), CLIENT);
    expect_success(&world, &run);
    let values = run.values();
    check_basics(&run, &values, "ours");
    // Our worker's R process died: the original client gets a FutureError, not a hang.
    assert_eq!(value(&run, &values, "crash_class"), "FutureError");
    assert!(
        value(&run, &values, "crash").contains("lost its R process"),
        "{}",
        run.output
    );
    // Past our worker's time limit: a FutureError too.
    let slow = value(&run, &values, "slow");
    assert!(
        slow.starts_with("FutureError") && slow.contains("time limit"),
        "{slow}"
    );
    assert_eq!(
        value(&run, &values, "lapply"),
        "1,4,9,16,25,36,49,64,81,100"
    );

    // 3. An original worker joins: both kinds of worker, both kinds of client at once.
    let mut original_worker = world.original_r(
        "bob",
        "future.p2p::worker(cluster = 'alice/p2p', duration = 3600)",
    );
    original_worker.env("FP2P_WORKER_KIND", "original");
    world.spawn("original-worker", original_worker);
    world.wait_for_line("original-worker", BOOT, |line| {
        line.contains("waiting for request")
    });
    let original = world.original_r(
        "carol",
        &format!(
            "{R_OUT}\nlibrary(future)\nplan(future.p2p::cluster, cluster = 'alice/p2p')\n{MIXED_CLIENT}"
        ),
    );
    let ours = world.our_r(
        "erin",
        &format!(
            "{R_OUT}\nlibrary(future)\nplan(future.p2p::pico_p2p, cluster = 'alice/p2p')\n{MIXED_CLIENT}"
        ),
    );
    world.spawn("original-client", original);
    let our_run = world.run("our-client", ours, CLIENT);
    let original_run = world.run_spawned("original-client", CLIENT);
    let expected: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    for run in [&original_run, &our_run] {
        expect_success(&world, run);
        let values = run.values();
        assert_eq!(
            value(run, &values, "values"),
            expected.join(","),
            "{}: every value once, in order",
            run.name
        );
        assert_eq!(value(run, &values, "messages"), "m13", "{}", run.name);
        assert_eq!(value(run, &values, "warnings"), "w7", "{}", run.name);
        assert!(
            value(run, &values, "error").contains("boom42"),
            "{}: {}",
            run.name,
            run.output
        );
        let kinds = value(run, &values, "kinds");
        assert!(
            kinds.split(',').all(|k| k == "ours" || k == "original"),
            "{}: {kinds}",
            run.name
        );
        println!(
            "{}: future_lapply(1:50) in {} s, elements by worker: {kinds}",
            run.name,
            value(run, &values, "seconds"),
        );
    }

    // 4. Our worker leaves: our client has the original worker alone, which gets
    // future.p2p 0.4.0's payloads (and would wait forever on ours).
    world.stop("our-worker");
    let script = format!(
        r#"{R_OUT}
library(future)
plan(future.p2p::pico_p2p, cluster = "alice/p2p")
{BASICS}
res <- future.apply::future_lapply(1:12, function(i) list(i = i, kind = Sys.getenv("FP2P_WORKER_KIND")))
out("values", vapply(res, function(r) r$i, 0))
out("kinds", unique(vapply(res, function(r) r$kind, "")))
"#
    );
    let run = world.run("ours-on-original", world.our_r("erin", &script), CLIENT);
    expect_success(&world, &run);
    let values = run.values();
    check_basics(&run, &values, "original");
    let expected: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    assert_eq!(value(&run, &values, "values"), expected.join(","));
    assert_eq!(value(&run, &values, "kinds"), "original");

    // 5. A cluster hosted by the original's host_cluster(): our worker and our client join.
    world.spawn(
        "original-host",
        world.original_r(
            "bob",
            "future.p2p::host_cluster(cluster = 'orig', users = c('dave', 'erin'))",
        ),
    );
    world.wait_for_line("original-host", BOOT, |line| line.contains("access list"));
    let mut our_worker = world.our_cli("dave", &["worker", "--cluster", "bob/orig"]);
    our_worker.env("FP2P_WORKER_KIND", "ours");
    world.spawn("our-worker-orig", our_worker);
    world.wait_for_line("our-worker-orig", BOOT, |line| {
        line.contains(" joined bob/orig")
    });
    let script = format!(
        r#"{R_OUT}
library(future)
plan(future.p2p::pico_p2p, cluster = "bob/orig")
res <- future.apply::future_lapply(1:6, function(i) list(i = i, kind = Sys.getenv("FP2P_WORKER_KIND")))
out("values", vapply(res, function(r) r$i, 0))
out("kinds", unique(vapply(res, function(r) r$kind, "")))
"#
    );
    let run = world.run(
        "ours-on-original-host",
        world.our_r("erin", &script),
        CLIENT,
    );
    expect_success(&world, &run);
    let values = run.values();
    assert_eq!(value(&run, &values, "values"), "1,2,3,4,5,6");
    assert_eq!(value(&run, &values, "kinds"), "ours");
}
