## Functions that run from a shell as `Rscript -e future.p2p::NAME --key=value ...`, as
## future.p2p's cli_fcn does: Rscript auto-prints the function, and printing it from
## such a command line calls it with the arguments parsed from commandArgs(), or
## prints its usage for --help.

cli_fcn <- function(fcn, name, title) {
  attr(fcn, "cli_name") <- name
  attr(fcn, "cli_title") <- title
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

## The --help text of a command-line function: its title and its options with their
## defaults, as written in its formals.
cli_usage <- function(fcn) {
  name <- attr(fcn, "cli_name")
  defaults <- formals(fcn)
  options <- vapply(names(defaults), function(arg) {
    sprintf("  --%-10s default: %s", paste0(arg, "=..."), paste(deparse(defaults[[arg]]), collapse = " "))
  }, "")
  c(
    sprintf("Usage: Rscript -e future.p2p::%s [--option=value ...]", name),
    "",
    attr(fcn, "cli_title"),
    "",
    "Options:",
    options,
    "  --help          print this and exit"
  )
}

#' @export
print.cli_function <- function(x, ...) {
  name <- attr(x, "cli_name")
  if (!is.null(name) && called_from_cli(name)) {
    args <- parse_cli_args(commandArgs(trailingOnly = TRUE))
    if (isTRUE(args$help)) {
      cat(cli_usage(x), sep = "\n")
      return(invisible(x))
    }
    fcn <- x
    attributes(fcn) <- NULL
    return(invisible(do.call(fcn, args)))
  }
  fcn <- x
  attributes(fcn) <- NULL
  print(fcn, ...)
  invisible(x)
}
