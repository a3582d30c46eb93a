//! The bridge protocol between an R session (the future.p2p package, `rpkg/R/bridge.R`)
//! and its `future-p2p` child process (sans-IO).
//!
//! One long-lived child per R session carries many futures at once: R submits payloads
//! under ids it chooses (unique within the session), and the child reports, per id, status
//! changes, relayed conditions, and finally a result or an error. Frames are those of
//! [`crate::frame`]; the frame id is the future's id, 0 for session-wide messages.
//!
//! ```text
//!   R -> child   Hello (id 0)  Submit(id, label, payload)  Cancel(id)  Poll(id; 0: workers)
//!                Original(id, RDS or why not)
//!                SubmitUploaded(id, label)
//!   child -> R   Hello (id 0)  Status(id, state, detail)   Condition(id, bytes)
//!                Result(id, bytes)  Error(id or 0, kind, message)  Workers(total, free)
//!                WantOriginal(id, board id)
//! ```
//!
//! `WantOriginal` asks for a future in future.p2p 0.4.0's format, when a worker that reads
//! only that one was accepted for it; R answers with `Original` (`rpkg/R/original.R`).
//!
//! A large payload does not travel in a frame: R serializes it straight into a loopback
//! connection of its own, which opens with the line [`UploadLine`] and ends with the
//! payload, so that R never holds a serialized copy (it cannot know the size before it has
//! written it all). `SubmitUploaded` then submits it, in order with R's other frames.
//!
//! Bodies are laid out for base R's `readBin`/`writeBin`: big-endian 32-bit integers,
//! UTF-8 text, raw bytes; hellos are `key=value` lines.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use p2p_proto::frame::RemoteErrorKind;

use crate::frame::{self, RFrameError, RawFrame, put_frame};

/// Version of the bridge frames; both hellos carry it.
pub const BRIDGE_PROTOCOL_VERSION: u32 = 1;

mod kind {
    pub const HELLO: u8 = 1;
    pub const SUBMIT: u8 = 2;
    pub const CANCEL: u8 = 3;
    pub const POLL: u8 = 4;
    pub const ORIGINAL: u8 = 5;
    pub const SUBMIT_UPLOADED: u8 = 6;
    pub const SERVER_HELLO: u8 = 10;
    pub const STATUS: u8 = 11;
    pub const CONDITION: u8 = 12;
    pub const RESULT: u8 = 13;
    pub const ERROR: u8 = 14;
    pub const WORKERS: u8 = 15;
    pub const WANT_ORIGINAL: u8 = 16;
}

/// What the R session sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// First frame of a session: who the R side is.
    Hello(ClientHello),
    /// Run a future. `payload` is what `future.p2p:::future_payload()` made; its length is
    /// the size announced on the board.
    Submit {
        id: u32,
        label: String,
        payload: Bytes,
    },
    /// Run a future whose payload R wrote on an upload connection opened by
    /// [`UploadLine`] with the same id.
    SubmitUploaded { id: u32, label: String },
    /// Withdraw the future, or interrupt it on its worker.
    Cancel { id: u32 },
    /// Ask for the status of future `id`, or with id 0 for the worker counts.
    Poll { id: u32 },
    /// Answer to [`Reply::WantOriginal`]: future `id` as future.p2p 0.4.0's client ships
    /// it (the RDS file of the Future), or why R could not make it.
    Original {
        id: u32,
        payload: Result<Bytes, String>,
    },
}

/// What the `future-p2p` child sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer to the R session's hello.
    Hello(ServerHello),
    /// Where future `id` is.
    Status {
        id: u32,
        state: FutureState,
        /// Free text for the user, e.g. the worker it went to.
        detail: String,
    },
    /// A serialized immediate condition relayed while future `id` runs.
    Condition { id: u32, condition: Bytes },
    /// The serialized `FutureResult` of future `id`; the last message about it.
    Result { id: u32, result: Bytes },
    /// Future `id` failed without a result (the last message about it), or with id 0,
    /// the session has a problem.
    Error {
        id: u32,
        kind: ErrorKind,
        message: String,
    },
    /// How many worker slots the cluster has, and how many are idle.
    Workers { total: u32, free: u32 },
    /// Future `id` goes to a future.p2p 0.4.0 worker under the board id `future`: R answers
    /// with [`Request::Original`].
    WantOriginal { id: u32, future: String },
}

/// The lifecycle of a submitted future, as the R backend shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FutureState {
    /// Posted; waiting for a worker's offer.
    Queued = 1,
    /// Accepted by a worker; the payload is on its way.
    Sent = 2,
    /// The worker is evaluating it.
    Running = 3,
    /// Its worker was lost; it is queued again.
    Requeued = 4,
}

/// Why a future (or the session) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A worker's own failure class.
    Remote(RemoteErrorKind),
    /// No worker could run it within the retry budget.
    Exhausted,
    /// The child's connection to the cluster failed.
    Cluster,
    /// The R session sent something the child does not understand.
    Protocol,
}

/// The R session's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub protocol: u32,
    pub r_version: String,
    pub future_version: String,
    /// Payload generation the session makes (`expr` or `evalFuture`).
    pub api: String,
    pub pid: u32,
}

/// The child's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub protocol: u32,
    /// The `future-p2p` version.
    pub version: String,
    /// The cluster it connected to, e.g. `alice/p2p`.
    pub cluster: String,
    /// The largest payload it takes, so R refuses a larger one before sending it.
    pub max_payload: u64,
}

impl FutureState {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<FutureState> {
        [
            FutureState::Queued,
            FutureState::Sent,
            FutureState::Running,
            FutureState::Requeued,
        ]
        .into_iter()
        .find(|state| state.code() == code)
    }
}

/// Error kinds on the wire, 1 to [`ErrorKind::LAST_CODE`]; R maps them to future's
/// error classes (`rpkg/R/bridge.R`).
impl ErrorKind {
    /// The highest error code on the wire; codes run from 1.
    pub const LAST_CODE: u8 = 10;

    fn code(self) -> u8 {
        match self {
            ErrorKind::Remote(RemoteErrorKind::Refused) => 1,
            ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge) => 2,
            ErrorKind::Remote(RemoteErrorKind::TimeLimit) => 3,
            ErrorKind::Remote(RemoteErrorKind::Cancelled) => 4,
            ErrorKind::Remote(RemoteErrorKind::Crashed) => 5,
            ErrorKind::Remote(RemoteErrorKind::Unsupported) => 6,
            ErrorKind::Remote(RemoteErrorKind::Failed) => 7,
            ErrorKind::Exhausted => 8,
            ErrorKind::Cluster => 9,
            ErrorKind::Protocol => 10,
        }
    }

    fn from_code(code: u8) -> Option<ErrorKind> {
        Some(match code {
            1 => ErrorKind::Remote(RemoteErrorKind::Refused),
            2 => ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge),
            3 => ErrorKind::Remote(RemoteErrorKind::TimeLimit),
            4 => ErrorKind::Remote(RemoteErrorKind::Cancelled),
            5 => ErrorKind::Remote(RemoteErrorKind::Crashed),
            6 => ErrorKind::Remote(RemoteErrorKind::Unsupported),
            7 => ErrorKind::Remote(RemoteErrorKind::Failed),
            8 => ErrorKind::Exhausted,
            9 => ErrorKind::Cluster,
            10 => ErrorKind::Protocol,
            _ => return None,
        })
    }
}

impl From<RemoteErrorKind> for ErrorKind {
    fn from(kind: RemoteErrorKind) -> Self {
        ErrorKind::Remote(kind)
    }
}

impl Request {
    /// Appends the frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), RFrameError> {
        match self {
            Request::Hello(hello) => put_frame(dst, kind::HELLO, 0, hello.to_lines().as_bytes())?,
            Request::Submit { id, label, payload } => {
                let label_len = u32::try_from(label.len())
                    .map_err(|_| RFrameError::TextTooLong(label.len()))?;
                let mut body = BytesMut::with_capacity(4 + label.len() + payload.len());
                body.put_u32(label_len);
                body.put_slice(label.as_bytes());
                body.put_slice(payload);
                put_frame(dst, kind::SUBMIT, *id, &body)?
            }
            Request::SubmitUploaded { id, label } => {
                let label_len = u32::try_from(label.len())
                    .map_err(|_| RFrameError::TextTooLong(label.len()))?;
                let mut body = BytesMut::with_capacity(4 + label.len());
                body.put_u32(label_len);
                body.put_slice(label.as_bytes());
                put_frame(dst, kind::SUBMIT_UPLOADED, *id, &body)?
            }
            Request::Cancel { id } => put_frame(dst, kind::CANCEL, *id, &[])?,
            Request::Poll { id } => put_frame(dst, kind::POLL, *id, &[])?,
            Request::Original { id, payload } => {
                let mut body = BytesMut::new();
                match payload {
                    Ok(rds) => {
                        body.put_u8(1);
                        body.extend_from_slice(rds);
                    }
                    Err(why) => {
                        body.put_u8(0);
                        body.extend_from_slice(why.as_bytes());
                    }
                }
                put_frame(dst, kind::ORIGINAL, *id, &body)?
            }
        }
        Ok(())
    }
}

impl TryFrom<RawFrame> for Request {
    type Error = RFrameError;

    fn try_from(raw: RawFrame) -> Result<Self, RFrameError> {
        let id = raw.id;
        match raw.kind {
            kind::HELLO => {
                let text = raw.text()?;
                ClientHello::from_lines(&text).map(Request::Hello)
            }
            kind::SUBMIT => {
                let (label, payload) = label_and_rest(&raw)?;
                Ok(Request::Submit { id, label, payload })
            }
            kind::SUBMIT_UPLOADED => match label_and_rest(&raw)? {
                (label, rest) if rest.is_empty() => Ok(Request::SubmitUploaded { id, label }),
                (_, rest) => Err(raw.malformed(format!("{} bytes after the label", rest.len()))),
            },
            kind::CANCEL => raw.empty().map(|()| Request::Cancel { id }),
            kind::POLL => raw.empty().map(|()| Request::Poll { id }),
            kind::ORIGINAL => {
                let mut body = raw.body.clone();
                if body.is_empty() {
                    return Err(raw.malformed("no outcome"));
                }
                let payload = match body.get_u8() {
                    1 => Ok(body),
                    0 => Err(frame::utf8(raw.kind, &body)?),
                    other => return Err(raw.malformed(format!("unknown outcome {other}"))),
                };
                Ok(Request::Original { id, payload })
            }
            kind::SERVER_HELLO..=kind::WANT_ORIGINAL => {
                Err(RFrameError::WrongDirection { kind: raw.kind })
            }
            other => Err(RFrameError::UnknownKind(other)),
        }
    }
}

/// A SUBMIT body's label and what follows it.
fn label_and_rest(raw: &RawFrame) -> Result<(String, Bytes), RFrameError> {
    // A cheap handle on the same bytes: `raw` stays whole for error messages.
    let mut body = raw.body.clone();
    if body.len() < 4 {
        return Err(raw.malformed("no label length"));
    }
    let label_len = body.get_u32() as usize;
    if label_len > body.len() {
        return Err(raw.malformed(format!(
            "label of {label_len} bytes in a body of {}",
            body.len()
        )));
    }
    let label = frame::utf8(raw.kind, &body.split_to(label_len))?;
    Ok((label, body))
}

/// The first line of an upload connection: `TOKEN upload ID SIZE_HINT`, newline-ended.
/// `size_hint` is R's estimate of the payload's size (its buffer is made that large at
/// once, up to the limit); the payload follows the line, and the connection's end ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLine {
    pub token: String,
    pub id: u32,
    pub size_hint: u64,
}

impl UploadLine {
    /// Longest line accepted: a token, two numbers and the keyword.
    pub const MAX_LEN: usize = 256;

    /// Parses a line (without its newline); `None` if it is not an upload line.
    pub fn parse(line: &str) -> Option<UploadLine> {
        let mut words = line.split(' ');
        let token = words.next().filter(|t| !t.is_empty())?;
        if words.next()? != "upload" {
            return None;
        }
        let id = words.next()?.parse().ok().filter(|&id| id != 0)?;
        let size_hint = words.next()?.parse().ok()?;
        if words.next().is_some() {
            return None;
        }
        Some(UploadLine {
            token: token.to_owned(),
            id,
            size_hint,
        })
    }

    /// The line, with its newline.
    pub fn to_line(&self) -> String {
        format!("{} upload {} {}\n", self.token, self.id, self.size_hint)
    }
}

impl Reply {
    /// Appends the frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), RFrameError> {
        match self {
            Reply::Hello(hello) => {
                put_frame(dst, kind::SERVER_HELLO, 0, hello.to_lines().as_bytes())?
            }
            Reply::Status { id, state, detail } => {
                let mut body = BytesMut::with_capacity(1 + detail.len());
                body.put_u8(state.code());
                body.put_slice(detail.as_bytes());
                put_frame(dst, kind::STATUS, *id, &body)?
            }
            Reply::Condition { id, condition } => put_frame(dst, kind::CONDITION, *id, condition)?,
            Reply::Result { id, result } => put_frame(dst, kind::RESULT, *id, result)?,
            Reply::Error { id, kind, message } => {
                let mut body = BytesMut::with_capacity(1 + message.len());
                body.put_u8(kind.code());
                body.put_slice(message.as_bytes());
                put_frame(dst, kind::ERROR, *id, &body)?
            }
            Reply::Workers { total, free } => {
                let mut body = [0u8; 8];
                body[..4].copy_from_slice(&total.to_be_bytes());
                body[4..].copy_from_slice(&free.to_be_bytes());
                put_frame(dst, kind::WORKERS, 0, &body)?
            }
            Reply::WantOriginal { id, future } => {
                put_frame(dst, kind::WANT_ORIGINAL, *id, future.as_bytes())?
            }
        }
        Ok(())
    }
}

impl Reply {
    /// Appends the frame to `dst`, except that the body of a result or a condition is not
    /// copied: its header alone goes into `dst` and the body is returned, to be written
    /// after it.
    pub fn encode_split(&self, dst: &mut BytesMut) -> Result<Option<Bytes>, RFrameError> {
        let (kind, id, body) = match self {
            Reply::Result { id, result } => (kind::RESULT, *id, result),
            Reply::Condition { id, condition } => (kind::CONDITION, *id, condition),
            other => {
                other.encode(dst)?;
                return Ok(None);
            }
        };
        dst.extend_from_slice(&frame::header(kind, id, body.len())?);
        Ok(Some(body.clone()))
    }
}

impl TryFrom<RawFrame> for Reply {
    type Error = RFrameError;

    fn try_from(raw: RawFrame) -> Result<Self, RFrameError> {
        let id = raw.id;
        let code_and_text = |what: &str| -> Result<(u8, String), RFrameError> {
            let (&code, text) = raw
                .body
                .split_first()
                .ok_or_else(|| raw.malformed(format!("no {what}")))?;
            Ok((code, frame::utf8(raw.kind, text)?))
        };
        match raw.kind {
            kind::SERVER_HELLO => {
                let text = raw.text()?;
                ServerHello::from_lines(&text).map(Reply::Hello)
            }
            kind::STATUS => {
                let (code, detail) = code_and_text("state")?;
                let state = FutureState::from_code(code)
                    .ok_or_else(|| raw.malformed(format!("unknown state {code}")))?;
                Ok(Reply::Status { id, state, detail })
            }
            kind::CONDITION => Ok(Reply::Condition {
                id,
                condition: raw.body,
            }),
            kind::RESULT => Ok(Reply::Result {
                id,
                result: raw.body,
            }),
            kind::ERROR => {
                let (code, message) = code_and_text("error kind")?;
                let kind = ErrorKind::from_code(code)
                    .ok_or_else(|| raw.malformed(format!("unknown error kind {code}")))?;
                Ok(Reply::Error { id, kind, message })
            }
            kind::WORKERS => {
                let mut body = raw.body.clone();
                if body.len() != 8 {
                    return Err(raw.malformed(format!("{} bytes instead of 8", body.len())));
                }
                Ok(Reply::Workers {
                    total: body.get_u32(),
                    free: body.get_u32(),
                })
            }
            kind::WANT_ORIGINAL => Ok(Reply::WantOriginal {
                id,
                future: frame::utf8(raw.kind, &raw.body)?,
            }),
            kind::HELLO..=kind::SUBMIT_UPLOADED => {
                Err(RFrameError::WrongDirection { kind: raw.kind })
            }
            other => Err(RFrameError::UnknownKind(other)),
        }
    }
}

fn hello_fields(text: &str) -> Result<Vec<(&str, &str)>, RFrameError> {
    frame::parse_lines(text)
}

fn required<'a>(fields: &[(&str, &'a str)], key: &str) -> Result<&'a str, RFrameError> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, value)| *value)
        .ok_or_else(|| RFrameError::MalformedHello(format!("no {key}=")))
}

fn number(fields: &[(&str, &str)], key: &str) -> Result<u32, RFrameError> {
    let value = required(fields, key)?;
    value
        .parse()
        .map_err(|_| RFrameError::MalformedHello(format!("{key} {value:?}")))
}

impl ClientHello {
    /// The `key=value` lines `bridge_hello()` in `bridge.R` writes.
    pub fn to_lines(&self) -> String {
        format!(
            "protocol={}\nr={}\nfuture={}\napi={}\npid={}",
            self.protocol, self.r_version, self.future_version, self.api, self.pid
        )
    }

    /// Parses the hello lines; unknown keys are ignored.
    pub fn from_lines(text: &str) -> Result<ClientHello, RFrameError> {
        let fields = hello_fields(text)?;
        Ok(ClientHello {
            protocol: number(&fields, "protocol")?,
            r_version: required(&fields, "r")?.to_owned(),
            future_version: required(&fields, "future")?.to_owned(),
            api: required(&fields, "api")?.to_owned(),
            pid: number(&fields, "pid")?,
        })
    }
}

impl ServerHello {
    pub fn to_lines(&self) -> String {
        format!(
            "protocol={}\nversion={}\ncluster={}\nmax_payload={}",
            self.protocol, self.version, self.cluster, self.max_payload
        )
    }

    /// Parses the hello lines; unknown keys are ignored.
    pub fn from_lines(text: &str) -> Result<ServerHello, RFrameError> {
        let fields = hello_fields(text)?;
        Ok(ServerHello {
            protocol: number(&fields, "protocol")?,
            version: required(&fields, "version")?.to_owned(),
            cluster: required(&fields, "cluster")?.to_owned(),
            max_payload: {
                let value = required(&fields, "max_payload")?;
                value
                    .parse()
                    .map_err(|_| RFrameError::MalformedHello(format!("max_payload {value:?}")))?
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::RFrameReader;
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..128).prop_map(Bytes::from)
    }

    /// Hello values: no newline or `=`-free constraint beyond what the lines allow.
    fn arb_word() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9./_-]{1,16}"
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (
                any::<u32>(),
                arb_word(),
                arb_word(),
                arb_word(),
                any::<u32>()
            )
                .prop_map(|(protocol, r_version, future_version, api, pid)| {
                    Request::Hello(ClientHello {
                        protocol,
                        r_version,
                        future_version,
                        api,
                        pid,
                    })
                }),
            (any::<u32>(), "\\PC{0,30}", arb_bytes())
                .prop_map(|(id, label, payload)| Request::Submit { id, label, payload }),
            (any::<u32>(), "\\PC{0,30}")
                .prop_map(|(id, label)| Request::SubmitUploaded { id, label }),
            any::<u32>().prop_map(|id| Request::Cancel { id }),
            any::<u32>().prop_map(|id| Request::Poll { id }),
            (any::<u32>(), arb_bytes()).prop_map(|(id, rds)| Request::Original {
                id,
                payload: Ok(rds)
            }),
            (any::<u32>(), "\\PC{0,30}").prop_map(|(id, why)| Request::Original {
                id,
                payload: Err(why)
            }),
        ]
    }

    fn arb_state() -> impl Strategy<Value = FutureState> {
        prop_oneof![
            Just(FutureState::Queued),
            Just(FutureState::Sent),
            Just(FutureState::Running),
            Just(FutureState::Requeued),
        ]
    }

    fn arb_error_kind() -> impl Strategy<Value = ErrorKind> {
        (1..=ErrorKind::LAST_CODE).prop_map(|code| ErrorKind::from_code(code).unwrap())
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            (any::<u32>(), arb_word(), arb_word(), any::<u64>()).prop_map(
                |(protocol, version, cluster, max_payload)| {
                    Reply::Hello(ServerHello {
                        protocol,
                        version,
                        cluster,
                        max_payload,
                    })
                }
            ),
            (any::<u32>(), arb_state(), "\\PC{0,30}")
                .prop_map(|(id, state, detail)| Reply::Status { id, state, detail }),
            (any::<u32>(), arb_bytes())
                .prop_map(|(id, condition)| Reply::Condition { id, condition }),
            (any::<u32>(), arb_bytes()).prop_map(|(id, result)| Reply::Result { id, result }),
            (any::<u32>(), arb_error_kind(), "\\PC{0,30}")
                .prop_map(|(id, kind, message)| Reply::Error { id, kind, message }),
            (any::<u32>(), any::<u32>()).prop_map(|(total, free)| Reply::Workers { total, free }),
            (any::<u32>(), "\\PC{0,30}")
                .prop_map(|(id, future)| Reply::WantOriginal { id, future }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(requests in proptest::collection::vec(arb_request(), 1..5)) {
            let mut stream = BytesMut::new();
            for request in &requests {
                request.encode(&mut stream).unwrap();
            }
            let decoder = RFrameReader::default();
            for request in &requests {
                prop_assert_eq!(decoder.decode::<Request>(&mut stream).unwrap(), Some(request.clone()));
            }
            prop_assert!(stream.is_empty());
        }

        #[test]
        fn replies_round_trip(replies in proptest::collection::vec(arb_reply(), 1..5)) {
            let mut stream = BytesMut::new();
            for reply in &replies {
                reply.encode(&mut stream).unwrap();
            }
            let decoder = RFrameReader::default();
            for reply in &replies {
                prop_assert_eq!(decoder.decode::<Reply>(&mut stream).unwrap(), Some(reply.clone()));
            }
            prop_assert!(stream.is_empty());
        }

        #[test]
        fn split_replies_are_the_same_bytes(reply in arb_reply()) {
            let mut whole = BytesMut::new();
            reply.encode(&mut whole).unwrap();
            let mut split = BytesMut::new();
            if let Some(body) = reply.encode_split(&mut split).unwrap() {
                split.extend_from_slice(&body);
            }
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let decoder = RFrameReader::new(128);
            let mut stream = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode::<Request>(&mut stream) {}
            let mut stream = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode::<Reply>(&mut stream) {}
        }
    }

    fn raw(kind: u8, id: u32, body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, kind, id, body).unwrap();
        buf
    }

    proptest! {
        #[test]
        fn upload_lines_round_trip(token in "[a-zA-Z0-9]{1,20}", id in 1u32.., size_hint in any::<u64>()) {
            let line = UploadLine { token, id, size_hint };
            let text = line.to_line();
            prop_assert!(text.len() <= UploadLine::MAX_LEN);
            prop_assert_eq!(UploadLine::parse(text.trim_end_matches('\n')), Some(line));
        }

        #[test]
        fn upload_line_garbage_is_none_or_a_line(text in "\\PC{0,60}") {
            if let Some(line) = UploadLine::parse(&text) {
                prop_assert!(line.id != 0);
                let start = format!("{} upload ", line.token);
                prop_assert!(text.starts_with(&start));
            }
        }
    }

    #[test]
    fn what_is_not_an_upload_line() {
        for line in [
            "tok",
            "tok upload",
            "tok upload 0 5",
            "tok upload 1",
            "tok upload x 5",
            "tok upload 1 5 6",
            " upload 1 5",
            "tok fetch 1 5",
        ] {
            assert_eq!(UploadLine::parse(line), None, "{line}");
        }
        assert_eq!(
            UploadLine::parse("tok upload 3 100"),
            Some(UploadLine {
                token: "tok".into(),
                id: 3,
                size_hint: 100
            })
        );
    }

    #[test]
    fn malformed_requests_are_typed_errors() {
        let decoder = RFrameReader::new(64);
        let cases = [
            (raw(kind::SUBMIT, 1, &[0, 0]), "no label length"),
            (
                raw(kind::SUBMIT, 1, &[0, 0, 0, 9, b'a']),
                "label of 9 bytes",
            ),
        ];
        for (mut bytes, reason) in cases {
            let err = decoder.decode::<Request>(&mut bytes).unwrap_err();
            assert!(
                matches!(&err, RFrameError::MalformedBody { reason: r, .. } if r.contains(reason)),
                "{err}"
            );
        }
        assert_eq!(
            decoder.decode::<Request>(&mut raw(kind::SUBMIT, 1, &[0, 0, 0, 1, 0xff])),
            Err(RFrameError::NotUtf8 { kind: kind::SUBMIT })
        );
        assert!(matches!(
            decoder.decode::<Request>(&mut raw(kind::SUBMIT_UPLOADED, 1, &[0, 0, 0, 1, b'a', b'b'])),
            Err(RFrameError::MalformedBody { reason, .. }) if reason.contains("1 bytes after the label")
        ));
        assert_eq!(
            decoder.decode::<Request>(&mut raw(kind::CANCEL, 1, b"x")),
            Err(RFrameError::UnexpectedBody {
                kind: kind::CANCEL,
                len: 1
            })
        );
        assert_eq!(
            decoder.decode::<Request>(&mut raw(kind::RESULT, 1, b"")),
            Err(RFrameError::WrongDirection { kind: kind::RESULT })
        );
        assert_eq!(
            decoder.decode::<Request>(&mut raw(77, 1, b"")),
            Err(RFrameError::UnknownKind(77))
        );
        assert_eq!(
            decoder.decode::<Request>(&mut raw(kind::HELLO, 0, b"protocol=1\nr=4.2.2")),
            Err(RFrameError::MalformedHello("no future=".into()))
        );
        assert!(matches!(
            decoder.decode::<Request>(&mut raw(kind::SUBMIT, 1, &[0; 65])),
            Err(RFrameError::BodyTooLarge(_))
        ));
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        let decoder = RFrameReader::default();
        for (mut bytes, reason) in [
            (raw(kind::STATUS, 1, &[]), "no state"),
            (raw(kind::STATUS, 1, &[9]), "unknown state 9"),
            (raw(kind::ERROR, 1, &[0, b'x']), "unknown error kind 0"),
            (raw(kind::WORKERS, 0, &[0; 7]), "7 bytes instead of 8"),
        ] {
            let err = decoder.decode::<Reply>(&mut bytes).unwrap_err();
            assert!(
                matches!(&err, RFrameError::MalformedBody { reason: r, .. } if r.contains(reason)),
                "{err}"
            );
        }
        assert_eq!(
            decoder.decode::<Reply>(&mut raw(kind::SUBMIT, 1, b"")),
            Err(RFrameError::WrongDirection { kind: kind::SUBMIT })
        );
    }

    #[test]
    fn error_codes_are_one_to_one() {
        for code in 0..=u8::MAX {
            match ErrorKind::from_code(code) {
                Some(kind) => assert_eq!(kind.code(), code),
                None => assert!(code == 0 || code > ErrorKind::LAST_CODE),
            }
        }
    }
}
