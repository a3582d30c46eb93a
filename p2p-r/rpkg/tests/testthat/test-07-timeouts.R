test_that("a future past future.p2p.timeout is resolved, and value() says what it waited for", {
  skip_without_cluster()
  use_cluster()
  old <- options(future.p2p.timeout = 3)
  on.exit(options(old))
  f <- future({
    Sys.sleep(60)
    1
  })
  t0 <- Sys.time()
  expect_true(wait_for(function() resolved(f), timeout = 20))
  expect_error(value(f), "waited 3 s \\(option future.p2p.timeout\\) for .*future", class = "FutureError")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 20)
})

test_that("future_lapply() ends at future.p2p.timeout instead of waiting forever", {
  skip_without_cluster()
  use_cluster()
  old <- options(future.p2p.timeout = 3)
  on.exit(options(old))
  t0 <- Sys.time()
  ## future.apply warns that it cancels the other futures.
  expect_error(
    suppressWarnings(future.apply::future_lapply(1:2, function(i) Sys.sleep(60))),
    "option future.p2p.timeout"
  )
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 30)
})

test_that("with_progress() under another plan, then future_lapply() with progress here", {
  skip_without_cluster()
  old <- options(progressr.enable = TRUE)
  on.exit(options(old))
  plan(sequential)
  progressr::with_progress({
    p <- progressr::progressor(3L)
    for (i in 1:3) p()
  }, handlers = progressr::handler_void())
  use_cluster()
  updates <- 0L
  withCallingHandlers(
    out <- progressr::with_progress({
      p <- progressr::progressor(20L)
      future.apply::future_lapply(1:20, function(i) {
        p()
        i
      })
    }, handlers = progressr::handler_void()),
    progression = function(cond) {
      if (identical(cond$type, "update")) updates <<- updates + 1L
    }
  )
  expect_identical(unlist(out), 1:20)
  expect_identical(updates, 20L)
})
