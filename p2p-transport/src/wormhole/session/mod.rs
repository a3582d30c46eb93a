//! Warm sessions: one PAKE, then a long-lived encrypted channel carrying p2p-proto
//! [`Frame`]s both ways, so a client and a worker exchange many tasks and results without
//! a new rendezvous.
//!
//! Set-up: both peers claim the code's nameplate under this project's own appid (sessions
//! are negotiated through `protocols` on the board, so only our peers ever join), run the
//! PAKE, swap connection hints (and record versions) as one encrypted mailbox message,
//! connect (see [`channel`]: direct if the follower listens, else via the leader's relays)
//! and close the mailbox.
//!
//! Data: frames go out as one byte stream cut into encrypted records of bounded size; a
//! frame's payload follows its head as bulk (see [`p2p_proto::frame`]), written straight
//! from the sender's buffer and handed on by the receiver piece by piece. Memory per
//! session is a few records each way, whatever the payload size:
//! - [`Session::recv`] returns whole frames (a result's value is gathered as it arrives);
//! - [`Session::recv_incoming`] returns a task as soon as its head is in, its payload an
//!   [`IncomingPayload`] that fills as records arrive, so a worker can start feeding it to
//!   its executor before the last byte is there.
//!
//! Payloads larger than [`SessionConfig::max_payload`] are refused from their announced
//! size and their bytes dropped unread: a task is handed on as refused (the worker answers
//! `PayloadTooLarge`), a result becomes that error, a progress update is dropped.
//!
//! Liveness: a background task sends [`Frame::Heartbeat`] every `heartbeat_interval`;
//! receiving reports [`SessionError::PeerDead`] when nothing (frames or heartbeats)
//! arrives for `dead_after`. Sending and receiving are independent (a [`SessionSender`] per
//! task), so two peers pushing large frames at each other do not deadlock as long as each
//! keeps receiving.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use magic_wormhole::{AppConfig, AppID, MailboxConnection, Wormhole};
use p2p_proto::frame::{
    Decoded, Frame, FrameDecoder, FrameError, Heartbeat, Outcome, RemoteError, RemoteErrorKind,
    TaskResult,
};
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod channel;
mod error;
mod outgoing;
mod payload;
mod pool;

pub use self::channel::{SessionPath, SessionRole};
pub use self::error::SessionError;
pub use self::outgoing::{Outbound, Outgoing};
pub use self::payload::{IncomingPayload, IncomingTask, PayloadError};

use self::channel::{
    LENGTH, MAX_RECORD_PLAINTEXT, Opener, RECORDS_VERSION, Sealer, SessionHints, SessionKeys,
};
use self::pool::PiecePool;
use crate::payload::{FilePayload, Payload};
use crate::wormhole::config::WormholeConfig;
use crate::wormhole::meter::{Meter, Way};
use p2p_proto::id::WormholeCode;

/// Room made for a read while a payload arrives (more than a record, so a read brings
/// several): few system calls per megabyte.
const READ_CHUNK: usize = 256 << 10;
/// Room made for a read between payloads: small frames need little.
const SMALL_READ: usize = 16 << 10;
/// Bytes read in one receive call before it gives the rest of its task a turn.
const YIELD_AFTER: usize = 1 << 20;
/// Bytes of a streamed payload handed on but not yet consumed beyond which the session
/// stops reading until its consumer catches up (TCP then slows the sender): a worker
/// whose command or R reads slower than the network holds this much, not the payload.
const STREAM_AHEAD: usize = 8 << 20;

/// Sealed records are written out once this many bytes are ready: a few records per
/// system call, each write bounded by the stall limit.
const WRITE_CHUNK: usize = 512 << 10;

/// A write buffer larger than this is let go after the send that grew it.
const IDLE_BUFFER: usize = 64 << 10;

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
    /// Largest payload (task, result or progress update) accepted from the peer, in bytes.
    pub max_payload: u64,
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
            max_payload: DEFAULT_MAX_PAYLOAD,
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
    /// Payload bytes sent and received, for progress displays.
    meter: Meter,
}

struct Writer {
    half: OwnedWriteHalf,
    sealer: Sealer,
    /// Sealed records waiting to be written, then the record being filled.
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

    async fn send<T: Outbound>(&self, frames: &[T]) -> Result<(), SessionError> {
        // Encode every head first, so a frame that cannot be encoded fails the call
        // before a byte of it is on the wire.
        let mut heads = BytesMut::new();
        let mut parts = Vec::with_capacity(frames.len());
        for frame in frames {
            let start = heads.len();
            let payload = frame.encode_head(&mut heads)?;
            parts.push((start..heads.len(), payload));
        }
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let mut writer = self.writer.lock().await;
        let Writer { half, sealer, buf } = &mut *writer;
        buf.clear();
        let mut records = Records {
            buf: &mut *buf,
            sealer,
            open: None,
        };
        // Several small frames share a record and leave in one write (and, when small,
        // one segment): under load that is one syscall for many tasks. A payload goes into
        // records a piece at a time, written out as they fill, never copied whole; one
        // kept in a file is read straight into the record it goes out in.
        for (head, payload) in &parts {
            let mut rest = &heads[head.clone()];
            while !rest.is_empty() {
                rest = &rest[records.push(rest)?..];
                if records.full() {
                    self.write(half, records.buf).await?;
                    records.buf.clear();
                }
            }
            if payload.is_empty() {
                continue;
            }
            self.meter.begin(Way::Sending, payload.len());
            let mut sent = 0u64;
            while sent < payload.len() {
                let taken = match payload {
                    // Cannot truncate: a payload in memory is smaller than usize::MAX.
                    Payload::Memory(bytes) => records.push(&bytes[sent as usize..])?,
                    Payload::File(file) => records
                        .push_from_file(file, sent, payload.len() - sent)
                        // Part of the frame may be on the wire: the stream is broken.
                        .map_err(|error| self.fail(error))?,
                };
                sent += taken as u64;
                self.meter.add(Way::Sending, taken as u64);
                if records.full() {
                    self.write(half, records.buf).await?;
                    records.buf.clear();
                }
            }
        }
        records.seal()?;
        let written = self.write(half, records.buf).await;
        // An idle session keeps no large buffer.
        if buf.capacity() > IDLE_BUFFER {
            *buf = Vec::new();
        }
        written
    }

    /// Writes sealed records. Each write is bounded, so a peer that stops reading (hung,
    /// or dead without closing) fails the send instead of blocking it forever.
    async fn write(&self, half: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), SessionError> {
        match tokio::time::timeout(self.stall_limit, half.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.fail(SessionError::Transit(error.to_string()))),
            Err(_) => Err(self.fail(SessionError::PeerDead(self.stall_limit))),
        }
    }
}

/// Cuts a stream of plaintext into sealed records in a buffer.
struct Records<'a> {
    buf: &'a mut Vec<u8>,
    sealer: &'a mut Sealer,
    /// Where the record being filled starts.
    open: Option<usize>,
}

impl Records<'_> {
    /// Room left in the record being filled, opening one if none is.
    fn room(&mut self) -> usize {
        let start = *self.open.get_or_insert_with(|| {
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0; LENGTH]);
            start
        });
        MAX_RECORD_PLAINTEXT - (self.buf.len() - start - LENGTH)
    }

    /// Appends as much of `bytes` as the open record takes, sealing it once full; returns
    /// how much was taken.
    fn push(&mut self, bytes: &[u8]) -> Result<usize, SessionError> {
        let room = self.room();
        let now = &bytes[..room.min(bytes.len())];
        self.buf.extend_from_slice(now);
        if now.len() == room {
            self.seal()?;
        }
        Ok(now.len())
    }

    /// Reads as much of `file`'s bytes from `offset` (at most `left`) as the open record
    /// takes into it, sealing it once full; returns how much was read. A blocking read of
    /// at most one record, mostly from the page cache (the file was just written): a
    /// round trip to a blocking thread per record would cost more than it spares.
    fn push_from_file(
        &mut self,
        file: &FilePayload,
        offset: u64,
        left: u64,
    ) -> Result<usize, SessionError> {
        let room = self.room();
        let take = usize::try_from(left).map_or(room, |left| left.min(room));
        let at = self.buf.len();
        self.buf.resize(at + take, 0);
        file.read_at(&mut self.buf[at..], offset).map_err(|error| {
            SessionError::Transit(format!(
                "reading the payload being sent from its file: {error}"
            ))
        })?;
        if take == room {
            self.seal()?;
        }
        Ok(take)
    }

    /// Whether the sealed records are worth a write (no record is half filled).
    fn full(&self) -> bool {
        self.open.is_none() && self.buf.len() >= WRITE_CHUNK
    }

    fn seal(&mut self) -> Result<(), SessionError> {
        match self.open.take() {
            Some(start) => self.sealer.seal_record(self.buf, start),
            None => Ok(()),
        }
    }
}

/// Where the bytes of the payload being received go.
enum Sink {
    /// No payload in progress.
    Idle,
    /// Gathered into the frame, which is handed out when complete.
    Gather(Frame, BytesMut),
    /// Handed on piece by piece to an [`IncomingPayload`], each in a buffer of the pool.
    Stream(mpsc::UnboundedSender<Bytes>, Arc<PiecePool>),
    /// Dropped: refused for its size, or its consumer has gone.
    Drop,
}

/// A frame head whose payload follows, before the session decided where the payload goes.
enum Step {
    /// A frame, complete.
    Frame(Frame),
    /// A task whose payload of this many bytes follows.
    Task(p2p_proto::frame::Task, u64),
}

/// What [`Session::recv_incoming`] returns.
#[derive(Debug)]
pub enum Incoming {
    /// A complete frame (anything but a task).
    Frame(Frame),
    /// A task, its payload arriving.
    Task(IncomingTask),
}

/// An open session. Receive with [`Session::recv`] or [`Session::recv_incoming`], send with
/// [`Session::send`] or a cloned [`SessionSender`]. Dropping it closes the connection
/// abruptly.
pub struct Session {
    shared: Arc<Shared>,
    reader: OwnedReadHalf,
    opener: Opener,
    /// What was read, in one buffer used over and over (fresh memory for every read would
    /// cost a page fault per page): opened records, then sealed ones and the start of the
    /// next. Let go between payloads once it has grown, so an idle session holds little.
    recv: Vec<u8>,
    /// The plaintext of the last opened record not yet taken, a range of `recv`.
    unread: std::ops::Range<usize>,
    /// Where the next sealed record starts in `recv`.
    sealed_at: usize,
    /// A frame head being put together (heads may span records).
    head: BytesMut,
    decoder: FrameDecoder,
    sink: Sink,
    /// Buffers of the pieces of streamed payloads.
    pieces: Arc<PiecePool>,
    /// Whether reading still waits for a slow consumer of the payload streaming in. Spent
    /// after half of `dead_after` without progress (a consumer that does not read, e.g. a
    /// task waiting behind another): the payload is then buffered, so the sender, whose
    /// writes must progress within `dead_after`, never takes a slow consumer for a dead
    /// peer.
    patience: bool,
    dead_after: Duration,
    max_payload: u64,
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

    /// Send several frames in order, in as few writes as their size allows.
    pub async fn send_all<T: Outbound>(&self, frames: &[T]) -> Result<(), SessionError> {
        self.shared.send(frames).await
    }

    /// Sends the frames queued on `frames` in order until the queue closes, several per
    /// write when they pile up (what one round of a driver queues leaves together). Stops
    /// when the session fails: its reader reports the end.
    pub async fn send_queued<T: Outbound>(self, mut frames: mpsc::UnboundedReceiver<T>) {
        let mut batch = Vec::new();
        while let Some(frame) = frames.recv().await {
            batch.push(frame);
            while batch.len() < 256 {
                match frames.try_recv() {
                    Ok(frame) => batch.push(frame),
                    Err(_) => break,
                }
            }
            if self.send_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
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
            meter: Meter::default(),
        });
        let heartbeat = tokio::spawn(heartbeat_loop(
            Arc::clone(&shared),
            session.heartbeat_interval,
        ));
        Ok(Session {
            shared,
            reader,
            opener: Opener::new(&recv_key),
            recv: Vec::new(),
            unread: 0..0,
            sealed_at: 0,
            head: BytesMut::new(),
            decoder: FrameDecoder::default(),
            sink: Sink::Idle,
            pieces: Arc::default(),
            patience: false,
            dead_after: session.dead_after,
            max_payload: session.max_payload,
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

    /// The payloads moving each way on this session, as far as they have got.
    pub fn meter(&self) -> Meter {
        self.shared.meter.clone()
    }

    /// How the connection was made.
    pub fn path(&self) -> SessionPath {
        self.path
    }

    /// The next frame from the peer, payload complete (heartbeats are consumed here, never
    /// returned). A task's payload is gathered here too; a worker that wants to start on
    /// it early uses [`Session::recv_incoming`].
    ///
    /// Cancel-safe: bytes read before a cancelled call stay buffered for the next one.
    /// After the first error every call returns that error.
    pub async fn recv(&mut self) -> Result<Frame, SessionError> {
        loop {
            match self.next_step().await? {
                Step::Frame(frame) => return Ok(frame),
                Step::Task(task, 0) => return Ok(Frame::Task(task)),
                Step::Task(task, len) if len > self.max_payload => {
                    self.sink = Sink::Drop;
                    let error = SessionError::Frame(FrameError::TooLarge {
                        len: usize::try_from(len).unwrap_or(usize::MAX),
                        max: usize::try_from(self.max_payload).unwrap_or(usize::MAX),
                    });
                    tracing::debug!(future = %task.future, %error, "refusing a task");
                    return Err(self.fail(error));
                }
                Step::Task(task, _) => self.sink = gather(Frame::Task(task)),
            }
        }
    }

    /// The next frame from the peer, a task as soon as its head is in: its payload
    /// arrives in the [`IncomingPayload`] as far as it is already here, the rest while
    /// this session keeps being received from (heartbeats are consumed here, never
    /// returned). So a consumer of a large payload polls this beside it, as a worker does
    /// while its task runs.
    ///
    /// Cancel-safe, like [`Session::recv`].
    pub async fn recv_incoming(&mut self) -> Result<Incoming, SessionError> {
        match self.next_step().await? {
            Step::Frame(frame) => Ok(Incoming::Frame(frame)),
            Step::Task(task, 0) => Ok(Incoming::Task(IncomingTask {
                future: task.future,
                payload: IncomingPayload::from(task.payload),
            })),
            Step::Task(task, len) if len > self.max_payload => {
                self.sink = Sink::Drop;
                Ok(Incoming::Task(IncomingTask {
                    future: task.future,
                    payload: IncomingPayload::too_large(len, self.max_payload),
                }))
            }
            Step::Task(task, len) => {
                let (payload, pieces) = IncomingPayload::stream(len);
                self.pieces.set_active(true);
                self.sink = Sink::Stream(pieces, Arc::clone(&self.pieces));
                self.patience = true;
                // What is already here goes along at once: a small payload is complete
                // when its task is handed on.
                if let Err(error) = self.route_buffered_payload() {
                    return Err(self.fail(error));
                }
                Ok(Incoming::Task(IncomingTask {
                    future: task.future,
                    payload,
                }))
            }
        }
    }

    /// Reads until a frame is complete or a task's head is in.
    async fn next_step(&mut self) -> Result<Step, SessionError> {
        let mut read_since_yield = 0;
        loop {
            if let Some(error) = self.shared.failure() {
                return Err(error);
            }
            match self.step() {
                Ok(Some(step)) => return Ok(step),
                Ok(None) => {}
                Err(error) => return Err(self.fail(error)),
            }
            // While a payload streams in faster than its consumer is polled (often in the
            // same task, e.g. a worker's select over its job and this session), let the
            // consumer run now and then: what is buffered stays a few pieces, not what the
            // socket can deliver before the runtime forces a yield.
            if read_since_yield >= YIELD_AFTER {
                read_since_yield = 0;
                tokio::task::yield_now().await;
            }
            self.wait_for_consumer().await;
            self.make_room();
            let read = tokio::time::timeout(self.dead_after, self.reader.read_buf(&mut self.recv));
            let error = match read.await {
                Ok(Ok(0)) => SessionError::Closed,
                Ok(Ok(read)) => {
                    read_since_yield += read;
                    continue;
                }
                Ok(Err(error)) => SessionError::Transit(error.to_string()),
                Err(_) => SessionError::PeerDead(self.dead_after),
            };
            return Err(self.fail(error));
        }
    }

    /// While a payload streams to a consumer that has more than [`STREAM_AHEAD`] bytes of
    /// it to catch up on, waits (not reading) until it is down to half of that. Nothing
    /// else can arrive meanwhile: the rest of the payload comes first on the wire.
    /// Cancel-safe: it only waits.
    async fn wait_for_consumer(&mut self) {
        if !self.patience || !matches!(self.sink, Sink::Stream(..)) {
            return;
        }
        if self.pieces.outstanding() <= STREAM_AHEAD {
            return;
        }
        let drained = self.pieces.drained_to(STREAM_AHEAD / 2);
        if tokio::time::timeout(self.dead_after / 2, drained)
            .await
            .is_err()
        {
            tracing::debug!(
                outstanding = self.pieces.outstanding(),
                "the payload's consumer does not keep up; buffering the rest"
            );
            self.patience = false;
        }
    }

    /// Records the session's first failure; a payload in progress ends with it.
    fn fail(&mut self, error: SessionError) -> SessionError {
        self.sink = Sink::Idle;
        self.pieces.set_active(false);
        self.shared.fail(error)
    }

    /// Decodes what is buffered: a frame or task head when one is complete, routing
    /// payload pieces to where they go on the way.
    fn step(&mut self) -> Result<Option<Step>, SessionError> {
        loop {
            // Payload bytes go from the opened record straight to their sink.
            if self.decoder.in_payload() {
                if self.unread.is_empty() && !self.open_record()? {
                    return Ok(None);
                }
                let (take, remaining) = self.decoder.take_payload(self.unread.len());
                let piece = self.unread.start..self.unread.start + take;
                self.unread.start += take;
                self.shared.meter.add(Way::Receiving, take as u64);
                if let Some(frame) = route(&mut self.sink, &self.recv[piece], remaining)? {
                    return Ok(Some(Step::Frame(frame)));
                }
                continue;
            }
            // A head is put together from as many bytes as it needs.
            let wanted = self.decoder.wanted(&self.head);
            if wanted > 0 {
                if self.unread.is_empty() && !self.open_record()? {
                    return Ok(None);
                }
                let take = wanted.min(self.unread.len());
                let bytes = self.unread.start..self.unread.start + take;
                self.head.extend_from_slice(&self.recv[bytes]);
                self.unread.start += take;
                continue;
            }
            let Some(decoded) = self.decoder.decode(&mut self.head)? else {
                return Ok(None);
            };
            if let Decoded::Frame { bulk, .. } = &decoded
                && *bulk > 0
            {
                self.shared.meter.begin(Way::Receiving, *bulk);
            }
            match decoded {
                Decoded::Frame {
                    frame: Frame::Heartbeat(_),
                    ..
                } => {}
                Decoded::Frame {
                    frame: Frame::Task(task),
                    bulk,
                } => return Ok(Some(Step::Task(task, bulk))),
                Decoded::Frame { frame, bulk: 0 } => return Ok(Some(Step::Frame(frame))),
                Decoded::Frame { frame, bulk } if bulk > self.max_payload => {
                    self.sink = Sink::Drop;
                    if let Some(refused) = refused(frame, bulk, self.max_payload) {
                        return Ok(Some(Step::Frame(refused)));
                    }
                }
                Decoded::Frame { frame, .. } => self.sink = gather(frame),
                // Never with heads taken a byte count at a time, but routed all the same.
                Decoded::Bulk { bytes, remaining } => {
                    if let Some(frame) = route(&mut self.sink, &bytes, remaining)? {
                        return Ok(Some(Step::Frame(frame)));
                    }
                }
            }
        }
    }

    /// Routes the payload bytes already read (not reading more), up to the payload's end.
    fn route_buffered_payload(&mut self) -> Result<(), SessionError> {
        while self.decoder.in_payload() && (!self.unread.is_empty() || self.open_record()?) {
            let (take, remaining) = self.decoder.take_payload(self.unread.len());
            let piece = self.unread.start..self.unread.start + take;
            self.unread.start += take;
            self.shared.meter.add(Way::Receiving, take as u64);
            // A streamed payload is never gathered into a frame.
            route(&mut self.sink, &self.recv[piece], remaining)?;
        }
        Ok(())
    }

    /// Opens the next complete record in `recv` in place; false if more bytes are needed.
    fn open_record(&mut self) -> Result<bool, SessionError> {
        let sealed = &self.recv[self.sealed_at..];
        let Some(header) = sealed.first_chunk::<LENGTH>() else {
            return Ok(false);
        };
        let len = Opener::record_len(*header)?;
        if sealed.len() < LENGTH + len {
            return Ok(false);
        }
        let body = self.sealed_at + LENGTH..self.sealed_at + LENGTH + len;
        let plaintext = self.opener.open(&mut self.recv[body.clone()])?;
        self.unread = body.start..body.start + plaintext;
        self.sealed_at = body.end;
        Ok(true)
    }

    /// Before a read: drops what was consumed, lets a grown buffer go between payloads,
    /// and makes room for the record in progress and a read. Room is made as bytes
    /// arrive, never for a record's announced length ahead.
    fn make_room(&mut self) {
        let consumed = if self.unread.is_empty() {
            self.sealed_at
        } else {
            self.unread.start
        };
        if consumed == self.recv.len() {
            if !self.decoder.in_payload() && self.recv.capacity() > 2 * READ_CHUNK {
                self.recv = Vec::new();
            }
            self.recv.clear();
        } else if self.recv.capacity() - self.recv.len() < READ_CHUNK {
            // What is left (less than a record) moves to the front.
            self.recv.drain(..consumed);
        } else {
            return self.reserve_read();
        }
        let shift = |at: usize| at.saturating_sub(consumed);
        self.unread = shift(self.unread.start)..shift(self.unread.end);
        self.sealed_at = shift(self.sealed_at);
        self.reserve_read();
    }

    /// Room for the rest of the record in progress, or for a read.
    fn reserve_read(&mut self) {
        let partial = self.recv.len() - self.sealed_at;
        let rest_of_record = self.recv[self.sealed_at..]
            .first_chunk::<LENGTH>()
            .and_then(|header| Opener::record_len(*header).ok())
            .map_or(0, |len| (LENGTH + len).saturating_sub(partial));
        let read = if self.decoder.in_payload() || rest_of_record > 0 {
            READ_CHUNK
        } else {
            SMALL_READ
        };
        self.recv.reserve(read.max(rest_of_record));
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

/// Routes one payload piece; the frame once its payload is gathered in full.
fn route(sink: &mut Sink, piece: &[u8], remaining: u64) -> Result<Option<Frame>, SessionError> {
    match sink {
        Sink::Gather(_, gathered) => gathered.extend_from_slice(piece),
        Sink::Stream(pieces, pool) => {
            if pieces.send(pool.piece(piece)).is_err() {
                // Its consumer has gone (a cancelled task): drop the rest unread.
                pool.set_active(false);
                *sink = Sink::Drop;
            }
        }
        Sink::Drop => {}
        Sink::Idle => {
            return Err(SessionError::Transit(
                "payload bytes without a frame".into(),
            ));
        }
    }
    if remaining > 0 {
        return Ok(None);
    }
    match std::mem::replace(sink, Sink::Idle) {
        Sink::Gather(mut frame, gathered) => {
            frame.attach_payload(gathered.freeze())?;
            Ok(Some(frame))
        }
        Sink::Stream(_, pool) => {
            pool.set_active(false);
            Ok(None)
        }
        Sink::Drop | Sink::Idle => Ok(None),
    }
}

/// Gathers the payload of `frame` as it arrives.
fn gather(frame: Frame) -> Sink {
    Sink::Gather(frame, BytesMut::new())
}

/// What becomes of a frame whose payload of `len` bytes exceeds `max`: a result turns into
/// the error it is for its task; a progress update is dropped.
fn refused(frame: Frame, len: u64, max: u64) -> Option<Frame> {
    match frame {
        Frame::Result(TaskResult { future, .. }) => Some(Frame::Result(TaskResult {
            future,
            outcome: Outcome::Error(RemoteError {
                kind: RemoteErrorKind::PayloadTooLarge,
                message: format!(
                    "the result of {len} bytes exceeds this client's limit of {max} bytes"
                ),
            }),
        })),
        other => {
            tracing::debug!(
                kind = other.kind_name(),
                len,
                max,
                "dropping an oversized frame"
            );
            None
        }
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
        records: RECORDS_VERSION,
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
    theirs.check_version()?;
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
