//! Do R futures use the whole cluster? On a local cluster of real processes (the hub, the
//! host and W = 2 `future-p2p worker` processes, one R evaluator slot each), an R session
//! under `plan(future.p2p::pico_p2p)`:
//! - asks `nbrOfWorkers()` right after `plan()` (the workers said their periodic hello
//!   long before; the bridge's hello makes them answer at once);
//! - runs N = 4W futures of `Sys.sleep(1)` at once, and `future_sapply()` over N such
//!   elements, against the ideal ceil(N/W) s, and counts the worker processes used.
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example r_spread_bench
//! ```
//!
//! The cluster is that of the R test suite (tests/common/cluster.rs); the `future-p2p`
//! binary is `FUTURE_P2P_BIN`, or the one built next to this example.

#[path = "../tests/common/cluster.rs"]
mod cluster;

use std::path::Path;
use std::time::Duration;

use cluster::{LocalCluster, wait_bounded};

const R_BENCH: &str = r#"
suppressPackageStartupMessages({ library(future); library(future.apply) })
options(future.p2p.timeout = 300)
W <- 2L
workers <- lapply(seq_len(W), function(i) processx::process$new(
  Sys.getenv("R_FUTURE_P2P_BIN"),
  c("worker", "--cluster", Sys.getenv("FP2P_TEST_CLUSTER"), "--slots", "1",
    paste0("--ssh-args=", Sys.getenv("FP2P_TEST_WORKER_SSH_ARGS"))),
  stdout = "|", stderr = NULL, cleanup = TRUE, cleanup_tree = TRUE))
## Every worker has joined (it says so) before plan(): their periodic hellos (every 30 s)
## are long past, so only their answers to the bridge's hello can count them.
for (w in workers) {
  deadline <- Sys.time() + 120
  joined <- FALSE
  while (!joined && Sys.time() < deadline) {
    w$poll_io(100L)
    joined <- any(grepl("joined", w$read_output_lines()))
  }
  if (!joined) stop("a worker did not join within 120 s")
}
Sys.sleep(2)                                 # past their first hello
t0 <- Sys.time()
plan(future.p2p::pico_p2p, cluster = Sys.getenv("FP2P_TEST_CLUSTER"))
counted <- nbrOfWorkers()
count_s <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
invisible(future_sapply(seq_len(2L * W), function(i) Sys.getpid()))   # warm up
N <- 4L * W
ideal <- ceiling(N / W)
spread_s <- system.time({
  fs <- lapply(seq_len(N), function(i) future({ Sys.sleep(1); Sys.getpid() }))
  pids <- unlist(value(fs))
})[["elapsed"]]
apply_s <- system.time(
  apply_pids <- future_sapply(seq_len(N), function(i) { Sys.sleep(1); Sys.getpid() })
)[["elapsed"]]
cat(sprintf("\nR %s, future %s, %d one-slot workers\n\n", getRversion(),
            packageVersion("future"), W))
cat("| measurement | value | vs ideal |\n|---|---:|---:|\n")
cat(sprintf("| nbrOfWorkers() right after plan() | %d (in %.2f s) | %d expected |\n",
            counted, count_s, W))
cat(sprintf("| %d futures of Sys.sleep(1) at once | %.2f s on %d workers | efficiency %.2f (ideal %d s) |\n",
            N, spread_s, length(unique(pids)), ideal / spread_s, ideal))
cat(sprintf("| future_sapply() over %d such elements | %.2f s on %d workers | efficiency %.2f |\n",
            N, apply_s, length(unique(apply_pids)), ideal / apply_s))
plan(sequential)
for (w in workers) w$kill_tree()
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = p2p_testkit::processes::future_p2p_binary()?;
    let library = tempfile::tempdir()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(p2p_r::rpkg::install(Path::new("R"), library.path()))?;
    let cluster = LocalCluster::start(&bin);
    let name = cluster.host("spread");
    let mut r_libs = library.path().as_os_str().to_owned();
    if let Some(extra) = std::env::var_os("R_LIBS") {
        r_libs.push(":");
        r_libs.push(extra);
    }
    let mut r = cluster
        .rscript(&r_libs, &name)
        .args(["-e", R_BENCH])
        .spawn()?;
    let status = wait_bounded(&mut r, Duration::from_secs(900));
    if !status.success() {
        return Err(format!("the R bench failed ({status})").into());
    }
    Ok(())
}
