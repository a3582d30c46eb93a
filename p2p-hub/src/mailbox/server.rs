//! The tokio/WebSocket driver around [`MailboxState`]: accepts connections, feeds frames and
//! time into the state machine and delivers its outputs. No protocol decisions live here.
//!
//! Transport bounds live here: connections at once, in all and per IP address (more are
//! closed at accept), and the bytes queued for a connection that does not read
//! ([`MailboxConfig::max_output_bytes`]; past it the connection is closed, so a client that
//! never reads costs at most that much).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::state::{ConnId, MailboxConfig, MailboxState, Output};

/// How long a client may take for the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may wait for a client that does not read before it is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound on timer sleeps, so a clock that jumps cannot stall expiry for long.
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(60);

/// What the driver sends to one connection task.
enum Outgoing {
    Text(String),
    Close,
    /// The client let more than `max_output_bytes` pile up: close it.
    Overflow,
}

/// The driver's end of one connection.
struct ConnHandle {
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Bytes handed to the task and not yet written to the socket.
    queued: Arc<AtomicUsize>,
    /// Overflowed: nothing more is queued for it.
    overflowed: bool,
}

struct Shared {
    state: MailboxState,
    connections: HashMap<ConnId, ConnHandle>,
    max_output_bytes: usize,
}

impl Shared {
    /// Route every queued output to its connection task.
    fn dispatch(&mut self) {
        while let Some(output) = self.state.poll_output() {
            let (conn, message) = match output {
                Output::Send { conn, text } => (conn, Outgoing::Text(text)),
                Output::Close { conn } => (conn, Outgoing::Close),
            };
            let Some(handle) = self.connections.get_mut(&conn) else {
                continue;
            };
            if handle.overflowed {
                continue;
            }
            let message = match message {
                Outgoing::Text(text) => {
                    let queued = handle.queued.load(Ordering::Acquire);
                    if queued.saturating_add(text.len()) > self.max_output_bytes {
                        handle.overflowed = true;
                        tracing::info!(?conn, queued, "mailbox client does not read; closing it");
                        Outgoing::Overflow
                    } else {
                        handle.queued.fetch_add(text.len(), Ordering::AcqRel);
                        Outgoing::Text(text)
                    }
                }
                other => other,
            };
            // A closed channel means the task is already tearing down; nothing to do.
            let _ = handle.tx.send(message);
        }
    }
}

/// Connections at once, in all and per address.
struct Admission {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    max_total: usize,
    max_per_address: usize,
}

/// One admitted connection; its count drops with it.
struct Admitted {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut admission = self.inner.admission();
        admission.total = admission.total.saturating_sub(1);
        if let Some(n) = admission.by_address.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                admission.by_address.remove(&self.ip);
            }
        }
    }
}

struct Inner {
    shared: Mutex<Shared>,
    admission: Mutex<Admission>,
    /// Wakes the timer task when an input may have moved the next deadline.
    timer: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock would be a bug in the state machine; keep serving
        // rather than poisoning every later connection.
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn admission(&self) -> MutexGuard<'_, Admission> {
        self.admission
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Counts a connection from `ip`, or says which limit it would pass.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, &'static str> {
        let mut admission = self.admission();
        if admission.total >= admission.max_total {
            return Err("server full");
        }
        let max_per_address = admission.max_per_address;
        let mine = admission.by_address.entry(ip).or_insert(0);
        if *mine >= max_per_address {
            return Err("too many connections from this address");
        }
        *mine += 1;
        admission.total += 1;
        Ok(Admitted {
            inner: Arc::clone(self),
            ip,
        })
    }
}

/// The mailbox server; see [`MailboxServer::bind`].
#[derive(Debug, Clone, Copy)]
pub struct MailboxServer;

impl MailboxServer {
    /// Listen on `addr` (port 0 for any) and serve the mailbox protocol at `ws://ADDR/v1`.
    ///
    /// Any request path is accepted (clients differ in how they spell the URL); `/v1` is the
    /// one [`MailboxHandle::url`] advertises.
    ///
    /// The server runs on the current tokio runtime until the handle is shut down or dropped.
    pub async fn bind(addr: SocketAddr, config: MailboxConfig) -> std::io::Result<MailboxHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let unix_now = p2p_transport::clock::unix_ms() as f64 / 1000.0;
        let inner = Arc::new(Inner {
            admission: Mutex::new(Admission {
                total: 0,
                by_address: HashMap::new(),
                max_total: config.max_connections,
                max_per_address: config.max_connections_per_address,
            }),
            shared: Mutex::new(Shared {
                max_output_bytes: config.max_output_bytes,
                state: MailboxState::new(config, Instant::now(), unix_now),
                connections: HashMap::new(),
            }),
            timer: Notify::new(),
        });
        let shutdown = CancellationToken::new();
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&inner), shutdown.clone()));
        let timer = tokio::spawn(timer_loop(Arc::clone(&inner), shutdown.clone()));
        tracing::info!(%local_addr, "mailbox server listening");
        Ok(MailboxHandle {
            local_addr,
            shutdown,
            tasks: vec![accept, timer],
            inner,
        })
    }
}

/// A running mailbox server. Dropping it stops the server.
pub struct MailboxHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MailboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// What a mailbox server holds now (for tests and monitoring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStats {
    /// Open connections.
    pub connections: usize,
    /// Bytes stored in mailboxes.
    pub stored_bytes: usize,
    /// Bytes queued for connections and not yet written.
    pub queued_bytes: usize,
}

impl MailboxHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients use: `ws://ADDR/v1`.
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.local_addr)
    }

    /// Connections and bytes held now.
    pub fn stats(&self) -> MailboxStats {
        let shared = self.inner.lock();
        MailboxStats {
            connections: shared.connections.len(),
            stored_bytes: shared.state.stored_bytes(),
            queued_bytes: shared
                .connections
                .values()
                .map(|c| c.queued.load(Ordering::Acquire))
                .sum(),
        }
    }

    /// Stop accepting, close every connection and wait for the server tasks to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for MailboxHandle {
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
        match accepted {
            Ok((stream, peer)) => {
                let admitted = match inner.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(why) => {
                        tracing::info!(%peer, why, "mailbox connection refused");
                        drop(stream);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let inner = Arc::clone(&inner);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve(stream, peer, inner, shutdown).await {
                        tracing::debug!(%peer, %error, "mailbox connection ended with error");
                    }
                    drop(admitted);
                });
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(%error, "mailbox accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn timer_loop(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let now = Instant::now();
        let deadline = {
            let mut shared = inner.lock();
            shared.state.handle_timeout(now);
            shared.dispatch();
            shared.state.poll_timeout()
        };
        let sleep = deadline
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(MAX_TIMER_SLEEP)
            .min(MAX_TIMER_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = inner.timer.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    inner: Arc<Inner>,
    shutdown: CancellationToken,
) -> Result<(), async_tungstenite::tungstenite::Error> {
    let max = inner.lock().state.config().max_message_bytes;
    // Let frames somewhat above our limit through so the state machine can answer them with
    // the protocol's `error`; far larger ones are cut off by tungstenite itself.
    let ws_limit = max.saturating_mul(4).max(64 * 1024);
    let config = WebSocketConfig::default()
        .max_message_size(Some(ws_limit))
        .max_frame_size(Some(ws_limit));
    let handshake = async_tungstenite::tokio::accept_async_with_config(stream, Some(config));
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(ws) => ws?,
        Err(_) => {
            tracing::debug!(%peer, "websocket handshake timed out");
            return Ok(());
        }
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let conn = {
        let mut shared = inner.lock();
        let conn = shared.state.connect(Instant::now());
        shared.connections.insert(
            conn,
            ConnHandle {
                tx,
                queued: Arc::clone(&queued),
                overflowed: false,
            },
        );
        shared.dispatch();
        conn
    };
    tracing::debug!(%peer, ?conn, "mailbox client connected");
    inner.timer.notify_one();

    let result = loop {
        tokio::select! {
            incoming = source.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                    // The spec sends JSON in binary frames; invalid UTF-8 becomes invalid JSON.
                    Some(Ok(Message::Binary(data))) => String::from_utf8_lossy(&data).into_owned(),
                    Some(Ok(Message::Close(_))) | None => break Ok(()),
                    Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
                    Some(Err(error)) => break Err(error),
                };
                let mut shared = inner.lock();
                shared.state.handle_text(conn, Instant::now(), &text);
                shared.dispatch();
                drop(shared);
                inner.timer.notify_one();
            }
            outgoing = rx.recv() => match outgoing {
                Some(Outgoing::Text(text)) => {
                    let len = text.len();
                    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::text(text))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => break Err(error),
                        Err(_) => {
                            tracing::debug!(%peer, "mailbox client stopped reading; closing it");
                            break Ok(());
                        }
                    }
                    queued.fetch_sub(len, Ordering::AcqRel);
                }
                Some(Outgoing::Overflow) => break Ok(()),
                Some(Outgoing::Close) | None => {
                    let _ = sink.close(None).await;
                    break Ok(());
                }
            },
            () = shutdown.cancelled() => {
                let _ = sink.close(None).await;
                break Ok(());
            }
        }
    };
    let mut shared = inner.lock();
    shared.connections.remove(&conn);
    shared.state.disconnect(conn, Instant::now());
    shared.dispatch();
    drop(shared);
    tracing::debug!(%peer, ?conn, "mailbox client disconnected");
    result
}
