## The evaluator protocol between a Rust REvaluator and this package's evaluator_loop().
##
## A frame is a 9-byte header -- kind (1 byte), job id (4 bytes, big endian), body length
## (4 bytes, big endian, at most .Machine$integer.max) -- followed by the body. The kinds
## and their meaning must match p2p-r/src/evaluator/protocol.rs.
##
## A JOB body is the serialized payload followed by the 4 bytes JOB_TRAILER: the loop
## unserializes the payload straight from the pipe, as it arrives, and the trailer proves
## that it read exactly the payload.

## Rust -> R
FRAME_JOB <- 1L          # body: a serialized payload made by future_payload(), JOB_TRAILER
FRAME_PING <- 2L         # body: empty; answered by a PONG with the same job id
FRAME_ORIGINAL_JOB <- 3L # body: board id length (int32), board id, the RDS file of a
                         # future.p2p 0.4.0 Future, JOB_TRAILER (see original.R)

## R -> Rust
FRAME_HELLO <- 10L       # body: "key=value" lines (protocol, r, future, pid, api)
FRAME_STARTED <- 11L     # the job is read and its evaluation begins
FRAME_CONDITION <- 12L   # body: a serialized immediate condition, sent while the job runs
FRAME_RESULT <- 13L      # body: the serialized FutureResult
FRAME_INTERRUPTED <- 14L # the job was interrupted (SIGINT)
FRAME_UNSUPPORTED <- 15L # body: UTF-8 message; this worker cannot evaluate the payload
FRAME_FAILED <- 16L      # body: UTF-8 message; the evaluation infrastructure failed
FRAME_PONG <- 17L

FRAME_HEADER_SIZE <- 9L

## The protocol version in the hello; bumped on any incompatible change of frames.
EVALUATOR_PROTOCOL <- 3L

## The end of every JOB body ("P2P!").
JOB_TRAILER <- as.raw(c(0x50, 0x32, 0x50, 0x21))

frame_header <- function(kind, job, size) {
  c(
    as.raw(kind),
    writeBin(as.integer(job), raw(), size = 4L, endian = "big"),
    writeBin(as.integer(size), raw(), size = 4L, endian = "big")
  )
}

frame_body <- function(body) {
  if (is.character(body)) body <- charToRaw(enc2utf8(paste(body, collapse = "\n")))
  stopifnot(is.raw(body))
  body
}

## A whole frame as one raw vector (small frames; large bodies go out with send_frame()).
encode_frame <- function(kind, job, body = raw(0L)) {
  body <- frame_body(body)
  c(frame_header(kind, job, length(body)), body)
}

## Writes header and body without joining them (a result of hundreds of megabytes is not
## copied); interrupts wait until both are out, so a frame is never cut.
send_frame <- function(con, kind, job, body = raw(0L)) {
  body <- frame_body(body)
  suspendInterrupts({
    writeBin(frame_header(kind, job, length(body)), con)
    if (length(body) > 0L) writeBin(body, con)
    flush(con)
  })
  invisible()
}

## Returns list(kind, job, size) of the next frame, or NULL at end of input.
read_header <- function(con) {
  header <- readBin(con, what = "raw", n = FRAME_HEADER_SIZE)
  if (length(header) == 0L) return(NULL)
  if (length(header) < FRAME_HEADER_SIZE) {
    stop(sprintf("truncated frame header (%d of %d bytes)", length(header), FRAME_HEADER_SIZE))
  }
  size <- readBin(header[6:9], what = "integer", size = 4L, endian = "big")
  if (is.na(size) || size < 0L) stop("invalid frame length")
  list(
    kind = as.integer(header[1L]),
    job = readBin(header[2:5], what = "integer", size = 4L, endian = "big"),
    size = size
  )
}

read_body <- function(con, size) {
  body <- if (size > 0L) readBin(con, what = "raw", n = size) else raw(0L)
  if (length(body) < size) {
    stop(sprintf("truncated frame body (%d of %d bytes)", length(body), size))
  }
  body
}

## The payload of a JOB frame whose body has `size` bytes, unserialized from `con` as it
## arrives. list(value) when it was read exactly; list(error) when it could not be, after
## which the stream is out of step and the loop must end.
read_job_payload <- function(con, size) {
  if (size < length(JOB_TRAILER)) {
    return(list(error = "a job frame shorter than its trailer"))
  }
  value <- if (size > length(JOB_TRAILER)) tryCatch(unserialize(con), error = identity) else
    simpleError("the payload is empty")
  if (inherits(value, "error")) {
    return(list(error = sprintf("cannot unserialize the payload: %s", conditionMessage(value))))
  }
  if (!identical(readBin(con, what = "raw", n = length(JOB_TRAILER)), JOB_TRAILER)) {
    return(list(error = "the payload is not one serialized object of its announced size"))
  }
  list(value = value)
}

## Sans-IO decoding of whatever bytes have arrived so far (e.g. from a non-blocking
## read): returns the whole frames in `buffer` and the incomplete rest, to be prepended
## to the next bytes read.
decode_frames <- function(buffer, max_body = .Machine$integer.max) {
  stopifnot(is.raw(buffer))
  frames <- list()
  at <- 0L
  repeat {
    if (length(buffer) - at < FRAME_HEADER_SIZE) break
    header <- buffer[at + seq_len(FRAME_HEADER_SIZE)]
    size <- readBin(header[6:9], what = "integer", size = 4L, endian = "big")
    if (is.na(size) || size < 0L || size > max_body) {
      stop(sprintf("frame body of %s bytes exceeds the limit of %s bytes",
                   format(size), format(max_body)))
    }
    if (length(buffer) - at - FRAME_HEADER_SIZE < size) break
    body <- if (size > 0L) buffer[at + FRAME_HEADER_SIZE + seq_len(size)] else raw(0L)
    frames[[length(frames) + 1L]] <- list(
      kind = as.integer(header[1L]),
      job = readBin(header[2:5], what = "integer", size = 4L, endian = "big"),
      body = body
    )
    at <- at + FRAME_HEADER_SIZE + size
  }
  list(frames = frames, rest = if (at < length(buffer)) buffer[(at + 1L):length(buffer)] else raw(0L))
}
