//! `future-p2p worker`: lends this machine to a cluster. R futures are evaluated by an
//! [`REvaluator`] in persistent R processes, with the bundled future.p2p R package
//! installed (once per build) into a cache library; with `--exec`, each task is a shell
//! command instead (payload on stdin, result on stdout), for Rust clients.
//!
//! Bounds, the same for R and commands (`--help` shows them): a task runs at most
//! `--time-limit` (1 hour; then it is interrupted, its processes killed), within
//! `--memory-limit` of address space (the machine's memory shared by the slots), and its
//! payload and result are at most `--max-payload` (512M, the clients' default too).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use p2p_proto::id::ClusterName;
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use p2p_r::evaluator::{REvaluator, REvaluatorConfig};
use p2p_worker::{CommandExecutor, CommandLimits};

use crate::CliError;
use crate::connect::BoardArgs;
use crate::units::{parse_duration, parse_size};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster, `OWNER/NAME` (or `NAME` for one of your own).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// Stop after this long (e.g. 3600, 90m, 8h); default: until interrupted.
    #[arg(long, env = "FUTURE_P2P_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Futures evaluated at once (one R process each).
    #[arg(long, env = "FUTURE_P2P_SLOTS", default_value_t = 1)]
    pub slots: usize,
    /// Only take futures from these users (comma-separated); default: any member.
    /// Only where the board proves who wrote each line (a future-p2p hub), unless
    /// --allow-unproven-users.
    #[arg(long, env = "FUTURE_P2P_ALLOW_USERS", value_delimiter = ',')]
    pub allow_users: Vec<String>,
    /// Apply --allow-users on a board that does not prove senders (pipe.pico.sh): a filter
    /// on the names members claim, not a protection against members.
    #[arg(long, env = "FUTURE_P2P_ALLOW_UNPROVEN_USERS")]
    pub allow_unproven_users: bool,
    /// Largest future accepted, and largest result returned (e.g. 500M, 2G).
    #[arg(long, env = "FUTURE_P2P_MAX_PAYLOAD", value_parser = parse_size, default_value_t = DEFAULT_MAX_PAYLOAD)]
    pub max_payload: u64,
    /// Longest a future may run (e.g. 600, 30m, 8h; 0 for no limit); then it is stopped,
    /// what it started is killed, and its client told so (a TimedOut error).
    #[arg(long, env = "FUTURE_P2P_TIME_LIMIT", value_parser = parse_duration, default_value = "1h")]
    pub time_limit: Duration,
    /// Address space each R process or command may use (e.g. 4G; 0 for no limit); default:
    /// the machine's memory divided among the slots.
    #[arg(long, env = "FUTURE_P2P_MEMORY_LIMIT", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Warn when no host has announced the cluster within this long (the worker keeps
    /// waiting, and its topic keeps reconnecting).
    #[arg(long, env = "FUTURE_P2P_CLUSTER_TIMEOUT", value_parser = parse_duration, default_value = "60")]
    pub cluster_timeout: Duration,
    /// How often to say hello on the board (clients count workers by their hellos).
    #[arg(long, env = "FUTURE_P2P_HELLO_INTERVAL", value_parser = parse_duration, default_value = "30")]
    pub hello_interval: Duration,
    /// The Rscript that runs the R processes.
    #[arg(long, env = "FUTURE_P2P_RSCRIPT", default_value = "Rscript")]
    pub rscript: PathBuf,
    /// Start R processes at the first future and stop them after this long without one
    /// (e.g. 10m): no R in memory while the worker is unused, but the first future after
    /// a pause waits for R to start. Default: R starts with the worker and is kept warm.
    #[arg(long, env = "FUTURE_P2P_R_IDLE_STOP", value_parser = parse_duration)]
    pub r_idle_stop: Option<Duration>,
    /// Where the bundled future.p2p R package is installed; default: a cache directory.
    #[arg(long, env = "FUTURE_P2P_R_LIBRARY")]
    pub r_library: Option<PathBuf>,
    /// On Ctrl-C, how long running tasks may go on before they are cancelled (no new
    /// tasks are taken meanwhile; a second Ctrl-C stops at once).
    #[arg(long, env = "FUTURE_P2P_SHUTDOWN_GRACE", value_parser = parse_duration, default_value = "60")]
    pub shutdown_grace: Duration,
    /// Run each task as this shell command instead of R: the payload on its stdin, the
    /// result from its stdout (tasks of Rust clients, e.g. `--exec cat`).
    #[arg(long, env = "FUTURE_P2P_EXEC")]
    pub exec: Option<String>,
}

pub async fn run(args: WorkerArgs) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    match args.exec.clone() {
        Some(command) => {
            let limits = CommandLimits {
                max_output: args.max_payload,
                memory: memory_limit(&args),
            };
            serve(
                &args,
                &cluster,
                CommandExecutor::with_limits(command, limits),
            )
            .await
        }
        None => {
            let evaluator = r_evaluator(&args).await?;
            serve(&args, &cluster, evaluator).await
        }
    }
}

/// Persistent R processes with the bundled future.p2p package, one per slot.
async fn r_evaluator(args: &WorkerArgs) -> Result<REvaluator, CliError> {
    // R next to the Rscript used, so both come from the same installation.
    let r = match args.rscript.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("R"),
        _ => PathBuf::from("R"),
    };
    let cache = args
        .r_library
        .clone()
        .unwrap_or_else(p2p_r::rpkg::default_cache_dir);
    let library = p2p_r::rpkg::install_cached(&r, &cache).await?;
    Ok(REvaluator::start(REvaluatorConfig {
        slots: args.slots.max(1),
        rscript: args.rscript.clone(),
        library_paths: vec![library],
        memory_limit: memory_limit(args),
        idle_stop: args.r_idle_stop,
        max_frame: usize::try_from(args.max_payload)
            .unwrap_or(usize::MAX)
            .min(p2p_r::frame::MAX_BODY_LEN),
        ..REvaluatorConfig::default()
    })
    .await?)
}

/// The memory limit of one R process or command: as given (0: none), else the machine's
/// memory shared by the slots.
fn memory_limit(args: &WorkerArgs) -> Option<u64> {
    match args.memory_limit {
        Some(0) => None,
        Some(bytes) => Some(bytes),
        None => total_memory().map(|total| total / args.slots.max(1) as u64),
    }
}

/// The machine's memory (`MemTotal` of /proc/meminfo), if known.
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&meminfo)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Joins the cluster and serves tasks on `executor` until the worker stops. Ctrl-C drains
/// (no new tasks, `--shutdown-grace` for those running); a second Ctrl-C stops at once.
async fn serve<E: p2p_worker::Executor>(
    args: &WorkerArgs,
    cluster: &ClusterName,
    executor: E,
) -> Result<(), CliError> {
    let connected = args
        .board
        .cluster(&cluster.to_string())?
        .warn_without_host(args.cluster_timeout)
        .connect()
        .await?;
    if !args.allow_users.is_empty()
        && !args.allow_unproven_users
        && !connected.board().proves_senders().await?
    {
        return Err(CliError::UnprovenSenders {
            users: args.allow_users.join(","),
            host: args.board.host.clone(),
        });
    }
    let mut builder = connected
        .worker(executor)
        .slots(args.slots)
        .time_limit((!args.time_limit.is_zero()).then_some(args.time_limit))
        .max_payload(args.max_payload)
        .hello_interval(args.hello_interval);
    if !args.allow_users.is_empty() {
        builder = builder.allow_users(args.allow_users.iter().cloned());
    }
    if let Some(duration) = args.duration {
        builder = builder.stop_after(duration);
    }
    let mut worker = builder.start();
    println!("worker {} joined {}", worker.me(), worker.cluster());
    tokio::select! {
        reason = worker.stopped() => {
            println!("worker stopped: {reason}");
            return Ok(());
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    println!(
        "draining: no new tasks, {} s for the running ones (Ctrl-C again to stop at once)",
        args.shutdown_grace.as_secs()
    );
    tokio::select! {
        reason = worker.shutdown(args.shutdown_grace) => println!("worker stopped: {reason}"),
        _ = tokio::signal::ctrl_c() => println!("worker stopped: interrupted"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_memory_is_read_from_meminfo() {
        let meminfo = "MemTotal:       24522200 kB\nMemFree:         9522200 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_522_200 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB"), None);
    }
}
