//! `future-p2p worker`: lends this machine to a cluster; futures are evaluated by an
//! [`REvaluator`] in persistent R processes, with the bundled future.p2p R package
//! installed (once per build) into a cache library.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use p2p_proto::id::ClusterName;
use p2p_worker::core::WorkerConfig;
use p2p_worker::{Worker, WorkerOptions, fresh_secret};

use super::CliError;
use super::connect::BoardArgs;
use super::units::{parse_duration, parse_size};
use crate::evaluator::{REvaluator, REvaluatorConfig};

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
    #[arg(long, env = "FUTURE_P2P_ALLOW_USERS", value_delimiter = ',')]
    pub allow_users: Vec<String>,
    /// Largest future accepted (e.g. 500M, 2G).
    #[arg(long, env = "FUTURE_P2P_MAX_PAYLOAD", value_parser = parse_size, default_value = "1G")]
    pub max_payload: u64,
    /// Longest a future may run (e.g. 600, 30m); default: no limit.
    #[arg(long, env = "FUTURE_P2P_TIME_LIMIT", value_parser = parse_duration)]
    pub time_limit: Option<Duration>,
    /// How often to say hello on the board (clients count workers by their hellos).
    #[arg(long, env = "FUTURE_P2P_HELLO_INTERVAL", value_parser = parse_duration, default_value = "30")]
    pub hello_interval: Duration,
    /// The Rscript that runs the R processes.
    #[arg(long, env = "FUTURE_P2P_RSCRIPT", default_value = "Rscript")]
    pub rscript: PathBuf,
    /// Where the bundled future.p2p R package is installed; default: a cache directory.
    #[arg(long, env = "FUTURE_P2P_R_LIBRARY")]
    pub r_library: Option<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

pub async fn run(args: WorkerArgs) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    // R next to the Rscript used, so both come from the same installation.
    let r = match args.rscript.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("R"),
        _ => PathBuf::from("R"),
    };
    let library = crate::rpkg::install_cached(
        &r,
        &args
            .r_library
            .unwrap_or_else(crate::rpkg::default_cache_dir),
    )
    .await?;
    let evaluator = REvaluator::start(REvaluatorConfig {
        slots: args.slots.max(1),
        rscript: args.rscript.clone(),
        library_paths: vec![library],
        ..REvaluatorConfig::default()
    })
    .await?;
    let (_board, _user, me, lines) = args.board.join(&cluster).await?;

    let mut core = WorkerConfig::new(me.clone());
    core.slots = args.slots.max(1);
    core.until = args
        .duration
        .map(|duration| now_ms() + duration.as_millis() as u64);
    core.allow_users =
        (!args.allow_users.is_empty()).then(|| args.allow_users.iter().cloned().collect());
    core.max_payload = args.max_payload;
    core.hello_interval = args.hello_interval.as_millis().max(1000) as u64;
    core.sessions = true;
    core.secret = Some(fresh_secret());
    let mut options = WorkerOptions::new(core, args.board.wormhole());
    options.time_limit = args.time_limit;

    let mut worker = Worker::start(lines, evaluator, options);
    println!("worker {me} joined {cluster}");
    tokio::select! {
        reason = worker.stopped() => println!("worker stopped: {reason}"),
        _ = tokio::signal::ctrl_c() => {
            worker.shutdown();
            println!("worker stopped: interrupted");
        }
    }
    Ok(())
}
