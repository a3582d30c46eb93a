## Client side: what travels to a worker for one future, and what comes back.

## Version of the payload list layout; evaluate_payload() refuses other versions.
PAYLOAD_PROTOCOL <- 1L

## Which generation of future's backend API the installed future has: "evalFuture"
## (FutureBackend API, future >= 1.40.0) or "expr" (the legacy API, e.g. Debian's 1.31.0).
future_api <- function() {
  ns <- asNamespace("future")
  has <- function(name) exists(name, envir = ns, mode = "function", inherits = FALSE)
  if (has("FutureBackend") && has("launchFuture") && has("evalFuture") && has("getFutureData")) {
    "evalFuture"
  } else {
    "expr"
  }
}

## The version of the loaded future, as text. Looked up once: packageVersion() reads the
## package's DESCRIPTION from disk, which cost more than all else a payload needs.
future_version <- local({
  version <- NULL
  function() {
    if (is.null(version)) version <<- format(packageVersion("future"))
    version
  }
})

#' The serialized payload for one future
#'
#' What future's own backends ship -- the expression and its globals (legacy API), or
#' future's evaluation data (FutureBackend API) -- never the Future object itself, whose
#' calling frame could drag megabytes along. The random number generator of the calling
#' session is left untouched: the future's seed was drawn when it was created.
#'
#' @param future A Future (e.g. `future(expr, lazy = TRUE)`).
#' @param api Which payload generation to build; the worker needs the same or newer.
#' @return A raw vector (R serialization) for the evaluator.
#' @keywords internal
future_payload <- function(future, api = future_api()) {
  serialize(future_payload_object(future, api), NULL, xdr = FALSE)
}

## The payload before serialization: a large one is serialized straight into the
## bridge's connection (bridge_upload()), never into a raw vector.
future_payload_object <- function(future, api = future_api()) {
  stopifnot(inherits(future, "Future"))
  api <- match.arg(api, c("expr", "evalFuture"))
  body <- if (identical(api, "expr")) expr_payload(future) else future_data_payload(future)
  c(
    list(
      proto = PAYLOAD_PROTOCOL,
      api = api,
      uuid = future$uuid,
      label = future$label,
      future_version = future_version()
    ),
    body
  )
}

## About how many bytes the future's globals take (object.size(), which does not look
## into environments): decides whether its payload is uploaded, and refuses one clearly
## over the payload limit before a byte of it is written.
globals_size <- function(future) {
  globals <- future$globals
  if (length(globals) == 0L) return(0)
  sum(vapply(seq_along(globals), function(i) as.numeric(utils::object.size(globals[[i]])), 0))
}

## Legacy API: the expression future would evaluate, with immediate conditions (progressr)
## relayed to the evaluator as they are signalled instead of only being recorded, and the
## globals as a plain named list (their "where" environments are not needed for it).
expr_payload <- function(future) {
  classes <- future$conditions
  exclude <- attr(classes, "exclude", exact = TRUE)
  classes <- unique(c(classes, "immediateCondition"))
  attr(classes, "exclude") <- exclude
  expr <- future::getExpression(
    future,
    expr = relay_immediate_conditions(future$expr),
    immediateConditions = TRUE,
    conditionClasses = classes,
    mc.cores = 1L
  )
  globals <- future$globals
  values <- lapply(seq_along(globals), function(i) globals[[i]])
  names(values) <- names(globals)
  list(expr = expr, globals = values)
}

## Wraps a future expression so that immediate conditions go to the evaluator's relay
## (option future.p2p.relay, set by evaluator_loop()) and are then muffled, as future's
## cluster backend does. Without a relay they pass on and are recorded as usual.
relay_immediate_conditions <- function(expr) {
  bquote(withCallingHandlers(.(expr), immediateCondition = function(cond) {
    relay <- getOption("future.p2p.relay")
    if (is.function(relay)) {
      relay(cond)
      if (inherits(cond, "message")) {
        invokeRestart("muffleMessage")
      } else if (inherits(cond, "warning")) {
        invokeRestart("muffleWarning")
      } else {
        for (restart in computeRestarts(cond)) {
          if (isTRUE(grepl("^muffle", restart$name))) invokeRestart(restart)
        }
      }
    }
  }))
}

## FutureBackend API: future's evaluation data, with the same relay as an immediate
## condition handler (run on the worker by evalFuture()).
future_data_payload <- function(future) {
  getFutureData <- get("getFutureData", envir = asNamespace("future"), mode = "function")
  data <- getFutureData(future, mc.cores = 1L)
  handler <- function(cond) {
    relay <- getOption("future.p2p.relay")
    if (is.function(relay)) relay(cond)
    ## Relayed conditions are not recorded again in the result.
    !is.function(relay)
  }
  ## A base environment serializes as a reference: the handler drags nothing along.
  environment(handler) <- baseenv()
  data$capture$immediateConditionHandlers <- list(immediateCondition = handler)
  data$core$globals <- drop_where_environments(data$core$globals)
  list(data = data)
}

## future >= 1.49 keeps, in attr(globals, "where"), the environments where globals were
## found, e.g. a calling function's frame with all its locals: serialize() would ship
## them all. An empty environment keeps assign_globals() semantics on the worker.
drop_where_environments <- function(globals) {
  where <- attr(globals, "where", exact = TRUE)
  if (!is.list(where)) return(globals)
  empty <- new.env(parent = emptyenv())
  for (i in seq_along(where)) {
    env <- where[[i]]
    if (is.environment(env) && !identical(env, globalenv()) && !identical(env, emptyenv())) {
      where[i] <- list(empty)
    }
  }
  attr(globals, "where") <- where
  globals
}

#' Turn a result received from an evaluator into the future's result
#'
#' Checks that it is a FutureResult (of this future, when future >= 1.40 stamps it with
#' the future's uuid), and stores it in `future`, which becomes a PicoP2PFuture (a Future
#' is an environment: the caller's reference sees it), so that `value(future)` relays its
#' stdout and conditions and returns its value.
#'
#' @param result The raw bytes the evaluator returned, or the unserialized object.
#' @param future The Future the payload was made from, or NULL to only decode.
#' @param posted The future's id on the board when a future.p2p 0.4.0 worker got it
#'   (see original_payload()), else NULL.
#' @return The FutureResult, invisibly.
#' @keywords internal
payload_result <- function(result, future = NULL, posted = NULL) {
  if (is.raw(result)) {
    result <- if (is_gzip(result)) original_result(result, future, posted) else unserialize(result)
  }
  if (!inherits(result, "FutureResult")) {
    stop(future::FutureError(sprintf(
      "a future.p2p worker returned an object of class %s instead of a FutureResult",
      paste(class(result), collapse = ", ")
    ), future = future))
  }
  if (!is.null(future)) {
    if (!is.null(result$uuid) && !is.null(future$uuid) && !identical(result$uuid, future$uuid)) {
      stop(future::FutureError("a future.p2p worker returned the result of another future", future = future))
    }
    if (!inherits(future, "PicoP2PFuture")) class(future) <- c("PicoP2PFuture", class(future))
    future$result <- result
    future$state <- "finished"
  }
  invisible(result)
}

#' Re-signal, in the client session, a condition relayed while its future ran
#'
#' Messages and warnings are re-signalled as such, anything else (e.g. progressr's
#' progression) with signalCondition(), so the handlers of the calling code see it.
#'
#' @param condition The raw bytes the evaluator relayed, or the unserialized condition.
#' @return The condition, invisibly.
#' @keywords internal
payload_condition <- function(condition) {
  if (is.raw(condition)) condition <- unserialize(condition)
  stopifnot(inherits(condition, "condition"))
  if (inherits(condition, "message")) {
    message(condition)
  } else if (inherits(condition, "warning")) {
    warning(condition)
  } else {
    signalCondition(condition)
  }
  invisible(condition)
}
