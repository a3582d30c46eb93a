test_that("resolved() never blocks, and a cancelled future fails at once", {
  skip_without_cluster()
  use_cluster()
  f <- future({
    Sys.sleep(60)
    1
  })
  t0 <- Sys.time()
  for (i in 1:5) expect_false(resolved(f))
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 2)
  expect_true(wait_for(function() {
    resolved(f)
    identical(future_mailbox(f)$state, "running")
  }, timeout = 30))
  t0 <- Sys.time()
  future.p2p::p2p_cancel(f)
  expect_error(value(f), "cancelled", class = "FutureError")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 20)
})

test_that("a worker killed mid-future: the future finishes on another worker", {
  skip_without_cluster()
  use_cluster()
  f <- future({
    Sys.sleep(3)
    Sys.getpid()
  })
  expect_true(wait_for(function() {
    resolved(f)
    future_mailbox(f)$state %in% c("sent", "running")
  }, timeout = 30))
  peer <- future_mailbox(f)$detail
  pid <- sub("^.*:", "", peer)
  worker <- get0(pid, envir = .test_workers)
  expect_false(is.null(worker))
  worker$kill_tree()
  rm(list = pid, envir = .test_workers)
  v <- value(f)
  expect_true(is.numeric(v))
  expect_false(any(ancestors(v) == as.integer(pid)))
  start_worker()
})
