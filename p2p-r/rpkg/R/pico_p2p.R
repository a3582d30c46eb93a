#' Resolve futures on a future-p2p cluster
#'
#' `plan(future.p2p::pico_p2p, cluster = "alice/p2p")` sends futures to the workers of a
#' cluster through the board at `host`; `cluster` is the same plan under future.p2p
#' 0.4.0's name. Setting the plan does not wait for any worker: futures queue on the
#' board until one takes them.
#'
#' @param expr,substitute,envir,... The future, as for any future backend.
#' @param cluster The cluster, `owner/name` (default [p2p_cluster_name()]).
#' @param host The board's SSH host (option `future.p2p.host`, default `pipe.pico.sh`).
#' @param ssh_args SSH options, e.g. `"-J somehost"` (option `future.p2p.ssh_args`).
#' @return A future (this is a plan function).
#' @export
pico_p2p <- function(expr, substitute = TRUE, envir = parent.frame(), ...,
                     cluster = p2p_cluster_name(),
                     host = default_host(),
                     ssh_args = p2p_option("ssh_args", NULL)) {
  if (substitute) expr <- substitute(expr)
  future <- PicoP2PFuture(
    expr = expr, substitute = FALSE, envir = envir,
    cluster = cluster, host = host, ssh_args = ssh_args, ...
  )
  if (!isTRUE(future$lazy)) future <- future::run(future)
  invisible(future)
}
class(pico_p2p) <- c("pico_p2p", "multiprocess", "future", "function")
attr(pico_p2p, "tweakable") <- c("cluster", "host", "ssh_args")

#' @rdname pico_p2p
#' @export
cluster <- pico_p2p

## A Future resolved by future-p2p workers; `cluster`, `host` and `ssh_args` say where.
PicoP2PFuture <- function(expr = NULL, substitute = TRUE, envir = parent.frame(),
                          cluster, host, ssh_args, workers = NULL, ...) {
  if (substitute) expr <- substitute(expr)
  future <- future::MultiprocessFuture(expr = expr, substitute = FALSE, envir = envir, ...)
  future$cluster <- cluster
  future$host <- host
  future$ssh_args <- ssh_args
  structure(future, class = c("PicoP2PFuture", class(future)))
}

## Sends the future's payload to the cluster (legacy API: the expression and globals).
#' @keywords internal
run.PicoP2PFuture <- function(future, ...) {
  ## future >= 1.40: future's run() picks the backend and calls launchFuture().
  if (has_backend_api()) return(NextMethod())
  if (!identical(future$state, "created")) {
    stop(future::FutureError("a future can only be launched once", future = future))
  }
  bridge <- tryCatch(
    bridge_for(future$cluster, future$host, future$ssh_args),
    error = function(e) {
      if (!inherits(e, "FutureError")) e <- future::FutureError(conditionMessage(e), future = future)
      future$state <- "failed"
      stop(e)
    }
  )
  launch_on_bridge(future, bridge, api = "expr")
  invisible(future)
}

## Submits `future` on `bridge`; the future remembers where it went.
launch_on_bridge <- function(future, bridge, api) {
  payload <- future_payload(future, api = api)
  bridge_check_size(bridge, length(payload), future)
  bridge$next_id <- bridge$next_id + 1L
  id <- bridge$next_id
  mailbox_open(bridge, id)
  bridge_send_submit(bridge, id, payload, future$label)
  future$bridge <- bridge
  future$bridge_id <- id
  future$state <- "running"
  invisible(future)
}

## Relays the conditions that arrived for `future` (progress, immediate messages), once.
relay_conditions <- function(future) {
  box <- mailbox(future$bridge, future$bridge_id)
  if (is.null(box) || length(box$conditions) == 0L) return(invisible())
  conditions <- box$conditions
  box$conditions <- list()
  for (condition in conditions) payload_condition(condition)
  invisible()
}

## TRUE once the bridge has the future's final reply (or has failed).
future_settled <- function(future) {
  box <- mailbox(future$bridge, future$bridge_id)
  is.null(box) || !is.null(box$result) || !is.null(box$error) || !is.null(future$bridge$failure)
}

#' @keywords internal
resolved.PicoP2PFuture <- function(x, ...) {
  if (!is.null(x[["result"]])) return(TRUE)
  if (identical(x$state, "created")) return(NextMethod())
  if (is.null(x$bridge)) return(FALSE)
  bridge_pump(x$bridge, timeout = 0)
  relay_conditions(x)
  future_settled(x)
}

#' @keywords internal
result.PicoP2PFuture <- function(future, ...) {
  result <- future[["result"]]
  if (!is.null(result)) {
    if (inherits(result, "FutureError")) stop(result)
    return(result)
  }
  if (identical(future$state, "created")) future <- future::run(future)
  bridge <- future$bridge
  if (is.null(bridge)) {
    stop(future::FutureError("the future has no result from a future.p2p worker yet", future = future))
  }
  timeout <- p2p_option("timeout", Inf)
  bridge_wait(bridge, function() future_settled(future), timeout = timeout,
              each = function() relay_conditions(future))
  relay_conditions(future)
  box <- mailbox(bridge, future$bridge_id)
  mailbox_close(bridge, future$bridge_id)
  fail <- function(message, kind = "failed") {
    ex <- future_failure(kind, message, future)
    future$result <- ex
    future$state <- "failed"
    stop(ex)
  }
  if (is.null(box)) fail("future.p2p lost track of this future")
  if (!is.null(box$result)) {
    payload_result(box$result, future)
    return(future$result)
  }
  if (!is.null(box$error)) {
    fail(sprintf("future.p2p: the future failed (%s): %s", box$error$kind, box$error$message),
         kind = box$error$kind)
  }
  if (!is.null(bridge$failure)) {
    fail(sprintf("future.p2p lost its connection to cluster %s: %s. Call plan() again to reconnect.",
                 bridge$cluster, bridge$failure))
  }
  p2p_cancel(future)
  fail(sprintf("no result from cluster %s within %s s (option future.p2p.timeout)", bridge$cluster, timeout))
}

#' Cancel a future sent to a future-p2p cluster
#'
#' Withdraws it from the board, or interrupts it on its worker; its value() then raises a
#' FutureError. (future >= 1.40 also has `future::cancel()`, which does the same.)
#'
#' @param future A future created under [pico_p2p].
#' @return The future, invisibly.
#' @export
p2p_cancel <- function(future) {
  if (inherits(future, "PicoP2PFuture") && !is.null(future$bridge) && is.null(future[["result"]])) {
    box <- mailbox(future$bridge, future$bridge_id)
    if (!is.null(box) && is.null(box$result) && is.null(box$error)) {
      try(bridge_send(future$bridge, bridge_cancel(future$bridge_id)), silent = TRUE)
    }
  }
  invisible(future)
}

## The bridge of a plan function, from its (possibly tweaked) arguments.
## future's tweak() wraps the plan function in one whose formals are only the tweaked
## arguments; the others take pico_p2p()'s defaults.
plan_bridge <- function(evaluator) {
  tweaked <- formals(evaluator)
  defaults <- formals(pico_p2p)
  value <- function(name) {
    expr <- if (name %in% names(tweaked)) tweaked[[name]] else defaults[[name]]
    eval(expr, envir = environment(pico_p2p))
  }
  bridge_for(value("cluster"), value("host"), value("ssh_args"))
}

## Inside a worker's evaluator, a finished future restores its client's plan, which
## calls nbrOfWorkers(): answer without starting a bridge there.
on_evaluator <- function() isTRUE(getOption("future.p2p.evaluator"))

#' @keywords internal
nbrOfWorkers.pico_p2p <- function(evaluator) {
  if (on_evaluator()) return(1L)
  counts <- bridge_workers(plan_bridge(evaluator))
  max(1L, counts$total, na.rm = TRUE)
}

#' @keywords internal
nbrOfFreeWorkers.pico_p2p <- function(evaluator, background = FALSE, ...) {
  if (on_evaluator()) return(0L)
  counts <- bridge_workers(plan_bridge(evaluator))
  max(0L, counts$free, na.rm = TRUE)
}
