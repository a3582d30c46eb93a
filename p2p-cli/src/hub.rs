//! `future-p2p hub`: the self-hosted hub (board, mailbox, relay in one process).
//!
//! It prints one `key value` line per service so that scripts and tests can read the ports
//! (`board 127.0.0.1:PORT`, `mailbox ws://…`, `relay tcp://…`, `host-key …`), then how
//! users connect, and runs until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use p2p_hub::hub::{Hub, HubConfig};

use crate::CliError;

#[derive(Debug, Args)]
pub struct HubArgs {
    /// Directory holding the host key and the user registry (`users`: `name key-type
    /// base64` lines), created if missing; keeps identities across restarts.
    #[arg(long, env = "FUTURE_P2P_STATE_DIR", default_value = "future-p2p-hub")]
    pub state_dir: PathBuf,
    /// Address of the SSH pipe server (the board); port 0 picks a free one.
    #[arg(long, env = "FUTURE_P2P_BOARD", default_value = "127.0.0.1:2222")]
    pub board: SocketAddr,
    /// Address of the magic-wormhole mailbox server.
    #[arg(
        long,
        env = "FUTURE_P2P_MAILBOX_LISTEN",
        default_value = "127.0.0.1:4000"
    )]
    pub mailbox: SocketAddr,
    /// Address of the transit relay.
    #[arg(
        long,
        env = "FUTURE_P2P_RELAY_LISTEN",
        default_value = "127.0.0.1:4001"
    )]
    pub relay: SocketAddr,
    /// Register the SSH login name of an unknown key when the name is free.
    #[arg(long, env = "FUTURE_P2P_SIGNUP")]
    pub signup: bool,
}

pub async fn run(args: HubArgs) -> Result<(), CliError> {
    let mut config = HubConfig::localhost(&args.state_dir);
    config.board.listen = args.board;
    config.board.signup = args.signup;
    config.mailbox_listen = args.mailbox;
    config.relay_listen = args.relay;
    let hub = Hub::start(config).await?;
    let board = hub.board_addr();
    let host_key = hub
        .board
        .host_key()
        .to_openssh()
        .map_err(|err| std::io::Error::other(format!("encoding the host key: {err}")))?;
    println!("board {board}");
    println!("mailbox {}", hub.mailbox_url());
    println!("relay {}", hub.relay_url());
    println!("host-key {host_key}");
    println!("state {}", args.state_dir.display());
    println!(
        "connect future-p2p worker --host {} --ssh-args \"-p {}\" --mailbox {} --relay {} --cluster OWNER/NAME",
        board.ip(),
        board.port(),
        hub.mailbox_url(),
        hub.relay_url()
    );
    println!(
        "users `name key-type base64` lines in {}{}",
        args.state_dir.join("users").display(),
        if args.signup { " (signup on)" } else { "" }
    );
    println!("ready");
    tokio::signal::ctrl_c().await?;
    tracing::info!("hub stopping");
    Ok(())
}
