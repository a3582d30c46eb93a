//! Warm sessions: one PAKE, then a long-lived encrypted transit channel carrying p2p-proto
//! [`Frame`]s both ways, so a client and a worker exchange many tasks and results without
//! a new rendezvous.
//!
//! Set-up: both peers claim the code's nameplate under this project's own appid (sessions
//! are negotiated through `protocols` on the board, so only our peers ever join), run the
//! PAKE, swap transit hints as one encrypted mailbox message, connect transit (direct or via
//! a relay) and close the mailbox. Afterwards each transit record holds one encoded frame.
//!
//! Liveness: each side sends [`Frame::Heartbeat`] every `heartbeat_interval`; a side that
//! hears nothing (frames or heartbeats) for `dead_after` reports [`SessionError::PeerDead`].
//! Reading and writing run in separate tasks, so two peers sending large frames at each
//! other at once cannot deadlock on full socket buffers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use magic_wormhole::transit::{
    self, Abilities, Hints, TransitConnectError, TransitError, TransitInfo, TransitKey, TransitRole,
};
use magic_wormhole::{AppConfig, AppID, MailboxConnection, Wormhole, WormholeError};
use p2p_proto::frame::{Frame, FrameDecoder, FrameError, Heartbeat};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::code::WormholeCode;
use super::config::{RelayUrlError, WormholeConfig};

/// How long `close` waits for queued frames to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The appid of session rendezvous: separate from file transfer, so a future.p2p peer that
/// mistypes a code can never be mistaken for a session peer.
pub const SESSION_APPID: &str = "future-p2p.org/session-v1";

/// Which end of the transit handshake this peer plays. The two peers must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRole {
    /// The side that picked the code (the client).
    Leader,
    /// The side that was given the code (the worker).
    Follower,
}

/// Session timing and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Upper bound for rendezvous plus transit connection.
    pub connect_timeout: Duration,
    /// How often to send a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which the peer is declared dead (several heartbeat intervals).
    pub dead_after: Duration,
    /// Largest frame accepted from the peer.
    pub max_frame_len: usize,
    /// Frames buffered per direction before `send` waits (backpressure).
    pub queue_len: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            connect_timeout: Duration::from_secs(120),
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(20),
            max_frame_len: 256 << 20,
            queue_len: 64,
        }
    }
}

/// How a session failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// Rendezvous and transit did not complete within `connect_timeout`.
    #[error("session set-up timed out after {0:?}")]
    Timeout(Duration),
    /// Set-up was cancelled.
    #[error("session set-up cancelled")]
    Cancelled,
    /// Key confirmation failed: the peer used another code.
    #[error("wrong wormhole code: key confirmation with the peer failed")]
    WrongCode,
    /// The relay configuration is unusable.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// The mailbox server or the PAKE exchange failed.
    #[error("mailbox: {0}")]
    Mailbox(String),
    /// The peer's hint message was not what a session peer sends.
    #[error("session handshake: {0}")]
    Handshake(String),
    /// No transit connection could be made (no common path, relay unreachable, ...).
    #[error("transit connection failed: {0}")]
    Connect(String),
    /// The encrypted channel failed (I/O error, decryption or ordering failure).
    #[error("transit channel failed: {0}")]
    Transit(String),
    /// A frame could not be encoded, or the peer sent one we cannot decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Nothing arrived from the peer for this long: it is dead or unreachable.
    #[error("peer silent for {0:?}: presumed dead")]
    PeerDead(Duration),
    /// The session is closed: by us, or the peer's connection ended (a clean close, or a
    /// peer process that died and whose socket the OS closed).
    #[error("session closed")]
    Closed,
}

impl From<super::transfer::PanicError> for SessionError {
    fn from(panic: super::transfer::PanicError) -> Self {
        SessionError::Connect(format!(
            "the wormhole library failed internally: {}",
            panic.0
        ))
    }
}

impl From<WormholeError> for SessionError {
    fn from(err: WormholeError) -> Self {
        match err {
            WormholeError::PakeFailed => SessionError::WrongCode,
            other => SessionError::Mailbox(other.to_string()),
        }
    }
}

impl From<RelayUrlError> for SessionError {
    fn from(err: RelayUrlError) -> Self {
        SessionError::Config(err.to_string())
    }
}

impl From<TransitConnectError> for SessionError {
    fn from(err: TransitConnectError) -> Self {
        SessionError::Connect(err.to_string())
    }
}

impl From<TransitError> for SessionError {
    fn from(err: TransitError) -> Self {
        match err {
            // The crate reports the peer's end of stream as an I/O error while reading the
            // next record's length; that is a closed session, not a broken channel.
            TransitError::IO(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                SessionError::Closed
            }
            TransitError::IO(io) => SessionError::Transit(io.to_string()),
            other => SessionError::Transit(other.to_string()),
        }
    }
}

/// The one mailbox message of the session handshake.
#[derive(Debug, Serialize, Deserialize)]
struct SessionHints {
    abilities: Abilities,
    hints: Hints,
}

/// An open session. Receive with [`Session::recv`], send with [`Session::send`] or a
/// cloned [`SessionSender`]. Dropping it tears the connection down.
#[derive(Debug)]
pub struct Session {
    sender: SessionSender,
    inbound: mpsc::Receiver<Result<Frame, SessionError>>,
    info: TransitInfo,
    /// Asks the writer to flush what is queued and close the connection.
    closing: CancellationToken,
    writer: Option<JoinHandle<()>>,
    reader: JoinHandle<()>,
}

/// A cloneable handle that sends frames on a session.
#[derive(Debug, Clone)]
pub struct SessionSender {
    outbound: mpsc::Sender<Box<[u8]>>,
    done: CancellationToken,
    failure: Arc<Mutex<Option<SessionError>>>,
}

impl SessionSender {
    /// Queue `frame` for sending; waits while the queue is full.
    pub async fn send(&self, frame: &Frame) -> Result<(), SessionError> {
        let record: Box<[u8]> = frame.encode()?.as_ref().into();
        if self.done.is_cancelled() {
            return Err(self.failure());
        }
        self.outbound.send(record).await.map_err(|_| self.failure())
    }

    fn failure(&self) -> SessionError {
        self.failure
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
            .unwrap_or(SessionError::Closed)
    }
}

impl Session {
    /// Meet the peer under `code` and open a session. Both peers call this, one as
    /// [`SessionRole::Leader`], the other as [`SessionRole::Follower`], in any order.
    pub async fn connect(
        config: &WormholeConfig,
        code: &WormholeCode,
        role: SessionRole,
        session: &SessionConfig,
        cancel: CancellationToken,
    ) -> Result<Session, SessionError> {
        let setup = super::transfer::catch_panic(establish(config, code, role));
        let (transit, info) = tokio::select! {
            result = tokio::time::timeout(session.connect_timeout, setup) => {
                result.map_err(|_| SessionError::Timeout(session.connect_timeout))??
            }
            () = cancel.cancelled() => return Err(SessionError::Cancelled),
        };
        tracing::debug!(?role, "session transit connected");
        super::nodelay::on_transit_connected(&info);
        Ok(Session::start(transit, info, session))
    }

    fn start(transit: transit::Transit, info: TransitInfo, config: &SessionConfig) -> Session {
        let (sink, stream) = transit.split();
        let (out_tx, out_rx) = mpsc::channel(config.queue_len.max(1));
        let (in_tx, in_rx) = mpsc::channel(config.queue_len.max(1));
        let done = CancellationToken::new();
        let failure = Arc::new(Mutex::new(None));
        let closing = CancellationToken::new();
        let writer = tokio::spawn(write_loop(
            Box::pin(sink),
            out_rx,
            config.heartbeat_interval,
            WriterSignals {
                closing: closing.clone(),
                done: done.clone(),
                failure: Arc::clone(&failure),
            },
        ));
        let reader = tokio::spawn(read_loop(
            Box::pin(stream),
            in_tx,
            ReadLimits {
                dead_after: config.dead_after,
                max_frame_len: config.max_frame_len,
            },
            done.clone(),
            Arc::clone(&failure),
        ));
        Session {
            sender: SessionSender {
                outbound: out_tx,
                done,
                failure,
            },
            inbound: in_rx,
            info,
            closing,
            writer: Some(writer),
            reader,
        }
    }

    /// Send one frame (see [`SessionSender::send`]).
    pub async fn send(&self, frame: &Frame) -> Result<(), SessionError> {
        self.sender.send(frame).await
    }

    /// A handle for sending from other tasks.
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// The next frame from the peer (heartbeats are consumed here, never returned).
    ///
    /// After the first error every further call returns [`SessionError::Closed`].
    pub async fn recv(&mut self) -> Result<Frame, SessionError> {
        match self.inbound.recv().await {
            Some(result) => result,
            None => Err(SessionError::Closed),
        }
    }

    /// How the transit connection was made (direct or relay, and to where).
    pub fn transit_info(&self) -> &TransitInfo {
        &self.info
    }

    /// Send what is queued, then close the connection; the peer's `recv` sees `Closed`.
    pub async fn close(mut self) {
        self.closing.cancel();
        if let Some(writer) = self.writer.take() {
            // Bounded: a peer that stopped reading must not hang our close.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping without `close` is an abort: the peer sees the connection vanish.
        self.sender.done.cancel();
        self.reader.abort();
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// Rendezvous, PAKE, hint exchange and transit connection.
async fn establish(
    config: &WormholeConfig,
    code: &WormholeCode,
    role: SessionRole,
) -> Result<(transit::Transit, TransitInfo), SessionError> {
    let app = AppConfig {
        id: AppID::new(SESSION_APPID),
        rendezvous_url: config.mailbox_url.clone().into(),
        app_version: serde_json::json!({"session": 1}),
    };
    let mailbox = MailboxConnection::connect(app, code.to_crate(), true).await?;
    let mut wormhole = Wormhole::connect(mailbox).await?;
    let connector = transit::init(config.transit.abilities(), None, config.relay_hints()?)
        .await
        .map_err(|err| SessionError::Connect(err.to_string()))?;
    let ours = SessionHints {
        abilities: *connector.our_abilities(),
        hints: (**connector.our_hints()).clone(),
    };
    wormhole.send_json(&ours).await?;
    let theirs: SessionHints = wormhole
        .receive_json()
        .await?
        .map_err(|err| SessionError::Handshake(err.to_string()))?;
    let key = wormhole
        .key()
        .derive_subkey_from_purpose::<TransitKey>(&format!("{SESSION_APPID}/transit-key"));
    let transit_role = match role {
        SessionRole::Leader => TransitRole::Leader,
        SessionRole::Follower => TransitRole::Follower,
    };
    let connected = connector
        .connect(transit_role, key, theirs.abilities, Arc::new(theirs.hints))
        .await;
    // The mailbox has done its job either way; free it on the server.
    if let Err(error) = wormhole.close().await {
        tracing::debug!(%error, "closing session mailbox failed");
    }
    Ok(connected?)
}

type RecordSink = std::pin::Pin<Box<dyn futures::Sink<Box<[u8]>, Error = TransitError> + Send>>;
type RecordStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Box<[u8]>, TransitError>> + Send>>;

fn record_failure(slot: &Mutex<Option<SessionError>>, error: SessionError) {
    let mut slot = slot.lock().unwrap_or_else(|poison| poison.into_inner());
    slot.get_or_insert(error);
}

struct WriterSignals {
    closing: CancellationToken,
    done: CancellationToken,
    failure: Arc<Mutex<Option<SessionError>>>,
}

async fn write_loop(
    mut sink: RecordSink,
    mut outbound: mpsc::Receiver<Box<[u8]>>,
    heartbeat_interval: Duration,
    signals: WriterSignals,
) {
    let mut ticker = tokio::time::interval(heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let result: Result<(), SessionError> = async {
        loop {
            tokio::select! {
                record = outbound.recv() => match record {
                    Some(record) => sink.send(record).await?,
                    None => break,
                },
                _ = ticker.tick() => {
                    seq += 1;
                    let beat = Frame::Heartbeat(Heartbeat { seq }).encode()?;
                    sink.send(beat.as_ref().into()).await?;
                }
                () = signals.closing.cancelled() => break,
                () = signals.done.cancelled() => return Ok(()),
            }
        }
        // Graceful close: what was queued before `close` still goes out.
        while let Ok(record) = outbound.try_recv() {
            sink.send(record).await?;
        }
        sink.close().await?;
        Ok(())
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(%error, "session writer failed");
        record_failure(&signals.failure, error);
    }
    signals.done.cancel();
}

struct ReadLimits {
    dead_after: Duration,
    max_frame_len: usize,
}

async fn read_loop(
    mut stream: RecordStream,
    inbound: mpsc::Sender<Result<Frame, SessionError>>,
    limits: ReadLimits,
    done: CancellationToken,
    failure: Arc<Mutex<Option<SessionError>>>,
) {
    let mut decoder = FrameDecoder::new(limits.max_frame_len);
    let mut buffer = BytesMut::new();
    let error = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(limits.dead_after, stream.next()) => next,
            () = done.cancelled() => break None,
        };
        let record = match next {
            Err(_) => break Some(SessionError::PeerDead(limits.dead_after)),
            Ok(None) => break Some(SessionError::Closed),
            Ok(Some(Err(error))) => break Some(error.into()),
            Ok(Some(Ok(record))) => record,
        };
        buffer.extend_from_slice(&record);
        let mut delivered = true;
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(Frame::Heartbeat(_))) => {}
                Ok(Some(frame)) => {
                    if inbound.send(Ok(frame)).await.is_err() {
                        delivered = false; // Nobody is listening any more.
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = inbound.send(Err(error.clone().into())).await;
                    record_failure(&failure, error.into());
                    done.cancel();
                    return;
                }
            }
        }
        if !delivered {
            break None;
        }
    };
    let error = error.or_else(|| {
        failure
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    });
    if let Some(error) = error {
        tracing::debug!(%error, "session reader stopped");
        record_failure(&failure, error.clone());
        let _ = inbound.send(Err(error)).await;
    }
    done.cancel();
}
