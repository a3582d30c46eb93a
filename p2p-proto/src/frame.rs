//! Data-plane frames: what client and worker exchange over a warm session.
//!
//! ```text
//!   +----------------+---------+--------------+-------------------------------+ +------------+
//!   | length: u32 BE | version | bulk: u64 BE | body: MessagePack (rmp-serde) | | bulk bytes |
//!   +----------------+---------+--------------+-------------------------------+ +------------+
//!        4 bytes       1 byte      8 bytes          length - 9 bytes             `bulk` bytes
//! ```
//!
//! `length` counts the version byte, the bulk field and the body. The version byte is the
//! frame format ([`FORMAT_VERSION`]); a decoder refuses formats it does not know instead of
//! misreading them. Bodies are maps with named fields, so a newer peer may add fields that
//! an older one ignores. The session protocol version is negotiated separately by
//! [`Hello`] frames.
//!
//! The payload of a frame (a task's payload, a result's value, a progress update) is not
//! inside the MessagePack body, which carries it empty: its `bulk` bytes follow the frame
//! on the wire. So a frame's head is small ([`MAX_FRAME_LEN`]) whatever its payload, a
//! sender writes the payload straight from its buffer, and [`FrameDecoder`] hands the
//! payload on in pieces as they arrive ([`Decoded::Bulk`]), zero-copy, so a receiver can
//! pass a large payload on without ever holding all of it. Payloads are [`Bytes`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::id::{FutureId, PeerId};
use crate::protocols::Protocols;

/// Frame format written in every header.
pub const FORMAT_VERSION: u8 = 2;
/// Bytes before the body: length, version and bulk length.
pub const HEADER_LEN: usize = 13;
/// Protocol ceiling for the head of one frame (version, bulk field and body; payloads
/// travel as bulk and are not counted). Decoders may be stricter.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Session protocol versions this build speaks, oldest and newest.
pub const SESSION_VERSIONS: (u16, u16) = (2, 2);

/// Bytes of `length` that precede what it counts.
const LENGTH_LEN: usize = 4;

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
    /// The header announced a frame too short for its version and bulk fields.
    #[error("frame of {0} bytes is shorter than its version and bulk fields")]
    TooShort(usize),
    /// A bulk payload was announced for a frame that carries none (a hello, a heartbeat,
    /// a cancel, an error result), or the body carries its payload inline as well.
    #[error("a {0} frame cannot carry a bulk payload")]
    UnexpectedBulk(&'static str),
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

    /// The payload the frame carries as bulk, if it is of a kind that carries one.
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Frame::Task(task) => Some(&task.payload),
            Frame::Result(TaskResult {
                outcome: Outcome::Value(value),
                ..
            }) => Some(value),
            Frame::Progress(progress) => Some(&progress.payload),
            _ => None,
        }
    }

    fn payload_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Frame::Task(task) => Some(&mut task.payload),
            Frame::Result(TaskResult {
                outcome: Outcome::Value(value),
                ..
            }) => Some(value),
            Frame::Progress(progress) => Some(&mut progress.payload),
            _ => None,
        }
    }

    /// Puts a payload received as bulk into the frame's payload field.
    pub fn attach_payload(&mut self, payload: Bytes) -> Result<(), FrameError> {
        let kind = self.kind_name();
        match self.payload_mut() {
            Some(slot) if slot.is_empty() => {
                *slot = payload;
                Ok(())
            }
            _ => Err(FrameError::UnexpectedBulk(kind)),
        }
    }

    /// Encodes the frame, payload included, into a new buffer.
    pub fn encode(&self) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::new();
        self.encode_into(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends the encoded frame, payload included, to `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut) -> Result<(), FrameError> {
        let payload = self.encode_head(buf)?;
        buf.extend_from_slice(&payload);
        Ok(())
    }

    /// Appends the frame's head (header and body) to `buf` and returns its payload, the
    /// bulk bytes that must follow the head on the wire (empty for frames without one).
    /// The payload is not copied: a sender writes it from where it already is.
    pub fn encode_head(&self, buf: &mut BytesMut) -> Result<Bytes, FrameError> {
        let mut head = self.clone();
        let payload = head.payload_mut().map(std::mem::take).unwrap_or_default();
        head.encode_head_announcing(buf, payload.len() as u64)?;
        Ok(payload)
    }

    /// Appends the head of this frame, whose payload is empty, announcing `bulk` payload
    /// bytes that the caller writes after it from somewhere else (a task's payload kept in
    /// a file, read a record at a time as it is sent).
    pub fn encode_head_announcing(&self, buf: &mut BytesMut, bulk: u64) -> Result<(), FrameError> {
        let start = buf.len();
        buf.reserve(HEADER_LEN + 128);
        buf.put_u32(0);
        buf.put_u8(FORMAT_VERSION);
        buf.put_u64(bulk);
        let mut writer = buf.writer();
        let encoded = rmp_serde::encode::write_named(&mut writer, self);
        let buf = writer.into_inner();
        if let Err(err) = encoded {
            buf.truncate(start);
            return Err(FrameError::Encode(err.to_string()));
        }
        let len = buf.len() - start - LENGTH_LEN;
        if len > MAX_FRAME_LEN {
            buf.truncate(start);
            return Err(FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        // Cannot truncate: MAX_FRAME_LEN < u32::MAX.
        buf[start..start + LENGTH_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Decodes exactly one complete frame, header, body and payload.
    pub fn decode(frame: &[u8]) -> Result<Frame, FrameError> {
        let truncated = |needed: usize| FrameError::Truncated {
            needed,
            available: frame.len(),
        };
        let len = frame_len(frame, MAX_FRAME_LEN)?.ok_or(truncated(HEADER_LEN))?;
        let head_end = LENGTH_LEN + len;
        if frame.len() < head_end {
            return Err(truncated(head_end));
        }
        let (mut decoded, bulk) = decode_head(&frame[LENGTH_LEN..head_end])?;
        let needed = usize::try_from(bulk)
            .ok()
            .and_then(|bulk| head_end.checked_add(bulk))
            .ok_or(truncated(usize::MAX))?;
        match frame.len().cmp(&needed) {
            std::cmp::Ordering::Less => Err(truncated(needed)),
            std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes(frame.len() - needed)),
            std::cmp::Ordering::Equal => {
                if bulk > 0 {
                    decoded.attach_payload(Bytes::copy_from_slice(&frame[head_end..]))?;
                }
                Ok(decoded)
            }
        }
    }
}

/// Reads the length from a header; `None` when the length is incomplete.
fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < LENGTH_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < HEADER_LEN - LENGTH_LEN {
        return Err(FrameError::TooShort(len));
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Decodes version, bulk field and body: the frame (its payload still empty if it comes
/// as bulk) and the number of bulk bytes that follow it.
fn decode_head(head: &[u8]) -> Result<(Frame, u64), FrameError> {
    let mut head = head;
    let version = head.get_u8();
    if version != FORMAT_VERSION {
        return Err(FrameError::UnsupportedFormat(version));
    }
    let bulk = head.get_u64();
    let frame: Frame =
        rmp_serde::from_slice(head).map_err(|err| FrameError::Malformed(err.to_string()))?;
    if bulk > 0 && !frame.payload().is_some_and(Bytes::is_empty) {
        return Err(FrameError::UnexpectedBulk(frame.kind_name()));
    }
    Ok((frame, bulk))
}

/// What [`FrameDecoder::decode`] took off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame. When `bulk` is not 0, its payload field is empty and the payload follows
    /// as [`Decoded::Bulk`] pieces, `bulk` bytes in all, before the next frame.
    Frame {
        /// The frame.
        frame: Frame,
        /// Bytes of payload that follow it.
        bulk: u64,
    },
    /// The next piece of the current frame's payload.
    Bulk {
        /// The bytes, as they arrived (never empty).
        bytes: Bytes,
        /// Bytes of the payload still to come after these; 0 for the last piece.
        remaining: u64,
    },
}

/// Cuts frames and their payloads out of a byte stream (e.g. a session's decrypted
/// records). It never reserves memory itself: the reader grows the buffer as bytes
/// arrive, so an announced length costs nothing until the bytes are there. Payload pieces
/// are split off the buffer without copying.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
    /// Bytes of the current frame's payload not yet handed out.
    bulk_left: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder refusing frame heads longer than `max_frame_len` (capped at
    /// [`MAX_FRAME_LEN`]). Payload sizes are the receiver's to judge: it sees each one in
    /// [`Decoded::Frame`] before a byte of it.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len: max_frame_len.min(MAX_FRAME_LEN),
            bulk_left: 0,
        }
    }

    /// The limit in force.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Whether the decoder is in the middle of a payload.
    pub fn in_payload(&self) -> bool {
        self.bulk_left > 0
    }

    /// How many more bytes `buf` needs before [`FrameDecoder::decode`] can take the next
    /// frame head off it (0 when it can, or when a payload is in progress). A reader
    /// holding the stream in buffers of its own moves just that many into `buf`.
    pub fn wanted(&self, buf: &[u8]) -> usize {
        if self.bulk_left > 0 {
            return 0;
        }
        match buf.first_chunk::<LENGTH_LEN>() {
            None => LENGTH_LEN - buf.len(),
            Some(length) => {
                let len = u32::from_be_bytes(*length) as usize;
                // An invalid length is for decode() to refuse: ask for nothing more.
                (LENGTH_LEN + len.min(self.max_frame_len)).saturating_sub(buf.len())
            }
        }
    }

    /// Accounts for payload bytes a reader passes on from a buffer of its own rather than
    /// through [`FrameDecoder::decode`]'s: of `available` bytes at the front of the stream,
    /// how many belong to the current payload, and how many of it remain after them.
    /// `decode`'s buffer must hold no payload bytes (it is empty when this is used).
    pub fn take_payload(&mut self, available: usize) -> (usize, u64) {
        let take = usize::try_from(self.bulk_left).map_or(available, |left| left.min(available));
        self.bulk_left -= take as u64;
        (take, self.bulk_left)
    }

    /// Takes the next frame or payload piece off the front of `buf`, or `None` if more
    /// bytes are needed. An over-long head is refused as soon as its length is in, before
    /// the body is buffered. After an error the stream is out of sync and must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, FrameError> {
        if self.bulk_left > 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            let take =
                usize::try_from(self.bulk_left).map_or(buf.len(), |left| left.min(buf.len()));
            self.bulk_left -= take as u64;
            return Ok(Some(Decoded::Bulk {
                bytes: buf.split_to(take).freeze(),
                remaining: self.bulk_left,
            }));
        }
        let Some(len) = frame_len(buf, self.max_frame_len)? else {
            return Ok(None);
        };
        if buf.len() < LENGTH_LEN + len {
            return Ok(None);
        }
        buf.advance(LENGTH_LEN);
        let head = buf.split_to(len);
        let (frame, bulk) = decode_head(&head)?;
        self.bulk_left = bulk;
        Ok(Some(Decoded::Frame { frame, bulk }))
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

    /// Feeds `stream` to a decoder in pieces of `piece` bytes and puts the frames back
    /// together, payloads attached.
    fn decode_stream(stream: &[u8], piece: usize) -> Vec<Frame> {
        let mut decoder = FrameDecoder::default();
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        let mut current: Option<(Frame, BytesMut)> = None;
        for chunk in stream.chunks(piece.max(1)) {
            input.extend_from_slice(chunk);
            while let Some(decoded) = decoder.decode(&mut input).unwrap() {
                match decoded {
                    Decoded::Frame { frame, bulk: 0 } => out.push(frame),
                    Decoded::Frame { frame, .. } => current = Some((frame, BytesMut::new())),
                    Decoded::Bulk { bytes, remaining } => {
                        let (_, payload) = current.as_mut().expect("bulk after its frame");
                        assert!(!bytes.is_empty());
                        payload.extend_from_slice(&bytes);
                        if remaining == 0 {
                            let (mut frame, payload) = current.take().unwrap();
                            frame.attach_payload(payload.freeze()).unwrap();
                            out.push(frame);
                        }
                    }
                }
            }
        }
        assert!(input.is_empty() && !decoder.in_payload() && current.is_none());
        out
    }

    #[test]
    fn task_round_trip_and_header() {
        let frame = Frame::Task(Task {
            future: future(),
            payload: Bytes::from_static(b"payload"),
        });
        let bytes = frame.encode().unwrap();
        assert_eq!(bytes[4], FORMAT_VERSION);
        assert_eq!(u64::from_be_bytes(bytes[5..13].try_into().unwrap()), 7);
        let head_len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(head_len + 4 + 7, bytes.len());
        assert_eq!(&bytes[bytes.len() - 7..], b"payload");
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn the_payload_is_not_copied_into_the_head() {
        let payload = Bytes::from(vec![9u8; 1 << 20]);
        let frame = Frame::Result(TaskResult {
            future: future(),
            outcome: Outcome::Value(payload.clone()),
        });
        let mut head = BytesMut::new();
        let bulk = frame.encode_head(&mut head).unwrap();
        assert!(head.len() < 100, "head of {} bytes", head.len());
        assert_eq!(
            bulk.as_ptr(),
            payload.as_ptr(),
            "the payload is handed back as is"
        );
    }

    #[test]
    fn stream_decoder_waits_for_complete_frames() {
        let frames = [
            Frame::Hello(Hello::new(peer(), Protocols::ours())),
            Frame::Heartbeat(Heartbeat { seq: 7 }),
            Frame::Task(Task {
                future: future(),
                payload: Bytes::from(vec![3u8; 1000]),
            }),
            Frame::Cancel(Cancel { future: future() }),
        ];
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode_into(&mut stream).unwrap();
        }
        for piece in [1, 7, 64, stream.len()] {
            assert_eq!(decode_stream(&stream, piece), frames);
        }
    }

    #[test]
    fn payload_pieces_are_split_off_without_copying() {
        let frame = Frame::Task(Task {
            future: future(),
            payload: Bytes::from(vec![5u8; 100]),
        });
        let mut stream = BytesMut::new();
        frame.encode_into(&mut stream).unwrap();
        let mut decoder = FrameDecoder::default();
        let Some(Decoded::Frame { bulk: 100, .. }) = decoder.decode(&mut stream).unwrap() else {
            panic!("frame first");
        };
        let at = stream.as_ptr();
        let Some(Decoded::Bulk { bytes, remaining }) = decoder.decode(&mut stream).unwrap() else {
            panic!("then its payload");
        };
        assert_eq!((bytes.len(), remaining, bytes.as_ptr()), (100, 0, at));
    }

    #[test]
    fn a_reader_can_pass_payloads_on_from_its_own_buffers() {
        let frames = [
            Frame::Task(Task {
                future: future(),
                payload: Bytes::from(vec![4u8; 10]),
            }),
            Frame::Heartbeat(Heartbeat { seq: 3 }),
        ];
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode_into(&mut stream).unwrap();
        }
        // Heads go through the decoder's buffer a byte count at a time, payloads are
        // counted off the reader's own buffer.
        let mut decoder = FrameDecoder::default();
        let mut head = BytesMut::new();
        let mut at = 0;
        let mut out = Vec::new();
        let mut payload = Vec::new();
        while at < stream.len() {
            if decoder.in_payload() {
                let (take, remaining) = decoder.take_payload(3.min(stream.len() - at));
                payload.extend_from_slice(&stream[at..at + take]);
                at += take;
                if remaining == 0 {
                    out.push(std::mem::take(&mut payload));
                }
                continue;
            }
            let wanted = decoder.wanted(&head);
            assert!(wanted > 0);
            head.extend_from_slice(&stream[at..at + wanted]);
            at += wanted;
            if let Some(Decoded::Frame { frame, .. }) = decoder.decode(&mut head).unwrap() {
                assert_eq!(
                    decoder.wanted(&head),
                    if decoder.in_payload() { 0 } else { 4 }
                );
                out.push(frame.kind_name().as_bytes().to_vec());
            }
        }
        assert_eq!(
            out,
            [b"task".to_vec(), vec![4u8; 10], b"heartbeat".to_vec()]
        );
        assert!(head.is_empty());
    }

    #[test]
    fn typed_errors_for_bad_input() {
        let mut decoder = FrameDecoder::new(16);
        let mut big = BytesMut::from(&[0, 0, 1, 0, 2][..]);
        assert_eq!(
            decoder.decode(&mut big),
            Err(FrameError::TooLarge { len: 256, max: 16 })
        );
        assert_eq!(
            decoder.decode(&mut BytesMut::from(&[0, 0, 0, 0][..])),
            Err(FrameError::TooShort(0))
        );
        let mut old = BytesMut::from(&[0, 0, 0, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0][..]);
        assert_eq!(
            decoder.decode(&mut old),
            Err(FrameError::UnsupportedFormat(1))
        );
        assert!(matches!(
            decoder.decode(&mut BytesMut::from(
                &[0, 0, 0, 11, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xc1, 0xc1][..]
            )),
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
        // A bulk payload on a heartbeat is refused, not attached somewhere.
        let mut bulky = good.to_vec();
        bulky[12] = 3;
        bulky.extend_from_slice(b"abc");
        assert_eq!(
            Frame::decode(&bulky),
            Err(FrameError::UnexpectedBulk("heartbeat"))
        );
    }

    #[test]
    fn an_announced_payload_reserves_nothing() {
        let frame = Frame::Task(Task {
            future: future(),
            payload: Bytes::from(vec![1u8; 10]),
        });
        let mut head = BytesMut::new();
        frame.encode_head(&mut head).unwrap();
        // Claim a 1 TiB payload: the decoder hands out the frame and waits for bytes.
        head[5..13].copy_from_slice(&(1u64 << 40).to_be_bytes());
        let capacity = head.capacity();
        let mut decoder = FrameDecoder::default();
        assert!(matches!(
            decoder.decode(&mut head).unwrap(),
            Some(Decoded::Frame { bulk, .. }) if bulk == 1 << 40
        ));
        assert_eq!(decoder.decode(&mut head).unwrap(), None);
        assert!(head.capacity() <= capacity);
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
        assert_eq!(ours.negotiate(&theirs), Ok(SESSION_VERSIONS.1));
        theirs.min_version = SESSION_VERSIONS.1 + 1;
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
            prop_assert_eq!(decode_stream(&bytes, bytes.len()), vec![frame]);
        }

        #[test]
        fn streams_of_frames_decode_in_any_pieces(
            frames in proptest::collection::vec(arb_frame(), 1..6),
            piece in 1usize..200,
        ) {
            let mut stream = BytesMut::new();
            for frame in &frames {
                frame.encode_into(&mut stream).unwrap();
            }
            prop_assert_eq!(decode_stream(&stream, piece), frames);
        }

        #[test]
        fn a_head_announcing_a_payload_kept_apart_decodes_with_it(
            future in arb_future(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let task = Task { future, payload: Bytes::new() };
            let mut stream = BytesMut::new();
            Frame::Task(task.clone())
                .encode_head_announcing(&mut stream, payload.len() as u64)
                .unwrap();
            stream.extend_from_slice(&payload);
            let whole = Frame::Task(Task { payload: Bytes::from(payload), ..task });
            prop_assert_eq!(stream.freeze(), whole.encode().unwrap());
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
            let mut stream = BytesMut::from(&bytes[..]);
            let mut decoder = FrameDecoder::default();
            while let Ok(Some(_)) = decoder.decode(&mut stream) {}
        }
    }
}
