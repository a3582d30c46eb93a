//! The Board client: a pico pipe topic over SSH, as schedulers and workers use it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), p2p_transport::board::client::BoardError> {
//! use p2p_transport::board::client::{Board, BoardConfig, PipeOptions, TopicEvent};
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
//! Two backends share this API: native (russh, one SSH connection for every topic and
//! command of a `Board`, `-J` jump hosts through `direct-tcpip`) and system ssh (the `ssh`
//! binary with `ssh_args` verbatim, one process per command). Lines are split by
//! `p2p_proto::framer::LineFramer` in one place ([`Topic`]'s task). When the connection
//! drops, a topic reports [`TopicEvent::Disconnected`], retries with exponential backoff,
//! reopens the same pipe and reports [`TopicEvent::Reconnected`]; it never just hangs.

pub mod auth;
mod exec;
pub mod known_hosts;
mod native;
pub mod ssh_args;
mod system_ssh;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::framer::{FramerError, LineFramer, MAX_LINE_LEN};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::lines::{LineChannel, line_channel};

use self::auth::{AuthError, Credentials};
use self::exec::{Ending, Exec, Input, Output};
use self::known_hosts::{HostKeyError, HostKeyPolicy};
use self::native::{NativeConn, Route};
use self::ssh_args::{Hop, SshArgs, SshArgsError, Strictness, parse_ssh_args};

/// Everything that can go wrong on the client side.
#[derive(Debug, Error)]
pub enum BoardError {
    /// `ssh_args` could not be used natively.
    #[error(transparent)]
    SshArgs(#[from] SshArgsError),
    /// The host key was unknown or changed.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    /// Login failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// TCP or SSH connection failure.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// `host:port`.
        host: String,
        /// Why.
        reason: String,
    },
    /// Connecting took too long.
    #[error("timed out connecting to {host}")]
    Timeout {
        /// `host:port`.
        host: String,
    },
    /// The SSH session failed.
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
    /// The system ssh could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The remote command failed (its stderr says why, e.g. `access denied`).
    #[error("`{command}` failed (exit status {status:?}): {stderr}")]
    Command {
        /// The command.
        command: String,
        /// Exit status, if one was sent.
        status: Option<u32>,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// A topic name the server would split or misread.
    #[error("invalid topic {0:?}: use letters, digits and . _ - / only")]
    InvalidTopic(String),
    /// An access-list entry the server would split or misread.
    #[error("invalid access list entry {0:?}")]
    InvalidAccess(String),
    /// A line to send contains a line break.
    #[error("a board line cannot contain a line break")]
    LineBreak,
    /// A line to send is too long for the framer at the other end.
    #[error("board line of {len} bytes is longer than {max}")]
    LineTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The topic is closed, or disconnected while reconnecting.
    #[error("the topic is {0}")]
    NotConnected(&'static str),
    /// `user` printed something unexpected.
    #[error("unexpected `user` output: {0:?}")]
    UserOutput(String),
}

/// Which program carries the SSH connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// russh, arguments parsed natively.
    Native,
    /// The system `ssh`, arguments passed verbatim.
    SystemSsh {
        /// Usually `ssh`.
        program: PathBuf,
    },
}

/// Reconnect policy: delays double from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// Delay before attempt `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// How to reach the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardConfig {
    /// `host` or `user@host`.
    pub destination: String,
    /// Settings parsed from `ssh_args` (native backend).
    pub ssh: SshArgs,
    /// `ssh_args` as given (system-ssh backend).
    pub raw_ssh_args: Vec<String>,
    /// Backend.
    pub backend: Backend,
    /// The ssh-agent socket asked for keys first (native backend); from `SSH_AUTH_SOCK` by
    /// default, `None` to use key files only.
    pub agent: Option<PathBuf>,
    /// Reconnect policy for topics.
    pub backoff: Backoff,
}

impl BoardConfig {
    /// The native backend with `ssh_args` parsed like OpenSSH would.
    pub fn from_ssh_args<S: AsRef<str>>(
        destination: &str,
        ssh_args: &[S],
    ) -> Result<BoardConfig, SshArgsError> {
        Ok(BoardConfig {
            destination: destination.to_owned(),
            ssh: parse_ssh_args(ssh_args)?,
            raw_ssh_args: ssh_args.iter().map(|s| s.as_ref().to_owned()).collect(),
            backend: Backend::Native,
            agent: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            backoff: Backoff::default(),
        })
    }

    /// The system-ssh backend: `ssh [ssh_args…] -T destination command`.
    pub fn system_ssh<S: AsRef<str>>(destination: &str, ssh_args: &[S]) -> BoardConfig {
        BoardConfig {
            destination: destination.to_owned(),
            ssh: SshArgs::default(),
            raw_ssh_args: ssh_args.iter().map(|s| s.as_ref().to_owned()).collect(),
            backend: Backend::SystemSsh {
                program: PathBuf::from("ssh"),
            },
            agent: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            backoff: Backoff::default(),
        }
    }

    /// The native route: jump hosts and target, keys, host-key policy.
    fn route(&self) -> Route {
        let (dest_user, host) = match self.destination.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h.to_owned()),
            None => (None, self.destination.clone()),
        };
        let local_user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "root".to_owned());
        let user = dest_user
            .or_else(|| self.ssh.user.clone())
            .unwrap_or_else(|| local_user.clone());
        let mut hops = self.ssh.jump.clone();
        hops.push(Hop {
            user: Some(user),
            host,
            port: self.ssh.port.unwrap_or(22),
        });
        let files = if self.ssh.known_hosts.is_empty() {
            std::env::home_dir()
                .map(|h| vec![h.join(".ssh").join("known_hosts")])
                .unwrap_or_default()
        } else {
            self.ssh
                .known_hosts
                .iter()
                .map(|p| expand_tilde(p))
                .collect()
        };
        Route {
            hops,
            policy: Arc::new(HostKeyPolicy {
                files,
                accept_new: self.ssh.strict == Some(Strictness::AcceptNew),
            }),
            creds: Credentials {
                identity_files: self
                    .ssh
                    .identity_files
                    .iter()
                    .map(|p| expand_tilde(p))
                    .collect(),
                agent: self.agent.clone(),
            },
            connect_timeout: self.ssh.connect_timeout.unwrap_or(Duration::from_secs(30)),
            keepalive: match self.ssh.alive_interval {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => Some(Duration::from_secs(15)),
            },
            local_user,
        }
    }
}

fn expand_tilde(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

/// Options of `pipe` when opening a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipeOptions {
    /// `-a`: users or `SHA256:` fingerprints allowed in (when this session creates it).
    pub access: Vec<String>,
    /// `-r`: also receive own lines.
    pub replay: bool,
    /// `-p`: public namespace.
    pub public: bool,
}

fn check_word(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '+' | '=')
        })
}

/// The `pipe` command line for `topic` (validated so the server's tokeniser sees exactly
/// one topic and one access list).
pub fn pipe_command(topic: &str, options: &PipeOptions) -> Result<String, BoardError> {
    if !check_word(topic) || topic.contains(['=', ':', '+']) {
        return Err(BoardError::InvalidTopic(topic.to_owned()));
    }
    let mut command = format!("pipe {topic}");
    if !options.access.is_empty() {
        if let Some(bad) = options.access.iter().find(|a| !check_word(a)) {
            return Err(BoardError::InvalidAccess(bad.clone()));
        }
        command.push_str(" -a ");
        command.push_str(&options.access.join(","));
    }
    if options.replay {
        command.push_str(" -r");
    }
    if options.public {
        command.push_str(" -p");
    }
    Ok(command)
}

/// `user` output: name, id, creation time, pico+ expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Username.
    pub name: String,
    /// Account id.
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// pico+ expiry, if any.
    pub plus: Option<String>,
}

/// Parses `name\nid\ncreated\nplus\r\n`.
pub fn parse_user(text: &str) -> Result<UserInfo, BoardError> {
    let body = text.strip_suffix("\r\n").unwrap_or(text);
    let mut lines = body.split('\n').map(|l| l.trim_end_matches('\r'));
    let (Some(name), Some(id), Some(created)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(BoardError::UserOutput(text.to_owned()));
    };
    if name.is_empty() || id.is_empty() || created.is_empty() {
        return Err(BoardError::UserOutput(text.to_owned()));
    }
    let plus = lines.next().filter(|p| !p.is_empty()).map(str::to_owned);
    Ok(UserInfo {
        name: name.to_owned(),
        id: id.to_owned(),
        created: created.to_owned(),
        plus,
    })
}

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

    /// Opens `topic` with `pipe` and returns it once the command runs.
    pub async fn open(&self, topic: &str, options: &PipeOptions) -> Result<Topic, BoardError> {
        let command = pipe_command(topic, options)?;
        let exec = self.inner.exec(&command).await?;
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (event_tx, event_rx) = mpsc::channel(256);
        let task = TopicTask {
            inner: Arc::clone(&self.inner),
            command,
            commands: cmd_rx,
            events: event_tx,
            framer: LineFramer::new(MAX_LINE_LEN),
            pending: VecDeque::new(),
            stderr: Vec::new(),
        };
        tokio::spawn(task.run(exec));
        Ok(Topic {
            sender: TopicSender { commands: cmd_tx },
            events: event_rx,
        })
    }
}

/// What a topic reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicEvent {
    /// A complete line from the topic (without its newline).
    Line(String),
    /// A line the framer rejected (too long, not UTF-8); the stream continues.
    Malformed(FramerError),
    /// The connection dropped; the next attempt is in `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// The pipe is open again after a disconnection (lines sent meanwhile are lost).
    Reconnected,
    /// The pipe ended for good: the server closed it (exit status, stderr) or reconnecting
    /// gave up. No more events follow. ([`Topic::close`] ends it without this event.)
    Closed {
        /// Exit status if one was sent (a missing one or 255 means the stream just ended).
        status: Option<u32>,
        /// The server's stderr (e.g. a slow-reader notice), or why reconnecting gave up.
        message: String,
    },
}

enum TopicCommand {
    Send(Bytes, oneshot::Sender<Result<(), BoardError>>),
    Close(oneshot::Sender<()>),
}

/// An open topic: send lines, receive [`TopicEvent`]s.
///
/// Read events continuously (in their own task if sending happens elsewhere, through
/// [`Topic::sender`]): a topic whose events are not read stops reading its SSH channel, which
/// holds up its connection and, past the server's backlog bound, gets it disconnected as a
/// slow reader.
#[derive(Debug)]
pub struct Topic {
    sender: TopicSender,
    events: mpsc::Receiver<TopicEvent>,
}

/// A cloneable handle that sends lines to a [`Topic`].
#[derive(Debug, Clone)]
pub struct TopicSender {
    commands: mpsc::Sender<TopicCommand>,
}

impl TopicSender {
    /// Sends one line (a newline is added). Each line goes out as one SSH data message, so
    /// the server relays it whole and lines from several writers never interleave.
    pub async fn send_line(&self, line: &str) -> Result<(), BoardError> {
        if line.contains(['\n', '\r']) {
            return Err(BoardError::LineBreak);
        }
        if line.len() > MAX_LINE_LEN {
            return Err(BoardError::LineTooLong {
                len: line.len(),
                max: MAX_LINE_LEN,
            });
        }
        let mut data = Vec::with_capacity(line.len() + 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        let (ack_tx, ack_rx) = oneshot::channel();
        self.commands
            .send(TopicCommand::Send(Bytes::from(data), ack_tx))
            .await
            .map_err(|_| BoardError::NotConnected("closed"))?;
        ack_rx
            .await
            .map_err(|_| BoardError::NotConnected("closed"))?
    }
}

impl Topic {
    /// Sends one line; see [`TopicSender::send_line`].
    pub async fn send_line(&self, line: &str) -> Result<(), BoardError> {
        self.sender.send_line(line).await
    }

    /// A handle for sending from another task while this one reads events.
    pub fn sender(&self) -> TopicSender {
        self.sender.clone()
    }

    /// The next event; `None` after [`TopicEvent::Closed`].
    pub async fn recv(&mut self) -> Option<TopicEvent> {
        self.events.recv().await
    }

    /// Hands the topic to the protocol drivers as a [`LineChannel`] (`capacity` lines each
    /// way). Malformed lines are logged and skipped, reconnects are logged; `incoming` closes
    /// when the topic ends for good, and dropping `outgoing` leaves the topic.
    pub fn into_lines(mut self, capacity: usize) -> LineChannel {
        let (channel, mut pump) = line_channel(capacity);
        let sender = self.sender();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = self.events.recv() => match event {
                        Some(TopicEvent::Line(line)) => {
                            if pump.to_driver.send(line).await.is_err() {
                                break;
                            }
                        }
                        Some(TopicEvent::Malformed(error)) => {
                            tracing::warn!(%error, "skipped a malformed board line");
                        }
                        Some(TopicEvent::Disconnected { reason, retry_in }) => {
                            tracing::warn!(%reason, ?retry_in, "board topic disconnected");
                        }
                        Some(TopicEvent::Reconnected) => tracing::info!("board topic reconnected"),
                        Some(TopicEvent::Closed { status, message }) => {
                            tracing::info!(?status, %message, "board topic closed");
                            return;
                        }
                        None => return,
                    },
                    line = pump.from_driver.recv() => match line {
                        Some(line) => {
                            if let Err(error) = sender.send_line(&line).await {
                                tracing::warn!(%error, "board line not sent");
                            }
                        }
                        None => break,
                    },
                }
            }
            self.close().await;
        });
        channel
    }

    /// Leaves the topic and waits until the channel is closed.
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self
            .sender
            .commands
            .send(TopicCommand::Close(tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// The task behind a [`Topic`]: the only place where bytes become lines.
struct TopicTask {
    inner: Arc<Inner>,
    command: String,
    commands: mpsc::Receiver<TopicCommand>,
    events: mpsc::Sender<TopicEvent>,
    framer: LineFramer,
    /// Events read from the stream and not yet taken by the caller.
    pending: VecDeque<TopicEvent>,
    stderr: Vec<u8>,
}

/// Lines buffered before the task stops reading the stream.
const PENDING_LINES: usize = 4096;
/// Tail of the server's stderr kept for [`TopicEvent::Closed`].
const STDERR_KEPT: usize = 64 * 1024;

/// Why a pump of one exec ended.
enum Pumped {
    Ended(Ending),
    ClosedByCaller(oneshot::Sender<()>),
    CallerGone,
}

impl TopicTask {
    async fn run(mut self, mut exec: Exec) {
        loop {
            let reason = match self.pump(&mut exec).await {
                // `Topic::close` consumed the receiver's owner: no Closed event is wanted,
                // and waiting for room in a full event queue would never end.
                Pumped::ClosedByCaller(done) => {
                    let _ = exec.input.send(Input::Close).await;
                    let _ = done.send(());
                    return;
                }
                Pumped::CallerGone => {
                    let _ = exec.input.send(Input::Close).await;
                    return;
                }
                Pumped::Ended(Ending::Lost(reason)) => reason,
                Pumped::Ended(Ending::Exit(status)) => {
                    self.flush_partial().await;
                    let message = String::from_utf8_lossy(&self.stderr).trim().to_owned();
                    self.closed(Some(status), message).await;
                    return;
                }
                Pumped::Ended(Ending::NoStatus) => {
                    self.flush_partial().await;
                    let message = String::from_utf8_lossy(&self.stderr).trim().to_owned();
                    self.closed(None, message).await;
                    return;
                }
            };
            // A line cut off by the drop is not a line.
            self.framer = LineFramer::new(MAX_LINE_LEN);
            match self.reconnect(reason).await {
                Some(next) => exec = next,
                None => return,
            }
        }
    }

    async fn closed(&self, status: Option<u32>, message: String) {
        let _ = self
            .events
            .send(TopicEvent::Closed { status, message })
            .await;
    }

    async fn flush_partial(&mut self) {
        if let Some(last) = self.framer.finish() {
            let _ = self.events.send(event(last)).await;
        }
    }

    /// Moves bytes both ways until the command ends or the caller closes. Lines wait in
    /// `pending` for room in the event queue, so a caller that is busy sending is never
    /// blocked by events it has not read yet; output is only read while `pending` is short,
    /// which pushes back on the SSH window instead of buffering without bound.
    async fn pump(&mut self, exec: &mut Exec) -> Pumped {
        let mut ended: Option<Ending> = None;
        loop {
            if ended.is_some() && self.pending.is_empty() {
                return Pumped::Ended(ended.take().unwrap_or(Ending::NoStatus));
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(TopicCommand::Send(data, ack)) => {
                        let sent = exec.input.send(Input::Data(data)).await;
                        let _ = ack.send(sent.map_err(|_| BoardError::NotConnected("disconnected")));
                    }
                    Some(TopicCommand::Close(done)) => return Pumped::ClosedByCaller(done),
                    None => return Pumped::CallerGone,
                },
                permit = self.events.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(next) = self.pending.pop_front() {
                            permit.send(next);
                        }
                    }
                    Err(_) => return Pumped::CallerGone,
                },
                output = exec.output.recv(), if ended.is_none() && self.pending.len() < PENDING_LINES => match output {
                    Some(Output::Stdout(data)) => {
                        self.framer.push(&data);
                        while let Some(line) = self.framer.next_line() {
                            self.pending.push_back(event(line));
                        }
                    }
                    Some(Output::Stderr(data)) => {
                        self.stderr.extend_from_slice(&data);
                        if self.stderr.len() > STDERR_KEPT {
                            self.stderr.drain(..self.stderr.len() - STDERR_KEPT);
                        }
                    }
                    Some(Output::End(ending)) => ended = Some(ending),
                    None => ended = Some(Ending::Lost("connection task ended".to_owned())),
                },
            }
        }
    }

    /// Retries with backoff; `None` if the caller closed the topic or attempts ran out.
    async fn reconnect(&mut self, mut reason: String) -> Option<Exec> {
        let backoff = self.inner.config.backoff;
        let mut attempt = 0u32;
        loop {
            if backoff.max_attempts.is_some_and(|max| attempt >= max) {
                self.closed(None, format!("gave up reconnecting: {reason}"))
                    .await;
                return None;
            }
            let delay = backoff.delay(attempt);
            tracing::warn!(%reason, ?delay, "board connection lost; reconnecting");
            let disconnected = TopicEvent::Disconnected {
                reason: reason.clone(),
                retry_in: delay,
            };
            if self.events.send(disconnected).await.is_err() {
                return None;
            }
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    command = self.commands.recv() => match command {
                        Some(TopicCommand::Send(_, ack)) => {
                            let _ = ack.send(Err(BoardError::NotConnected("disconnected")));
                        }
                        Some(TopicCommand::Close(done)) => {
                            let _ = done.send(());
                            return None;
                        }
                        None => return None,
                    },
                }
            }
            match self.inner.exec(&self.command).await {
                Ok(exec) => {
                    self.stderr.clear();
                    let _ = self.events.send(TopicEvent::Reconnected).await;
                    return Some(exec);
                }
                Err(e) => {
                    reason = e.to_string();
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

fn event(line: Result<String, FramerError>) -> TopicEvent {
    match line {
        Ok(l) => TopicEvent::Line(l),
        Err(e) => TopicEvent::Malformed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_commands_are_validated() {
        assert_eq!(
            pipe_command("alice/p2p", &PipeOptions::default()).unwrap(),
            "pipe alice/p2p"
        );
        let opts = PipeOptions {
            access: vec!["bob".into(), "SHA256:abc+/=".into()],
            replay: true,
            public: true,
        };
        assert_eq!(
            pipe_command("p2p", &opts).unwrap(),
            "pipe p2p -a bob,SHA256:abc+/= -r -p"
        );
        for bad in ["", "-a", "a b", "x'y", "a\"b", "a\nb"] {
            assert!(
                matches!(
                    pipe_command(bad, &PipeOptions::default()),
                    Err(BoardError::InvalidTopic(_))
                ),
                "{bad:?}"
            );
        }
        let opts = PipeOptions {
            access: vec!["bob,carol".into()],
            ..Default::default()
        };
        assert!(matches!(
            pipe_command("p2p", &opts),
            Err(BoardError::InvalidAccess(_))
        ));
    }

    #[test]
    fn user_output() {
        let u = parse_user("alice\n0f0e\n2026-01-01T00:00:00Z\n\r\n").unwrap();
        assert_eq!((u.name.as_str(), u.plus), ("alice", None));
        assert!(matches!(
            parse_user("alice\n"),
            Err(BoardError::UserOutput(_))
        ));
    }

    #[test]
    fn backoff_doubles_to_max() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: None,
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(40), Duration::from_secs(1));
    }

    #[test]
    fn route_from_ssh_args() {
        let c = BoardConfig::from_ssh_args(
            "bob@hub",
            &[
                "-p",
                "2222",
                "-J",
                "j1,j2:23",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ],
        )
        .unwrap();
        let r = c.route();
        assert_eq!(r.hops.len(), 3);
        assert_eq!(
            r.hops[2],
            Hop {
                user: Some("bob".into()),
                host: "hub".into(),
                port: 2222
            }
        );
        assert_eq!(r.hops[1].port, 23);
        assert!(r.policy.accept_new);
    }
}
