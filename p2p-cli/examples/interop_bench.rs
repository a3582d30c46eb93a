//! A mixed cluster (future.p2p 0.4.0 and future-p2p) next to an all-original and an
//! all-ours cluster, measured in the same run: `future_lapply(1:50, f)` (chunks of 5, as
//! the original's ten workers make them) from each kind of client, each cluster with two
//! workers on our hub.
//!
//! ```sh
//! bash .ci/setup/46-r-original.sh          # the original package and CRAN's future
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example interop_bench # as root: it needs unshare
//! ```
//!
//! | cluster      | host     | workers              | clients (at the same time) |
//! |--------------|----------|----------------------|----------------------------|
//! | all-original | original | 2 original           | original                   |
//! | all-ours     | ours     | 2 future-p2p         | ours                       |
//! | mixed        | ours     | 1 original, 1 ours   | original and ours          |
//!
//! Our clients send this project's payloads to workers that read them (`rpayload-v1`) and
//! future.p2p 0.4.0's, made on demand, to original workers, so in the mixed cluster the
//! elements of both clients may run on both kinds of worker (the table counts where they
//! ran).
//!
//! Each cluster lives in a private world of its own (p2p-cli/tests/common/interop.rs): every
//! public name resolves to that world's loopback, where the hub serves the board, the
//! mailbox and the relay. The `future-p2p` binary is `FUTURE_P2P_BIN`, or the one built
//! next to this example. A timed target is never asserted here: this prints a table.

#[path = "../tests/common/interop.rs"]
mod interop;

use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::{OriginalLibraries, R_OUT, World, enter_private_world};

/// The elements: 50 of them, each a few milliseconds of work, with a warning and a
/// message relayed as in the mixed test.
const CLIENT: &str = r#"
f <- function(i) {
  if (i == 7) warning("w7")
  if (i == 13) message("m13")
  x <- 0
  for (k in seq_len(20000)) x <- x + sqrt(k)
  list(i = i, kind = Sys.getenv("FP2P_WORKER_KIND"))
}
catching(future.apply::future_lapply(1:5, f, future.chunk.size = 5))  # warm up
t0 <- Sys.time()
res <- catching(future.apply::future_lapply(1:50, f, future.chunk.size = 5))
out("seconds", as.numeric(difftime(Sys.time(), t0, units = "secs")))
out("ok", identical(vapply(res, function(r) r$i, 0), as.numeric(1:50)))
kinds <- vapply(res, function(r) r$kind, "")
out("original", sum(kinds == "original"))
out("ours", sum(kinds == "ours"))
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Original,
    Ours,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Original => "original",
            Kind::Ours => "ours",
        }
    }
}

/// One cluster of the bench.
struct Setup {
    name: &'static str,
    host: Kind,
    workers: [Kind; 2],
    clients: &'static [Kind],
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "all-original",
        host: Kind::Original,
        workers: [Kind::Original, Kind::Original],
        clients: &[Kind::Original],
    },
    Setup {
        name: "all-ours",
        host: Kind::Ours,
        workers: [Kind::Ours, Kind::Ours],
        clients: &[Kind::Ours],
    },
    Setup {
        name: "mixed",
        host: Kind::Ours,
        workers: [Kind::Original, Kind::Ours],
        clients: &[Kind::Original, Kind::Ours],
    },
];

/// Runs one cluster in this (private) world; prints a `row` line per client.
fn run_setup(setup: &Setup, bin: &Path, ours: &Path) {
    let mut world = World::start(bin, ours, OriginalLibraries::from_ci());
    let boot = Duration::from_secs(180);
    let host = match setup.host {
        Kind::Original => world.original_r(
            "alice",
            "future.p2p::host_cluster(cluster = 'p2p', users = c('bob', 'carol', 'dave', 'erin'), duration = 3600)",
        ),
        Kind::Ours => world.our_cli(
            "alice",
            &["host", "--cluster", "p2p", "--users", "bob,carol,dave,erin"],
        ),
    };
    world.spawn("host", host);
    match setup.host {
        Kind::Original => world.wait_for_line("host", boot, |line| line.contains("type=cluster")),
        Kind::Ours => {
            world.wait_for_line("host", boot, |line| line.starts_with("hosting alice/p2p"))
        }
    };
    for (user, kind) in ["bob", "dave"].into_iter().zip(setup.workers) {
        let mut worker = match kind {
            Kind::Original => world.original_r(
                user,
                "future.p2p::worker(cluster = 'alice/p2p', duration = 3600)",
            ),
            Kind::Ours => world.our_cli(
                user,
                &["worker", "--cluster", "alice/p2p", "--hello-interval", "5"],
            ),
        };
        worker.env("FP2P_WORKER_KIND", kind.name());
        world.spawn(user, worker);
        match kind {
            Kind::Original => {
                world.wait_for_line(user, boot, |line| line.contains("waiting for request"))
            }
            Kind::Ours => world.wait_for_line(user, boot, |line| line.contains(" joined ")),
        };
    }
    let mut clients = Vec::new();
    for (user, kind) in ["carol", "erin"].into_iter().zip(setup.clients) {
        let script = match kind {
            Kind::Original => format!(
                "{R_OUT}\nlibrary(future)\nplan(future.p2p::cluster, cluster = 'alice/p2p')\n{CLIENT}"
            ),
            Kind::Ours => format!(
                "{R_OUT}\nlibrary(future)\nplan(future.p2p::pico_p2p, cluster = 'alice/p2p')\n\
                 deadline <- Sys.time() + 60\n\
                 while (nbrOfWorkers() < {} && Sys.time() < deadline) Sys.sleep(0.2)\n{CLIENT}",
                setup.workers.iter().filter(|k| **k == Kind::Ours).count()
            ),
        };
        let command = match kind {
            Kind::Original => world.original_r(user, &script),
            Kind::Ours => world.our_r(user, &script),
        };
        clients.push((format!("{}-client", kind.name()), command));
    }
    // All clients at the same time: the last runs here while the others run beside it.
    let timeout = Duration::from_secs(900);
    let (last, last_command) = clients.pop().expect("every setup has a client");
    let others: Vec<String> = clients
        .into_iter()
        .map(|(name, command)| {
            world.spawn(&name, command);
            name
        })
        .collect();
    let mut runs = vec![world.run(&last, last_command, timeout)];
    for name in others {
        runs.push(world.run_spawned(&name, timeout));
    }
    for run in runs {
        let values = run.values();
        let get = |key: &str| values.get(key).cloned().unwrap_or_else(|| "?".into());
        if !run.succeeded() || get("ok") != "TRUE" {
            eprintln!(
                "{} of {} failed:\n{}",
                run.name,
                setup.name,
                world.all_logs()
            );
        }
        println!(
            "row {}|{}|{}|{}|{}|{}",
            setup.name,
            run.name,
            get("seconds"),
            get("ok"),
            get("original"),
            get("ours")
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = p2p_testkit::processes::future_p2p_binary()?;
    if let Ok(setup) = std::env::var("FUTURE_P2P_BENCH_SETUP") {
        // In a private world: run that cluster.
        let setup = SETUPS
            .iter()
            .find(|s| s.name == setup)
            .ok_or("unknown setup")?;
        let ours = PathBuf::from(std::env::var("FUTURE_P2P_BENCH_LIBRARY")?);
        if enter_private_world(setup.name, &[], Duration::from_secs(1800)) {
            run_setup(setup, &bin, &ours);
        }
        return Ok(());
    }
    let library = tempfile::tempdir()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(p2p_r::rpkg::install(Path::new("R"), library.path()))?;
    let mut rows = Vec::new();
    for setup in &SETUPS {
        let output = std::process::Command::new(std::env::current_exe()?)
            .env("FUTURE_P2P_BENCH_SETUP", setup.name)
            .env("FUTURE_P2P_BENCH_LIBRARY", library.path())
            .env("FUTURE_P2P_BIN", &bin)
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            eprintln!("{}\n{}", stdout, String::from_utf8_lossy(&output.stderr));
            return Err(format!("setup {} failed", setup.name).into());
        }
        rows.extend(
            stdout
                .lines()
                .filter_map(|line| line.split_once("row "))
                .map(|(_, row)| row.split('|').map(str::to_owned).collect::<Vec<_>>()),
        );
    }
    let baseline = |client: &str, setup: &str| {
        rows.iter()
            .find(|row| row[0] == setup && row[1] == client)
            .and_then(|row| row[2].parse::<f64>().ok())
    };
    println!("\nfuture_lapply(1:50, f) in chunks of 5, two workers per cluster, same run:\n");
    println!(
        "| cluster | client | seconds | x all-original (original client) | x all-ours (our client) | elements on original / our workers | values ok |"
    );
    println!("|---|---|---:|---:|---:|---|---|");
    let original = baseline("original-client", "all-original");
    let ours = baseline("ours-client", "all-ours");
    for row in &rows {
        let seconds: Option<f64> = row[2].parse().ok();
        let ratio = |base: Option<f64>| match (seconds, base) {
            (Some(s), Some(b)) if b > 0.0 => format!("{:.2}", s / b),
            _ => "-".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} / {} | {} |",
            row[0],
            row[1],
            seconds.map_or("?".to_owned(), |s| format!("{s:.2}")),
            ratio(original),
            ratio(ours),
            row[4],
            row[5],
            row[3]
        );
    }
    Ok(())
}
