//! The frame layout, reader and errors shared by the evaluator and bridge protocols
//! (sans-IO).
//!
//! ```text
//!   kind: u8 | id: u32 (big endian) | body length: u32 (big endian, at most i32::MAX) | body
//! ```
//!
//! The R side (`rpkg/R/protocol.R`) reads and writes it with base R's `readBin`/`writeBin`,
//! which is why lengths stop at `i32::MAX` (R integers are signed 32-bit). What `kind`
//! and `id` mean, and what is in a body, is each protocol's business.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Length of a frame header.
pub const HEADER_LEN: usize = 9;

/// The longest body the R side can read or write (an R integer length).
pub const MAX_BODY_LEN: usize = i32::MAX as usize;

/// How much room a reader of frames makes in its buffer before each read: large enough
/// for few system calls per megabyte, small enough that an idle reader holds little.
pub const READ_CHUNK: usize = 64 << 10;

/// One frame as it is on the wire, before its kind is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: u8,
    pub id: u32,
    pub body: Bytes,
}

/// A body too long for a frame, on either side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
pub struct BodyTooLarge {
    pub len: u64,
    pub max: usize,
}

/// The header of a frame of `kind` and `id` with a body of `len` bytes.
pub fn header(kind: u8, id: u32, len: usize) -> Result<[u8; HEADER_LEN], BodyTooLarge> {
    if len > MAX_BODY_LEN {
        return Err(BodyTooLarge {
            len: len as u64,
            max: MAX_BODY_LEN,
        });
    }
    let mut header = [0u8; HEADER_LEN];
    header[0] = kind;
    header[1..5].copy_from_slice(&id.to_be_bytes());
    header[5..].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(header)
}

/// Appends a whole frame to `dst`.
pub fn put_frame(dst: &mut BytesMut, kind: u8, id: u32, body: &[u8]) -> Result<(), BodyTooLarge> {
    let header = header(kind, id, body.len())?;
    dst.reserve(HEADER_LEN + body.len());
    dst.put_slice(&header);
    dst.put_slice(body);
    Ok(())
}

/// A frame of either protocol that cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RFrameError {
    #[error(transparent)]
    BodyTooLarge(#[from] BodyTooLarge),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("frame kind {kind} must not be sent in this direction")]
    WrongDirection { kind: u8 },
    #[error("frame kind {kind} must have an empty body, got {len} bytes")]
    UnexpectedBody { kind: u8, len: usize },
    #[error("frame kind {kind} has a malformed body: {reason}")]
    MalformedBody { kind: u8, reason: String },
    #[error("the text in frame kind {kind} is not UTF-8")]
    NotUtf8 { kind: u8 },
    #[error("malformed hello: {0}")]
    MalformedHello(String),
    #[error("message text of {0} bytes does not fit a frame")]
    TextTooLong(usize),
}

impl RawFrame {
    /// Checks that the frame has no body (a bare signal).
    pub fn empty(&self) -> Result<(), RFrameError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(RFrameError::UnexpectedBody {
                kind: self.kind,
                len: self.body.len(),
            })
        }
    }

    /// The whole body as text.
    pub fn text(&self) -> Result<String, RFrameError> {
        utf8(self.kind, &self.body)
    }

    /// A body that does not have the layout its kind requires.
    pub fn malformed(&self, reason: impl Into<String>) -> RFrameError {
        RFrameError::MalformedBody {
            kind: self.kind,
            reason: reason.into(),
        }
    }
}

/// `bytes` (part of a body of frame `kind`) as text.
pub fn utf8(kind: u8, bytes: &[u8]) -> Result<String, RFrameError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| RFrameError::NotUtf8 { kind })
}

/// Splits a byte stream into frames of one protocol's direction (`T`: the evaluator's
/// `FromR`/`ToR`, the bridge's `Request`/`Reply`); bodies longer than its limit are an
/// error, so a corrupted length cannot make the reader buffer gigabytes. It never reserves
/// memory itself: the reader grows the buffer as bytes arrive ([`READ_CHUNK`] per read), so
/// an announced length costs nothing until its bytes are there.
#[derive(Debug, Clone)]
pub struct RFrameReader {
    max_body: usize,
}

impl Default for RFrameReader {
    fn default() -> Self {
        RFrameReader::new(MAX_BODY_LEN)
    }
}

impl RFrameReader {
    /// A reader accepting bodies up to `max_body` bytes (capped at [`MAX_BODY_LEN`]).
    pub fn new(max_body: usize) -> Self {
        RFrameReader {
            max_body: max_body.min(MAX_BODY_LEN),
        }
    }

    /// The next frame in `src` as a `T`, or `None` if `src` does not hold a whole frame
    /// yet. Consumed bytes are removed from `src`.
    pub fn decode<T>(&self, src: &mut BytesMut) -> Result<Option<T>, RFrameError>
    where
        T: TryFrom<RawFrame, Error = RFrameError>,
    {
        self.decode_raw(src)?.map(T::try_from).transpose()
    }

    /// The next frame in `src` before its kind is interpreted.
    pub fn decode_raw(&self, src: &mut BytesMut) -> Result<Option<RawFrame>, BodyTooLarge> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header = &src[..HEADER_LEN];
        let kind = header.get_u8();
        let id = header.get_u32();
        let len = header.get_u32() as usize;
        if len > self.max_body {
            return Err(BodyTooLarge {
                len: len as u64,
                max: self.max_body,
            });
        }
        if src.len() < HEADER_LEN + len {
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(len).freeze();
        Ok(Some(RawFrame { kind, id, body }))
    }
}

/// Parses `key=value` lines (the hellos of both protocols); empty lines are skipped.
pub fn parse_lines(text: &str) -> Result<Vec<(&str, &str)>, RFrameError> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.split_once('=')
                .ok_or_else(|| RFrameError::MalformedHello(format!("line {line:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_round_trip_in_any_pieces(
            frames in proptest::collection::vec(
                (any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 1..5),
            cut in any::<usize>(),
        ) {
            let mut whole = BytesMut::new();
            for (kind, id, body) in &frames {
                put_frame(&mut whole, *kind, *id, body).unwrap();
            }
            let cut = cut % whole.len();
            let decoder = RFrameReader::default();
            let mut stream = BytesMut::from(&whole[..cut]);
            let mut decoded = Vec::new();
            while let Some(frame) = decoder.decode_raw(&mut stream).unwrap() {
                decoded.push(frame);
            }
            stream.extend_from_slice(&whole[cut..]);
            while let Some(frame) = decoder.decode_raw(&mut stream).unwrap() {
                decoded.push(frame);
            }
            let expected: Vec<RawFrame> = frames
                .into_iter()
                .map(|(kind, id, body)| RawFrame { kind, id, body: Bytes::from(body) })
                .collect();
            prop_assert_eq!(decoded, expected);
            prop_assert!(stream.is_empty());
        }

        #[test]
        fn the_header_alone_matches_the_frame(kind: u8, id: u32, len in 0usize..64) {
            let mut whole = BytesMut::new();
            put_frame(&mut whole, kind, id, &vec![7; len]).unwrap();
            prop_assert_eq!(&header(kind, id, len).unwrap()[..], &whole[..HEADER_LEN]);
        }
    }

    #[test]
    fn an_announced_body_reserves_nothing() {
        let mut stream = BytesMut::from(&header(1, 1, 1 << 30).unwrap()[..]);
        let capacity = stream.capacity();
        assert_eq!(RFrameReader::default().decode_raw(&mut stream), Ok(None));
        assert_eq!(stream.capacity(), capacity);
    }

    #[test]
    fn oversized_bodies_are_refused_before_they_are_buffered() {
        let mut stream = BytesMut::from(&header(1, 1, 33).unwrap()[..]);
        assert_eq!(
            RFrameReader::new(32).decode_raw(&mut stream),
            Err(BodyTooLarge { len: 33, max: 32 })
        );
        assert!(header(1, 1, MAX_BODY_LEN + 1).is_err());
    }
}
