test_that("command-line functions parse --key=value arguments", {
  args <- future.p2p:::parse_cli_args(c(
    "--cluster=alice/p2p", "--ssh_args=-J somehost -p 22", "--duration=60", "--system-ssh"
  ))
  expect_identical(args, list(
    cluster = "alice/p2p", ssh_args = "-J somehost -p 22", duration = 60, system_ssh = TRUE
  ))
  expect_error(future.p2p:::parse_cli_args("cluster"), "--key=value")
  ## This session was not started as `Rscript -e future.p2p::pico_p2p_worker`.
  expect_false(future.p2p:::called_from_cli("pico_p2p_worker"))
})

test_that("pico_username() and p2p_cluster_name() ask the board", {
  skip_without_cluster()
  expect_identical(future.p2p::pico_username(), "carol")
  expect_identical(future.p2p::p2p_cluster_name(), "carol/personal")
  old <- options(future.p2p.cluster = "alice/p2p")
  on.exit(options(old))
  expect_identical(future.p2p::p2p_cluster_name(), "alice/p2p")
})

test_that("Rscript -e future.p2p::pico_p2p_worker --cluster=... starts a worker", {
  skip_without_cluster()
  log <- tempfile()
  worker <- processx::process$new("Rscript", c(
    "-e", "future.p2p::pico_p2p_worker",
    paste0("--cluster=", cluster_name),
    paste0("--ssh_args=", Sys.getenv("FP2P_TEST_WORKER_SSH_ARGS")),
    "--duration=120"
  ), stdout = "|", stderr = log, cleanup = TRUE, cleanup_tree = TRUE)
  on.exit(worker$kill_tree())
  expect_true(wait_for(function() {
    worker$poll_io(100L)
    any(grepl(paste("joined", cluster_name), worker$read_output_lines()))
  }, timeout = 120))
})

test_that("a second host of the same cluster is refused with a clear error", {
  skip_without_cluster()
  out <- processx::run(future_p2p, c(
    "host", "--cluster", sub("^alice/", "", cluster_name), "--users", "bob", "--duration", "5",
    paste0("--ssh-args=", Sys.getenv("FP2P_TEST_ALICE_SSH_ARGS"))
  ), error_on_status = FALSE, timeout = 60)
  expect_false(out$status == 0L)
  expect_match(out$stderr, "already hosted")
})
