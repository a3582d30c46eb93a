//! The self-hosted hub on this machine: board (SSH pipe server), mailbox server and transit
//! relay in one process.
//!
//! ```sh
//! cargo run --example hub -- --state-dir ./hub-state --signup
//! ```
//!
//! Users are `username key` lines in `STATE/users` (or sign up: with `--signup`, the SSH
//! login name of an unknown key is registered when it is free).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use future_p2p::transport::hub::{Hub, HubConfig};

#[derive(Parser)]
#[command(about = "Run the future-p2p hub: SSH pipe server, mailbox server and transit relay")]
struct Args {
    /// Directory holding the host key and the user registry (created if missing).
    #[arg(long, default_value = "future-p2p-hub")]
    state_dir: PathBuf,
    /// Address of the SSH pipe server (the board).
    #[arg(long, default_value = "127.0.0.1:2222")]
    board: SocketAddr,
    /// Address of the magic-wormhole mailbox server.
    #[arg(long, default_value = "127.0.0.1:4000")]
    mailbox: SocketAddr,
    /// Address of the transit relay.
    #[arg(long, default_value = "127.0.0.1:4001")]
    relay: SocketAddr,
    /// Register the SSH login name of an unknown key when the name is free.
    #[arg(long)]
    signup: bool,
    /// Log more (also RUST_LOG).
    #[arg(long, short)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    init_logging(args.verbose);
    let mut config = HubConfig::localhost(&args.state_dir);
    config.board.listen = args.board;
    config.board.signup = args.signup;
    config.mailbox_listen = args.mailbox;
    config.relay_listen = args.relay;
    let hub = Hub::start(config).await?;
    let board = hub.board_addr();
    println!(
        "future-p2p hub running (state in {})",
        args.state_dir.display()
    );
    println!(
        "  board    ssh -p {} {} pipe <topic>",
        board.port(),
        board.ip()
    );
    println!("  mailbox  {}", hub.mailbox_url());
    println!("  relay    {}", hub.relay_url());
    println!(
        "users: `name key` lines in {}{}",
        args.state_dir.join("users").display(),
        if args.signup { " (signup on)" } else { "" }
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    Ok(())
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
