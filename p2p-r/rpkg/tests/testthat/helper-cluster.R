## The cluster the suite runs on: a future-p2p hub, alice hosting a cluster for bob and
## carol (FP2P_TEST_CLUSTER), started by p2p-r/tests/r_cluster.rs, which passes
## everything in environment variables. This R session is carol; the workers it starts
## are bob's. Without a cluster (R CMD check) the tests that need one skip.

library(future)
## Attached as users do: future's tweak() finds a backend's tweakable settings (e.g.
## `interrupts`) through the attached plan function.
suppressPackageStartupMessages(library(future.p2p))

cluster_name <- Sys.getenv("FP2P_TEST_CLUSTER")
future_p2p <- Sys.getenv("R_FUTURE_P2P_BIN")
options(
  future.p2p.timeout = 120,       # bounds every value() of the suite
  future.p2p.connect_timeout = 60
)

## Tests that need the cluster start with this: without one (R CMD check) they skip.
skip_without_cluster <- function() {
  testthat::skip_if_not(
    nzchar(cluster_name),
    "needs a future-p2p cluster (cargo test -p p2p-r --test r_cluster provides one)"
  )
}

use_cluster <- function() plan(future.p2p::pico_p2p, cluster = cluster_name)

## Polls `condition()` every 0.1 s for up to `timeout` seconds.
wait_for <- function(condition, timeout = 60) {
  deadline <- Sys.time() + timeout
  while (Sys.time() < deadline) {
    if (isTRUE(condition())) return(TRUE)
    Sys.sleep(0.1)
  }
  FALSE
}

## Workers started by the suite, by process id (their peer ids end in `:pid`).
.test_workers <- new.env(parent = emptyenv())

start_worker <- function() {
  log <- tempfile("worker-", fileext = ".log")
  worker <- processx::process$new(
    future_p2p,
    c("worker", "--cluster", cluster_name, "--hello-interval", "2", "--duration", "1200",
      paste0("--ssh-args=", Sys.getenv("FP2P_TEST_WORKER_SSH_ARGS"))),
    stdout = "|", stderr = log, cleanup = TRUE, cleanup_tree = TRUE
  )
  joined <- wait_for(function() {
    worker$poll_io(100L)
    any(grepl("joined", worker$read_output_lines()))
  }, timeout = 120)
  if (!joined) {
    worker$kill_tree()
    stop("a worker did not join: ", paste(readLines(log), collapse = "\n"))
  }
  assign(as.character(worker$get_pid()), worker, envir = .test_workers)
  worker
}

## Process ids of a process's ancestors (Linux /proc).
ancestors <- function(pid) {
  out <- integer(0L)
  while (pid > 1L && file.exists(sprintf("/proc/%d/stat", pid))) {
    stat <- readLines(sprintf("/proc/%d/stat", pid), warn = FALSE)
    ## The command name may hold spaces; fields after its closing parenthesis are safe.
    fields <- strsplit(sub("^.*\\) ", "", stat), " ", fixed = TRUE)[[1L]]
    pid <- as.integer(fields[2L])
    out <- c(out, pid)
  }
  out
}

## The mailbox the bridge keeps for a future (its state and the worker it went to).
future_mailbox <- function(f) future.p2p:::mailbox(f$bridge, f$bridge_id)

## At least `n` of the suite's workers, started as needed. A worker that exited without
## a test stopping it is a failure: workers are killed only by the tests that say so
## (they drop it from .test_workers).
ensure_workers <- function(n) {
  for (key in ls(.test_workers)) {
    worker <- get(key, envir = .test_workers)
    if (!worker$is_alive()) {
      rm(list = key, envir = .test_workers)
      testthat::fail(sprintf("test worker %s exited (status %s): %s", key,
                             format(worker$get_exit_status()),
                             paste(tail(readLines(worker$get_error_file()), 5L), collapse = "\n")))
    }
  }
  while (length(ls(.test_workers)) < n) start_worker()
  invisible()
}
