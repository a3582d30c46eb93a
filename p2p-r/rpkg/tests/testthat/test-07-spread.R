## Issue 11: futures use the whole cluster. The suite's workers (test-02, one slot each)
## are all idle here.

## The suite's worker process that ran R process `pid` (its evaluator is a child of it).
worker_of <- function(pid) {
  owner <- intersect(ancestors(pid), as.integer(ls(.test_workers)))
  if (length(owner) == 0L) NA_integer_ else owner[[1L]]
}

test_that("nbrOfWorkers() counts every worker slot right after plan()", {
  skip_without_cluster()
  ensure_workers(3L)
  ## A fresh bridge, as in a new R session: plan() starts it and asks for the count. (The
  ## bridge of the earlier tests may still count test-06's killed worker until its hello
  ## expires; a fresh one hears only the live workers, which answer its hello.)
  plan(sequential)
  bridges <- future.p2p:::.bridges
  for (key in ls(bridges)) {
    future.p2p:::bridge_stop(bridges[[key]])
    rm(list = key, envir = bridges)
  }
  t0 <- Sys.time()
  use_cluster()
  counted <- nbrOfWorkers()
  ## Loose: joining includes an ssh connection on a busy machine. The count itself must
  ## be right at once (the workers answer the bridge's hello), not after their next
  ## periodic hello.
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 15)
  expect_equal(counted, 3L)
})

test_that("futures spread over every worker: 2W sleeps take about two rounds", {
  skip_without_cluster()
  ensure_workers(3L)
  use_cluster()
  expect_true(wait_for(function() nbrOfFreeWorkers() == 3L, timeout = 30))
  W <- 3L
  t0 <- Sys.time()
  fs <- lapply(seq_len(2L * W), function(i) future({
    Sys.sleep(2)
    Sys.getpid()
  }))
  pids <- vapply(fs, value, 0)
  wall <- as.numeric(Sys.time() - t0, units = "secs")
  owners <- vapply(pids, worker_of, 0L)
  expect_false(anyNA(owners))
  ## Every worker ran some: one worker alone would take 2W x 2 s = 12 s.
  expect_setequal(unique(owners), as.integer(ls(.test_workers)))
  expect_lt(wall, 10)
})

test_that("future_sapply() spreads its chunks over the worker processes", {
  skip_without_cluster()
  ensure_workers(3L)
  use_cluster()
  expect_true(wait_for(function() nbrOfFreeWorkers() == 3L, timeout = 30))
  pids <- future.apply::future_sapply(1:6, function(i) {
    Sys.sleep(1)
    Sys.getpid()
  })
  owners <- vapply(pids, worker_of, 0L)
  expect_false(anyNA(owners))
  expect_equal(length(unique(owners)), 3L)
})
