//! A worker that lends this machine to a cluster, evaluating R futures in persistent R
//! processes (`--r`) or tasks with a shell command (`--exec`: the payload on its stdin, the
//! result on its stdout).
//!
//! ```sh
//! cargo run --example worker -- --cluster alice/p2p --r
//! cargo run --example worker -- --cluster alice/p2p --host 127.0.0.1 \
//!     --ssh-args "-p 2222 -i ~/.ssh/id_ed25519" --mailbox ws://127.0.0.1:4000/v1 \
//!     --relay tcp://127.0.0.1:4001 --exec cat
//! ```

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use future_p2p::proto::id::ClusterName;
use future_p2p::r::evaluator::{REvaluator, REvaluatorConfig};
use future_p2p::transport::board::client::ssh_args::split_words;
use future_p2p::transport::board::client::{Backend, Board, BoardConfig};
use future_p2p::transport::lines::join_cluster;
use future_p2p::transport::wormhole::{DEFAULT_MAILBOX_URL, DEFAULT_RELAY_URL, WormholeConfig};
use future_p2p::worker::core::WorkerConfig;
use future_p2p::worker::{CommandExecutor, Worker, WorkerOptions, fresh_secret};

#[derive(Parser)]
#[command(about = "Contribute a worker to a future-p2p cluster")]
struct Args {
    /// The cluster, `owner/name` (or `name` for one of your own).
    #[arg(long)]
    cluster: String,
    /// The board's SSH host.
    #[arg(long, default_value = "pipe.pico.sh")]
    host: String,
    /// SSH options as one string, as R passes them (e.g. "-J somehost -p 2222").
    #[arg(long, default_value = "")]
    ssh_args: String,
    /// Use the system `ssh` (for ~/.ssh/config, ProxyCommand, aliases).
    #[arg(long)]
    system_ssh: bool,
    /// Your username, for boards without a `user` command (pipe.pico.sh).
    #[arg(long)]
    user: Option<String>,
    /// The magic-wormhole mailbox server.
    #[arg(long, default_value = DEFAULT_MAILBOX_URL)]
    mailbox: String,
    /// The transit relay.
    #[arg(long, default_value = DEFAULT_RELAY_URL)]
    relay: String,
    /// The command that evaluates a task: payload on stdin, result on stdout.
    #[arg(long, required_unless_present = "r", conflicts_with = "r")]
    exec: Option<String>,
    /// Evaluate R futures (sent by `plan(future.p2p::pico_p2p)`) in persistent R processes.
    #[arg(long)]
    r: bool,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1)]
    slots: usize,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Only take tasks from these users (comma-separated).
    #[arg(long, value_delimiter = ',')]
    allow_users: Vec<String>,
    /// Largest payload accepted, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_payload: u64,
    /// Longest a task may run, in seconds.
    #[arg(long)]
    time_limit: Option<u64>,
    /// Log more (also RUST_LOG).
    #[arg(long, short)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    init_logging(args.verbose);
    let cluster: ClusterName = args.cluster.parse()?;
    let ssh_args = split_words(&args.ssh_args)?;
    let mut board_config = BoardConfig::from_ssh_args(&args.host, &ssh_args)?;
    if args.system_ssh {
        board_config.backend = Backend::SystemSsh {
            program: "ssh".into(),
        };
    }
    let board = Board::connect(board_config).await?;
    let (me, lines) = join_cluster(&board, &cluster, args.user.as_deref()).await?;

    let mut core = WorkerConfig::new(me.clone());
    core.slots = args.slots.max(1);
    core.until = args.duration.map(|secs| now_ms() + secs * 1000);
    core.allow_users =
        (!args.allow_users.is_empty()).then(|| args.allow_users.iter().cloned().collect());
    core.max_payload = args.max_payload;
    core.sessions = true;
    core.secret = Some(fresh_secret());
    let mut options = WorkerOptions::new(core, WormholeConfig::new(args.mailbox, args.relay));
    options.time_limit = args.time_limit.map(Duration::from_secs);

    let mut worker = match args.exec {
        Some(command) => Worker::start(lines, CommandExecutor::new(command), options),
        None => {
            // The bundled future.p2p R package, installed once per build into a cache.
            let cache = p2p_r::rpkg::default_cache_dir();
            let library = p2p_r::rpkg::install_cached(Path::new("R"), &cache).await?;
            let evaluator = REvaluator::start(REvaluatorConfig {
                slots: args.slots.max(1),
                library_paths: vec![library],
                ..REvaluatorConfig::default()
            })
            .await?;
            Worker::start(lines, evaluator, options)
        }
    };
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn init_logging(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
