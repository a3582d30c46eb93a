//! `future-p2p hub`: the self-hosted hub (board, mailbox, relay in one process).
//!
//! It prints one `key value` line per service so that scripts and tests can read the ports
//! (`board 127.0.0.1:PORT`, `mailbox ws://…`, `relay tcp://…`, `host-key …`), then how
//! users connect, and runs until interrupted.
//!
//! Every limit of the three servers is a flag (and a `FUTURE_P2P_*` variable). The defaults
//! are `p2p_hub`'s (a test checks they agree) and hold the abuse described in
//! `docs/trust.md`: anyone who reaches the mailbox or the relay can use them, so what one
//! client may store, queue or hold open is bounded, and a full server makes room by
//! dropping what is idle or largest rather than turning newcomers away.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use p2p_hub::hub::{Hub, HubConfig};

use crate::CliError;
use crate::units::{parse_duration, parse_size};

#[derive(Debug, Args)]
pub struct HubArgs {
    /// Directory holding the host key, the user registry (`users`: `name key-type base64`
    /// lines) and the access lists of hosted clusters (`clusters`), created if missing (mode
    /// 0700, files 0600); keeps identities and clusters across restarts.
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
    /// Route like pipe.pico.sh, to test clients against it: a member who names a cluster
    /// nobody hosts (or whose access list leaves them out) is moved silently to a topic of
    /// their own instead of being refused, and `features` is unknown.
    #[arg(long, env = "FUTURE_P2P_PICO_ROUTING")]
    pub pico_routing: bool,
    #[command(flatten)]
    pub limits: HubLimits,
}

/// The servers' limits, as flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct HubLimits {
    /// Board: bytes a reader may lag behind its topic; past half of it, offers and hellos
    /// are skipped for it, past all of it the reader is disconnected.
    #[arg(long, env = "FUTURE_P2P_BOARD_BACKLOG", value_parser = parse_size, default_value = "4M")]
    pub board_backlog: u64,
    /// Board: pub/sub/pipe sessions one user may hold at once (unregistered keys share one
    /// count).
    #[arg(long, env = "FUTURE_P2P_BOARD_MAX_SESSIONS", default_value_t = 256)]
    pub board_max_sessions_per_user: usize,
    /// Mailbox: largest message.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_MAX_MESSAGE", value_parser = parse_size, default_value = "64K")]
    pub mailbox_max_message: u64,
    /// Mailbox: bytes stored in one mailbox.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_MAX_MAILBOX_BYTES", value_parser = parse_size, default_value = "256K")]
    pub mailbox_max_mailbox_bytes: u64,
    /// Mailbox: bytes one connection may store.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_MAX_CONNECTION_BYTES", value_parser = parse_size, default_value = "256K")]
    pub mailbox_max_connection_bytes: u64,
    /// Mailbox: bytes stored in all; beyond, the largest mailboxes are evicted.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_MAX_STORED", value_parser = parse_size, default_value = "64M")]
    pub mailbox_max_stored: u64,
    /// Mailbox: mailboxes (and so nameplates) per application; beyond, the least used one
    /// is evicted.
    #[arg(
        long,
        env = "FUTURE_P2P_MAILBOX_MAX_MAILBOXES",
        default_value_t = 10_000
    )]
    pub mailbox_max_mailboxes: usize,
    /// Mailbox: connections listening to one mailbox.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_MAX_LISTENERS", default_value_t = 8)]
    pub mailbox_max_listeners: usize,
    /// Mailbox: bytes queued for a connection that does not read before it is closed.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_MAX_OUTPUT", value_parser = parse_size, default_value = "1M")]
    pub mailbox_max_output: u64,
    /// Mailbox: connections at once.
    #[arg(
        long,
        env = "FUTURE_P2P_MAILBOX_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub mailbox_max_connections: usize,
    /// Mailbox: connections at once from one IP address.
    #[arg(
        long,
        env = "FUTURE_P2P_MAILBOX_MAX_PER_ADDRESS",
        default_value_t = 1024
    )]
    pub mailbox_max_connections_per_address: usize,
    /// Mailbox: a connection silent this long is closed.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "30m")]
    pub mailbox_idle_timeout: Duration,
    /// Mailbox: a nameplate or mailbox nobody listens to is deleted after this long unused.
    #[arg(long, env = "FUTURE_P2P_MAILBOX_ABANDONED_AFTER", value_parser = parse_duration, default_value = "10m")]
    pub mailbox_abandoned_after: Duration,
    /// Relay: how long a connection may wait for its handshake and then for its partner.
    #[arg(long, env = "FUTURE_P2P_RELAY_PAIRING_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub relay_pairing_timeout: Duration,
    /// Relay: a pairing that moves no byte either way for this long is closed.
    #[arg(long, env = "FUTURE_P2P_RELAY_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "2m")]
    pub relay_idle_timeout: Duration,
    /// Relay: bytes one pairing may carry (both ways); default: no limit.
    #[arg(long, env = "FUTURE_P2P_RELAY_MAX_BYTES", value_parser = parse_size)]
    pub relay_max_bytes_per_pairing: Option<u64>,
    /// Relay: connections at once.
    #[arg(long, env = "FUTURE_P2P_RELAY_MAX_CONNECTIONS", default_value_t = 1000)]
    pub relay_max_connections: usize,
    /// Relay: connections at once from one IP address.
    #[arg(long, env = "FUTURE_P2P_RELAY_MAX_PER_ADDRESS", default_value_t = 500)]
    pub relay_max_connections_per_address: usize,
    /// Relay: when full, a newcomer replaces the connection idle longest if it has been
    /// idle this long.
    #[arg(long, env = "FUTURE_P2P_RELAY_EVICT_IDLE_AFTER", value_parser = parse_duration, default_value = "10s")]
    pub relay_evict_idle_after: Duration,
}

fn bytes(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl HubLimits {
    /// Applies the limits to `config`.
    pub fn apply(&self, config: &mut HubConfig) {
        config.board.backlog_limit = bytes(self.board_backlog);
        config.board.max_sessions_per_user = self.board_max_sessions_per_user;
        let m = &mut config.mailbox;
        m.max_message_bytes = bytes(self.mailbox_max_message);
        m.max_mailbox_bytes = bytes(self.mailbox_max_mailbox_bytes);
        m.max_connection_bytes = bytes(self.mailbox_max_connection_bytes);
        m.max_stored_bytes = bytes(self.mailbox_max_stored);
        m.max_mailboxes_per_app = self.mailbox_max_mailboxes;
        m.max_listeners_per_mailbox = self.mailbox_max_listeners;
        m.max_output_bytes = bytes(self.mailbox_max_output);
        m.max_connections = self.mailbox_max_connections;
        m.max_connections_per_address = self.mailbox_max_connections_per_address;
        m.idle_timeout = self.mailbox_idle_timeout;
        m.abandoned_after = self.mailbox_abandoned_after;
        let r = &mut config.relay;
        r.pairing_timeout = self.relay_pairing_timeout;
        r.idle_timeout = self.relay_idle_timeout;
        r.max_bytes_per_pairing = self.relay_max_bytes_per_pairing;
        r.max_connections = self.relay_max_connections;
        r.max_connections_per_address = self.relay_max_connections_per_address;
        r.evict_idle_after = self.relay_evict_idle_after;
    }
}

pub async fn run(args: HubArgs) -> Result<(), CliError> {
    raise_open_files_limit();
    let mut config = HubConfig::localhost(&args.state_dir);
    config.board.listen = args.board;
    config.board.signup = args.signup;
    if args.pico_routing {
        config.board.routing = p2p_hub::board::topic::Routing::Reroute;
    }
    config.mailbox_listen = args.mailbox;
    config.relay_listen = args.relay;
    args.limits.apply(&mut config);
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

/// Every connection to the hub holds a file descriptor; the usual soft limit of 1024 would
/// make the servers' own connection limits (several thousand together) unreachable and
/// let a flood starve all three servers of descriptors instead. Raise it to the hard limit.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => {
                if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                    tracing::warn!(%error, soft, hard, "could not raise the open files limit");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not read the open files limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        hub: HubArgs,
    }

    /// The flags' defaults are the servers' own defaults.
    #[test]
    fn flag_defaults_are_the_servers_defaults() {
        let probe = Probe::parse_from(["hub"]);
        let mut config = HubConfig::localhost("x");
        let expected = config.clone();
        probe.hub.limits.apply(&mut config);
        assert_eq!(config.mailbox, expected.mailbox);
        assert_eq!(config.relay, expected.relay);
        assert_eq!(config.board.backlog_limit, expected.board.backlog_limit);
        assert_eq!(
            config.board.max_sessions_per_user,
            expected.board.max_sessions_per_user
        );
    }

    #[test]
    fn limits_are_flags() {
        let probe = Probe::parse_from([
            "hub",
            "--mailbox-max-stored",
            "1M",
            "--relay-max-bytes-per-pairing",
            "2G",
            "--relay-evict-idle-after",
            "5m",
            "--board-max-sessions-per-user",
            "3",
        ]);
        let mut config = HubConfig::localhost("x");
        probe.hub.limits.apply(&mut config);
        assert_eq!(config.mailbox.max_stored_bytes, 1 << 20);
        assert_eq!(config.relay.max_bytes_per_pairing, Some(2 << 30));
        assert_eq!(config.relay.evict_idle_after, Duration::from_secs(300));
        assert_eq!(config.board.max_sessions_per_user, 3);
    }
}
