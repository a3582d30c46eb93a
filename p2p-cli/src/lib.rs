//! The `future-p2p` command line: one subcommand per role. Every option can also come from
//! a `FUTURE_P2P_*` environment variable.
//!
//! ```text
//!   main.rs     the `future-p2p` binary: main_with_args(std::env::args_os())
//!   lib.rs      Cli, Command, CliError, run(), main_with_args()
//!   advice      what to do next, printed under an error whose cause does not say it
//!   connect     board and wormhole options shared by the subcommands (BoardArgs)
//!   units       sizes and durations as typed (sans-IO)
//!   hub         the self-hosted hub (p2p-hub)
//!   host        hosting a cluster: its topic with an access list, `type=cluster` hellos
//!   worker      lending this machine: R futures (p2p-r's REvaluator) or a shell command
//!   status      user, ls, status
//!   top         the status screen, redrawn live (`q` quits)
//!   submit      one task from the shell, its result on stdout (for `worker --exec` workers)
//!   bridge      the child of an R session: bridge frames on stdin/stdout <-> Scheduler
//! ```
//!
//! `examples/hub.rs` and `examples/worker.rs` at the workspace root call
//! [`main_with_args`] with their subcommand, so they are this program.

pub mod advice;
pub mod bridge;
pub mod connect;
pub mod host;
pub mod hub;
pub mod status;
pub mod submit;
pub mod top;
pub mod units;
pub mod worker;

use clap::{Parser, Subcommand};
use thiserror::Error;

use p2p_hub::hub::HubError;
use p2p_proto::id::IdError;
use p2p_transport::board::BoardError;
use p2p_transport::board::JoinError;
use p2p_transport::board::ssh_args::SshArgsError;

pub use connect::BoardArgs;

/// A peer-to-peer compute cluster for R futures.
#[derive(Debug, Parser)]
#[command(
    name = "future-p2p",
    version,
    about = "A peer-to-peer compute cluster for R futures: hub, host, worker, and the bridge R sessions use",
    long_about = None
)]
pub struct Cli {
    /// Log more (info level; RUST_LOG overrides).
    #[arg(long, short, global = true, env = "FUTURE_P2P_VERBOSE")]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a self-hosted hub: SSH pipe server (board), wormhole mailbox and transit relay.
    Hub(hub::HubArgs),
    /// Host a cluster: keep its topic open with its access list (start it before members).
    Host(host::HostArgs),
    /// Lend this machine to a cluster: evaluate R futures in persistent R processes.
    Worker(worker::WorkerArgs),
    /// Print your username on the board.
    User(status::UserArgs),
    /// List the clusters you host.
    Ls(status::UserArgs),
    /// Show a cluster's host, workers (slots, busy, free), the futures they run and
    /// whose, transfers in flight, clients and open requests.
    #[command(after_help = status::EXIT_CODES)]
    Status(status::StatusArgs),
    /// Watch a cluster live: the status screen, redrawn every few seconds (q quits).
    Top(top::TopArgs),
    /// Send one task (an argument or stdin) to a worker and print its result.
    Submit(submit::SubmitArgs),
    /// Serve one R session on stdin/stdout (started by the future.p2p R package).
    Bridge(bridge::BridgeArgs),
}

/// Why a subcommand failed.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("bad --ssh-args: {0}")]
    SshArgs(#[from] SshArgsError),
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Member(#[from] p2p_cluster::ClusterError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("bad cluster name: {0}")]
    Cluster(#[from] IdError),
    #[error(
        "cluster {cluster} is already hosted (`ls` shows it with an access list); stop the other host first"
    )]
    AlreadyHosted { cluster: String },
    #[error("you ({user}) can only host your own clusters, not {cluster}")]
    NotOwner { user: String, cluster: String },
    #[error("the R evaluator: {0}")]
    Evaluator(#[from] p2p_r::evaluator::SpawnError),
    #[error("installing the future.p2p R package: {0}")]
    Install(#[from] p2p_r::rpkg::InstallError),
    #[error("{what} took longer than {} s", waited.as_secs_f64())]
    TimedOut {
        what: String,
        waited: std::time::Duration,
    },
    #[error(
        "no worker showed up on cluster {cluster} within {} s{}: start one with `future-p2p worker --cluster {cluster} --exec CMD`, and check that its user is on the cluster's access list",
        waited.as_secs_f64(),
        if *host_seen { "" } else { ", nor its host (is the cluster hosted, and are you on its access list?)" }
    )]
    NoWorkers {
        cluster: String,
        waited: std::time::Duration,
        host_seen: bool,
    },
    #[error(
        "cluster {cluster} cannot run work: {}",
        if *host_seen { "no worker answered (start one with `future-p2p worker --cluster CLUSTER`)" } else { "its host did not answer (is it hosted, and are you on its access list?)" }
    )]
    Unhealthy { cluster: String, host_seen: bool },
    #[error(
        "--allow-users {users} needs a board that proves who wrote each line, and {host} does \
         not (pipe.pico.sh does not; a future-p2p hub does): any member of the cluster could \
         post requests in those users' names. Host the cluster on a future-p2p hub, or pass \
         --allow-unproven-users to filter on the names members claim."
    )]
    UnprovenSenders { users: String, host: String },
    #[error("the payload is larger than --max-payload ({limit} bytes)")]
    PayloadTooLarge { limit: u64 },
    #[error("the task failed: {0}")]
    Task(#[from] p2p_scheduler::SubmitError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the R session sent a bad frame: {0}")]
    Bridge(#[from] p2p_r::frame::RFrameError),
}

impl CliError {
    /// The process's exit status for this error: 3 and 4 say why a cluster cannot run
    /// work ([`status::EXIT_CODES`]), 1 is everything else (clap's usage errors are 2).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unhealthy {
                host_seen: true, ..
            }
            | CliError::NoWorkers {
                host_seen: true, ..
            } => 3,
            CliError::Unhealthy { .. }
            | CliError::NoWorkers { .. }
            | CliError::Member(p2p_cluster::ClusterError::Refused { .. }) => 4,
            _ => 1,
        }
    }
}

/// Runs the parsed command line to its end.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Hub(args) => hub::run(args).await,
        Command::Host(args) => host::run(args).await,
        Command::Worker(args) => worker::run(args).await,
        Command::User(args) => status::user(args).await,
        Command::Ls(args) => status::ls(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Top(args) => top::top(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Bridge(args) => bridge::run(args).await,
    }
}

/// Parses `args` (the program name first), runs the command on a new tokio runtime and
/// says how it ended; errors are printed on stderr.
pub fn main_with_args<I, T>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    // What each task on a worker does is said by default (its own target).
    let default = if cli.verbose {
        "info".to_owned()
    } else {
        format!("warn,{}=info", p2p_cluster::tasklog::TARGET)
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Logs that end up in files (the bridge's, which R quotes in errors) carry no
        // colour codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("future-p2p: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A blocking read of stdin may still be pending: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("future-p2p: {err}");
            if let Some(step) = advice::next_step(&err) {
                eprintln!("future-p2p: what to do: {step}");
            }
            std::process::ExitCode::from(err.exit_code())
        }
    }
}
