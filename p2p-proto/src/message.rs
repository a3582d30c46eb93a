//! Board messages: what peers say to each other on the cluster's pipe topic.
//!
//! | type                     | sender | keys besides when, type, from            |
//! |--------------------------|--------|------------------------------------------|
//! | worker / client / cluster| anyone | expires, protocols, slots, busy          |
//! | request                  | client | expires, future, size, protocols         |
//! | offer                    | worker | expires, to, future, protocols, pk       |
//! | accept                   | client | expires, to, future, via                 |
//! | withdraw                 | client | to (a worker, or `<none>`), future       |
//! | result                   | worker | expires, to, future, via                 |
//! | decline                  | worker | to, future, reason                       |
//!
//! `protocols` is absent in lines of the seed version of future.p2p, hence optional. `pk`
//! is this project's addition (a worker's X25519 key, for sealed codes), so is `slots` (how
//! many tasks a worker runs at once, on its hellos; optional, future.p2p ignores it), and so is `decline`,
//! a worker's refusal of a request (future.p2p peers ignore it as an unknown type). Keys
//! nobody here knows are kept in [`BoardLine::extra`], and a type nobody here knows is surfaced as
//! [`Message::Unknown`]: newer peers can extend the board without breaking older ones.
//! The text form is in [`crate::line`].

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::id::{FutureId, IdError, PeerId, WormholeCode};
use crate::protocols::Protocols;
use crate::time::{BoardTime, Expiry};

/// One line on the board: timestamp, message, and keys this build does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardLine {
    /// Sender's wall-clock time (informational, sender's zone).
    pub when: BoardTime,
    /// What the line says.
    pub message: Message,
    /// Unknown keys, in the order they appeared; written back after the known ones.
    pub extra: Vec<(String, String)>,
}

impl BoardLine {
    /// A line with no extra keys.
    pub fn new(when: BoardTime, message: Message) -> Self {
        BoardLine {
            when,
            message,
            extra: Vec::new(),
        }
    }
}

/// The typed content of a board line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A peer announces itself (`type=worker`, `client` or `cluster`).
    Hello(Hello),
    /// A client asks for a worker.
    Request(Request),
    /// A worker offers to take a request.
    Offer(Offer),
    /// A client accepts an offer and says how the payload travels.
    Accept(Accept),
    /// A client takes a request or an accept back.
    Withdraw(Withdraw),
    /// A worker says a result is ready (file route of the seed version).
    Result(ResultReady),
    /// A worker refuses or gives up a task (this project's extension).
    Decline(Decline),
    /// A `type` this build does not know; its keys are in [`BoardLine::extra`].
    Unknown {
        /// The `type` value.
        kind: String,
    },
}

impl Message {
    /// The value of the `type` key.
    pub fn kind(&self) -> &str {
        match self {
            Message::Hello(hello) => hello.role.as_str(),
            Message::Request(_) => "request",
            Message::Offer(_) => "offer",
            Message::Accept(_) => "accept",
            Message::Withdraw(_) => "withdraw",
            Message::Result(_) => "result",
            Message::Decline(_) => "decline",
            Message::Unknown { kind } => kind,
        }
    }

    /// The sender, for every known type.
    pub fn from(&self) -> Option<&PeerId> {
        match self {
            Message::Hello(m) => Some(&m.from),
            Message::Request(m) => Some(&m.from),
            Message::Offer(m) => Some(&m.from),
            Message::Accept(m) => Some(&m.from),
            Message::Withdraw(m) => Some(&m.from),
            Message::Result(m) => Some(&m.from),
            Message::Decline(m) => Some(&m.from),
            Message::Unknown { .. } => None,
        }
    }
}

/// Who says hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Offers to run futures.
    Worker,
    /// Submits futures.
    Client,
    /// The host holding the topic open (`future-p2p host`, future.p2p's `host_cluster()`).
    Cluster,
}

impl Role {
    /// The `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Client => "client",
            Role::Cluster => "cluster",
        }
    }
}

/// A peer announces itself and how long it stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Worker, client or cluster host.
    pub role: Role,
    /// Who says hello.
    pub from: PeerId,
    /// When the hello lapses unless repeated.
    pub expires: Expiry,
    /// Capabilities; `None` for the seed version, which sent none.
    pub protocols: Option<Protocols>,
    /// How many tasks a worker runs at once (this project's workers say it; `None` for
    /// everyone else, and for a worker that does not, read as one).
    pub slots: Option<u32>,
    /// How many of those slots hold a task as the worker says hello (this project's
    /// workers; `None` for everyone else). `future-p2p status` shows it.
    pub busy: Option<u32>,
}

/// A client has a future to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client.
    pub from: PeerId,
    /// When the request lapses unless posted again.
    pub expires: Expiry,
    /// The future asking for a worker.
    pub future: FutureId,
    /// Payload size in bytes.
    pub size: u64,
    /// What the client speaks; `None` for the seed version.
    pub protocols: Option<Protocols>,
}

/// A worker offers to run a requested future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The worker.
    pub from: PeerId,
    /// When the offer lapses.
    pub expires: Expiry,
    /// The requesting client.
    pub to: PeerId,
    /// The requested future.
    pub future: FutureId,
    /// What the worker speaks; `None` for the seed version.
    pub protocols: Option<Protocols>,
    /// Key to seal the accept's code to (this project's peers only).
    pub pk: Option<WorkerKey>,
}

/// The client picks a worker and says how the future will travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The client.
    pub from: PeerId,
    /// How long the worker has to start the transfer.
    pub expires: Expiry,
    /// The chosen worker.
    pub to: PeerId,
    /// The future given to the worker.
    pub future: FutureId,
    /// How the payload travels: a wormhole code, plain or sealed to the worker.
    pub via: TransferUri,
}

/// The client takes a request (or an accept) back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdraw {
    /// The client.
    pub from: PeerId,
    /// The worker concerned; `None` for a request no worker was chosen for, written
    /// `to=<none>` as future.p2p 0.4.0 writes it (older lines of this project named the
    /// client itself, which reads back as `Some`).
    pub to: Option<PeerId>,
    /// The future taken back.
    pub future: FutureId,
}

impl Withdraw {
    /// The `to` value of a withdraw that names no worker (future.p2p 0.4.0's `"<none>"`).
    pub const NO_WORKER: &'static str = "<none>";
}

/// A worker announces that a result is ready to be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultReady {
    /// The worker.
    pub from: PeerId,
    /// How long the result waits.
    pub expires: Expiry,
    /// The client the result belongs to.
    pub to: PeerId,
    /// The future whose result is ready.
    pub future: FutureId,
    /// Where to fetch the result.
    pub via: TransferUri,
}

/// A worker refuses a client's request, so that the client can tell its user why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    /// The worker.
    pub from: PeerId,
    /// The requesting client.
    pub to: PeerId,
    /// The future declined.
    pub future: FutureId,
    /// Why.
    pub reason: DeclineReason,
}

/// Why a worker declined.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    /// The worker's allowlist does not include the client's user.
    NotAllowed,
    /// The payload is larger than the worker accepts.
    TooLarge,
    /// The worker took the task but could not produce a result (its executor failed).
    Failed,
    /// The task ran past the worker's time limit.
    TimeLimit,
    /// The worker's slots filled up before the accept came: the task never reached it
    /// (ask another worker; nothing was tried).
    Busy,
    /// A reason from a newer peer (a word of letters, digits and '-').
    Other(String),
}

impl fmt::Display for DeclineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeclineReason::NotAllowed => "not-allowed",
            DeclineReason::TooLarge => "too-large",
            DeclineReason::Failed => "failed",
            DeclineReason::TimeLimit => "time-limit",
            DeclineReason::Busy => "busy",
            DeclineReason::Other(reason) => reason,
        })
    }
}

impl FromStr for DeclineReason {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        match value {
            "not-allowed" => Ok(DeclineReason::NotAllowed),
            "too-large" => Ok(DeclineReason::TooLarge),
            "failed" => Ok(DeclineReason::Failed),
            "time-limit" => Ok(DeclineReason::TimeLimit),
            "busy" => Ok(DeclineReason::Busy),
            other
                if !other.is_empty()
                    && other.len() <= 64
                    && other
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Ok(DeclineReason::Other(other.to_owned()))
            }
            other => Err(IdError {
                kind: "decline reason",
                value: other.chars().take(80).collect(),
                reason: "must be a word of letters, digits and '-'",
            }),
        }
    }
}

/// A worker's X25519 public key, written as 43 characters of unpadded base64url (the board
/// format forbids `=`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerKey(pub [u8; 32]);

impl fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkerKey({self})")
    }
}

impl fmt::Display for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl FromStr for WorkerKey {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok();
        bytes
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(WorkerKey)
            .ok_or_else(|| IdError {
                kind: "worker key",
                value: value.chars().take(80).collect(),
                reason: "expected 32 bytes in unpadded base64url",
            })
    }
}

/// How a payload travels, as written in `via`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransferUri {
    /// `wormhole://CODE`, future.p2p 0.4.0.
    Wormhole(WormholeCode),
    /// A bare `CODE`, as the seed version of future.p2p writes it.
    BareWormhole(WormholeCode),
    /// `wormhole-sealed://BOX`: the code sealed to the accepted worker's [`WorkerKey`], so
    /// other members reading the board cannot race for the transfer.
    Sealed(SealedCode),
}

impl TransferUri {
    /// The URI scheme of sealed codes.
    pub const SEALED_SCHEME: &'static str = "wormhole-sealed://";
    /// The URI scheme of plain codes.
    pub const WORMHOLE_SCHEME: &'static str = "wormhole://";
}

impl FromStr for TransferUri {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        if let Some(code) = value.strip_prefix(Self::WORMHOLE_SCHEME) {
            return code.parse().map(TransferUri::Wormhole);
        }
        if let Some(sealed) = value.strip_prefix(Self::SEALED_SCHEME) {
            return sealed.parse().map(TransferUri::Sealed);
        }
        if value.contains("://") {
            return Err(IdError {
                kind: "transfer URI",
                value: value.chars().take(80).collect(),
                reason: "unknown scheme (known: wormhole://, wormhole-sealed://)",
            });
        }
        value.parse().map(TransferUri::BareWormhole)
    }
}

impl fmt::Display for TransferUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferUri::Wormhole(code) => write!(f, "{}{code}", Self::WORMHOLE_SCHEME),
            TransferUri::BareWormhole(code) => code.fmt(f),
            TransferUri::Sealed(sealed) => write!(f, "{}{sealed}", Self::SEALED_SCHEME),
        }
    }
}

/// A sealed box (ciphertext) holding a wormhole code; opening it is the worker's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealedCode(Vec<u8>);

impl SealedCode {
    /// Largest sealed box accepted: a 126-byte code plus the box overhead, with room to spare.
    pub const MAX_LEN: usize = 256;

    /// Wraps ciphertext.
    pub fn new(ciphertext: Vec<u8>) -> Result<Self, IdError> {
        if ciphertext.is_empty() || ciphertext.len() > Self::MAX_LEN {
            return Err(IdError {
                kind: "sealed code",
                value: format!("{} bytes", ciphertext.len()),
                reason: "must be 1 to 256 bytes",
            });
        }
        Ok(SealedCode(ciphertext))
    }

    /// The ciphertext.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for SealedCode {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| IdError {
            kind: "sealed code",
            value: value.chars().take(80).collect(),
            reason: "expected unpadded base64url",
        })?;
        SealedCode::new(bytes)
    }
}

impl fmt::Display for SealedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_uris_of_all_generations() {
        let v04: TransferUri = "wormhole://3141-0a3f9c1b2e4d".parse().unwrap();
        let seed: TransferUri = "3141-0a3f9c1b2e4d".parse().unwrap();
        assert!(
            matches!(&v04, TransferUri::Wormhole(code) if code.as_str() == "3141-0a3f9c1b2e4d")
        );
        assert!(
            matches!(&seed, TransferUri::BareWormhole(code) if code.as_str() == "3141-0a3f9c1b2e4d")
        );
        assert_eq!(v04.to_string(), "wormhole://3141-0a3f9c1b2e4d");
        assert_eq!(seed.to_string(), "3141-0a3f9c1b2e4d");
        let sealed = TransferUri::Sealed(SealedCode::new(vec![0xfb; 70]).unwrap());
        let text = sealed.to_string();
        assert!(!text.contains('=') && !text.contains(','));
        assert_eq!(text.parse::<TransferUri>().unwrap(), sealed);
        for bad in [
            "ftp://x",
            "wormhole://",
            "wormhole://nocode",
            "wormhole-sealed://",
            "wormhole-sealed://!!",
            "x",
        ] {
            assert!(bad.parse::<TransferUri>().is_err(), "{bad:?} accepted");
        }
        let huge = format!(
            "{}{}",
            TransferUri::SEALED_SCHEME,
            URL_SAFE_NO_PAD.encode([1u8; 257])
        );
        assert!(huge.parse::<TransferUri>().is_err());
    }

    #[test]
    fn worker_keys() {
        let key = WorkerKey([7; 32]);
        let text = key.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<WorkerKey>().unwrap(), key);
        assert!("AAAA".parse::<WorkerKey>().is_err());
        assert!(format!("{text}=").parse::<WorkerKey>().is_err());
    }
}
