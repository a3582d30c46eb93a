## Functions that run from a shell as `Rscript -e future.p2p::NAME --key=value ...`, as
## future.p2p's cli_fcn does: Rscript auto-prints the function, and printing it from
## such a command line calls it with the arguments parsed from commandArgs().

cli_fcn <- function(fcn, name) {
  attr(fcn, "cli_name") <- name
  class(fcn) <- c("cli_function", setdiff(class(fcn), "cli_function"))
  fcn
}

## `--key=value` and `--flag` into a named list (`-` in keys read as `_`; numbers as
## numbers).
parse_cli_args <- function(args) {
  out <- list()
  for (arg in args) {
    if (!startsWith(arg, "--")) stop(sprintf("unexpected argument %s (use --key=value)", sQuote(arg)))
    body <- substring(arg, 3L)
    key <- sub("=.*", "", body)
    value <- if (grepl("=", body, fixed = TRUE)) sub("^[^=]*=", "", body) else TRUE
    if (is.character(value) && grepl("^[0-9]+(\\.[0-9]+)?$", value)) value <- as.numeric(value)
    out[[gsub("-", "_", key, fixed = TRUE)]] <- value
  }
  out
}

## Whether this R was started as `Rscript -e [future.p2p::]NAME ...`.
called_from_cli <- function(name) {
  cmd <- commandArgs()
  at <- which(cmd == "-e")
  if (interactive() || length(at) != 1L || at == length(cmd)) return(FALSE)
  grepl(sprintf("^(future\\.p2p:::?)?%s$", name), trimws(cmd[at + 1L]))
}

#' @export
print.cli_function <- function(x, ...) {
  name <- attr(x, "cli_name")
  if (!is.null(name) && called_from_cli(name)) {
    args <- parse_cli_args(commandArgs(trailingOnly = TRUE))
    fcn <- x
    attr(fcn, "cli_name") <- NULL
    class(fcn) <- "function"
    return(invisible(do.call(fcn, args)))
  }
  fcn <- x
  attr(fcn, "cli_name") <- NULL
  class(fcn) <- "function"
  print(fcn, ...)
  invisible(x)
}
