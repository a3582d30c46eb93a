## Futures of the original future.p2p (0.4.0) on this package's workers. Between peers of
## this project futures travel as future_payload() and results as
## serialize(FutureResult); a client of 0.4.0 (its requests list no "rpayload-v1"
## protocol) ships the RDS file of a "vanilla" Future (its saveFuture(): a plain Future()
## with the future's fields, reset(), the same uuid) and expects the RDS file of its
## FutureResult back, both gzip as saveRDS() writes them.
##
## Trust: such an RDS file is R code from a member of the cluster, as with 0.4.0 itself
## and as with this project's own payloads; a worker runs it with the rights of its user.
## What a worker does bound here: it reads the file only if it is within the worker's
## payload limit (checked in Rust before R sees it); it evaluates it only if it holds a
## Future whose uuid is the id the client posted on the board; it never dispatches on the
## classes the sender chose (the Future is rebuilt as a plain Future from the fields
## future itself defines, so no backend class of the sender's is ever run); it evaluates
## under plan(sequential) in the evaluator process, with the worker's time and memory
## limits and a global environment emptied before and after. Reading an RDS file may load
## namespaces of packages installed on the worker, as any future's globals may.

## future.p2p 0.4.0 needs future >= 1.67 (its Futures use reset() and the FutureBackend
## API); a worker with an older future cannot evaluate its files.
ORIGINAL_FUTURE_VERSION <- "1.67.0"

original_formats_supported <- function() {
  utils::packageVersion("future") >= ORIGINAL_FUTURE_VERSION
}

## The bytes of the file saveRDS(object, file) writes.
rds_bytes <- function(object) {
  file <- tempfile(fileext = ".rds")
  on.exit(unlink(file))
  saveRDS(object, file)
  readBin(file, what = "raw", n = file.size(file))
}

## readRDS() of RDS bytes, gzip-compressed or not.
read_rds_bytes <- function(bytes) {
  con <- gzcon(rawConnection(bytes))
  on.exit(close(con))
  readRDS(con)
}

## A plain Future with `future`'s fields, as future.p2p 0.4.0's cloneFuture(): only the
## fields future's own Future() has, reset() to "created", and the same uuid.
vanilla_future <- function(future) {
  clone <- future::Future()
  for (name in names(clone)) assign(name, future[[name]], envir = clone)
  clone$state <- "created"
  ## reset() exists in future >= 1.40 only: looked up at run time (see backend.R).
  clone <- future_fn("reset")(clone)
  clone$uuid <- future$uuid
  clone
}

## An original job's body: the board id's length (int32, big endian), the id, the RDS
## file, JOB_TRAILER (see ToR::OriginalJob in p2p-r/src/evaluator/protocol.rs).
original_job_parts <- function(body) {
  n <- length(body)
  if (n < 4L + length(JOB_TRAILER)) stop("the job frame is too short")
  if (!identical(body[(n - length(JOB_TRAILER) + 1L):n], JOB_TRAILER)) {
    stop("the job frame has no trailer")
  }
  size <- readBin(body[1:4], what = "integer", size = 4L, endian = "big")
  end <- n - length(JOB_TRAILER)
  if (is.na(size) || size < 1L || 4L + size > end) stop("the job frame's future id is cut short")
  list(
    future = rawToChar(body[4L + seq_len(size)]),
    rds = if (end > 4L + size) body[(5L + size):end] else raw(0L)
  )
}

## Reads and evaluates an original job and replies; FALSE ends the loop when the frame
## itself was malformed (the worker then starts a new R).
run_original_job <- function(job, body, out) {
  parts <- tryCatch(original_job_parts(body), error = identity)
  if (inherits(parts, "error")) {
    send_frame(out, FRAME_FAILED, job, conditionMessage(parts))
    return(FALSE)
  }
  send_frame(out, FRAME_STARTED, job)
  reply <- tryCatch(
    evaluate_original_payload(parts$future, parts$rds),
    interrupt = function(cond) list(kind = FRAME_INTERRUPTED, body = raw(0L))
  )
  send_frame(out, reply$kind, job, reply$body)
  TRUE
}

## Evaluates a future.p2p 0.4.0 client's Future as its own worker does (result() under
## plan(sequential)), within the bounds above; returns the reply frame's kind and body:
## the RDS file of the FutureResult, or why there is none (Rust turns that into a
## FutureResult carrying the error, which is all such a client understands).
evaluate_original_payload <- function(id, rds) {
  reply <- function(kind, body = raw(0L)) list(kind = kind, body = body)
  failed <- function(fmt, ...) reply(FRAME_FAILED, sprintf(fmt, ...))
  if (!original_formats_supported()) {
    return(reply(FRAME_UNSUPPORTED, sprintf(
      "futures of future.p2p 0.4.0 need future (>= %s) on the worker, which has future %s",
      ORIGINAL_FUTURE_VERSION, format(utils::packageVersion("future"))
    )))
  }
  future <- tryCatch(read_rds_bytes(rds), error = identity)
  if (inherits(future, "error")) {
    return(failed("cannot read the future's RDS file: %s", conditionMessage(future)))
  }
  if (!inherits(future, "Future")) {
    return(failed("the RDS file holds an object of class %s, not a Future",
                  paste(class(future), collapse = ", ")))
  }
  posted <- paste(future$uuid, collapse = "-")
  if (!identical(posted, id)) {
    return(failed("the RDS file holds future %s, not future %s that the client posted", posted, id))
  }
  future <- tryCatch(vanilla_future(future), error = identity)
  if (inherits(future, "error")) {
    return(failed("cannot rebuild the future: %s", conditionMessage(future)))
  }

  genv <- globalenv()
  clean <- function() rm(list = ls(envir = genv, all.names = TRUE), envir = genv)
  clean()
  old_plan <- future::plan(future::sequential)
  on.exit({
    future::plan(old_plan)
    clean()
  }, add = TRUE)
  result <- tryCatch(future::result(future), error = identity)
  if (!inherits(result, "FutureResult")) {
    message <- if (inherits(result, "condition")) conditionMessage(result) else
      sprintf("result() returned an object of class %s", paste(class(result), collapse = ", "))
    return(failed("evaluating the future failed: %s", message))
  }
  ## future >= 1.40 catches the interrupt itself and returns it as a condition.
  if (any(vapply(result$conditions, function(c) inherits(c$condition, "interrupt"), NA))) {
    return(reply(FRAME_INTERRUPTED))
  }
  rds <- tryCatch(rds_bytes(result), error = identity)
  if (inherits(rds, "error")) {
    return(failed("cannot save the result: %s", conditionMessage(rds)))
  }
  reply(FRAME_RESULT, rds)
}

## Futures of this package on a future.p2p 0.4.0 worker. Its offers list no "rpayload-v1":
## when the bridge accepts one, it asks for the future in 0.4.0's format (a
## BRIDGE_WANT_ORIGINAL frame with the id it posted on the board), which is made here only
## then, so a cluster of this project's workers never pays for it. The worker evaluates the
## RDS file only if paste(uuid, collapse = "-") is that id, and sends back the RDS file of
## the FutureResult (gzip), which payload_result() reads.

## The RDS file 0.4.0's client ships for `future` (its saveFuture(): a vanilla Future
## saved with saveRDS()), its uuid being the board id `posted` split at its last "-".
original_payload <- function(future, posted) {
  clone <- vanilla_future(future)
  clone$uuid <- posted_uuid(posted)
  rds_bytes(clone)
}

posted_uuid <- function(posted) {
  at <- regexpr("-[^-]*$", posted)
  if (at < 2L) stop(sprintf("the board id %s has no '-'", posted))
  c(substr(posted, 1L, at - 1L), substr(posted, at + 1L, nchar(posted)))
}

## The BRIDGE_ORIGINAL frame answering the bridge's request for future `id` of mailbox
## `box` (NULL once the future was collected or cancelled).
answer_original <- function(box, id, posted) {
  rds <- if (is.null(box)) {
    simpleError("the future is no longer waiting for a worker")
  } else {
    tryCatch(original_payload(box$future, posted), error = identity)
  }
  if (inherits(rds, "error")) {
    why <- charToRaw(enc2utf8(paste("cannot make the future.p2p 0.4.0 payload:", conditionMessage(rds))))
    return(encode_frame(BRIDGE_ORIGINAL, id, c(as.raw(0L), why)))
  }
  box$posted <- posted
  encode_frame(BRIDGE_ORIGINAL, id, c(as.raw(1L), rds))
}

## Whether bytes are gzip: 0.4.0's results are RDS files saveRDS() compressed, this
## package's are serialize() output, which starts "B\n" or "X\n".
is_gzip <- function(bytes) length(bytes) >= 2L && bytes[1L] == as.raw(0x1f) && bytes[2L] == as.raw(0x8b)

## A 0.4.0 worker's RDS FutureResult of `future`, which went out under the board id
## `posted`: the uuid it carries is that id's, given back the future's own.
original_result <- function(bytes, future, posted) {
  result <- read_rds_bytes(bytes)
  if (inherits(result, "FutureResult") && !is.null(future) && !is.null(posted) &&
      identical(paste(result$uuid, collapse = "-"), posted)) {
    result$uuid <- future$uuid
  }
  result
}
