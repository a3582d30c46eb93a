//! Warm sessions: one PAKE, then a long-lived encrypted channel carrying p2p-proto
//! [`Frame`]s both ways, so a client and a worker exchange many tasks and results without
//! a new rendezvous.
//!
//! Set-up: both peers claim the code's nameplate under this project's own appid (sessions
//! are negotiated through `protocols` on the board, so only our peers ever join), run the
//! PAKE, swap connection hints as one encrypted mailbox message, connect (see
//! [`channel`]: direct if the follower listens, else via the leader's relays) and
//! close the mailbox. Afterwards each record carries one encoded frame.
//!
//! Liveness: a background task sends [`Frame::Heartbeat`] every `heartbeat_interval`;
//! [`Session::recv`] reports [`SessionError::PeerDead`] when nothing (frames or heartbeats)
//! arrives for `dead_after`. Sending and receiving are independent (a [`SessionSender`] per
//! task), so two peers pushing large frames at each other do not deadlock as long as each
//! keeps receiving.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use magic_wormhole::{AppConfig, AppID, MailboxConnection, Wormhole};
use p2p_proto::frame::{Frame, FrameError, Heartbeat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod channel;
mod error;

pub use self::channel::{SessionPath, SessionRole};
pub use self::error::SessionError;

use self::channel::{Opener, RECORD_OVERHEAD, Sealer, SessionHints, SessionKeys};
use crate::wormhole::config::WormholeConfig;
use p2p_proto::id::WormholeCode;

/// Room made in the receive buffer before each read.
const READ_CHUNK: usize = 64 << 10;

/// Largest piece of a record written under one stall timeout.
const WRITE_CHUNK: usize = 256 << 10;

/// The appid of session rendezvous: separate from file transfer, so a future.p2p peer that
/// mistypes a code can never be mistaken for a session peer.
pub const SESSION_APPID: &str = "future-p2p.org/session-v1";

/// Session timing and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Upper bound for rendezvous plus connection.
    pub connect_timeout: Duration,
    /// How often to send a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which the peer is declared dead (several heartbeat intervals); also
    /// how long a send may wait without progress for a peer that stopped reading.
    pub dead_after: Duration,
    /// Largest frame accepted from the peer.
    pub max_frame_len: usize,
    /// Follower only: listen here for a direct connection and advertise it to the leader
    /// (a concrete, reachable address; port 0 picks one). `None`: relays only.
    pub listen: Option<SocketAddr>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            connect_timeout: Duration::from_secs(120),
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(20),
            max_frame_len: 256 << 20,
            listen: None,
        }
    }
}

/// State shared by the session, its senders and the heartbeat task.
struct Shared {
    writer: Mutex<Writer>,
    /// The first failure, reported by every later call.
    failure: SyncMutex<Option<SessionError>>,
    /// Cancelled on the first failure or on close.
    done: CancellationToken,
    /// A write that makes no progress for this long means the peer stopped reading.
    stall_limit: Duration,
}

struct Writer {
    half: OwnedWriteHalf,
    sealer: Sealer,
    buf: Vec<u8>,
}

impl Shared {
    fn fail(&self, error: SessionError) -> SessionError {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        let first = slot.get_or_insert(error).clone();
        self.done.cancel();
        first
    }

    fn failure(&self) -> Option<SessionError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn send(&self, frames: &[Frame]) -> Result<(), SessionError> {
        let plaintexts = frames
            .iter()
            .map(Frame::encode)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let mut writer = self.writer.lock().await;
        let Writer { half, sealer, buf } = &mut *writer;
        buf.clear();
        // Several frames sealed back to back leave in one write (and, when small, one
        // segment): under load that is one syscall for many tasks instead of one each.
        for plaintext in &plaintexts {
            sealer.seal(plaintext, buf)?;
        }
        // One write per small record: with TCP_NODELAY it leaves in one segment. Large
        // records go in chunks, each bounded, so a peer that stops reading (hung or dead
        // without closing) fails the send instead of blocking it forever.
        for chunk in buf.chunks(WRITE_CHUNK) {
            match tokio::time::timeout(self.stall_limit, half.write_all(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(self.fail(SessionError::Transit(error.to_string()))),
                Err(_) => return Err(self.fail(SessionError::PeerDead(self.stall_limit))),
            }
        }
        Ok(())
    }
}

/// An open session. Receive with [`Session::recv`], send with [`Session::send`] or a
/// cloned [`SessionSender`]. Dropping it closes the connection abruptly.
pub struct Session {
    shared: Arc<Shared>,
    reader: OwnedReadHalf,
    opener: Opener,
    buf: BytesMut,
    dead_after: Duration,
    max_record: usize,
    path: SessionPath,
    heartbeat: JoinHandle<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("path", &self.path)
            .field("failure", &self.shared.failure())
            .finish_non_exhaustive()
    }
}

/// A cloneable handle that sends frames on a session.
#[derive(Clone)]
pub struct SessionSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSender").finish_non_exhaustive()
    }
}

impl SessionSender {
    /// Send one frame; waits while the socket is full (backpressure).
    pub async fn send(&self, frame: &Frame) -> Result<(), SessionError> {
        self.shared.send(std::slice::from_ref(frame)).await
    }

    /// Send several frames in order, in one write.
    pub async fn send_all(&self, frames: &[Frame]) -> Result<(), SessionError> {
        self.shared.send(frames).await
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
        // The rendezvous runs inside magic-wormhole, whose panics must not kill our caller.
        let setup = crate::wormhole::transfer::catch_panic(establish(config, code, role, session));
        let (stream, path, keys) = tokio::select! {
            result = tokio::time::timeout(session.connect_timeout, setup) => {
                result.map_err(|_| SessionError::Timeout(session.connect_timeout))??
            }
            () = cancel.cancelled() => return Err(SessionError::Cancelled),
        };
        tracing::debug!(?path, ?role, "session connected");
        let (send_key, recv_key) = keys.directional(role);
        let (reader, half) = stream.into_split();
        let shared = Arc::new(Shared {
            writer: Mutex::new(Writer {
                half,
                sealer: Sealer::new(&send_key),
                buf: Vec::new(),
            }),
            failure: SyncMutex::new(None),
            done: CancellationToken::new(),
            stall_limit: session.dead_after,
        });
        let heartbeat = tokio::spawn(heartbeat_loop(
            Arc::clone(&shared),
            session.heartbeat_interval,
        ));
        Ok(Session {
            shared,
            reader,
            opener: Opener::new(&recv_key),
            buf: BytesMut::with_capacity(64 << 10),
            dead_after: session.dead_after,
            max_record: session
                .max_frame_len
                .saturating_add(p2p_proto::frame::HEADER_LEN + RECORD_OVERHEAD),
            path,
            heartbeat,
        })
    }

    /// Send one frame (see [`SessionSender::send`]).
    pub async fn send(&self, frame: &Frame) -> Result<(), SessionError> {
        self.shared.send(std::slice::from_ref(frame)).await
    }

    /// A handle for sending from other tasks.
    pub fn sender(&self) -> SessionSender {
        SessionSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How the connection was made.
    pub fn path(&self) -> SessionPath {
        self.path
    }

    /// The next frame from the peer (heartbeats are consumed here, never returned).
    ///
    /// Cancel-safe: bytes read before a cancelled call stay buffered for the next one.
    /// After the first error every call returns that error.
    pub async fn recv(&mut self) -> Result<Frame, SessionError> {
        loop {
            if let Some(error) = self.shared.failure() {
                return Err(error);
            }
            match self.next_record() {
                Ok(Some(Frame::Heartbeat(_))) => continue,
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(error) => return Err(self.shared.fail(error)),
            }
            // Without spare room `read_buf` reads 64 bytes at a time: a small record would
            // cost several syscalls. Reserving reuses the buffer once earlier records are gone.
            self.buf.reserve(READ_CHUNK);
            let read = tokio::time::timeout(self.dead_after, self.reader.read_buf(&mut self.buf));
            let error = match read.await {
                Ok(Ok(0)) => SessionError::Closed,
                Ok(Ok(_)) => continue,
                Ok(Err(error)) => SessionError::Transit(error.to_string()),
                Err(_) => SessionError::PeerDead(self.dead_after),
            };
            return Err(self.shared.fail(error));
        }
    }

    /// Decode one complete record from the buffer, if there is one.
    fn next_record(&mut self) -> Result<Option<Frame>, SessionError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max_record {
            return Err(SessionError::Frame(FrameError::TooLarge {
                len,
                max: self.max_record,
            }));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        let mut body = self.buf.split_to(len);
        let plaintext = self.opener.open(&mut body)?;
        Ok(Some(Frame::decode(plaintext)?))
    }

    /// Stop heartbeats and close our direction; the peer's `recv` then sees `Closed`.
    pub async fn close(self) {
        self.heartbeat.abort();
        let mut writer = self.shared.writer.lock().await;
        let _ = writer.half.shutdown().await;
        drop(writer);
        self.shared.fail(SessionError::Closed);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.heartbeat.abort();
        // Senders still alive get `Closed`; the socket closes when the last one goes.
        self.shared.fail(SessionError::Closed);
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shared.done.cancelled() => return,
        }
        seq += 1;
        if shared
            .send(&[Frame::Heartbeat(Heartbeat { seq })])
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Rendezvous, PAKE, hint exchange and connection.
async fn establish(
    config: &WormholeConfig,
    code: &WormholeCode,
    role: SessionRole,
    session: &SessionConfig,
) -> Result<(tokio::net::TcpStream, SessionPath, SessionKeys), SessionError> {
    // Bind before the rendezvous so the address can go into our hints.
    let listener = match (role, session.listen) {
        (SessionRole::Follower, Some(addr)) => {
            if addr.ip().is_unspecified() {
                return Err(SessionError::Config(format!(
                    "listen address {addr} must be a concrete address the leader can reach"
                )));
            }
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|err| SessionError::Config(format!("listen on {addr}: {err}")))?,
            )
        }
        _ => None,
    };
    let ours = SessionHints {
        direct: match &listener {
            Some(listener) => vec![
                listener
                    .local_addr()
                    .map_err(|err| SessionError::Config(err.to_string()))?,
            ],
            None => Vec::new(),
        },
        relays: config.relay_urls.clone(),
    };
    let app = AppConfig {
        id: AppID::new(SESSION_APPID),
        rendezvous_url: config.mailbox_url.clone().into(),
        app_version: serde_json::json!({"session": 1}),
    };
    let mailbox =
        MailboxConnection::connect(app, crate::wormhole::code::to_crate(code), true).await?;
    let mut wormhole = Wormhole::connect(mailbox).await?;
    wormhole.send_json(&ours).await?;
    let theirs: SessionHints = wormhole
        .receive_json()
        .await?
        .map_err(|err| SessionError::Handshake(err.to_string()))?;
    let keys = SessionKeys::derive(wormhole.key());
    // The mailbox has done its job; free it on the server before connecting.
    if let Err(error) = wormhole.close().await {
        tracing::debug!(%error, "closing session mailbox failed");
    }
    let (stream, path) = match role {
        SessionRole::Leader => channel::connect_leader(&keys, &theirs, &ours.relays).await?,
        SessionRole::Follower => channel::connect_follower(&keys, listener, &theirs.relays).await?,
    };
    Ok((stream, path, keys))
}
