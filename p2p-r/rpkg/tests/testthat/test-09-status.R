## Issue 16: the cluster as a user sees it, from R.

test_that("p2p_status() lists the host and every worker with its slots", {
  skip_without_cluster()
  start_worker()
  status <- p2p_status(cluster_name)
  expect_true(attr(status, "healthy"))
  expect_identical(sum(status$role == "host"), 1L)
  workers <- status[status$role == "worker", ]
  expect_gte(nrow(workers), 1L)
  expect_true(all(workers$slots >= 1L))
  expect_true(all(workers$busy >= 0L & workers$busy <= workers$slots))
  expect_true(all(grepl("^bob@", workers$id)))
  expect_identical(attr(status, "exit_status"), 0L)
  # Idle workers list no futures; the columns are there for busy ones.
  expect_true(is.character(workers$futures) && is.character(workers$transfers))
})

test_that("p2p_status() of a cluster nobody hosts says it is not healthy", {
  skip_without_cluster()
  status <- p2p_status("alice/nobody-hosts-this")
  expect_false(attr(status, "healthy"))
  expect_true(attr(status, "exit_status") %in% c(3L, 4L))
  expect_identical(nrow(status), 0L)
})
