//! The board client: a pico pipe topic over SSH, as schedulers and workers use it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), p2p_transport::board::BoardError> {
//! use p2p_transport::board::{Board, BoardConfig, PipeOptions, TopicEvent};
//! let config = BoardConfig::from_ssh_args("pipe.pico.sh", &["-J", "somehost"])?;
//! let board = Board::connect(config).await?;
//! let mut topic = board.open("alice/p2p", &PipeOptions::default()).await?;
//! topic.send_line("when=2026-01-01T00:00:00,type=worker,from=bob@host:1").await?;
//! while let Some(event) = topic.recv().await {
//!     if let TopicEvent::Line(line) = event { println!("{line}"); }
//! }
//! # Ok(()) }
//! ```
//!
//! ```text
//!   mod.rs        Board: one connection, commands (`ls`, `user`, any) and topics on it
//!   config        BoardConfig: destination, ssh_args, backend, reconnect Backoff
//!   error         BoardError
//!   pipe          the `pipe` command line (PipeOptions, validated topic and access list)
//!   user          the `user` command's output (UserInfo), and which host answers it
//!   topic         Topic: an open pipe, lines out, TopicEvents in, reconnects with backoff
//!   join          join_cluster: a cluster's board topic (TopicStyle) as a LineChannel, with this
//!                 peer's id
//!   ssh_args      OpenSSH options parsed natively (-J, -p, -i, -l, -o ...)
//!   auth          keys from ssh-agent and files
//!   known_hosts   host-key checking (unknown refused unless accept-new, changed refused)
//!   native        the russh connection, jump hosts through direct-tcpip
//!   system_ssh    the `ssh` program with ssh_args verbatim, one process per command
//!   exec          one remote command's input and output, whichever backend runs it
//! ```
//!
//! Two backends share this API: native (russh, one SSH connection for every topic and
//! command of a `Board`, `-J` jump hosts through `direct-tcpip`) and system ssh (the `ssh`
//! binary with `ssh_args` verbatim, one process per command).

pub mod auth;
mod config;
mod error;
mod exec;
mod join;
pub mod known_hosts;
mod native;
mod pipe;
pub mod reroute;
pub mod ssh_args;
mod system_ssh;
mod topic;
mod user;

use std::sync::Arc;
use std::time::Duration;

pub use self::config::{Backend, Backoff, BoardConfig};
pub use self::error::BoardError;
pub use self::join::{JoinError, join_cluster, local_peer_id};
pub use self::pipe::{PipeOptions, pipe_command};
pub use self::topic::{Topic, TopicEvent, TopicSender};
pub use self::user::{UserInfo, account_destination, parse_user};

use self::exec::{Ending, Exec, Input, Output};
use self::native::{NativeConn, Route};

struct Inner {
    config: BoardConfig,
    route: Route,
    conn: tokio::sync::Mutex<Option<Arc<NativeConn>>>,
}

impl Inner {
    /// The shared native connection, re-established if it dropped.
    async fn connection(&self) -> Result<Arc<NativeConn>, BoardError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(conn));
        }
        let conn = Arc::new(native::connect(&self.route).await?);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    async fn exec(&self, command: &str) -> Result<Exec, BoardError> {
        match &self.config.backend {
            Backend::SystemSsh { program } => system_ssh::exec_system(
                program,
                &self.config.raw_ssh_args,
                &self.config.destination,
                command,
            ),
            Backend::Native => {
                let conn = self.connection().await?;
                Ok(exec::exec_channel(&conn.target, command).await?)
            }
        }
    }
}

/// A board: one SSH connection (native backend) on which topics are opened and commands run.
#[derive(Clone)]
pub struct Board {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("destination", &self.inner.config.destination)
            .finish_non_exhaustive()
    }
}

/// Output of a finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// How long a one-shot command (`ls`, `user`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

impl Board {
    /// Connects (native backend: now, so a bad key or host fails here; system ssh: on the
    /// first command).
    pub async fn connect(config: BoardConfig) -> Result<Board, BoardError> {
        let route = config.route();
        let board = Board {
            inner: Arc::new(Inner {
                config,
                route,
                conn: tokio::sync::Mutex::new(None),
            }),
        };
        if board.inner.config.backend == Backend::Native {
            board.inner.connection().await?;
        }
        Ok(board)
    }

    /// Runs a one-shot command; non-zero exit is [`BoardError::Command`].
    pub async fn run(&self, command: &str) -> Result<CommandOutput, BoardError> {
        let fut = async {
            let mut exec = self.inner.exec(command).await?;
            let _ = exec.input.send(Input::Eof).await;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let ending = loop {
                match exec.output.recv().await {
                    Some(Output::Stdout(b)) => stdout.extend_from_slice(&b),
                    Some(Output::Stderr(b)) => stderr.extend_from_slice(&b),
                    Some(Output::End(e)) => break e,
                    None => break Ending::Lost("command output ended".to_owned()),
                }
            };
            let out = CommandOutput {
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            };
            match ending {
                Ending::Exit(0) => Ok(out),
                Ending::Exit(s) => Err(BoardError::Command {
                    command: command.to_owned(),
                    status: Some(s),
                    stderr: out.stderr.trim().to_owned(),
                }),
                Ending::NoStatus => Err(BoardError::Command {
                    command: command.to_owned(),
                    status: None,
                    stderr: out.stderr.trim().to_owned(),
                }),
                Ending::Lost(reason) => Err(BoardError::Connect {
                    host: self.inner.config.destination.clone(),
                    reason,
                }),
            }
        };
        tokio::time::timeout(COMMAND_TIMEOUT, fut)
            .await
            .map_err(|_| BoardError::Timeout {
                host: self.inner.config.destination.clone(),
            })?
    }

    /// `ls`: the channels this user owns, as the server prints them.
    pub async fn ls(&self) -> Result<String, BoardError> {
        Ok(self.run("ls").await?.stdout)
    }

    /// `user`: who the server thinks this key is.
    pub async fn user(&self) -> Result<UserInfo, BoardError> {
        parse_user(&self.run("user").await?.stdout)
    }

    /// Whether this board proves who wrote each line (its `features` command lists
    /// [`SENDERS_VERIFIED`](p2p_proto::protocols::SENDERS_VERIFIED)): then the user in a
    /// line's `from=` is the SSH user who wrote it. pipe.pico.sh has no `features` command,
    /// so a board that refuses it proves nothing; only connection failures are errors.
    pub async fn proves_senders(&self) -> Result<bool, BoardError> {
        match self.run("features").await {
            Ok(out) => Ok(out
                .stdout
                .lines()
                .any(|l| l.trim() == p2p_proto::protocols::SENDERS_VERIFIED)),
            Err(BoardError::Command { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Who we are, asked where the account lives ([`account_destination`]): `user` on this
    /// board's connection when the board is its own account host, else on a one-off
    /// connection to the account host with the same settings. A failure says which host
    /// was asked and what to do ([`BoardError::Account`]).
    pub async fn account(&self) -> Result<UserInfo, BoardError> {
        let destination = account_destination(&self.inner.config.destination);
        let asked = if destination == self.inner.config.destination {
            self.user().await
        } else {
            let mut config = self.inner.config.clone();
            config.destination = destination.clone();
            match Board::connect(config).await {
                Ok(account) => account.user().await,
                Err(err) => Err(err),
            }
        };
        asked.map_err(|err| BoardError::Account {
            host: destination,
            source: Box::new(err),
        })
    }

    /// Opens `topic` with `pipe` and returns it once the command runs.
    pub async fn open(&self, topic: &str, options: &PipeOptions) -> Result<Topic, BoardError> {
        let command = pipe_command(topic, options)?;
        let exec = self.inner.exec(&command).await?;
        Ok(Topic::start(Arc::clone(&self.inner), command, exec))
    }
}
