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
