//! One session channel: read the exec request, run the command, report the exit status.
//!
//! Two tasks per reading session: this one reads the client's channel (stdin data, EOF,
//! close) and a writer task drains the reader's broker queue into the channel. Keeping them
//! apart matters: a write waiting for the client's window must never stop us from reading,
//! or a pipe client that writes while we write to it would deadlock the connection.
//!
//! What a session writes goes through its [`LineGate`] (a board line must name the session's
//! user as its sender) before the broker sees it. Every pub/sub/pipe session counts against
//! its user's session limit while it lasts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::protocols::SENDERS_VERIFIED;
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use russh::{ChannelReadHalf, ChannelWriteHalf};
use tokio::task::JoinHandle;

use tokio::sync::oneshot;

use super::broker::{Eviction, Identity, Inbox, Member, Role, eviction, queue};
use super::command::{
    Command, CommandError, Dispatcher, PipeArgs, PubArgs, SubArgs, TopicArgs, parse_command,
};
use super::gate::{LineGate, Refusal};
use super::state::{Membership, SessionSlot, State, lock};
use super::topic::{Caller, Claim, Resolution, Routing, to_public_topic, to_topic};

/// How long an evicted reader gets to take its stderr notice before the channel closes.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who is on the other end of a session.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub user: String,
    pub anonymous: bool,
    pub key_name: String,
    pub fingerprint: String,
    pub addr: String,
    /// Why signup did not register this unknown key's login name (the `user` command
    /// says it, so that a refused name is not a mystery).
    pub signup_refused: Option<String>,
}

impl Peer {
    fn caller(&self) -> Caller<'_> {
        Caller {
            user: &self.user,
            fingerprint: &self.fingerprint,
            anonymous: self.anonymous,
        }
    }

    fn identity(&self) -> Identity {
        Identity {
            user: self.user.clone(),
            fingerprint: self.fingerprint.clone(),
            anonymous: self.anonymous,
        }
    }

    /// How errors name this user.
    fn shown(&self) -> String {
        if self.anonymous {
            format!("{} (an unregistered key)", self.user)
        } else {
            self.user.clone()
        }
    }

    /// The `ls` client ID: `uuid (user[-keyname]@addr)`.
    fn label(&self) -> String {
        let suffix = if self.key_name.is_empty() {
            String::new()
        } else {
            format!("-{}", self.key_name)
        };
        format!(
            "{} ({}{}@{})",
            uuid::Uuid::new_v4(),
            self.user,
            suffix,
            self.addr
        )
    }
}

/// How a command ended, besides success.
enum End {
    /// Report on stderr as `msg\n\r`, exit status 1.
    Fail(String),
    /// Exit status 1 with no message (`pub -c` timing out).
    Silent,
    /// The client closed the channel or the connection dropped: nothing left to tell.
    Gone,
}

/// The write side of a session channel, with the PTY newline rule (docs/pico-compat.md §2.3).
struct Output {
    tx: ChannelWriteHalf<Msg>,
    pty: bool,
}

impl Output {
    async fn stdout(&self, data: Bytes) -> Result<(), End> {
        let data = if self.pty { crlf(&data) } else { data };
        self.tx.data_bytes(data).await.map_err(|_| End::Gone)
    }

    async fn status(&self, text: String) -> Result<(), End> {
        self.stdout(Bytes::from(text)).await
    }

    async fn stderr(&self, text: String) -> Result<(), End> {
        self.tx
            .extended_data_bytes(1, Bytes::from(text))
            .await
            .map_err(|_| End::Gone)
    }

    /// Exit status, then EOF, then close: russh sends EOF and CLOSE only after the data
    /// queued before them, so nothing is cut off (docs/pico-compat.md §10).
    async fn finish(&self, code: u32) {
        let _ = self.tx.exit_status(code).await;
        let _ = self.tx.eof().await;
        let _ = self.tx.close().await;
    }
}

/// Rewrites `\n` to `\r\n` unless a `\r` precedes it, as upstream does for PTY sessions.
fn crlf(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    Bytes::from(out)
}

/// Runs one session channel to completion.
pub(crate) async fn run(channel: Channel<Msg>, state: Arc<State>, peer: Arc<Peer>) {
    let (mut rx, tx) = channel.split();
    let mut pty = false;
    let command = loop {
        match rx.wait().await {
            Some(ChannelMsg::Exec { command, .. }) => {
                break String::from_utf8_lossy(&command).into_owned();
            }
            Some(ChannelMsg::RequestShell { .. }) => break String::new(),
            Some(ChannelMsg::RequestPty { .. }) => pty = true,
            Some(ChannelMsg::RequestSubsystem { .. } | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    tracing::debug!(user = %peer.user, addr = %peer.addr, %command, "board command");
    let out = Arc::new(Output { tx, pty });
    let result = execute(&command, &mut rx, &out, &state, &peer).await;
    match result {
        Ok(()) => out.finish(0).await,
        Err(End::Fail(msg)) => {
            // Bounded: an evicted reader may never open its window again.
            let notice = out.stderr(format!("{msg}\n\r"));
            if tokio::time::timeout(NOTICE_TIMEOUT, notice).await.is_err() {
                tracing::debug!(user = %peer.user, "error notice not taken in time");
            }
            out.finish(1).await;
        }
        Err(End::Silent) => out.finish(1).await,
        Err(End::Gone) => {}
    }
}

async fn execute(
    line: &str,
    rx: &mut ChannelReadHalf,
    out: &Arc<Output>,
    state: &Arc<State>,
    peer: &Arc<Peer>,
) -> Result<(), End> {
    let command = match parse_command(line) {
        Ok(c) => c,
        Err(e) => {
            // Go's flag package prints the error and the usage on stdout before failing.
            if let CommandError::InvalidArgs { stdout, .. } = &e {
                out.status(stdout.clone()).await?;
            }
            return Err(End::Fail(e.to_string()));
        }
    };
    match command {
        Command::Help => out.status(super::command::help_text(&state.ssh_cmd)).await,
        Command::Ls => {
            if peer.anonymous {
                return Err(End::Fail("access denied".to_owned()));
            }
            out.status(state.ls(&peer.user)).await
        }
        Command::User => user(out, state, peer).await,
        // Routing like pico.sh, the hub passes for it: pico.sh has no `features` (an
        // unknown command there prints nothing and exits 0).
        Command::Features if lock(&state.access).routing() == Routing::Reroute => Ok(()),
        // The sender check (see `gate`): a line's `from=` user is the SSH user who wrote it.
        Command::Features => out.status(format!("{SENDERS_VERIFIED}\n")).await,
        Command::Pub(args) => {
            let _slot = open_session(state, peer)?;
            publish(args, rx, out, state, peer).await
        }
        Command::Sub(args) => {
            let _slot = open_session(state, peer)?;
            subscribe(args, rx, out, state, peer).await
        }
        Command::Pipe(args) => {
            let _slot = open_session(state, peer)?;
            pipe(args, rx, out, state, peer).await
        }
    }
}

/// Counts the session against its user's limit (anonymous keys share `public`'s).
fn open_session(state: &Arc<State>, peer: &Peer) -> Result<SessionSlot, End> {
    state.open_session(&peer.user).map_err(|open| {
        tracing::warn!(user = %peer.user, open, "session refused: too many sessions");
        End::Fail(format!(
            "too many sessions: {} has {open} open on this hub (limit {}); close some first",
            peer.shown(),
            state.max_sessions_per_user
        ))
    })
}

/// `user`, as `ssh pico.sh user` prints it: name, id, creation time, pico+ expiry (empty).
async fn user(out: &Output, state: &State, peer: &Peer) -> Result<(), End> {
    let account = if peer.anonymous {
        None
    } else {
        lock(&state.registry).account(&peer.user).cloned()
    };
    let Some(account) = account else {
        out.stderr("detected ssh command: [user]\n".to_owned())
            .await?;
        let why = match &peer.signup_refused {
            Some(reason) => format!(
                " (signup refused your login name: {reason}; connect with another one, e.g. `ssh -l alice` or `--ssh-args \"-l alice\"`)"
            ),
            None => String::new(),
        };
        return Err(End::Fail(format!(
            "ERROR: you need to create an account before using the remote cli: no account is registered for this key{why}"
        )));
    };
    out.status(format!(
        "{}\n{}\n{}\n\r\n",
        account.name,
        account.id,
        account.created_rfc3339()
    ))
    .await
}

/// A resolved topic: the channel name and how hints show it.
struct Target {
    name: String,
    shown: String,
    /// The caller was denied a public ACL topic and moved to a fresh one.
    moved: bool,
}

fn resolve(state: &State, peer: &Peer, args: &TopicArgs) -> Result<Resolved, End> {
    let (topic, generated) = match &args.topic {
        Some(t) => (t.clone(), false),
        None => (uuid::Uuid::new_v4().to_string(), true),
    };
    let resolution = lock(&state.access).resolve(peer.caller(), &topic, args.public, |name| {
        state.is_user(name)
    });
    let target = match resolution {
        Resolution::Channel(name) => Target {
            name,
            // Others reach a private ACL topic as `owner/topic`. (Upstream prints that for
            // `-p -a` too, which then names the wrong topic; a public one is shown as typed.)
            shown: if args.access.is_empty() || args.public {
                topic
            } else {
                to_topic(&peer.user, &topic)
            },
            moved: false,
        },
        Resolution::Denied => {
            let fresh = uuid::Uuid::new_v4().to_string();
            Target {
                name: to_public_topic(&fresh),
                shown: fresh,
                moved: true,
            }
        }
        Resolution::NotListed { topic, owner } => {
            tracing::info!(user = %peer.user, %topic, "refused: not on the access list");
            return Err(End::Fail(format!(
                "access denied: {} is not on the access list of {topic} (ask {owner} to add you)",
                peer.shown()
            )));
        }
        Resolution::NotHosted { topic, owner } => {
            tracing::info!(user = %peer.user, %topic, "refused: not hosted");
            return Err(End::Fail(format!(
                "{topic} is not hosted: it is {owner}'s, and {owner} has not opened it with an access list \
                 (a cluster's host must start before its members; this hub lets nobody else create it)"
            )));
        }
    };
    Ok(Resolved { target, generated })
}

struct Resolved {
    target: Target,
    generated: bool,
}

/// Claims the ACL, registers the membership guard and returns it with a fresh client id.
/// When the owner replaces a list, the members it leaves out are removed at once
/// (revocation), under the same lock, so nobody slips in between.
fn enter(state: &Arc<State>, peer: &Peer, name: &str, access: &[String]) -> Membership {
    let id = lock(&state.broker).next_client_id();
    let claim = {
        let table = &mut *lock(&state.access);
        let claim = table.claim(name, id, peer.caller(), access);
        if let Claim::Replaced { before } = &claim {
            let revoked =
                lock(&state.broker).revoke(name, &peer.user, |caller| table.permits(name, caller));
            tracing::info!(
                topic = %name, owner = %peer.user, ?before, after = ?access,
                revoked = revoked.len(), "access list replaced"
            );
        }
        claim
    };
    if claim.changed() {
        if !peer.anonymous {
            state.persist_access();
        }
        state.notify_members();
    }
    Membership {
        state: Arc::clone(state),
        id,
        topic: name.to_owned(),
    }
}

/// Adds the session to its channel, unless the channel's access list no longer allows it
/// (it was replaced while the session waited). Returns the eviction notice to watch.
fn join(
    state: &State,
    m: &Membership,
    peer: &Peer,
    member: NewMember,
    dispatcher: Dispatcher,
) -> Result<oneshot::Receiver<Eviction>, End> {
    let (notice, evicted) = eviction();
    {
        let access = lock(&state.access);
        if !access.permits(&m.topic, peer.caller()) {
            let owner = access
                .entry(&m.topic)
                .map(|e| e.owner.clone())
                .unwrap_or_default();
            return Err(End::Fail(
                Eviction::Revoked {
                    topic: m.topic.clone(),
                    owner,
                }
                .to_string(),
            ));
        }
        let member = Member {
            label: member.label,
            role: member.role,
            replay: member.replay,
            keepalive: member.keepalive,
            outbox: member.outbox,
            identity: peer.identity(),
            notice: Some(notice),
        };
        lock(&state.broker).join(&m.topic, m.id, member, dispatcher);
    }
    state.notify_members();
    Ok(evicted)
}

/// The session's part of a [`Member`].
struct NewMember {
    label: String,
    role: Role,
    replay: bool,
    keepalive: bool,
    outbox: Option<super::broker::Outbox>,
}

/// The writing half of a pub or pipe session: its line gate and what it refused.
struct Publisher {
    state: Arc<State>,
    id: u64,
    topic: String,
    user: String,
    gate: LineGate,
    refused: usize,
    out: Arc<Output>,
}

impl Publisher {
    fn new(state: &Arc<State>, m: &Membership, peer: &Peer, out: &Arc<Output>) -> Publisher {
        Publisher {
            state: Arc::clone(state),
            id: m.id,
            topic: m.topic.clone(),
            user: peer.user.clone(),
            gate: LineGate::new(&peer.user),
            refused: 0,
            out: Arc::clone(out),
        }
    }

    /// Bytes the client wrote.
    fn data(&mut self, data: &[u8]) {
        let gated = self.gate.push(data);
        self.publish(gated);
    }

    /// The client's EOF: what the gate held goes out.
    fn finish(&mut self) {
        let gated = self.gate.finish();
        self.publish(gated);
    }

    fn publish(&mut self, gated: super::gate::Gated) {
        for run in gated.runs {
            publish_chunk(&self.state, &self.topic, self.id, run.data, run.droppable);
        }
        for refusal in gated.refused {
            self.refuse(refusal);
        }
    }

    /// Logs the first refusal of the session (and every 1000th), and tells the client
    /// once on stderr, so a misconfigured peer learns why nobody answers.
    fn refuse(&mut self, refusal: Refusal) {
        self.refused += 1;
        if self.refused == 1 || self.refused.is_multiple_of(1000) {
            tracing::warn!(
                user = %self.user, topic = %self.topic, refused = self.refused, %refusal,
                "board line dropped"
            );
        }
        if self.refused == 1 {
            let out = Arc::clone(&self.out);
            let notice = format!(
                "board line dropped ({refusal}); on this hub a line's from= must be you ({})\n",
                self.user
            );
            tokio::spawn(async move {
                let _ = tokio::time::timeout(NOTICE_TIMEOUT, out.stderr(notice)).await;
            });
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.refused > 1 {
            tracing::warn!(
                user = %self.user, topic = %self.topic, refused = self.refused,
                "board lines dropped in this session"
            );
        }
    }
}

/// Hands a chunk to the broker and logs evictions.
fn publish_chunk(state: &State, topic: &str, id: u64, data: Bytes, droppable: bool) {
    let published = lock(&state.broker).publish(topic, id, data, droppable);
    if !published.evicted.is_empty() {
        tracing::warn!(%topic, evicted = ?published.evicted, "slow readers disconnected");
        state.notify_members();
    }
    if published.shed > 0 {
        tracing::debug!(%topic, readers = published.shed, "droppable lines skipped for lagging readers");
    }
}

/// Waits until `topic` has a reader, until `deadline` if given. Data the client sends
/// meanwhile is kept in `stash` (up to the backlog bound, then the client is left to its
/// SSH window); EOF is remembered. `Ok(false)`: timed out.
async fn wait_for_reader(
    state: &State,
    topic: &str,
    deadline: Option<tokio::time::Instant>,
    rx: &mut ChannelReadHalf,
    stash: &mut Vec<Bytes>,
    eof: &mut bool,
) -> Result<bool, End> {
    let mut changes = state.members_changed.subscribe();
    // A waiting pub holds at most what one reader may lag; then SSH flow control takes over.
    let stash_limit = lock(&state.broker).backlog_limit();
    loop {
        if lock(&state.broker).has_readers(topic) {
            return Ok(true);
        }
        let stashed: usize = stash.iter().map(Bytes::len).sum();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => return Ok(false),
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(End::Gone);
                }
            }
            // After EOF only Close can come, so the channel stays watched for a vanishing client.
            msg = rx.wait(), if stashed < stash_limit => match msg {
                // `pub -e` starts at "EOF": it publishes its NUL byte and ignores stdin.
                Some(ChannelMsg::Data { data }) if !*eof => stash.push(data),
                Some(ChannelMsg::Eof) => *eof = true,
                Some(ChannelMsg::Close) | None => return Err(End::Gone),
                Some(_) => {}
            },
        }
    }
}

async fn publish(
    args: PubArgs,
    rx: &mut ChannelReadHalf,
    out: &Arc<Output>,
    state: &Arc<State>,
    peer: &Arc<Peer>,
) -> Result<(), End> {
    let clean = args.common.clean;
    let Resolved { target, .. } = resolve(state, peer, &args.common)?;
    let membership = enter(state, peer, &target.name, &args.common.access);
    let label = peer.label();
    if !clean {
        let p = if args.common.public || target.moved {
            "-p "
        } else {
            ""
        };
        out.status(format!(
            "subscribe to this channel:\n  {} sub {p}{}\n",
            state.ssh_cmd, target.shown
        ))
        .await?;
    }
    let mut stash = Vec::new();
    let mut eof = args.empty;
    if args.empty {
        stash.push(Bytes::from_static(&[0]));
    }
    if args.block && !lock(&state.broker).has_readers(&target.name) {
        if !clean {
            let wait = match args.timeout.positive() {
                Some(_) => format!(" {}", args.timeout),
                None => String::new(),
            };
            out.status(format!("no subs found ... waiting{wait}\n"))
                .await?;
        }
        lock(&state.broker).wait(membership.id, &target.name, &label);
        // `-t` <= 0 times out at once unless a reader is there (Go's time.After(0)).
        let deadline =
            Some(tokio::time::Instant::now() + args.timeout.positive().unwrap_or_default());
        let found = wait_for_reader(state, &target.name, deadline, rx, &mut stash, &mut eof).await;
        lock(&state.broker).unwait(membership.id);
        if !found? {
            return Err(if clean {
                End::Silent
            } else {
                End::Fail("timeout reached, exiting".to_owned())
            });
        }
    }
    if !clean {
        out.status("sending msg ...\n".to_owned()).await?;
    }
    let mut evicted = join(
        state,
        &membership,
        peer,
        NewMember {
            label,
            role: Role::Pub,
            replay: false,
            keepalive: false,
            outbox: None,
        },
        args.dispatcher,
    )?;
    let mut publisher = Publisher::new(state, &membership, peer, out);
    for chunk in stash {
        publisher.data(&chunk);
    }
    // A oneshot must not be polled again once it has resolved.
    let mut notice_open = true;
    while !eof {
        tokio::select! {
            biased;
            eviction = &mut evicted, if notice_open => {
                notice_open = false;
                if let Ok(eviction) = eviction {
                    tracing::info!(user = %peer.user, reason = %eviction, "writer removed");
                    return Err(End::Fail(eviction.to_string()));
                }
            }
            msg = rx.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if args.block && !lock(&state.broker).has_readers(&target.name) {
                        let mut later = Vec::new();
                        wait_for_reader(state, &target.name, None, rx, &mut later, &mut eof)
                            .await?;
                        publisher.data(&data);
                        for chunk in later {
                            publisher.data(&chunk);
                        }
                    } else {
                        publisher.data(&data);
                    }
                }
                Some(ChannelMsg::Eof) => eof = true,
                Some(ChannelMsg::Close) | None => return Err(End::Gone),
                Some(_) => {}
            },
        }
    }
    publisher.finish();
    drop(publisher);
    drop(membership);
    if !clean {
        out.status("msg sent!\n".to_owned()).await?;
    }
    Ok(())
}

async fn subscribe(
    args: SubArgs,
    rx: &mut ChannelReadHalf,
    out: &Arc<Output>,
    state: &Arc<State>,
    peer: &Arc<Peer>,
) -> Result<(), End> {
    let Resolved { target, .. } = resolve(state, peer, &args.common)?;
    if target.moved {
        return Err(End::Fail("access denied".to_owned()));
    }
    let membership = enter(state, peer, &target.name, &args.common.access);
    let (outbox, inbox) = queue();
    let evicted = join(
        state,
        &membership,
        peer,
        NewMember {
            label: peer.label(),
            role: Role::Sub,
            replay: false,
            keepalive: args.keepalive,
            outbox: Some(outbox),
        },
        Dispatcher::Multicast,
    )?;
    let writer = spawn_writer(inbox, evicted, Arc::clone(out));
    read_until_done(rx, writer, None).await
}

async fn pipe(
    args: PipeArgs,
    rx: &mut ChannelReadHalf,
    out: &Arc<Output>,
    state: &Arc<State>,
    peer: &Arc<Peer>,
) -> Result<(), End> {
    let Resolved { target, generated } = resolve(state, peer, &args.common)?;
    let membership = enter(state, peer, &target.name, &args.common.access);
    if generated && !args.common.clean {
        let p = if args.common.public { "-p " } else { "" };
        out.status(format!(
            "subscribe to this topic:\n  {} sub {p}{}\n",
            state.ssh_cmd, target.shown
        ))
        .await?;
    }
    let (outbox, inbox) = queue();
    let evicted = join(
        state,
        &membership,
        peer,
        NewMember {
            label: peer.label(),
            role: Role::Pipe,
            replay: args.replay,
            keepalive: false,
            outbox: Some(outbox),
        },
        args.dispatcher,
    )?;
    let writer = spawn_writer(inbox, evicted, Arc::clone(out));
    let mut publisher = Publisher::new(state, &membership, peer, out);
    // After the client's EOF the pipe stays on as a reader (upstream before 2026-08-15).
    read_until_done(rx, writer, Some(&mut publisher)).await
}

/// How a reader's writer task ended.
enum WriterEnd {
    /// The broker dropped the queue (the session left).
    Closed,
    /// Evicted by the broker; for `WritersGone` after writing what was queued.
    Evicted(Eviction),
    /// The channel is gone.
    Gone,
}

fn spawn_writer(
    mut inbox: Inbox,
    mut evicted: oneshot::Receiver<Eviction>,
    out: Arc<Output>,
) -> JoinHandle<WriterEnd> {
    tokio::spawn(async move {
        let mut writers_gone = false;
        // A oneshot must not be polled again once it has resolved.
        let mut eviction_seen = false;
        loop {
            let chunk = tokio::select! {
                biased;
                eviction = &mut evicted, if !eviction_seen => {
                    eviction_seen = true;
                    match eviction {
                        Ok(Eviction::WritersGone) => writers_gone = true,
                        Ok(e) => return WriterEnd::Evicted(e),
                        // The session left: the data queue ends as well.
                        Err(_) => {}
                    }
                    continue;
                }
                chunk = inbox.data.recv() => match chunk {
                    Some(chunk) => coalesce(chunk, &mut inbox.data),
                    None if writers_gone => return WriterEnd::Evicted(Eviction::WritersGone),
                    None => return WriterEnd::Closed,
                },
            };
            let n = chunk.len();
            let write = out.stdout(chunk);
            tokio::pin!(write);
            loop {
                tokio::select! {
                    biased;
                    eviction = &mut evicted, if !eviction_seen => {
                        eviction_seen = true;
                        match eviction {
                            Ok(Eviction::WritersGone) => writers_gone = true,
                            // Too slow or revoked: drop the write in flight and what is queued.
                            Ok(e) => return WriterEnd::Evicted(e),
                            Err(_) => {}
                        }
                    }
                    written = &mut write => {
                        if written.is_err() {
                            return WriterEnd::Gone;
                        }
                        break;
                    }
                }
            }
            inbox.written(n);
        }
    })
}

/// Largest write assembled from queued chunks: one SSH packet's worth.
const WRITE_BATCH: usize = 32 * 1024;

/// Appends whatever else is already queued (up to [`WRITE_BATCH`]) to `first`. Under load
/// this turns many small chunks into one SSH packet per reader, which is what makes wide
/// fan-out affordable (encryption and syscalls are per packet); an idle topic still writes
/// each chunk at once. Order is kept, and chunks are joined, never split.
fn coalesce(first: Bytes, queue: &mut tokio::sync::mpsc::UnboundedReceiver<Bytes>) -> Bytes {
    if first.len() >= WRITE_BATCH {
        return first;
    }
    let mut batch: Option<Vec<u8>> = None;
    while batch.as_ref().map_or(first.len(), Vec::len) < WRITE_BATCH {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        let buf = batch.get_or_insert_with(|| {
            let mut v = Vec::with_capacity(WRITE_BATCH + next.len());
            v.extend_from_slice(&first);
            v
        });
        buf.extend_from_slice(&next);
    }
    batch.map_or(first, Bytes::from)
}

/// Reads the client's channel until it closes or the writer ends; a pipe's `publisher`
/// gets its stdin.
async fn read_until_done(
    rx: &mut ChannelReadHalf,
    mut writer: JoinHandle<WriterEnd>,
    mut publisher: Option<&mut Publisher>,
) -> Result<(), End> {
    let mut eof = false;
    loop {
        tokio::select! {
            end = &mut writer => {
                return match end {
                    Ok(WriterEnd::Evicted(Eviction::WritersGone) | WriterEnd::Closed) => Ok(()),
                    Ok(WriterEnd::Evicted(e)) => {
                        tracing::info!(reason = %e, "reader removed");
                        Err(End::Fail(e.to_string()))
                    }
                    Ok(WriterEnd::Gone) | Err(_) => Err(End::Gone),
                };
            }
            msg = rx.wait() => match msg {
                Some(ChannelMsg::Data { data }) if !eof => {
                    if let Some(p) = publisher.as_deref_mut() {
                        p.data(&data);
                    }
                }
                Some(ChannelMsg::Eof) => {
                    eof = true;
                    if let Some(p) = publisher.as_deref_mut() {
                        p.finish();
                    }
                }
                Some(ChannelMsg::Close) | None => {
                    writer.abort();
                    return Err(End::Gone);
                }
                Some(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pty_output_gets_crlf_once() {
        assert_eq!(&crlf(b"a\nb\r\nc\n")[..], b"a\r\nb\r\nc\r\n");
        assert_eq!(&crlf(b"\n\n")[..], b"\r\n\r\n");
        assert_eq!(&crlf(b"")[..], b"");
    }

    #[test]
    fn coalesce_joins_queued_chunks_in_order_up_to_a_packet() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for chunk in [&b"b"[..], b"c"] {
            tx.send(Bytes::copy_from_slice(chunk)).unwrap();
        }
        assert_eq!(&coalesce(Bytes::from_static(b"a"), &mut rx)[..], b"abc");
        tx.send(Bytes::from(vec![1u8; WRITE_BATCH])).unwrap();
        tx.send(Bytes::from_static(b"z")).unwrap();
        assert_eq!(
            coalesce(Bytes::from_static(b"y"), &mut rx).len(),
            WRITE_BATCH + 1
        );
        assert_eq!(&coalesce(Bytes::from_static(b"x"), &mut rx)[..], b"xz");
    }
}
