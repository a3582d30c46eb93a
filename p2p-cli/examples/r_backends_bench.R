## The R side of r_backends_bench.rs: one R session measures every backend it can load,
## interleaved, so that they share the machine's load. Environment: FP2P_TEST_* (the
## local cluster, see tests/common/cluster.rs), FP2P_BENCH_BLOCKS (latency blocks of 20
## round trips per backend), FP2P_BENCH_REPS (runs of each throughput figure; the median
## is shown), FP2P_BENCH_WORKERS (workers of every backend), FP2P_BENCH_RPROF (a file:
## Rprof() samples of this R session while it measures future.p2p, to see where the
## client's time goes).
suppressPackageStartupMessages({
  library(future)
  library(future.apply)
})
blocks <- as.integer(Sys.getenv("FP2P_BENCH_BLOCKS", "10"))
reps <- as.integer(Sys.getenv("FP2P_BENCH_REPS", "3"))
W <- as.integer(Sys.getenv("FP2P_BENCH_WORKERS", "2"))
N <- 1000L
options(future.p2p.timeout = 300)
## future.mirai needs the FutureBackend API (future >= 1.40); mirai itself does not.
has_mirai <- requireNamespace("mirai", quietly = TRUE)
has_future_mirai <- has_mirai && packageVersion("future") >= "1.40.0" &&
  requireNamespace("future.mirai", quietly = TRUE)
load_average <- function() paste(scan("/proc/loadavg", what = "", n = 3L, quiet = TRUE), collapse = " ")
load_before <- load_average()

## The cluster's workers: W `future-p2p worker` processes with one R slot each.
p2p_workers <- lapply(seq_len(W), function(i) processx::process$new(
  Sys.getenv("R_FUTURE_P2P_BIN"),
  c("worker", "--cluster", Sys.getenv("FP2P_TEST_CLUSTER"), "--slots", "1",
    "--hello-interval", "2", paste0("--ssh-args=", Sys.getenv("FP2P_TEST_WORKER_SSH_ARGS"))),
  stdout = NULL, stderr = NULL, cleanup = TRUE, cleanup_tree = TRUE))

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
for (b in seq_len(blocks)) {
  for (name in names) {
    use(plan_of(name))
    f <- round_trip(name)
    latency[[name]] <- c(latency[[name]], profiled(name, vapply(1:20, function(i) elapsed(f), 0)))
  }
}
rates <- setNames(lapply(names, function(n) numeric(0)), names)
lapply_s <- setNames(lapply(names, function(n) numeric(0)), names)
for (r in seq_len(reps)) {
  for (name in names) {
    use(plan_of(name))
    rates[[name]] <- c(rates[[name]], N / profiled(name, elapsed(futures_1000(name))))
    f <- lapply_1000(name)
    if (!is.null(f)) lapply_s[[name]] <- c(lapply_s[[name]], profiled(name, elapsed(f)))
  }
}
load_after <- load_average()
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
