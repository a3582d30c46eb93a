#' A future backend on a peer-to-peer cluster of R workers
#'
#' `plan(future.p2p::pico_p2p, cluster = "alice/p2p")` resolves futures on the workers
#' of a future-p2p cluster: R sessions that friends lend to it ([pico_p2p_worker()]).
#' One long-lived `future-p2p bridge` process per R session posts each future on the
#' cluster's board (a pipe topic on pico.sh, or on a self-hosted `future-p2p hub`),
#' sends it to the worker that takes it through an end-to-end encrypted magic-wormhole
#' transfer, and brings back its value, output and conditions, and its progress
#' updates (progressr) while it runs. `cluster()` is the same plan under future.p2p
#' 0.4.0's name.
#'
#' Setting the plan connects to the board but does not wait for any worker: futures
#' wait on the board until a worker takes them. [future::nbrOfWorkers()] is the number
#' of workers that said hello on the cluster, [future::nbrOfFreeWorkers()] those of
#' them without a future.
#'
#' @section Options:
#' Each option `future.p2p.NAME` can also be set as the environment variable
#' `R_FUTURE_P2P_NAME` (upper case, dots as underscores).
#' \describe{
#'   \item{`future.p2p.bin`}{The `future-p2p` program (default: the one on the PATH).}
#'   \item{`future.p2p.cluster`}{The default cluster (default: `{user}/personal`).}
#'   \item{`future.p2p.host`, `future.p2p.ssh_args`}{The board's SSH host and SSH
#'     options, e.g. `"-J somehost -p 2222"` (default: `pipe.pico.sh`, none).}
#'   \item{`future.p2p.user`}{Your username on the board (default: the board says).}
#'   \item{`future.p2p.mailbox`, `future.p2p.relay`}{The magic-wormhole mailbox and
#'     transit relay (default: the public ones).}
#'   \item{`future.p2p.system_ssh`}{`TRUE` to use the system `ssh` (for `~/.ssh/config`).}
#'   \item{`future.p2p.timeout`}{The longest a future may take from its launch to its
#'     result, in seconds (default: option `future.wait.timeout`, else 30 days). Past
#'     it the future is withdrawn, [future::resolved()] is `TRUE` and
#'     [future::value()] raises a `FutureError` that says what was waited for.}
#'   \item{`future.p2p.connect_timeout`}{How long connecting to the board may take, in
#'     seconds (default 60).}
#'   \item{`future.p2p.cluster_timeout`}{How long to wait for the cluster's host or a
#'     worker to show up before waiting futures fail (default 60).}
#'   \item{`future.p2p.max_payload`}{The largest future sent, in bytes (default 2 GiB).
#'     Option `future.globals.maxSize` limits the size of a future's globals, as with
#'     any backend.}
#' }
#'
#' @section Versions of future:
#' Works with future 1.31.0 (Debian 12) and later; tested with 1.31.0 and 1.68.0. With
#' future >= 1.40 it is a FutureBackend: `future::cancel()` interrupts a future on its
#' worker (unless `plan(pico_p2p, interrupts = FALSE)`), the cancelled future's value is
#' a `FutureInterruptError`, `future::reset()` makes it launchable again, and changing
#' the plan cancels the futures still running and ends the bridge. With older futures
#' it is a legacy backend, and [p2p_cancel()] cancels. A worker's future must be as new
#' as its clients': one with future < 1.40 refuses the futures of a client with
#' future >= 1.40.
#'
#' @param expr,substitute,envir,... A future, as future < 1.40 passes it to a plan
#'   function; future >= 1.40 never calls the plan function.
#' @param cluster The cluster, `owner/name` (default [p2p_cluster_name()]).
#' @param host The board's SSH host (option `future.p2p.host`, default `pipe.pico.sh`).
#' @param ssh_args SSH options, e.g. `"-J somehost"` (option `future.p2p.ssh_args`).
#' @return With future < 1.40, a future; it is meant for [future::plan()].
#' @seealso `vignette("sharing-compute", package = "future.p2p")` to set up a cluster
#'   with friends; [pico_p2p_worker()] to lend a machine; [host_cluster()] to host one.
#' @examplesIf nzchar(Sys.getenv("FUTURE_P2P_CLUSTER"))
#' ## On a cluster you may use, e.g. FUTURE_P2P_CLUSTER=alice/p2p
#' library(future)
#' plan(future.p2p::pico_p2p, cluster = Sys.getenv("FUTURE_P2P_CLUSTER"))
#' f <- future(Sys.info()[["nodename"]])
#' value(f)
#' plan(sequential)
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
  object <- future_payload_object(future, api = api)
  size <- globals_size(future)
  ## Large globals: serialized straight into a connection of their own, so that R makes
  ## no serialized copy of them (allocating and filling it cost more than sending it).
  upload <- size > UPLOAD_MIN
  payload <- NULL
  if (upload) {
    bridge_check_size(bridge, size, future)
  } else {
    payload <- serialize(object, NULL, xdr = FALSE)
    rm(object)
    bridge_check_size(bridge, length(payload), future)
  }
  bridge$next_id <- bridge$next_id + 1L
  id <- bridge$next_id
  mailbox_open(bridge, id, future)
  if (upload) {
    bridge_upload(bridge, id, object, size, future$label)
  } else {
    bridge_send_submit(bridge, id, payload, future$label)
  }
  future$bridge <- bridge
  future$bridge_id <- id
  future$timeout <- result_timeout()
  ## Seconds since the epoch, as a plain number: compared on every resolved().
  future$deadline <- unclass(Sys.time()) + future$timeout
  future$state <- "running"
  invisible(future)
}

## The longest a future may take from its launch to its result: option
## future.p2p.timeout, else future's own future.wait.timeout, else 30 days. Past it,
## resolved() says TRUE and value() fails: no loop of future's (resolve(), value() of a
## list, future_lapply()) can wait for it forever.
result_timeout <- function() {
  p2p_option("timeout", getOption("future.wait.timeout", 30 * 24 * 3600))
}

future_overdue <- function(future) unclass(Sys.time()) > future$deadline

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

## Whether future's cancel() (future >= 1.49) has been called on the future.
future_cancelled <- function(future) future$state %in% c("canceled", "interrupted")

## Never blocks: reads what the bridge has sent and relays the future's conditions.
resolved.PicoP2PFuture <- function(x, ...) {
  if (!is.null(x[["result"]])) return(TRUE)
  if (identical(x$state, "created")) return(NextMethod())
  if (is.null(x$bridge)) return(FALSE)
  bridge_pump(x$bridge, timeout = 0)
  relay_conditions(x)
  future_settled(x) || future_cancelled(x) || future_overdue(x)
}

## What a future still waiting for its result is waiting for, in words.
waiting_for <- function(box, cluster) {
  if (is.null(box)) return(sprintf("a future on cluster %s", cluster))
  switch(box$state,
    queued = sprintf("a worker of cluster %s to take the future (none did)", cluster),
    sent = sprintf("the future to reach worker %s", box$detail),
    running = sprintf("the result of the future running on worker %s", box$detail),
    requeued = sprintf("another worker of cluster %s after the future's worker was lost", cluster),
    sprintf("the future on cluster %s (%s)", cluster, box$state)
  )
}

## Waits, until the future's deadline at most, for its result or failure.
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
  left <- future$deadline - unclass(Sys.time())
  if (future_cancelled(future) || left <= 0) {
    bridge_pump(bridge, timeout = 0)
  } else {
    bridge_wait(bridge, function() future_settled(future) || future_cancelled(future),
                timeout = left, each = function() relay_conditions(future))
  }
  relay_conditions(future)
  box <- mailbox(bridge, future$bridge_id)
  fail <- function(message, kind = "failed") {
    mailbox_close(bridge, future$bridge_id)
    ex <- future_failure(kind, message, future)
    future$result <- ex
    if (!future_cancelled(future)) future$state <- "failed"
    stop(ex)
  }
  if (is.null(box)) fail("future.p2p lost track of this future")
  if (!is.null(box$result)) {
    mailbox_close(bridge, future$bridge_id)
    payload_result(box$result, future, posted = box$posted)
    return(future$result)
  }
  if (!is.null(box$error)) {
    fail(sprintf("future.p2p: the future failed (%s): %s", box$error$kind, box$error$message),
         kind = box$error$kind)
  }
  if (future_cancelled(future)) {
    fail(sprintf("the future was cancelled (cancel()) while %s", waiting_for(box, bridge$cluster)),
         kind = "cancelled")
  }
  if (!is.null(bridge$failure)) {
    fail(sprintf("future.p2p lost its connection to cluster %s: %s. Call plan() again to reconnect.",
                 bridge$cluster, bridge$failure))
  }
  waited <- waiting_for(box, bridge$cluster)
  send_cancel(future)
  seen <- if (is.null(bridge$total) || is.na(bridge$total)) 0L else bridge$total
  fail(sprintf("waited %s s (option future.p2p.timeout) for %s; the future is withdrawn. %d worker slot(s) seen on cluster %s%s",
               format(future$timeout), waited, seen, bridge$cluster,
               if (seen == 0L) " (is it hosted, and are you on its access list?)" else ""))
}

#' Cancel a future sent to a future-p2p cluster
#'
#' Withdraws it from the board, or interrupts it on its worker; its `value()` then
#' raises a `FutureError` (a `FutureInterruptError` with future >= 1.49, where this is
#' what `future::cancel()` does, and `future::reset()` makes the future launchable again).
#'
#' @param future A future created under [pico_p2p()].
#' @return The future, invisibly.
#' @examples
#' library(future)
#' f <- future(42, lazy = TRUE)   # not under pico_p2p: cancelling it does nothing
#' p2p_cancel(f)
#' @export
p2p_cancel <- function(future) {
  if (!inherits(future, "PicoP2PFuture")) return(invisible(future))
  if (future_has("cancel") && inherits(future[["backend"]], "FutureBackend")) {
    return(invisible(future_fn("cancel")(future, interrupt = TRUE)))
  }
  send_cancel(future)
  invisible(future)
}

## Asks the bridge to withdraw or interrupt the future, unless its reply already came.
send_cancel <- function(future) {
  if (is.null(future$bridge) || !is.null(future[["result"]])) return(invisible())
  box <- mailbox(future$bridge, future$bridge_id)
  if (!is.null(box) && is.null(box$result) && is.null(box$error)) {
    try(bridge_send(future$bridge, bridge_cancel(future$bridge_id)), silent = TRUE)
  }
  invisible()
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

## Legacy API (future < 1.40): dispatched on the plan function.
nbrOfWorkers.pico_p2p <- function(evaluator) {
  if (on_evaluator()) return(1L)
  counts <- bridge_workers(plan_bridge(evaluator))
  max(1L, counts$total, na.rm = TRUE)
}

nbrOfFreeWorkers.pico_p2p <- function(evaluator, background = FALSE, ...) {
  if (on_evaluator()) return(0L)
  counts <- bridge_workers(plan_bridge(evaluator))
  max(0L, counts$free, na.rm = TRUE)
}
