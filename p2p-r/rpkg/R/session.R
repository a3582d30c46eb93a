## The R end of the bridge: one long-lived `future-p2p bridge` child per R session and
## cluster, carrying all futures of that session at once.
##
## The child is started with processx (inside with_stealth_rng()) and prints
## `port PORT`; frames then flow over a non-blocking loopback socket, because base R
## reads binary frames from sockets but not from a child's pipes. Replies are drained
## into per-future mailboxes on every call that looks at the bridge (resolved(), result(),
## nbrOfWorkers()), never blocking unless asked to wait.

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

bridge_usable <- function(bridge) {
  is.null(bridge$failure) && bridge$proc$is_alive()
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

## Reads whatever the bridge sent, waiting up to `timeout` seconds for the first bytes,
## and files the replies into the mailboxes.
bridge_pump <- function(bridge, timeout = 0) {
  con <- bridge$con
  if (is.null(con)) return(invisible(FALSE))
  if (timeout > 0) socketSelect(list(con), timeout = timeout)
  chunks <- list()
  repeat {
    chunk <- readBin(con, what = "raw", n = 4194304L)
    if (length(chunk) == 0L) break
    chunks[[length(chunks) + 1L]] <- chunk
  }
  if (length(chunks) > 0L) {
    bridge$buffer <- do.call(c, c(list(bridge$buffer), chunks))
    decoded <- decode_frames(bridge$buffer)
    bridge$buffer <- decoded$rest
    for (frame in decoded$frames) bridge_file(bridge, bridge_reply(frame))
  }
  if (is.null(bridge$failure) && !bridge$proc$is_alive()) {
    bridge$failure <- "the future-p2p bridge exited"
  }
  invisible(length(chunks) > 0L)
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

## Pumps until `done()` or `timeout` seconds; `each` runs after every pump.
bridge_wait <- function(bridge, done, timeout = Inf, each = function() NULL) {
  deadline <- Sys.time() + timeout
  interval <- 0.001
  repeat {
    bridge_pump(bridge, timeout = interval)
    each()
    if (done() || !is.null(bridge$failure)) return(invisible(done()))
    if (Sys.time() > deadline) return(invisible(FALSE))
    interval <- min(interval * 2, 0.1)
  }
}

## Worker counts as the bridge last reported them, asking it first.
bridge_workers <- function(bridge, wait = 1) {
  bridge_send(bridge, bridge_poll(0L))
  bridge$total <- NA_integer_
  bridge_wait(bridge, function() !is.na(bridge$total), timeout = wait)
  list(total = bridge$total, free = bridge$free)
}
