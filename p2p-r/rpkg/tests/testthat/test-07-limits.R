test_that("a future over the payload limit is refused before it is sent, naming the limit", {
  skip_without_cluster()
  old <- options(future.p2p.max_payload = 100000)
  on.exit({
    options(old)
    plan(sequential)
  })
  plan(future.p2p::pico_p2p, cluster = cluster_name)
  big <- raw(1e6)
  expect_error(
    value(future(length(big))),
    "more than the limit of 100000 bytes.*future.p2p.max_payload",
    class = "FutureError"
  )
  ## A small future on the same plan still goes through.
  expect_identical(value(future(1L)), 1L)
})

test_that("large globals are uploaded on a connection of their own and arrive whole, in order with small futures", {
  skip_without_cluster()
  on.exit(plan(sequential))
  use_cluster()
  x <- as.double(seq_len(3e5))                      # 2.4 MB: over the upload threshold
  small <- 1:10
  fs <- list(
    future(sum(x), label = "big \u00e9t\u00e9"),
    future(sum(small)),
    future(rev(x)[1:3] + length(x))
  )
  expect_gt(future.p2p:::globals_size(future(sum(x), lazy = TRUE)), future.p2p:::UPLOAD_MIN)
  expect_lt(future.p2p:::globals_size(future(sum(small), lazy = TRUE)), future.p2p:::UPLOAD_MIN)
  expect_identical(value(fs), list(sum(x), 55L, c(3e5, 3e5 - 1, 3e5 - 2) + 3e5))
})

test_that("globals over the bridge's 4 MiB in memory are spilled to a file and arrive whole", {
  skip_without_cluster()
  on.exit(plan(sequential))
  use_cluster()
  x <- as.double(seq_len(7e5))                      # 5.6 MB: the bridge spills it to $TMPDIR
  expect_identical(value(future(c(sum(x), x[7e5]))), c(sum(x), 7e5))
})
