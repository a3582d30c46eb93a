//! The transit relay: pairs two wormhole peers that cannot reach each other directly.
//!
//! Each side connects and writes `please relay TOKEN for side SIDE\n` (the older
//! `please relay TOKEN\n` is accepted too). When a second connection with the same token and
//! another side arrives, both get `ok\n` and the relay splices the two sockets. The handshake
//! parser ([`HandshakeParser`]) is sans-IO; [`TransitRelay`] is the tokio driver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest handshake line accepted (a real one is about 100 bytes).
pub const MAX_HANDSHAKE_LEN: usize = 256;

/// A parsed relay request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRequest {
    /// Hex token derived from the transit key; both peers send the same one.
    pub token: String,
    /// The sender's side (hex); `None` for the old handshake without `for side`.
    pub side: Option<String>,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// No newline within [`MAX_HANDSHAKE_LEN`] bytes.
    #[error("relay handshake longer than {MAX_HANDSHAKE_LEN} bytes")]
    TooLong,
    /// The line is not `please relay TOKEN [for side SIDE]`.
    #[error("bad relay handshake")]
    Malformed,
}

/// Incremental parser for the handshake line; feed bytes as they arrive.
#[derive(Debug, Default)]
pub struct HandshakeParser {
    line: Vec<u8>,
}

impl HandshakeParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one byte. Returns the request once the newline arrives.
    ///
    /// Byte-wise on purpose: the peer sends nothing after the line until it sees `ok`, and
    /// reading exactly up to the newline means no payload byte is ever swallowed here.
    pub fn push(&mut self, byte: u8) -> Result<Option<RelayRequest>, HandshakeError> {
        if byte == b'\n' {
            return parse_line(&self.line).map(Some);
        }
        if self.line.len() >= MAX_HANDSHAKE_LEN {
            return Err(HandshakeError::TooLong);
        }
        self.line.push(byte);
        Ok(None)
    }
}

/// Parse one handshake line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<RelayRequest, HandshakeError> {
    let text = std::str::from_utf8(line).map_err(|_| HandshakeError::Malformed)?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    let rest = text
        .strip_prefix("please relay ")
        .ok_or(HandshakeError::Malformed)?;
    let (token, side) = match rest.split_once(" for side ") {
        Some((token, side)) => (token, Some(side)),
        None => (rest, None),
    };
    let hex = |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(token) || side.is_some_and(|side| !hex(side)) {
        return Err(HandshakeError::Malformed);
    }
    Ok(RelayRequest {
        token: token.to_ascii_lowercase(),
        side: side.map(str::to_ascii_lowercase),
    })
}

/// Limits of a transit relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// How long a connection may wait for its handshake and then for its partner.
    pub pairing_timeout: Duration,
    /// Most connections handled at once (waiting or spliced); more are refused.
    pub max_connections: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            pairing_timeout: Duration::from_secs(60),
            max_connections: 1000,
        }
    }
}

/// A connection waiting for its partner.
struct Waiting {
    id: u64,
    side: Option<String>,
    partner: oneshot::Sender<(TcpStream, OwnedSemaphorePermit)>,
}

#[derive(Default)]
struct Pending {
    next_id: u64,
    by_token: HashMap<String, Waiting>,
}

struct Inner {
    config: RelayConfig,
    pending: Mutex<Pending>,
    permits: Arc<Semaphore>,
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The transit relay; see [`TransitRelay::bind`].
#[derive(Debug, Clone, Copy)]
pub struct TransitRelay;

impl TransitRelay {
    /// Listen on `addr` (port 0 for any) and relay until the handle is shut down or dropped.
    pub async fn bind(addr: SocketAddr, config: RelayConfig) -> std::io::Result<RelayHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            permits: Arc::new(Semaphore::new(config.max_connections)),
            config,
            pending: Mutex::new(Pending::default()),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, inner, shutdown.clone()));
        tracing::info!(%local_addr, "transit relay listening");
        Ok(RelayHandle {
            local_addr,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running transit relay. Dropping it stops the relay.
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RelayHandle {
    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The relay hint clients use: `tcp://ADDR`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.local_addr)
    }

    /// Stop accepting, drop every connection and wait for the relay to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "relay accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&inner.permits).try_acquire_owned() else {
            tracing::info!(%peer, "relay full, refusing connection");
            tokio::spawn(async move {
                let _ = stream.write_all(b"error: relay full\n").await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = Arc::clone(&inner);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = handle(stream, peer, permit, inner) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    inner: Arc<Inner>,
) {
    let timeout = inner.config.pairing_timeout;
    let request = match tokio::time::timeout(timeout, read_handshake(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "relay handshake refused");
            let _ = stream.write_all(b"bad handshake\n").await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "relay handshake timed out");
            return;
        }
    };
    // Pair with a waiting partner of the same token and another side, or wait ourselves.
    let (partner_tx, partner_rx) = oneshot::channel();
    let mut me = Some((stream, permit));
    let my_id = {
        let mut pending = inner.pending();
        let matches = pending
            .by_token
            .get(&request.token)
            .is_some_and(|w| w.side.is_none() || request.side.is_none() || w.side != request.side);
        if matches
            && let Some(waiting) = pending.by_token.remove(&request.token)
            && let Some(pair) = me.take()
            && let Err(returned) = waiting.partner.send(pair)
        {
            // The partner gave up a moment ago; wait in its place.
            me = Some(returned);
        }
        if me.is_some() {
            pending.next_id += 1;
            let id = pending.next_id;
            // Same token and same side again (a retry): the newer connection replaces it.
            pending.by_token.insert(
                request.token.clone(),
                Waiting {
                    id,
                    side: request.side.clone(),
                    partner: partner_tx,
                },
            );
            Some(id)
        } else {
            None
        }
    };
    let (Some((mut stream, _permit)), Some(my_id)) = (me, my_id) else {
        return; // Handed over: the partner's task splices both sockets.
    };
    match tokio::time::timeout(timeout, partner_rx).await {
        Ok(Ok((mut other, _other_permit))) => {
            tracing::debug!(%peer, "relay paired");
            if stream.write_all(b"ok\n").await.is_err() || other.write_all(b"ok\n").await.is_err() {
                return;
            }
            let (up, down) = splice(stream, other).await;
            tracing::debug!(%peer, up, down, "relay session ended");
        }
        Ok(Err(_)) | Err(_) => {
            let mut pending = inner.pending();
            if pending
                .by_token
                .get(&request.token)
                .is_some_and(|w| w.id == my_id)
            {
                pending.by_token.remove(&request.token);
            }
            tracing::debug!(%peer, "unpaired relay connection timed out");
        }
    }
}

/// Copy both ways until both sides have finished; returns the bytes moved each way.
async fn splice(a: TcpStream, b: TcpStream) -> (u64, u64) {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    tokio::join!(forward(a_read, b_write), forward(b_read, a_write))
}

/// One direction of a relayed connection.
///
/// Transit peers write each record as several small writes (length, nonce, ciphertext)
/// with Nagle's algorithm on, so each write after the first waits for our ACK. With delayed
/// ACKs that costs up to 40 ms per record; re-arming TCP_QUICKACK after every read makes
/// the relay acknowledge at once, which is what keeps warm round trips in microseconds.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) -> u64 {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = from.as_ref().set_quickack(true);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
    }
    // Pass the end of stream on, so the other peer sees the close.
    let _ = to.shutdown().await;
    total
}

async fn read_handshake(stream: &mut TcpStream) -> Result<RelayRequest, HandshakeError> {
    let mut parser = HandshakeParser::new();
    loop {
        let byte = stream
            .read_u8()
            .await
            .map_err(|_| HandshakeError::Malformed)?;
        if let Some(request) = parser.push(byte)? {
            return Ok(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_both_handshake_forms() {
        let token = "ab".repeat(32);
        assert_eq!(
            parse_line(format!("please relay {token} for side 0123456789abcdef").as_bytes()),
            Ok(RelayRequest {
                token: token.clone(),
                side: Some("0123456789abcdef".into())
            })
        );
        assert_eq!(
            parse_line(format!("please relay {token}").as_bytes()),
            Ok(RelayRequest { token, side: None })
        );
    }

    #[test]
    fn refuses_garbage() {
        for line in [
            &b"hello"[..],
            b"please relay ",
            b"please relay zz",
            b"please relay ab for side ",
            b"please relay ab for side xyz",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_line(line), Err(HandshakeError::Malformed), "{line:?}");
        }
        let mut parser = HandshakeParser::new();
        let mut result = Ok(None);
        for _ in 0..=MAX_HANDSHAKE_LEN {
            result = parser.push(b'a');
        }
        assert_eq!(result, Err(HandshakeError::TooLong));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut parser = HandshakeParser::new();
            for byte in bytes {
                match parser.push(byte) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => break,
                }
            }
        }

        #[test]
        fn valid_lines_round_trip(token in "[0-9a-f]{1,64}", side in "[0-9a-f]{16}") {
            let line = format!("please relay {token} for side {side}\n");
            let mut parser = HandshakeParser::new();
            let mut got = None;
            for byte in line.bytes() {
                if let Some(request) = parser.push(byte).expect("valid") {
                    got = Some(request);
                }
            }
            prop_assert_eq!(got, Some(RelayRequest { token, side: Some(side) }));
        }
    }
}
