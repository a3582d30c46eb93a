//! The evaluator protocol between an [`REvaluator`](super::REvaluator) and the R loop
//! `future.p2p:::evaluator_loop()` it runs (sans-IO).
//!
//! Frames are those of [`crate::frame`], their id a job id. The hello is plain
//! `key=value` lines rather than a serialized R object, so Rust can read it. A job's body
//! is its payload followed by [`JOB_TRAILER`]: R unserializes the payload straight from
//! the pipe as it arrives (no copy of it in R), and the trailer proves R read exactly the
//! payload, so a payload that is not one serialized object cannot put the two sides out
//! of step unnoticed.
//!
//! A job of a future.p2p 0.4.0 client ([`ToR::OriginalJob`]) is the RDS file of its
//! Future, preceded by the future's board id (R checks the file holds that future) and
//! followed by the same trailer; R reads it whole.
//!
//! Rust sends [`ToR`] frames on R's file descriptor 4 and reads [`FromR`] frames from R's
//! file descriptor 3; both directions share one codec so either side can be faked in tests.

use bytes::{Bytes, BytesMut};

use crate::frame::{self, RFrameError, RawFrame, put_frame};
pub use crate::frame::{HEADER_LEN, MAX_BODY_LEN};

/// Version of the frame layout and kinds; the R loop reports its own in the hello.
pub const PROTOCOL_VERSION: u32 = 3;

/// The last four bytes of every job body (`JOB_TRAILER` in `protocol.R`).
pub const JOB_TRAILER: [u8; 4] = *b"P2P!";

mod kind {
    pub const JOB: u8 = 1;
    pub const PING: u8 = 2;
    pub const ORIGINAL_JOB: u8 = 3;
    pub const HELLO: u8 = 10;
    pub const STARTED: u8 = 11;
    pub const CONDITION: u8 = 12;
    pub const RESULT: u8 = 13;
    pub const INTERRUPTED: u8 = 14;
    pub const UNSUPPORTED: u8 = 15;
    pub const FAILED: u8 = 16;
    pub const PONG: u8 = 17;
}

/// A frame Rust sends to the R loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToR {
    /// Evaluate a payload made by `future.p2p:::future_payload()` (the trailer is added
    /// when encoding and checked when decoding).
    Job { job: u32, payload: Bytes },
    /// Asks for a [`FromR::Pong`]; wakes a loop blocked reading while a SIGINT is pending.
    Ping { nonce: u32 },
    /// Evaluate the RDS file of a future.p2p 0.4.0 client's Future, posted on the board as
    /// `future`, as that package's worker does; the [`FromR::Result`] is then the RDS file
    /// of its FutureResult. Body: the id's length (u32, big endian), the id, the RDS
    /// bytes, the trailer.
    OriginalJob {
        job: u32,
        future: String,
        payload: Bytes,
    },
}

/// A frame the R loop sends to Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromR {
    /// First frame of every R process: who it is.
    Hello(Hello),
    /// The job was read in full and its evaluation begins; from now on a SIGINT
    /// interrupts the evaluation rather than the reading of a frame.
    Started { job: u32 },
    /// A serialized immediate condition (e.g. progressr's progression), sent while the
    /// job runs.
    Condition { job: u32, condition: Bytes },
    /// The serialized `FutureResult` of the job.
    Result { job: u32, result: Bytes },
    /// The job, or the loop between jobs, was interrupted by a SIGINT.
    Interrupted { job: u32 },
    /// This R process cannot evaluate the payload (e.g. future too old for it).
    Unsupported { job: u32, message: String },
    /// The evaluation infrastructure failed (unreadable payload, package missing, ...).
    Failed { job: u32, message: String },
    /// Answer to a [`ToR::Ping`].
    Pong { nonce: u32 },
}

/// What an R evaluator process says about itself when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol: u32,
    /// R version, e.g. `4.2.2`.
    pub r_version: String,
    /// Version of the future package, e.g. `1.31.0`.
    pub future_version: String,
    pub pid: u32,
    /// Payload generations it evaluates (`expr`, and `evalFuture` with future >= 1.40).
    pub apis: Vec<String>,
}

impl ToR {
    /// Appends the frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), RFrameError> {
        match self {
            ToR::Job { job, payload } => {
                dst.extend_from_slice(&job_header(*job, payload.len())?);
                dst.extend_from_slice(payload);
                dst.extend_from_slice(&JOB_TRAILER);
            }
            ToR::Ping { nonce } => put_frame(dst, kind::PING, *nonce, &[])?,
            ToR::OriginalJob {
                job,
                future,
                payload,
            } => {
                dst.extend_from_slice(&original_job_header(*job, future, payload.len())?);
                dst.extend_from_slice(&original_job_prefix(future));
                dst.extend_from_slice(payload);
                dst.extend_from_slice(&JOB_TRAILER);
            }
        }
        Ok(())
    }

    /// The frame header alone, for writing a large payload without copying it.
    ///
    /// [`job_header`] is the same for a payload that is not in one piece.
    pub fn header(&self) -> Result<[u8; HEADER_LEN], RFrameError> {
        let header = match self {
            ToR::Job { job, payload } => job_header(*job, payload.len())?,
            ToR::Ping { nonce } => frame::header(kind::PING, *nonce, 0)?,
            ToR::OriginalJob {
                job,
                future,
                payload,
            } => original_job_header(*job, future, payload.len())?,
        };
        Ok(header)
    }
}

/// The header of an original job frame for `future`, whose RDS file of `len` bytes
/// follows [`original_job_prefix`] (then the trailer).
pub fn original_job_header(
    job: u32,
    future: &str,
    len: usize,
) -> Result<[u8; HEADER_LEN], frame::BodyTooLarge> {
    let overhead = 4 + future.len() + JOB_TRAILER.len();
    let too_large = || frame::BodyTooLarge {
        len: len as u64,
        max: MAX_BODY_LEN.saturating_sub(overhead),
    };
    let body = len.checked_add(overhead).ok_or_else(too_large)?;
    frame::header(kind::ORIGINAL_JOB, job, body).map_err(|_| too_large())
}

/// What precedes the RDS file in an original job's body: the board id and its length.
pub fn original_job_prefix(future: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(4 + future.len());
    prefix.extend_from_slice(&(future.len() as u32).to_be_bytes());
    prefix.extend_from_slice(future.as_bytes());
    prefix
}

/// Splits an original job's body into the board id and the RDS bytes.
fn original_job(raw: &RawFrame) -> Result<ToR, RFrameError> {
    let body = &raw.body;
    let len = body
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .ok_or_else(|| raw.malformed("no future id length"))?;
    let end = 4usize
        .checked_add(len)
        .filter(|&end| end <= body.len())
        .ok_or_else(|| raw.malformed("future id longer than the frame"))?;
    let future = std::str::from_utf8(&body[4..end])
        .map_err(|_| raw.malformed("future id not UTF-8"))?
        .to_owned();
    let payload_end = body
        .len()
        .checked_sub(JOB_TRAILER.len())
        .filter(|&at| at >= end && body[at..] == JOB_TRAILER)
        .ok_or_else(|| raw.malformed("no job trailer"))?;
    Ok(ToR::OriginalJob {
        job: raw.id,
        future,
        payload: body.slice(end..payload_end),
    })
}

/// The header of a job frame whose payload of `len` bytes follows (then the trailer).
pub fn job_header(job: u32, len: usize) -> Result<[u8; HEADER_LEN], frame::BodyTooLarge> {
    let body = len
        .checked_add(JOB_TRAILER.len())
        .ok_or(frame::BodyTooLarge {
            len: len as u64,
            max: MAX_BODY_LEN - JOB_TRAILER.len(),
        })?;
    frame::header(kind::JOB, job, body).map_err(|_| frame::BodyTooLarge {
        len: len as u64,
        max: MAX_BODY_LEN - JOB_TRAILER.len(),
    })
}

impl TryFrom<RawFrame> for ToR {
    type Error = RFrameError;

    fn try_from(raw: RawFrame) -> Result<Self, RFrameError> {
        match raw.kind {
            kind::JOB => {
                let payload_len = raw
                    .body
                    .len()
                    .checked_sub(JOB_TRAILER.len())
                    .filter(|&len| raw.body[len..] == JOB_TRAILER)
                    .ok_or_else(|| raw.malformed("no job trailer"))?;
                Ok(ToR::Job {
                    job: raw.id,
                    payload: raw.body.slice(..payload_len),
                })
            }
            kind::PING => raw.empty().map(|()| ToR::Ping { nonce: raw.id }),
            kind::ORIGINAL_JOB => original_job(&raw),
            kind::HELLO..=kind::PONG => Err(RFrameError::WrongDirection { kind: raw.kind }),
            other => Err(RFrameError::UnknownKind(other)),
        }
    }
}

impl FromR {
    /// Appends the frame to `dst` (what the R loop encodes; used by fakes and tests).
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), RFrameError> {
        let hello;
        let (kind, job, body): (u8, u32, &[u8]) = match self {
            FromR::Hello(h) => {
                hello = h.to_lines();
                (kind::HELLO, 0, hello.as_bytes())
            }
            FromR::Started { job } => (kind::STARTED, *job, &[]),
            FromR::Condition { job, condition } => (kind::CONDITION, *job, condition),
            FromR::Result { job, result } => (kind::RESULT, *job, result),
            FromR::Interrupted { job } => (kind::INTERRUPTED, *job, &[]),
            FromR::Unsupported { job, message } => (kind::UNSUPPORTED, *job, message.as_bytes()),
            FromR::Failed { job, message } => (kind::FAILED, *job, message.as_bytes()),
            FromR::Pong { nonce } => (kind::PONG, *nonce, &[]),
        };
        put_frame(dst, kind, job, body)?;
        Ok(())
    }
}

impl TryFrom<RawFrame> for FromR {
    type Error = RFrameError;

    fn try_from(raw: RawFrame) -> Result<Self, RFrameError> {
        let job = raw.id;
        match raw.kind {
            kind::HELLO => Hello::from_lines(&raw.text()?).map(FromR::Hello),
            kind::STARTED => raw.empty().map(|()| FromR::Started { job }),
            kind::CONDITION => Ok(FromR::Condition {
                job,
                condition: raw.body,
            }),
            kind::RESULT => Ok(FromR::Result {
                job,
                result: raw.body,
            }),
            kind::INTERRUPTED => raw.empty().map(|()| FromR::Interrupted { job }),
            kind::UNSUPPORTED => Ok(FromR::Unsupported {
                job,
                message: raw.text()?,
            }),
            kind::FAILED => Ok(FromR::Failed {
                job,
                message: raw.text()?,
            }),
            kind::PONG => raw.empty().map(|()| FromR::Pong { nonce: job }),
            kind::JOB | kind::PING | kind::ORIGINAL_JOB => {
                Err(RFrameError::WrongDirection { kind: raw.kind })
            }
            other => Err(RFrameError::UnknownKind(other)),
        }
    }
}

impl Hello {
    /// The `key=value` lines the R loop writes (`hello_lines()` in `evaluator_loop.R`).
    pub fn to_lines(&self) -> String {
        format!(
            "protocol={}\nr={}\nfuture={}\npid={}\napi={}",
            self.protocol,
            self.r_version,
            self.future_version,
            self.pid,
            self.apis.join(";")
        )
    }

    /// Parses the hello lines; unknown keys are ignored so the R side can add some.
    pub fn from_lines(text: &str) -> Result<Hello, RFrameError> {
        let (mut protocol, mut r_version, mut future_version, mut pid, mut apis) =
            (None, None, None, None, Vec::new());
        for (key, value) in frame::parse_lines(text)? {
            let number = |what: &str| {
                value
                    .parse::<u32>()
                    .map_err(|_| RFrameError::MalformedHello(format!("{what} {value:?}")))
            };
            match key {
                "protocol" => protocol = Some(number("protocol")?),
                "r" => r_version = Some(value.to_owned()),
                "future" => future_version = Some(value.to_owned()),
                "pid" => pid = Some(number("pid")?),
                "api" => {
                    apis = value
                        .split(';')
                        .filter(|api| !api.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                _ => {}
            }
        }
        let missing = |key: &str| RFrameError::MalformedHello(format!("no {key}="));
        Ok(Hello {
            protocol: protocol.ok_or_else(|| missing("protocol"))?,
            r_version: r_version.ok_or_else(|| missing("r"))?,
            future_version: future_version.ok_or_else(|| missing("future"))?,
            pid: pid.ok_or_else(|| missing("pid"))?,
            apis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{BodyTooLarge, RFrameReader};
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(Bytes::from)
    }

    fn arb_to_r() -> impl Strategy<Value = ToR> {
        prop_oneof![
            (any::<u32>(), arb_bytes()).prop_map(|(job, payload)| ToR::Job { job, payload }),
            any::<u32>().prop_map(|nonce| ToR::Ping { nonce }),
            (
                any::<u32>(),
                "[a-f0-9]{1,32}(-[0-9]{1,4}){0,3}",
                arb_bytes()
            )
                .prop_map(|(job, future, payload)| ToR::OriginalJob {
                    job,
                    future,
                    payload
                }),
        ]
    }

    fn arb_hello() -> impl Strategy<Value = Hello> {
        (
            any::<u32>(),
            "[0-9.]{1,10}",
            "[0-9.-]{1,12}",
            any::<u32>(),
            proptest::collection::vec("[a-zA-Z]{1,10}", 0..3),
        )
            .prop_map(|(protocol, r_version, future_version, pid, apis)| Hello {
                protocol,
                r_version,
                future_version,
                pid,
                apis,
            })
    }

    fn arb_from_r() -> impl Strategy<Value = FromR> {
        prop_oneof![
            arb_hello().prop_map(FromR::Hello),
            any::<u32>().prop_map(|job| FromR::Started { job }),
            (any::<u32>(), arb_bytes())
                .prop_map(|(job, condition)| FromR::Condition { job, condition }),
            (any::<u32>(), arb_bytes()).prop_map(|(job, result)| FromR::Result { job, result }),
            any::<u32>().prop_map(|job| FromR::Interrupted { job }),
            (any::<u32>(), "\\PC{0,40}")
                .prop_map(|(job, message)| FromR::Unsupported { job, message }),
            (any::<u32>(), "\\PC{0,40}").prop_map(|(job, message)| FromR::Failed { job, message }),
            any::<u32>().prop_map(|nonce| FromR::Pong { nonce }),
        ]
    }

    proptest! {
        #[test]
        fn frames_to_r_round_trip(frames in proptest::collection::vec(arb_to_r(), 1..5)) {
            let mut stream = BytesMut::new();
            for frame in &frames {
                frame.encode(&mut stream).unwrap();
            }
            let decoder = RFrameReader::default();
            for frame in &frames {
                prop_assert_eq!(decoder.decode::<ToR>(&mut stream).unwrap(), Some(frame.clone()));
            }
            prop_assert!(stream.is_empty());
        }

        #[test]
        fn frames_from_r_round_trip(frames in proptest::collection::vec(arb_from_r(), 1..5)) {
            let mut stream = BytesMut::new();
            for frame in &frames {
                frame.encode(&mut stream).unwrap();
            }
            let decoder = RFrameReader::default();
            for frame in &frames {
                prop_assert_eq!(decoder.decode::<FromR>(&mut stream).unwrap(), Some(frame.clone()));
            }
            prop_assert!(stream.is_empty());
        }

        #[test]
        fn a_frame_arriving_in_pieces_decodes_once_whole(frame in arb_from_r(), cut in any::<usize>()) {
            let mut whole = BytesMut::new();
            frame.encode(&mut whole).unwrap();
            let cut = cut % whole.len();
            let decoder = RFrameReader::default();
            let mut stream = BytesMut::from(&whole[..cut]);
            prop_assert_eq!(decoder.decode::<FromR>(&mut stream).unwrap(), None);
            stream.extend_from_slice(&whole[cut..]);
            prop_assert_eq!(decoder.decode::<FromR>(&mut stream).unwrap(), Some(frame));
        }

        #[test]
        fn the_header_alone_matches_the_encoding(frame in arb_to_r()) {
            let mut whole = BytesMut::new();
            frame.encode(&mut whole).unwrap();
            prop_assert_eq!(&frame.header().unwrap()[..], &whole[..HEADER_LEN]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let decoder = RFrameReader::new(128);
            let mut stream = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode::<FromR>(&mut stream) {}
            let mut stream = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode::<ToR>(&mut stream) {}
        }
    }

    fn raw(kind: u8, job: u32, body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, kind, job, body).unwrap();
        buf
    }

    #[test]
    fn an_original_job_carries_the_board_id_before_the_rds() {
        let frame = ToR::OriginalJob {
            job: 7,
            future: "ab12-3".into(),
            payload: Bytes::from_static(b"\x1f\x8b rds"),
        };
        let mut bytes = BytesMut::new();
        frame.encode(&mut bytes).unwrap();
        assert_eq!(
            &bytes[HEADER_LEN..],
            &b"\0\0\0\x06ab12-3\x1f\x8b rdsP2P!"[..]
        );
        let decoder = RFrameReader::new(MAX_BODY_LEN);
        for body in [
            &b"\0\0"[..],
            &b"\0\0\0\x09abcP2P!"[..],
            &b"\0\0\0\x01\xffP2P!"[..],
            &b"\0\0\0\x01a rds"[..],
        ] {
            assert!(matches!(
                decoder.decode::<ToR>(&mut raw(kind::ORIGINAL_JOB, 1, body)),
                Err(RFrameError::MalformedBody { .. })
            ));
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        let decoder = RFrameReader::new(32);
        let cases: Vec<(BytesMut, RFrameError)> = vec![
            (
                raw(kind::RESULT, 1, &[0; 33]),
                RFrameError::BodyTooLarge(BodyTooLarge { len: 33, max: 32 }),
            ),
            (raw(99, 1, b""), RFrameError::UnknownKind(99)),
            (
                raw(kind::JOB, 1, b""),
                RFrameError::WrongDirection { kind: kind::JOB },
            ),
            (
                raw(kind::STARTED, 1, b"x"),
                RFrameError::UnexpectedBody {
                    kind: kind::STARTED,
                    len: 1,
                },
            ),
            (
                raw(kind::FAILED, 1, &[0xff, 0xfe]),
                RFrameError::NotUtf8 { kind: kind::FAILED },
            ),
            (
                raw(kind::HELLO, 0, b"protocol=1\nr=4.2.2"),
                RFrameError::MalformedHello("no future=".into()),
            ),
            (
                raw(kind::HELLO, 0, b"protocol=one"),
                RFrameError::MalformedHello("protocol \"one\"".into()),
            ),
        ];
        for (mut bytes, expected) in cases {
            assert_eq!(decoder.decode::<FromR>(&mut bytes), Err(expected));
        }
        assert_eq!(
            decoder.decode::<ToR>(&mut raw(kind::PONG, 1, b"")),
            Err(RFrameError::WrongDirection { kind: kind::PONG })
        );
    }

    #[test]
    fn a_job_without_its_trailer_is_malformed() {
        let decoder = RFrameReader::default();
        let mut bytes = raw(kind::JOB, 1, b"payload");
        assert!(matches!(
            decoder.decode::<ToR>(&mut bytes),
            Err(RFrameError::MalformedBody { .. })
        ));
        let mut bytes = raw(kind::JOB, 1, b"payloadP2P!");
        assert_eq!(
            decoder.decode::<ToR>(&mut bytes),
            Ok(Some(ToR::Job {
                job: 1,
                payload: Bytes::from_static(b"payload")
            }))
        );
    }

    #[test]
    fn the_hello_of_the_r_loop_parses() {
        let hello =
            Hello::from_lines("protocol=2\nr=4.2.2\nfuture=1.31.0\npid=17766\napi=expr\n").unwrap();
        assert_eq!(
            hello,
            Hello {
                protocol: 2,
                r_version: "4.2.2".into(),
                future_version: "1.31.0".into(),
                pid: 17766,
                apis: vec!["expr".into()],
            }
        );
    }
}
