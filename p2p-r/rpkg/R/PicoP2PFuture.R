## The Future subclass of futures resolved by future-p2p workers. Its result is the
## FutureResult a worker sent back (stored by payload_result()); value() then relays the
## stdout and conditions in it, as for any future.

#' @keywords internal
result.PicoP2PFuture <- function(future, ...) {
  result <- future[["result"]]
  if (inherits(result, "FutureError")) stop(result)
  if (!inherits(result, "FutureResult")) {
    stop(future::FutureError("the future has no result from a future.p2p worker yet", future = future))
  }
  result
}

#' @keywords internal
resolved.PicoP2PFuture <- function(x, ...) {
  !is.null(x[["result"]])
}
