## Commands of the command line as R functions: workers, hosting, who am I.

## Runs future-p2p with `args` to its end, its output shown as it comes; `what` it was
## doing, and its last words, make the R error if it fails.
run_future_p2p <- function(args, what) {
  out <- processx::run(future_p2p_bin(), args, echo = TRUE, error_on_status = FALSE)
  if (!identical(out$status, 0L)) {
    said <- utils::tail(strsplit(out$stderr, "\n", fixed = TRUE)[[1L]], 5L)
    stop(sprintf("%s failed: future-p2p exited with status %s%s", what, format(out$status),
                 if (length(said) > 0L) paste0(":\n", paste(said, collapse = "\n")) else ""),
         call. = FALSE)
  }
  invisible(out$status)
}

#' Lend this R installation to a future-p2p cluster
#'
#' Runs `future-p2p worker` until `duration` seconds have passed: futures of the
#' cluster's members are evaluated here, each in an R process of this installation
#' that stays for the next one. Also callable from a shell, where `--help` lists the
#' options:
#' `Rscript -e future.p2p::pico_p2p_worker --cluster=alice/p2p --ssh_args="-J somehost"`.
#' `worker()` is future.p2p 0.4.0's name for it.
#'
#' @param cluster The cluster, `owner/name`.
#' @param host The board's SSH host.
#' @param ssh_args SSH options, e.g. `"-J somehost"`.
#' @param duration Seconds to stay.
#' @return 0, invisibly, when the worker has stopped; an error if it failed.
#' @seealso [pico_p2p()] for the plan that sends futures to workers.
#' @examplesIf interactive()
#' ## Lend this machine to alice's cluster for an hour
#' pico_p2p_worker(cluster = "alice/p2p", duration = 3600)
#' @export
pico_p2p_worker <- function(cluster = p2p_cluster_name(),
                            host = default_host(),
                            ssh_args = p2p_option("ssh_args", NULL),
                            duration = 14 * 24 * 3600) {
  args <- c("worker", "--cluster", cluster, board_args(host, ssh_args),
            "--duration", format(as.integer(duration)))
  run_future_p2p(args, sprintf("the worker of cluster %s", cluster))
}
pico_p2p_worker <- cli_fcn(pico_p2p_worker, "pico_p2p_worker",
                           "Lend this R installation to a future-p2p cluster (future-p2p worker).")

#' @rdname pico_p2p_worker
#' @export
worker <- cli_fcn(pico_p2p_worker, "worker",
                  "Lend this R installation to a future-p2p cluster (future-p2p worker).")

#' Host a future-p2p cluster
#'
#' Keeps the topic of cluster `cluster` open for `users` (`future-p2p host`) for
#' `duration` seconds. Start it before workers and clients join: a member who opens
#' the cluster first lands on a topic of their own.
#'
#' @param cluster The cluster, `name` or `you/name`.
#' @param users Users who may join (a character vector, or one comma-separated string).
#' @param host,ssh_args As for [pico_p2p_worker()].
#' @param duration Seconds to host.
#' @return 0, invisibly, when hosting has ended; an error if it failed (e.g. the cluster
#'   is already hosted, or the board is unreachable).
#' @examplesIf interactive()
#' ## Host alice/p2p for bob and carol for a day
#' host_cluster("p2p", users = c("bob", "carol"), duration = 24 * 3600)
#' @export
host_cluster <- function(cluster = p2p_cluster_name(), users = character(0L),
                         host = default_host(),
                         ssh_args = p2p_option("ssh_args", NULL),
                         duration = 14 * 24 * 3600) {
  users <- unlist(strsplit(as.character(users), ",", fixed = TRUE))
  args <- c("host", "--cluster", cluster, board_args(host, ssh_args),
            "--duration", format(as.integer(duration)))
  if (length(users) > 0L) args <- c(args, "--users", paste(users, collapse = ","))
  run_future_p2p(args, sprintf("hosting cluster %s", cluster))
}
host_cluster <- cli_fcn(host_cluster, "host_cluster",
                        "Host a future-p2p cluster for its users (future-p2p host).")

#' Your username on the board
#'
#' Option `future.p2p.user` (or `R_FUTURE_P2P_USER`) if set, else what the board's
#' `user` command says.
#'
#' @param host,ssh_args As for [pico_p2p_worker()].
#' @return The username.
#' @examples
#' old <- options(future.p2p.user = "alice")
#' pico_username()
#' options(old)
#' @export
pico_username <- function(host = default_host(),
                          ssh_args = p2p_option("ssh_args", NULL)) {
  user <- p2p_option("user", "")
  if (nzchar(user)) return(user)
  out <- processx::run(future_p2p_bin(), c("user", board_args(host, ssh_args)),
                       error_on_status = FALSE)
  if (!identical(out$status, 0L)) {
    stop(sprintf("cannot ask %s for your username: %s", host, trimws(out$stderr)), call. = FALSE)
  }
  lines <- strsplit(trimws(out$stdout), "\n", fixed = TRUE)[[1L]]
  lines[length(lines)]
}

#' The default cluster name
#'
#' Option `future.p2p.cluster` (or `R_FUTURE_P2P_CLUSTER`), else `{user}/personal`
#' with the user of [pico_username()].
#'
#' @return The cluster name.
#' @examples
#' old <- options(future.p2p.cluster = "alice/p2p")
#' p2p_cluster_name()
#' options(old)
#' @export
p2p_cluster_name <- function() {
  name <- p2p_option("cluster", "")
  if (nzchar(name)) return(name)
  sprintf("%s/personal", pico_username())
}

#' What a future-p2p cluster has right now
#'
#' Asks the cluster's members to say hello, as `future-p2p status` does, and lists who
#' answered within `listen` seconds: the host, each worker with its slots, how many of
#' them hold a future, which futures and whose, the payloads it is moving, and other
#' clients (in the spirit of `mirai::status()`).
#'
#' @param cluster The cluster, `OWNER/NAME` (default: [p2p_cluster_name()]).
#' @param listen Seconds to listen for the answers.
#' @param host,ssh_args As for [pico_p2p_worker()].
#' @return A data frame with one row per peer: `role` (`"host"`, `"worker"` or
#'   `"client"`), `id`, `slots` and `busy` (`NA` where a peer does not say), `futures`
#'   (a worker's futures as `"FUTURE CLIENT STATE"` entries joined by `"; "`, at most 8
#'   and `"+N more"`) and `transfers` (`"FUTURE DIRECTION CLIENT DONE/TOTAL"` entries,
#'   bytes). Its attribute `healthy` is `TRUE` when the host and at least one worker
#'   answered; `exit_status` is `future-p2p status`'s (0 healthy, 3 no worker, 4 no host
#'   or refused, 1 the check failed).
#' @examples
#' \dontrun{
#' p2p_status("alice/p2p")
#' }
#' @export
p2p_status <- function(cluster = p2p_cluster_name(), listen = 1,
                       host = default_host(),
                       ssh_args = p2p_option("ssh_args", NULL)) {
  args <- c("status", "--cluster", cluster, "--listen", whole_seconds(listen), "--tsv",
            board_args(host, ssh_args))
  out <- processx::run(future_p2p_bin(), args, error_on_status = FALSE)
  if (!startsWith(out$stdout, "role\t")) {
    stop(sprintf("cannot ask cluster %s for its status: %s", cluster, trimws(out$stderr)),
         call. = FALSE)
  }
  peers <- utils::read.delim(text = out$stdout, colClasses = c("character", "character",
                             "integer", "integer", "character", "character"),
                             na.strings = "", quote = "")
  # Empty cells are NA for the counts, "" (nothing listed) for the lists.
  for (column in c("futures", "transfers")) {
    peers[[column]][is.na(peers[[column]])] <- ""
  }
  attr(peers, "healthy") <- identical(out$status, 0L)
  attr(peers, "exit_status") <- out$status
  peers
}
