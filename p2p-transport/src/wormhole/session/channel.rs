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
//! - records are `u32 BE length || 24-byte nonce || XSalsa20-Poly1305 ciphertext`, nonces
//!   are per-direction counters that must arrive in order, each record goes out in one write
//!   on a TCP_NODELAY socket.

use std::net::SocketAddr;
use std::time::Duration;

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Key as BoxKey, Nonce, Tag, XSalsa20Poly1305};
use magic_wormhole::{Key, KeyPurpose, WormholeKey};
use rand::Rng;
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

/// Bytes a record adds around its plaintext: length, nonce and MAC.
pub(crate) const RECORD_OVERHEAD: usize = 4 + 24 + 16;
/// How long one direct connection attempt (connect and handshake) may take.
const DIRECT_ATTEMPT: Duration = Duration::from_secs(3);
/// Poly1305 tag length.
const TAG: usize = 16;
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
            leader_to_follower: sub("future-p2p/session/leader-to-follower"),
            follower_to_leader: sub("future-p2p/session/follower-to-leader"),
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

/// Where each peer can be reached; exchanged as one encrypted mailbox message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SessionHints {
    /// Addresses the follower listens on for a direct connection.
    pub direct: Vec<SocketAddr>,
    /// Transit relays (`tcp://HOST:PORT`); the leader's list is the one both use.
    pub relays: Vec<String>,
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

/// Encrypts outgoing records.
pub(crate) struct Sealer {
    cipher: XSalsa20Poly1305,
    counter: u64,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: XSalsa20Poly1305::new(BoxKey::from_slice(key)),
            counter: 0,
        }
    }

    /// Append one complete record carrying `plaintext` to `out`.
    ///
    /// Encrypts in place in `out` (no per-record allocation once `out` has grown); the
    /// layout is NaCl secretbox's: `len || nonce || tag || ciphertext`.
    pub(crate) fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
        let nonce = nonce(self.counter);
        self.counter += 1;
        let len = u32::try_from(nonce.len() + TAG + plaintext.len())
            .map_err(|_| SessionError::Transit("record too large".into()))?;
        let start = out.len();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&[0u8; TAG]);
        let body = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut out[body..])
            .map_err(|_| SessionError::Transit("encryption failed".into()))?;
        out[start + 4 + 24..body].copy_from_slice(&tag);
        Ok(())
    }
}

/// Decrypts incoming records and enforces their order.
pub(crate) struct Opener {
    cipher: XSalsa20Poly1305,
    counter: u64,
}

impl Opener {
    pub(crate) fn new(key: &[u8; 32]) -> Opener {
        Opener {
            cipher: XSalsa20Poly1305::new(BoxKey::from_slice(key)),
            counter: 0,
        }
    }

    /// Decrypt one record body (`nonce || tag || ciphertext`, without the length) in
    /// place; returns the plaintext, a slice of `body`.
    pub(crate) fn open<'a>(&mut self, body: &'a mut [u8]) -> Result<&'a [u8], SessionError> {
        if body.len() < 24 + TAG {
            return Err(SessionError::Transit(
                "record shorter than nonce and MAC".into(),
            ));
        }
        let (received, rest) = body.split_at_mut(24);
        // A replayed, dropped or reordered record is an attack or a bug; never accept it.
        if *received != nonce(self.counter) {
            return Err(SessionError::Transit("record out of sequence".into()));
        }
        self.counter += 1;
        let (tag, ciphertext) = rest.split_at_mut(TAG);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(received),
                b"",
                ciphertext,
                Tag::from_slice(tag),
            )
            .map_err(|_| SessionError::Transit("record failed authentication".into()))?;
        Ok(ciphertext)
    }
}

fn nonce(counter: u64) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[16..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip_in_order_only() {
        let key = [7u8; 32];
        let mut sealer = Sealer::new(&key);
        let mut opener = Opener::new(&key);
        let mut first = Vec::new();
        sealer.seal(b"one", &mut first).expect("seal");
        assert_eq!(&first[..4], &(24u32 + 16 + 3).to_be_bytes());
        let mut second = Vec::new();
        sealer.seal(b"two", &mut second).expect("seal");
        assert_eq!(first.len(), 3 + RECORD_OVERHEAD);
        // Out of order is refused.
        assert!(Opener::new(&key).open(&mut second.clone()[4..]).is_err());
        assert_eq!(opener.open(&mut first.clone()[4..]).expect("first"), b"one");
        assert_eq!(
            opener.open(&mut second.clone()[4..]).expect("second"),
            b"two"
        );
        // Replay is refused.
        assert!(opener.open(&mut second.clone()[4..]).is_err());
        // Another key is refused.
        let mut other = Vec::new();
        Sealer::new(&[8u8; 32])
            .seal(b"x", &mut other)
            .expect("seal");
        assert!(Opener::new(&key).open(&mut other[4..]).is_err());
        // A flipped bit is refused.
        first[44] ^= 1;
        assert!(Opener::new(&key).open(&mut first[4..]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_records_are_errors_not_panics(mut body in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut opener = Opener::new(&[1u8; 32]);
            prop_assert!(opener.open(&mut body).is_err());
        }
    }
}
