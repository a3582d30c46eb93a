## The R side of r_backends_bench.rs: one R session measures every backend it can load,
## interleaved, so that they share the machine's load. Environment: FP2P_TEST_* (the
## local cluster, see tests/common/cluster.rs), FP2P_BENCH_BLOCKS (latency blocks of 20
## round trips per backend), FP2P_BENCH_REPS (runs of each throughput figure; the median
## is shown), FP2P_BENCH_WORKERS (workers of every backend), FP2P_BENCH_RPROF (a file:
## Rprof() samples of this R session while it measures future.p2p, to see where the
## client's time goes), FP2P_BENCH_PARTS (which measures: a comma list of latency,
## throughput, globals; all by default), FP2P_BENCH_GLOBALS_MB (sizes of the global, MiB;
## default 1,16,128), FP2P_BENCH_GLOBALS_REPS (round trips per size and backend,
## interleaved; the median is shown), FP2P_BENCH_LOG_DIR (a directory for the logs of
## the future.p2p workers and bridge; with RUST_LOG=debug, a timeline of each hop).
suppressPackageStartupMessages({
  library(future)
  library(future.apply)
})
blocks <- as.integer(Sys.getenv("FP2P_BENCH_BLOCKS", "10"))
reps <- as.integer(Sys.getenv("FP2P_BENCH_REPS", "3"))
W <- as.integer(Sys.getenv("FP2P_BENCH_WORKERS", "2"))
N <- 1000L
parts <- strsplit(Sys.getenv("FP2P_BENCH_PARTS", "latency,throughput,globals"), ",", fixed = TRUE)[[1L]]
globals_mb <- as.numeric(strsplit(Sys.getenv("FP2P_BENCH_GLOBALS_MB", "1,16,128"), ",", fixed = TRUE)[[1L]])
globals_reps <- as.integer(Sys.getenv("FP2P_BENCH_GLOBALS_REPS", "5"))
## Globals of 128 MiB and more are what this bench measures, not a mistake to refuse.
options(future.p2p.timeout = 300, future.globals.maxSize = Inf)
## future.mirai needs the FutureBackend API (future >= 1.40); mirai itself does not.
has_mirai <- requireNamespace("mirai", quietly = TRUE)
has_future_mirai <- has_mirai && packageVersion("future") >= "1.40.0" &&
  requireNamespace("future.mirai", quietly = TRUE)
load_average <- function() paste(scan("/proc/loadavg", what = "", n = 3L, quiet = TRUE), collapse = " ")
load_before <- load_average()

log_dir <- Sys.getenv("FP2P_BENCH_LOG_DIR")
## The cluster's workers: W `future-p2p worker` processes with one R slot each.
p2p_workers <- lapply(seq_len(W), function(i) processx::process$new(
  Sys.getenv("R_FUTURE_P2P_BIN"),
  c("worker", "--cluster", Sys.getenv("FP2P_TEST_CLUSTER"), "--slots", "1",
    "--hello-interval", "2", paste0("--ssh-args=", Sys.getenv("FP2P_TEST_WORKER_SSH_ARGS"))),
  stdout = NULL, stderr = if (nzchar(log_dir)) file.path(log_dir, sprintf("worker%d.log", i)) else NULL,
  cleanup = TRUE, cleanup_tree = TRUE))

## Every backend is set up once, without stopping the previous one's workers
## (.cleanup = FALSE); its plan stack is then switched to in the same way, as future's own
## %plan% does.
stacks <- list()
setup <- function(name, make) {
  make()
  stacks[[name]] <<- plan("list")
}
use <- function(name) plan(stacks[[name]], .cleanup = FALSE, .init = FALSE)

setup("sequential", function() plan(sequential, .cleanup = FALSE))
setup("multisession", function() plan(multisession, workers = W, .cleanup = FALSE))
if (has_future_mirai) {
  setup("future.mirai", function() plan(future.mirai::mirai_multisession, workers = W, .cleanup = FALSE))
}
setup("future.p2p", function() {
  plan(future.p2p::pico_p2p, cluster = Sys.getenv("FP2P_TEST_CLUSTER"), .cleanup = FALSE)
  deadline <- Sys.time() + 120
  while (nbrOfWorkers() < W && Sys.time() < deadline) Sys.sleep(0.2)
  if (nbrOfWorkers() < W) stop("the future.p2p workers did not join within 120 s")
})
## mirai on its own: the daemons future.mirai started, or W of its own.
if (has_mirai && !has_future_mirai) mirai::daemons(W, dispatcher = TRUE)

## The operations measured, per backend; a NULL is not measured there.
round_trip <- function(name) {
  if (name == "mirai") function() mirai::collect_mirai(mirai::mirai(1)) else function() value(future(1))
}
futures_1000 <- function(name) {
  if (name == "mirai") return(function() mirai::mirai_map(seq_len(N), function(i) i)[])
  function() future_lapply(seq_len(N), function(i) i, future.chunk.size = 1L)
}
lapply_1000 <- function(name) {
  if (name == "mirai") return(NULL)
  function() future_lapply(seq_len(N), function(i) i)
}

names <- c("future.p2p", if (has_future_mirai) "future.mirai", if (has_mirai) "mirai",
           "multisession", "sequential")
## mirai runs while future.mirai's plan is set, on the same daemons.
plan_of <- function(name) if (name == "mirai") (if (has_future_mirai) "future.mirai" else "sequential") else name
profile <- Sys.getenv("FP2P_BENCH_RPROF")
## Evaluates `code` (measurements of backend `name`), profiled when asked.
profiled <- function(name, code) {
  if (name == "future.p2p" && nzchar(profile)) {
    Rprof(profile, append = TRUE, interval = 0.001)
    on.exit(Rprof(NULL))
  }
  code
}
elapsed <- function(f) {
  t0 <- Sys.time()
  f()
  as.numeric(Sys.time() - t0, units = "secs")
}

## Warm-up: every worker has run R code, every session is open.
for (name in names) {
  use(plan_of(name))
  for (i in 1:(2 * W)) round_trip(name)()
  invisible(future_lapply(1:(4 * W), identity, future.chunk.size = 1L))
}

latency <- setNames(lapply(names, function(n) numeric(0)), names)
if (!"latency" %in% parts) blocks <- 0L
for (b in seq_len(blocks)) {
  for (name in names) {
    use(plan_of(name))
    f <- round_trip(name)
    latency[[name]] <- c(latency[[name]], profiled(name, vapply(1:20, function(i) elapsed(f), 0)))
  }
}
rates <- setNames(lapply(names, function(n) numeric(0)), names)
lapply_s <- setNames(lapply(names, function(n) numeric(0)), names)
if (!"throughput" %in% parts) reps <- 0L
for (r in seq_len(reps)) {
  for (name in names) {
    use(plan_of(name))
    rates[[name]] <- c(rates[[name]], N / profiled(name, elapsed(futures_1000(name))))
    f <- lapply_1000(name)
    if (!is.null(f)) lapply_s[[name]] <- c(lapply_s[[name]], profiled(name, elapsed(f)))
  }
}

## Globals: value(future(sum(x))) with x a double vector of each size, the same round
## trip for every backend (mirai: mirai(sum(x), x = x)), interleaved.
with_global <- function(name) {
  if (name == "mirai") function(x) mirai::collect_mirai(mirai::mirai(sum(x), x = x)) else
    function(x) value(future(sum(x)))
}
if (!"globals" %in% parts) globals_mb <- numeric(0)
globals_names <- setdiff(names, "sequential")
globals_s <- lapply(globals_mb, function(mb) setNames(lapply(globals_names, function(n) numeric(0)), globals_names))
for (i in seq_along(globals_mb)) {
  x <- runif(globals_mb[[i]] * 2^20 / 8)
  stopifnot(all.equal(value(future(sum(x))), sum(x)))
  for (r in seq_len(globals_reps)) {
    for (name in globals_names) {
      use(plan_of(name))
      f <- with_global(name)
      globals_s[[i]][[name]] <- c(globals_s[[i]][[name]], profiled(name, elapsed(function() f(x))))
    }
  }
  rm(x)
}

## Peak memory per hop of one future.p2p round trip with the largest global: each
## process's peak resident memory (VmHWM, reset first) less its resident memory before,
## over the serialized payload's size. The worker hops are those of the worker that ran it.
proc_kib <- function(pid, key) {
  line <- grep(paste0("^", key, ":"), readLines(sprintf("/proc/%d/status", pid)), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line))
}
reset_peak <- function(pid) writeLines("5", sprintf("/proc/%d/clear_refs", pid))
hops <- NULL
if (length(globals_mb) > 0L) {
  use("future.p2p")
  x <- runif(max(globals_mb) * 2^20 / 8)
  payload <- length(serialize(x, NULL, xdr = FALSE))
  bridge <- as.list(future.p2p:::.bridges)[[1L]]
  worker_r <- function(w) {
    kids <- ps::ps_children(ps::ps_handle(w$get_pid()), recursive = TRUE)
    vapply(kids, ps::ps_pid, 0L)
  }
  pids <- c(client_r = Sys.getpid(), client_bridge = bridge$proc$get_pid())
  for (k in seq_along(p2p_workers)) {
    pids[[sprintf("worker%d", k)]] <- p2p_workers[[k]]$get_pid()
    for (pid in worker_r(p2p_workers[[k]])) pids[[sprintf("worker%d_r%d", k, pid)]] <- pid
  }
  gc()
  before <- vapply(pids, proc_kib, 0, key = "VmRSS")
  for (pid in pids) reset_peak(pid)
  stopifnot(all.equal(value(future(sum(x))), sum(x)))
  peak <- vapply(pids, proc_kib, 0, key = "VmHWM")
  grown <- 1024 * (peak - before) / payload
  hop_of <- function(pattern) {
    which <- grepl(pattern, names(pids))
    if (!any(which)) return(c(NA_real_, NA_real_, NA_real_))
    best <- which(which)[which.max(grown[which])]
    c(grown[[best]], before[[best]] / 1024, peak[[best]] / 1024)
  }
  hops <- rbind(
    "client R" = c(grown[["client_r"]], before[["client_r"]] / 1024, peak[["client_r"]] / 1024),
    "client bridge (future-p2p)" = c(grown[["client_bridge"]], before[["client_bridge"]] / 1024, peak[["client_bridge"]] / 1024),
    "worker (future-p2p)" = hop_of("^worker[0-9]+$"),
    "worker R" = hop_of("^worker[0-9]+_r")
  )
  rm(x)
}
load_after <- load_average()
## The bridge's log goes with the plan that ends below.
if (nzchar(log_dir)) {
  for (bridge in as.list(future.p2p:::.bridges)) file.copy(bridge$log, file.path(log_dir, "bridge.log"), overwrite = TRUE)
}
for (name in setdiff(names(stacks), "sequential")) {
  use(name)
  plan(sequential)                       # stops its workers
}
if (has_mirai) mirai::daemons(0)
for (w in p2p_workers) w$kill_tree()

fig <- function(x, f) if (length(x) == 0L) NA_real_ else f(x)
p50 <- vapply(latency, function(x) 1000 * fig(x, median), 0)
p99 <- vapply(latency, function(x) 1000 * fig(x, function(v) quantile(v, 0.99, names = FALSE)), 0)
rate <- vapply(rates, function(x) fig(x, median), 0)
lap <- vapply(lapply_s, function(x) fig(x, median), 0)
base <- if (has_future_mirai) "future.mirai" else "multisession"
num <- function(x, digits) if (is.na(x)) "-" else formatC(x, format = "f", digits = digits, big.mark = ",")
ratio <- function(x, y) if (is.na(x) || is.na(y)) "-" else sprintf("%.2f", x / y)

cat(sprintf("\nR %s, future %s, future.apply %s%s; %d workers per backend; load average %s before, %s after\n",
            getRversion(), packageVersion("future"), packageVersion("future.apply"),
            if (has_mirai) sprintf(", mirai %s%s", packageVersion("mirai"),
                                   if (has_future_mirai) sprintf(", future.mirai %s", packageVersion("future.mirai")) else "") else "",
            W, load_before, load_after))
if (blocks > 0L || reps > 0L) {
  cat(sprintf("value(future(1)): %d round trips each, in blocks of 20 alternating between backends; ", 20L * blocks))
  cat(sprintf("1,000 futures: future_lapply(1:1000, future.chunk.size = 1)%s, median of %d; ratios (x) against %s\n\n",
              if (has_mirai) " (mirai: mirai_map)" else "", reps, base))
  cat(sprintf("| backend | value(future(1)) p50 | p99 | p50 x %s | p99 / p50 | 1,000 futures, tasks/s | x %s | future_lapply(1:1000) | x %s |\n", base, base, base))
  cat("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
  for (name in names) {
    cat(sprintf("| %s | %s ms | %s ms | %s | %s | %s | %s | %s | %s |\n", name,
                num(p50[[name]], 2), num(p99[[name]], 2), ratio(p50[[name]], p50[[base]]),
                ratio(p99[[name]], p50[[name]]), num(rate[[name]], 0), ratio(rate[[name]], rate[[base]]),
                if (is.na(lap[[name]])) "-" else sprintf("%s s", num(lap[[name]], 3)),
                ratio(lap[[name]], lap[[base]])))
  }
}
if (length(globals_mb) > 0L) {
  gbase <- if (has_mirai) "mirai" else "multisession"
  cat(sprintf("\nvalue(future(sum(x))) with a global x of each size (mirai: mirai(sum(x), x = x)); median of %d, interleaved; ratios (x) against %s\n\n",
              globals_reps, gbase))
  cat(paste0("| backend | ", paste(sprintf("%g MiB | x %s", globals_mb, gbase), collapse = " | "), " |\n"))
  cat(paste0("|---|", strrep("---:|---:|", length(globals_mb)), "\n"))
  for (name in globals_names) {
    cells <- vapply(seq_along(globals_mb), function(i) {
      m <- fig(globals_s[[i]][[name]], median)
      b <- fig(globals_s[[i]][[gbase]], median)
      sprintf("%s ms | %s", num(1000 * m, 1), ratio(m, b))
    }, "")
    cat(sprintf("| %s | %s |\n", name, paste(cells, collapse = " | ")))
  }
}
if (!is.null(hops)) {
  cat(sprintf("\nfuture.p2p, peak memory per hop of one round trip with a %g MiB global (payload %.1f MiB): VmHWM less VmRSS before, over the payload\n\n",
              max(globals_mb), payload / 2^20))
  cat("| hop | peak growth / payload | RSS before | peak |\n|---|---:|---:|---:|\n")
  for (hop in rownames(hops)) {
    cat(sprintf("| %s | %.2fx | %.1f MiB | %.1f MiB |\n", hop, hops[hop, 1L], hops[hop, 2L], hops[hop, 3L]))
  }
}
