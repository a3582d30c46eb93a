## The evaluator protocol between a Rust REvaluator and this package's evaluator_loop().
##
## A frame is a 9-byte header -- kind (1 byte), job id (4 bytes, big endian), body length
## (4 bytes, big endian, at most .Machine$integer.max) -- followed by the body. The kinds
## and their meaning must match p2p-r/src/evaluator/protocol.rs.

## Rust -> R
FRAME_JOB <- 1L          # body: a serialized payload made by future_payload()
FRAME_PING <- 2L         # body: empty; answered by a PONG with the same job id

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
EVALUATOR_PROTOCOL <- 1L

encode_frame <- function(kind, job, body = raw(0L)) {
  if (is.character(body)) body <- charToRaw(enc2utf8(paste(body, collapse = "\n")))
  stopifnot(is.raw(body))
  ## One raw vector, written with one writeBin() call: an interrupt can only land between
  ## whole frames, never inside one.
  c(
    as.raw(kind),
    writeBin(as.integer(job), raw(), size = 4L, endian = "big"),
    writeBin(length(body), raw(), size = 4L, endian = "big"),
    body
  )
}

send_frame <- function(con, kind, job, body = raw(0L)) {
  writeBin(encode_frame(kind, job, body), con)
  flush(con)
  invisible()
}

## Returns list(kind, job, body), or NULL at end of input.
read_frame <- function(con) {
  header <- readBin(con, what = "raw", n = FRAME_HEADER_SIZE)
  if (length(header) == 0L) return(NULL)
  if (length(header) < FRAME_HEADER_SIZE) {
    stop(sprintf("truncated frame header (%d of %d bytes)", length(header), FRAME_HEADER_SIZE))
  }
  kind <- as.integer(header[1L])
  job <- readBin(header[2:5], what = "integer", size = 4L, endian = "big")
  size <- readBin(header[6:9], what = "integer", size = 4L, endian = "big")
  if (is.na(size) || size < 0L) stop("invalid frame length")
  body <- if (size > 0L) readBin(con, what = "raw", n = size) else raw(0L)
  if (length(body) < size) {
    stop(sprintf("truncated frame body (%d of %d bytes)", length(body), size))
  }
  list(kind = kind, job = job, body = body)
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
