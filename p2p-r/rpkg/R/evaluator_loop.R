#' The loop a future-p2p worker's R process runs
#'
#' Started by the Rust REvaluator as
#' `Rscript -e 'future.p2p:::evaluator_loop()' 3>&1 4<&0 1>&2 0</dev/null`: jobs arrive
#' on file descriptor 4 and replies leave on file descriptor 3, so that whatever user code
#' prints to stdout or stdin-reads cannot corrupt or steal frames. One job at a time; the
#' process is reused for the next job (R and future start only once).
#'
#' A SIGINT interrupts the running job, which is then reported as interrupted; the loop
#' carries on. It returns at end of input, or after a payload it could not read exactly
#' (the evaluator then starts a new R process).
#'
#' @param input,output Paths of the job and reply channels.
#' @keywords internal
evaluator_loop <- function(input = "/dev/fd/4", output = "/dev/fd/3") {
  ## One core per evaluator process: parallelism comes from running several processes.
  ## future.p2p.evaluator: a future's expression restores its client's plan when it ends,
  ## and plan() asks nbrOfWorkers(), which must not start a bridge here.
  options(
    future.p2p.evaluator = TRUE,
    mc.cores = 1L,
    parallelly.availableCores.fallback = 1L,
    future.p2p.relay = NULL
  )
  future::plan(future::sequential)

  inp <- file(input, open = "rb")
  out <- file(output, open = "wb")
  on.exit({
    close(inp)
    close(out)
  })
  send_frame(out, FRAME_HELLO, 0L, hello_lines())

  state <- new.env(parent = emptyenv())
  state$job <- 0L
  repeat {
    more <- tryCatch(serve_next_frame(inp, out, state), interrupt = function(cond) {
      ## An interrupt that landed outside a job's evaluation (e.g. its job had just
      ## finished): the evaluator waits for this acknowledgement before it reuses us.
      send_frame(out, FRAME_INTERRUPTED, state$job)
      TRUE
    })
    if (!more) break
  }
  invisible()
}

hello_lines <- function() {
  c(
    sprintf("protocol=%d", EVALUATOR_PROTOCOL),
    sprintf("r=%s", format(getRversion())),
    sprintf("future=%s", format(packageVersion("future"))),
    sprintf("pid=%d", Sys.getpid()),
    sprintf("api=%s", paste(supported_apis(), collapse = ";"))
  )
}

## Payload generations this worker can evaluate (see future_payload()).
supported_apis <- function() {
  if (identical(future_api(), "evalFuture")) c("expr", "evalFuture") else "expr"
}

serve_next_frame <- function(inp, out, state) {
  header <- read_header(inp)
  if (is.null(header)) return(FALSE)
  if (header$kind == FRAME_JOB) {
    state$job <- header$job
    return(run_job(header$job, header$size, inp, out))
  }
  body <- read_body(inp, header$size)
  if (header$kind == FRAME_ORIGINAL_JOB) {
    state$job <- header$job
    return(run_original_job(header$job, body, out))
  }
  if (header$kind == FRAME_PING) {
    send_frame(out, FRAME_PONG, header$job)
  } else {
    send_frame(out, FRAME_FAILED, header$job, sprintf("unexpected frame kind %d", header$kind))
  }
  TRUE
}

## Reads the job's payload, evaluates it and replies; FALSE (end the loop, the worker
## starts a new R) when the payload could not be read exactly, as the next frame's start
## is then unknown.
run_job <- function(job, size, inp, out) {
  payload <- read_job_payload(inp, size)
  if (!is.null(payload$error)) {
    send_frame(out, FRAME_FAILED, job, payload$error)
    return(FALSE)
  }
  send_frame(out, FRAME_STARTED, job)
  reply <- tryCatch(
    evaluate_payload(job, payload$value, out),
    interrupt = function(cond) list(kind = FRAME_INTERRUPTED, body = raw(0L))
  )
  send_frame(out, reply$kind, job, reply$body)
  TRUE
}

## Evaluates one unserialized payload; returns the reply frame's kind and body.
evaluate_payload <- function(job, p, out) {
  reply <- function(kind, body = raw(0L)) list(kind = kind, body = body)
  if (!is.list(p) || !identical(p$proto, PAYLOAD_PROTOCOL)) {
    return(reply(FRAME_FAILED, "the payload is not a future.p2p payload (protocol 1)"))
  }
  api <- p$api
  if (!is.character(api) || length(api) != 1L || !api %in% c("expr", "evalFuture")) {
    return(reply(FRAME_UNSUPPORTED, sprintf("unknown payload API %s", deparse(api))))
  }
  if (!api %in% supported_apis()) {
    return(reply(FRAME_UNSUPPORTED, sprintf(
      paste(
        "this future was made with future %s, whose payloads need future (>= 1.40.0) on",
        "the worker, but this worker has future %s: use the same future version on",
        "clients and workers"
      ),
      format(p$future_version), format(packageVersion("future"))
    )))
  }

  options(future.p2p.relay = function(cond) relay_condition_frame(out, job, cond))
  on.exit(options(future.p2p.relay = NULL), add = TRUE)
  result <- tryCatch(
    if (identical(api, "expr")) eval_expr_payload(p) else eval_future_data(p),
    error = identity
  )
  if (!inherits(result, "FutureResult")) {
    message <- if (inherits(result, "condition")) conditionMessage(result) else
      sprintf("the evaluation returned an object of class %s", paste(class(result), collapse = ", "))
    return(reply(FRAME_FAILED, sprintf("evaluating the future failed: %s", message)))
  }
  ## future >= 1.40 catches the interrupt itself and returns it as a condition.
  if (any(vapply(result$conditions, function(c) inherits(c$condition, "interrupt"), NA))) {
    return(reply(FRAME_INTERRUPTED))
  }
  body <- tryCatch(serialize(result, NULL, xdr = FALSE), error = identity)
  if (inherits(body, "error")) {
    return(reply(FRAME_FAILED, sprintf("cannot serialize the result: %s", conditionMessage(body))))
  }
  reply(FRAME_RESULT, body)
}

## Legacy payload (future < 1.40): the globals go into the global environment, where the
## expression (and closures defined at top level) find them, as future's own cluster
## workers do; the environment is emptied before and after, so jobs cannot see each other.
eval_expr_payload <- function(p) {
  genv <- globalenv()
  clean <- function() rm(list = ls(envir = genv, all.names = TRUE), envir = genv)
  clean()
  on.exit(clean(), add = TRUE)
  globals <- p$globals
  for (name in names(globals)) assign(name, globals[[name]], envir = genv)
  eval(p$expr, envir = genv)
}

## FutureBackend payload (future >= 1.40): future's own evaluation of getFutureData().
eval_future_data <- function(p) {
  evalFuture <- get("evalFuture", envir = asNamespace("future"), mode = "function")
  evalFuture(p$data)
}

relay_condition_frame <- function(out, job, cond) {
  body <- tryCatch(serialize(cond, NULL, xdr = FALSE), error = function(e) NULL)
  if (!is.null(body)) send_frame(out, FRAME_CONDITION, job, body)
  invisible()
}
