//! The mailbox server's protocol logic as a deterministic, sans-IO state machine.
//!
//! Inputs: connection opened/closed, one text frame from a connection, the passage of time.
//! Outputs ([`Output`]): a text frame for a connection, or "close this connection". The
//! caller supplies `now` with every input, so expiry and idle limits are tested exactly with
//! simulated time, and the tokio driver in [`super::server`] only moves bytes and timers.
//!
//! Quotas (anyone who reaches the server may use it, so every resource is bounded):
//! - bytes stored per connection ([`MailboxConfig::max_connection_bytes`]), per mailbox
//!   ([`MailboxConfig::max_mailbox_bytes`]) and in all ([`MailboxConfig::max_stored_bytes`]);
//!   when the total is reached, the largest mailboxes (then the oldest) are evicted to make
//!   room, so one flooder's mailboxes go before the small ones real transfers use;
//! - mailboxes per appid ([`MailboxConfig::max_mailboxes_per_app`]): when full, a new one
//!   evicts the mailbox least likely to be in use (nobody listening, then only one side,
//!   then the oldest), so claiming nameplates in bulk cannot block other transfers: it only
//!   shortens how long an abandoned nameplate survives;
//! - a nameplate nobody holds any more (no connection claims it, its mailbox is empty and
//!   unheard) is taken over by the next side that claims it, so claims left behind by a
//!   flood cannot squat the codes of later transfers;
//! - connections listening to one mailbox ([`MailboxConfig::max_listeners_per_mailbox`]),
//!   which bounds how often one `add` is copied into output queues;
//! - the driver bounds each connection's output queue and the connections per address.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use super::protocol::{self, Command, Inbound, ProtocolError, ServerMessage};

/// Limits and behaviour of a mailbox server.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxConfig {
    /// Largest accepted frame, in bytes; larger ones are answered with `error`.
    pub max_message_bytes: usize,
    /// Connections silent (nothing received) for this long get `error` and are closed.
    pub idle_timeout: Duration,
    /// Nameplates and mailboxes nobody listens to are deleted after this long without use.
    pub abandoned_after: Duration,
    /// Most messages one mailbox stores (a normal wormhole needs well under 20).
    pub max_messages_per_mailbox: usize,
    /// Most live mailboxes per appid; a new one beyond evicts the least used one.
    pub max_mailboxes_per_app: usize,
    /// Most bytes stored in one mailbox (a wormhole stores a few KiB).
    pub max_mailbox_bytes: usize,
    /// Most bytes one connection may store over its life.
    pub max_connection_bytes: usize,
    /// Most bytes stored by the whole server; beyond, the largest mailboxes are evicted.
    pub max_stored_bytes: usize,
    /// Most connections listening to one mailbox (two sides, and their reconnects).
    pub max_listeners_per_mailbox: usize,
    /// Driver: most bytes queued for one connection that does not read; it is closed
    /// beyond.
    pub max_output_bytes: usize,
    /// Driver: most connections at once.
    pub max_connections: usize,
    /// Driver: most connections at once from one IP address.
    pub max_connections_per_address: usize,
    /// Whether `list` reveals nameplates (like the reference server without `--disallow-list`).
    pub allow_list: bool,
    /// Message of the day in `welcome`.
    pub motd: Option<String>,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        MailboxConfig {
            max_message_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(30 * 60),
            abandoned_after: Duration::from_secs(10 * 60),
            max_messages_per_mailbox: 200,
            max_mailboxes_per_app: 10_000,
            max_mailbox_bytes: 256 * 1024,
            max_connection_bytes: 256 * 1024,
            max_stored_bytes: 64 * 1024 * 1024,
            max_listeners_per_mailbox: 8,
            max_output_bytes: 1024 * 1024,
            max_connections: 4096,
            max_connections_per_address: 1024,
            allow_list: true,
            motd: None,
        }
    }
}

/// Identifies one client connection inside the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this text frame to the connection.
    Send {
        /// Target.
        conn: ConnId,
        /// A JSON object.
        text: String,
    },
    /// Close the connection (after sending what was queued before).
    Close {
        /// Target.
        conn: ConnId,
    },
}

/// A command refused by the server logic (its `Display` goes into the `error` message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The frame could not be parsed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A command other than `bind`/`ping` before `bind`.
    #[error("must bind first")]
    NotBound,
    /// A second `bind`.
    #[error("already bound")]
    AlreadyBound,
    /// A second `allocate` on one connection.
    #[error("you already allocated one, don't be greedy")]
    AlreadyAllocated,
    /// A second `claim` on one connection.
    #[error("only one claim per connection")]
    AlreadyClaimed,
    /// Two other sides already hold the nameplate or mailbox.
    #[error("crowded")]
    Crowded,
    /// Claiming again a nameplate this side already released.
    #[error("reclaimed")]
    Reclaimed,
    /// A second `release`.
    #[error("only one release per connection")]
    AlreadyReleased,
    /// `release` naming another nameplate than the claimed one.
    #[error("release and claim must use same nameplate")]
    ReleaseMismatch,
    /// `release` without nameplate and without a claim.
    #[error("release without nameplate must follow claim")]
    ReleaseWithoutClaim,
    /// A second `open`: a connection serves one mailbox (`add` names none).
    #[error("only one open per connection")]
    AlreadyOpen,
    /// `add` or `close` before `open`.
    #[error("must open mailbox before {0}")]
    NotOpen(&'static str),
    /// `close` naming another mailbox than the open one.
    #[error("open and close must use same mailbox")]
    CloseMismatch,
    /// A second `close`.
    #[error("only one close per connection")]
    AlreadyClosed,
    /// The mailbox holds `max_messages_per_mailbox` messages.
    #[error("mailbox full")]
    MailboxFull,
    /// The appid holds `max_mailboxes_per_app` mailboxes, all in use.
    #[error("too many mailboxes")]
    TooManyMailboxes,
    /// The mailbox holds `max_mailbox_bytes`.
    #[error("mailbox full ({limit} bytes stored)")]
    MailboxBytes {
        /// The limit.
        limit: usize,
    },
    /// The connection stored `max_connection_bytes`.
    #[error("this connection stored its {limit} bytes already")]
    ConnectionBytes {
        /// The limit.
        limit: usize,
    },
    /// The server's storage is full of mailboxes that cannot be evicted.
    #[error("server storage full")]
    ServerFull,
    /// No free nameplate below the mailbox limit.
    #[error("no nameplate available")]
    NoNameplate,
}

#[derive(Debug)]
struct Conn {
    app: Option<(String, String)>,
    allocated: bool,
    claimed: Option<String>,
    released: bool,
    opened: Option<String>,
    closed: bool,
    last_activity: Instant,
    /// Bytes this connection added to mailboxes.
    stored: usize,
}

#[derive(Debug)]
struct Nameplate {
    mailbox: String,
    /// side -> still claimed (false once released).
    sides: HashMap<String, bool>,
    updated: Instant,
}

#[derive(Debug)]
struct StoredMessage {
    side: String,
    phase: String,
    body: String,
    id: Option<Value>,
    server_rx: f64,
}

#[derive(Debug)]
struct Mailbox {
    /// side -> still open (false once closed).
    sides: HashMap<String, bool>,
    messages: Vec<StoredMessage>,
    listeners: BTreeSet<ConnId>,
    updated: Instant,
    created: Instant,
    /// Bytes its messages take.
    bytes: usize,
}

impl Mailbox {
    fn new(now: Instant) -> Mailbox {
        Mailbox {
            sides: HashMap::new(),
            messages: Vec::new(),
            listeners: BTreeSet::new(),
            updated: now,
            created: now,
            bytes: 0,
        }
    }

    /// Eviction order: smaller is evicted first (nobody listening, one side, oldest).
    fn eviction_rank(&self) -> (bool, bool, Instant) {
        (
            !self.listeners.is_empty(),
            self.sides.len() >= 2,
            self.created,
        )
    }
}

/// What a stored message costs, roughly: its strings and their bookkeeping.
fn stored_size(side: &str, phase: &str, body: &str) -> usize {
    side.len() + phase.len() + body.len() + 64
}

#[derive(Debug, Default)]
struct App {
    nameplates: HashMap<String, Nameplate>,
    mailboxes: HashMap<String, Mailbox>,
}

/// The mailbox server state: connections, and per appid the nameplates and mailboxes.
#[derive(Debug)]
pub struct MailboxState {
    config: MailboxConfig,
    /// `now` at construction and the Unix time it corresponds to, for `server_tx`/`server_rx`.
    epoch: (Instant, f64),
    next_conn: u64,
    conns: HashMap<ConnId, Conn>,
    apps: HashMap<String, App>,
    outputs: VecDeque<Output>,
    /// Bytes stored in all mailboxes.
    stored: usize,
}

impl MailboxState {
    /// A server with no connections; `unix_now` is the wall-clock time matching `now`.
    pub fn new(config: MailboxConfig, now: Instant, unix_now: f64) -> Self {
        MailboxState {
            config,
            epoch: (now, unix_now),
            next_conn: 0,
            conns: HashMap::new(),
            apps: HashMap::new(),
            outputs: VecDeque::new(),
            stored: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MailboxConfig {
        &self.config
    }

    /// A new connection: queues its `welcome`.
    pub fn connect(&mut self, now: Instant) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            conn,
            Conn {
                app: None,
                allocated: false,
                claimed: None,
                released: false,
                opened: None,
                closed: false,
                last_activity: now,
                stored: 0,
            },
        );
        let welcome = ServerMessage::Welcome {
            motd: self.config.motd.clone(),
        };
        self.send(conn, now, &welcome);
        conn
    }

    /// The connection went away (closed by the peer or after [`Output::Close`]).
    ///
    /// Its nameplate and mailbox stay, so a reconnecting client can resume; expiry removes
    /// them if nobody comes back.
    pub fn disconnect(&mut self, conn: ConnId, now: Instant) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        if let (Some((appid, _)), Some(mailbox)) = (state.app, state.opened)
            && let Some(mailbox) = self
                .apps
                .get_mut(&appid)
                .and_then(|app| app.mailboxes.get_mut(&mailbox))
        {
            mailbox.listeners.remove(&conn);
            mailbox.updated = now;
        }
    }

    /// One text frame from `conn`.
    pub fn handle_text(&mut self, conn: ConnId, now: Instant, text: &str) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.last_activity = now;
        if text.len() > self.config.max_message_bytes {
            let error = ProtocolError::TooLarge {
                size: text.len(),
                limit: self.config.max_message_bytes,
            };
            self.send_error(conn, now, &error.into(), Value::Null);
            return;
        }
        match protocol::parse(text) {
            Ok(Inbound { id, command }) => {
                // The reference server acks every command before acting on it.
                self.send(conn, now, &ServerMessage::Ack { id: id.clone() });
                let orig = serde_json::from_str(text).unwrap_or(Value::Null);
                if let Err(error) = self.command(conn, now, id, command) {
                    tracing::debug!(?conn, %error, "mailbox command refused");
                    self.send_error(conn, now, &error, orig);
                }
            }
            Err((error, orig)) => {
                tracing::debug!(?conn, %error, "malformed mailbox message");
                self.send_error(conn, now, &error.into(), orig);
            }
        }
    }

    /// Expire idle connections and abandoned nameplates and mailboxes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.last_activity + self.config.idle_timeout)
            .map(|(id, _)| *id)
            .collect();
        for conn in idle {
            tracing::debug!(?conn, "closing idle mailbox connection");
            self.send(
                conn,
                now,
                &ServerMessage::Error {
                    error: "idle timeout".into(),
                    orig: Value::Null,
                },
            );
            self.outputs.push_back(Output::Close { conn });
            self.disconnect(conn, now);
        }
        let limit = self.config.abandoned_after;
        let mut freed = 0;
        for app in self.apps.values_mut() {
            app.mailboxes.retain(|_, m| {
                let keep = !m.listeners.is_empty() || now < m.updated + limit;
                if !keep {
                    freed += m.bytes;
                }
                keep
            });
            let mailboxes = &app.mailboxes;
            app.nameplates.retain(|_, n| {
                let listened = mailboxes
                    .get(&n.mailbox)
                    .is_some_and(|m| !m.listeners.is_empty());
                listened || now < n.updated + limit
            });
        }
        self.apps
            .retain(|_, app| !app.nameplates.is_empty() || !app.mailboxes.is_empty());
        self.stored = self.stored.saturating_sub(freed);
    }

    /// When [`MailboxState::handle_timeout`] next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self
            .conns
            .values()
            .map(|c| c.last_activity + self.config.idle_timeout);
        let limit = self.config.abandoned_after;
        let abandoned = self.apps.values().flat_map(|app| {
            let mailboxes = app
                .mailboxes
                .values()
                .filter(|m| m.listeners.is_empty())
                .map(move |m| m.updated + limit);
            let nameplates = app.nameplates.values().map(move |n| n.updated + limit);
            mailboxes.chain(nameplates)
        });
        idle.chain(abandoned).min()
    }

    /// The next action for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Live nameplates for `appid` (for tests and monitoring).
    pub fn nameplate_count(&self, appid: &str) -> usize {
        self.apps.get(appid).map_or(0, |app| app.nameplates.len())
    }

    /// Live mailboxes for `appid` (for tests and monitoring).
    pub fn mailbox_count(&self, appid: &str) -> usize {
        self.apps.get(appid).map_or(0, |app| app.mailboxes.len())
    }

    /// Bytes stored in all mailboxes (for tests and monitoring).
    pub fn stored_bytes(&self) -> usize {
        self.stored
    }

    fn command(
        &mut self,
        conn: ConnId,
        now: Instant,
        id: Option<Value>,
        command: Command,
    ) -> Result<(), CommandError> {
        let state = self.conns.get_mut(&conn).ok_or(CommandError::NotBound)?;
        let (appid, side) = match (&command, &state.app) {
            (Command::Ping { ping }, _) => {
                let pong = ServerMessage::Pong { pong: ping.clone() };
                self.send(conn, now, &pong);
                return Ok(());
            }
            (Command::Bind { appid, side }, None) => {
                state.app = Some((appid.clone(), side.clone()));
                return Ok(());
            }
            (Command::Bind { .. }, Some(_)) => return Err(CommandError::AlreadyBound),
            (_, None) => return Err(CommandError::NotBound),
            (_, Some((appid, side))) => (appid.clone(), side.clone()),
        };
        match command {
            Command::Bind { .. } | Command::Ping { .. } => Ok(()),
            Command::List => {
                let nameplates = if self.config.allow_list {
                    let mut ids: Vec<String> = self
                        .apps
                        .get(&appid)
                        .map(|app| app.nameplates.keys().cloned().collect())
                        .unwrap_or_default();
                    ids.sort();
                    ids
                } else {
                    Vec::new()
                };
                self.send(conn, now, &ServerMessage::Nameplates { nameplates });
                Ok(())
            }
            Command::Allocate => {
                if state.allocated {
                    return Err(CommandError::AlreadyAllocated);
                }
                self.make_room(&appid, now)?;
                let nameplate = self.free_nameplate(&appid)?;
                self.claim(&appid, &side, &nameplate, now)?;
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.allocated = true;
                }
                self.send(conn, now, &ServerMessage::Allocated { nameplate });
                Ok(())
            }
            Command::Claim { nameplate } => {
                if state.claimed.is_some() {
                    return Err(CommandError::AlreadyClaimed);
                }
                let mailbox = self.claim(&appid, &side, &nameplate, now)?;
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.claimed = Some(nameplate);
                }
                self.send(conn, now, &ServerMessage::Claimed { mailbox });
                Ok(())
            }
            Command::Release { nameplate } => {
                if state.released {
                    return Err(CommandError::AlreadyReleased);
                }
                let nameplate = match (nameplate, &state.claimed) {
                    (Some(given), Some(claimed)) if &given != claimed => {
                        return Err(CommandError::ReleaseMismatch);
                    }
                    (Some(given), _) => given,
                    (None, Some(claimed)) => claimed.clone(),
                    (None, None) => return Err(CommandError::ReleaseWithoutClaim),
                };
                state.released = true;
                self.release(&appid, &side, &nameplate, now);
                self.send(conn, now, &ServerMessage::Released);
                Ok(())
            }
            Command::Open { mailbox } => {
                if state.opened.is_some() {
                    return Err(CommandError::AlreadyOpen);
                }
                self.open(conn, &appid, &side, &mailbox, now)?;
                Ok(())
            }
            Command::Add { phase, body } => {
                let mailbox_id = state
                    .opened
                    .clone()
                    .ok_or(CommandError::NotOpen("adding"))?;
                if state.closed {
                    return Err(CommandError::NotOpen("adding"));
                }
                self.add(conn, &appid, &mailbox_id, side, phase, body, id, now)
            }
            Command::Close { mailbox, mood } => {
                let opened = state
                    .opened
                    .clone()
                    .ok_or(CommandError::NotOpen("closing"))?;
                if mailbox.as_ref().is_some_and(|m| m != &opened) {
                    return Err(CommandError::CloseMismatch);
                }
                if state.closed {
                    return Err(CommandError::AlreadyClosed);
                }
                state.closed = true;
                tracing::debug!(
                    ?conn,
                    mood = mood.as_deref().unwrap_or("-"),
                    "mailbox closed"
                );
                self.close(conn, &appid, &side, &opened, now);
                self.send(conn, now, &ServerMessage::Closed);
                Ok(())
            }
        }
    }

    fn free_nameplate(&self, appid: &str) -> Result<String, CommandError> {
        let used: HashSet<&str> = self
            .apps
            .get(appid)
            .map(|app| app.nameplates.keys().map(String::as_str).collect())
            .unwrap_or_default();
        // Short codes are the point of nameplates: take the smallest free number.
        (1..=self.config.max_mailboxes_per_app + 1)
            .map(|n| n.to_string())
            .find(|n| !used.contains(n.as_str()))
            .ok_or(CommandError::NoNameplate)
    }

    fn claim(
        &mut self,
        appid: &str,
        side: &str,
        nameplate: &str,
        now: Instant,
    ) -> Result<String, CommandError> {
        if self.is_dead(appid, side, nameplate)
            && let Some(mailbox) = self
                .apps
                .get(appid)
                .and_then(|app| app.nameplates.get(nameplate))
                .map(|n| n.mailbox.clone())
        {
            self.evict(appid, &mailbox, "its nameplate was left behind", now);
        }
        let known = self
            .apps
            .get(appid)
            .is_some_and(|app| app.nameplates.contains_key(nameplate));
        if !known {
            self.make_room(appid, now)?;
        }
        let app = self.apps.entry(appid.to_owned()).or_default();
        let mailbox_id = match app.nameplates.get(nameplate) {
            Some(existing) => {
                match existing.sides.get(side) {
                    Some(false) => return Err(CommandError::Reclaimed),
                    Some(true) => {}
                    None if existing.sides.len() >= 2 => return Err(CommandError::Crowded),
                    None => {}
                }
                existing.mailbox.clone()
            }
            None => new_mailbox_id(),
        };
        // A claim also counts the side into the mailbox, so a third side is refused early.
        let mailbox = app
            .mailboxes
            .entry(mailbox_id.clone())
            .or_insert_with(|| Mailbox::new(now));
        if !mailbox.sides.contains_key(side) && mailbox.sides.len() >= 2 {
            return Err(CommandError::Crowded);
        }
        mailbox.sides.entry(side.to_owned()).or_insert(true);
        mailbox.updated = now;
        let record = app
            .nameplates
            .entry(nameplate.to_owned())
            .or_insert_with(|| Nameplate {
                mailbox: mailbox_id.clone(),
                sides: HashMap::new(),
                updated: now,
            });
        record.sides.insert(side.to_owned(), true);
        record.updated = now;
        Ok(mailbox_id)
    }

    fn release(&mut self, appid: &str, side: &str, nameplate: &str, now: Instant) {
        let Some(app) = self.apps.get_mut(appid) else {
            return;
        };
        let Some(record) = app.nameplates.get_mut(nameplate) else {
            return;
        };
        if let Some(claimed) = record.sides.get_mut(side) {
            *claimed = false;
        }
        record.updated = now;
        // A nameplate whose every claimer released it is free for the next code.
        if record.sides.values().all(|claimed| !claimed) {
            app.nameplates.remove(nameplate);
        }
    }

    fn open(
        &mut self,
        conn: ConnId,
        appid: &str,
        side: &str,
        mailbox_id: &str,
        now: Instant,
    ) -> Result<(), CommandError> {
        let known = self
            .apps
            .get(appid)
            .is_some_and(|app| app.mailboxes.contains_key(mailbox_id));
        if !known {
            self.make_room(appid, now)?;
        }
        let max_listeners = self.config.max_listeners_per_mailbox;
        let app = self.apps.entry(appid.to_owned()).or_default();
        let mailbox = app
            .mailboxes
            .entry(mailbox_id.to_owned())
            .or_insert_with(|| Mailbox::new(now));
        if !mailbox.sides.contains_key(side) && mailbox.sides.len() >= 2 {
            return Err(CommandError::Crowded);
        }
        if mailbox.listeners.len() >= max_listeners {
            return Err(CommandError::Crowded);
        }
        mailbox.sides.entry(side.to_owned()).or_insert(true);
        mailbox.listeners.insert(conn);
        mailbox.updated = now;
        let backlog: Vec<ServerMessage> = mailbox.messages.iter().map(to_message).collect();
        if let Some(state) = self.conns.get_mut(&conn) {
            state.opened = Some(mailbox_id.to_owned());
        }
        for message in &backlog {
            self.send(conn, now, message);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // One field per wire field keeps the call site clear.
    fn add(
        &mut self,
        conn: ConnId,
        appid: &str,
        mailbox_id: &str,
        side: String,
        phase: String,
        body: String,
        id: Option<Value>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let server_rx = self.unix(now);
        let size = stored_size(&side, &phase, &body);
        let limits = &self.config;
        let (max_messages, max_mailbox, max_conn) = (
            limits.max_messages_per_mailbox,
            limits.max_mailbox_bytes,
            limits.max_connection_bytes,
        );
        let stored_by_conn = self.conns.get(&conn).map_or(0, |c| c.stored);
        if stored_by_conn + size > max_conn {
            return Err(CommandError::ConnectionBytes { limit: max_conn });
        }
        {
            let mailbox = self
                .apps
                .get(appid)
                .and_then(|app| app.mailboxes.get(mailbox_id))
                // Expired while the connection was open but silent: nothing to add to.
                .ok_or(CommandError::NotOpen("adding"))?;
            if mailbox.messages.len() >= max_messages {
                return Err(CommandError::MailboxFull);
            }
            if mailbox.bytes + size > max_mailbox {
                return Err(CommandError::MailboxBytes { limit: max_mailbox });
            }
        }
        if self.stored + size > self.config.max_stored_bytes {
            self.evict_for_bytes(size, (appid, mailbox_id), now);
            if self.stored + size > self.config.max_stored_bytes {
                return Err(CommandError::ServerFull);
            }
        }
        if let Some(state) = self.conns.get_mut(&conn) {
            state.stored += size;
        }
        self.stored += size;
        let mailbox = self
            .apps
            .get_mut(appid)
            .and_then(|app| app.mailboxes.get_mut(mailbox_id))
            .ok_or(CommandError::NotOpen("adding"))?;
        mailbox.bytes += size;
        let stored = StoredMessage {
            side,
            phase,
            body,
            id,
            server_rx,
        };
        let message = to_message(&stored);
        mailbox.messages.push(stored);
        mailbox.updated = now;
        let listeners: Vec<ConnId> = mailbox.listeners.iter().copied().collect();
        for listener in listeners {
            self.send(listener, now, &message);
        }
        Ok(())
    }

    fn close(&mut self, conn: ConnId, appid: &str, side: &str, mailbox_id: &str, now: Instant) {
        let Some(app) = self.apps.get_mut(appid) else {
            return;
        };
        let Some(mailbox) = app.mailboxes.get_mut(mailbox_id) else {
            return;
        };
        mailbox.listeners.remove(&conn);
        if let Some(open) = mailbox.sides.get_mut(side) {
            *open = false;
        }
        mailbox.updated = now;
        // Once every side has closed, nothing will ever read the mailbox again.
        if mailbox.sides.values().all(|open| !open) {
            let bytes = mailbox.bytes;
            app.mailboxes.remove(mailbox_id);
            app.nameplates.retain(|_, n| n.mailbox != mailbox_id);
            self.stored = self.stored.saturating_sub(bytes);
        }
    }

    /// Whether `nameplate` is held by nobody `side` could meet: claimed by other sides only,
    /// none of whose connections is still here, and its mailbox is empty and unheard.
    fn is_dead(&self, appid: &str, side: &str, nameplate: &str) -> bool {
        let Some(app) = self.apps.get(appid) else {
            return false;
        };
        let Some(record) = app.nameplates.get(nameplate) else {
            return false;
        };
        if record.sides.contains_key(side) {
            return false;
        }
        let mailbox_idle = app
            .mailboxes
            .get(&record.mailbox)
            .is_none_or(|m| m.listeners.is_empty() && m.messages.is_empty());
        let held = self.conns.values().any(|c| {
            c.claimed.as_deref() == Some(nameplate)
                && c.app.as_ref().is_some_and(|(a, _)| a == appid)
        });
        mailbox_idle && !held
    }

    /// Before a new mailbox in `appid`: if the appid is full, evict its least used mailbox.
    fn make_room(&mut self, appid: &str, now: Instant) -> Result<(), CommandError> {
        let max = self.config.max_mailboxes_per_app;
        let count = self.apps.get(appid).map_or(0, |app| app.mailboxes.len());
        if count < max {
            return Ok(());
        }
        // One in use is only evicted when the appid is full of mailboxes in use, which the
        // driver's connection limit keeps below `max_mailboxes_per_app` by default.
        let victim = self.apps.get(appid).and_then(|app| {
            app.mailboxes
                .iter()
                .min_by_key(|(_, m)| m.eviction_rank())
                .map(|(id, _)| id.clone())
        });
        let victim = victim.ok_or(CommandError::TooManyMailboxes)?;
        self.evict(
            appid,
            &victim,
            "the server needed room for a new transfer",
            now,
        );
        Ok(())
    }

    /// Evicts the largest (then oldest) mailboxes other than `keep` until `size` more bytes
    /// fit under the server's total.
    fn evict_for_bytes(&mut self, size: usize, keep: (&str, &str), now: Instant) {
        let mut candidates: Vec<(usize, Instant, String, String)> = self
            .apps
            .iter()
            .flat_map(|(appid, app)| {
                app.mailboxes
                    .iter()
                    .filter(move |(id, _)| (appid.as_str(), id.as_str()) != keep)
                    .map(move |(id, m)| (m.bytes, m.created, appid.clone(), id.clone()))
            })
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, appid, id) in candidates {
            if self.stored + size <= self.config.max_stored_bytes {
                break;
            }
            self.evict(&appid, &id, "the server's storage was full", now);
        }
    }

    /// Removes a mailbox and its nameplates; its listeners get `error` and are closed.
    fn evict(&mut self, appid: &str, mailbox_id: &str, why: &str, now: Instant) {
        let Some(app) = self.apps.get_mut(appid) else {
            return;
        };
        let Some(mailbox) = app.mailboxes.remove(mailbox_id) else {
            return;
        };
        app.nameplates.retain(|_, n| n.mailbox != mailbox_id);
        self.stored = self.stored.saturating_sub(mailbox.bytes);
        tracing::debug!(
            appid,
            mailbox = mailbox_id,
            bytes = mailbox.bytes,
            why,
            "mailbox evicted"
        );
        for listener in mailbox.listeners {
            let error = ServerMessage::Error {
                error: format!("mailbox evicted: {why}"),
                orig: Value::Null,
            };
            self.send(listener, now, &error);
            self.outputs.push_back(Output::Close { conn: listener });
        }
    }

    fn send_error(&mut self, conn: ConnId, now: Instant, error: &CommandError, orig: Value) {
        let message = ServerMessage::Error {
            error: error.to_string(),
            orig,
        };
        self.send(conn, now, &message);
    }

    fn send(&mut self, conn: ConnId, now: Instant, message: &ServerMessage) {
        let text = message.to_json(self.unix(now));
        self.outputs.push_back(Output::Send { conn, text });
    }

    fn unix(&self, now: Instant) -> f64 {
        let (base, unix) = self.epoch;
        unix + now.saturating_duration_since(base).as_secs_f64()
    }
}

fn to_message(stored: &StoredMessage) -> ServerMessage {
    ServerMessage::Message {
        side: stored.side.clone(),
        phase: stored.phase.clone(),
        body: stored.body.clone(),
        id: stored.id.clone(),
        server_rx: stored.server_rx,
    }
}

/// Mailbox ids are capabilities (anyone may `open` one by id), so they are random:
/// 13 base32 characters, 65 bits, like the reference server's.
fn new_mailbox_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    (0..13)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn server(config: MailboxConfig) -> (MailboxState, Instant) {
        let now = Instant::now();
        (MailboxState::new(config, now, 1_000.0), now)
    }

    /// Drain outputs, returning the JSON frames sent to `conn` (and dropping the others).
    fn sent_to(state: &mut MailboxState, conn: ConnId) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(output) = state.poll_output() {
            if let Output::Send { conn: target, text } = output
                && target == conn
            {
                frames.push(serde_json::from_str(&text).expect("server sends JSON"));
            }
        }
        frames
    }

    fn types(frames: &[Value]) -> Vec<String> {
        frames
            .iter()
            .map(|f| f["type"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    fn cmd(state: &mut MailboxState, conn: ConnId, now: Instant, value: Value) -> Vec<Value> {
        state.handle_text(conn, now, &value.to_string());
        sent_to(state, conn)
    }

    fn bound(state: &mut MailboxState, now: Instant, side: &str) -> ConnId {
        let conn = state.connect(now);
        assert_eq!(types(&sent_to(state, conn)), ["welcome"]);
        let out = cmd(
            state,
            conn,
            now,
            json!({"type":"bind","appid":"app","side":side}),
        );
        assert_eq!(types(&out), ["ack"]);
        conn
    }

    #[test]
    fn two_sides_meet_exchange_and_clean_up() {
        let (mut s, now) = server(MailboxConfig::default());
        let a = bound(&mut s, now, "aaaa");
        let out = cmd(
            &mut s,
            a,
            now,
            json!({"type":"claim","nameplate":"7","id":"x1"}),
        );
        assert_eq!(types(&out), ["ack", "claimed"]);
        assert_eq!(out[0]["id"], "x1");
        let mailbox = out[1]["mailbox"].as_str().expect("mailbox").to_owned();
        assert_eq!(
            types(&cmd(
                &mut s,
                a,
                now,
                json!({"type":"open","mailbox":mailbox})
            )),
            ["ack"]
        );
        let out = cmd(
            &mut s,
            a,
            now,
            json!({"type":"add","phase":"pake","body":"00","id":"m1"}),
        );
        assert_eq!(types(&out), ["ack", "message"]);
        assert_eq!(out[1]["side"], "aaaa");
        assert_eq!(out[1]["id"], "m1");

        // The second side arrives later and gets the stored message on open.
        let b = bound(&mut s, now, "bbbb");
        let out = cmd(&mut s, b, now, json!({"type":"claim","nameplate":"7"}));
        assert_eq!(out[1]["mailbox"], mailbox.as_str());
        let out = cmd(&mut s, b, now, json!({"type":"open","mailbox":mailbox}));
        assert_eq!(types(&out), ["ack", "message"]);
        assert_eq!(out[1]["phase"], "pake");

        // A message from b reaches a.
        s.handle_text(
            b,
            now,
            &json!({"type":"add","phase":"pake","body":"01"}).to_string(),
        );
        let to_a = sent_to(&mut s, a);
        assert_eq!(types(&to_a), ["message"]);
        assert_eq!(to_a[0]["side"], "bbbb");

        for conn in [a, b] {
            let out = cmd(&mut s, conn, now, json!({"type":"release"}));
            assert_eq!(types(&out), ["ack", "released"]);
        }
        assert_eq!(s.nameplate_count("app"), 0);
        for conn in [a, b] {
            let out = cmd(&mut s, conn, now, json!({"type":"close","mood":"happy"}));
            assert_eq!(types(&out), ["ack", "closed"]);
        }
        assert_eq!(s.mailbox_count("app"), 0);
    }

    #[test]
    fn allocate_list_and_ping() {
        let (mut s, now) = server(MailboxConfig::default());
        let a = bound(&mut s, now, "a");
        let out = cmd(&mut s, a, now, json!({"type":"allocate"}));
        assert_eq!(
            out[1],
            json!({"type":"allocated","nameplate":"1","server_tx":1000.0})
        );
        let out = cmd(&mut s, a, now, json!({"type":"allocate"}));
        assert_eq!(
            out[1]["error"],
            "you already allocated one, don't be greedy"
        );
        let b = bound(&mut s, now, "b");
        assert_eq!(
            cmd(&mut s, b, now, json!({"type":"allocate"}))[1]["nameplate"],
            "2"
        );
        let out = cmd(&mut s, b, now, json!({"type":"list"}));
        assert_eq!(out[1]["nameplates"], json!([{"id":"1"},{"id":"2"}]));
        let out = cmd(&mut s, b, now, json!({"type":"ping","ping":5}));
        assert_eq!(out[1]["pong"], 5);
        let hidden = MailboxConfig {
            allow_list: false,
            ..MailboxConfig::default()
        };
        let (mut s, now) = server(hidden);
        let a = bound(&mut s, now, "a");
        cmd(&mut s, a, now, json!({"type":"claim","nameplate":"3"}));
        assert_eq!(
            cmd(&mut s, a, now, json!({"type":"list"}))[1]["nameplates"],
            json!([])
        );
    }

    #[test]
    fn protocol_violations_get_error_messages() {
        let (mut s, now) = server(MailboxConfig::default());
        let c = s.connect(now);
        sent_to(&mut s, c);
        let out = cmd(&mut s, c, now, json!({"type":"claim","nameplate":"1"}));
        assert_eq!(out[1]["error"], "must bind first");
        assert_eq!(out[1]["orig"]["type"], "claim");
        s.handle_text(c, now, "not json");
        let out = sent_to(&mut s, c);
        assert_eq!(types(&out), ["error"]);
        assert_eq!(out[0]["orig"], "not json");
        assert_eq!(
            cmd(&mut s, c, now, json!({"type":"bogus"}))[0]["error"],
            "unknown type"
        );
        cmd(
            &mut s,
            c,
            now,
            json!({"type":"bind","appid":"app","side":"s"}),
        );
        let out = cmd(
            &mut s,
            c,
            now,
            json!({"type":"bind","appid":"app","side":"s"}),
        );
        assert_eq!(out[1]["error"], "already bound");
        let out = cmd(&mut s, c, now, json!({"type":"add","phase":"0","body":""}));
        assert_eq!(out[1]["error"], "must open mailbox before adding");
        cmd(&mut s, c, now, json!({"type":"open","mailbox":"mbx"}));
        let out = cmd(&mut s, c, now, json!({"type":"open","mailbox":"other"}));
        assert_eq!(out[1]["error"], "only one open per connection");
        let out = cmd(&mut s, c, now, json!({"type":"close","mailbox":"other"}));
        assert_eq!(out[1]["error"], "open and close must use same mailbox");
        let out = cmd(&mut s, c, now, json!({"type":"release","nameplate":"9"}));
        assert_eq!(types(&out), ["ack", "released"]);
        let out = cmd(&mut s, c, now, json!({"type":"release"}));
        assert_eq!(out[1]["error"], "only one release per connection");
    }

    #[test]
    fn third_side_is_crowded_and_reclaim_is_refused() {
        let (mut s, now) = server(MailboxConfig::default());
        for side in ["a", "b"] {
            let conn = bound(&mut s, now, side);
            assert_eq!(
                types(&cmd(
                    &mut s,
                    conn,
                    now,
                    json!({"type":"claim","nameplate":"5"})
                )),
                ["ack", "claimed"]
            );
        }
        let c = bound(&mut s, now, "c");
        let out = cmd(&mut s, c, now, json!({"type":"claim","nameplate":"5"}));
        assert_eq!(out[1]["error"], "crowded");

        let a2 = bound(&mut s, now, "a");
        cmd(&mut s, a2, now, json!({"type":"release","nameplate":"5"}));
        let a3 = bound(&mut s, now, "a");
        let out = cmd(&mut s, a3, now, json!({"type":"claim","nameplate":"5"}));
        assert_eq!(out[1]["error"], "reclaimed");
    }

    #[test]
    fn limits_answer_with_error() {
        let config = MailboxConfig {
            max_message_bytes: 100,
            max_messages_per_mailbox: 2,
            ..MailboxConfig::default()
        };
        let (mut s, now) = server(config);
        let a = bound(&mut s, now, "a");
        s.handle_text(a, now, &"x".repeat(101));
        let out = sent_to(&mut s, a);
        assert_eq!(out[0]["error"], "message too large (101 bytes, limit 100)");
        cmd(&mut s, a, now, json!({"type":"open","mailbox":"m"}));
        for _ in 0..2 {
            cmd(
                &mut s,
                a,
                now,
                json!({"type":"add","phase":"0","body":"00"}),
            );
        }
        let out = cmd(
            &mut s,
            a,
            now,
            json!({"type":"add","phase":"0","body":"00"}),
        );
        assert_eq!(out[1]["error"], "mailbox full");
    }

    fn add(s: &mut MailboxState, conn: ConnId, now: Instant, body_len: usize) -> Value {
        let body = "0".repeat(body_len);
        let out = cmd(s, conn, now, json!({"type":"add","phase":"0","body":body}));
        out[1].clone()
    }

    #[test]
    fn stored_bytes_are_bounded_per_connection_mailbox_and_server() {
        let config = MailboxConfig {
            max_connection_bytes: 1000,
            max_mailbox_bytes: 1500,
            max_stored_bytes: 3000,
            ..MailboxConfig::default()
        };
        let (mut s, now) = server(config);
        let a = bound(&mut s, now, "a");
        cmd(&mut s, a, now, json!({"type":"open","mailbox":"m1"}));
        assert_eq!(add(&mut s, a, now, 800)["type"], "message");
        assert_eq!(
            add(&mut s, a, now, 800)["error"],
            "this connection stored its 1000 bytes already"
        );
        // The other side fills the mailbox up to its bound.
        let b = bound(&mut s, now, "b");
        cmd(&mut s, b, now, json!({"type":"open","mailbox":"m1"}));
        sent_to(&mut s, b);
        sent_to(&mut s, a);
        assert_eq!(add(&mut s, b, now, 500)["type"], "message");
        assert_eq!(
            add(&mut s, b, now, 300)["error"],
            "mailbox full (1500 bytes stored)"
        );
        assert_eq!(s.stored_bytes(), 800 + 500 + 2 * (2 + 64));
        // A small transfer later still fits: the biggest mailbox makes room.
        let t = now + Duration::from_secs(1);
        let c = bound(&mut s, t, "c");
        cmd(&mut s, c, t, json!({"type":"open","mailbox":"m2"}));
        let d = bound(&mut s, t, "d");
        cmd(&mut s, d, t, json!({"type":"open","mailbox":"m3"}));
        assert_eq!(add(&mut s, d, t, 900)["type"], "message");
        let body = "0".repeat(900);
        s.handle_text(
            c,
            t,
            &json!({"type":"add","phase":"0","body":body}).to_string(),
        );
        let (mut stored_for_c, mut told_a, mut closed_a) = (false, false, false);
        while let Some(output) = s.poll_output() {
            match output {
                Output::Send { conn, text } if conn == c => {
                    stored_for_c |= text.contains(r#""type":"message""#);
                }
                Output::Send { conn, text } if conn == a => {
                    told_a |= text.contains("mailbox evicted");
                }
                Output::Close { conn } => closed_a |= conn == a,
                Output::Send { .. } => {}
            }
        }
        assert!(stored_for_c);
        assert!(s.stored_bytes() <= 3000);
        // m1 (the largest) went, with an error to its listeners, who are closed.
        assert!(told_a && closed_a);
        assert_eq!(s.mailbox_count("app"), 2);
    }

    #[test]
    fn a_full_appid_evicts_its_least_used_mailbox() {
        let config = MailboxConfig {
            max_mailboxes_per_app: 3,
            ..MailboxConfig::default()
        };
        let (mut s, start) = server(config);
        // A flood of one-sided claims whose connections went away...
        for n in 1..=3 {
            let t = start + Duration::from_secs(n);
            let flood = bound(&mut s, t, &format!("f{n}"));
            cmd(
                &mut s,
                flood,
                t,
                json!({"type":"claim","nameplate":n.to_string()}),
            );
            s.disconnect(flood, t);
        }
        assert_eq!(s.nameplate_count("app"), 3);
        // ... does not keep a real transfer out: both of its sides meet.
        let t = start + Duration::from_secs(10);
        let a = bound(&mut s, t, "a");
        let out = cmd(&mut s, a, t, json!({"type":"allocate"}));
        assert_eq!(out[1]["type"], "allocated");
        let nameplate = out[1]["nameplate"].as_str().unwrap().to_owned();
        // The oldest flood claim went, so its number is the smallest free one again.
        assert_eq!(nameplate, "1");
        let claimed = cmd(&mut s, a, t, json!({"type":"claim","nameplate":nameplate}));
        let b = bound(&mut s, t, "b");
        let out = cmd(&mut s, b, t, json!({"type":"claim","nameplate":nameplate}));
        assert_eq!(out[1]["mailbox"], claimed[1]["mailbox"]);
        assert_eq!(s.mailbox_count("app"), 3);
        assert_eq!(s.nameplate_count("app"), 3);
    }

    #[test]
    fn a_nameplate_left_behind_is_taken_over_but_a_held_one_is_not() {
        let (mut s, now) = server(MailboxConfig::default());
        // A squatter claims 7 and goes away.
        let squat = bound(&mut s, now, "x");
        cmd(&mut s, squat, now, json!({"type":"claim","nameplate":"7"}));
        s.disconnect(squat, now);
        // Two sides of a real transfer meet on 7 anyway.
        let a = bound(&mut s, now, "a");
        let first = cmd(&mut s, a, now, json!({"type":"claim","nameplate":"7"}));
        let b = bound(&mut s, now, "b");
        let second = cmd(&mut s, b, now, json!({"type":"claim","nameplate":"7"}));
        assert_eq!(first[1]["mailbox"], second[1]["mailbox"]);
        // A third side is still crowded out while a and b hold it.
        let c = bound(&mut s, now, "c");
        let out = cmd(&mut s, c, now, json!({"type":"claim","nameplate":"7"}));
        assert_eq!(out[1]["error"], "crowded");
        // A first side that is still connected keeps its nameplate.
        let d = bound(&mut s, now, "d");
        let held = cmd(&mut s, d, now, json!({"type":"claim","nameplate":"9"}));
        let e = bound(&mut s, now, "e");
        let joined = cmd(&mut s, e, now, json!({"type":"claim","nameplate":"9"}));
        assert_eq!(held[1]["mailbox"], joined[1]["mailbox"]);
        // So does one that left a message behind (a sender whose connection dropped).
        let f = bound(&mut s, now, "f");
        let claimed = cmd(&mut s, f, now, json!({"type":"claim","nameplate":"11"}));
        let mailbox = claimed[1]["mailbox"].as_str().unwrap().to_owned();
        cmd(&mut s, f, now, json!({"type":"open","mailbox":mailbox}));
        cmd(
            &mut s,
            f,
            now,
            json!({"type":"add","phase":"pake","body":"00"}),
        );
        s.disconnect(f, now);
        let g = bound(&mut s, now, "g");
        let out = cmd(&mut s, g, now, json!({"type":"claim","nameplate":"11"}));
        assert_eq!(out[1]["mailbox"], mailbox.as_str());
    }

    #[test]
    fn listeners_per_mailbox_are_bounded() {
        let config = MailboxConfig {
            max_listeners_per_mailbox: 2,
            ..MailboxConfig::default()
        };
        let (mut s, now) = server(config);
        for n in 0..2 {
            let c = bound(&mut s, now, "a");
            assert_eq!(
                types(&cmd(&mut s, c, now, json!({"type":"open","mailbox":"m"}))),
                ["ack"],
                "{n}"
            );
        }
        let c = bound(&mut s, now, "a");
        let out = cmd(&mut s, c, now, json!({"type":"open","mailbox":"m"}));
        assert_eq!(out[1]["error"], "crowded");
    }

    #[test]
    fn abandoned_nameplates_and_mailboxes_expire_and_idle_connections_close() {
        let config = MailboxConfig {
            idle_timeout: Duration::from_secs(100),
            abandoned_after: Duration::from_secs(30),
            ..MailboxConfig::default()
        };
        let (mut s, start) = server(config);
        let a = bound(&mut s, start, "a");
        cmd(&mut s, a, start, json!({"type":"claim","nameplate":"4"}));
        s.disconnect(a, start);
        assert_eq!(s.nameplate_count("app"), 1);
        assert_eq!(s.poll_timeout(), Some(start + Duration::from_secs(30)));
        s.handle_timeout(start + Duration::from_secs(29));
        assert_eq!(s.nameplate_count("app"), 1);
        s.handle_timeout(start + Duration::from_secs(30));
        assert_eq!(s.nameplate_count("app"), 0);
        assert_eq!(s.mailbox_count("app"), 0);

        // A listened-to mailbox is kept while its connection lives, then the connection idles out.
        let b = bound(&mut s, start, "b");
        cmd(&mut s, b, start, json!({"type":"open","mailbox":"m"}));
        s.handle_timeout(start + Duration::from_secs(99));
        assert_eq!(s.mailbox_count("app"), 1);
        s.handle_timeout(start + Duration::from_secs(100));
        let mut closed = false;
        let mut errors = Vec::new();
        while let Some(output) = s.poll_output() {
            match output {
                Output::Close { conn } => closed |= conn == b,
                Output::Send { text, .. } => errors.push(text),
            }
        }
        assert!(closed);
        assert!(errors.iter().any(|t| t.contains("idle timeout")));
        s.handle_timeout(start + Duration::from_secs(130));
        assert_eq!(s.mailbox_count("app"), 0);
        assert_eq!(s.poll_timeout(), None);
    }

    fn arbitrary_command() -> impl Strategy<Value = String> {
        let field = prop_oneof![
            Just(json!("1")),
            Just(json!("m")),
            Just(json!(3)),
            Just(json!(null)),
            "[a-z0-9]{0,4}".prop_map(Value::String),
        ];
        let typed = (
            prop::sample::select(vec![
                "bind", "list", "allocate", "claim", "release", "open", "add", "close", "ping",
                "welcome", "",
            ]),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "appid",
                        "side",
                        "nameplate",
                        "mailbox",
                        "phase",
                        "body",
                        "mood",
                        "ping",
                        "id",
                    ]),
                    field,
                ),
                0..5,
            ),
        )
            .prop_map(|(ty, fields)| {
                let mut map = serde_json::Map::new();
                map.insert("type".into(), json!(ty));
                for (k, v) in fields {
                    map.insert(k.into(), v);
                }
                Value::Object(map).to_string()
            });
        prop_oneof![typed, ".{0,30}"]
    }

    proptest! {
        #[test]
        fn any_input_sequence_is_answered_and_never_panics(
            steps in prop::collection::vec((0usize..3, arbitrary_command(), 0u64..50), 0..60)
        ) {
            let (mut s, start) = server(MailboxConfig {
                max_message_bytes: 64,
                ..MailboxConfig::default()
            });
            let conns: Vec<ConnId> = (0..3).map(|_| s.connect(start)).collect();
            while s.poll_output().is_some() {}
            let mut now = start;
            for (who, text, advance) in steps {
                now += Duration::from_secs(advance);
                s.handle_text(conns[who], now, &text);
                // Every frame from a live client gets at least an ack or an error.
                let mut answered = false;
                while let Some(output) = s.poll_output() {
                    if let Output::Send { conn, text } = output {
                        let value: Value = serde_json::from_str(&text).expect("server JSON");
                        prop_assert!(value["type"].is_string());
                        answered |= conn == conns[who];
                    }
                }
                prop_assert!(answered);
            }
            s.handle_timeout(now + Duration::from_secs(3600));
        }
    }
}
