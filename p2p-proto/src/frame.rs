//! Data-plane frames: what client and worker exchange over a warm session.
//!
//! ```text
//!   +----------------+---------+-------------------------------+
//!   | length: u32 BE | version | body: MessagePack (rmp-serde) |
//!   +----------------+---------+-------------------------------+
//!        4 bytes       1 byte    length - 1 bytes
//! ```
//!
//! `length` counts the version byte and the body. The version byte is the frame format
//! ([`FORMAT_VERSION`]); a decoder refuses formats it does not know instead of misreading
//! them. Bodies are maps with named fields, so a newer peer may add fields that an older one
//! ignores. The session protocol version is negotiated separately by [`Hello`] frames.
//!
//! Payloads are [`Bytes`]: encoding copies them once into the output buffer, decoding once
//! out of it, never element by element.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::id::{FutureId, PeerId};
use crate::protocols::Protocols;

/// Frame format written in every header.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the body: length and version.
pub const HEADER_LEN: usize = 5;
/// Protocol ceiling for one frame (version byte and body). Decoders may be stricter.
pub const MAX_FRAME_LEN: usize = 1 << 30;
/// Session protocol versions this build speaks, oldest and newest.
pub const SESSION_VERSIONS: (u16, u16) = (1, 1);

/// A frame could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The frame is larger than the limit in force.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header announced a frame format this build does not know.
    #[error("unsupported frame format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedFormat(u8),
    /// A complete frame was expected but the input ended early.
    #[error("truncated frame: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes there were.
        available: usize,
    },
    /// A complete frame was expected but bytes follow it.
    #[error("{0} unexpected bytes after the frame")]
    TrailingBytes(usize),
    /// The header announced an empty frame, which has no version byte.
    #[error("frame with zero length")]
    Empty,
    /// The body is not a frame of this protocol.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// The value could not be serialised.
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The two sides share no session protocol version.
    #[error("no common session protocol version: ours {ours:?}, theirs {theirs:?}")]
    NoCommonVersion {
        /// Our (lowest, highest) frame version.
        ours: (u16, u16),
        /// The peer's (lowest, highest) frame version.
        theirs: (u16, u16),
    },
}

/// One message on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame each way: versions and protocols.
    Hello(Hello),
    /// Run this payload.
    Task(Task),
    /// The outcome of a task.
    Result(TaskResult),
    /// Liveness; a peer that sends none for a while is dead.
    Heartbeat(Heartbeat),
    /// Stop working on a task (client to worker).
    Cancel(Cancel),
    /// A progress update of a running task (worker to client), e.g. an R condition.
    Progress(Progress),
    /// The worker started a task (worker to client; only when both hellos list
    /// [`crate::protocols::SLOTS`]). Until then the task waits on the worker and the client
    /// may take it back with a [`Cancel`].
    Started(Started),
}

/// Opens a session: who the peer is and what it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Oldest session protocol version the sender speaks.
    pub min_version: u16,
    /// Newest session protocol version the sender speaks.
    pub max_version: u16,
    /// The sender's board identity.
    pub peer: PeerId,
    /// Further capabilities, as on the board.
    pub protocols: Protocols,
}

impl Hello {
    /// A hello for this build's versions.
    pub fn new(peer: PeerId, protocols: Protocols) -> Self {
        Hello {
            min_version: SESSION_VERSIONS.0,
            max_version: SESSION_VERSIONS.1,
            peer,
            protocols,
        }
    }

    /// The newest version both hellos accept.
    pub fn negotiate(&self, theirs: &Hello) -> Result<u16, FrameError> {
        let low = self.min_version.max(theirs.min_version);
        let high = self.max_version.min(theirs.max_version);
        if low <= high {
            Ok(high)
        } else {
            Err(FrameError::NoCommonVersion {
                ours: (self.min_version, self.max_version),
                theirs: (theirs.min_version, theirs.max_version),
            })
        }
    }
}

/// A task: the future's id and its serialized payload (RDS for R, opaque for Rust).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The future the payload belongs to.
    pub future: FutureId,
    /// The serialized future (RDS for R, opaque for Rust).
    pub payload: Bytes,
}

/// The outcome of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The future this is the outcome of.
    pub future: FutureId,
    /// Its value, or why there is none.
    pub outcome: Outcome,
}

/// What a task produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The serialized result (for R, the `FutureResult`; it carries R-level errors itself).
    Value(Bytes),
    /// The worker could not produce a result.
    Error(RemoteError),
}

/// Why a worker produced no result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{kind:?}: {message}")]
pub struct RemoteError {
    /// What kind of failure, for the retry policy and for R.
    pub kind: RemoteErrorKind,
    /// Human-readable explanation for the user who submitted the task.
    pub message: String,
}

/// Classes of worker-side failure; the client's retry policy depends on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RemoteErrorKind {
    /// The worker does not take tasks from this client (allowlist).
    Refused,
    /// The payload exceeds the worker's size limit.
    PayloadTooLarge,
    /// The task ran past the worker's time limit.
    TimeLimit,
    /// The task was cancelled.
    Cancelled,
    /// The evaluator crashed (and was restarted) while running the task.
    Crashed,
    /// The evaluator could not run the payload (e.g. incompatible versions).
    Unsupported,
    /// Anything else the executor reported.
    Failed,
}

/// Liveness signal with a sequence number, so a peer can tell how many it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Counts up from 0 on each side.
    pub seq: u64,
}

/// Asks the worker to stop a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The task to stop.
    pub future: FutureId,
}

/// An intermediate update from a running task, relayed to the client as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The running task.
    pub future: FutureId,
    /// The update (for R, a serialized condition).
    pub payload: Bytes,
}

/// A task left the worker's queue and runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The task.
    pub future: FutureId,
}

impl Frame {
    /// The frame's kind in words, for error messages and logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Task(_) => "task",
            Frame::Result(_) => "result",
            Frame::Heartbeat(_) => "heartbeat",
            Frame::Cancel(_) => "cancel",
            Frame::Progress(_) => "progress",
            Frame::Started(_) => "started",
        }
    }

    /// Encodes the frame, header included, into a new buffer.
    pub fn encode(&self) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::new();
        self.encode_into(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends the encoded frame, header included, to `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut) -> Result<(), FrameError> {
        let start = buf.len();
        buf.reserve(HEADER_LEN + self.payload_len() + 128);
        buf.put_u32(0);
        buf.put_u8(FORMAT_VERSION);
        let mut writer = buf.writer();
        let encoded = rmp_serde::encode::write_named(&mut writer, self);
        let buf = writer.into_inner();
        if let Err(err) = encoded {
            buf.truncate(start);
            return Err(FrameError::Encode(err.to_string()));
        }
        let len = buf.len() - start - 4;
        if len > MAX_FRAME_LEN {
            buf.truncate(start);
            return Err(FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        // Cannot truncate: MAX_FRAME_LEN < u32::MAX.
        buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Decodes exactly one complete frame, header included.
    pub fn decode(frame: &[u8]) -> Result<Frame, FrameError> {
        let len = frame_len(frame, MAX_FRAME_LEN)?.ok_or(FrameError::Truncated {
            needed: HEADER_LEN,
            available: frame.len(),
        })?;
        let needed = 4 + len;
        match frame.len().cmp(&needed) {
            std::cmp::Ordering::Less => Err(FrameError::Truncated {
                needed,
                available: frame.len(),
            }),
            std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes(frame.len() - needed)),
            std::cmp::Ordering::Equal => decode_body(&frame[4..]),
        }
    }

    /// Bytes of payload the frame carries (for buffer sizing).
    fn payload_len(&self) -> usize {
        match self {
            Frame::Task(task) => task.payload.len(),
            Frame::Result(TaskResult {
                outcome: Outcome::Value(value),
                ..
            }) => value.len(),
            Frame::Progress(progress) => progress.payload.len(),
            _ => 0,
        }
    }
}

/// Reads the length from a header; `None` when the header is incomplete.
fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Decodes version byte + body.
fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
    let (&version, body) = body.split_first().ok_or(FrameError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(FrameError::UnsupportedFormat(version));
    }
    rmp_serde::from_slice(body).map_err(|err| FrameError::Malformed(err.to_string()))
}

/// Cuts frames out of a byte stream (e.g. a TCP or transit connection).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_frame_len` (capped at [`MAX_FRAME_LEN`]).
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len: max_frame_len.min(MAX_FRAME_LEN),
        }
    }

    /// The limit in force.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Takes the next complete frame off the front of `buf`, or `None` if more bytes are
    /// needed. An over-long length is refused as soon as the header is in, before the body
    /// is buffered. After an error the stream is out of sync and must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(len) = frame_len(buf, self.max_frame_len)? else {
            return Ok(None);
        };
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        let body = buf.split_to(len);
        decode_body(&body).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer() -> PeerId {
        "alice@host:42".parse().unwrap()
    }

    fn future() -> FutureId {
        "abc-1".parse().unwrap()
    }

    #[test]
    fn task_round_trip_and_header() {
        let frame = Frame::Task(Task {
            future: future(),
            payload: Bytes::from_static(b"payload"),
        });
        let bytes = frame.encode().unwrap();
        assert_eq!(bytes[4], FORMAT_VERSION);
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn stream_decoder_waits_for_complete_frames() {
        let frames = [
            Frame::Hello(Hello::new(peer(), Protocols::ours())),
            Frame::Heartbeat(Heartbeat { seq: 7 }),
            Frame::Cancel(Cancel { future: future() }),
        ];
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode_into(&mut stream).unwrap();
        }
        let mut decoder = FrameDecoder::default();
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        for byte in stream.iter() {
            input.put_u8(*byte);
            while let Some(frame) = decoder.decode(&mut input).unwrap() {
                out.push(frame);
            }
        }
        assert_eq!(out, frames);
        assert!(input.is_empty());
    }

    #[test]
    fn typed_errors_for_bad_input() {
        let mut decoder = FrameDecoder::new(16);
        let mut big = BytesMut::from(&[0, 0, 1, 0, 1][..]);
        assert_eq!(
            decoder.decode(&mut big),
            Err(FrameError::TooLarge { len: 256, max: 16 })
        );
        assert_eq!(
            decoder.decode(&mut BytesMut::from(&[0, 0, 0, 0][..])),
            Err(FrameError::Empty)
        );
        assert_eq!(
            decoder.decode(&mut BytesMut::from(&[0, 0, 0, 2, 9, 0][..])),
            Err(FrameError::UnsupportedFormat(9))
        );
        assert!(matches!(
            decoder.decode(&mut BytesMut::from(&[0, 0, 0, 3, 1, 0xc1, 0xc1][..])),
            Err(FrameError::Malformed(_))
        ));
        let good = Frame::Heartbeat(Heartbeat { seq: 1 }).encode().unwrap();
        assert!(matches!(
            Frame::decode(&good[..good.len() - 1]),
            Err(FrameError::Truncated { .. })
        ));
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(Frame::decode(&long), Err(FrameError::TrailingBytes(1)));
        assert!(matches!(
            Frame::decode(&[0, 0]),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn invalid_ids_inside_a_frame_are_malformed() {
        // A well-formed MessagePack body whose future id breaks the id rules.
        let frame = Frame::Cancel(Cancel { future: future() }).encode().unwrap();
        let mut bytes = frame.to_vec();
        let at = bytes.windows(5).position(|w| w == b"abc-1").unwrap();
        bytes[at + 3] = b',';
        assert!(matches!(
            Frame::decode(&bytes),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn version_negotiation() {
        let ours = Hello::new(peer(), Protocols::ours());
        let mut theirs = ours.clone();
        theirs.max_version = 5;
        assert_eq!(ours.negotiate(&theirs), Ok(1));
        theirs.min_version = 2;
        assert!(matches!(
            ours.negotiate(&theirs),
            Err(FrameError::NoCommonVersion { .. })
        ));
    }

    fn arb_future() -> impl Strategy<Value = FutureId> {
        "[a-z0-9-]{1,40}".prop_map(|s| s.parse().unwrap())
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let kind = prop_oneof![
            Just(RemoteErrorKind::Refused),
            Just(RemoteErrorKind::PayloadTooLarge),
            Just(RemoteErrorKind::TimeLimit),
            Just(RemoteErrorKind::Cancelled),
            Just(RemoteErrorKind::Crashed),
            Just(RemoteErrorKind::Unsupported),
            Just(RemoteErrorKind::Failed),
        ];
        prop_oneof![
            (
                "[a-z0-9]{1,20}",
                "[a-z0-9.-]{1,20}",
                any::<u32>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(user, host, pid, min_version, max_version)| Frame::Hello(
                    Hello {
                        min_version,
                        max_version,
                        peer: PeerId::new(&user, &host, pid).unwrap(),
                        protocols: Protocols::ours(),
                    }
                )),
            (arb_future(), arb_bytes())
                .prop_map(|(future, payload)| Frame::Task(Task { future, payload })),
            (arb_future(), arb_bytes()).prop_map(|(future, value)| Frame::Result(TaskResult {
                future,
                outcome: Outcome::Value(value)
            })),
            (arb_future(), kind, "\\PC{0,50}").prop_map(|(future, kind, message)| Frame::Result(
                TaskResult {
                    future,
                    outcome: Outcome::Error(RemoteError { kind, message })
                }
            )),
            any::<u64>().prop_map(|seq| Frame::Heartbeat(Heartbeat { seq })),
            arb_future().prop_map(|future| Frame::Cancel(Cancel { future })),
            (arb_future(), arb_bytes())
                .prop_map(|(future, payload)| Frame::Progress(Progress { future, payload })),
            arb_future().prop_map(|future| Frame::Started(Started { future })),
        ]
    }

    proptest! {
        #[test]
        fn every_frame_round_trips(frame in arb_frame()) {
            let bytes = frame.encode().unwrap();
            prop_assert_eq!(Frame::decode(&bytes).unwrap(), frame.clone());
            let mut stream = BytesMut::from(&bytes[..]);
            prop_assert_eq!(FrameDecoder::default().decode(&mut stream).unwrap(), Some(frame));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&bytes);
            let mut stream = BytesMut::from(&bytes[..]);
            let mut decoder = FrameDecoder::new(1024);
            while let Ok(Some(_)) = decoder.decode(&mut stream) {}
        }

        #[test]
        fn corrupted_frames_never_panic(frame in arb_frame(), at in any::<usize>(), byte: u8) {
            let mut bytes = frame.encode().unwrap().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            let _ = Frame::decode(&bytes);
        }
    }
}
