## What needs no cluster (these also run under R CMD check).
ns <- asNamespace("future.p2p")

test_that("frames decode from any split of the byte stream", {
  frames <- c(
    ns$encode_frame(ns$BRIDGE_WORKERS, 0L, c(as.raw(c(0, 0, 0, 3)), as.raw(c(0, 0, 0, 1)))),
    ns$encode_frame(ns$BRIDGE_STATUS, 7L, c(as.raw(3L), charToRaw("bob@box:42"))),
    ns$encode_frame(ns$BRIDGE_RESULT, 7L, serialize(42, NULL))
  )
  for (cut in seq_len(length(frames) - 1L)) {
    first <- ns$decode_frames(frames[seq_len(cut)])
    second <- ns$decode_frames(c(first$rest, frames[(cut + 1L):length(frames)]))
    decoded <- c(first$frames, second$frames)
    expect_length(decoded, 3L)
    expect_length(second$rest, 0L)
  }
  replies <- lapply(ns$decode_frames(frames)$frames, ns$bridge_reply)
  expect_identical(replies[[1L]][c("type", "total", "free")], list(type = "workers", total = 3L, free = 1L))
  expect_identical(replies[[2L]][c("type", "id", "state", "detail")],
                   list(type = "status", id = 7L, state = "running", detail = "bob@box:42"))
  expect_identical(unserialize(replies[[3L]]$result), 42)
  expect_error(ns$bridge_reply(list(kind = 99L, job = 0L, body = raw(0L))), "unknown bridge frame kind")
})

test_that("ssh_args become one command-line word, options fall back to the environment", {
  expect_identical(ns$ssh_args_string(NULL), "")
  expect_identical(ns$ssh_args_string("-J host -p 22"), "-J host -p 22")
  expect_identical(ns$ssh_args_string(c("-i", "my key")), "-i 'my key'")
  old <- options(future.p2p.connect_timeout = NULL)
  on.exit(options(old))
  before <- Sys.getenv("R_FUTURE_P2P_CONNECT_TIMEOUT", NA)
  Sys.setenv(R_FUTURE_P2P_CONNECT_TIMEOUT = "12")
  on.exit(if (is.na(before)) Sys.unsetenv("R_FUTURE_P2P_CONNECT_TIMEOUT") else
    Sys.setenv(R_FUTURE_P2P_CONNECT_TIMEOUT = before), add = TRUE)
  expect_identical(ns$p2p_option("connect_timeout", 60), 12)
  options(future.p2p.connect_timeout = 5)
  expect_identical(ns$p2p_option("connect_timeout", 60), 5)
})

test_that("the plan functions carry what future's plan() needs", {
  for (plan_function in list(future.p2p::pico_p2p, future.p2p::cluster)) {
    expect_s3_class(plan_function, c("pico_p2p", "multiprocess", "future"))
    if (ns$has_backend_api()) {
      expect_true(attr(plan_function, "init"))
      expect_identical(attr(plan_function, "factory"), ns$PicoP2PFutureBackend)
      expect_true(all(c("cluster", "host", "ssh_args", "interrupts") %in% attr(plan_function, "tweakable")))
    } else {
      ## future 1.31 would run a test future at plan() time, which waits for a worker.
      expect_null(attr(plan_function, "init"))
      expect_null(attr(plan_function, "factory"))
    }
  }
})

test_that("a payload is what the installed future's generation evaluates", {
  f <- future::future(1 + 1, lazy = TRUE)
  payload <- unserialize(ns$future_payload(f))
  expect_identical(payload$api, ns$future_api())
  expect_identical(payload$uuid, f$uuid)
})

test_that("host_cluster() and pico_p2p_worker() fail with an R error", {
  fake <- tempfile("future-p2p-")
  writeLines(c("#!/bin/sh", "echo 'cluster alice/p2p is already hosted' >&2", "exit 3"), fake)
  Sys.chmod(fake, "0755")
  old <- options(future.p2p.bin = fake, future.p2p.user = "alice")
  on.exit(options(old))
  expect_error(
    suppressMessages(capture.output(host_cluster("p2p", users = "bob"), type = "message")),
    "hosting cluster p2p failed: future-p2p exited with status 3:\ncluster alice/p2p is already hosted"
  )
  expect_error(
    suppressMessages(capture.output(pico_p2p_worker("alice/p2p"), type = "message")),
    "the worker of cluster alice/p2p failed"
  )
})

test_that("Rscript -e future.p2p::pico_p2p_worker --help prints its usage", {
  out <- system2(file.path(R.home("bin"), "Rscript"),
                 c("-e", "future.p2p::pico_p2p_worker", "--help"), stdout = TRUE, stderr = TRUE)
  expect_null(attr(out, "status"))
  expect_match(out[1L], "^Usage: Rscript -e future.p2p::pico_p2p_worker")
  expect_match(out, "--cluster=", all = FALSE)
  expect_match(out, "--duration=", all = FALSE)
})

test_that("a process the package starts is never killed with the caller's next one", {
  ## processx marks each child with random draws and kill_tree() kills every process with
  ## the mark: the bridge must not share one with a process the user starts right after.
  set.seed(1L)
  before <- .Random.seed
  ours <- future.p2p:::with_stealth_rng(processx::process$new("sleep", "30"))
  expect_identical(.Random.seed, before)
  theirs <- processx::process$new("sleep", "30")
  on.exit({
    ours$kill()
    theirs$kill()
  })
  theirs$kill_tree()
  expect_true(ours$is_alive())
  ## And the package's own stream moves on: two of its processes get two marks.
  again <- future.p2p:::with_stealth_rng(processx::process$new("sleep", "30"))
  on.exit(again$kill(), add = TRUE)
  again$kill_tree()
  expect_true(ours$is_alive())
})

test_that("a future goes to a future.p2p 0.4.0 worker as its RDS file, under the board id", {
  skip_if_not(ns$original_formats_supported(), "future.p2p 0.4.0's formats need future >= 1.67")
  f <- future::future(6 * 7, lazy = TRUE)
  box <- new.env()
  box$future <- f
  frame <- ns$decode_frames(ns$answer_original(box, 3L, "r12-3"))$frames[[1L]]
  expect_identical(c(frame$kind, frame$job), c(ns$BRIDGE_ORIGINAL, 3L))
  expect_identical(frame$body[1L], as.raw(1L))
  rds <- frame$body[-1L]
  expect_true(ns$is_gzip(rds))
  ## What 0.4.0's worker checks before it evaluates the file.
  sent <- ns$read_rds_bytes(rds)
  expect_true(inherits(sent, "Future"))
  expect_identical(paste(sent$uuid, collapse = "-"), "r12-3")
  expect_identical(box$posted, "r12-3")
  ## Its result comes back as 0.4.0's worker writes it; the future's own uuid is restored.
  result <- future::result(sent)
  back <- ns$payload_result(ns$rds_bytes(result), f, posted = "r12-3")
  expect_identical(back$value, 42)
  expect_identical(back$uuid, f$uuid)
  ## A future that is gone is refused in words.
  gone <- ns$decode_frames(ns$answer_original(NULL, 4L, "r12-4"))$frames[[1L]]
  expect_identical(gone$body[1L], as.raw(0L))
  expect_match(rawToChar(gone$body[-1L]), "no longer waiting")
})
