test_that("values, errors, warnings, messages and output are relayed", {
  skip_without_cluster()
  use_cluster()
  expect_equal(value(future(1 + 1)), 2)
  x <- 1:10
  expect_equal(value(future(sum(x))), 55L)

  f <- future({
    message("a message")
    warning("a warning")
    print("printed")
    cat("catted\n")
    42
  })
  messages <- character(0L)
  warnings <- character(0L)
  output <- capture.output({
    v <- withCallingHandlers(value(f),
      message = function(m) {
        messages <<- c(messages, conditionMessage(m))
        invokeRestart("muffleMessage")
      },
      warning = function(w) {
        warnings <<- c(warnings, conditionMessage(w))
        invokeRestart("muffleWarning")
      }
    )
  })
  expect_equal(v, 42)
  expect_match(messages, "a message", all = FALSE)
  expect_match(warnings, "a warning", all = FALSE)
  expect_match(output, "printed", all = FALSE)
  expect_match(output, "catted", all = FALSE)

  expect_error(value(future(stop("boom"))), "boom")
})

test_that("future_lapply spreads 100 elements over the workers", {
  skip_without_cluster()
  use_cluster()
  expect_true(wait_for(function() nbrOfWorkers() >= 3L, timeout = 30))
  out <- future.apply::future_lapply(1:100, function(i) c(i^2, Sys.getpid()))
  expect_equal(vapply(out, `[`, 0, 1L), (1:100)^2)
  expect_gte(length(unique(vapply(out, `[`, 0, 2L))), 2L)
})

test_that("future.globals.maxSize is respected", {
  skip_without_cluster()
  use_cluster()
  old <- options(future.globals.maxSize = 1000)
  on.exit(options(old))
  big <- runif(10000)       # 80 kB (as.numeric(1:n) is a compact ALTREP of 134 bytes)
  expect_error(future(sum(big)), "future.globals.maxSize")
})
