//! What a future costs with our plan: `value(future(1))` latency on a warm worker of a
//! local cluster next to `plan(multisession)` and `plan(sequential)` in the same R, and a
//! `future_lapply()` of 1,000 trivial elements, with ratios against multisession and
//! sequential. It runs once per R library given (each first on `R_LIBS`), by default
//! R's own (Debian's future 1.31) and `.ci/r-lib/cran` (CRAN's future, made by
//! .ci/setup/45-r-cran.sh), so both generations of future are measured in one run.
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example r_plan_bench [-- LIBRARY...]   # "" for R's own
//! ```
//!
//! The cluster is that of the R test suite (tests/common/cluster.rs): a hub on 127.0.0.1,
//! alice hosting a cluster per library, and two workers of bob's started from R (with the
//! same libraries). The `future-p2p` binary is `FUTURE_P2P_BIN`, or the one built next to
//! this example.

#[path = "../tests/common/cluster.rs"]
mod cluster;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::{LocalCluster, wait_bounded};

const R_BENCH: &str = r#"
suppressPackageStartupMessages({ library(future); library(future.apply) })
options(future.p2p.timeout = 300)
workers <- lapply(1:2, function(i) processx::process$new(
  Sys.getenv("R_FUTURE_P2P_BIN"),
  c("worker", "--cluster", Sys.getenv("FP2P_TEST_CLUSTER"), "--hello-interval", "2",
    paste0("--ssh-args=", Sys.getenv("FP2P_TEST_WORKER_SSH_ARGS"))),
  stdout = NULL, stderr = NULL, cleanup = TRUE, cleanup_tree = TRUE))
latency <- function(n = 30L) {
  value(future(1))                       # warm up: worker, session, R process
  t <- vapply(seq_len(n), function(i) system.time(value(future(1)))[["elapsed"]], 0)
  median(t)
}
lapply_time <- function() {
  future_lapply(1:10, identity)          # warm up
  system.time(future_lapply(1:1000, function(i) i))[["elapsed"]]
}
run <- function(name, setup) {
  setup()
  data.frame(plan = name, latency_ms = 1000 * latency(), lapply_s = lapply_time())
}
rows <- rbind(
  run("sequential", function() plan(sequential)),
  run("multisession (2)", function() plan(multisession, workers = 2L)),
  run("future.p2p (2 warm workers)", function() {
    plan(future.p2p::pico_p2p, cluster = Sys.getenv("FP2P_TEST_CLUSTER"))
    deadline <- Sys.time() + 120
    while (nbrOfWorkers() < 2L && Sys.time() < deadline) Sys.sleep(0.2)
  })
)
plan(sequential)
cat(sprintf("\nfuture %s, future.apply %s (R_LIBS=%s)\n", packageVersion("future"),
            packageVersion("future.apply"), Sys.getenv("R_LIBS")))
cat("\n| plan | value(future(1)) median | x multisession | x sequential | future_lapply(1:1000) | x multisession | x sequential |\n")
cat("|---|---:|---:|---:|---:|---:|---:|\n")
for (i in seq_len(nrow(rows))) {
  cat(sprintf("| %s | %.2f ms | %.2f | %.1f | %.3f s | %.2f | %.1f |\n", rows$plan[i],
              rows$latency_ms[i], rows$latency_ms[i] / rows$latency_ms[2L],
              rows$latency_ms[i] / rows$latency_ms[1L], rows$lapply_s[i],
              rows$lapply_s[i] / rows$lapply_s[2L], rows$lapply_s[i] / rows$lapply_s[1L]))
}
for (w in workers) w$kill_tree()
"#;

/// `FUTURE_P2P_BIN`, or `future-p2p` in the target directory above `examples/`.
fn future_p2p_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FUTURE_P2P_BIN") {
        return PathBuf::from(bin);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("future-p2p")))
        .unwrap_or_else(|| PathBuf::from("future-p2p"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = future_p2p_bin();
    if !bin.is_file() {
        return Err(format!(
            "no future-p2p binary at {}: `cargo build --release -p p2p-cli --bin future-p2p` first, or set FUTURE_P2P_BIN",
            bin.display()
        )
        .into());
    }
    let library = tempfile::tempdir()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(p2p_r::rpkg::install(Path::new("R"), library.path()))?;
    let mut libraries: Vec<OsString> = std::env::args_os().skip(1).collect();
    if libraries.is_empty() {
        libraries.push(OsString::new());
        let cran = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/r-lib/cran");
        if cran.is_dir() {
            libraries.push(cran.canonicalize()?.into_os_string());
        }
    }
    let cluster = LocalCluster::start(&bin);
    for (i, extra) in libraries.iter().enumerate() {
        let mut r_libs = library.path().as_os_str().to_owned();
        if !extra.is_empty() {
            r_libs.push(":");
            r_libs.push(extra);
        }
        let name = cluster.host(&format!("bench{i}"));
        let mut r = cluster
            .rscript(&r_libs, &name)
            .args(["-e", R_BENCH])
            .spawn()?;
        let status = wait_bounded(&mut r, Duration::from_secs(900));
        if !status.success() {
            return Err(format!("the R bench with R_LIBS={r_libs:?} failed ({status})").into());
        }
    }
    Ok(())
}
