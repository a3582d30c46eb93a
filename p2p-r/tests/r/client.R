## The client side of the evaluator tests, in real R: makes futures and their payloads,
## and turns results that came back into values. Usage:
##   Rscript client.R make <dir> <case>   writes <dir>/payload.bin and <dir>/future.rds
##   Rscript client.R value <dir>         reads <dir>/result.bin and <dir>/condition-*.bin,
##                                        prints what value() gives, one "key=value" a line
##   Rscript client.R values <dir>        prints the value of each <dir>/results/*.bin
suppressPackageStartupMessages(library(future))
args <- commandArgs(trailingOnly = TRUE)
command <- args[1]
dir <- args[2]

make_future <- function(case) {
  switch(case,
    value = {
      a <- 41
      future(a + 1, lazy = TRUE)
    },
    pid = future(Sys.getpid(), lazy = TRUE),
    nap = future({
      Sys.sleep(0.03)
      Sys.getpid()
    }, lazy = TRUE),
    chatty = future({
      cat("hello from the worker\n")
      message("a message")
      warning("a warning")
      "done"
    }, lazy = TRUE),
    error = future(stop("boom"), lazy = TRUE),
    seed = future(sample.int(1e6, 3), seed = TRUE, lazy = TRUE),
    progress = {
      ## progressr makes void progressors in non-interactive sessions unless enabled.
      options(progressr.enable = TRUE)
      p <- progressr::progressor(steps = 3)
      future({
        for (i in 1:3) {
          p(sprintf("step %d", i))
          Sys.sleep(0.4)
        }
        "progressed"
      }, lazy = TRUE)
    },
    sleep = future({
      Sys.sleep(30)
      "woke up"
    }, lazy = TRUE),
    swallow = future({
      tryCatch(Sys.sleep(30), interrupt = function(cond) "swallowed")
      Sys.sleep(0.1)
      "woke up"
    }, lazy = TRUE),
    quit = future(quit(status = 3L), lazy = TRUE),
    pskill = future(tools::pskill(Sys.getpid()), lazy = TRUE),
    noise = future({
      system("echo written straight to file descriptor 1")
      7
    }, lazy = TRUE),
    big = {
      x <- runif(6e6)  # a 48 MB global (not a compact ALTREP sequence)
      future(length(x) + sum(x > 2), lazy = TRUE)
    },
    bigalloc = future(length(numeric(1e9)), lazy = TRUE),
    stop("unknown case ", case)
  )
}

if (command == "make") {
  case <- args[3]
  if (case == "newapi") {
    ## What a client with future >= 1.40 sends (its content does not matter here: a
    ## worker with an older future must refuse it before looking inside).
    payload <- serialize(list(proto = 1L, api = "evalFuture", data = list(),
                              future_version = "1.70.0"), NULL)
  } else if (case == "unknownapi") {
    payload <- serialize(list(proto = 1L, api = "nextgen", future_version = "9.0.0"), NULL)
  } else {
    set.seed(2026)
    f <- make_future(case)
    seed_before <- .Random.seed
    payload <- future.p2p:::future_payload(f)
    if (!identical(seed_before, .Random.seed)) stop("future_payload() changed the RNG state")
    saveRDS(f, file.path(dir, "future.rds"))
    if (case == "seed") {
      ## The same future evaluated locally, from the same RNG state, for comparison.
      set.seed(2026)
      local <- future(sample.int(1e6, 3), seed = TRUE)
      saveRDS(value(local), file.path(dir, "expected.rds"))
    }
  }
  writeBin(payload, file.path(dir, "payload.bin"))
} else if (command == "value") {
  f <- readRDS(file.path(dir, "future.rds"))
  result <- readBin(file.path(dir, "result.bin"), "raw", file.size(file.path(dir, "result.bin")))
  future.p2p:::payload_result(result, f)
  for (path in sort(Sys.glob(file.path(dir, "condition-*.bin")))) {
    cond <- unserialize(readBin(path, "raw", file.size(path)))
    cat(sprintf("condition=%s\n", class(cond)[1]))
  }
  messages <- character()
  warnings <- character()
  stdout <- utils::capture.output({
    value <- tryCatch(
      withCallingHandlers(value(f),
        message = function(m) {
          messages <<- c(messages, conditionMessage(m))
          invokeRestart("muffleMessage")
        },
        warning = function(w) {
          warnings <<- c(warnings, conditionMessage(w))
          invokeRestart("muffleWarning")
        }
      ),
      error = function(e) structure(conditionMessage(e), class = "caught_error")
    )
  })
  for (line in stdout) cat(sprintf("stdout=%s\n", line))
  for (m in messages) cat(sprintf("message=%s\n", trimws(m)))
  for (w in warnings) cat(sprintf("warning=%s\n", w))
  if (inherits(value, "caught_error")) {
    cat(sprintf("error=%s\n", value))
  } else {
    cat(sprintf("value=%s\n", paste(deparse(value), collapse = " ")))
  }
  expected <- file.path(dir, "expected.rds")
  if (file.exists(expected)) {
    cat(sprintf("same_as_local=%s\n", identical(value, readRDS(expected))))
  }
} else if (command == "values") {
  for (path in sort(Sys.glob(file.path(dir, "results", "*.bin")))) {
    f <- readRDS(file.path(dir, "future.rds"))
    future.p2p:::payload_result(readBin(path, "raw", file.size(path)), f)
    cat(sprintf("value=%s\n", paste(deparse(value(f)), collapse = " ")))
  }
} else {
  stop("unknown command ", command)
}
