## Commands of the command line as R functions: workers, hosting, who am I.

## system2() joins its arguments into a shell command line: each one is quoted.
run_future_p2p <- function(args, ...) {
  system2(future_p2p_bin(), shQuote(args, type = "sh"), ...)
}

#' Lend this R installation to a future-p2p cluster
#'
#' Runs `future-p2p worker` until `duration` seconds have passed. Also callable from a
#' shell: `Rscript -e future.p2p::pico_p2p_worker --cluster=alice/p2p --ssh_args="-J somehost"`.
#' `worker()` is future.p2p 0.4.0's name for it.
#'
#' @param cluster The cluster, `owner/name`.
#' @param host The board's SSH host.
#' @param ssh_args SSH options, e.g. `"-J somehost"`.
#' @param duration Seconds to stay.
#' @return The exit status of future-p2p, invisibly.
#' @export
pico_p2p_worker <- function(cluster = p2p_cluster_name(),
                            host = default_host(),
                            ssh_args = p2p_option("ssh_args", NULL),
                            duration = 14 * 24 * 3600) {
  args <- c("worker", "--cluster", cluster, board_args(host, ssh_args),
            "--duration", format(as.integer(duration)))
  invisible(run_future_p2p(args))
}
pico_p2p_worker <- cli_fcn(pico_p2p_worker, "pico_p2p_worker")

#' @rdname pico_p2p_worker
#' @export
worker <- cli_fcn(pico_p2p_worker, "worker")

#' Host a future-p2p cluster
#'
#' Keeps the topic of cluster `cluster` open for `users` (`future-p2p host`) for
#' `duration` seconds. Start it before workers and clients join.
#'
#' @param cluster The cluster, `name` or `you/name`.
#' @param users Users who may join.
#' @param host,ssh_args As for [pico_p2p_worker()].
#' @param duration Seconds to host.
#' @return The exit status of future-p2p, invisibly.
#' @export
host_cluster <- function(cluster = p2p_cluster_name(), users = character(0L),
                         host = default_host(),
                         ssh_args = p2p_option("ssh_args", NULL),
                         duration = 14 * 24 * 3600) {
  users <- unlist(strsplit(as.character(users), ",", fixed = TRUE))
  args <- c("host", "--cluster", cluster, board_args(host, ssh_args),
            "--duration", format(as.integer(duration)))
  if (length(users) > 0L) args <- c(args, "--users", paste(users, collapse = ","))
  invisible(run_future_p2p(args))
}
host_cluster <- cli_fcn(host_cluster, "host_cluster")

#' Your username on the board
#'
#' @param host,ssh_args As for [pico_p2p_worker()].
#' @return The username (option `future.p2p.user` if set).
#' @export
pico_username <- function(host = default_host(),
                          ssh_args = p2p_option("ssh_args", NULL)) {
  user <- p2p_option("user", "")
  if (nzchar(user)) return(user)
  out <- suppressWarnings(run_future_p2p(c("user", board_args(host, ssh_args)),
                                         stdout = TRUE, stderr = TRUE))
  status <- attr(out, "status")
  if (!is.null(status) && status != 0L) {
    stop(sprintf("cannot ask %s for your username: %s", host, paste(out, collapse = "\n")))
  }
  out[length(out)]
}

#' The default cluster name
#'
#' Option `future.p2p.cluster` (or `R_FUTURE_P2P_CLUSTER`), else `{user}/personal`.
#'
#' @return The cluster name.
#' @export
p2p_cluster_name <- function() {
  name <- p2p_option("cluster", "")
  if (nzchar(name)) return(name)
  sprintf("%s/personal", pico_username())
}
