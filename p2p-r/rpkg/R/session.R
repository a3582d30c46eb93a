## The R end of the bridge: one long-lived `future-p2p bridge` child per R session and
## cluster, carrying all futures of that session at once.
##
## The child is started with processx (inside with_stealth_rng()) and prints
## `port PORT`; frames then flow over a non-blocking loopback socket, because base R
## reads binary frames from sockets but not from a child's pipes. Replies are drained
## into per-future mailboxes on every call that looks at the bridge (resolved(), result(),
## nbrOfWorkers()); a call that waits blocks in select() on the socket, so that R does
## no work until a reply arrives.

.bridges <- new.env(parent = emptyenv())

bridge_key <- function(cluster, host, ssh_args) {
  paste(cluster, host, ssh_args_string(ssh_args), sep = "\n")
}

## The bridge for a cluster, started if there is none or the last one failed.
bridge_for <- function(cluster, host, ssh_args) {
  key <- bridge_key(cluster, host, ssh_args)
  bridge <- .bridges[[key]]
  if (!is.null(bridge) && bridge_usable(bridge)) return(bridge)
  if (!is.null(bridge)) bridge_stop(bridge)
  bridge <- bridge_start(cluster, host, ssh_args)
  assign(key, bridge, envir = .bridges)
  bridge
}

## Ends a bridge that its plan no longer uses; its futures keep what already arrived.
bridge_retire <- function(bridge) {
  bridge_stop(bridge)
  if (is.null(bridge$failure)) bridge$failure <- "its plan was replaced by another one"
  for (key in ls(.bridges)) {
    if (identical(.bridges[[key]], bridge)) rm(list = key, envir = .bridges)
  }
  invisible()
}

## Whether a bridge can take futures: a pump notices a bridge that ended (its connection
## closes), without asking the operating system about its process every time.
bridge_usable <- function(bridge) {
  if (is.null(bridge$con)) return(FALSE)
  if (is.null(bridge$failure)) bridge_pump(bridge, timeout = 0)
  is.null(bridge$failure)
}

## Seconds as future-p2p reads a duration: a whole number.
whole_seconds <- function(seconds) format(max(1, ceiling(seconds)), scientific = FALSE)

bridge_start <- function(cluster, host, ssh_args) {
  bin <- future_p2p_bin()
  timeout <- p2p_option("connect_timeout", 60)
  ## tempfile() names come from C's rand(), not from R's random number stream.
  token <- basename(tempfile("t"))
  log <- tempfile("future-p2p-bridge-", fileext = ".log")
  args <- c("bridge", "--cluster", cluster, board_args(host, ssh_args))
  ## The bridge gives up joining the cluster at `timeout` and says why; R waits a little
  ## longer for that message.
  env <- c("current", FUTURE_P2P_BRIDGE_TOKEN = token,
           FUTURE_P2P_CONNECT_TIMEOUT = whole_seconds(timeout))
  cluster_timeout <- p2p_option("cluster_timeout", NA_real_)
  if (!is.na(cluster_timeout)) env <- c(env, FUTURE_P2P_CLUSTER_TIMEOUT = whole_seconds(cluster_timeout))
  time_limit <- p2p_option("time_limit", NA_real_)
  if (!is.na(time_limit)) env <- c(env, FUTURE_P2P_TIME_LIMIT = as.character(time_limit))
  max_payload <- p2p_option("max_payload", NA_real_)
  if (!is.na(max_payload)) env <- c(env, FUTURE_P2P_MAX_PAYLOAD = format(max_payload, scientific = FALSE))
  proc <- with_stealth_rng(processx::process$new(
    bin, args, env = env,
    stdin = "|", stdout = "|", stderr = log, cleanup = TRUE, cleanup_tree = TRUE
  ))
  bridge <- new.env(parent = emptyenv())
  bridge$proc <- proc
  bridge$log <- log
  bridge$cluster <- cluster
  bridge$buffer <- raw(0L)
  bridge$large <- NULL
  bridge$mail <- new.env(parent = emptyenv())
  bridge$next_id <- 0L
  bridge$total <- NA_integer_
  bridge$free <- NA_integer_
  bridge$hello <- NULL
  bridge$failure <- NULL

  port <- NULL
  deadline <- Sys.time() + timeout
  while (is.null(port)) {
    if (!proc$is_alive()) {
      stop(bridge_error(bridge, "future-p2p bridge exited before it was ready"))
    }
    if (Sys.time() > deadline) {
      bridge_stop(bridge)
      stop(bridge_error(bridge, sprintf("future-p2p bridge was not ready within %s s", timeout)))
    }
    proc$poll_io(200L)
    lines <- proc$read_output_lines()
    hit <- grep("^port [0-9]+$", lines, value = TRUE)
    if (length(hit) > 0L) port <- as.integer(sub("^port ", "", hit[1L]))
  }
  bridge$port <- port
  bridge$token <- token
  bridge$con <- socketConnection("127.0.0.1", port, blocking = FALSE, open = "a+b", timeout = timeout)
  writeBin(charToRaw(paste0(token, "\n")), bridge$con)
  bridge_send(bridge, bridge_hello())
  bridge_wait(bridge, function() !is.null(bridge$hello), timeout = timeout + 5)
  if (is.null(bridge$hello)) {
    failure <- bridge$failure
    bridge_stop(bridge)
    stop(bridge_error(bridge, if (!is.null(failure)) failure else
      sprintf("future-p2p bridge did not connect to cluster %s within %s s", cluster, timeout)))
  }
  bridge
}

## A FutureError about the bridge, with the last lines of its log.
bridge_error <- function(bridge, message, future = NULL) {
  log <- if (file.exists(bridge$log)) tail(readLines(bridge$log, warn = FALSE), 10L) else character(0L)
  log <- log[nzchar(log)]
  advice <- paste0(
    " Check that the cluster name, host and ssh_args of plan() are right, that your SSH key ",
    "is registered on the board, and that the cluster's owner has started it ",
    "(future-p2p host / host_cluster())."
  )
  future::FutureError(paste0(
    message, ".", advice,
    if (length(log) > 0L) paste0("\nfuture-p2p said:\n", paste(log, collapse = "\n")) else ""
  ), future = future)
}

bridge_stop <- function(bridge) {
  if (!is.null(bridge$con)) try(close(bridge$con), silent = TRUE)
  bridge$con <- NULL
  if (!is.null(bridge$proc) && bridge$proc$is_alive()) try(bridge$proc$kill(), silent = TRUE)
  invisible()
}

bridge_send <- function(bridge, bytes) {
  if (is.null(bridge$con)) stop(bridge_error(bridge, "the future-p2p bridge is closed"))
  writeBin(bytes, bridge$con)
  invisible()
}

## Bytes asked of the socket per read between frames: enough for many small replies at
## once, small enough to cost little when only a few bytes came (a read allocates them).
READ_SMALL <- 65536L
## Most bytes asked per read of a large frame's body, which is read on its own, in parts
## joined once it is complete (a result of hundreds of megabytes is copied once).
READ_LARGE <- 16777216L

## Waits up to `timeout` seconds for the bridge to send something, reads all it sent and
## files the replies into the mailboxes; TRUE when something arrived. Costs a select()
## when nothing did. The bridge process is only looked at when the wait ran out or the
## connection ended, never while replies flow.
bridge_pump <- function(bridge, timeout = 0) {
  con <- bridge$con
  if (is.null(con)) return(invisible(FALSE))
  if (!socketSelect(list(con), timeout = timeout)) {
    if (timeout > 0) bridge_check_alive(bridge)
    return(invisible(FALSE))
  }
  got <- bridge_read(bridge)
  ## Readable yet nothing to read: the bridge closed the connection.
  if (!got) bridge_closed(bridge)
  invisible(got)
}

bridge_check_alive <- function(bridge) {
  if (is.null(bridge$failure) && !bridge$proc$is_alive()) {
    bridge$failure <- "the future-p2p bridge exited"
  }
  invisible()
}

bridge_closed <- function(bridge) {
  bridge_check_alive(bridge)
  if (is.null(bridge$failure)) bridge$failure <- "the future-p2p bridge closed its connection"
  invisible()
}

## Reads until the socket has nothing more (a read that returns fewer bytes than asked
## drained R's buffer and the socket), filing every complete frame as it comes.
bridge_read <- function(bridge) {
  con <- bridge$con
  got <- FALSE
  repeat {
    large <- bridge$large
    if (!is.null(large)) {
      n <- min(large$size - large$have, READ_LARGE)
      chunk <- readBin(con, what = "raw", n = n)
      if (length(chunk) > 0L) {
        got <- TRUE
        large$parts[[length(large$parts) + 1L]] <- chunk
        large$have <- large$have + length(chunk)
        if (large$have == large$size) {
          bridge$large <- NULL
          body <- if (length(large$parts) == 1L) large$parts[[1L]] else do.call(c, large$parts)
          bridge_file(bridge, bridge_reply(list(kind = large$kind, job = large$job, body = body)))
          next
        }
        bridge$large <- large
      }
      if (length(chunk) < n) break
    } else {
      chunk <- readBin(con, what = "raw", n = READ_SMALL)
      if (length(chunk) > 0L) {
        got <- TRUE
        bridge_take(bridge, chunk)
      }
      if (length(chunk) < READ_SMALL) break
    }
  }
  got
}

## Files the whole frames of the bytes read so far; keeps the incomplete rest, or starts
## a large frame's body, whose remaining bytes are read by themselves.
bridge_take <- function(bridge, chunk) {
  buffer <- if (length(bridge$buffer) > 0L) c(bridge$buffer, chunk) else chunk
  decoded <- decode_frames(buffer)
  for (frame in decoded$frames) bridge_file(bridge, bridge_reply(frame))
  rest <- decoded$rest
  if (length(rest) >= FRAME_HEADER_SIZE) {
    size <- readBin(rest[6:9], what = "integer", size = 4L, endian = "big")
    if (size > READ_SMALL) {
      body <- if (length(rest) > FRAME_HEADER_SIZE) rest[(FRAME_HEADER_SIZE + 1L):length(rest)] else raw(0L)
      bridge$large <- list(
        kind = as.integer(rest[1L]),
        job = readBin(rest[2:5], what = "integer", size = 4L, endian = "big"),
        size = size, have = length(body), parts = list(body)
      )
      rest <- raw(0L)
    }
  }
  bridge$buffer <- rest
  invisible()
}

mailbox <- function(bridge, id) {
  bridge$mail[[as.character(id)]]
}

## A mailbox per future on the bridge, holding the future itself until its result is
## collected (listFutures()).
mailbox_open <- function(bridge, id, future) {
  box <- new.env(parent = emptyenv())
  box$future <- future
  box$state <- "queued"
  box$detail <- ""
  box$conditions <- list()
  box$result <- NULL
  box$error <- NULL
  assign(as.character(id), box, envir = bridge$mail)
  box
}

## The futures whose mailboxes are open, in launch order.
bridge_futures <- function(bridge) {
  ids <- ls(bridge$mail)
  ids <- ids[order(as.integer(ids))]
  lapply(ids, function(id) bridge$mail[[id]]$future)
}

mailbox_close <- function(bridge, id) {
  key <- as.character(id)
  if (exists(key, envir = bridge$mail, inherits = FALSE)) rm(list = key, envir = bridge$mail)
}

bridge_file <- function(bridge, reply) {
  if (identical(reply$type, "hello")) {
    bridge$hello <- reply
    return()
  }
  if (identical(reply$type, "workers")) {
    bridge$total <- reply$total
    bridge$free <- reply$free
    return()
  }
  if (identical(reply$type, "want_original")) {
    bridge_send(bridge, answer_original(mailbox(bridge, reply$id), reply$id, reply$future))
    return()
  }
  if (identical(reply$type, "error") && reply$id == 0L) {
    bridge$failure <- reply$message
    return()
  }
  ## The cluster is unreachable from this bridge (e.g. it joined before the host, and the
  ## board put it on a topic of its own): the next plan() or future starts a new one.
  if (identical(reply$type, "error") && identical(reply$kind, "cluster")) {
    bridge$failure <- reply$message
  }
  box <- mailbox(bridge, reply$id)
  if (is.null(box)) return()
  switch(reply$type,
    status = {
      box$state <- reply$state
      box$detail <- reply$detail
    },
    condition = box$conditions[[length(box$conditions) + 1L]] <- reply$condition,
    result = box$result <- reply$result,
    error = box$error <- reply
  )
}

## Longest single wait for the bridge: how often a wait looks at the bridge process and
## at its deadline when nothing arrives.
WAIT_SLICE <- 0.5

## Waits until `done()`, the bridge's failure or `timeout` seconds, blocked in select()
## while nothing arrives; `each` runs after every arrival.
bridge_wait <- function(bridge, done, timeout = Inf, each = function() NULL) {
  deadline <- unclass(Sys.time()) + timeout
  repeat {
    if (done() || !is.null(bridge$failure)) return(invisible(done()))
    left <- deadline - unclass(Sys.time())
    if (left <= 0) return(invisible(FALSE))
    if (bridge_pump(bridge, timeout = min(left, WAIT_SLICE))) each()
  }
}

## Worker counts as the bridge last reported them, asking it first.
bridge_workers <- function(bridge, wait = 1) {
  bridge_send(bridge, bridge_poll(0L))
  bridge$total <- NA_integer_
  bridge_wait(bridge, function() !is.na(bridge$total), timeout = wait)
  list(total = bridge$total, free = bridge$free)
}
