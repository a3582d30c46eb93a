## The FutureBackend API (future >= 1.40). .onLoad() registers these methods, and makes
## PicoP2PFutureBackend the plan functions' factory, only when the installed future has
## that API: on future 1.31 (Debian) the plan functions work as legacy backends. Symbols
## that only new futures have are looked up at run time, never imported.

future_fn <- function(name) get(name, envir = asNamespace("future"), mode = "function")

has_backend_api <- function() {
  ns <- asNamespace("future")
  has <- function(name) exists(name, envir = ns, mode = "function", inherits = FALSE)
  has("FutureBackend") && has("launchFuture")
}

#' @keywords internal
PicoP2PFutureBackend <- function(cluster = p2p_cluster_name(), host = default_host(),
                                 ssh_args = p2p_option("ssh_args", NULL), ...) {
  core <- future_fn("FutureBackend")(
    cluster = cluster, host = host, ssh_args = ssh_args, reg = "workers-future-p2p", ...
  )
  core[["futureClasses"]] <- c("PicoP2PFuture", "MultiprocessFuture", core[["futureClasses"]])
  structure(core, class = c("PicoP2PFutureBackend", "MultiprocessFutureBackend", class(core)))
}

backend_bridge <- function(backend) {
  bridge_for(backend[["cluster"]], backend[["host"]], backend[["ssh_args"]])
}

launchFuture.PicoP2PFutureBackend <- function(backend, future, ...) {
  if (!identical(future[["state"]], "created")) {
    stop(future::FutureError("a future can only be launched once", future = future))
  }
  bridge <- tryCatch(backend_bridge(backend), error = function(e) {
    if (!inherits(e, "FutureError")) e <- future::FutureError(conditionMessage(e), future = future)
    stop(e)
  })
  future[["backend"]] <- backend
  launch_on_bridge(future, bridge, api = "evalFuture")
  invisible(future)
}

interruptFuture.PicoP2PFutureBackend <- function(backend, future, ...) {
  p2p_cancel(future)
  future[["state"]] <- "interrupted"
  invisible(future)
}

nbrOfWorkers.PicoP2PFutureBackend <- function(evaluator) {
  if (on_evaluator()) return(1L)
  max(1L, bridge_workers(backend_bridge(evaluator))$total, na.rm = TRUE)
}

nbrOfFreeWorkers.PicoP2PFutureBackend <- function(evaluator, background = FALSE, ...) {
  if (on_evaluator()) return(0L)
  max(0L, bridge_workers(backend_bridge(evaluator))$free, na.rm = TRUE)
}

## The error a failed future raises: FutureInterruptError for a cancelled or lost one
## where future has it (>= 1.40, resettable), FutureError otherwise.
future_failure <- function(kind, message, future) {
  if (kind %in% c("cancelled", "crashed") && has_backend_api() &&
      exists("FutureInterruptError", envir = asNamespace("future"), inherits = FALSE)) {
    return(future_fn("FutureInterruptError")(message, future = future))
  }
  future::FutureError(message, future = future)
}

.onLoad <- function(libname, pkgname) {
  if (!has_backend_api()) return(invisible())
  ns <- asNamespace(pkgname)
  fns <- asNamespace("future")
  for (generic in c("launchFuture", "interruptFuture", "nbrOfWorkers", "nbrOfFreeWorkers")) {
    registerS3method(generic, "PicoP2PFutureBackend",
                     get(paste0(generic, ".PicoP2PFutureBackend"), envir = ns), envir = fns)
  }
  ## The namespace is not locked yet during .onLoad.
  for (name in c("pico_p2p", "cluster")) {
    plan_function <- get(name, envir = ns)
    attr(plan_function, "factory") <- PicoP2PFutureBackend
    assign(name, plan_function, envir = ns)
  }
  invisible()
}
