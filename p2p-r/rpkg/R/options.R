## Settings of the package: option future.p2p.NAME, else environment variable
## R_FUTURE_P2P_NAME (upper case, dots as underscores), else the default.

p2p_option <- function(name, default = NULL) {
  value <- getOption(paste0("future.p2p.", name))
  if (!is.null(value)) return(value)
  env <- Sys.getenv(paste0("R_FUTURE_P2P_", toupper(gsub(".", "_", name, fixed = TRUE))), NA_character_)
  if (!is.na(env) && nzchar(env)) {
    if (is.numeric(default)) return(as.numeric(env))
    if (is.logical(default)) return(isTRUE(as.logical(env)))
    return(env)
  }
  default
}

#' Where the future-p2p program is
#'
#' Option `future.p2p.bin`, environment variable `R_FUTURE_P2P_BIN`, or `future-p2p` on
#' the PATH (`cargo install --path p2p-cli` puts it in ~/.cargo/bin).
#'
#' @return The path of the future-p2p executable; an error that says how to install it
#'   where there is none.
#' @examples
#' tryCatch(future_p2p_bin(), error = conditionMessage)
#' @export
future_p2p_bin <- function() {
  bin <- p2p_option("bin", "")
  if (!nzchar(bin)) bin <- unname(Sys.which("future-p2p"))
  if (!nzchar(bin) || !file.exists(bin)) {
    stop(future::FutureError(paste0(
      "cannot find the future-p2p program",
      if (nzchar(bin)) sprintf(" (%s does not exist)", bin) else "",
      ": install it with `cargo install --path p2p-cli` from the future-p2p sources, ",
      "and put it on the PATH or set options(future.p2p.bin = \"/path/to/future-p2p\") ",
      "or the environment variable R_FUTURE_P2P_BIN"
    )))
  }
  normalizePath(bin)
}

## ssh_args as one string for future-p2p's --ssh-args: a single string is taken as typed
## on a command line, several elements as separate words.
ssh_args_string <- function(ssh_args) {
  if (is.null(ssh_args) || length(ssh_args) == 0L) return("")
  if (length(ssh_args) == 1L) return(as.character(ssh_args))
  quote <- function(word) if (grepl("[[:space:]'\"\\\\]", word)) shQuote(word, type = "sh") else word
  paste(vapply(as.character(ssh_args), quote, ""), collapse = " ")
}

## Command-line options of future-p2p for the board and the wormhole servers.
board_args <- function(host = NULL, ssh_args = NULL) {
  args <- character(0L)
  if (!is.null(host) && nzchar(host)) args <- c(args, "--host", host)
  ssh <- ssh_args_string(ssh_args)
  if (nzchar(ssh)) args <- c(args, paste0("--ssh-args=", ssh))
  for (name in c("mailbox", "relay", "user")) {
    value <- p2p_option(name, "")
    if (nzchar(value)) args <- c(args, paste0("--", name), value)
  }
  if (isTRUE(p2p_option("system_ssh", FALSE))) args <- c(args, "--system-ssh")
  args
}

## Random numbers the package draws for itself (see with_stealth_rng()).
private_rng <- new.env(parent = emptyenv())

## Evaluates `expr` without changing the caller's random number stream, on a stream of
## the package's own: starting a process (processx) draws random numbers, and users of
## futures expect their RNG state untouched by launching them. The draws must not come
## from the caller's stream restored afterwards: processx names each child with them (the
## marker kill_tree() looks for), so the next process the caller starts within the same
## second would get the same name, and killing either would kill both (seen as test
## workers and bridges dying of SIGKILL). The package's stream starts from the clock and
## the process id, as R seeds a session.
with_stealth_rng <- function(expr) {
  genv <- globalenv()
  had_seed <- exists(".Random.seed", envir = genv, inherits = FALSE)
  if (had_seed) seed <- get(".Random.seed", envir = genv, inherits = FALSE)
  if (is.null(private_rng$seed)) {
    if (had_seed) rm(list = ".Random.seed", envir = genv)
  } else {
    assign(".Random.seed", private_rng$seed, envir = genv)
  }
  on.exit({
    private_rng$seed <- get0(".Random.seed", envir = genv, inherits = FALSE)
    if (had_seed) {
      assign(".Random.seed", seed, envir = genv)
    } else if (exists(".Random.seed", envir = genv, inherits = FALSE)) {
      rm(list = ".Random.seed", envir = genv)
    }
  })
  expr
}

## The board: option future.p2p.host, R_FUTURE_P2P_HOST, future-p2p's own
## FUTURE_P2P_HOST, else the public pipe.pico.sh.
default_host <- function() {
  p2p_option("host", Sys.getenv("FUTURE_P2P_HOST", "pipe.pico.sh"))
}
