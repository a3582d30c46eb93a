//! `future-p2p`: the command line of future-p2p (hub, host, worker, bridge, status); see
//! [`p2p_r::cli`].

use clap::Parser;
use p2p_r::cli::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default = if cli.verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
            std::process::ExitCode::FAILURE
        }
    }
}
