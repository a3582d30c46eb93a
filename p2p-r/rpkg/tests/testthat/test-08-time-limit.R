## Issue 11: every future is bounded. Option future.p2p.time_limit (seconds) is the
## client's limit, given to the bridge when it starts.

## Stops this session's bridges, so the next plan() starts one with the current options.
fresh_bridge <- function() {
  plan(sequential)
  bridges <- future.p2p:::.bridges
  for (key in ls(bridges)) {
    future.p2p:::bridge_stop(bridges[[key]])
    rm(list = key, envir = bridges)
  }
  use_cluster()
}

test_that("a future past the client's time limit fails as timed out, and frees its worker", {
  skip_without_cluster()
  ensure_workers(3L)
  old <- options(future.p2p.time_limit = 3)
  on.exit({
    options(old)
    fresh_bridge()
  })
  fresh_bridge()
  t0 <- Sys.time()
  f <- future({
    Sys.sleep(120)
    1
  })
  expect_error(value(f), "time_limit", class = "FutureError")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 60)
  ## The hung future's slot is free again: every worker takes a future.
  expect_true(wait_for(function() nbrOfFreeWorkers() == 3L, timeout = 30))
  fs <- lapply(1:3, function(i) future(Sys.getpid()))
  expect_true(all(vapply(fs, value, 0) != Sys.getpid()))
})
