## Checks of the payload builder that need no evaluator; prints "ok" when all pass.
suppressPackageStartupMessages(library(future))
ns <- asNamespace("future.p2p")

## A future made inside a function ships its globals, not the function's frame.
make <- function() {
  unused <- runif(1e6)            # 8 MB that the future does not need
  a <- 1
  future(a + 1, lazy = TRUE)
}
size <- length(ns$future_payload(make()))
if (size > 100e3) stop(sprintf("the payload drags the calling frame along: %d bytes", size))

## Building a payload leaves the session's RNG alone.
## (Creating a future with seed = TRUE draws its seed: that is future's, not ours.)
set.seed(1)
f <- future(rnorm(1), seed = TRUE, lazy = TRUE)
before <- .Random.seed
invisible(ns$future_payload(f))
if (!identical(before, .Random.seed)) stop("future_payload() changed .Random.seed")

## 'where' environments other than the global and empty ones are emptied.
frame <- local({ big <- runif(1e6); environment() })
globals <- structure(list(a = 1, b = 2, c = 3),
                     where = list(a = frame, b = globalenv(), c = emptyenv()))
kept <- attr(ns$drop_where_environments(globals), "where")
if (length(ls(kept$a, all.names = TRUE)) != 0L) stop("a calling frame was kept")
if (!identical(kept$b, globalenv()) || !identical(kept$c, emptyenv())) {
  stop("global or empty environments were replaced")
}
if (length(serialize(kept, NULL)) > 10e3) stop("the emptied 'where' is still big")

## A result that is not a FutureResult is refused with a FutureError.
err <- tryCatch(ns$payload_result(serialize(42, NULL)), error = identity)
if (!inherits(err, "FutureError")) stop("a non-FutureResult was accepted")

cat("ok\n")
