## future.tests::check(plan = "future.p2p::pico_p2p"), the futureverse's conformance suite
## for future backends, on a local cluster (p2p-r/tests/r_cluster.rs) with two of bob's
## workers. Prints the counts and exits with status 1 on any error or timeout.
##
## future.tests 0.9 needs future >= 1.40; with Debian's future 1.31 it is future.tests
## 0.8.0 (.ci/r-lib/debian), the last release that supports it.
if (!requireNamespace("future.tests", quietly = TRUE)) {
  stop("the future.tests package is not installed in this R (R_LIBS=", Sys.getenv("R_LIBS"),
       "): .ci/setup/45-r-cran.sh installs it into .ci/r-lib/debian (for Debian's future) ",
       "and .ci/r-lib/cran; run the tests with R_LIBS set to one of them")
}
source(Sys.getenv("FP2P_TEST_HELPER"))   # start_worker(), wait_for(), cluster_name
options(future.p2p.cluster = cluster_name)

workers <- list(start_worker(), start_worker())
plan(future.p2p::pico_p2p)
if (!wait_for(function() nbrOfWorkers() == length(workers), timeout = 60)) {
  stop("the cluster did not report ", length(workers), " workers within 60 s")
}
plan(sequential)

cat(sprintf("future.tests %s, future %s\n", packageVersion("future.tests"), packageVersion("future")))
started <- Sys.time()
results <- future.tests::check(plan = "future.p2p::pico_p2p", timeout = 120, exit_value = FALSE)
took <- as.numeric(Sys.time() - started, units = "secs")

outcome <- function(result) {
  if (inherits(result$skipped, "TestSkipped")) "skip"
  else if (inherits(result$error, "TimeoutError")) "timeout"
  else if (inherits(result$error, "error")) "error"
  else "ok"
}
outcomes <- unlist(lapply(results[[1L]], function(test) vapply(test, outcome, "")))
counts <- table(factor(outcomes, levels = c("ok", "skip", "error", "timeout")))
cat(sprintf("future.tests on future %s: %d ok, %d skips, %d errors, %d timeouts in %.0f s\n",
            packageVersion("future"), counts[["ok"]], counts[["skip"]], counts[["error"]],
            counts[["timeout"]], took))
for (w in workers) w$kill_tree()
quit(save = "no", status = if (counts[["error"]] + counts[["timeout"]] > 0L) 1L else 0L)
