## The bridge protocol between this R session and its future-p2p child process, which
## carries many futures at once. Frames are those of protocol.R; the frame id is the
## future's id (chosen by this session, unique within it), 0 for session-wide messages.
## The kinds and body layouts must match p2p-r/src/bridge/protocol.rs.

## R session -> child
BRIDGE_HELLO <- 1L         # body: "key=value" lines (protocol, r, future, api, pid)
BRIDGE_SUBMIT <- 2L        # body: label length (int32), label (UTF-8), payload
BRIDGE_CANCEL <- 3L
BRIDGE_POLL <- 4L          # id 0: asks for the worker counts
BRIDGE_ORIGINAL <- 5L      # body: 1 and the 0.4.0 payload (RDS), or 0 and why there is none
BRIDGE_SUBMIT_UPLOADED <- 6L # body: label length (int32), label (UTF-8); the payload came
                           # on a connection of its own (bridge_upload())

## child -> R session
BRIDGE_SERVER_HELLO <- 10L # body: "key=value" lines (protocol, version, cluster, max_payload)
BRIDGE_STATUS <- 11L       # body: state (1 byte), detail (UTF-8)
BRIDGE_CONDITION <- 12L    # body: a serialized immediate condition
BRIDGE_RESULT <- 13L       # body: the serialized FutureResult
BRIDGE_ERROR <- 14L        # body: error kind (1 byte), message (UTF-8)
BRIDGE_WORKERS <- 15L      # body: total, free (int32 each)
BRIDGE_WANT_ORIGINAL <- 16L # body: the future's id on the board (UTF-8); see original.R

BRIDGE_PROTOCOL <- 1L

## Codes of the status states and error kinds, in wire order (code 1 first).
BRIDGE_STATES <- c("queued", "sent", "running", "requeued")
BRIDGE_ERROR_KINDS <- c(
  "refused", "payload_too_large", "time_limit", "cancelled", "crashed",
  "unsupported", "failed", "exhausted", "cluster", "protocol"
)

bridge_hello <- function() {
  encode_frame(BRIDGE_HELLO, 0L, c(
    sprintf("protocol=%d", BRIDGE_PROTOCOL),
    sprintf("r=%s", format(getRversion())),
    sprintf("future=%s", format(packageVersion("future"))),
    sprintf("api=%s", future_api()),
    sprintf("pid=%d", Sys.getpid())
  ))
}

## A future's label as a SUBMIT body starts: label length, label (NULL for none).
label_bytes <- function(label) {
  label <- if (is.null(label) || is.na(label)) raw(0L) else charToRaw(enc2utf8(as.character(label)))
  c(writeBin(length(label), raw(), size = 4L, endian = "big"), label)
}

## The header of a SUBMIT frame whose payload of `size` bytes follows: frame header, label
## length, label. `label` is the future's label (NULL for none).
bridge_submit_head <- function(id, size, label = NULL) {
  label <- label_bytes(label)
  c(frame_header(BRIDGE_SUBMIT, id, length(label) + size), label)
}

## Payloads whose globals take more than this are uploaded (bridge_upload()).
UPLOAD_MIN <- 1048576

## Sends a large payload: `object` is serialized straight into a connection of its own to
## the bridge, which reads it to its end (the size need not be known first, so no
## serialized copy is made), then SUBMIT_UPLOADED on the bridge's connection submits it,
## in order with the other frames. The first line says which future it is and about how
## large (`hint`: the bridge's buffer is made that large at once). Interrupts wait until
## both are out.
bridge_upload <- function(bridge, id, object, hint, label = NULL) {
  if (is.null(bridge$con)) stop(bridge_error(bridge, "the future-p2p bridge is closed"))
  suspendInterrupts({
    con <- socketConnection("127.0.0.1", bridge$port, blocking = TRUE, open = "wb",
                            timeout = p2p_option("connect_timeout", 60))
    tryCatch({
      writeBin(charToRaw(sprintf("%s upload %d %.0f\n", bridge$token, id, hint)), con)
      serialize(object, con, xdr = FALSE)
    }, finally = close(con))
    bridge_send(bridge, encode_frame(BRIDGE_SUBMIT_UPLOADED, id, label_bytes(label)))
  })
  invisible()
}

## A whole SUBMIT frame; `payload` is what future_payload() made.
bridge_submit <- function(id, payload, label = NULL) {
  stopifnot(is.raw(payload))
  c(bridge_submit_head(id, length(payload), label), payload)
}

## Refuses a payload over the bridge's limit before anything is sent, naming the limit.
bridge_check_size <- function(bridge, size, future = NULL) {
  limit <- bridge$hello$max_payload
  if (is.null(limit)) limit <- NA_real_
  ## The bridge is started once per R session and keeps the limit it started with; a
  ## lower future.p2p.max_payload set since then applies all the same.
  option <- p2p_option("max_payload", NA_real_)
  if (!is.na(option)) limit <- min(limit, option, na.rm = TRUE)
  if (is.na(limit) || size <= limit) return(invisible())
  stop(future::FutureError(sprintf(paste(
    "the future's payload is %.0f bytes, more than the limit of %.0f bytes of future-p2p:",
    "set options(future.p2p.max_payload = <bytes>) or FUTURE_P2P_MAX_PAYLOAD (e.g. 2G)",
    "before plan() to raise it (workers accept at most their own --max-payload)"
  ), size, limit), future = future))
}

## Payloads up to this size go out in one write with their frame header.
SUBMIT_JOIN_MAX <- 1048576L

## Sends a payload to the bridge as a SUBMIT frame; interrupts wait until the whole frame
## is out, so it is never cut. A small payload is joined to its header and written at
## once: R's socket has Nagle's algorithm on, and a second small write would wait for the
## bridge's delayed acknowledgement of the first (40 ms on Linux). A large one is not
## copied: its full-size segments are not held back.
bridge_send_submit <- function(bridge, id, payload, label = NULL) {
  stopifnot(is.raw(payload))
  head <- bridge_submit_head(id, length(payload), label)
  suspendInterrupts({
    if (length(payload) <= SUBMIT_JOIN_MAX) {
      bridge_send(bridge, c(head, payload))
    } else {
      bridge_send(bridge, head)
      bridge_send(bridge, payload)
    }
  })
  invisible()
}

bridge_cancel <- function(id) encode_frame(BRIDGE_CANCEL, id)

bridge_poll <- function(id = 0L) encode_frame(BRIDGE_POLL, id)

utf8_text <- function(bytes) {
  text <- rawToChar(bytes)
  Encoding(text) <- "UTF-8"
  text
}

parse_hello_lines <- function(bytes) {
  lines <- strsplit(utf8_text(bytes), "\n", fixed = TRUE)[[1L]]
  lines <- lines[nzchar(lines)]
  keys <- sub("=.*", "", lines)
  values <- sub("^[^=]*=", "", lines)
  fields <- as.list(values)
  names(fields) <- keys
  fields
}

## A frame from the child (see decode_frames()) as a list with `type` and `id`, plus:
## hello: protocol, version, cluster, max_payload (NA from an older child); status: state,
## detail; condition: condition (raw);
## result: result (raw); error: kind, message; workers: total, free; want_original: future.
bridge_reply <- function(frame) {
  kind <- frame$kind
  id <- frame$job
  body <- frame$body
  code_and_text <- function(what, names) {
    if (length(body) < 1L) stop(sprintf("bridge frame kind %d has no %s", kind, what))
    code <- as.integer(body[1L])
    if (code < 1L || code > length(names)) {
      stop(sprintf("bridge frame kind %d has an unknown %s %d", kind, what, code))
    }
    list(names[code], utf8_text(body[-1L]))
  }
  if (kind == BRIDGE_SERVER_HELLO) {
    fields <- parse_hello_lines(body)
    list(type = "hello", id = id, protocol = as.integer(fields$protocol),
         version = fields$version, cluster = fields$cluster,
         max_payload = if (is.null(fields$max_payload)) NA_real_ else as.numeric(fields$max_payload))
  } else if (kind == BRIDGE_STATUS) {
    x <- code_and_text("state", BRIDGE_STATES)
    list(type = "status", id = id, state = x[[1L]], detail = x[[2L]])
  } else if (kind == BRIDGE_CONDITION) {
    list(type = "condition", id = id, condition = body)
  } else if (kind == BRIDGE_RESULT) {
    list(type = "result", id = id, result = body)
  } else if (kind == BRIDGE_ERROR) {
    x <- code_and_text("error kind", BRIDGE_ERROR_KINDS)
    list(type = "error", id = id, kind = x[[1L]], message = x[[2L]])
  } else if (kind == BRIDGE_WANT_ORIGINAL) {
    list(type = "want_original", id = id, future = utf8_text(body))
  } else if (kind == BRIDGE_WORKERS) {
    if (length(body) != 8L) stop(sprintf("bridge workers frame of %d bytes instead of 8", length(body)))
    list(type = "workers", id = id,
         total = readBin(body[1:4], what = "integer", size = 4L, endian = "big"),
         free = readBin(body[5:8], what = "integer", size = 4L, endian = "big"))
  } else {
    stop(sprintf("unknown bridge frame kind %d", kind))
  }
}
