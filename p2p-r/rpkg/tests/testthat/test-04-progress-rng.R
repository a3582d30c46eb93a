test_that("progressr updates arrive before the future resolves", {
  skip_without_cluster()
  use_cluster()
  f <- future({
    options(progressr.enable = TRUE)
    p <- progressr::progressor(3L)
    for (i in 1:3) {
      p()
      Sys.sleep(0.2)
    }
    Sys.sleep(3)
    "done"
  })
  arrivals <- numeric(0L)
  withCallingHandlers(
    expect_true(wait_for(function() resolved(f), timeout = 60)),
    ## progressr 1.0 also signals "initiate" and, when the future ends, "finish".
    progression = function(cond) {
      if (identical(cond$type, "update")) arrivals <<- c(arrivals, as.numeric(Sys.time()))
    }
  )
  resolved_at <- as.numeric(Sys.time())
  expect_equal(value(f), "done")
  expect_gte(length(arrivals), 3L)
  ## The updates came while the future still ran, not with its result.
  expect_true(all(arrivals < resolved_at - 1.5))
})

test_that("launching futures leaves the RNG alone; seed = TRUE is honoured", {
  skip_without_cluster()
  ## A fresh bridge, so that starting its process happens under test too.
  for (name in ls(future.p2p:::.bridges)) {
    future.p2p:::bridge_stop(get(name, envir = future.p2p:::.bridges))
    rm(list = name, envir = future.p2p:::.bridges)
  }
  set.seed(42L)
  before <- .Random.seed
  use_cluster()
  v <- value(future(1))
  expect_identical(.Random.seed, before)

  plan(sequential)
  reference <- value(future(runif(3), seed = 7L))
  use_cluster()
  expect_identical(value(future(runif(3), seed = 7L)), reference)
  expect_length(value(future(runif(2), seed = TRUE)), 2L)
})
