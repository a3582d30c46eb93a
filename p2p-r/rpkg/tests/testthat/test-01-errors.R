test_that("a missing future-p2p program is a clear error", {
  old <- options(future.p2p.bin = file.path(tempdir(), "no-such-future-p2p"))
  on.exit({
    options(old)
    plan(sequential)
  })
  expect_error(
    plan(future.p2p::pico_p2p, cluster = cluster_name),
    "cannot find the future-p2p program.*cargo install"
  )
})

test_that("a cluster the user may not join gives a FutureError saying what to do", {
  skip_without_cluster()
  ## dave is not on alice/p2p's access list: the board puts him on a topic of his own,
  ## where neither the host nor any worker ever shows up.
  old <- options(
    future.p2p.ssh_args = Sys.getenv("FP2P_TEST_DAVE_SSH_ARGS"),
    future.p2p.cluster_timeout = 3
  )
  on.exit({
    options(old)
    plan(sequential)
  })
  plan(future.p2p::pico_p2p, cluster = cluster_name)
  f <- future(1)
  expect_error(value(f), "not on its access list", class = "FutureError")
  ## That bridge is done: the next future starts a new one, which may reach the cluster.
  expect_false(future.p2p:::bridge_usable(f$bridge))
})
