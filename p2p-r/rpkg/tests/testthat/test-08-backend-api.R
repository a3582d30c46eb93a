## What future >= 1.40 asks of a FutureBackend; future 1.31 (the legacy API) has none of
## it, and skips what it cannot have.

has_api <- future.p2p:::has_backend_api()
has_cancel <- exists("cancel", envir = asNamespace("future"), mode = "function")

test_that("plan() builds a PicoP2PFutureBackend that knows its futures (future >= 1.40)", {
  skip_without_cluster()
  skip_if_not(has_api, "future < 1.40 has no FutureBackend API")
  use_cluster()
  backend <- plan("backend")
  expect_s3_class(backend, "PicoP2PFutureBackend")
  expect_identical(backend[["cluster"]], cluster_name)
  f <- future({
    Sys.sleep(2)
    1
  })
  listed <- future::listFutures(backend)
  expect_true(any(vapply(listed$future, function(x) identical(x[[1L]], f), NA)))
  expect_output(print(backend), "Argument .cluster.")
  expect_equal(value(f), 1)
  expect_false(any(vapply(future::listFutures(backend)$future, function(x) identical(x[[1L]], f), NA)))
})

test_that("tweaking the plan's backend settings is not an unknown argument", {
  skip_without_cluster()
  expect_warning(
    plan(future.p2p::pico_p2p, cluster = cluster_name, interrupts = TRUE),
    regexp = if (has_api) NA else "unknown"
  )
  expect_equal(value(future(2)), 2)
  plan(sequential)
})

test_that("changing the plan warns of nothing and cancels what still runs", {
  skip_without_cluster()
  ensure_workers(3L)
  use_cluster()
  expect_equal(value(future(1)), 1)
  f <- future({
    Sys.sleep(60)
    1
  })
  done <- future(3)
  expect_true(wait_for(function() resolved(done), timeout = 30))
  expect_warning(plan(sequential), NA)
  if (!has_cancel) {
    ## future 1.31: no hook on a plan change; the bridge stays for its futures.
    future.p2p::p2p_cancel(f)
    expect_error(value(f), "cancelled", class = "FutureError")
    return(invisible())
  }
  ## The running future was cancelled; the one already resolved kept its result.
  expect_identical(f[["state"]], "canceled")
  expect_error(value(f), "cancelled", class = "FutureInterruptError")
  expect_equal(value(done), 3)
  expect_length(ls(future.p2p:::.bridges), 0L)
})

test_that("cancel() interrupts a future, and reset() launches it again (future >= 1.49)", {
  skip_without_cluster()
  skip_if_not(has_cancel, "future < 1.49 has no cancel()")
  use_cluster()
  f <- future({
    Sys.sleep(3)
    42
  })
  t0 <- Sys.time()
  future::cancel(f)
  expect_true(resolved(f))
  expect_error(value(f), "cancelled", class = "FutureInterruptError")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 2)
  f <- future::reset(f)
  expect_identical(f[["state"]], "created")
  expect_equal(value(f), 42)
})

test_that("with interrupts = FALSE, cancel() leaves the worker alone", {
  skip_without_cluster()
  skip_if_not(has_cancel, "future < 1.49 has no cancel()")
  plan(future.p2p::pico_p2p, cluster = cluster_name, interrupts = FALSE)
  on.exit(plan(sequential))
  f <- future({
    Sys.sleep(2)
    Sys.getpid()
  })
  future::cancel(f)
  expect_identical(f[["state"]], "canceled")
  expect_error(value(f), "cancelled", class = "FutureInterruptError")
})
