## The FutureBackend API (future >= 1.40). .onLoad() registers these methods, and gives
## the plan functions what future's plan() needs to build a PicoP2PFutureBackend (the
## attributes `init`, `factory` and `tweakable`, as future's own backends have), only
## when the installed future has that API: on future 1.31 (Debian) the plan functions
## work as legacy backends. Symbols that only new futures have are looked up at run
## time, never imported.

future_fn <- function(name) get(name, envir = asNamespace("future"), mode = "function")

future_has <- function(name) {
  exists(name, envir = asNamespace("future"), mode = "function", inherits = FALSE)
}

has_backend_api <- function() future_has("FutureBackend") && future_has("launchFuture")

## Settings of future's FutureBackend that this backend honours, besides its own
## arguments: the size limit of globals and whether futures may be interrupted.
BACKEND_TWEAKABLE <- c("maxSizeOfObjects", "interrupts")

#' The FutureBackend of the plan pico_p2p (future >= 1.40)
#'
#' future's [future::plan()] calls it (it is the `factory` of [pico_p2p()]) with the
#' plan's arguments, and sends futures to the cluster through it. It starts the bridge,
#' so that a wrong cluster or a missing `future-p2p` program is an error of `plan()`.
#'
#' @param cluster,host,ssh_args As for [pico_p2p()].
#' @param ... Settings of future's `FutureBackend`, e.g. `interrupts`.
#' @param expr,substitute Formals of the plan function that future passes along; unused.
#' @return A `PicoP2PFutureBackend`.
#' @keywords internal
PicoP2PFutureBackend <- function(cluster = p2p_cluster_name(), host = default_host(),
                                 ssh_args = p2p_option("ssh_args", NULL), ...,
                                 expr, substitute) {
  ## `expr` and `substitute` are formals of the plan function (the future constructor of
  ## future < 1.40), which future's makeFutureBackend() hands to every factory; they are
  ## not settings of the backend, and must not reach FutureBackend() as missing values.
  core <- future_fn("MultiprocessFutureBackend")(
    cluster = cluster, host = host, ssh_args = ssh_args, ...
  )
  core[["futureClasses"]] <- c("PicoP2PFuture", core[["futureClasses"]])
  backend <- structure(core, class = c("PicoP2PFutureBackend", class(core)))
  ## Connect now, so that a wrong cluster or a missing program is an error of plan();
  ## this does not wait for any worker.
  backend_bridge(backend)
  backend
}

backend_bridge <- function(backend) {
  bridge_for(backend[["cluster"]], backend[["host"]], backend[["ssh_args"]])
}

launchFuture.PicoP2PFutureBackend <- function(backend, future, ...) {
  if (!identical(future[["state"]], "created")) {
    stop(future::FutureError("a future can only be launched once", future = future))
  }
  future[["backend"]] <- backend
  bridge <- tryCatch(backend_bridge(backend), error = function(e) {
    if (!inherits(e, "FutureError")) e <- future::FutureError(conditionMessage(e), future = future)
    stop(e)
  })
  launch_on_bridge(future, bridge, api = "evalFuture")
  invisible(future)
}

## future checks the globals' size against the limit the backend got when plan() made
## it; future.globals.maxSize set later (as with future 1.31, and as users expect) wins.
validateFutureGlobals.PicoP2PFutureBackend <- function(backend, future, ...) {
  limit <- getOption("future.globals.maxSize", backend[["maxSizeOfObjects"]])
  planned <- backend[["maxSizeOfObjects"]]
  backend[["maxSizeOfObjects"]] <- limit
  on.exit(backend[["maxSizeOfObjects"]] <- planned)
  NextMethod()
}

## cancel(future, interrupt = TRUE): the bridge withdraws the future from the board or
## interrupts its worker; value() then raises a FutureInterruptError, and reset() makes
## the future launchable again.
interruptFuture.PicoP2PFutureBackend <- function(backend, future, ...) {
  if (!isTRUE(backend[["interrupts"]])) return(future)
  send_cancel(future)
  future[["state"]] <- "interrupted"
  future
}

## The futures launched on this backend that are not collected yet, as future's own
## backends list them (print(plan("backend")), stopWorkers()).
listFutures.PicoP2PFutureBackend <- function(backend, ...) {
  bridge <- backend_bridge_if_running(backend)
  futures <- if (is.null(bridge)) list() else bridge_futures(bridge)
  data <- data.frame(
    counter = vapply(futures, function(f) as.integer(f[["uuid"]][2L]), NA_integer_),
    start = vapply(futures, function(f) {
      start <- f[["start"]]
      if (is.null(start)) NA_real_ else as.numeric(start)
    }, NA_real_),
    label = vapply(futures, function(f) {
      label <- f[["label"]]
      if (is.null(label)) NA_character_ else as.character(label)
    }, NA_character_),
    resolved = vapply(futures, function(f) resolved(f), NA)
  )
  data[["future"]] <- lapply(futures, list)
  data
}

## Called by plan() when another plan replaces this one: futures still running are
## cancelled (interrupted if `interrupt`), those whose result already arrived keep it,
## and the bridge process ends. A later plan(pico_p2p) starts a new one.
stopWorkers.PicoP2PFutureBackend <- function(backend, interrupt = TRUE, ...) {
  bridge <- backend_bridge_if_running(backend)
  if (is.null(bridge)) return(TRUE)
  bridge_pump(bridge, timeout = 0)
  for (future in bridge_futures(bridge)) {
    if (future_settled(future)) next
    if (future_has("cancel")) {
      future_fn("cancel")(future, interrupt = interrupt)
    } else if (interrupt) {
      send_cancel(future)   # future 1.40 - 1.48
    }
  }
  bridge_retire(bridge)
  TRUE
}

## The backend's bridge if one is running; never starts one.
backend_bridge_if_running <- function(backend) {
  bridge <- .bridges[[bridge_key(backend[["cluster"]], backend[["host"]], backend[["ssh_args"]])]]
  if (is.null(bridge) || is.null(bridge$con)) NULL else bridge
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
      future_has("FutureInterruptError")) {
    return(future_fn("FutureInterruptError")(message, future = future))
  }
  future::FutureError(message, future = future)
}

.onLoad <- function(libname, pkgname) {
  if (!has_backend_api()) return(invisible())
  ns <- asNamespace(pkgname)
  fns <- asNamespace("future")
  generics <- c(
    "launchFuture", "interruptFuture", "listFutures", "stopWorkers",
    "validateFutureGlobals", "nbrOfWorkers", "nbrOfFreeWorkers"
  )
  for (generic in generics) {
    registerS3method(generic, "PicoP2PFutureBackend",
                     get(paste0(generic, ".PicoP2PFutureBackend"), envir = ns), envir = fns)
  }
  ## The namespace is not locked yet during .onLoad.
  tweakable <- c(setdiff(names(formals(pico_p2p)), c("expr", "substitute", "envir", "...")),
                 BACKEND_TWEAKABLE)
  factory <- PicoP2PFutureBackend
  attr(factory, "tweakable") <- tweakable
  assign("PicoP2PFutureBackend", factory, envir = ns)
  for (name in c("pico_p2p", "cluster")) {
    plan_function <- get(name, envir = ns)
    ## Without `init`, plan() builds no backend: plan("backend") is NULL, and run()
    ## of future and of PicoP2PFuture would call each other until the C stack overflows.
    ## (Never on future 1.31, where `init` runs a test future that waits for a worker.)
    attr(plan_function, "init") <- TRUE
    attr(plan_function, "factory") <- factory
    attr(plan_function, "tweakable") <- tweakable
    assign(name, plan_function, envir = ns)
  }
  invisible()
}
