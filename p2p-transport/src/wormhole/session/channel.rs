//! The encrypted record channel under a [`super::Session`].
//!
//! Sessions are spoken only between this project's peers, so the channel is ours too: the
//! crate's transit layer writes each record in three unbuffered writes with Nagle on and
//! never uses loopback, which costs tens of milliseconds per round trip. Here:
//! - keys come from the wormhole's PAKE key through the crate's HKDF (`derive_subkey`);
//! - the follower may listen on a configured address, the leader tries that first and then
//!   the leader's transit relays (the standard `please relay TOKEN for side SIDE` handshake,
//!   so our relay and the reference relay both work);
//! - each candidate connection proves knowledge of the key with a handshake line;
//! - records (version [`RECORDS_VERSION`], stated in the hints so that peers of another
//!   version fail with a clear error) are `u32 BE length || AES-256-GCM ciphertext ||
//!   16-byte tag`; the nonce is a per-direction record counter, never sent, so a record
//!   that is replayed, dropped or reordered fails authentication. A record holds at most
//!   [`MAX_RECORD_PLAINTEXT`] bytes: frames and payloads are cut into records as they
//!   are written, several small frames share one. The cipher was picked by measurement
//!   (`examples/wormhole_bench.rs` prints the CPU cost per GiB of each candidate).

use std::net::SocketAddr;
use std::time::Duration;

use magic_wormhole::{Key, KeyPurpose, WormholeKey};
use rand::Rng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::error::SessionError;

/// Which end of the session set-up this peer plays. The two peers must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRole {
    /// The side that picked the code (the client); it connects.
    Leader,
    /// The side that was given the code (the worker); it may listen.
    Follower,
}

/// The record format this build speaks (1 was XSalsa20-Poly1305 with a sent nonce, one
/// record per frame).
pub(crate) const RECORDS_VERSION: u32 = 2;
/// Most plaintext bytes in one record: large enough that the per-record cost (a tag, a
/// length, one call into the cipher) vanishes, small enough to stay in the CPU's cache
/// between being written and being encrypted, and to bound what a reader buffers.
pub(crate) const MAX_RECORD_PLAINTEXT: usize = 256 << 10;
/// Record length field.
pub(crate) const LENGTH: usize = 4;
/// Authentication tag length.
pub(crate) const TAG: usize = 16;
/// How long one direct connection attempt (connect and handshake) may take.
const DIRECT_ATTEMPT: Duration = Duration::from_secs(3);
/// Longest handshake line (ours are about 100 bytes).
const MAX_LINE: usize = 200;

/// Marker for keys derived for sessions.
#[derive(Debug)]
struct SessionKeyPurpose;
impl KeyPurpose for SessionKeyPurpose {}

/// Everything derived from the PAKE key for one session.
pub(crate) struct SessionKeys {
    leader_to_follower: [u8; 32],
    follower_to_leader: [u8; 32],
    leader_proof: String,
    follower_proof: String,
    relay_token: String,
}

impl SessionKeys {
    pub(crate) fn derive(key: &Key<WormholeKey>) -> SessionKeys {
        let sub = |purpose: &str| -> [u8; 32] {
            let derived = key.derive_subkey_from_purpose::<SessionKeyPurpose>(purpose);
            let mut out = [0u8; 32];
            out.copy_from_slice(AsRef::<[u8]>::as_ref(&derived));
            out
        };
        SessionKeys {
            // Version 2 records use another cipher: keys of their own, never shared with v1.
            leader_to_follower: sub("future-p2p/session-v2/leader-to-follower"),
            follower_to_leader: sub("future-p2p/session-v2/follower-to-leader"),
            leader_proof: hex(&sub("future-p2p/session/leader-proof")),
            follower_proof: hex(&sub("future-p2p/session/follower-proof")),
            relay_token: hex(&sub("future-p2p/session/relay-token")),
        }
    }

    /// (key for what we send, key for what we receive).
    pub(crate) fn directional(&self, role: SessionRole) -> ([u8; 32], [u8; 32]) {
        match role {
            SessionRole::Leader => (self.leader_to_follower, self.follower_to_leader),
            SessionRole::Follower => (self.follower_to_leader, self.leader_to_follower),
        }
    }

    fn line(&self, role: SessionRole) -> String {
        match role {
            SessionRole::Leader => format!("future-p2p session leader {}\n", self.leader_proof),
            SessionRole::Follower => {
                format!("future-p2p session follower {}\n", self.follower_proof)
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where each peer can be reached, and its record format; exchanged as one encrypted
/// mailbox message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionHints {
    /// Addresses the follower listens on for a direct connection.
    pub direct: Vec<SocketAddr>,
    /// Transit relays (`tcp://HOST:PORT`); the leader's list is the one both use.
    pub relays: Vec<String>,
    /// The record format the peer speaks; absent in version 1.
    #[serde(default = "records_version_1")]
    pub records: u32,
}

fn records_version_1() -> u32 {
    1
}

impl SessionHints {
    /// Refuses a peer whose records this build cannot read.
    pub(crate) fn check_version(&self) -> Result<(), SessionError> {
        if self.records == RECORDS_VERSION {
            Ok(())
        } else {
            Err(SessionError::Handshake(format!(
                "the peer speaks session records version {}, this build version {}: \
                 run the same future-p2p release on both sides",
                self.records, RECORDS_VERSION
            )))
        }
    }
}

/// How a session's connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPath {
    /// A direct TCP connection to this address.
    Direct(SocketAddr),
    /// Through the transit relay at this address.
    Relay(SocketAddr),
}

/// Leader: try the follower's direct addresses, then the relays, one at a time.
pub(crate) async fn connect_leader(
    keys: &SessionKeys,
    theirs: &SessionHints,
    relays: &[String],
) -> Result<(TcpStream, SessionPath), SessionError> {
    let mut failures = Vec::new();
    for addr in &theirs.direct {
        let attempt = async {
            let mut stream = TcpStream::connect(addr).await.map_err(io_error)?;
            stream.set_nodelay(true).map_err(io_error)?;
            leader_handshake(&mut stream, keys).await?;
            Ok::<_, SessionError>(stream)
        };
        match tokio::time::timeout(DIRECT_ATTEMPT, attempt).await {
            Ok(Ok(stream)) => return Ok((stream, SessionPath::Direct(*addr))),
            Ok(Err(error)) => failures.push(format!("{addr}: {error}")),
            Err(_) => failures.push(format!("{addr}: timed out")),
        }
    }
    let side = random_side();
    for relay in relays {
        let attempt = async {
            let (mut stream, addr) = relay_connect(relay, &keys.relay_token, &side).await?;
            leader_handshake(&mut stream, keys).await?;
            Ok::<_, SessionError>((stream, SessionPath::Relay(addr)))
        };
        match attempt.await {
            Ok(connected) => return Ok(connected),
            Err(error) => failures.push(format!("{relay}: {error}")),
        }
    }
    Err(SessionError::Connect(if failures.is_empty() {
        "no direct address and no relay to try".to_owned()
    } else {
        failures.join("; ")
    }))
}

/// Follower: accept on our listener and wait at each of the leader's relays at once; the
/// first connection that carries the leader's proof wins.
pub(crate) async fn connect_follower(
    keys: &SessionKeys,
    listener: Option<TcpListener>,
    relays: &[String],
) -> Result<(TcpStream, SessionPath), SessionError> {
    let expected = keys.line(SessionRole::Leader);
    let mut candidates = JoinSet::new();
    if let Some(listener) = listener {
        let expected = expected.clone();
        candidates.spawn(async move {
            loop {
                let (mut stream, peer) = listener.accept().await.map_err(io_error)?;
                let _ = stream.set_nodelay(true);
                let proof = tokio::time::timeout(DIRECT_ATTEMPT, read_line(&mut stream)).await;
                if matches!(proof, Ok(Ok(ref line)) if *line == expected) {
                    return Ok((stream, SessionPath::Direct(peer)));
                }
                // A stray or a wrong key: drop it and keep listening for the real leader.
                tracing::debug!(%peer, "session: refused a direct connection");
            }
        });
    }
    let side = random_side();
    for relay in relays {
        let (relay, side, expected) = (relay.clone(), side.clone(), expected.clone());
        let token = keys.relay_token.clone();
        candidates.spawn(async move {
            let (mut stream, addr) = relay_connect(&relay, &token, &side).await?;
            let line = read_line(&mut stream).await?;
            if line != expected {
                return Err(SessionError::Handshake(
                    "wrong proof from peer via relay".into(),
                ));
            }
            Ok((stream, SessionPath::Relay(addr)))
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = candidates.join_next().await {
        match joined {
            Ok(Ok((mut stream, path))) => {
                candidates.abort_all();
                stream
                    .write_all(keys.line(SessionRole::Follower).as_bytes())
                    .await
                    .map_err(io_error)?;
                return Ok((stream, path));
            }
            Ok(Err(error)) => failures.push(error.to_string()),
            Err(join) => failures.push(join.to_string()),
        }
    }
    Err(SessionError::Connect(if failures.is_empty() {
        "no listener and no relay to wait at".to_owned()
    } else {
        failures.join("; ")
    }))
}

async fn leader_handshake(stream: &mut TcpStream, keys: &SessionKeys) -> Result<(), SessionError> {
    stream
        .write_all(keys.line(SessionRole::Leader).as_bytes())
        .await
        .map_err(io_error)?;
    let line = read_line(stream).await?;
    if line != keys.line(SessionRole::Follower) {
        return Err(SessionError::Handshake("wrong proof from peer".into()));
    }
    Ok(())
}

fn random_side() -> String {
    let bytes: [u8; 8] = rand::rng().random();
    hex(&bytes)
}

/// Connect to a relay, ask it to pair us by token, wait for its `ok`.
async fn relay_connect(
    relay: &str,
    token: &str,
    side: &str,
) -> Result<(TcpStream, SocketAddr), SessionError> {
    let url: url::Url = relay
        .parse()
        .map_err(|err| SessionError::Config(format!("relay {relay:?}: {err}")))?;
    let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
        return Err(SessionError::Config(format!(
            "relay {relay:?}: expected tcp://HOST:PORT"
        )));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = TcpStream::connect((host, port)).await.map_err(io_error)?;
    stream.set_nodelay(true).map_err(io_error)?;
    let addr = stream.peer_addr().map_err(io_error)?;
    stream
        .write_all(format!("please relay {token} for side {side}\n").as_bytes())
        .await
        .map_err(io_error)?;
    let answer = read_line(&mut stream).await?;
    if answer != "ok\n" {
        return Err(SessionError::Connect(format!(
            "relay {relay} answered {:?}",
            answer.trim_end()
        )));
    }
    Ok((stream, addr))
}

/// Read one `\n`-terminated line byte by byte, so no record byte after it is consumed.
async fn read_line(stream: &mut TcpStream) -> Result<String, SessionError> {
    let mut line = Vec::with_capacity(128);
    loop {
        let byte = stream.read_u8().await.map_err(io_error)?;
        line.push(byte);
        if byte == b'\n' {
            return String::from_utf8(line)
                .map_err(|_| SessionError::Handshake("handshake line is not UTF-8".into()));
        }
        if line.len() > MAX_LINE {
            return Err(SessionError::Handshake("handshake line too long".into()));
        }
    }
}

fn io_error(error: std::io::Error) -> SessionError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        SessionError::Closed
    } else {
        SessionError::Transit(error.to_string())
    }
}

/// The per-direction nonce of record number `counter`.
fn nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn record_key(key: &[u8; 32]) -> LessSafeKey {
    // Cannot fail: the key has AES-256's length.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

/// Encrypts outgoing records.
pub(crate) struct Sealer {
    key: LessSafeKey,
    counter: u64,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            key: record_key(key),
            counter: 0,
        }
    }

    /// Seals the record that starts at `start` in `out`: its length field is there, its
    /// plaintext is the rest of `out`. Encrypts in place, appends the tag and fills in the
    /// length, so a record costs no allocation and no copy beyond the plaintext's own.
    pub(crate) fn seal_record(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), SessionError> {
        let plaintext = out.len() - start - LENGTH;
        if plaintext > MAX_RECORD_PLAINTEXT {
            return Err(SessionError::Transit(format!(
                "record of {plaintext} bytes exceeds {MAX_RECORD_PLAINTEXT}"
            )));
        }
        let counter = self.counter;
        self.counter = counter
            .checked_add(1)
            .ok_or_else(|| SessionError::Transit("record counter exhausted".into()))?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(counter), Aad::empty(), &mut out[start + LENGTH..])
            .map_err(|_| SessionError::Transit("encryption failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        // Cannot truncate: MAX_RECORD_PLAINTEXT + TAG < u32::MAX.
        let len = (plaintext + TAG) as u32;
        out[start..start + LENGTH].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// Decrypts incoming records and enforces their order.
pub(crate) struct Opener {
    key: LessSafeKey,
    counter: u64,
}

impl Opener {
    pub(crate) fn new(key: &[u8; 32]) -> Opener {
        Opener {
            key: record_key(key),
            counter: 0,
        }
    }

    /// The length field of a record, checked before its body is buffered.
    pub(crate) fn record_len(header: [u8; LENGTH]) -> Result<usize, SessionError> {
        let len = u32::from_be_bytes(header) as usize;
        if !(TAG..=MAX_RECORD_PLAINTEXT + TAG).contains(&len) {
            return Err(SessionError::Transit(format!(
                "record of {len} bytes (at most {} expected)",
                MAX_RECORD_PLAINTEXT + TAG
            )));
        }
        Ok(len)
    }

    /// Decrypts one record body (`ciphertext || tag`, without the length) in place;
    /// returns the length of the plaintext, which is the front of `body`.
    pub(crate) fn open(&mut self, body: &mut [u8]) -> Result<usize, SessionError> {
        let plaintext = body
            .len()
            .checked_sub(TAG)
            .ok_or_else(|| SessionError::Transit("record shorter than its tag".into()))?;
        let (ciphertext, tag) = body.split_at_mut(plaintext);
        let tag: [u8; TAG] = (&*tag)
            .try_into()
            .map_err(|_| SessionError::Transit("record shorter than its tag".into()))?;
        // The nonce is the record's number: a replayed, dropped or reordered record fails
        // here, as does any other tampering.
        self.key
            .open_in_place_separate_tag(
                nonce(self.counter),
                Aad::empty(),
                Tag::from(tag),
                ciphertext,
                0..,
            )
            .map_err(|_| SessionError::Transit("record failed authentication".into()))?;
        self.counter += 1;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sealed(sealer: &mut Sealer, plaintext: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; LENGTH];
        out.extend_from_slice(plaintext);
        sealer.seal_record(&mut out, 0).expect("seal");
        out
    }

    fn open(opener: &mut Opener, record: &[u8]) -> Result<Vec<u8>, SessionError> {
        let len = Opener::record_len(record[..LENGTH].try_into().unwrap())?;
        assert_eq!(len, record.len() - LENGTH);
        let mut body = record[LENGTH..].to_vec();
        let n = opener.open(&mut body)?;
        body.truncate(n);
        Ok(body)
    }

    #[test]
    fn records_round_trip_in_order_only() {
        let key = [7u8; 32];
        let mut sealer = Sealer::new(&key);
        let mut opener = Opener::new(&key);
        let mut first = sealed(&mut sealer, b"one");
        assert_eq!(&first[..4], &(16u32 + 3).to_be_bytes());
        assert_eq!(first.len(), 3 + LENGTH + TAG);
        let second = sealed(&mut sealer, b"two");
        // Out of order is refused.
        assert!(open(&mut Opener::new(&key), &second).is_err());
        assert_eq!(open(&mut opener, &first).expect("first"), b"one");
        assert_eq!(open(&mut opener, &second).expect("second"), b"two");
        // Replay is refused.
        assert!(open(&mut opener, &second).is_err());
        // Another key is refused.
        let other = sealed(&mut Sealer::new(&[8u8; 32]), b"x");
        assert!(open(&mut Opener::new(&key), &other).is_err());
        // A flipped bit is refused.
        first[5] ^= 1;
        assert!(open(&mut Opener::new(&key), &first).is_err());
    }

    #[test]
    fn record_sizes_are_bounded_both_ways() {
        let mut sealer = Sealer::new(&[1u8; 32]);
        let mut out = vec![0u8; LENGTH + MAX_RECORD_PLAINTEXT + 1];
        assert!(sealer.seal_record(&mut out, 0).is_err());
        let too_long = ((MAX_RECORD_PLAINTEXT + TAG + 1) as u32).to_be_bytes();
        assert!(Opener::record_len(too_long).is_err());
        assert!(Opener::record_len(3u32.to_be_bytes()).is_err());
        assert_eq!(Opener::record_len(16u32.to_be_bytes()).unwrap(), 16);
    }

    #[test]
    fn hints_of_version_1_peers_are_refused_clearly() {
        let old: SessionHints = serde_json::from_str(r#"{"direct":[],"relays":[]}"#).unwrap();
        let err = old.check_version().unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");
    }

    proptest! {
        #[test]
        fn garbage_records_are_errors_not_panics(mut body in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut opener = Opener::new(&[1u8; 32]);
            prop_assert!(opener.open(&mut body).is_err());
        }
    }
}
